"""One Thrift connection to one instance, speaking the protocol and transport it registered.

``Connection.open(instance, connect_timeout)`` dials (a failure raises ``ConnectError``, which is
a ``TransportError`` with ``sent=False``); ``call(plan, args, deadline)`` writes one request and
reads its reply, with the socket timeout set to what is left of the deadline. Sequence ids are a
plain counter per connection.

To an instance that advertises ``theader``, each request goes in a THeader frame
(``soa.theader``) carrying the deadline and the identity of the instance meant (its service and
registry ``id``); a reply's ``soa-error`` turns into ``WrongTarget`` (not sent: retry elsewhere)
or ``RpcTimeout`` (late on arrival, not executed). Other instances get plain Thrift.

Failure classes (what the retry and ejection middlewares branch on):
- ``ConnectError`` (sent=False): refused, reset or timed out while connecting.
- ``TransportError(sent=False)``: the connection broke while the request was being written
  (the peer had closed it), so the server cannot have read a whole request.
- ``RpcTimeout(sent=True)``: no reply before the deadline; ``RpcTimeout(sent=False)`` when the
  deadline had passed before anything was written.
- ``TransportError(sent=True)``: the connection broke, or the reply was garbage, after the
  request was written; the server may or may not have run it.
- ``WrongTarget`` (sent=False): the address now serves another service or instance, which
  refused the call unexecuted.
After any failure the connection is ``broken`` and must be closed, never reused.

The binary protocol uses thriftpy2's Cython ``TCyBinaryProtocol``; buffered and framed transports
use the Cython ``TCyBufferedTransport``/``TCyFramedTransport``; compact uses ``TCompactProtocol``
(thriftpy2 has no Cython compact protocol) over the same Cython transports.
"""

import socket as std_socket
import ssl
import time

from gevent import socket
from thriftpy2.protocol import TCompactProtocol
from thriftpy2.thrift import TApplicationException, TMessageType
from thriftpy2.transport import TTransportException

from soa import theader
from soa.errors import RpcTimeout, TransportError, WrongTarget

try:  # the Cython variants ship with thriftpy2's wheels for CPython
    from thriftpy2.protocol.cybin import TCyBinaryProtocol as BinaryProtocol
    from thriftpy2.transport.buffered import TCyBufferedTransport as BufferedTransport
    from thriftpy2.transport.framed import TCyFramedTransport as FramedTransport
except ImportError:  # pragma: no cover - pure-Python fallback
    from thriftpy2.protocol import TBinaryProtocol as BinaryProtocol
    from thriftpy2.transport import TBufferedTransport as BufferedTransport
    from thriftpy2.transport import TFramedTransport as FramedTransport

PROTOCOLS = {"binary": BinaryProtocol, "compact": TCompactProtocol}
TRANSPORTS = {"buffered": BufferedTransport, "framed": FramedTransport}
_EXCEPTION = TMessageType.EXCEPTION
# The socket timeout is left alone while it is within this many seconds above what is left of the
# call's deadline: most calls then make no settimeout call, and none overshoots by more than this.
TIMEOUT_SLACK = 0.005
_monotonic = time.monotonic


class ConnectError(TransportError):
    """The connection could not be opened; the request was certainly not sent."""

    def __init__(self, message, *, address=None):
        super().__init__(message, address=address, sent=False)


class _Wire:
    """The raw socket as the Cython transports want it: read, write, flush.

    ``write`` tries one plain ``send`` first: a request usually fits the socket buffer, and
    gevent's ``sendall`` arms a timer on every call even when nothing has to wait.
    """

    __slots__ = ("read", "write")

    def __init__(self, sock):
        self.read = sock.recv
        send, sendall = sock.send, sock.sendall

        def write(data):
            sent = send(data)
            if sent != len(data):
                sendall(memoryview(data)[sent:])

        self.write = write

    def flush(self):
        pass

    def is_open(self):
        return True

    def close(self):
        pass


_PADDING = (b"", b"\0\0\0", b"\0\0", b"\0")  # by length % 4
_PLAIN_REPLY = {pid: theader.header_block(pid, 0, b"") for pid in theader.PROTOCOL_NAMES}


