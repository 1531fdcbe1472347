"""TLS on calls: the settings soa.yaml gives, the ``ssl`` contexts built from them, and errors
told in one line.

A server with ``services.X.tls`` serves TLS only and registers ``"tls": true``; with
``require_client_cert`` it refuses clients without a certificate its ``ca`` signed. A client
dials an instance with TLS exactly when its registry value says ``tls``, verifying the server's
certificate against ``client.tls.ca`` (else the system's trust store) for ``server_name`` (else the
instance's host). Contexts are built once, at start, from files checked when soa.yaml is read.
"""

import functools
import ssl
from dataclasses import dataclass

from .errors import ConfigError


@dataclass(frozen=True)
class ServerTls:
    cert: str
    key: str
    ca: str | None = None
    require_client_cert: bool = False

    def __repr__(self):  # the key file's path is not a secret, but say what it is
        return (f"ServerTls(cert={self.cert!r}, key=<{self.key}>, ca={self.ca!r}, "
                f"require_client_cert={self.require_client_cert})")


@dataclass(frozen=True)
class ClientTls:
    ca: str | None = None
    cert: str | None = None
    key: str | None = None
    server_name: str | None = None


def server_context(tls):
    """The server's ``SSLContext`` (TLS 1.2 or later); ``ConfigError`` when a file is unusable."""
    from gevent import ssl as cooperative  # its contexts wrap sockets that yield to the hub

    context = cooperative.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    _load(context, tls.cert, tls.key, "tls")
    if tls.ca:
        _trust(context, tls.ca)
    if tls.require_client_cert:
        if not tls.ca:
            raise ConfigError("tls.require_client_cert needs tls.ca (whose clients to accept)")
        context.verify_mode = ssl.CERT_REQUIRED
    return context


def client_context(tls):
    """The client's ``SSLContext``: verifies servers; presents a certificate when given one."""
    from gevent import ssl as cooperative

    tls = tls or ClientTls()
    context = cooperative.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # verifies the chain and host
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if tls.ca:
        _trust(context, tls.ca)
    else:
        context.load_default_certs()
    if tls.cert:
        _load(context, tls.cert, tls.key, "client.tls")
    return context


@functools.cache
def context_for(tls):
    """``client_context(tls)``, built once per (frozen, hashable) ``ClientTls``; None gives the
    system's CAs and no client certificate."""
    return client_context(tls)


def _load(context, cert, key, where):
    try:
        context.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as e:
        raise ConfigError(f"{where}: cannot load the certificate {cert} and its key: "
                          f"{describe(e)}") from e


def _trust(context, ca):
    try:
        context.load_verify_locations(cafile=ca)
    except (OSError, ssl.SSLError) as e:
        raise ConfigError(f"cannot load the CA file {ca}: {describe(e)}") from e


def describe(error):
    """One line for an ``ssl`` or OS error: the library's reason, not its tuple."""
    if isinstance(error, ssl.SSLCertVerificationError):
        return f"certificate verify failed: {error.verify_message}"
    if isinstance(error, ssl.SSLError):
        reason = error.reason or ""
        text = reason.replace("_", " ").lower() if reason else str(error)
        return text
    if isinstance(error, OSError):
        return error.strerror or str(error)
    return str(error)
