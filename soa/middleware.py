"""Middleware: ``Middleware = Callable[[Handler], Handler]``, the same shape on client and server.

A ``Handler`` takes a ``Call`` and returns the method's result or raises. Retry, timeout,
ejection, metrics and access logging are each one middleware; ``chain(a, b, c)(h)`` is
``a(b(c(h)))``, so ``a`` sees the call first.
"""

from dataclasses import dataclass, field
from functools import reduce
from typing import Any
from collections.abc import Callable


@dataclass(slots=True)
class Call:
    """One RPC as middleware sees it.

    ``args`` are the positional arguments in IDL order. ``deadline`` is a ``time.monotonic()``
    instant or None. ``peer`` is the remote address (the server's view) or the chosen instance's
    address (the client's view, once picked). ``meta`` is free for middleware to share data.
    """

    service: str
    method: str
    args: tuple = ()
    deadline: float | None = None
    peer: str | None = None
    meta: dict = field(default_factory=dict)


Handler = Callable[[Call], Any]
Middleware = Callable[[Handler], Handler]


def chain(*middlewares: Middleware) -> Middleware:
    """Compose middlewares; the first one given is the outermost."""

    def compose(handler: Handler) -> Handler:
        return reduce(lambda h, m: m(h), reversed(middlewares), handler)

    return compose


def load_middleware(path):
    """Import ``module.path:factory``; the factory returns a Middleware."""
    import importlib

    from .errors import ConfigError

    module_name, _, attribute = path.partition(":")
    try:
        factory = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as e:
        raise ConfigError(f"cannot load middleware {path!r}: {e}") from e
    return factory()
