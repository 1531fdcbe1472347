"""One registered instance: the registry value's schema, parsing and encoding (SCHEMA.md)."""

import json
import re
from dataclasses import dataclass, field
from types import MappingProxyType

PROTOCOLS = ("binary", "compact")
TRANSPORTS = ("buffered", "framed")
SERVICE_NAME = re.compile(r"[a-z][a-z0-9_-]*")
KNOWN_FIELDS = frozenset((
    "service",
    "host",
    "port",
    "weight",
    "protocol",
    "transport",
    "version",
    "idl_hash",
    "tags",
    "pid",
    "started_at",
    "id",
    "theader",
    "tls",
    "metrics_port",
))
INSTANCE_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
_BAD_HOST_CHARS = frozenset("/ \t[]")


_EMPTY = MappingProxyType({})


class InvalidInstance(ValueError):
    """A registry value that does not follow SCHEMA.md. ``reason`` is the vectors' error code."""

    def __init__(self, reason, message):
        self.reason = reason
        super().__init__(f"{reason}: {message}")


@dataclass(frozen=True)
class Instance:
    service: str
    host: str
    port: int
    weight: int = 100
    protocol: str = "binary"
    transport: str = "buffered"
    version: str = ""
    idl_hash: str = ""
    tags: MappingProxyType = field(default_factory=lambda: MappingProxyType({}))
    pid: int = 0
    started_at: float = 0.0
    id: str = ""
    theader: bool = False
    tls: bool = False
    metrics_port: int = 0
    extra: MappingProxyType = field(default_factory=lambda: MappingProxyType({}))

    def __hash__(self):
        return hash((self.service, self.host, self.port))

    @property
    def address(self):
        """``host:port``, with an IPv6 host in brackets."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"

    def to_dict(self):
        """The registry value as a plain dict: known fields first, unknown ones kept."""
        out = dict(self.extra)
        out.update(
            service=self.service,
            host=self.host,
            port=self.port,
            weight=self.weight,
            protocol=self.protocol,
            transport=self.transport,
            version=self.version,
            idl_hash=self.idl_hash,
            tags=dict(self.tags),
            pid=self.pid,
            started_at=self.started_at,
            id=self.id,
            theader=self.theader,
            tls=self.tls,
            metrics_port=self.metrics_port,
        )
        return out

    def encode(self):
        return json.dumps(self.to_dict(), sort_keys=True, separators=(",", ":")).encode()


def service_prefix(prefix, service=None):
    """``{prefix}/services/`` or ``{prefix}/services/{service}/``: the range a watch covers."""
    base = f"{prefix.rstrip('/')}/services/"
    return f"{base}{service}/" if service else base


def instance_key(prefix, instance):
    return f"{service_prefix(prefix, instance.service)}{instance.address}"


_REQUIRED = object()


def _is_service_name(value):
    return SERVICE_NAME.fullmatch(value) is not None


def _is_host(value):
    return bool(value) and _BAD_HOST_CHARS.isdisjoint(value)


def _string_values(value):
    return all(type(v) is str for v in value.values())


# SCHEMA.md's table, in its order: (name, accepted JSON types, default, value check, reason the
# check fails with). Fields are checked one at a time: missing, then type, then value.
_FIELDS = (
    ("service", (str,), _REQUIRED, _is_service_name, "bad_value"),
    ("host", (str,), _REQUIRED, _is_host, "bad_value"),
    ("port", (int,), _REQUIRED, lambda v: 0 < v < 65536, "bad_value"),
    ("weight", (int,), 100, lambda v: v >= 0, "bad_value"),
    ("protocol", (str,), "binary", PROTOCOLS.__contains__, "bad_value"),
    ("transport", (str,), "buffered", TRANSPORTS.__contains__, "bad_value"),
    ("version", (str,), "", None, None),
    ("idl_hash", (str,), "", None, None),
    ("tags", (dict,), _EMPTY, _string_values, "bad_type"),
    ("pid", (int,), 0, None, None),
    ("started_at", (int, float), 0.0, None, None),
    ("id", (str,), "", lambda v: v == "" or INSTANCE_ID.fullmatch(v) is not None, "bad_value"),
    ("theader", (bool,), False, None, None),
    ("tls", (bool,), False, None, None),
    ("metrics_port", (int,), 0, lambda v: 0 <= v < 65536, "bad_value"),
)


def _not_json_constant(name):
    """Python's json reads NaN, Infinity and -Infinity; JSON (and every other reader) does not."""
    raise ValueError(f"{name} is not JSON")


def parse_instance(value, key=None, prefix=None):
    """Parse a registry value (bytes or str). Raises ``InvalidInstance`` with a vectors reason.

    With ``key`` and ``prefix``, the key's service and address must match the value's.
    Discovery parses every value it sees, so this is written for speed: one pass over a table.
    """
    if isinstance(value, (bytes, bytearray)):
        try:
            value = bytes(value).decode("utf-8")
        except UnicodeDecodeError as e:
            raise InvalidInstance("not_utf8", str(e)) from e
    try:
        data = json.loads(value, parse_constant=_not_json_constant)
    except (ValueError, RecursionError) as e:  # nesting deeper than the parser's stack
        raise InvalidInstance("not_json", str(e) or type(e).__name__) from e
    if type(data) is not dict:
        raise InvalidInstance("not_object", f"expected a JSON object, got {type(data).__name__}")
    values = []
    for name, kinds, default, check, reason in _FIELDS:
        item = data.get(name)
        if item is None and (default is not _REQUIRED or name not in data):
            if default is _REQUIRED:
                raise InvalidInstance("missing_field", f"{name}: required")
            values.append(default)
            continue
        if type(item) not in kinds:
            expected = " or ".join(k.__name__ for k in kinds)
            got = json.dumps(item)
            raise InvalidInstance("bad_type", f"{name}: expected {expected}, got {got}")
        if check is not None and not check(item):
            raise InvalidInstance(reason, f"{name}: not allowed: {json.dumps(item)}")
        values.append(item)
    tags = values[8]
    values[8] = MappingProxyType(dict(tags)) if tags else _EMPTY
    values[10] = float(values[10])
    extra = _EMPTY
    if not data.keys() <= KNOWN_FIELDS:
        extra = MappingProxyType({k: v for k, v in data.items() if k not in KNOWN_FIELDS})
    instance = Instance(*values, extra)
    if key is not None and prefix is not None:
        key = key.decode() if isinstance(key, bytes) else key
        if key != instance_key(prefix, instance):
            raise InvalidInstance(
                "key_mismatch", f"key {key} does not match {instance_key(prefix, instance)}"
            )
    return instance
