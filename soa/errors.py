"""The soa error hierarchy.

Every error soa raises is a ``SoaError``. Errors wrap their cause (``raise ... from cause``);
callers branch on the type, never on the message. Exceptions declared in a service's IDL are
not part of this hierarchy: they pass through soa untouched, as their own types.
"""

import functools


class SoaError(Exception):
    """Root of every error raised by soa itself."""


class ConfigError(SoaError):
    """A configuration value is wrong. ``str()`` is one line: ``file: key.path: what is wrong``."""

    def __init__(self, message, *, source=None, path=None):
        self.source = source
        self.path = path
        self.detail = message
        parts = [p for p in (source, path) if p]
        super().__init__(": ".join(parts + [message]))


class IdlError(ConfigError):
    """An IDL file does not load. Carries the file, line (when known) and the parser's message."""


class DiscoveryError(SoaError):
    """The registry could not be read or written."""


class EtcdAuthError(DiscoveryError):
    """etcd refused the credentials (wrong user or password) or the operation (permission
    denied). Retrying with the same config cannot help. The text names the endpoint, the user and
    the key; never a password."""


class NoInstanceAvailable(DiscoveryError):
    """No live instance of the service can take the call."""

    def __init__(self, service, reason="no instances registered"):
        self.service = service
        super().__init__(f"{service}: {reason}")


class ClientClosed(SoaError):
    """A call on a client after its ``close()``: nothing is sent, no connection is opened."""

    def __init__(self, service):
        self.service = service
        super().__init__(f"{service}: the client is closed")


class TransportError(SoaError):
    """A connection failed. ``sent`` tells whether the request may have reached the server."""

    def __init__(self, message, *, address=None, sent=True):
        self.address = address
        self.sent = sent
        super().__init__(f"{address}: {message}" if address else message)


class WrongTarget(TransportError):
    """The address serves another service or instance now (its port was reused after a crash);
    the server refused the call unexecuted, so it is retried elsewhere and the address dropped."""

    def __init__(self, message, *, address=None):
        super().__init__(message, address=address, sent=False)


class RpcTimeout(TransportError):
    """The call's deadline passed before the reply arrived."""


class RetryError(SoaError):
    """Every attempt failed. ``attempts`` holds each attempt's error, in order."""

    def __init__(self, service, method, attempts):
        self.service = service
        self.method = method
        self.attempts = tuple(attempts)
        last = self.attempts[-1] if self.attempts else None
        super().__init__(
            f"{service}.{method}: {len(self.attempts)} attempt(s) failed; last: {last!r}"
        )



@functools.cache
def _not_implemented_yet():
    from thriftpy2.thrift import TApplicationException

    class NotImplementedYet(TApplicationException, NotImplementedError):
        """What a generated stub raises until the method is written: a ``NotImplementedError``
        that a soa server answers as a ``TApplicationException`` (``UNKNOWN``) with its message,
        since the text is the framework's own and says nothing private. Other unexpected
        exceptions reach the caller only as an error id."""

        def __init__(self, message):
            TApplicationException.__init__(self, TApplicationException.UNKNOWN, message)

    NotImplementedYet.__module__ = __name__
    NotImplementedYet.__qualname__ = "NotImplementedYet"
    return NotImplementedYet


def __getattr__(name):
    # NotImplementedYet builds on thriftpy2, which ``import soa`` does not load.
    if name == "NotImplementedYet":
        return _not_implemented_yet()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
