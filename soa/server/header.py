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
    """Reads ahead a chunk at a time into ``_buf`` and walks it with an offset (``_pos``), so a
    client that pipelines many small frames costs one ``recv`` per chunk and no copying per
    frame; a payload larger than what is buffered streams from the socket."""

    __slots__ = ("_blocks", "_buf", "_plain_block", "_pos", "headers", "left", "out",
                 "protocol_id", "reply_headers", "seqid")

    def __init__(self, sock, max_bytes, pending=b""):
        super().__init__(sock, max_bytes)
        self._buf = bytes(pending)
        self._pos = 0
        self.left = 0
        self.out = []
        self.headers = {}
        self.reply_headers = None
        self.seqid = 0
        self.protocol_id = None
        self._plain_block = None
        self._blocks = {}  # header block bytes -> (protocol id, headers), the last few

    def _fill(self, n, at_start=False):
        """At least ``n`` bytes buffered from ``_pos``, reading ahead up to a chunk; False when
        the peer closed before a new frame began."""
        buf, pos = self._buf, self._pos
        while len(buf) - pos < n:
            more = self._receive_raw(READ_CHUNK)
            if not more:
                if at_start and len(buf) == pos:
                    return False
                raise TTransportException(TTransportException.END_OF_FILE,
                                          "connection closed inside a THeader frame")
            buf, pos = buf[pos:] + more, 0
        self._buf, self._pos = buf, pos
        return True

    def next_frame(self):
        """Read the next frame's length and header; returns its payload size, 0 at a clean end.

        Header blocks repeat from call to call (a client's identity does not change, and its
        deadline's digits seldom do), so the last few are kept decoded, per connection.
        """
        if len(self._buf) - self._pos < HEAD_SIZE and not self._fill(HEAD_SIZE, at_start=True):
            return 0
        size, magic, _flags, seqid, words = HEAD.unpack_from(self._buf, self._pos)
        if size > self.limit:
            raise FrameTooLarge(TTransportException.UNKNOWN,
                                f"frame of {size} bytes refused (max_frame_bytes {self.limit})")
        if magic != MAGIC:
            raise HeaderError(f"not a THeader frame (magic {magic:#06x})")
        header_end = HEAD_SIZE + words * 4
        payload = size + LENGTH.size - header_end
        if payload <= 0:
            raise HeaderError(f"a header of {words * 4} bytes leaves no payload in {size}")
        if len(self._buf) - self._pos < header_end:
            self._fill(header_end)
        pos = self._pos
        block = self._buf[pos + HEAD_SIZE:pos + header_end]
        self._pos = pos + header_end
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
        want = n if n < left else left
        buf, pos = self._buf, self._pos
        buffered = len(buf) - pos
        if buffered:
            take = want if want < buffered else buffered
            self._pos = pos + take
            data = buf[pos:pos + take]
        else:  # nothing read ahead: straight from the socket (large payloads stream)
            data = self._receive(want)
        self.left = left - len(data)
        return data

    def write(self, data):
        self.out.append(data)

    def flush(self):
        out = self.out
        payload = out[0] if len(out) == 1 else b"".join(out)  # one: the buffered transport's
        out.clear()
        reply = self.reply_headers
        if reply:
            self.reply_headers = None
            block = header_block(self.protocol_id, len(reply), encode_pairs(reply.items()))
        else:
            block = self._plain_block
        self._write(frame_prefix(self.seqid, block, len(payload)) + payload)
