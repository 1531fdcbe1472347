"""The soa client runtime: ``client(service, config=None, **options)`` and ``Clients``.

``soa.client`` is the function; this package is ``soa.clients``, so its modules import by a name
of their own (``import soa.clients.discovery``).

A client follows the registry through a Resolver (watch-driven, no etcd round trip per call),
balances over the instances with a Balancer's immutable Picker, keeps a connection pool per
instance, and runs every call under middleware: metrics, deadline, retry (with a budget),
outlier ejection.

This package imports its parts (gevent, thriftpy2) on first use, so ``import soa`` stays light
and process entry points can monkey-patch before anything heavy is loaded.
"""

_LAZY = {
    "Client": "service_client",
    "Clients": "service_client",
    "Discovery": "discovery",
    "StaticResolver": "discovery",
    "RetryBudget": "retry",
    "ServedBy": "served",
}


def client(service, config=None, **options):
    """A client of ``service``; see ``soa.clients.service_client.client`` for the options."""
    from .service_client import client as make

    return make(service, config, **options)


def __getattr__(name):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"{__name__}.{module}"), name)


__all__ = [
    "Client", "Clients", "Discovery", "RetryBudget", "ServedBy", "StaticResolver", "client",
]
