"""What a handler gets when it is built: ``ServiceContext``."""

import importlib
import logging
from pathlib import Path

log = logging.getLogger("soa.server")


class ServiceContext:
    """Passed to ``HandlerClass(context)`` when the handler's ``__init__`` takes one argument.

    - ``config``: the whole ``Config`` (frozen).
    - ``service``: this service's ``ServiceConfig``.
    - ``idl``: the thriftpy2 module of the service's IDL (``soa.idl.load``), so exception and
      struct classes are the very objects the server serializes.
    - ``data_dir``: a ``pathlib.Path`` for the service's own files, by default
      ``<config root>/.soa/data/<service>``; created on first access.
    - ``client(name, **options)``: a soa client of another service, bound to the same Config.
    - ``on_close(callback)``: run ``callback()`` when the server has stopped (after its last
      call), for what the handler opened: databases, pools, background greenlets.
    - ``add_metrics(collect)``: the handler's own series on the instance's ``/metrics``.

    One context per handler instance (per worker process); it is read-only.
    """

    def __init__(self, config, service, idl, data_dir=None):
        self.config = config
        self.service = service
        self.idl = idl
        self._data_dir = Path(data_dir) if data_dir else None
        self._clients = {}
        self._clients_factory = None
        self._on_close = []
        self._metrics = []

    @property
    def name(self):
        return self.service.name

    @property
    def data_dir(self):
        if self._data_dir is None:
            self._data_dir = Path(self.config.root) / ".soa" / "data" / self.service.name
        self._data_dir.mkdir(parents=True, exist_ok=True)
        return self._data_dir

    def client(self, name, **options):
        """A client of service ``name``, bound to the same Config.

        Clients are cached per name and options and share one resolver (one etcd connection,
        one watch per service) through a ``soa.clients.Clients``; the server closes them all when
        it stops.
        """
        key = (name, tuple(sorted(options.items())))
        try:
            return self._clients[key]
        except TypeError:  # an unhashable option (a function): build a fresh client
            return self._factory().client(name, **options)
        except KeyError:
            made = self._clients[key] = self._factory().client(name, **options)
            return made

    def _factory(self):
        if self._clients_factory is None:
            self._clients_factory = importlib.import_module("soa.clients").Clients(self.config)
        return self._clients_factory

    def clients(self):
        """The clients this context made so far (for the metrics endpoint)."""
        factory = self._clients_factory
        return list(factory) if factory is not None else []

    def on_close(self, callback):
        """Call ``callback()`` once the server has stopped serving. Callbacks run last
        registered first (what was opened last closes first), before the context's clients
        close; one that raises is logged and the rest still run."""
        self._on_close.append(callback)
    def add_metrics(self, collect):
        """Serve the handler's own series: ``collect()`` returns prometheus-client metric
        families and is called at scrape time, in the metrics endpoint's greenlet. It must not
        raise; it must not block (read plain counters)."""
        self._metrics.append(collect)

    def metric_families(self):
        """The families of every ``add_metrics`` source, in the order they were added."""
        for collect in self._metrics:
            yield from collect()

    def close(self):
        """Run the ``on_close`` callbacks, then close the clients this context made (the server
        calls it once stopped)."""
        callbacks, self._on_close = self._on_close, []
        for callback in reversed(callbacks):
            try:
                callback()
            except Exception:  # noqa: BLE001 -- one failed cleanup must not stop the others
                log.exception("%s: on_close callback %r failed", self.service.name, callback)
        factory, self._clients_factory, self._clients = self._clients_factory, None, {}
        if factory is not None:
            factory.close()

    def __repr__(self):
        return f"ServiceContext({self.service.name!r})"
