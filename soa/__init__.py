"""soa: Thrift services that find each other through etcd.

``soa.serve(...)`` runs a service; ``soa.client(name)`` calls one. Importing soa never
monkey-patches: process entry points (the CLI, the pytest plugin) call ``soa.entry.init()``.
"""

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
    "load_config",
]
