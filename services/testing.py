"""Testing helpers for the shop: a stand-in ``ServiceContext`` wiring handlers in one process.

Plain Python, no I/O: ``client(name)`` returns the other service's handler object itself, whose
methods have the IDL's names and signatures. For unit tests of business logic only; the
integration tests run real servers.
"""

from dataclasses import replace
from pathlib import Path
from types import MappingProxyType

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
        extra = shop.settings(name) if shop.settings else None
        if extra:
            self.service = replace(self.service,
                                   settings=MappingProxyType({**self.service.settings, **extra}))
        self.idl = idl_loader.load(self.service.idl)
        self.data_dir = shop.data_dir / name
        self.data_dir.mkdir(parents=True, exist_ok=True)

    def client(self, name, **options):
        return _Late(self.shop, name)

    def on_close(self, callback):
        self.shop.closing.append(callback)


class _Late:
    """Resolves the peer handler at call time, so handlers can be built in any order."""

    def __init__(self, shop, name):
        self._shop = shop
        self._name = name

    def __getattr__(self, method):
        return getattr(self._shop.handlers.get(self._name, Down()), method)


class StandInShop:
    """``settings(name)`` (optional) gives extra ``services.X.settings`` per service, e.g. the
    database URL of a test's backend."""

    def __init__(self, data_dir, settings=None):
        self.settings = settings
        self.config = load_config(str(ROOT / "soa.yaml"))
        self.data_dir = Path(data_dir)
        self.handlers = {}
        self.closing = []  # the contexts' on_close callbacks

    def context(self, name):
        return StandInContext(self, name)

    def start(self, name, **kwargs):
        cls_path = self.config.service(name).handler
        module, _, attr = cls_path.partition(":")
        import importlib

        cls = getattr(importlib.import_module(module), attr)
        self.handlers[name] = cls(self.context(name), **kwargs)
        return self.handlers[name]

    def close(self):
        """What a server does once stopped: the handlers' ``on_close`` callbacks, last first."""
        callbacks, self.closing = self.closing, []
        for callback in reversed(callbacks):
            callback()


class RunningShop:
    """Some of the shop's services as real ``soa serve`` processes, for integration tests.

    Writes a soa.yaml under ``tmp_dir`` (so every service's database lives there) pointing at
    the test's etcd and prefix, starts ``instances`` processes of each named service, and gives
    clients through one ``Clients``. Use as a context manager: everything stops on exit.
    """

    def __init__(self, tmp_dir, etcd_config, instances, client=None, settings=None):
        """``settings(name)`` (optional): extra ``services.X.settings``, e.g. a database URL."""
        from soa.fleet import run_config

        self.instances = dict(instances)
        overrides = {name: {"instances": n} for name, n in self.instances.items()}
        if settings is not None:
            for name in overrides:
                overrides[name]["settings"] = dict(settings(name) or {})
        self.path = run_config(ROOT / "soa.yaml", tmp_dir, etcd_config.endpoints[0],
                                prefix=etcd_config.prefix, lease_ttl=etcd_config.lease_ttl,
                                overrides=overrides)
        if client:
            import yaml

            data = yaml.safe_load(self.path.read_text())
            data["client"] = {**data.get("client", {}), **client}
            self.path.write_text(yaml.safe_dump(data, sort_keys=False))
        self.config = load_config(str(self.path))
        self.data_root = Path(tmp_dir) / ".soa" / "data"
        self.shop = None
        self.clients = None

    def start(self, timeout=60):
        from soa.clients import Clients
        from soa.fleet import Fleet

        self.shop = Fleet(self.path, self.config.etcd.endpoints[0],
                         services=[n for n, c in self.instances.items() if c])
        self.clients = Clients(self.config)
        try:
            self.shop.start(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def client(self, name, **options):
        return self.clients.client(name, **options)

    def children(self, service):
        return [c for c in self.shop.children if c.service == service]

    def start_service(self, service, index=0, timeout=30):
        child = self.shop.spawn(service, index)
        self.shop.wait_registered([child], timeout)
        return child

    def idl(self, name):
        return idl_loader.load(self.config.service(name).idl)

    def stop(self):
        if self.clients is not None:
            self.clients.close()
        if self.shop is not None:
            self.shop.stop()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
