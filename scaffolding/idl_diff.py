"""``soa idl diff``: which changes between two versions of an IDL break the wire, and which don't.

Both versions are loaded with thriftpy2 and compared through their ``thrift_spec`` (of each
method's ``_args``/``_result`` and of every struct, exception and enum they reach), so only what
travels on the wire counts: field ids, wire types, requiredness, enum values, declared
exceptions. Names of fields and arguments don't travel; renaming one is listed as safe.

Breaking: a removed service, method, field or enum value; a changed field id or type; a field
made required, or a new required field; a changed oneway-ness; changed declared exceptions of a
method, or any change to an exception struct. Safe: new services, methods, optional fields and
enum values, and renames.
"""

import os
import re
import uuid
from dataclasses import asdict, dataclass
from pathlib import Path

from thriftpy2.parser.parser import parse
from thriftpy2.thrift import TType

from soa import idl as soa_idl
from soa.errors import IdlError

from .pytypes import fields, struct_paths

BREAKING = "breaking"
SAFE = "safe"

_WIRE = {
    TType.BOOL: "bool", TType.BYTE: "byte", TType.I16: "i16", TType.I32: "i32",
    TType.I64: "i64", TType.DOUBLE: "double", TType.STRING: "string", TType.BINARY: "binary",
}


@dataclass(frozen=True)
class Change:
    level: str  # BREAKING or SAFE
    where: str  # e.g. "OrderService.create_order", "struct shared.Money", "enum Color"
    what: str  # one line, for people

    def as_dict(self):
        return asdict(self)


def diff_files(old_path, new_path, include_dirs=None):
    """Load both IDL files (``IdlError`` if either fails) and return their ``diff``."""
    return diff(load_fresh(old_path, include_dirs), load_fresh(new_path, include_dirs))


def load_fresh(path, include_dirs=None):
    """Parse an IDL file and its includes anew, sharing nothing with earlier loads.

    thriftpy2 caches included files by their relative name (``common_thrift``), so the old and
    new versions of an included file would otherwise come back as the same module. A unique
    root module name gives the includes unique names too.
    """
    path = Path(path).resolve()
    if not path.is_file():
        raise IdlError("no such IDL file", source=str(path))
    stem = re.sub(r"\W", "_", path.stem)
    name = f"soa_idl_diff_{uuid.uuid4().hex}.{stem}_thrift"
    dirs = [str(path.parent)] + [os.fspath(d) for d in include_dirs or ()]
    try:
        return parse(str(path), module_name=name, include_dirs=dirs, enable_cache=False)
    except Exception as e:  # the parser raises several unrelated types; all mean "bad IDL"
        message = str(e).splitlines()[0] if str(e) else type(e).__name__
        m = re.search(r"line (\d+)", message)
        raise IdlError(message, source=f"{path}:{m.group(1)}" if m else str(path)) from e


def diff(old, new):
    """The list of ``Change`` from thriftpy2 module ``old`` to ``new``, breaking ones first."""
    changes = []
    old_types, new_types = _types(old), _types(new)
    for name in sorted(set(soa_idl.service_names(old)) | set(soa_idl.service_names(new))):
        a, b = soa_idl.find_service(old, name), soa_idl.find_service(new, name)
        if b is None:
            changes.append(Change(BREAKING, f"service {name}", "service removed"))
        elif a is None:
            changes.append(Change(SAFE, f"service {name}", "new service"))
        else:
            changes += _service(name, a, b, old_types, new_types)
    for name in sorted(set(old_types) | set(new_types)):
        a, b = old_types.get(name), new_types.get(name)
        if a is not None and b is not None:
            changes += _type_change(name, a, b, old_types, new_types)
        elif a is not None:
            changes.append(Change(BREAKING, f"{_kind(a)} {name}", "removed"))
        else:
            changes.append(Change(SAFE, f"{_kind(b)} {name}", "new type"))
    return sorted(changes, key=lambda c: c.level != BREAKING)


def _types(module):
    """{dotted name: class} of every struct, exception and enum reachable from the module."""
    return {path.split(".", 1)[1]: cls for cls, path in struct_paths(module, "_").items()}


def _kind(cls):
    if hasattr(cls, "_VALUES_TO_NAMES"):
        return "enum"
    return "exception" if issubclass(cls, Exception) else "struct"


def _service(name, a, b, old_types, new_types):
    out = []
    old_methods, new_methods = soa_idl.methods(a), soa_idl.methods(b)
    for method in old_methods:
        where = f"{name}.{method}"
        if method not in new_methods:
            out.append(Change(BREAKING, where, "method removed"))
            continue
        ra, rb = getattr(a, f"{method}_result"), getattr(b, f"{method}_result")
        if bool(getattr(ra, "oneway", False)) != bool(getattr(rb, "oneway", False)):
            out.append(Change(BREAKING, where, "oneway changed"))
        out += _fields(where, "argument", getattr(a, f"{method}_args").thrift_spec,
                       getattr(b, f"{method}_args").thrift_spec, old_types, new_types)
        out += _result(where, ra.thrift_spec, rb.thrift_spec, old_types, new_types)
    for method in new_methods:
        if method not in old_methods:
            out.append(Change(SAFE, f"{name}.{method}", "new method"))
    return out


