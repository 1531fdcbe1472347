"""soa: Thrift services that find each other through etcd.

``soa.serve(...)`` runs a service; ``soa.client(name)`` calls one. Importing soa never
monkey-patches: process entry points (the CLI, the pytest plugin) call ``soa.entry.init()``.
"""

from .clients import client
from .config import Config, load_config
from .errors import (
    ConfigError,
    DiscoveryError,
    NoInstanceAvailable,
    RetryError,
    RpcTimeout,
    SoaError,
    TransportError,
)

__all__ = [
    "Config",
    "ConfigError",
    "DiscoveryError",
    "NoInstanceAvailable",
    "RetryError",
    "RpcTimeout",
    "SoaError",
    "TransportError",
    "client",
    "load_config",
    "serve",
]


def serve(service_name, config=None, **options):
    """Serve a service from soa.yaml; see ``soa.server.serve`` (imported on first use)."""
    from .server import serve as _serve

    return _serve(service_name, config, **options)
