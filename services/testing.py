"""Testing helpers for the shop: a stand-in ``ServiceContext`` wiring handlers in one process.

Plain Python, no I/O: ``client(name)`` returns the other service's handler object itself, whose
methods have the IDL's names and signatures. For unit tests of business logic only; the
integration tests run real servers.
"""

from pathlib import Path

from soa import idl as idl_loader
from soa.config import load_config

ROOT = Path(__file__).resolve().parent.parent


class Down:
    """A service that cannot be reached: every call raises a soa ``TransportError``."""

    def __getattr__(self, name):
        from soa.errors import TransportError

        def call(*args):
            raise TransportError("connection refused", address="127.0.0.1:1", sent=False)

        return call


class StandInContext:
    def __init__(self, shop, name):
        self.shop = shop
        self.config = shop.config
        self.service = shop.config.service(name)
        self.idl = idl_loader.load(self.service.idl)
        self.data_dir = shop.data_dir / name
        self.data_dir.mkdir(parents=True, exist_ok=True)

    def client(self, name, **options):
        return _Late(self.shop, name)


class _Late:
    """Resolves the peer handler at call time, so handlers can be built in any order."""

    def __init__(self, shop, name):
        self._shop = shop
        self._name = name

    def __getattr__(self, method):
        return getattr(self._shop.handlers.get(self._name, Down()), method)


class StandInShop:
    def __init__(self, data_dir):
        self.config = load_config(str(ROOT / "soa.yaml"))
        self.data_dir = Path(data_dir)
        self.handlers = {}

    def context(self, name):
        return StandInContext(self, name)

    def start(self, name, **kwargs):
        cls_path = self.config.service(name).handler
        module, _, attr = cls_path.partition(":")
        import importlib

        cls = getattr(importlib.import_module(module), attr)
        self.handlers[name] = cls(self.context(name), **kwargs)
        return self.handlers[name]
