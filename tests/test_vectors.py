"""The registry vectors: every language's parser must agree with these; this is Python's."""

import base64
import json
from pathlib import Path

import pytest

from soa.registry import InvalidInstance, parse_instance

VECTORS = sorted((Path(__file__).resolve().parent.parent / "registry" / "vectors").glob("*.json"))


def test_there_are_valid_and_invalid_vectors():
    kinds = {json.loads(p.read_text())["valid"] for p in VECTORS}
    assert kinds == {True, False} and len(VECTORS) >= 20


@pytest.mark.parametrize("path", VECTORS, ids=[p.stem for p in VECTORS])
def test_vector(path):
    vector = json.loads(path.read_text())
    raw = (base64.b64decode(vector["value_base64"]) if "value_base64" in vector
           else vector["value"].encode("utf-8"))
    if vector["valid"]:
        instance = parse_instance(raw, key=vector["key"], prefix=vector["prefix"])
        parsed = {k: v for k, v in instance.to_dict().items() if k in vector["expect"]}
        assert parsed == vector["expect"]
        assert set(vector["expect"]) >= {"service", "host", "port", "weight", "protocol",
                                         "transport", "version", "idl_hash", "tags", "pid",
                                         "started_at"}
    else:
        with pytest.raises(InvalidInstance) as info:
            parse_instance(raw, key=vector["key"], prefix=vector["prefix"])
        assert info.value.reason == vector["error"]


def test_encode_round_trips_and_keeps_unknown_fields():
    raw = b'{"service":"order","host":"10.0.0.1","port":80,"metrics_port":9100,"future":[1]}'
    instance = parse_instance(raw)
    again = parse_instance(instance.encode())
    assert again == instance and again.metrics_port == 9100 and again.extra["future"] == [1]
