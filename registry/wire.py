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


def _header(data):
    header = Header()
    for number, value in _fields(data):
        if number == 3:
            header.revision = _signed(value)
    return header


def _key_value(data):
    kv = KeyValue()
    for number, value in _fields(data):
        if number == 1:
            kv.key = bytes(value)
        elif number == 2:
            kv.create_revision = _signed(value)
        elif number == 3:
            kv.mod_revision = _signed(value)
        elif number == 4:
            kv.version = _signed(value)
        elif number == 5:
            kv.value = bytes(value)
        elif number == 6:
            kv.lease = _signed(value)
    return kv


def decode_range_response(raw):
    """``etcdserverpb.RangeResponse``: header.revision and kvs."""
    data = memoryview(raw)
    response = RangeResponse()
    for number, value in _fields(data):
        if number == 1:
            response.header = _header(value)
        elif number == 2:
            response.kvs.append(_key_value(value))
    return response


def _event(data):
    event = Event()
    for number, value in _fields(data):
        if number == 1:
            event.type = value
        elif number == 2:
            event.kv = _key_value(value)
        elif number == 3:
            event.prev_kv = _key_value(value)
    return event


def decode_watch_response(raw):
    """``etcdserverpb.WatchResponse``: header, ids, created/canceled, compaction, events."""
    data = memoryview(raw)
    response = WatchResponse()
    for number, value in _fields(data):
        if number == 1:
            response.header = _header(value)
        elif number == 2:
            response.watch_id = _signed(value)
        elif number == 3:
            response.created = bool(value)
        elif number == 4:
            response.canceled = bool(value)
        elif number == 5:
            response.compact_revision = _signed(value)
        elif number == 6:
            response.cancel_reason = bytes(value).decode("utf-8", "replace")
        elif number == 11:
            response.events.append(_event(value))
    return response
