"""What a handler gets when it is built: ``ServiceContext``."""

import importlib
from pathlib import Path


class ServiceContext:
    """Passed to ``HandlerClass(context)`` when the handler's ``__init__`` takes one argument.

    - ``config``: the whole ``Config`` (frozen).
    - ``service``: this service's ``ServiceConfig``.
    - ``idl``: the thriftpy2 module of the service's IDL (``soa.idl.load``), so exception and
      struct classes are the very objects the server serializes.
    - ``data_dir``: a ``pathlib.Path`` for the service's own files, by default
      ``<config root>/.soa/data/<service>``; created on first access.
    - ``client(name, **options)``: a soa client of another service, bound to the same Config.

    One context per handler instance (per worker process); it is read-only.
    """

    def __init__(self, config, service, idl, data_dir=None):
        self.config = config
        self.service = service
        self.idl = idl
        self._data_dir = Path(data_dir) if data_dir else None
        self._clients = {}

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
        """A client of service ``name`` (``soa.client.client(name, self.config, **options)``).

        Clients are cached per name and options, and closed when the server stops.
        """
        try:
            key = (name, tuple(sorted(options.items())))
            hash(key)
        except TypeError:
            key = None
        if key is not None and key in self._clients:
            return self._clients[key]
        made = importlib.import_module("soa.client").client(name, self.config, **options)
        self._clients[key if key is not None else object()] = made
        return made

    def close(self):
        """Close the clients this context made (the server calls it once stopped)."""
        clients, self._clients = list(self._clients.values()), {}
        for made in clients:
            close = getattr(made, "close", None)
            if close is not None:
                close()

    def __repr__(self):
        return f"ServiceContext({self.service.name!r})"
