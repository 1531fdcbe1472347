"""Fuzzing the registry value parser: whatever etcd holds, ``parse_instance`` returns an
``Instance`` or raises ``InvalidInstance`` (never another error), and what it returns follows
SCHEMA.md and survives a round trip through ``encode``.

Inputs: random bytes and text, random JSON (NaN and the infinities included), instance-like
objects whose fields take any JSON value, the vectors' values mutated byte by byte, and deep
nesting. Findings are regression tests below, and vectors in registry/vectors/ where every
language must agree (invalid-nan.json).
"""

import base64
import json
import math
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fixtures.wire_fuzz import mutated
from soa.registry.instance import (
    KNOWN_FIELDS,
    PROTOCOLS,
    TRANSPORTS,
    Instance,
    InvalidInstance,
    instance_key,
    parse_instance,
)

VECTORS = sorted((Path(__file__).parent.parent / "registry" / "vectors").glob("*.json"))
FUZZ = settings(max_examples=300, deadline=None, derandomize=True, database=None,
                suppress_health_check=list(HealthCheck))

SCALARS = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(),
                    st.integers(-70000, 70000), st.text(max_size=20),
                    st.sampled_from(["binary", "compact", "buffered", "framed", "order",
                                     "10.0.0.7", "::1", "", "a b", "Order", "x\n"]))
JSON = st.recursive(SCALARS, lambda children: st.one_of(
    st.lists(children, max_size=4),
    st.dictionaries(st.text(max_size=8), children, max_size=4)), max_leaves=10)
FIELD_NAMES = st.sampled_from(sorted(KNOWN_FIELDS) + ["leaving", "future", ""])


def mostly(value):
    """``value`` three times in four, else any JSON: most objects get past the first fields."""
    return st.one_of(st.just(value), st.just(value), st.just(value), JSON)


INSTANCE_LIKE = st.fixed_dictionaries(
    {"service": mostly("order"), "host": mostly("10.0.0.7"), "port": mostly(9090)},
    optional={name: st.one_of(st.floats(), JSON)
              for name in sorted(KNOWN_FIELDS - {"service", "host", "port"})})


def vector_values():
    values = []
    for path in VECTORS:
        vector = json.loads(path.read_text())
        values.append(base64.b64decode(vector["value_base64"]) if "value_base64" in vector
                      else vector["value"].encode("utf-8"))
    return values


def check(raw):
    """The property: an Instance that follows the schema and round-trips, or InvalidInstance."""
    try:
        instance = parse_instance(raw)
    except InvalidInstance as e:
        assert e.reason in {"not_utf8", "not_json", "not_object", "missing_field", "bad_type",
                            "bad_value"}, e.reason
        return None
    assert isinstance(instance, Instance)
    assert 0 < instance.port < 65536 and instance.weight >= 0
    assert instance.protocol in PROTOCOLS and instance.transport in TRANSPORTS
    assert 0 <= instance.metrics_port < 65536
    assert math.isfinite(instance.started_at)
    assert all(type(v) is str for v in instance.tags.values())
    again = parse_instance(instance.encode(), key=instance_key("/soa", instance), prefix="/soa")
    assert again == instance
    return instance


@FUZZ
@given(st.one_of(st.binary(max_size=200), st.text(max_size=200).map(str.encode)))
def test_random_bytes(raw):
    check(raw)


@FUZZ
@given(JSON)
def test_random_json(value):
    check(json.dumps(value).encode())  # NaN and the infinities come out as Python writes them


@FUZZ
@given(INSTANCE_LIKE, st.dictionaries(FIELD_NAMES, JSON, max_size=2))
def test_instance_like_objects(fields, more):
    check(json.dumps({**more, **fields}).encode())


@FUZZ
@given(st.sampled_from(["port", "weight", "pid", "started_at", "metrics_port"]),
       st.one_of(st.floats(), st.integers(), st.integers(-(1 << 70), 1 << 70)))
def test_numbers(field, number):
    """Every kind of number in every numeric field of an otherwise valid value."""
    value = {"service": "order", "host": "10.0.0.7", "port": 9090, field: number}
    check(json.dumps(value).encode())


@FUZZ
@given(st.sampled_from(vector_values()).flatmap(mutated))
def test_mutated_vectors(raw):
    check(raw)


@settings(FUZZ, max_examples=20)
@given(st.integers(1, 200_000), st.sampled_from(["[", "{\"a\":"]))
def test_deep_nesting(depth, opener):
    closer = "]" if opener == "[" else "}"
    check(('{"service":"order","host":"h","port":1,"x":' + opener * depth + "0"
           + closer * depth + "}").encode())


# -- findings, kept as regression tests ------------------------------------------------------

@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_non_json_constants_are_not_json(constant):
    """Python's json module reads NaN and the infinities, which are not JSON: no other reader
    accepts them (found by test_random_json; vector invalid-nan.json)."""
    raw = f'{{"service":"order","host":"h","port":1,"started_at":{constant}}}'.encode()
    with pytest.raises(InvalidInstance) as info:
        parse_instance(raw)
    assert info.value.reason == "not_json"


def test_nesting_deeper_than_the_parser_is_not_json():
    """100,000 nested arrays in an unknown field made json raise RecursionError, which escaped
    the parser (found by test_deep_nesting)."""
    raw = ('{"service":"order","host":"h","port":1,"x":' + "[" * 100_000 + "]" * 100_000
           + "}").encode()
    with pytest.raises(InvalidInstance) as info:
        parse_instance(raw)
    assert info.value.reason == "not_json"
