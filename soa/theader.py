"""THeader framing: the call metadata every soa process speaks (registry/SCHEMA.md).

A frame is ``length u32 | 0x0FFF u16 | flags u16 | seqid u32 | header_words u16 | header |
payload``. The header holds a varint protocol id, a varint transform count (always 0 here), and
key-value info blocks, padded with zeros to a multiple of 4 bytes. This module encodes and decodes
the part between the length and the payload; the server's and the client's socket adapters do
the reading and writing. Every count and length is checked against the bytes that remain before
anything is read, so a decoder's work is bounded by the bytes it was given.
"""

import struct

MAGIC = 0x0FFF
LENGTH = struct.Struct(">I")
HEAD = struct.Struct(">IHHIH")  # length, magic, flags, seqid, header words: a frame's first 14
HEAD_SIZE = HEAD.size
FIXED_SIZE = HEAD_SIZE - LENGTH.size  # what the length counts before the header block: 10
PROTOCOL_IDS = {"binary": 0, "compact": 2}
PROTOCOL_NAMES = {v: k for k, v in PROTOCOL_IDS.items()}
INFO_PADDING = 0
INFO_KEYVALUE = 1
MAX_HEADER_BYTES = 65536 * 4
READ_AHEAD = 4096  # what a reader asks the socket for at the least
MAX_READ = 65536  # and at the most

# The keys of registry/SCHEMA.md's "Call metadata" tables.
DEADLINE = "soa-deadline-ms"
SERVICE = "soa-service"
INSTANCE = "soa-instance"
CALLER = "soa-caller"
TRACE_ID = "soa-trace-id"
ERROR = "soa-error"
LATE = "late"
WRONG_TARGET = "wrong-target"


class HeaderError(ValueError):
    """A THeader frame that breaks the format. The connection it came on cannot be trusted."""


def is_header_start(first6):
    """Whether a connection's first six bytes open a THeader frame (not plain Thrift)."""
    return (len(first6) >= 6 and first6[0] == 0 and first6[4] == 0x0F and first6[5] == 0xFF)


def read_size(missing):
    """What a frame reader (the server's or the client's) asks the socket for when ``missing``
    more bytes are needed: at least ``READ_AHEAD`` (frames pipelined come several to a read),
    at most ``MAX_READ``. Not ``MAX_READ`` every time: a 64 KiB recv for each small frame
    measured ~10 us more server CPU per call in a process that sleeps between calls."""
    return min(MAX_READ, max(READ_AHEAD, missing))


def varint(n):
    """Unsigned LEB128."""
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _string(text):
    data = text.encode("utf-8")
    return varint(len(data)) + data


def encode_pairs(pairs):
    """The wire form of ``(key, value)`` string pairs, for ``header_block``'s ``encoded``."""
    return b"".join(_string(k) + _string(v) for k, v in pairs)


def header_block(protocol_id, count, encoded):
    """The header for ``count`` pairs already encoded (``encode_pairs``), padded to 4 bytes."""
    if count:
        block = bytes((protocol_id, 0, INFO_KEYVALUE)) + varint(count) + encoded
    else:
        block = bytes((protocol_id, 0))
    pad = -len(block) % 4
    return block + b"\0" * pad if pad else block


def frame_prefix(seqid, block, payload_size):
    """``length`` and the fixed fields for a frame with header ``block`` and a payload."""
    return HEAD.pack(FIXED_SIZE + len(block) + payload_size, MAGIC, 0, seqid & 0xFFFFFFFF,
                     len(block) // 4) + block


def _read_varint(data, pos, end):
    shift = 0
    value = 0
    while True:
        if pos >= end:
            raise HeaderError("header ends inside a varint")
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7
        if shift > 35:
            raise HeaderError("varint longer than 5 bytes")


def parse_block(data):
    """``(protocol_id, headers)`` from a header block; ``HeaderError`` on anything malformed.

    Written for the common case, where every varint is one byte: that path reads each length
    and slices with no function call; longer varints go through ``_read_varint``.
    """
    data = bytes(data)
    end = len(data)
    if end < 2:
        raise HeaderError("a header block too short for its protocol id")
    protocol_id, transforms = data[0], data[1]
    pos = 2
    if protocol_id >= 0x80 or transforms >= 0x80:
        protocol_id, pos = _read_varint(data, 0, end)
        transforms, pos = _read_varint(data, pos, end)
    if protocol_id not in PROTOCOL_NAMES:
        raise HeaderError(f"unsupported protocol id {protocol_id}")
    if transforms:
        raise HeaderError(f"{transforms} transform(s) requested; none are supported")
    headers = {}
    try:
        while pos < end:
            info = data[pos]
            pos += 1
            if info == INFO_PADDING:
                break
            if info != INFO_KEYVALUE:
                raise HeaderError(f"unknown info block {info}")
            count = data[pos]
            pos += 1
            if count >= 0x80:
                count, pos = _read_varint(data, pos - 1, end)
            if count * 2 > end - pos:  # every string takes at least its length byte
                raise HeaderError(f"{count} headers cannot fit in {end - pos} bytes")
            for _ in range(count):
                size = data[pos]
                pos += 1
                if size >= 0x80:
                    size, pos = _read_varint(data, pos - 1, end)
                stop = pos + size
                if stop > end:
                    raise HeaderError(f"a header key of {size} bytes overruns the header")
                key = data[pos:stop].decode()
                size = data[stop]
                pos = stop + 1
                if size >= 0x80:
                    size, pos = _read_varint(data, pos - 1, end)
                stop = pos + size
                if stop > end:
                    raise HeaderError(f"a header value of {size} bytes overruns the header")
                headers[key] = data[pos:stop].decode()
                pos = stop
    except IndexError as e:
        raise HeaderError("the header block ends inside an info block") from e
    except UnicodeDecodeError as e:
        raise HeaderError("a header string is not UTF-8") from e
    return protocol_id, headers
