"""The HTTP endpoint of one instance: ``/metrics`` (Prometheus text), ``/healthz``, ``/readyz``.

``Endpoint(listener, collect, ready)`` serves on an already bound gevent socket (``listen``
binds one, so its port can go into the registry value before anything is served). ``collect()``
returns an iterable of prometheus-client metric families, built at scrape time; prometheus-client's
process, platform and GC collectors are added unless ``process=False`` (the pre-fork master, whose
workers report theirs). ``ready()`` decides ``/readyz``: 200 while true, else 503. ``/healthz`` is
200 while the process lives. Requests are served by gevent's WSGI server in greenlets of the
process's hub; a collector that raises gives a 500 and a log line, never a dead endpoint.
"""

import logging

from soa.errors import ConfigError

log = logging.getLogger("soa.metrics")


class _Collector:
    """A prometheus-client collector around a function returning metric families."""

    def __init__(self, collect):
        self._collect = collect

    def collect(self):
        return list(self._collect())


def make_registry(collect, process=True):
    """A fresh ``CollectorRegistry`` (never prometheus-client's global one) over ``collect``."""
    from prometheus_client import (CollectorRegistry, GCCollector, PlatformCollector,
                                   ProcessCollector)

    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Collector(collect))
    if process:
        ProcessCollector(registry=registry)
        PlatformCollector(registry=registry)
        GCCollector(registry=registry)
    return registry


def listen(host, port):
    """A bound, listening gevent socket for the endpoint; ``ConfigError`` naming the address."""
    from soa.server.runtime import listen as listen_tcp

    try:
        return listen_tcp(host, port, backlog=64)
    except ConfigError as e:
        raise ConfigError(f"metrics endpoint: {e}") from e


class Endpoint:
    """Serves one registry. ``start()`` returns self; ``port`` is the bound port; ``stop()``
    closes it (idempotent)."""

    def __init__(self, listener, collect, ready=lambda: True, process=True):
        self.listener = listener
        self.port = listener.getsockname()[1]
        self.registry = make_registry(collect, process)
        self.ready = ready
        self._server = None

    def start(self):
        from gevent.pywsgi import WSGIServer

        self._server = WSGIServer(self.listener, self.app, log=None, error_log=log)
        self._server.start()
        return self

    def stop(self):
        server, self._server = self._server, None
        if server is not None:
            server.stop(timeout=1)

    def app(self, environ, start_response):
        path = environ.get("PATH_INFO", "")
        if path == "/metrics":
            from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

            try:
                body = generate_latest(self.registry)
            except Exception:  # noqa: BLE001 -- a broken collector must not kill the endpoint
                log.exception("collecting metrics failed")
                return _reply(start_response, "500 Internal Server Error", b"collect failed\n")
            return _reply(start_response, "200 OK", body, CONTENT_TYPE_LATEST)
        if path == "/healthz":
            return _reply(start_response, "200 OK", b"ok\n")
        if path == "/readyz":
            if self.ready():
                return _reply(start_response, "200 OK", b"ready\n")
            return _reply(start_response, "503 Service Unavailable", b"not ready\n")
        return _reply(start_response, "404 Not Found", b"not found: /metrics /healthz /readyz\n")


def _reply(start_response, status, body, content_type="text/plain; charset=utf-8"):
    start_response(status, [("Content-Type", content_type), ("Content-Length", str(len(body)))])
    return [body]


def server_families(server, registration=True):
    """Every series of a running ``soa.server.Server``: its calls, the clients its handler
    made, and (unless ``registration=False``: a pre-fork worker, whose master registers) its
    registration. Called at scrape time, in the endpoint's greenlet."""
    from soa.clients.metrics import client_families

    connections = list(server.connections)
    yield from server.metrics.families(inflight=sum(c.busy for c in connections),
                                       connections=len(connections))
    context = server.context
    clients = context.clients() if context is not None else ()
    yield from client_families(clients)
    if context is not None:
        yield from context.metric_families()
    if registration:
        yield from registry_families(server.service.name, server.registrar)


def registry_families(service, registrar):
    """``soa_registry_*`` of one registering process (zeros before it registers)."""
    from prometheus_client.core import CounterMetricFamily

    counts = registrar.counters() if registrar is not None and hasattr(
        registrar, "counters") else {}
    for key, name, documentation in (
            ("renewals", "soa_registry_lease_renewals", "Lease renewals."),
            ("lost", "soa_registry_leases_lost", "Leases found lost (expired or revoked)."),
            ("registrations", "soa_registry_registrations",
             "Writes of the instance's key after the first (registered again).")):
        family = CounterMetricFamily(name, documentation, labels=("service",))
        family.add_metric((service,), counts.get(key, 0))
        yield family
