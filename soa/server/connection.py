"""One client connection: socket adapters with size limits, protocol set-up, and its lifetime.

Thrift's transports sit on a socket adapter (``StreamIO`` or ``FramedIO``) that enforces
``max_frame_bytes``: a frame's length prefix is checked before anything is allocated for it, and
on unframed streams the bytes one message may take are capped (which bounds string and container
sizes too). Reads never ask the socket for more than 64 KiB at once.

Turns: a connection whose client always has its next request ready never waits for the socket, so
it would keep the event loop to itself while the other connections' calls wait. So after
``TURN_MESSAGES`` messages, or ``YIELD_BYTES`` read, with no wait in between, the adapter lets the
loop go round once (polling every socket) before it goes on; a large message cannot hold the loop
while it arrives either. Between the adapter and the decoder, ``make_protocol`` puts the checks of
soa.server.guard (binary) or soa.server.compact (compact): every container count is bounded by
the bytes a message may still take before any loop runs. Sockets carry no timeout (it costs a
timer per wait): the server's idle sweeper closes connections that make no progress for
``idle_timeout``. Errors close the connection only.

Replies to pipelined calls: ``_SocketIO.reply`` holds a reply while the client's next request
is already buffered, and sends the held ones together (THeader connections; see ``reply``).
"""

import logging
import socket
import struct

import gevent
from thriftpy2.protocol.cybin import TCyBinaryProtocol
from thriftpy2.transport import TTransportException
from thriftpy2.transport.buffered import TCyBufferedTransport

from soa.theader import is_header_start

from .compact import BoundedCompactProtocol
from .guard import BinaryGuard, FrameTooLarge
from .spin import for_hub

log = logging.getLogger("soa.server")

READ_CHUNK = 65536
BUFFER_SIZE = 4096
YIELD_BYTES = 1 << 18  # a quarter MiB: the loop is never held long by a large read
TURN_MESSAGES = 8  # messages served back to back before the other connections get a turn
PASS_SECONDS = 1e-6  # any positive delay: the timer fires on the loop's next round
_LENGTH = struct.Struct(">i")

__all__ = ["Connection", "FramedIO", "FrameTooLarge", "StreamIO", "make_protocol",
           "serve_connection"]