def _result(where, a, b, old_types, new_types):
    out = []
    ta = _sig(a[0], old_types) if 0 in a else "void"
    tb = _sig(b[0], new_types) if 0 in b else "void"
    if ta != tb:
        out.append(Change(BREAKING, where, f"return type changed: {ta} -> {tb}"))
    throws_a = {fid: _sig(e, old_types) for fid, e in a.items() if fid != 0}
    throws_b = {fid: _sig(e, new_types) for fid, e in b.items() if fid != 0}
    if throws_a != throws_b:
        out.append(Change(BREAKING, where, "declared exceptions changed: "
                          f"({_throws(throws_a)}) -> ({_throws(throws_b)})"))
    return out


def _throws(throws):
    return ", ".join(f"{fid}: {sig}" for fid, sig in sorted(throws.items())) or "none"


def _fields(where, noun, a, b, old_types, new_types, strict=False):
    """Changes between two thrift_specs. ``strict``: every change breaks (exception structs)."""
    out = []
    fa = {fid: (name, _sig(a[fid], old_types), req) for fid, name, _, _, req in fields(a)}
    fb = {fid: (name, _sig(b[fid], new_types), req) for fid, name, _, _, req in fields(b)}
    ids_b = {name: fid for fid, (name, _, _) in fb.items()}
    ids_a = {name: fid for fid, (name, _, _) in fa.items()}
    moved = {name for name in ids_a if name in ids_b and ids_a[name] != ids_b[name]}
    for name in sorted(moved):
        out.append(Change(BREAKING, where,
                          f"{noun} {name}: id changed {ids_a[name]} -> {ids_b[name]}"))
    for fid, (name, sig, req) in sorted(fa.items()):
        if fid not in fb:
            if name not in moved:
                out.append(Change(BREAKING, where, f"{noun} {fid} ({name}) removed"))
            continue
        new_name, new_sig, new_req = fb[fid]
        label = f"{noun} {fid} ({name})"
        if sig != new_sig:
            out.append(Change(BREAKING, where, f"{label}: type changed {sig} -> {new_sig}"))
        if req != new_req:
            level = BREAKING if new_req or strict else SAFE
            change = "made required" if new_req else "no longer required"
            out.append(Change(level, where, f"{label}: {change}"))
        if name != new_name and new_name not in moved:
            level = BREAKING if strict else SAFE
            out.append(Change(level, where, f"{label}: renamed to {new_name}"))
    for fid, (name, sig, req) in sorted(fb.items()):
        if fid not in fa and name not in moved:
            level = BREAKING if req or strict else SAFE
            kind = "required" if req else "optional"
            out.append(Change(level, where, f"new {kind} {noun} {fid} ({name}: {sig})"))
    return out


def _type_change(name, a, b, old_types, new_types):
    kind_a, kind_b = _kind(a), _kind(b)
    where = f"{kind_a} {name}"
    if kind_a != kind_b:
        return [Change(BREAKING, where, f"changed from {kind_a} to {kind_b}")]
    if kind_a == "enum":
        return _enum(where, a, b)
    strict = kind_a == "exception"
    return _fields(where, "field", a.thrift_spec, b.thrift_spec, old_types, new_types, strict)


def _enum(where, a, b):
    out = []
    va, vb = a._NAMES_TO_VALUES, b._NAMES_TO_VALUES
    for label, value in sorted(va.items(), key=lambda kv: kv[1]):
        if label not in vb:
            out.append(Change(BREAKING, where, f"value {label} = {value} removed"))
        elif vb[label] != value:
            out.append(Change(BREAKING, where, f"value {label} changed {value} -> {vb[label]}"))
    for label, value in sorted(vb.items(), key=lambda kv: kv[1]):
        if label not in va:
            out.append(Change(SAFE, where, f"new value {label} = {value}"))
    return out


def _sig(entry, types):
    """The wire type of a thrift_spec entry, naming structs and enums by their dotted path."""
    type_args = entry[2] if len(entry) == 4 else None
    return _type(entry[0], type_args, types)


def _type(ttype, args, types):
    if ttype == TType.STRUCT or (ttype == TType.I32 and hasattr(args, "_VALUES_TO_NAMES")):
        names = {cls: name for name, cls in types.items()}
        return names.get(args, getattr(args, "__name__", "?"))
    if ttype in _WIRE:
        return _WIRE[ttype]
    if ttype in (TType.LIST, TType.SET):
        kind = "list" if ttype == TType.LIST else "set"
        return f"{kind}<{_elem(args, types)}>"
    if ttype == TType.MAP:
        return f"map<{_elem(args[0], types)},{_elem(args[1], types)}>"
    return f"ttype{ttype}"


def _elem(arg, types):
    if isinstance(arg, tuple):
        return _type(arg[0], arg[1], types)
    return _type(arg, None, types)
