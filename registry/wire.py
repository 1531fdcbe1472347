"""Decoding the two etcd responses discovery reads, without the protobuf runtime.

python-etcd3 0.12 needs the pure-Python protobuf backend (see ``registry.etcd``), which takes
about 35 ms to decode a Range response of 1,000 instances. Discovery only needs a handful of
fields of ``RangeResponse`` and ``WatchResponse`` (etcd's ``rpc.proto``/``kv.proto``), so it
reads them straight from the protobuf wire format here. Requests are still encoded by etcd3's
generated classes; only these two responses take this path.
"""

from dataclasses import dataclass, field

# Protobuf wire types.
_VARINT, _I64, _LEN, _I32 = 0, 1, 2, 5

PUT, DELETE = 0, 1  # mvccpb.Event.EventType


@dataclass(slots=True)
class KeyValue:
    key: bytes = b""
    create_revision: int = 0
    mod_revision: int = 0
    version: int = 0
    value: bytes = b""
    lease: int = 0


@dataclass(slots=True)
class Header:
    revision: int = 0


@dataclass(slots=True)
class RangeResponse:
    header: Header = field(default_factory=Header)
    kvs: list = field(default_factory=list)


@dataclass(slots=True)
class Event:
    type: int = PUT
    kv: KeyValue = field(default_factory=KeyValue)
    prev_kv: KeyValue | None = None
    PUT = PUT
    DELETE = DELETE


@dataclass(slots=True)
class WatchResponse:
    header: Header = field(default_factory=Header)
    watch_id: int = 0
    created: bool = False
    canceled: bool = False
    compact_revision: int = 0
    cancel_reason: str = ""
    events: list = field(default_factory=list)


def _varint(data, pos):
    result = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7


def _fields(data):
    """Yield ``(field_number, value)``: ints for varints, memoryview slices for bytes."""
    pos, end = 0, len(data)
    while pos < end:
        tag, pos = _varint(data, pos)
        number, kind = tag >> 3, tag & 7
        if kind == _VARINT:
            value, pos = _varint(data, pos)
        elif kind == _LEN:
            size, pos = _varint(data, pos)
            value = data[pos : pos + size]
            pos += size
        elif kind == _I64:
            value, pos = data[pos : pos + 8], pos + 8
        elif kind == _I32:
            value, pos = data[pos : pos + 4], pos + 4
        else:
            raise ValueError(f"unsupported protobuf wire type {kind}")
        yield number, value


def _signed(value):
    return value - (1 << 64) if value >= 1 << 63 else value


def _text(value):
    return bytes(value).decode("utf-8", "replace")


def _decode(message, layout, data):
    """Fill ``message`` from ``data``: field number -> (attribute, convert, repeated)."""
    for number, value in _fields(data):
        spec = layout.get(number)
        if spec is None:
            continue
        name, convert, repeated = spec
        if repeated:
            getattr(message, name).append(convert(value))
        else:
            setattr(message, name, convert(value))
    return message


_HEADER = {3: ("revision", _signed, False)}
_KEY_VALUE = {
    1: ("key", bytes, False),
    2: ("create_revision", _signed, False),
    3: ("mod_revision", _signed, False),
    4: ("version", _signed, False),
    5: ("value", bytes, False),
    6: ("lease", _signed, False),
}


def _header(data):
    return _decode(Header(), _HEADER, data)


def _key_value(data):
    return _decode(KeyValue(), _KEY_VALUE, data)


def _event(data):
    return _decode(Event(), _EVENT, data)


_EVENT = {1: ("type", int, False), 2: ("kv", _key_value, False), 3: ("prev_kv", _key_value, False)}
_RANGE_RESPONSE = {1: ("header", _header, False), 2: ("kvs", _key_value, True)}
_WATCH_RESPONSE = {
    1: ("header", _header, False),
    2: ("watch_id", _signed, False),
    3: ("created", bool, False),
    4: ("canceled", bool, False),
    5: ("compact_revision", _signed, False),
    6: ("cancel_reason", _text, False),
    11: ("events", _event, True),
}


def decode_range_response(raw):
    """``etcdserverpb.RangeResponse``: header.revision and kvs."""
    return _decode(RangeResponse(), _RANGE_RESPONSE, memoryview(raw))


def decode_watch_response(raw):
    """``etcdserverpb.WatchResponse``: header, ids, created/canceled, compaction, events."""
    return _decode(WatchResponse(), _WATCH_RESPONSE, memoryview(raw))