class _SocketIO:
    """Non-blocking reads and writes straight on the socket, waiting in the hub only when the
    kernel says so (gevent's own recv/sendall do the same with more layers).

    ``pending`` holds bytes already taken from the socket (the first bytes, read to tell THeader
    from plain Thrift) that reads return first. ``headers`` is the THeader info of the message
    being read: None on plain connections. ``max_bytes`` is what one message may take.
    """

    __slots__ = ("_gathers", "_held", "_loop", "_messages", "_recv", "_send", "_sendall",
                 "_unyielded", "_wait_readable", "count", "limit", "max_bytes", "pending")
    headers = None

    def __init__(self, sock, limit, max_bytes=None):
        encrypted = hasattr(sock, "do_handshake")  # TLS: bytes come through the SSL object
        raw = sock if encrypted else getattr(sock, "_sock", sock)
        self._recv = raw.recv
        self._send = raw.send
        self._sendall = sock.sendall
        wait, event = getattr(sock, "_wait", None), getattr(sock, "_read_event", None)
        if encrypted:  # gevent's SSL socket waits in the hub by itself
            self._wait_readable = lambda: None
        elif wait is not None and event is not None:
            self._wait_readable = lambda: wait(event)
        else:  # not a gevent socket: let its blocking recv do the waiting
            self._wait_readable = lambda: None
        self._gathers = raw.gettimeout() == 0.0  # recv raises instead of waiting
        # Replies held back while more requests are buffered (see ``reply``); TLS sends at once.
        self._held = []
        self._loop = gevent.get_hub().loop if self._gathers and not encrypted else None
        self.count = 0
        self.limit = limit
        self.max_bytes = limit if max_bytes is None else max_bytes
        self._unyielded = 0  # bytes received since the hub last ran
        self._messages = 0  # messages begun since the hub last ran
        self.pending = b""

    def spin_with(self, spin):
        """Let ``spin`` (a ``soa.server.spin.Spin``) know each time this socket is waited on."""
        if spin is not None:
            before, wait = spin.before_wait, self._wait_readable

            def wait_readable():
                before()
                wait()

            self._wait_readable = wait_readable

    def _receive(self, n):
        """Up to ``n`` bytes, waiting only for the first chunk; a large ``n`` also takes what
        else has arrived, so a decoder growing its buffer gets few large pieces (it joins them
        by concatenation, quadratic in the number of pieces)."""
        pending = self.pending
        if pending:
            self.pending = pending[n:]
            return pending[:n]
        while True:
            try:
                data = self._recv(min(n, READ_CHUNK))
                break
            except BlockingIOError:
                self._unyielded = self._messages = 0
                self._wait_readable()
        self._unyielded += len(data)
        if n > READ_CHUNK and len(data) == READ_CHUNK and self._gathers:
            return self._gather(data, n)
        if self._unyielded >= YIELD_BYTES:  # data kept coming: let the others run
            self._pass_turn()
        return data

    def _gather(self, first, n):
        parts = bytearray(first)
        recv = self._recv
        while len(parts) < n:
            if self._unyielded >= YIELD_BYTES:  # data kept coming: let the others run
                self._pass_turn()
            try:
                more = recv(min(n - len(parts), READ_CHUNK))
            except BlockingIOError:
                break
            if not more:
                break  # end of stream: the next read reports it
            parts += more
            self._unyielded += len(more)
        return bytes(parts)

    def prefetch(self, n):
        """Read until ``n`` bytes are pending or the peer closes; returns the pending bytes."""
        while len(self.pending) < n:
            more = self._receive_raw(n - len(self.pending))
            if not more:
                break
            self.pending += more
        return self.pending

    def _receive_raw(self, n):
        while True:
            try:
                return self._recv(n)
            except BlockingIOError:
                self._unyielded = self._messages = 0
                self._wait_readable()

    def next_message(self):
        """A new message begins: its byte count starts at 0, and once ``TURN_MESSAGES`` have
        begun since this connection last waited, the other connections get a turn."""
        self.count = 0
        self._messages += 1
        if self._messages > TURN_MESSAGES:
            self._pass_turn()

    def _pass_turn(self):
        """Let the loop go round once: a timer, not ``sleep(0)``, which resumes this greenlet
        before the loop polls the other sockets again."""
        self._unyielded = self._messages = 0
        self.send_held()
        gevent.sleep(PASS_SECONDS)

    def _write(self, data):
        try:
            sent = self._send(data)
        except BlockingIOError:
            sent = 0
        if sent != len(data):
            self._sendall(memoryview(data)[sent:])

    def reply(self, data, more_buffered):
        """Send one reply; while ``more_buffered`` (the client's next requests have arrived
        already), hold it to go out with the replies to those, in one ``send``: a client that
        pipelines N calls costs one system call in place of N. Held replies leave before this
        connection reads from the socket again or lets the others run, and, should a handler
        block first, as soon as the hub runs (a loop callback), so no reply waits on the next
        call's handler."""
        held = self._held
        if more_buffered and self._loop is not None:
            if not held:
                self._loop.run_callback(self._send_held_now)
            held.append(data)
        elif held:
            held.append(data)
            self.send_held()
        else:
            self._write(data)

    def send_held(self):
        """Send the held replies, waiting for the socket if it is full."""
        if self._held:
            self._write(self._take_held())

    def _send_held_now(self):
        """In the hub: send what the socket takes of the held replies without waiting; the
        rest stays held for this connection's greenlet."""
        if not self._held:
            return
        data = self._take_held()
        try:
            sent = self._send(data)
        except BlockingIOError:
            sent = 0
        except OSError:  # the connection is gone: its greenlet finds out at its next read
            return
        if sent < len(data):
            self._held.append(data[sent:])

    def _take_held(self):
        """The held replies as one bytes object; nothing is held after."""
        held = self._held
        data = held[0] if len(held) == 1 else b"".join(held)
        held.clear()
        return data


class StreamIO(_SocketIO):
    """Unframed socket adapter: ``count`` is the bytes read since the message began."""

    __slots__ = ()

    def __init__(self, sock, max_bytes):
        # Read-ahead of the next message may be counted against this one: allow one chunk.
        super().__init__(sock, max_bytes + READ_CHUNK, max_bytes)

    def read(self, n):
        data = self._receive(n)
        self.count += len(data)
        if self.count > self.limit:
            raise FrameTooLarge(TTransportException.UNKNOWN,
                                f"message larger than {self.limit - READ_CHUNK} bytes")
        return data

    def write(self, data):
        self._write(data)

    def flush(self):
        pass


class FramedIO(_SocketIO):
    """Framed socket adapter: strips incoming length prefixes, adds one per flushed reply."""

    __slots__ = ("left", "out")

    def __init__(self, sock, max_bytes):
        super().__init__(sock, max_bytes, max_bytes)
        self.left = 0
        self.out = []

    def read(self, n):
        left = self.left
        if left == 0:
            left = self._next_frame()
            if left == 0:
                return b""
        data = self._receive(min(n, left))
        self.left = left - len(data)
        self.count += len(data)
        if self.count > self.limit:  # one message spread over several frames
            raise FrameTooLarge(TTransportException.UNKNOWN,
                                f"message larger than {self.limit} bytes")
        return data

    def _next_frame(self):
        header = b""
        while len(header) < 4:
            more = self._receive(4 - len(header))
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
        out = self.out
        if len(out) == 1:
            data = _LENGTH.pack(len(out[0])) + out[0]
        else:  # one copy, whatever the reply's size
            out.insert(0, _LENGTH.pack(sum(map(len, out))))
            data = b"".join(out)
        out.clear()
        self._write(data)


