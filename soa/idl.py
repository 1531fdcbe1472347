"""Loading Thrift IDL with thriftpy2, and fingerprinting a service's wire contract.

``idl_hash`` depends only on what travels on the wire (method names, field ids, types,
requiredness, enum values, exception shapes), so reformatting or re-commenting an IDL file never
changes it, while any wire change does.
"""

import hashlib
import os
import re
import threading
from pathlib import Path

import thriftpy2
from thriftpy2.parser import parser as _thriftpy2_parser
from thriftpy2.thrift import TType

from .errors import IdlError

_cache = {}
_lock = threading.Lock()


def load(path, include_dirs=None):
    """Load an IDL file as a thriftpy2 module; cached per (path, mtime).

    Raises ``IdlError`` whose text names the file, the line when the parser reports one, and why.
    """
    path = Path(path).resolve()
    try:
        stamp = path.stat().st_mtime_ns
    except OSError as e:
        raise IdlError(f"cannot read IDL: {e.strerror}", source=str(path)) from e
    key = (str(path), stamp)
    with _lock:
        module = _cache.get(key)
        if module is None:
            if any(cached_path == key[0] for cached_path, _ in _cache):
                # The file changed since we loaded it. thriftpy2 keeps its own process-wide
                # cache keyed by module name (includes too), which would hand back the old one.
                _thriftpy2_parser._thrift_cache.clear()
            module = _parse(path, include_dirs)
            _cache[key] = module
    return module


def _parse(path, include_dirs):
    dirs = [str(path.parent)] + [os.fspath(d) for d in include_dirs or ()]
    try:
        return thriftpy2.load(str(path), include_dirs=dirs)
    except Exception as e:  # the parser raises several unrelated types; all mean "bad IDL"
        message = str(e).splitlines()[0] if str(e) else type(e).__name__
        m = re.search(r"line (\d+)", message)
        where = f"{path}:{m.group(1)}" if m else str(path)
        raise IdlError(message, source=where) from e


def service_names(module):
    """Names of the services defined in the module itself (not its includes)."""
    return sorted(
        name
        for name, value in vars(module).items()
        if isinstance(value, type) and hasattr(value, "thrift_services")
    )


def find_service(module, name):
    """The thriftpy2 service class called ``name``, or None."""
    value = getattr(module, name, None)
    if isinstance(value, type) and hasattr(value, "thrift_services"):
        return value
    return None


def methods(service):
    """The method names of a service, including inherited ones, in declaration order."""
    return list(service.thrift_services)


def idl_hash(service):
    """A stable fingerprint of the service's wire contract: ``sha256:`` plus 16 hex digits."""
    lines = []
    seen = set()
    for method in sorted(methods(service)):
        args = getattr(service, f"{method}_args")
        result = getattr(service, f"{method}_result", None)
        oneway = result is None
        lines.append(f"method {method} oneway={oneway}")
        lines.append("  args " + _spec(args.thrift_spec, seen, lines))
        if result is not None:
            lines.append("  result " + _spec(result.thrift_spec, seen, lines))
    digest = hashlib.sha256("\n".join(lines).encode()).hexdigest()
    return "sha256:" + digest[:16]


def _spec(spec, seen, out):
    fields = []
    for fid in sorted(spec):
        entry = spec[fid]
        ttype, name = entry[0], entry[1]
        required = entry[-1] if isinstance(entry[-1], bool) else False
        type_args = entry[2] if len(entry) == 4 else None
        fields.append(
            f"{fid}:{name}:{_type(ttype, type_args, seen, out)}:{'req' if required else 'opt'}"
        )
    return "{" + ",".join(fields) + "}"


def _type(ttype, args, seen, out):
    if ttype in (TType.STRUCT,):
        return _struct(args, seen, out)
    if ttype == TType.I32 and isinstance(args, type) and hasattr(args, "_VALUES_TO_NAMES"):
        values = sorted(args._VALUES_TO_NAMES.items())
        return "enum<" + ",".join(f"{n}={v}" for v, n in values) + ">"
    if ttype == TType.LIST or ttype == TType.SET:
        kind = "list" if ttype == TType.LIST else "set"
        return f"{kind}<{_elem(args, seen, out)}>"
    if ttype == TType.MAP:
        k, v = args
        return f"map<{_elem(k, seen, out)},{_elem(v, seen, out)}>"
    return str(ttype)


def _elem(arg, seen, out):
    if isinstance(arg, tuple):
        return _type(arg[0], arg[1], seen, out)
    return _type(arg, None, seen, out)


def _struct(cls, seen, out):
    name = cls.__name__
    if name not in seen:
        seen.add(name)
        kind = "exception" if issubclass(cls, Exception) else "struct"
        out.append(f"{kind} {name} " + _spec(cls.thrift_spec, seen, out))
    return name
