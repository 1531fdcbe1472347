"""``Server``: listen, serve connections, register, and stop without dropping a call.

Stop sequence (``Server.stop``): deregister and revoke the lease; keep serving for
``grace_period`` so clients see the removal; stop accepting; let calls in flight finish (up to
``drain_timeout``; a connection closes after the call it is serving); close what is left.
"""

import logging
import os
import secrets
import socket
import time

import gevent
import gevent.event
from gevent import socket as gsocket

from soa.registry.instance import Instance
from soa.errors import ConfigError, DiscoveryError, EtcdAuthError
from soa.idl import idl_hash
from soa.tls import server_context

from . import loading
from .access_log import access_log
from .connection import Connection, serve_connection
from .metrics import Metrics
from .processor import Processor

log = logging.getLogger("soa.server")


class State:
    __slots__ = ("draining",)

    def __init__(self):
        self.draining = False


def listen(host, port, backlog=1024):
    """A listening gevent socket; ``ConfigError`` when the address cannot be bound."""
    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = gsocket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(backlog)
    except OSError as e:
        raise ConfigError(f"cannot listen on {host}:{port}: {e.strerror or e}") from e
    return sock


def advertised_host(service):
    if service.advertise:
        return service.advertise
    return "127.0.0.1" if service.host in ("0.0.0.0", "", "::") else service.host


def new_instance_id():
    """A fresh instance id: callers send it back, so a reused port cannot take their calls."""
    return secrets.token_hex(8)


def make_instance(service, service_cls, port, pid=None, instance_id="", metrics_port=0):
    """The registry value this process publishes for ``service`` on ``port``."""
    return Instance(
        service=service.name,
        host=advertised_host(service),
        port=port,
        weight=service.weight,
        protocol=service.protocol,
        transport=service.transport,
        version=service.version,
        idl_hash=idl_hash(service_cls),
        tags=service.tags,
        pid=pid or os.getpid(),
        started_at=round(time.time(), 3),
        id=instance_id,
        theader=True,
        tls=service.tls is not None,
        metrics_port=metrics_port,
    )


