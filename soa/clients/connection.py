"""One Thrift connection to one instance, speaking the protocol and transport it registered.

``Connection.open(instance, connect_timeout)`` dials (a failure raises ``ConnectError``, which is
a ``TransportError`` with ``sent=False``); ``call(plan, args, seqid, deadline)`` writes one
request and reads its reply, with the socket timeout set to what is left of the deadline.

Failure classes (what the retry and ejection middlewares branch on):
- ``ConnectError`` (sent=False): refused, reset or timed out while connecting.
- ``TransportError(sent=False)``: the connection broke while the request was being written
  (the peer had closed it), so the server cannot have read a whole request.
- ``RpcTimeout(sent=True)``: no reply before the deadline; ``RpcTimeout(sent=False)`` when the
  deadline had passed before anything was written.
- ``TransportError(sent=True)``: the connection broke, or the reply was garbage, after the
  request was written; the server may or may not have run it.
After any failure the connection is ``broken`` and must be closed, never reused.

The binary protocol uses thriftpy2's Cython ``TCyBinaryProtocol``; buffered and framed transports
use the Cython ``TCyBufferedTransport``/``TCyFramedTransport``; compact uses ``TCompactProtocol``
(thriftpy2 has no Cython compact protocol) over the same Cython transports.
"""

import socket as std_socket
import time

from gevent import socket
from thriftpy2.protocol import TCompactProtocol
from thriftpy2.thrift import TApplicationException, TMessageType
from thriftpy2.transport import TTransportException

from soa.errors import RpcTimeout, TransportError

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


class Connection:
    __slots__ = ("address", "broken", "idle_since", "proto", "sock", "timeout", "trans")

    def __init__(self, address, sock, protocol="binary", transport="buffered"):
        self.address = address
        self.sock = sock
        self.trans = TRANSPORTS[transport](_Wire(sock))
        self.proto = PROTOCOLS[protocol](self.trans)
        self.idle_since = _monotonic()
        self.broken = False
        self.timeout = -1.0  # the socket's timeout as last set (seconds)

    @classmethod
    def open(cls, instance, connect_timeout):
        address = instance.address
        try:
            sock = socket.create_connection((instance.host, instance.port), timeout=connect_timeout)
        except TimeoutError as e:
            raise ConnectError(f"connect timed out after {connect_timeout * 1000:.0f}ms",
                               address=address) from e
        except OSError as e:
            raise ConnectError(f"connect failed: {e.strerror or e}", address=address) from e
        sock.setsockopt(std_socket.IPPROTO_TCP, std_socket.TCP_NODELAY, 1)
        return cls(address, sock, instance.protocol, instance.transport)

    def alive(self):
        """False when the peer has closed (or written garbage to) an idle connection.

        One non-blocking ``recv(MSG_PEEK)``; the pool only asks for connections that sat idle
        for a while, so hot connections are reused with no extra syscall.
        """
        sock = self.sock
        try:
            self.timeout = 0.0
            sock.settimeout(0.0)
            sock.recv(1, std_socket.MSG_PEEK)
        except BlockingIOError:
            return True
        except OSError:
            return False
        return False  # b"": the peer closed; bytes: a stray reply nobody will read

    def call(self, plan, args, seqid, deadline):
        """Send one request and return the decoded result (or raise what the server raised)."""
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
            raise error
        return plan.unpack(result)

    def close(self):
        self.broken = True
        try:
            self.sock.close()
        except OSError:
            pass
