"""Reading untrusted mappings (YAML, JSON) with one clear error per bad value.

A ``Fields`` wraps one mapping and knows where it came from (file and key path), so every
complaint names both: ``soa.yaml: services.greeter.port: expected an integer 1-65535, got "abc"``.
"""

import json

from .errors import ConfigError

_MISSING = object()


def show(value):
    """Render a bad value the way the user wrote it."""
    try:
        return json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)


class Fields:
    """Typed, path-aware access to one mapping. Call ``done()`` to reject unknown keys."""

    def __init__(self, data, source, path="", error=ConfigError):
        self.source = source
        self.path = path
        self.error = error
        if data is None:
            data = {}
        if not isinstance(data, dict):
            raise self.fail(path, f"expected a mapping, got {show(data)}")
        self.data = data
        self.seen = set()

    def key(self, name):
        return f"{self.path}.{name}" if self.path else str(name)

    def fail(self, path, message):
        return self.error(message, source=self.source, path=path or None)

    def raw(self, name, default=_MISSING):
        self.seen.add(name)
        if name in self.data and self.data[name] is not None:
            return self.data[name]
        if default is _MISSING:
            raise self.fail(self.key(name), "is required")
        return default

    def sub(self, name):
        return Fields(self.raw(name, {}), self.source, self.key(name), self.error)

    def str(self, name, default=_MISSING):
        value = self.raw(name, default)
        if value is default:
            return value
        if not isinstance(value, str) or not value:
            raise self.fail(self.key(name), f"expected a non-empty string, got {show(value)}")
        return value

    def secret(self, name, default=_MISSING):
        """A string whose value never appears in an error (passwords)."""
        value = self.raw(name, default)
        if value is default:
            return value
        if not isinstance(value, str) or not value:
            kind = "an empty string" if value == "" else f"a YAML {type(value).__name__}"
            raise self.fail(self.key(name), f"expected a non-empty string (quote it), got {kind}")
        return value

    def int(self, name, default=_MISSING, lo=None, hi=None):
        value = self.raw(name, default)
        if value is default:
            return value
        ok = isinstance(value, int) and not isinstance(value, bool)
        ok = ok and (lo is None or value >= lo) and (hi is None or value <= hi)
        if not ok:
            raise self.fail(
                self.key(name), f"expected an integer{_range(lo, hi)}, got {show(value)}"
            )
        return value

    def number(self, name, default=_MISSING, lo=None, hi=None):
        value = self.raw(name, default)
        if value is default:
            return value
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        ok = ok and (lo is None or value >= lo) and (hi is None or value <= hi)
        if not ok:
            raise self.fail(self.key(name), f"expected a number{_range(lo, hi)}, got {show(value)}")
        return float(value)

    def bool(self, name, default=_MISSING):
        value = self.raw(name, default)
        if not isinstance(value, bool):
            raise self.fail(self.key(name), f"expected true or false, got {show(value)}")
        return value

    def choice(self, name, choices, default=_MISSING):
        value = self.raw(name, default)
        if value not in choices:
            allowed = " | ".join(choices)
            raise self.fail(self.key(name), f"expected one of {allowed}, got {show(value)}")
        return value

    def strings(self, name, default=()):
        value = self.raw(name, default)
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) and v for v in value):
            raise self.fail(self.key(name), f"expected a list of strings, got {show(value)}")
        return tuple(value)

    def labels(self, name):
        value = self.raw(name, {})
        if not isinstance(value, dict):
            raise self.fail(self.key(name), f"expected a mapping of strings, got {show(value)}")
        for k, v in value.items():
            if (
                not isinstance(k, str)
                or not isinstance(v, (str, int, float))
                or isinstance(v, bool)
            ):
                raise self.fail(f"{self.key(name)}.{k}", f"expected a string, got {show(v)}")
        return {k: str(v) for k, v in value.items()}

    def done(self):
        unknown = [k for k in self.data if k not in self.seen]
        if unknown:
            known = ", ".join(sorted(str(k) for k in self.seen)) or "none"
            raise self.fail(self.key(unknown[0]), f"unknown key (known keys: {known})")


def _range(lo, hi):
    if lo is not None and hi is not None:
        return f" {lo}-{hi}"
    if lo is not None:
        return f" >= {lo}"
    if hi is not None:
        return f" <= {hi}"
    return ""
