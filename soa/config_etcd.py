"""soa.yaml's ``etcd:`` section and a service's own etcd credentials (``services.X.etcd``).

Part of ``soa.config``: the parsers take a ``Fields`` view of one mapping and raise
``ConfigError`` naming the key path.
"""

import re
from dataclasses import dataclass
from pathlib import Path

from ._check import show
from .config_tls import existing_file

_ENDPOINT = re.compile(r"^(?:https?://)?(\[[0-9a-fA-F:]+\]|[A-Za-z0-9_.-]+):(\d{1,5})$")


@dataclass(frozen=True)
class TlsFiles:
    """PEM files (absolute paths): the CA to verify the server with, and this side's
    certificate and key (both or neither)."""

    ca: str | None = None
    cert: str | None = None
    key: str | None = None


@dataclass(frozen=True)
class EtcdCredentials:
    """An etcd user and its password (``services.X.etcd``). ``repr()`` hides the password."""

    user: str
    password: str

    def __repr__(self):
        return f"EtcdCredentials(user={self.user!r}, password=<redacted>)"


@dataclass(frozen=True)
class EtcdConfig:
    """How to reach etcd. ``repr()`` never shows a password."""

    endpoints: tuple[str, ...] = ("127.0.0.1:2379",)
    prefix: str = "/soa"
    lease_ttl: int = 10
    dial_timeout: float = 2.0
    user: str | None = None
    password: str | None = None
    tls: TlsFiles | None = None
    root_password: str | None = None  # only `soa etcd auth-setup` uses it

    def __repr__(self):
        def hidden(value):
            return None if value is None else "<redacted>"

        return (f"EtcdConfig(endpoints={self.endpoints!r}, prefix={self.prefix!r}, "
                f"lease_ttl={self.lease_ttl!r}, dial_timeout={self.dial_timeout!r}, "
                f"user={self.user!r}, password={hidden(self.password)}, tls={self.tls!r}, "
                f"root_password={hidden(self.root_password)})")


def parse_endpoints(f, key):
    items = f.strings(key, EtcdConfig.endpoints)
    if not items:
        raise f.fail(f.key(key), "expected at least one endpoint")
    out = []
    for i, item in enumerate(items):
        m = _ENDPOINT.match(item.strip())
        if not m or not 0 < int(m.group(2)) < 65536:
            raise f.fail(f"{f.key(key)}[{i}]", f"expected host:port, got {show(item)}")
        out.append(f"{m.group(1)}:{m.group(2)}")
    return tuple(out)


def parse_etcd(f, root):
    endpoints = parse_endpoints(f, "endpoints")
    prefix = f.str("prefix", EtcdConfig.prefix)
    if not prefix.startswith("/") or prefix.endswith("/") and prefix != "/":
        raise f.fail(f.key("prefix"), f"expected a path like /soa, got {show(prefix)}")
    tls = parse_tls_files(f.sub("tls"), root) if f.raw("tls", None) is not None else None
    user, password = f.str("user", None), f.secret("password", None)
    if (user is None) != (password is None):
        missing = "password" if password is None else "user"
        raise f.fail(f.key(missing), "etcd.user and etcd.password go together")
    config = EtcdConfig(
        endpoints=endpoints,
        prefix=prefix.rstrip("/") or "/soa",
        lease_ttl=f.int("lease_ttl", EtcdConfig.lease_ttl, lo=2, hi=3600),
        dial_timeout=f.number("dial_timeout", EtcdConfig.dial_timeout, lo=0.1, hi=60),
        user=user,
        password=password,
        tls=tls,
        root_password=f.secret("root_password", None),
    )
    f.done()
    return config


def parse_credentials(f):
    """``services.X.etcd: {user, password}``."""
    credentials = EtcdCredentials(f.str("user"), f.secret("password"))
    f.done()
    return credentials


def parse_tls_files(t, root):
    """``{ca, cert, key}``: paths relative to soa.yaml's folder, checked to exist; ``ca`` is
    required, ``cert`` and ``key`` (a client certificate) go together."""
    paths = {name: path for name in ("ca", "cert", "key")
             if (path := existing_file(t, name, Path(root))) is not None}
    t.done()
    if ("cert" in paths) != ("key" in paths):
        raise t.fail(t.key("key" if "cert" in paths else "cert"), "cert and key go together")
    if "ca" not in paths:
        raise t.fail(t.key("ca"), "is required: the CA file that etcd's certificate is checked"
                     " against")
    return TlsFiles(**paths)
