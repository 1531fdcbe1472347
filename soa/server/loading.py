"""Turning ``soa.yaml``'s names into objects: the IDL service, the handler, the middleware."""

import importlib
import inspect
import sys
from pathlib import Path

from soa import idl as idl_module
from soa.errors import ConfigError
from soa.middleware import load_middleware

from .context import ServiceContext


def service_class(service):
    """``(idl module, thriftpy2 service class)`` for a ``ServiceConfig``."""
    module = idl_module.load(service.idl)
    cls = idl_module.find_service(module, service.thrift_service)
    if cls is None:
        raise ConfigError(f"IDL {service.idl} defines no service {service.thrift_service!r}",
                          path=f"services.{service.name}.service")
    return module, cls


def add_import_paths(paths):
    """Put ``paths`` (one folder or several; ``Config.import_paths``) first on ``sys.path``."""
    if paths is None:
        return
    for path in reversed([paths] if isinstance(paths, (str, Path)) else list(paths)):
        if str(path) not in sys.path:
            sys.path.insert(0, str(path))


def import_handler(spec, service_name, root=None):
    """Import ``module.path:ClassName``; ``ConfigError`` naming the service when that fails.

    ``root`` (``Config.import_paths``: by default the folder of soa.yaml) is put on
    ``sys.path`` first, so handler modules are found relative to the config however the process
    was started.
    """
    add_import_paths(root)
    module_name, _, attribute = spec.partition(":")
    try:
        return getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as e:
        raise ConfigError(f"cannot import handler {spec!r}: {e}",
                          path=f"services.{service_name}.handler") from e


def build_handler(handler, context):
    """The handler object: ``handler`` may be an object, a class, or ``module:Class``.

    A class is called with ``context`` when its ``__init__`` takes one argument, else with none.
    """
    if handler is None:
        handler = context.service.handler
    if isinstance(handler, str):
        handler = import_handler(handler, context.service.name, context.config.import_paths)
    if not isinstance(handler, type):
        return handler
    try:
        params = [
            p for p in inspect.signature(handler).parameters.values()
            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)
        ]
    except (TypeError, ValueError):
        params = []
    return handler(context) if len(params) == 1 else handler()


def user_middleware(service, root=None):
    """The service's middleware from soa.yaml, outermost first."""
    add_import_paths(root)
    return [load_middleware(path) for path in service.middleware]


def make_context(config, service, idl):
    return ServiceContext(config, service, idl)