class Connection:
    """A served connection; ``busy`` is True while a call is being handled."""

    __slots__ = ("busy", "greenlet", "idle_since", "io", "peer", "seen", "served", "sock",
                 "state")

    def __init__(self, sock, peer, state):
        self.sock = sock
        self.peer = peer
        self.state = state
        self.busy = False
        self.served = 0
        self.io = None
        self.greenlet = None
        self.seen = None
        self.idle_since = None

    def idle_for(self, now):
        """Seconds this connection has shown no progress (0 while a call runs). Called by the
        server's idle sweeper, which is the only writer of ``seen`` and ``idle_since``."""
        io = self.io
        mark = (self.served, io.count if io is not None else -1)
        if self.busy or mark != self.seen:
            self.seen = mark
            self.idle_since = now
            return 0.0
        return now - self.idle_since


HANDSHAKE_TIMEOUT = 10.0


def _handshake(context, sock, peer):
    """The TLS socket once the handshake is done, or None (logged in one line) when it fails."""
    from soa.tls import describe

    tls_sock = context.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
    try:
        with gevent.Timeout(HANDSHAKE_TIMEOUT):
            tls_sock.do_handshake()
    except gevent.Timeout:
        log.info("closing %s: no TLS handshake within %.0fs", peer, HANDSHAKE_TIMEOUT)
    except OSError as e:
        log.info("closing %s: TLS handshake failed: %s", peer, describe(e))
    else:
        return tls_sock
    tls_sock.close()
    return None


def make_protocol(io, protocol, max_bytes=None):
    """``(protocol, flush)`` for a server connection reading from ``io`` (anything with
    ``read(n)``, ``write(data)`` and ``flush()``; a socket adapter or a frame's payload).
    ``max_bytes`` (default ``io.max_bytes``) is what one message may take: binary messages are
    validated whole by ``BinaryGuard`` before cybin decodes them; compact counts are bounded
    as they are read. Bad input raises ``BadMessage`` or ``FrameTooLarge``."""
    if max_bytes is None:
        max_bytes = io.max_bytes
    if protocol == "compact":
        transport = TCyBufferedTransport(io, BUFFER_SIZE)
        proto = BoundedCompactProtocol(transport, max_bytes)
    else:
        transport = TCyBufferedTransport(BinaryGuard(io, max_bytes), BUFFER_SIZE)
        proto = TCyBinaryProtocol(transport, strict_read=True, strict_write=True)
    return proto, transport.flush


def serve_connection(conn, processor, settings, tls=None):
    """Run one connection to its end; never raises (except GreenletExit, which ends it).

    With ``tls`` (an ``SSLContext``) the TLS handshake comes first, within
    ``HANDSHAKE_TIMEOUT``. The first six bytes tell a THeader client from a plain one
    (``soa.theader``); a THeader connection speaks the protocol its first frame names, a plain one
    the service's own.
    """
    sock = conn.sock
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if tls is not None:
            sock = conn.sock = _handshake(tls, sock, conn.peer)
            if sock is None:
                return
        io_cls = FramedIO if settings.transport == "framed" else StreamIO
        spin = for_hub(gevent.get_hub(), settings.spin_us / 1e6)
        io = conn.io = io_cls(sock, settings.max_frame_bytes)
        io.spin_with(spin)
        first = io.prefetch(6)
        if not first:
            return
        if is_header_start(first):
            from .header import HeaderIO  # it builds on this module's _SocketIO

            io = conn.io = HeaderIO(sock, settings.max_frame_bytes, first)
            io.spin_with(spin)
            if not io.next_frame():
                return
            proto, read_begin, flush = io.protocol()
        else:
            proto, flush = make_protocol(io, settings.protocol)
            read_begin = proto.read_message_begin
        processor.run(conn, proto, flush, read_begin)
        _send_held(conn)  # draining: the calls served get their replies
    except TTransportException as e:
        if e.type != TTransportException.END_OF_FILE:
            log.info("closing %s: %s", conn.peer, e.message or e)
        _send_held(conn)
    except OSError as e:
        log.info("closing %s: %s", conn.peer, e)
    except gevent.GreenletExit:
        pass
    except Exception as e:  # noqa: BLE001 -- garbage on the wire raises many unrelated types
        log.info("closing %s: bad input: %s: %s", conn.peer, type(e).__name__, e)
        _send_held(conn)  # the calls before the garbage were served: they get their replies
    finally:
        if sock is not None:  # None: a failed TLS handshake, which closed it
            try:
                sock.close()
            except OSError:
                pass


def _send_held(conn):
    """The replies a connection still holds (``_SocketIO.reply``), sent before it closes."""
    if conn.io is not None:
        try:
            conn.io.send_held()
        except OSError:
            pass
