"""One client connection: socket adapters with size limits, protocol set-up, and its lifetime.

Thrift's transports sit on a socket adapter (``StreamIO`` or ``FramedIO``) that enforces
``max_frame_bytes``: a frame's length prefix is checked before anything is allocated for it, and
on unframed streams the bytes one message may take are capped (which bounds string and container
sizes too). Reads never ask the socket for more than 64 KiB at once. ``idle_timeout`` is the
socket timeout, so a peer that stops sending is closed. Errors close the connection only.
"""

import logging
import socket
import struct

import gevent
from thriftpy2.protocol import TCompactProtocol
from thriftpy2.protocol.cybin import TCyBinaryProtocol
from thriftpy2.transport import TTransportException
from thriftpy2.transport.buffered import TCyBufferedTransport

log = logging.getLogger("soa.server")

READ_CHUNK = 65536
BUFFER_SIZE = 4096
_LENGTH = struct.Struct(">i")


class FrameTooLarge(TTransportException):
    """A message is larger than ``max_frame_bytes``."""


class StreamIO:
    """Unframed socket adapter: counts the bytes of the current message (``count``)."""

    __slots__ = ("count", "limit", "recv", "write")

    def __init__(self, sock, max_bytes):
        self.recv = sock.recv
        self.write = sock.sendall
        self.count = 0
        # Read-ahead of the next message may be counted against this one: allow one chunk.
        self.limit = max_bytes + READ_CHUNK

    def read(self, n):
        data = self.recv(min(READ_CHUNK, n))
        self.count += len(data)
        if self.count > self.limit:
            raise FrameTooLarge(TTransportException.UNKNOWN,
                                f"message larger than {self.limit - READ_CHUNK} bytes")
        return data

    def flush(self):
        pass


class FramedIO:
    """Framed socket adapter: strips incoming length prefixes, adds one per flushed reply."""

    __slots__ = ("count", "left", "limit", "out", "recv", "sendall")

    def __init__(self, sock, max_bytes):
        self.recv = sock.recv
        self.sendall = sock.sendall
        self.count = 0
        self.limit = max_bytes
        self.left = 0
        self.out = []

    def read(self, n):
        left = self.left
        if left == 0:
            left = self._next_frame()
            if left == 0:
                return b""
        n = min(n, left)
        data = self.recv(min(READ_CHUNK, n))
        self.left = left - len(data)
        return data

    def _next_frame(self):
        header = b""
        while len(header) < 4:
            more = self.recv(4 - len(header))
            if not more:
                if header:
                    raise TTransportException(TTransportException.END_OF_FILE,
                                              "connection closed inside a frame header")
                return 0
            header += more
        (size,) = _LENGTH.unpack(header)
        if size <= 0 or size > self.limit:
            raise FrameTooLarge(TTransportException.UNKNOWN,
                                f"frame of {size} bytes refused (max_frame_bytes {self.limit})")
        self.left = size
        return size

    def write(self, data):
        self.out.append(data)

    def flush(self):
        payload = b"".join(self.out)
        self.out.clear()
        self.sendall(_LENGTH.pack(len(payload)) + payload)


class Connection:
    """A served connection; ``busy`` is True while a call is being handled."""

    __slots__ = ("busy", "greenlet", "io", "peer", "sock", "state")

    def __init__(self, sock, peer, state):
        self.sock = sock
        self.peer = peer
        self.state = state
        self.busy = False
        self.io = None
        self.greenlet = None


def make_protocol(io, protocol):
    transport = TCyBufferedTransport(io, BUFFER_SIZE)
    if protocol == "compact":
        proto = TCompactProtocol(transport)
    else:
        proto = TCyBinaryProtocol(transport, strict_read=True, strict_write=True)
    return proto, transport.flush


def serve_connection(conn, processor, settings):
    """Run one connection to its end; never raises (except GreenletExit, which ends it)."""
    sock = conn.sock
    try:
        sock.settimeout(settings.idle_timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        io_cls = FramedIO if settings.transport == "framed" else StreamIO
        conn.io = io_cls(sock, settings.max_frame_bytes)
        proto, flush = make_protocol(conn.io, settings.protocol)
        processor.run(conn, proto, flush)
    except TTransportException as e:
        if e.type != TTransportException.END_OF_FILE:
            log.info("closing %s: %s", conn.peer, e.message or e)
    except TimeoutError:
        log.info("closing %s: idle for %ss", conn.peer, settings.idle_timeout)
    except OSError as e:
        log.info("closing %s: %s", conn.peer, e)
    except gevent.GreenletExit:
        pass
    except Exception as e:  # noqa: BLE001 -- garbage on the wire raises many unrelated types
        log.info("closing %s: bad input: %s: %s", conn.peer, type(e).__name__, e)
    finally:
        try:
            sock.close()
        except OSError:
            pass
