"""The soa server runtime: serve one service from soa.yaml on gevent, registered in etcd.

``serve(...)`` is the entry point (``soa serve`` calls it); ``Server`` is one process's serving
state; ``ServiceContext`` is what a handler is built with.
"""

from dataclasses import replace
from pathlib import Path

from .context import ServiceContext
from .runtime import Server

__all__ = ["Server", "ServiceContext", "serve"]


def serve(service_name, config=None, *, handler=None, host=None, port=None, advertise=None,
          workers=None, block=True, grace=None, drain_timeout=None):
    """Serve ``service_name`` as ``config`` (a ``Config``, a path, or None for ./soa.yaml) says.

    Keyword arguments override the service's config. ``handler`` may be an object, a class or
    ``"module:Class"`` (default: the configured one). With ``block=True`` it serves until
    SIGTERM/SIGINT, runs the stop sequence and returns the stopped ``Server``; with
    ``block=False`` it returns the running ``Server`` once it listens and is registered (call
    ``.stop()``). ``workers > 1`` forks worker processes and needs ``block=True``; call it
    before this process creates any etcd/grpc client (``soa serve`` does), since forked workers
    inherit the process's state.
    Raises ``ConfigError`` for an unknown service or a bad config.
    """
    from soa.config import Config, load_config
    from soa.errors import ConfigError

    if not isinstance(config, Config):
        config = load_config(str(config) if isinstance(config, Path) else config)
    overrides = {
        "host": host,
        "port": port,
        "advertise": advertise,
        "workers": workers,
        "grace_period": grace,
        "drain_timeout": drain_timeout,
    }
    service = replace(config.service(service_name),
                      **{k: v for k, v in overrides.items() if v is not None})
    config = replace(config, etcd=config.etcd_for(service_name))  # its own etcd credentials
    if service.workers > 1:
        if not block:
            raise ConfigError(f"services.{service_name}.workers: {service.workers} workers need"
                              " block=True (the master owns the process)")
        from .prefork import Master

        return Master(config, service, handler).run()
    if not block:
        return Server(config, service, handler).start()
    import gevent
    import gevent.event

    from .signals import on_stop_signals

    # Handlers go in before the server starts, so a signal that arrives while it is starting
    # or registering still gets the graceful stop, once the start has finished.
    requested = gevent.event.Event()
    uninstall = on_stop_signals(lambda signum: requested.set())
    try:
        server = Server(config, service, handler).start()
        stopper = gevent.spawn(lambda: requested.wait() and server.stop())
        server.wait()
        stopper.kill()
    finally:
        uninstall()
    return server
