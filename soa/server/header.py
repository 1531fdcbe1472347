"""The server's THeader socket adapter: one THeader frame per message, its info kept for the
processor (``headers``), replies framed the same way (``soa.theader``, registry/SCHEMA.md).

Like ``FramedIO``, a frame's length is checked against ``max_frame_bytes`` before anything is
read for it, and the header block is decoded with every count bounded by its bytes. Because a
frame says how long its message is, the adapter takes each frame whole off the socket, validates
its payload whole (binary: ``FrameGuard``; compact counts are bounded as they are read) and
hands it to the decoder through one memory buffer, which the reply is then written into: no
Python runs between the decoder and the socket while a message is decoded or encoded.
``reply_headers`` (set by the processor, cleared by ``flush``) go on the next reply. A reply
written while the next frame is already buffered is held and sent with the next ones
(``_SocketIO.reply``); what is held leaves before the adapter reads the socket again.
"""

from thriftpy2.protocol.cybin import TCyBinaryProtocol
from thriftpy2.transport import TTransportException
from thriftpy2.transport.memory import TCyMemoryBuffer

from soa.theader import (
    HEAD,
    HEAD_SIZE,
    LENGTH,
    MAGIC,
    PROTOCOL_NAMES,
    HeaderError,
    encode_pairs,
    frame_prefix,
    header_block,
    parse_block,
    read_size,
)

from .compact import BoundedCompactProtocol
from .connection import FrameTooLarge, _SocketIO
from .guard import BadMessage, BinaryGuard

BLOCK_CACHE = 16  # decoded header blocks kept per connection


class FrameGuard(BinaryGuard):
    """``BinaryGuard``'s walk over one whole frame payload: the message must fill it exactly."""

    __slots__ = ()

    def __init__(self):  # no socket under it: only the walk is used
        self._buf = b""
        self._limit = 0

    def check(self, payload):
        self._buf = payload
        self._limit = len(payload)
        end = self._message(0)
        if end != len(payload):
            raise BadMessage(f"{len(payload) - end} byte(s) after the message in its frame")

    def _fill(self, end):
        raise BadMessage(f"a message of at least {end} bytes in a frame of {len(self._buf)}")


