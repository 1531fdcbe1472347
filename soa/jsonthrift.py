"""JSON values to thriftpy2 values and back, guided by the IDL's specs.

``args_from_json(plan, data)`` turns a JSON object keyed by argument name, or an array in IDL
order, into the positional arguments of one method; ``to_json(value, spec)`` renders a result.
A value that does not fit raises ``JsonThriftError`` naming the field path, e.g.
``req.lines[0].quantity: expected an integer, got "x"``.

Mapping: bool <-> true/false; byte/i16/i32/i64 <-> integers (range-checked; i64 also accepts a
string of digits, since JSON tools lose precision past 2**53); double <-> numbers; string <->
strings; binary <-> base64 strings; enums <-> their names (ints are accepted on input); structs
and exceptions <-> objects (unknown keys and missing required fields are errors); list/set <->
arrays; maps <-> objects (keys converted from their string form) or arrays of ``[key, value]``
pairs (rendered as pairs when keys are not strings, numbers or enums).
"""

import base64
import binascii
import json

from thriftpy2.thrift import TType

from .errors import SoaError

_RANGES = {
    TType.BYTE: (-(2**7), 2**7 - 1),
    TType.I16: (-(2**15), 2**15 - 1),
    TType.I32: (-(2**31), 2**31 - 1),
    TType.I64: (-(2**63), 2**63 - 1),
}
_INT_NAMES = {TType.BYTE: "byte", TType.I16: "i16", TType.I32: "i32", TType.I64: "i64"}
_KIND = {
    TType.BOOL: "a boolean",
    TType.DOUBLE: "a number",
    TType.STRING: "a string",
    TType.BINARY: "a base64 string",
    TType.STRUCT: "an object",
    TType.LIST: "an array",
    TType.SET: "an array",
    TType.MAP: "an object",
}


class JsonThriftError(SoaError):
    """A JSON value does not fit the IDL. ``path`` is the field path; ``str()`` is one line."""

    def __init__(self, path, message):
        self.path = path
        self.detail = message
        super().__init__(f"{path}: {message}" if path else message)


def _show(value):
    text = json.dumps(value)
    return text if len(text) <= 60 else text[:57] + "..."


def field_type(entry):
    """``(ttype, type_arg)`` of a thrift_spec entry ``(ttype, name[, type_arg], required)``."""
    return entry[0], (entry[2] if len(entry) == 4 else None)


def _elem(spec):
    return (spec[0], spec[1]) if isinstance(spec, tuple) else (spec, None)


def _is_enum(ttype, arg):
    return ttype == TType.I32 and isinstance(arg, type) and hasattr(arg, "_VALUES_TO_NAMES")


# -- JSON to Thrift ------------------------------------------------------------------------------


def args_from_json(plan, data):
    """Positional arguments for ``plan`` (a ``MethodPlan``) from decoded JSON."""
    spec = [entry for _, entry in sorted(plan.args_class.thrift_spec.items())]
    names = [entry[1] for entry in spec]
    if data is None:
        data = {}
    if isinstance(data, list):
        if len(data) > len(names):
            raise JsonThriftError("", f"{plan.name} takes {len(names)} argument(s)"
                                      f" ({', '.join(names) or 'none'}), got {len(data)}")
        data = dict(zip(names, data))
    elif not isinstance(data, dict):
        raise JsonThriftError("", f"arguments must be a JSON object keyed by name or an array"
                                  f" in IDL order, got {_show(data)}")
    unknown = [k for k in data if k not in names]
    if unknown:
        raise JsonThriftError(unknown[0], f"{plan.name} has no argument {unknown[0]!r}"
                                          f" (arguments: {', '.join(names) or 'none'})")
    defaults = dict(getattr(plan.args_class, "default_spec", ()))
    out = []
    for entry in spec:
        name, required = entry[1], entry[-1] is True
        if name not in data and defaults.get(name) is None:
            # refused here, before anything is sent; JSON null sends "unset" on purpose
            raise JsonThriftError(name, "missing argument" + (
                "" if required else " (pass null to leave it unset)"))
        if data.get(name) is None:
            if required:
                raise JsonThriftError(name, "missing required argument")
            out.append(defaults.get(name))
            continue
        ttype, arg = field_type(entry)
        out.append(from_json(data[name], ttype, arg, name))
    return tuple(out)


def from_json(value, ttype, arg, path):
    """One JSON value as the thriftpy2 value of type ``(ttype, arg)``; ``path`` names it."""
    if _is_enum(ttype, arg):
        return _enum(value, arg, path)
    if ttype in _RANGES:
        return _integer(value, ttype, path)
    if ttype == TType.BOOL:
        if isinstance(value, bool):
            return value
    elif ttype == TType.DOUBLE:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif ttype == TType.STRING:
        if isinstance(value, str):
            return value
    elif ttype == TType.BINARY:
        if isinstance(value, str):
            try:
                return base64.b64decode(value, validate=True)
            except (binascii.Error, ValueError):
                raise JsonThriftError(path, f"expected base64, got {_show(value)}") from None
    elif ttype == TType.STRUCT:
        if isinstance(value, dict):
            return struct_from_json(value, arg, path)
    elif ttype in (TType.LIST, TType.SET):
        if isinstance(value, list):
            et, ea = _elem(arg)
            items = [from_json(v, et, ea, f"{path}[{i}]") for i, v in enumerate(value)]
            if ttype == TType.SET:
                try:
                    return set(items)
                except TypeError:
                    return items  # unhashable elements (structs): thriftpy2 writes lists too
            return items
    elif ttype == TType.MAP:
        return _map(value, arg, path)
    raise JsonThriftError(path, f"expected {_KIND.get(ttype, 'a value')}, got {_show(value)}")


