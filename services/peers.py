"""Other services, reached only through soa clients (discovery and balancing included)."""

from soa.errors import SoaError

from .errors import is_declared


class Peers:
    """``peers.get("inventory")``: one soa client per service, built on first use and reused."""

    def __init__(self, context):
        self.context = context
        self._clients = {}

    def get(self, name):
        client = self._clients.get(name)
        if client is None:
            client = self._clients[name] = self.context.client(name)
        return client

    def close(self):
        for client in self._clients.values():
            close = getattr(client, "close", None)
            if close is not None:
                close()
        self._clients.clear()


def transient(error, codes):
    """True when a failed call may succeed if repeated: soa could not complete it, or the
    service answered UNAVAILABLE/INTERNAL. ``codes`` is the ``ErrorCode`` enum."""
    if isinstance(error, SoaError):
        return True
    if is_declared(error):
        return error.code in (codes.UNAVAILABLE, codes.INTERNAL)
    return True
