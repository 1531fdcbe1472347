"""Whole-message validation in front of thriftpy2's Cython binary decoder.

thriftpy2's cybin decodes (and skips) a whole struct in one C call, so nothing can step in while
it runs. Its skip loop reads nothing per element of a type that takes no bytes (0, 1, 5, 7, 9,
16, 17, ...): a 25-byte message declaring a list of 2**31 such elements holds the event loop for
seconds, and ``max_frame_bytes`` never triggers because no byte is read. ``BinaryGuard`` sits
between the socket adapter and ``TCyBufferedTransport``: it reads one whole message off the
socket, walks its structure (types, counts and lengths only, no values), and hands the decoder
nothing but messages that passed. The walk refuses, as ``BadMessage``:

- a container of a type that is not a Thrift type, or of one that takes no bytes, that is not empty;
- a count or length below 0, or whose elements cannot fit in the bytes left of the message
  budget (``max_bytes`` less what the message already took), checked before looping;
- nesting deeper than cybin's own limit (64), a message without a strict version header.

cybin consumes exactly the bytes the walk does (binary is self-describing and cybin skips by
wire type on any mismatch), so it never reads past a validated message. Large messages are
gathered into one buffer (linear, unlike the decoder's own growth) and handed over in one piece;
the socket adapter yields to the hub while they arrive.
"""

import struct

from thriftpy2.protocol.exc import TProtocolException
from thriftpy2.transport import TTransportException

MAX_DEPTH = 64  # cybin's DEFAULT_MAX_DEPTH: the args struct is level 1
_I32 = struct.Struct(">i")
_VERSION_MASK = 0xFFFF0000
_VERSION_1 = 0x80010000
# Bytes a value of each wire type takes (fixed) or at least takes (the rest).
FIXED = {2: 1, 3: 1, 4: 8, 6: 2, 8: 4, 10: 8}
MINIMUM = {**FIXED, 11: 4, 18: 4, 12: 1, 13: 6, 14: 5, 15: 5}


class BadMessage(TProtocolException):
    """A message refused before decoding; the connection is closed."""

    def __init__(self, message):
        super().__init__(TProtocolException.INVALID_DATA, message)


class FrameTooLarge(TTransportException):
    """A message is larger than ``max_frame_bytes``."""


