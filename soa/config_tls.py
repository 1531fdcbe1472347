"""soa.yaml's ``tls:`` sections for calls: ``services.X.tls`` (a server's) and ``client.tls``.

Part of ``soa.config``: paths are relative to soa.yaml's folder and must exist.
"""

from ._check import _MISSING
from .tls import ClientTls, ServerTls


def existing_file(f, name, root, required=False):
    """A file path relative to soa.yaml's folder, which must exist."""
    text = f.str(name, _MISSING if required else None)
    if text is None:
        return None
    path = (root / text).resolve()
    if not path.is_file():
        raise f.fail(f.key(name), f"no such file: {text}")
    return str(path)


def parse_server_tls(f, root):
    if not f.data:
        return None
    tls = ServerTls(cert=existing_file(f, "cert", root, True),
                    key=existing_file(f, "key", root, True), ca=existing_file(f, "ca", root),
                    require_client_cert=f.bool("require_client_cert", False))
    if tls.require_client_cert and not tls.ca:
        raise f.fail(f.key("require_client_cert"), "needs tls.ca: the CA whose clients to accept")
    f.done()
    return tls


def parse_client_tls(f, root):
    if not f.data:
        return None
    tls = ClientTls(ca=existing_file(f, "ca", root), cert=existing_file(f, "cert", root),
                    key=existing_file(f, "key", root), server_name=f.str("server_name", None))
    if bool(tls.cert) != bool(tls.key):
        raise f.fail(f.key("cert" if tls.key else "key"), "cert and key go together")
    f.done()
    return tls
