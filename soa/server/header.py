"""The server's THeader socket adapter: one THeader frame per message, its info kept for the
processor (``headers``), replies framed the same way (``soa.theader``, registry/SCHEMA.md).

Like ``FramedIO``, a frame's length is checked against ``max_frame_bytes`` before anything is
read for it, and the header block is read whole (it is small) and decoded with every count bounded
by its bytes. ``reply_headers`` (set by the processor, cleared by ``flush``) go on the next reply.
"""

from thriftpy2.transport import TTransportException

from soa.theader import (
    HEAD,
    HEAD_SIZE,
    LENGTH,
    MAGIC,
    HeaderError,
    encode_pairs,
    frame_prefix,
    header_block,
    parse_block,
)

from .connection import READ_CHUNK, FrameTooLarge, _SocketIO

BLOCK_CACHE = 16  # decoded header blocks kept per connection


class HeaderIO(_SocketIO):
    __slots__ = ("_blocks", "_plain_block", "headers", "left", "out", "protocol_id",
                 "reply_headers", "seqid")

    def __init__(self, sock, max_bytes, pending=b""):
        super().__init__(sock, max_bytes)
        self.pending = pending
        self.left = 0
        self.out = []
        self.headers = {}
        self.reply_headers = None
        self.seqid = 0
        self.protocol_id = None
        self._plain_block = None
        self._blocks = {}  # header block bytes -> (protocol id, headers), the last few

    def _fill(self, n, at_start=False):
        """At least ``n`` bytes pending, reading ahead up to a chunk (a small frame costs one
        ``recv``); None when the peer closed before a new frame began."""
        pending = self.pending
        while len(pending) < n:
            more = self._receive_raw(READ_CHUNK)
            if not more:
                if at_start and not pending:
                    return None
                raise TTransportException(TTransportException.END_OF_FILE,
                                          "connection closed inside a THeader frame")
            pending += more
        self.pending = pending
        return pending

    def next_frame(self):
        """Read the next frame's length and header; returns its payload size, 0 at a clean end.

        Header blocks repeat from call to call (a client's identity does not change, and its
        deadline's digits seldom do), so the last few are kept decoded, per connection.
        """
        pending = self.pending
        if len(pending) < HEAD_SIZE:
            pending = self._fill(HEAD_SIZE, at_start=True)
            if pending is None:
                return 0
        size, magic, _flags, seqid, words = HEAD.unpack_from(pending)
        if size > self.limit:
            raise FrameTooLarge(TTransportException.UNKNOWN,
                                f"frame of {size} bytes refused (max_frame_bytes {self.limit})")
        if magic != MAGIC:
            raise HeaderError(f"not a THeader frame (magic {magic:#06x})")
        header_end = HEAD_SIZE + words * 4
        payload = size + LENGTH.size - header_end
        if payload <= 0:
            raise HeaderError(f"a header of {words * 4} bytes leaves no payload in {size}")
        if len(pending) < header_end:
            pending = self._fill(header_end)
        block = pending[HEAD_SIZE:header_end]
        self.pending = pending[header_end:]
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
        self.count += size
        self.seqid = seqid
        self.headers = headers
        self.left = payload
        return payload

    def read(self, n):
        left = self.left
        if left == 0:
            left = self.next_frame()
            if left == 0:
                return b""
        data = self._receive(min(n, left))
        self.left = left - len(data)
        return data

    def write(self, data):
        self.out.append(data)

    def flush(self):
        payload = b"".join(self.out)
        self.out.clear()
        reply = self.reply_headers
        if reply:
            self.reply_headers = None
            block = header_block(self.protocol_id, len(reply), encode_pairs(reply.items()))
        else:
            block = self._plain_block
        self._write(frame_prefix(self.seqid, block, len(payload)) + payload)