class Server:
    """One service served in this process.

    ``start()`` binds (unless given a ``listener``), builds the handler and the middleware chain,
    starts accepting, then registers (unless ``register=False``) and returns. ``address`` is the
    bound ``(host, port)``, ``instance`` the registered ``Instance``, ``metrics`` the per-method
    ``Metrics``, ``connections`` the live connections. ``stop()`` runs the stop sequence and is
    idempotent; ``wait()`` blocks until stopped. Everything runs in this process's gevent hub.
    """

    def __init__(self, config, service, handler=None, *, listener=None, register=True,
                 instance_id=None, endpoint=True):
        self.config = config
        self.service = service
        self.metrics = Metrics(service.name)
        self.connections = set()
        self.refused = 0
        self.address = None
        self.instance = None
        self.handler = None
        self.context = None
        self._handler_spec = handler
        self.instance_id = instance_id or new_instance_id()  # pre-fork workers share one
        self._listener = listener
        self._register = register
        self._registrar = None
        self._endpoint_wanted = endpoint and service.metrics  # /metrics; see soa.observe
        self.endpoint = None
        self._state = State()
        self._acceptor = None
        self._sweeper = None
        self._stopping = False
        self._stopped = gevent.event.Event()

    # -- start -------------------------------------------------------------------------------

    def start(self):
        service = self.service
        idl, service_cls = loading.service_class(service)
        context = self.context = loading.make_context(self.config, service, idl)
        self.handler = loading.build_handler(self._handler_spec, context)
        measured = service.metrics
        middlewares = [access_log]
        middlewares += loading.user_middleware(service, self.config.import_paths)
        self.tls = server_context(service.tls) if service.tls is not None else None
        self.processor = Processor(service.name, service_cls, self.handler, middlewares,
                                   self.metrics if measured else None, self.instance_id)
        if self._listener is None:
            self._listener = listen(service.host, service.port)
        self.address = self._listener.getsockname()[:2]
        metrics_port = self._start_endpoint()
        self.instance = make_instance(service, service_cls, self.address[1],
                                      instance_id=self.instance_id, metrics_port=metrics_port)
        self._acceptor = gevent.spawn(self._accept_loop)
        self._sweeper = gevent.spawn(self._sweep_idle)
        log.info("%s listening on %s:%s (%s/%s)", service.name, self.address[0],
                 self.address[1], service.protocol, service.transport)
        if self._register:
            try:
                self._registrar = register(self.config.etcd, self.instance)
            except EtcdAuthError:
                self.close()  # refused for good: do not serve unregistered
                raise
        return self

    def _start_endpoint(self):
        """Serve /metrics, /healthz and /readyz on ``metrics_port``; returns the bound port."""
        if not self._endpoint_wanted:
            return 0
        from soa.observe.endpoint import Endpoint, listen as listen_http, server_families

        listener = listen_http(self.service.host, self.service.metrics_port)
        self.endpoint = Endpoint(listener, lambda: server_families(self), self.ready).start()
        log.info("%s metrics on http://%s:%s/metrics", self.service.name,
                 advertised_host(self.service), self.endpoint.port)
        return self.endpoint.port

    @property
    def registrar(self):
        """The ``EtcdRegistrar`` keeping this instance registered, or None."""
        return self._registrar

    def ready(self):
        """``/readyz``: serving, registered (when it registers), and no stop has begun."""
        if self._stopping or self._acceptor is None or self._stopped.is_set():
            return False
        if not self._register:
            return True
        registrar = self._registrar
        return registrar is not None and registrar.lease_id(self.instance) is not None

    def _accept_loop(self):
        listener = self._listener
        limit = self.service.max_connections
        connections = self.connections
        state = self._state
        while True:
            try:
                sock, addr = listener.accept()
            except OSError as e:
                if self._listener is None:
                    return
                log.warning("accept failed: %s", e)
                gevent.sleep(0.05)  # e.g. out of file descriptors: let connections close
                continue
            if len(connections) >= limit:
                self.refused += 1
                log.warning("refusing %s:%s: %d connections (max_connections)", addr[0],
                            addr[1], limit)
                sock.close()
                continue
            conn = Connection(sock, f"{addr[0]}:{addr[1]}", state)
            connections.add(conn)
            conn.greenlet = gevent.spawn(self._serve, conn)

    def _sweep_idle(self):
        """Close connections that made no progress for ``idle_timeout`` (no call, no bytes)."""
        timeout = self.service.idle_timeout
        interval = min(max(timeout / 4, 0.02), 5.0)
        while True:
            gevent.sleep(interval)
            now = time.monotonic()
            for conn in list(self.connections):
                if conn.idle_for(now) >= timeout and conn.greenlet is not None:
                    log.info("closing %s: idle for %.1fs (idle_timeout)", conn.peer, timeout)
                    conn.greenlet.kill(block=False)

    def _serve(self, conn):
        try:
            serve_connection(conn, self.processor, self.service, self.tls)
        finally:
            self.connections.discard(conn)

    # -- stop --------------------------------------------------------------------------------

    @property
    def stopped(self):
        return self._stopped.is_set()

    def wait(self, timeout=None):
        """Block until the server has stopped; True when it has."""
        return self._stopped.wait(timeout)

    def deregister(self):
        """Step 1: remove the instance from the registry and revoke its lease."""
        if self._registrar is not None:
            registrar, self._registrar = self._registrar, None
            registrar.deregister(self.instance)
            registrar.close()
            log.info("%s deregistered", self.instance.address)

    def stop(self, grace=None, drain_timeout=None):
        """The stop sequence; returns once stopped. Safe to call again (it then just waits)."""
        if self._stopping:
            self._stopped.wait()
            return
        self._stopping = True
        grace = self.service.grace_period if grace is None else grace
        drain_timeout = self.service.drain_timeout if drain_timeout is None else drain_timeout
        try:
            self.deregister()
            if grace > 0:
                log.info("grace period: serving %.1fs more", grace)
                gevent.sleep(grace)
            self.stop_accepting()
            self.drain(drain_timeout)
        finally:
            self.close()

    def stop_accepting(self):
        """Step 3: close the listening socket (other processes sharing it keep theirs)."""
        listener, self._listener = self._listener, None
        if self._acceptor is not None:
            self._acceptor.kill(block=True)
        if listener is not None:
            listener.close()

    def drain(self, timeout):
        """Step 4: connections close after their current call; wait for calls in flight."""
        self._state.draining = True
        deadline = time.monotonic() + timeout
        while any(c.busy for c in self.connections):
            if time.monotonic() >= deadline:
                busy = sum(c.busy for c in self.connections)
                log.warning("drain timeout (%.1fs): abandoning %d call(s) in flight", timeout, busy)
                break
            gevent.sleep(0.01)

    def close(self):
        """Step 5: close every remaining connection (idle ones, or calls past the timeout)."""
        self._state.draining = True
        self.stop_accepting()
        greenlets = [c.greenlet for c in list(self.connections) if c.greenlet is not None]
        gevent.killall(greenlets, block=True, timeout=2)
        if self._sweeper is not None:
            self._sweeper.kill(block=False)
        self.deregister()
        if self.context is not None:
            self.context.close()
        if self.endpoint is not None:
            self.endpoint.stop()
        self._stopped.set()
        log.info("%s stopped", self.service.name)

    def stats(self):
        """Live counters: open connections, calls in flight, connections refused."""
        return {
            "connections": len(self.connections),
            "busy": sum(c.busy for c in self.connections),
            "refused": self.refused,
        }


def register(etcd_config, instance):
    """Register ``instance``; when etcd is unreachable, log and keep trying in the background.
    ``EtcdAuthError`` (credentials or permission refused) is raised: serving unregistered for
    good would be silent."""
    from soa.registry.registrar import EtcdRegistrar

    registrar = EtcdRegistrar(etcd_config)
    try:
        registrar.register(instance)
    except EtcdAuthError:
        registrar.close()
        raise
    except DiscoveryError as e:
        log.warning("not registered yet, serving anyway: %s", e)
    return registrar