class _HeaderWire:
    """The socket as THeader frames: ``write`` collects a request, ``flush`` frames it with the
    call's metadata; ``read`` returns reply payload bytes, frame by frame, keeping each reply's
    headers in ``reply_headers``.

    The identity headers are encoded once per connection; per call only the deadline's digits
    are. Replies are read with one ``recv`` of up to 64 KiB where they fit (most do).
    """

    __slots__ = ("_buf", "_fixed", "_last_block", "_last_ms", "_out", "_payload", "_plain",
                 "_protocol_id", "_recv", "_send", "_sendall", "_static", "deadline",
                 "reply_headers", "seqid")

    def __init__(self, sock, protocol, service, instance_id):
        self._recv = sock.recv
        self._send, self._sendall = sock.send, sock.sendall
        protocol_id = self._protocol_id = theader.PROTOCOL_IDS[protocol]
        pairs = [(theader.SERVICE, service)]
        if instance_id:
            pairs.append((theader.INSTANCE, instance_id))
        encoded = theader.encode_pairs(pairs)
        # Per call only the deadline's digits change: the block up to them is built here
        # (protocol id, no transforms, one key-value info block of len(pairs) + 1 pairs, the
        # identity pairs, the deadline's key); a block without a deadline is built whole.
        self._plain = theader.header_block(protocol_id, len(pairs), encoded)
        deadline_key = theader.encode_pairs(((theader.DEADLINE, ""),))[:-1]
        self._static = bytes((protocol_id, 0, theader.INFO_KEYVALUE, len(pairs) + 1)) + \
            encoded + deadline_key
        self._fixed = theader.HEAD
        self._last_ms, self._last_block = None, b""
        self._out = []
        self._buf = b""
        self._payload = b""
        self.deadline = None
        self.seqid = 0
        self.reply_headers = None

    def write(self, data):
        self._out.append(data)

    def flush(self):
        out = self._out
        payload = out[0] if len(out) == 1 else b"".join(out)
        out.clear()
        deadline = self.deadline
        if deadline is None:
            block = self._plain
        else:
            ms = int((deadline - _monotonic()) * 1000)
            block = self._deadline_block(ms if ms > 1 else 1)
        data = self._fixed.pack(theader.FIXED_SIZE + len(block) + len(payload), theader.MAGIC,
                                0, self.seqid, len(block) >> 2) + block + payload
        sent = self._send(data)
        if sent != len(data):
            self._sendall(memoryview(data)[sent:])

    def _deadline_block(self, ms):
        """The header block for ``ms`` left; calls with the same timeout mostly repeat the
        last one, which is kept."""
        if ms == self._last_ms:
            return self._last_block
        digits = str(ms).encode()
        block = self._static + bytes((len(digits),)) + digits
        block += _PADDING[len(block) & 3]
        self._last_ms, self._last_block = ms, block
        return block

    def _frame(self):
        """Read one whole reply frame; keep its headers and payload."""
        buf = self._buf
        while len(buf) < theader.HEAD_SIZE:
            buf += self._more(theader.read_size(theader.HEAD_SIZE - len(buf)))
        size, magic, _flags, _seqid, words = theader.HEAD.unpack_from(buf)
        if magic != theader.MAGIC or size <= theader.FIXED_SIZE:
            raise theader.HeaderError(f"not a THeader reply (magic {magic:#06x}, {size} bytes)")
        end = 4 + size
        while len(buf) < end:
            buf += self._more(theader.read_size(end - len(buf)))
        start = theader.HEAD_SIZE + 4 * words
        if start >= end:
            raise theader.HeaderError("a THeader reply whose header fills the frame")
        block = buf[theader.HEAD_SIZE:start]
        if block and block == _PLAIN_REPLY.get(block[0]):
            self.reply_headers = None
        else:
            self.reply_headers = theader.parse_block(block)[1] or None
        self._payload = buf[start:end]
        self._buf = buf[end:]

    def _more(self, n):
        data = self._recv(n)
        if not data:
            raise TTransportException(TTransportException.END_OF_FILE,
                                      "connection closed inside a THeader reply")
        return data

    def read(self, n):
        if not self._payload:
            self._frame()
        payload = self._payload
        if n >= len(payload):
            self._payload = b""
            return payload
        self._payload = payload[n:]
        return payload[:n]

    def is_open(self):
        return True

    def close(self):
        pass


def _tls_handshake(sock, instance, tls):
    """The socket after a verified TLS handshake; ``ConnectError`` (not sent) in one line."""
    from soa.tls import context_for, describe

    server_name = (tls.server_name if tls is not None else None) or instance.host
    try:
        return context_for(tls).wrap_socket(sock, server_hostname=server_name)
    except TimeoutError as e:
        sock.close()
        raise ConnectError("TLS handshake timed out", address=instance.address) from e
    except OSError as e:
        sock.close()
        reason = describe(e)
        if "eof" in reason.lower() or isinstance(e, ConnectionError):
            reason = "the server closed the connection (is it serving TLS?)"
        raise ConnectError(f"TLS handshake failed: {reason}", address=instance.address) from e


