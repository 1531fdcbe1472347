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

from . import deadlines

try:  # the Cython variants ship with thriftpy2's wheels for CPython
    from thriftpy2.protocol.cybin import TCyBinaryProtocol as BinaryProtocol
    from thriftpy2.transport.buffered import TCyBufferedTransport as BufferedTransport
    from thriftpy2.transport.framed import TCyFramedTransport as FramedTransport
    from thriftpy2.transport.memory import TCyMemoryBuffer as MemoryBuffer
except ImportError:  # pragma: no cover - pure-Python fallback
    from thriftpy2.protocol import TBinaryProtocol as BinaryProtocol
    from thriftpy2.transport import TBufferedTransport as BufferedTransport
    from thriftpy2.transport import TFramedTransport as FramedTransport
    from thriftpy2.transport import TMemoryBuffer as MemoryBuffer

PROTOCOLS = {"binary": BinaryProtocol, "compact": TCompactProtocol}
TRANSPORTS = {"buffered": BufferedTransport, "framed": FramedTransport}
_EXCEPTION = TMessageType.EXCEPTION
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
_HEAD, _MAGIC = theader.HEAD, theader.MAGIC
_HEAD_AND_WORD = theader.HEAD_SIZE + 4


class _HeaderFrames:
    """THeader framing for one connection. A request is encoded into ``encoder`` (a protocol
    over a memory buffer), and ``send`` frames it with the call's metadata. A reply's frame head
    and header block are taken off the connection's buffered transport by ``read_head``, which
    leaves the payload there for the connection's own decoder: the message is decoded straight
    from the socket's buffer, as a plain reply is, with no Python between the two.

    The identity headers are encoded once per connection; per call only the deadline's digits
    are.
    """

    __slots__ = ("_block", "_last_ms", "_mem", "_plain_reply", "_send", "_sendall", "_size",
                 "_static", "_words", "encoder", "reply_headers")

    def __init__(self, sock, protocol, service, instance_id):
        self._send, self._sendall = sock.send, sock.sendall
        protocol_id = theader.PROTOCOL_IDS[protocol]
        pairs = [(theader.SERVICE, service)]
        if instance_id:
            pairs.append((theader.INSTANCE, instance_id))
        encoded = theader.encode_pairs(pairs)
        # Per call only the deadline's digits change: the block up to them is built here
        # (protocol id, no transforms, one key-value info block of len(pairs) + 1 pairs, the
        # identity pairs, the deadline's key).
        deadline_key = theader.encode_pairs(((theader.DEADLINE, ""),))[:-1]
        self._static = bytes((protocol_id, 0, theader.INFO_KEYVALUE, len(pairs) + 1)) + \
            encoded + deadline_key
        self._plain_reply = _PLAIN_REPLY[protocol_id]
        self._last_ms = self._block = self._size = self._words = None
        self._mem = MemoryBuffer()
        self.encoder = PROTOCOLS[protocol](self._mem)
        self.reply_headers = None

    def send(self, seqid, left):
        """Frame what ``encoder`` holds, with ``left`` seconds to its deadline, and send it."""
        mem = self._mem
        payload = mem.getvalue()
        mem.clean()
        ms = int(left * 1000)
        if ms != self._last_ms:  # calls with the same timeout mostly repeat the last block
            self._deadline_block(ms)
        data = _HEAD.pack(self._size + len(payload), _MAGIC, 0, seqid, self._words) + \
            self._block + payload
        sent = self._send(data)
        if sent != len(data):
            self._sendall(memoryview(data)[sent:])

    def _deadline_block(self, ms):
        """Build the header block for ``ms`` left (at least 1: 0 would mean no deadline)."""
        digits = str(ms if ms > 1 else 1).encode()
        block = self._static + bytes((len(digits),)) + digits
        block += _PADDING[len(block) & 3]
        self._last_ms, self._block = ms, block
        self._size, self._words = theader.FIXED_SIZE + len(block), len(block) >> 2

    def read_head(self, trans):
        """Read a reply's frame head and header block from ``trans``; keep its headers.

        A block is at least one word, so the head and one word are read at once: a soa
        server's replies carry a one-word block (``_PLAIN_REPLY``) unless they report an error.
        """
        head = trans.read(_HEAD_AND_WORD)
        size, magic, _flags, _seqid, words = _HEAD.unpack_from(head)
        if magic != _MAGIC or words == 0:
            raise theader.HeaderError(f"not a THeader reply (magic {magic:#06x}, "
                                      f"{words} header words)")
        if size <= theader.FIXED_SIZE + 4 * words:
            raise theader.HeaderError(f"a THeader reply of {size} bytes whose header fills it")
        block = head[theader.HEAD_SIZE:]
        if words > 1:
            block += trans.read(4 * words - 4)
        elif block == self._plain_reply:
            self.reply_headers = None
            return
        self.reply_headers = theader.parse_block(block)[1] or None


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
    __slots__ = ("address", "broken", "encoder", "header", "idle_since", "proto", "seqid",
                 "sock", "timeout", "trans", "watch")

    def __init__(self, address, sock, protocol="binary", transport="buffered", header=None):
        """``header`` is ``(service, instance_id)`` to speak THeader, or None for plain.

        ``proto`` decodes replies from ``trans``, the socket's buffered transport; ``encoder``
        encodes requests: the same protocol in plain Thrift, a protocol over a memory buffer
        that ``header`` frames in THeader."""
        self.address = address
        self.sock = sock
        if header is not None:
            self.header = _HeaderFrames(sock, protocol, *header)
            self.trans = BufferedTransport(_Wire(sock))
        else:
            self.header = None
            self.trans = TRANSPORTS[transport](_Wire(sock))
        self.proto = PROTOCOLS[protocol](self.trans)
        self.encoder = self.header.encoder if header is not None else self.proto
        self.idle_since = _monotonic()
        self.broken = False
        self.seqid = 0
        self.timeout = -1.0  # the socket's timeout as last set (seconds; None: waits forever)
        self.watch = deadlines.watch()

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
        left = deadline - _monotonic()
        if left <= 0:
            raise RpcTimeout("deadline passed before the request was sent", address=self.address,
                             sent=False)
        if self.timeout is not None:  # a fresh connection, or alive() left it non-blocking
            self.timeout = None
            self.sock.settimeout(None)  # waits with no timer of its own: the watch has the deadline
        watch = self.watch
        watch.enter(self, deadline)
        try:
            self._write(plan, args, seqid, left)
            if plan.oneway:
                return None
            reply_seqid, error, result = self._read(plan)
        finally:
            watch.leave(self)
        if reply_seqid != seqid:
            self.broken = True
            raise TransportError(f"reply seqid {reply_seqid} does not match {seqid}",
                                 address=self.address)
        if error is not None:
            header = self.header
            if header is not None and header.reply_headers:
                self._refused(header.reply_headers.get(theader.ERROR), error)
            raise error
        return plan.unpack(result)

    def _write(self, plan, args, seqid, left):
        try:
            encoder = self.encoder
            encoder.write_message_begin(plan.name, plan.message_type, seqid)
            encoder.write_struct(plan.make_args(args))
            encoder.write_message_end()
            if self.header is None:
                self.trans.flush()
            else:
                self.header.send(seqid, left)
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

    def _read(self, plan):
        """``(seqid, error, result)`` of the reply: ``error`` a ``TApplicationException`` the
        server sent, or None and the result struct."""
        proto = self.proto
        try:
            if self.header is not None:
                self.header.read_head(self.trans)
            _, message_type, seqid = proto.read_message_begin()
            if message_type == _EXCEPTION:
                error, result = TApplicationException(), None
                error.read(proto)
            else:
                error, result = None, plan.result_class()
                proto.read_struct(result)
            proto.read_message_end()
            return seqid, error, result
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