class BinaryGuard:
    """The transport under ``TCyBufferedTransport`` for binary: ``read(n)`` returns bytes of
    validated messages only. Called by the connection's greenlet (through the decoder); raises
    ``BadMessage``, ``FrameTooLarge`` or ``TTransportException`` (end of file inside a message);
    returns ``b""`` at a clean end of stream. Writes pass straight to ``io``."""

    __slots__ = ("_buf", "_end", "_io", "_limit", "_out", "_start", "flush", "max_bytes",
                 "write")

    def __init__(self, io, max_bytes):
        self._io = io
        self._buf = bytearray()  # received, not yet handed out from _out on
        self._start = 0  # where the message being validated begins
        self._out = 0  # next byte to hand out
        self._end = 0  # end of the validated bytes (_out <= _end)
        self._limit = max_bytes  # where the message being validated must end by
        self.max_bytes = max_bytes
        self.write = io.write
        self.flush = io.flush

    def read(self, n):
        out = self._out
        if out == self._end:
            if not self._next():
                return b""
            out = self._out
        buf = self._buf
        end = min(self._end, out + n)
        self._out = end
        if out == 0 and end == len(buf):
            return bytes(buf)
        return bytes(memoryview(buf)[out:end])

    def _next(self):
        """Validate the next message into ``_buf[_out:_end]``; False at a clean end of stream."""
        buf = self._buf
        start = self._end
        if start == len(buf):
            buf.clear()
            start = 0
        elif start >= 65536:  # pipelined messages: drop what was handed out, now and then
            del buf[:start]
            start = 0
        self._out = self._end = self._start = start
        if start == len(buf):
            chunk = self._io.read(65536)
            if not chunk:
                return False
            buf += chunk
        self._limit = start + self.max_bytes
        self._end = self._message(start)
        return True

    def _fill(self, end):
        """Receive until ``_buf`` holds ``end`` bytes (refusing a message over the budget)."""
        if end > self._limit:
            raise FrameTooLarge(TTransportException.UNKNOWN,
                                f"message larger than {self.max_bytes} bytes")
        buf, read = self._buf, self._io.read
        while len(buf) < end:
            chunk = read(max(65536, end - len(buf)))
            if not chunk:
                raise TTransportException(TTransportException.END_OF_FILE,
                                          "connection closed inside a message")
            buf += chunk

    def _message(self, pos):
        buf = self._buf
        if pos + 8 > len(buf):
            self._fill(pos + 8)
        (version,) = _I32.unpack_from(buf, pos)
        if version & _VERSION_MASK != _VERSION_1:
            raise BadMessage("no binary protocol version 1 header")
        (size,) = _I32.unpack_from(buf, pos + 4)
        if size < 0:
            raise BadMessage(f"method name of {size} bytes")
        pos += 8 + size + 4
        if pos > len(buf):
            self._fill(pos)
        return self._struct(pos, MAX_DEPTH)

    def _struct(self, pos, depth):
        if depth <= 0:
            raise BadMessage(f"nesting deeper than {MAX_DEPTH} levels")
        buf = self._buf
        depth -= 1
        while True:
            if pos >= len(buf):
                self._fill(pos + 1)
            ttype = buf[pos]
            if ttype == 0:
                return pos + 1
            size = FIXED.get(ttype)
            if size is not None:  # the common cases inline: a fixed-size field, a string
                pos += 3 + size
                if pos > len(buf):
                    self._fill(pos)
            elif ttype == 11:
                if pos + 7 > len(buf):
                    self._fill(pos + 7)
                (size,) = _I32.unpack_from(buf, pos + 3)
                if size < 0:
                    raise BadMessage(f"string of {size} bytes")
                pos += 7 + size
                if pos > len(buf):
                    self._fill(pos)
            else:
                pos = self._value(ttype, pos + 3, depth)

    def _value(self, ttype, pos, depth):
        buf = self._buf
        size = FIXED.get(ttype)
        if size is not None:
            pos += size
            if pos > len(buf):
                self._fill(pos)
            return pos
        if ttype == 11 or ttype == 18:
            if pos + 4 > len(buf):
                self._fill(pos + 4)
            (size,) = _I32.unpack_from(buf, pos)
            if size < 0:
                raise BadMessage(f"string of {size} bytes")
            pos += 4 + size
            if pos > len(buf):
                self._fill(pos)
            return pos
        if ttype == 12:
            return self._struct(pos, depth)
        if ttype == 15 or ttype == 14:
            if depth <= 0:
                raise BadMessage(f"nesting deeper than {MAX_DEPTH} levels")
            if pos + 5 > len(buf):
                self._fill(pos + 5)
            etype = buf[pos]
            (count,) = _I32.unpack_from(buf, pos + 1)
            pos += 5
            if count == 0:
                return pos
            self._check(count, MINIMUM.get(etype), pos, etype)
            size = FIXED.get(etype)
            if size is not None:
                pos += count * size
                if pos > len(buf):
                    self._fill(pos)
                return pos
            depth -= 1
            for _ in range(count):
                pos = self._value(etype, pos, depth)
            return pos
        if ttype == 13:
            if depth <= 0:
                raise BadMessage(f"nesting deeper than {MAX_DEPTH} levels")
            if pos + 6 > len(buf):
                self._fill(pos + 6)
            ktype, vtype = buf[pos], buf[pos + 1]
            (count,) = _I32.unpack_from(buf, pos + 2)
            pos += 6
            if count == 0:
                return pos
            kmin, vmin = MINIMUM.get(ktype), MINIMUM.get(vtype)
            self._check(count, None if kmin is None or vmin is None else kmin + vmin, pos,
                        (ktype, vtype))
            ksize, vsize = FIXED.get(ktype), FIXED.get(vtype)
            if ksize is not None and vsize is not None:
                pos += count * (ksize + vsize)
                if pos > len(buf):
                    self._fill(pos)
                return pos
            depth -= 1
            value = self._value
            for _ in range(count):
                pos = value(vtype, value(ktype, pos, depth), depth)
            return pos
        raise BadMessage(f"field of unknown type {ttype}")

    def _check(self, count, minimum, pos, etype):
        """Refuse a container before looping over it: ``minimum`` is its elements' least size
        (None for a type that is not one, or takes no bytes)."""
        if minimum is None:
            raise BadMessage(f"container of {count} element(s) of type {etype}")
        if count < 0:
            raise BadMessage(f"container of {count} elements")
        left = self._limit - pos
        if count * minimum > left:
            raise BadMessage(f"container of {count} element(s) cannot fit in the {left} "
                             "bytes left of the message")