class Connection:
    __slots__ = ("address", "broken", "header", "idle_since", "proto", "seqid", "sock",
                 "timeout", "trans")

    def __init__(self, address, sock, protocol="binary", transport="buffered", header=None):
        """``header`` is ``(service, instance_id)`` to speak THeader, or None for plain."""
        self.address = address
        self.sock = sock
        if header is not None:
            self.header = _HeaderWire(sock, protocol, *header)
            self.trans = BufferedTransport(self.header)
        else:
            self.header = None
            self.trans = TRANSPORTS[transport](_Wire(sock))
        self.proto = PROTOCOLS[protocol](self.trans)
        self.idle_since = _monotonic()
        self.broken = False
        self.seqid = 0
        self.timeout = -1.0  # the socket's timeout as last set (seconds)

    @classmethod
    def open(cls, instance, connect_timeout, tls=None):
        """Dial ``instance``; with TLS when its registry value says ``tls`` (``tls`` is the
        client's ``ClientTls``: CA, certificate, server name)."""
        address = instance.address
        try:
            sock = socket.create_connection((instance.host, instance.port), timeout=connect_timeout)
        except TimeoutError as e:
            raise ConnectError(f"connect timed out after {connect_timeout * 1000:.0f}ms",
                               address=address) from e
        except OSError as e:
            raise ConnectError(f"connect failed: {e.strerror or e}", address=address) from e
        sock.setsockopt(std_socket.IPPROTO_TCP, std_socket.TCP_NODELAY, 1)
        if instance.tls:
            sock = _tls_handshake(sock, instance, tls)
        header = (instance.service, instance.id) if instance.theader else None
        return cls(address, sock, instance.protocol, instance.transport, header)

    def alive(self):
        """False when the peer has closed (or written garbage to) an idle connection.

        One non-blocking ``recv(MSG_PEEK)``; the pool only asks for connections that sat idle
        for a while, so hot connections are reused with no extra syscall. A TLS socket cannot
        peek: it reads one byte through the TLS layer instead, which takes in records that carry
        no data (TLS 1.3 session tickets) and finds nothing to read on a live connection.
        """
        sock = self.sock
        try:
            self.timeout = 0.0
            sock.settimeout(0.0)
            if hasattr(sock, "do_handshake"):  # TLS
                sock.recv(1)
            else:
                sock.recv(1, std_socket.MSG_PEEK)
        except (BlockingIOError, ssl.SSLWantReadError):
            return True
        except OSError:
            return False
        return False  # b"": the peer closed; bytes: a stray reply nobody will read

    def call(self, plan, args, deadline):
        """Send one request and return the decoded result (or raise what the server raised)."""
        seqid = self.seqid = (self.seqid + 1) & 0x7FFFFFFF
        header = self.header
        if header is not None:
            header.deadline = deadline
            header.seqid = seqid
        sock = self.sock
        proto = self.proto
        left = deadline - _monotonic()
        if left <= 0:
            raise RpcTimeout("deadline passed before the request was sent", address=self.address,
                             sent=False)
        if not left <= self.timeout <= left + TIMEOUT_SLACK:
            self.timeout = left + TIMEOUT_SLACK / 2
            sock.settimeout(self.timeout)
        try:
            proto.write_message_begin(plan.name, plan.message_type, seqid)
            proto.write_struct(plan.make_args(args))
            proto.write_message_end()
            self.trans.flush()
        except TimeoutError as e:
            self.broken = True
            raise RpcTimeout("timed out writing the request", address=self.address) from e
        except (OSError, TTransportException) as e:
            self.broken = True
            raise TransportError(f"connection lost before sending: {e}", address=self.address,
                                 sent=False) from e
        except BaseException:
            self.broken = True  # a bad argument: the write buffer may hold half a request
            raise
        if plan.oneway:
            return None
        # The socket timeout stays as set before writing: the read may overshoot the deadline
        # by the time the write took plus TIMEOUT_SLACK, which saves a call per request.
        try:
            _, message_type, reply_seqid = proto.read_message_begin()
            if message_type == _EXCEPTION:
                error = TApplicationException()
                error.read(proto)
            else:
                error = None
                result = plan.result_class()
                proto.read_struct(result)
            proto.read_message_end()
        except TimeoutError as e:
            self.broken = True
            raise RpcTimeout(f"no reply within the deadline ({plan.name})", address=self.address
                             ) from e
        except (OSError, TTransportException) as e:
            self.broken = True
            if "ALERT" in (getattr(e, "reason", None) or ""):  # a TLS alert: nothing was served
                from soa.tls import describe

                raise TransportError(f"the server refused the TLS session: {describe(e)}",
                                     address=self.address, sent=False) from e
            raise TransportError(f"connection lost during the call: {e}", address=self.address
                                 ) from e
        except Exception as e:  # the protocol could not decode the reply
            self.broken = True
            raise TransportError(f"bad reply: {type(e).__name__}: {e}", address=self.address
                                 ) from e
        if reply_seqid != seqid:
            self.broken = True
            raise TransportError(f"reply seqid {reply_seqid} does not match {seqid}",
                                 address=self.address)
        if error is not None:
            if header is not None and header.reply_headers:
                self._refused(header.reply_headers.get(theader.ERROR), error)
            raise error
        return plan.unpack(result)

    def _refused(self, reason, error):
        """A soa server's ``soa-error``: the call was not executed."""
        if reason == theader.WRONG_TARGET:
            self.broken = True
            raise WrongTarget(f"refused: {error.message}", address=self.address) from error
        if reason == theader.LATE:
            raise RpcTimeout("the deadline had passed when the call arrived; not executed",
                             address=self.address, sent=False) from error

    def close(self):
        self.broken = True
        try:
            self.sock.close()
        except OSError:
            pass
