"""JSON <-> Thrift conversion: every type, and errors that name the field path."""

import pytest
from fixtures.client_handler import IDL
from thriftpy2.thrift import TType

from soa import idl as idl_module
from soa import jsonthrift
from soa.clients.plan import plans
from soa.jsonthrift import JsonThriftError, from_json, to_json

M = idl_module.load(IDL)
PLANS = plans(M.EchoService)


def test_arguments_by_name_or_position():
    assert jsonthrift.args_from_json(PLANS["echo"], {"msg": "x"}) == ("x",)
    assert jsonthrift.args_from_json(PLANS["echo"], ["x"]) == ("x",)
    assert jsonthrift.args_from_json(PLANS["ping"], None) == ()
    assert jsonthrift.args_from_json(PLANS["place"], {"order": {"id": 1}, "reason": None}) == (
        M.Order(id=1), None)


def test_a_missing_argument_is_refused_before_sending():
    with pytest.raises(jsonthrift.JsonThriftError, match="reason: missing argument"):
        jsonthrift.args_from_json(PLANS["place"], {"order": {"id": 1}})
    with pytest.raises(jsonthrift.JsonThriftError, match="msg: missing argument"):
        jsonthrift.args_from_json(PLANS["echo"], [])


@pytest.mark.parametrize(("value", "ttype", "arg", "expected"), [
    (True, TType.BOOL, None, True),
    (3, TType.DOUBLE, None, 3.0),
    ("9223372036854775807", TType.I64, None, 2**63 - 1),
    (5.0, TType.I32, None, 5),
    ("green", TType.I32, M.Color, 2),
    (1, TType.I32, M.Color, 1),
    ("AAE=", TType.BINARY, None, b"\x00\x01"),
    ({"1": "a", "2": "b"}, TType.MAP, (TType.I32, TType.STRING), {1: "a", 2: "b"}),
    ([[1, "a"]], TType.MAP, (TType.I32, TType.STRING), {1: "a"}),
    ({"RED": 1}, TType.MAP, ((TType.I32, M.Color), TType.I32), {1: 1}),
    (["a", "a"], TType.SET, TType.STRING, {"a"}),
    ([[1, 2], [3]], TType.LIST, (TType.LIST, TType.I16), [[1, 2], [3]]),
])
def test_from_json(value, ttype, arg, expected):
    assert from_json(value, ttype, arg, "x") == expected


@pytest.mark.parametrize(("value", "ttype", "arg", "message"), [
    (1, TType.BOOL, None, "x: expected a boolean, got 1"),
    (True, TType.I32, None, "x: expected an integer, got true"),
    (1.5, TType.I64, None, "x: expected an integer, got 1.5"),
    (200, TType.BYTE, None, "x: 200 is out of range for byte (-128..127)"),
    ("1", TType.I32, None, 'x: expected an integer, got "1"'),
    (3, TType.I32, M.Color, "x: expected one of Color's values (RED, GREEN), got 3"),
    ({"a": 1}, TType.LIST, TType.I32, 'x: expected an array, got {"a": 1}'),
    (["a", 2], TType.LIST, TType.STRING, "x[1]: expected a string, got 2"),
    ({"k": "v"}, TType.MAP, (TType.I32, TType.STRING), 'x["k"]: expected an integer key, got "k"'),
    ({"k": 1}, TType.MAP, (TType.STRING, TType.STRING), 'x["k"]: expected a string, got 1'),
    ("=", TType.BINARY, None, 'x: expected base64, got "="'),
])
def test_from_json_errors_name_the_path(value, ttype, arg, message):
    with pytest.raises(JsonThriftError) as e:
        from_json(value, ttype, arg, "x")
    assert str(e.value) == message


def test_to_json():
    order = M.Order(id=7, lines=[M.Line(sku="a", quantity=1, color=2)], prices={"a": 1.0},
                    tags={"b", "a"}, blob=b"\xff", gift=None)
    assert jsonthrift.struct_to_json(order) == {
        "id": 7, "lines": [{"sku": "a", "quantity": 1, "color": "GREEN"}],
        "prices": {"a": 1.0}, "tags": ["a", "b"], "blob": "/w=="}
    assert to_json({1: "a"}, TType.MAP, (TType.I32, TType.STRING)) == {"1": "a"}
    assert to_json({M.Color.RED: 1}, TType.MAP, ((TType.I32, M.Color), TType.I32)) == {"RED": 1}
    assert jsonthrift.result_to_json(PLANS["ping"], None) is None
    assert jsonthrift.result_to_json(PLANS["whoami"], 5) == 5
    error = M.Rejected(reason="no", code=3)
    assert jsonthrift.exception_to_json(error) == {"exception": "Rejected",
                                                   "fields": {"reason": "no", "code": 3}}