def struct_from_json(value, cls, path):
    fields = {entry[1]: entry for entry in cls.thrift_spec.values()}
    unknown = [k for k in value if k not in fields]
    if unknown:
        raise JsonThriftError(f"{path}.{unknown[0]}" if path else unknown[0],
                              f"{cls.__name__} has no field {unknown[0]!r}"
                              f" (fields: {', '.join(fields)})")
    kwargs = {}
    for name, entry in fields.items():
        sub = f"{path}.{name}" if path else name
        if value.get(name) is None:
            if entry[-1] is True:
                raise JsonThriftError(sub, f"missing required field of {cls.__name__}")
            continue
        ttype, arg = field_type(entry)
        kwargs[name] = from_json(value[name], ttype, arg, sub)
    return cls(**kwargs)


def _integer(value, ttype, path):
    if isinstance(value, str) and ttype == TType.I64 and value.strip().lstrip("-").isdigit():
        value = int(value)
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool):
        raise JsonThriftError(path, f"expected an integer, got {_show(value)}")
    lo, hi = _RANGES[ttype]
    if not lo <= value <= hi:
        raise JsonThriftError(path, f"{value} is out of range for {_INT_NAMES[ttype]}"
                                    f" ({lo}..{hi})")
    return value


def _enum(value, enum, path):
    names = enum._NAMES_TO_VALUES
    if isinstance(value, str):
        if value in names:
            return names[value]
        folded = {k.lower(): v for k, v in names.items()}
        if value.lower() in folded:
            return folded[value.lower()]
    elif isinstance(value, int) and not isinstance(value, bool):
        if value in enum._VALUES_TO_NAMES:
            return value
    raise JsonThriftError(path, f"expected one of {enum.__name__}'s values "
                                f"({', '.join(names)}), got {_show(value)}")


def _map(value, arg, path):
    (kt, ka), (vt, va) = _elem(arg[0]), _elem(arg[1])
    if isinstance(value, dict):
        pairs = list(value.items())
        from_text = True
    elif isinstance(value, list) and all(isinstance(p, list) and len(p) == 2 for p in value):
        pairs = [tuple(p) for p in value]
        from_text = False
    else:
        raise JsonThriftError(path, f"expected an object (or [key, value] pairs), "
                                    f"got {_show(value)}")
    out = {}
    for k, v in pairs:
        where = f"{path}[{json.dumps(k)}]"
        if from_text and kt in _RANGES and not _is_enum(kt, ka):
            try:
                k = int(k)
            except ValueError:
                raise JsonThriftError(where, f"expected an integer key, got {_show(k)}") from None
        elif from_text and kt == TType.DOUBLE:
            try:
                k = float(k)
            except ValueError:
                raise JsonThriftError(where, f"expected a number key, got {_show(k)}") from None
        elif from_text and kt == TType.BOOL:
            if k not in ("true", "false"):
                raise JsonThriftError(where, f"expected a true/false key, got {_show(k)}")
            k = k == "true"
        key = from_json(k, kt, ka, where)
        try:
            out[key] = from_json(v, vt, va, where)
        except TypeError:
            raise JsonThriftError(where, "this key type cannot be a map key here") from None
    return out


# -- Thrift to JSON ------------------------------------------------------------------------------


def to_json(value, ttype, arg=None):
    """A thriftpy2 value of type ``(ttype, arg)`` as a JSON-ready value."""
    if value is None:
        return None
    if _is_enum(ttype, arg):
        return arg._VALUES_TO_NAMES.get(value, value)
    if ttype == TType.BINARY or (ttype == TType.STRING and isinstance(value, bytes)):
        return base64.b64encode(value).decode("ascii")
    if ttype == TType.STRUCT:
        return struct_to_json(value)
    if ttype in (TType.LIST, TType.SET):
        et, ea = _elem(arg)
        items = [to_json(v, et, ea) for v in value]
        if ttype == TType.SET:
            try:
                items.sort()
            except TypeError:
                pass
        return items
    if ttype == TType.MAP:
        (kt, ka), (vt, va) = _elem(arg[0]), _elem(arg[1])
        keys_are_text = kt in (TType.STRING, TType.BOOL, TType.DOUBLE) or kt in _RANGES
        if keys_are_text:
            return {_key_text(to_json(k, kt, ka)): to_json(v, vt, va) for k, v in value.items()}
        return [[to_json(k, kt, ka), to_json(v, vt, va)] for k, v in value.items()]
    return value


def _key_text(key):
    if isinstance(key, bool):
        return "true" if key else "false"
    return key if isinstance(key, str) else json.dumps(key)


def struct_to_json(obj):
    out = {}
    for _, entry in sorted(type(obj).thrift_spec.items()):
        value = getattr(obj, entry[1], None)
        if value is not None:
            ttype, arg = field_type(entry)
            out[entry[1]] = to_json(value, ttype, arg)
    return out


def result_to_json(plan, value):
    """The JSON form of a method's return value (``None`` for void)."""
    spec = plan.result_class.thrift_spec.get(0)
    if spec is None:
        return None
    ttype, arg = field_type(spec)
    return to_json(value, ttype, arg)


def exception_to_json(error):
    """``{"exception": TypeName, "fields": {...}}`` for an exception declared in the IDL."""
    return {"exception": type(error).__name__, "fields": struct_to_json(error)}