class HeaderIO(_SocketIO):
    """Reads ahead a chunk at a time into ``_buf`` and walks it with an offset (``_pos``), so a
    client that pipelines many small frames costs one ``recv`` per chunk; a frame larger than
    what is buffered is gathered from the socket (yielding to the hub as it arrives)."""

    __slots__ = ("_blocks", "_buf", "_mem", "_payload", "_plain_block", "_pos", "headers",
                 "protocol_id", "reply_headers", "seqid")

    def __init__(self, sock, max_bytes, pending=b""):
        super().__init__(sock, max_bytes)
        self._buf = bytes(pending)
        self._pos = 0
        self._payload = None  # the payload of a frame read but not yet decoded
        self._mem = TCyMemoryBuffer()
        self.headers = {}
        self.reply_headers = None
        self.seqid = 0
        self.protocol_id = None
        self._plain_block = None
        self._blocks = {}  # header block bytes -> (protocol id, headers), the last few

    def protocol(self):
        """``(proto, read_message_begin, flush)`` for the protocol the first frame names (call
        ``next_frame`` first). ``read_message_begin`` takes the next frame off the socket,
        validates it, and decodes its message's header; it raises ``TTransportException``
        (end of file) at a clean end of the connection."""
        mem = self._mem
        if PROTOCOL_NAMES[self.protocol_id] == "compact":
            proto, check = BoundedCompactProtocol(mem, self.limit), None
        else:
            proto, check = TCyBinaryProtocol(mem, strict_read=True, strict_write=True), \
                FrameGuard().check
        decode_begin, setvalue, next_frame = proto.read_message_begin, mem.setvalue, \
            self.next_frame

        def read_message_begin():
            payload = self._payload
            if payload is None:
                if not next_frame():
                    raise TTransportException(TTransportException.END_OF_FILE, "end of stream")
                payload = self._payload
            self._payload = None
            if check is not None:
                check(payload)
            setvalue(payload)
            return decode_begin()

        return proto, read_message_begin, self.flush

    def _fill(self, n, at_start=False):
        """At least ``n`` bytes buffered from ``_pos``, reading ahead up to a chunk; False when
        the peer closed before a new frame began."""
        self.send_held()  # the requests buffered are answered: their replies go first
        buf, pos = self._buf, self._pos
        while len(buf) - pos < n:
            more = self._receive_raw(read_size(n - len(buf) + pos))
            if not more:
                if at_start and len(buf) == pos:
                    return False
                raise TTransportException(TTransportException.END_OF_FILE,
                                          "connection closed inside a THeader frame")
            buf, pos = buf[pos:] + more, 0
        self._buf, self._pos = buf, pos
        return True

    def next_frame(self):
        """Read the next frame whole: its header decoded into ``headers`` and ``seqid``, its
        payload kept for the decoder. False at a clean end of the connection.

        Header blocks repeat from call to call (a client's identity does not change, and its
        deadline's digits seldom do), so the last few are kept decoded, per connection.
        """
        if len(self._buf) - self._pos < HEAD_SIZE and not self._fill(HEAD_SIZE, at_start=True):
            return False
        buf, pos = self._buf, self._pos
        size, magic, _flags, seqid, words = HEAD.unpack_from(buf, pos)
        if size > self.limit:
            raise FrameTooLarge(TTransportException.UNKNOWN,
                                f"frame of {size} bytes refused (max_frame_bytes {self.limit})")
        if magic != MAGIC:
            raise HeaderError(f"not a THeader frame (magic {magic:#06x})")
        header_len, frame_len = HEAD_SIZE + words * 4, LENGTH.size + size
        if frame_len <= header_len:
            raise HeaderError(f"a header of {words * 4} bytes leaves no payload in {size}")
        if len(buf) - pos < header_len:
            self._fill(header_len)
            buf, pos = self._buf, self._pos
        header_end, frame_end = pos + header_len, pos + frame_len
        block = buf[pos + HEAD_SIZE:header_end]
        decoded = self._blocks.get(block)
        if decoded is None:
            decoded = parse_block(block)
            if len(self._blocks) >= BLOCK_CACHE:
                self._blocks.clear()
            self._blocks[block] = decoded
        protocol_id, headers = decoded
        if self.protocol_id is None:
            self.protocol_id = protocol_id
            self._plain_block = header_block(protocol_id, 0, b"")
        elif protocol_id != self.protocol_id:
            raise HeaderError(f"protocol id changed from {self.protocol_id} to {protocol_id}")
        if frame_end <= len(buf):
            self._payload = buf[header_end:frame_end]
            self._pos = frame_end
            self.count += frame_len
        else:  # larger than what is buffered: gather the rest
            self.count += len(buf) - pos
            self._payload = self._gather_payload(buf[header_end:], frame_end - len(buf))
            self._buf, self._pos = b"", 0
        self.seqid = seqid
        self.headers = headers
        return True

    def _gather_payload(self, head, missing):
        self.send_held()
        parts = bytearray(head)
        while missing > 0:
            more = self._receive(missing)
            if not more:
                raise TTransportException(TTransportException.END_OF_FILE,
                                          "connection closed inside a THeader frame")
            parts += more
            missing -= len(more)
            self.count += len(more)  # progress, for the idle sweeper
        return bytes(parts)

    def flush(self):
        mem = self._mem
        payload = mem.getvalue()
        mem.clean()
        reply = self.reply_headers
        if reply:
            self.reply_headers = None
            block = header_block(self.protocol_id, len(reply), encode_pairs(reply.items()))
        else:
            block = self._plain_block
        self.reply(frame_prefix(self.seqid, block, len(payload)) + payload,
                   self._pos < len(self._buf))
