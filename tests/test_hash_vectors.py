"""The consistent-hash vectors (registry/vectors/hash): every language's ring must agree."""

import json
from pathlib import Path

import pytest

from soa.balancer.consistent_hash import ConsistentHash
from soa.middleware import Call
from soa.registry.instance import Instance

VECTORS = sorted((Path(__file__).resolve().parent.parent / "registry" / "vectors" / "hash")
                 .glob("*.json"))


def test_there_are_hash_vectors():
    assert len(VECTORS) >= 5


@pytest.mark.parametrize("path", VECTORS, ids=[p.stem for p in VECTORS])
def test_hash_vector(path):
    vector = json.loads(path.read_text())
    instances = tuple(Instance(service="catalog", host=i["host"], port=i["port"],
                               weight=i["weight"]) for i in vector["instances"])
    picker = ConsistentHash(key=lambda call: call.meta["key"]).picker(instances)
    for key, address in vector["keys"].items():
        assert picker.pick(Call("catalog", "get", meta={"key": key})).address == address, key
