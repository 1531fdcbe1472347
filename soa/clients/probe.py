"""Is an instance up? One real Thrift round trip that every Thrift server answers.

The probe calls a method that no IDL can define (its name, ``soa probe``, is not a Thrift
identifier), in the instance's registered protocol and transport, plain (no THeader), with an
empty argument struct. Every Thrift server answers that at once with ``UNKNOWN_METHOD``; any
well-formed reply that repeats the probe's name counts as alive. A TCP connect alone cannot tell
a stopped (SIGSTOP) or wedged process from a healthy one, since the kernel completes the
handshake for it; a reply needs the process itself. The connection is dialled like a call's
(``Connection.open``), so a TLS instance is probed over TLS.
"""

import struct
import time

from thriftpy2.protocol import TCompactProtocol
from thriftpy2.protocol.binary import TBinaryProtocol
from thriftpy2.thrift import TMessageType
from thriftpy2.transport import TMemoryBuffer

from soa.errors import TransportError

from .connection import Connection

PROBE_METHOD = "soa probe"
PROBE_SEQID = 0x50524F42  # "PROB"
_PROTOCOLS = {"binary": TBinaryProtocol, "compact": TCompactProtocol}
_LENGTH = struct.Struct(">i")
_MAX_REPLY = 65536


def probe_request(protocol, transport):
    """The bytes of the probe call in ``protocol`` (binary|compact) and ``transport``."""
    buf = TMemoryBuffer()
    proto = _PROTOCOLS[protocol](buf)
    proto.write_message_begin(PROBE_METHOD, TMessageType.CALL, PROBE_SEQID)
    buf.write(b"\x00")  # an empty struct: STOP
    data = buf.getvalue()
    return _LENGTH.pack(len(data)) + data if transport == "framed" else data


def is_probe_reply(data, protocol, transport):
    """True when ``data`` begins with a whole reply header to the probe; False when it cannot be
    one; None when more bytes are needed."""
    if transport == "framed":
        if len(data) < 4:
            return None
        data = data[4:]
    try:
        name, mtype, seqid = _PROTOCOLS[protocol](TMemoryBuffer(data)).read_message_begin()
    except Exception:  # noqa: BLE001 -- a short or foreign reply; decided by its length
        return None if len(data) < 64 else False
    return (name == PROBE_METHOD and seqid == PROBE_SEQID
            and mtype in (TMessageType.EXCEPTION, TMessageType.REPLY))


class Prober:
    """``prober(instance) -> bool``. Runs in the caller's greenlet (ejection and mass-removal
    guard greenlets); blocks at most ``connect_timeout + timeout`` seconds; never raises."""

    def __init__(self, connect_timeout=0.25, timeout=1.0, tls=None):
        self.tls = tls
        self.connect_timeout = connect_timeout
        self.timeout = timeout

    def __call__(self, instance):
        protocol = instance.protocol if instance.protocol in _PROTOCOLS else "binary"
        transport = instance.transport
        try:
            conn = Connection.open(instance, self.connect_timeout, self.tls)
        except TransportError:
            return False
        sock = conn.sock
        try:
            deadline = time.monotonic() + self.timeout
            sock.settimeout(self.timeout)
            sock.sendall(probe_request(protocol, transport))
            data = b""
            while len(data) < _MAX_REPLY:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                sock.settimeout(left)
                chunk = sock.recv(4096)
                if not chunk:
                    return False
                data += chunk
                answer = is_probe_reply(data, protocol, transport)
                if answer is not None:
                    return answer
            return False
        except OSError:  # timeouts included
            return False
        finally:
            conn.close()
