"""Python views of thriftpy2 type specs: type hints and sample values for generated code.

A thriftpy2 ``thrift_spec`` entry is ``(ttype, name, required)`` or, for containers, structs and
enums, ``(ttype, name, type_args, required)``. Struct classes are named through the loaded module
the generated code holds (``module_name``), e.g. ``"hello_thrift.shared.Money"``, so the hint
points at the very class the server uses.
"""

import keyword
import types

from thriftpy2.thrift import TType

_SCALARS = {
    TType.STRING: ("str", '""'),
    TType.BINARY: ("bytes", 'b""'),
    TType.BOOL: ("bool", "False"),
    TType.BYTE: ("int", "0"),
    TType.I16: ("int", "0"),
    TType.I32: ("int", "0"),
    TType.I64: ("int", "0"),
    TType.DOUBLE: ("float", "0.0"),
}


def field_name(name):
    """A Python identifier for a Thrift field name (``from`` becomes ``from_``)."""
    return name + "_" if keyword.iskeyword(name) else name


def fields(spec):
    """``[(id, name, ttype, type_args, required)]`` of a thrift_spec, in field-id order."""
    out = []
    for fid in sorted(spec):
        entry = spec[fid]
        type_args = entry[2] if len(entry) == 4 else None
        out.append((fid, entry[1], entry[0], type_args, bool(entry[-1])))
    return out


def struct_paths(module, module_name):
    """Map each struct, exception and enum class reachable from ``module`` to its dotted path."""
    paths = {}
    queue = [(module, module_name)]
    seen = set()
    while queue:
        mod, prefix = queue.pop(0)
        if id(mod) in seen:
            continue
        seen.add(id(mod))
        for attr, value in vars(mod).items():
            if isinstance(value, types.ModuleType) and hasattr(value, "__thrift_file__"):
                queue.append((value, f"{prefix}.{attr}"))
            elif isinstance(value, type) and not hasattr(value, "thrift_services") and (
                hasattr(value, "thrift_spec") or hasattr(value, "_VALUES_TO_NAMES")
            ):
                paths.setdefault(value, f"{prefix}.{attr}")
    return paths


class TypeNamer:
    """Renders thriftpy2 types as Python type hints and as sample-value expressions."""

    def __init__(self, module, module_name):
        self.paths = struct_paths(module, module_name)

    def hint(self, ttype, type_args=None, quote=True):
        """The type hint, e.g. ``list[str]`` or ``"hello_thrift.User"`` (quoted when ``quote``)."""
        text = self._hint(ttype, type_args)
        if quote and "." in text:
            return f'"{text}"'
        return text

    def _hint(self, ttype, args):
        if ttype in _SCALARS:
            return _SCALARS[ttype][0]
        if ttype == TType.STRUCT:
            return self.paths.get(args, args.__name__)
        if ttype == TType.LIST:
            return f"list[{self._elem(args)}]"
        if ttype == TType.SET:
            return f"set[{self._elem(args)}]"
        if ttype == TType.MAP:
            return f"dict[{self._elem(args[0])}, {self._elem(args[1])}]"
        return "object"

    def _elem(self, arg):
        if isinstance(arg, tuple):
            return self._hint(arg[0], arg[1])
        return self._hint(arg, None)

    def sample(self, ttype, type_args=None, depth=0):
        """A Python expression building a small valid value of the type (required fields set)."""
        names = getattr(type_args, "_VALUES_TO_NAMES", None)
        if ttype == TType.I32 and names and type_args in self.paths:
            return f"{self.paths[type_args]}.{names[min(names)]}"
        if ttype in _SCALARS:
            return _SCALARS[ttype][1]
        if ttype == TType.LIST:
            return "[]"
        if ttype == TType.SET:
            return "set()"
        if ttype == TType.MAP:
            return "{}"
        if ttype == TType.STRUCT:
            path = self.paths.get(type_args, type_args.__name__)
            if depth > 4:
                return f"{path}()"
            required = [
                f"{name}={self.sample(t, a, depth + 1)}"
                for _, name, t, a, req in fields(type_args.thrift_spec)
                if req
            ]
            return f"{path}({', '.join(required)})"
        return "None"
