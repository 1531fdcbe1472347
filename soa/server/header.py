"""The server's THeader socket adapter: one THeader frame per message, its info kept for the
processor (``headers``), replies framed the same way (``soa.theader``, registry/SCHEMA.md).

Like ``FramedIO``, a frame's length is checked against ``max_frame_bytes`` before anything is
read for it, and the header block is read whole (it is small) and decoded with every count bounded
by its bytes. ``reply_headers`` (set by the processor, cleared by ``flush``) go on the next reply.
"""

from thriftpy2.transport import TTransportException

from soa.theader import (
    FIXED_SIZE,
    LENGTH,
    HeaderError,
    encode_pairs,
    frame_prefix,
    header_block,
    parse_block,
    parse_fixed,
)

from .connection import READ_CHUNK, FrameTooLarge, _SocketIO


class HeaderIO(_SocketIO):
    __slots__ = ("_plain_block", "headers", "left", "out", "protocol_id", "reply_headers",
                 "seqid")

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

    def _exact(self, n, at_start=False):
        """``n`` bytes, reading ahead up to a chunk: a small frame costs one ``recv``; what is
        read beyond it stays ``pending`` for the payload and the next frame."""
        pending = self.pending
        while len(pending) < n:
            more = self._receive_raw(READ_CHUNK)
            if not more:
                if at_start and not pending:
                    return None
                raise TTransportException(TTransportException.END_OF_FILE,
                                          "connection closed inside a THeader frame")
            pending += more
        self.pending = pending[n:]
        return pending[:n]

    def next_frame(self):
        """Read the next frame's length and header; returns its payload size, 0 at a clean end."""
        head = self._exact(LENGTH.size, at_start=True)
        if head is None:
            return 0
        (size,) = LENGTH.unpack(head)
        if size > self.limit:
            raise FrameTooLarge(TTransportException.UNKNOWN,
                                f"frame of {size} bytes refused (max_frame_bytes {self.limit})")
        if size <= FIXED_SIZE:
            raise HeaderError(f"a THeader frame of {size} bytes has no room for its header")
        seqid, header_size = parse_fixed(self._exact(FIXED_SIZE))
        payload = size - FIXED_SIZE - header_size
        if payload <= 0:
            raise HeaderError(f"a header of {header_size} bytes leaves no payload in {size}")
        protocol_id, headers = parse_block(self._exact(header_size))
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
