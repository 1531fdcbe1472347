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
))
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


def parse_instance(value, key=None, prefix=None):
    """Parse a registry value (bytes or str). Raises ``InvalidInstance`` with a vectors reason.

    With ``key`` and ``prefix``, the key's service and address must match the value's.
    """
    if isinstance(value, (bytes, bytearray)):
        try:
            value = bytes(value).decode("utf-8")
        except UnicodeDecodeError as e:
            raise InvalidInstance("not_utf8", str(e)) from e
    try:
        data = json.loads(value)
    except ValueError as e:
        raise InvalidInstance("not_json", str(e)) from e
    if not isinstance(data, dict):
        raise InvalidInstance("not_object", f"expected a JSON object, got {type(data).__name__}")
    service = _required(data, "service", str)
    if not SERVICE_NAME.fullmatch(service):
        raise InvalidInstance("bad_value", f"service: not a service name: {service!r}")
    host = _required(data, "host", str)
    if not host or not _BAD_HOST_CHARS.isdisjoint(host):
        raise InvalidInstance("bad_value", f"host: not a host: {host!r}")
    port = _required(data, "port", int)
    if not 0 < port < 65536:
        raise InvalidInstance("bad_value", f"port: out of range: {port}")
    weight = _optional(data, "weight", int, 100)
    if weight < 0:
        raise InvalidInstance("bad_value", f"weight: negative: {weight}")
    protocol = _optional(data, "protocol", str, "binary")
    if protocol not in PROTOCOLS:
        raise InvalidInstance("bad_value", f"protocol: unknown: {protocol!r}")
    transport = _optional(data, "transport", str, "buffered")
    if transport not in TRANSPORTS:
        raise InvalidInstance("bad_value", f"transport: unknown: {transport!r}")
    tags = _optional(data, "tags", dict, {})
    if not all(isinstance(v, str) for v in tags.values()):
        raise InvalidInstance("bad_type", "tags: values must be strings")
    instance = Instance(
        service=service,
        host=host,
        port=port,
        weight=weight,
        protocol=protocol,
        transport=transport,
        version=_optional(data, "version", str, ""),
        idl_hash=_optional(data, "idl_hash", str, ""),
        tags=MappingProxyType(dict(tags)) if tags else _EMPTY,
        pid=_optional(data, "pid", int, 0),
        started_at=float(_optional(data, "started_at", (int, float), 0.0)),
        extra=_EMPTY if data.keys() <= KNOWN_FIELDS else MappingProxyType(
            {k: v for k, v in data.items() if k not in KNOWN_FIELDS}
        ),
    )
    if key is not None and prefix is not None:
        key = key.decode() if isinstance(key, bytes) else key
        if key != instance_key(prefix, instance):
            raise InvalidInstance(
                "key_mismatch", f"key {key} does not match {instance_key(prefix, instance)}"
            )
    return instance


def _required(data, name, kind):
    if name not in data:
        raise InvalidInstance("missing_field", f"{name}: required")
    return _typed(data, name, kind)


def _optional(data, name, kind, default):
    if data.get(name) is None:
        return default
    return _typed(data, name, kind)


def _typed(data, name, kind):
    value = data[name]
    if isinstance(value, bool) or not isinstance(value, kind):
        expected = kind.__name__ if isinstance(kind, type) else "number"
        raise InvalidInstance("bad_type", f"{name}: expected {expected}, got {json.dumps(value)}")
    return value
