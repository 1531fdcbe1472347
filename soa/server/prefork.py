"""Pre-fork workers: one listening socket, N worker processes, one registration.

Processes: the **master** (the pid you signal) binds the socket, then forks a **supervisor**
before it creates any etcd/grpc client (grpc does not survive ``fork``), then registers the single
instance and owns its lease. The supervisor never runs the gevent hub and never touches grpc, so
it can fork at any time: it forks N **workers**, restarts any that dies, and on SIGTERM passes
SIGTERM to every worker and waits for them. Each worker calls ``gevent.reinit()``, builds the
handler and runs the accept loop on the shared socket; on SIGTERM it stops accepting, drains and
exits 0. Supervisor and workers exit when their parent disappears.

Metrics (``services.X.metrics``): the master binds the HTTP endpoint before forking (its port goes
into the registry value) and serves it; each scrape adds up the workers' series, which they export
on Unix sockets in a directory of the instance's own (``soa.observe.workers``). ``/readyz`` turns
503 when the master's stop begins.

On SIGTERM/SIGINT the master deregisters and revokes the lease, serves the grace period, then
SIGTERMs the supervisor and exits with its status (0 when every worker drained). A second signal
kills the supervisor (its workers follow) and exits at once.
"""

import errno
import logging
import os
import shutil
import signal
import tempfile
import time

import gevent
from gevent import os as gos
from gevent.monkey import get_original

from soa.errors import SoaError

from . import loading
from .runtime import Server, listen, make_instance, new_instance_id, register
from .signals import on_stop_signals

log = logging.getLogger("soa.server")

_fork = get_original("os", "fork")
_waitpid = get_original("os", "waitpid")
_sleep = get_original("time", "sleep")
READY, FAILED = b"R", b"F"
START_TIMEOUT = 60.0
RESTART_PAUSE = 1.0  # a worker that dies younger than this is restarted after a pause


class Master:
    """Runs ``service.workers`` workers under one registration; ``run()`` returns self once
    stopped, with ``exit_code``. ``address`` and ``instance`` are set once listening."""

    def __init__(self, config, service, handler=None):
        self.config = config
        self.service = service
        self.handler = handler
        self.address = None
        self.instance = None
        self.exit_code = None
        self.supervisor_pid = None
        self.metrics_dir = None  # where workers export their metrics (None: metrics off)
        self.endpoint = None
        self._registrar = None
        self._stopping = False

    def run(self):
        service = self.service
        _, service_cls = loading.service_class(service)
        if self.handler is None or isinstance(self.handler, str):
            self.handler = loading.import_handler(self.handler or service.handler, service.name,
                                                  self.config.import_paths)
        # Fail here, once, rather than in every worker.
        loading.user_middleware(service, self.config.import_paths)
        listener = listen(service.host, service.port)
        self.address = listener.getsockname()[:2]
        metrics_listener = self._bind_metrics()
        metrics_port = metrics_listener.getsockname()[1] if metrics_listener else 0
        self.instance_id = new_instance_id()
        self.instance = make_instance(service, service_cls, self.address[1],
                                      instance_id=self.instance_id, metrics_port=metrics_port)
        ready_r, ready_w = os.pipe()
        master_pid = os.getpid()
        pid = _fork()
        if pid == 0:  # the supervisor
            os.close(ready_r)
            if metrics_listener is not None:
                metrics_listener.close()
            code = 1
            try:
                code = Supervisor(self, listener, ready_w, master_pid).run()
            except BaseException:
                log.exception("supervisor failed")
            finally:
                logging.shutdown()
                os._exit(code)
        self.supervisor_pid = pid
        listener.close()
        os.close(ready_w)
        self._serve_metrics(metrics_listener)
        try:
            self._await_workers(ready_r)
            # Handlers first: a signal that lands while registering must stop us gracefully
            # (the ``finally`` below deregisters whatever registration completed).
            uninstall = on_stop_signals(self._stop, self._forced)
            self._registrar = register(self.config.etcd, self.instance)
            log.info("%s: %d workers on %s:%s", service.name, service.workers, *self.address)
            try:
                self.exit_code = self._wait_supervisor()
            finally:
                uninstall()
        except BaseException:
            self._kill_supervisor(signal.SIGKILL)
            raise
        finally:
            self._deregister()
            os.close(ready_r)
            self._close_metrics()
        if self.exit_code != 0 and not self._stopping:
            log.error("supervisor exited with %s", self.exit_code)
        return self

    # -- metrics: the sum over the workers --------------------------------------------------

    def _bind_metrics(self):
        if not self.service.metrics:
            return None
        from soa.observe.endpoint import listen as listen_http

        listener = listen_http(self.service.host, self.service.metrics_port)
        self.metrics_dir = tempfile.mkdtemp(prefix=f"soa-{self.service.name}-metrics-")
        return listener

    def _serve_metrics(self, listener):
        if listener is None:
            return
        from soa.observe.endpoint import Endpoint

        self.endpoint = Endpoint(listener, self._families, self.ready, process=False).start()
        log.info("%s metrics on http://%s:%s/metrics (the sum over its workers)",
                 self.service.name, self.instance.host, self.endpoint.port)

    def _families(self):
        from soa.observe.endpoint import registry_families
        from soa.observe.workers import collect_workers

        yield from collect_workers(self.metrics_dir)
        yield from registry_families(self.service.name, self._registrar)

    def ready(self):
        """``/readyz``: registered, and no stop has begun."""
        registrar = self._registrar
        return (not self._stopping and registrar is not None
                and registrar.lease_id(self.instance) is not None)

    def _close_metrics(self):
        if self.endpoint is not None:
            self.endpoint.stop()
        if self.metrics_dir is not None:
            shutil.rmtree(self.metrics_dir, ignore_errors=True)

    def _await_workers(self, ready_r):
        os.set_blocking(ready_r, False)
        ready = 0
        deadline = time.monotonic() + START_TIMEOUT
        while ready < self.service.workers:
            with gevent.Timeout(max(0.0, deadline - time.monotonic()), False):
                data = gos.nb_read(ready_r, 64)
                if FAILED in data or not data:
                    raise SoaError(f"{self.service.name}: a worker failed to start (see its log)")
                ready += data.count(READY)
                continue
            raise SoaError(f"{self.service.name}: workers not ready after {START_TIMEOUT}s")
        # Later restarts report readiness too; keep the pipe drained.
        gevent.spawn(_drain_pipe, ready_r)

    def _wait_supervisor(self):
        while True:
            pid, status = _waitpid(self.supervisor_pid, os.WNOHANG)
            if pid:
                self.supervisor_pid = None
                return os.waitstatus_to_exitcode(status)
            gevent.sleep(0.05)

    def _deregister(self):
        registrar, self._registrar = self._registrar, None
        if registrar is not None:
            registrar.deregister(self.instance)
            registrar.close()
            log.info("%s deregistered", self.instance.address)

    def _stop(self, signum):
        self._stopping = True
        self._deregister()
        if self.service.grace_period > 0:
            log.info("grace period: serving %.1fs more", self.service.grace_period)
            gevent.sleep(self.service.grace_period)
        self._kill_supervisor(signal.SIGTERM)

    def _forced(self, signum):
        self._kill_supervisor(signal.SIGKILL)
        logging.shutdown()
        os._exit(128 + signum)

    def _kill_supervisor(self, sig):
        if self.supervisor_pid is not None:
            try:
                os.kill(self.supervisor_pid, sig)
            except ProcessLookupError:
                pass


def _drain_pipe(fd):
    try:
        while gos.nb_read(fd, 64):
            pass
    except OSError:
        pass


class Supervisor:
    """Forks and restarts workers with plain blocking calls (it never runs the gevent hub)."""

    def __init__(self, master, listener, ready_w, master_pid):
        self.master = master
        self.listener = listener
        self.ready_w = ready_w
        self.master_pid = master_pid
        self.workers = {}  # pid -> started (monotonic)
        self.stopping = False
        self.failed = False

    def run(self):
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        for _ in range(self.master.service.workers):
            self._spawn()
        while self.workers or not self.stopping:
            self._reap()
            if os.getppid() != self.master_pid and not self.stopping:
                log.warning("master %d is gone: stopping workers", self.master_pid)
                self._on_signal(signal.SIGTERM, None)
            _sleep(0.05)
        return 1 if self.failed else 0

    def _on_signal(self, signum, frame):
        if self.stopping:
            for pid in self.workers:
                _signal(pid, signal.SIGKILL)
            os._exit(128 + signum)
        self.stopping = True
        for pid in self.workers:
            _signal(pid, signal.SIGTERM)

    def _reap(self):
        while self.workers:
            try:
                pid, status = _waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                self.workers.clear()
                return
            if not pid:
                return
            started = self.workers.pop(pid, None)
            code = os.waitstatus_to_exitcode(status)
            if self.stopping:
                self.failed |= code != 0
                continue
            log.warning("worker %d exited (%s); starting another", pid, code)
            if started is not None and time.monotonic() - started < RESTART_PAUSE:
                _sleep(RESTART_PAUSE)
            self._spawn()

    def _spawn(self):
        pid = _fork()
        if pid == 0:
            code = 1
            try:
                code = run_worker(self.master, self.listener, self.ready_w, os.getppid())
            except BaseException:
                log.exception("worker failed")
            finally:
                logging.shutdown()
                os._exit(code)
        self.workers[pid] = time.monotonic()


def _signal(pid, sig):
    try:
        os.kill(pid, sig)
    except ProcessLookupError:
        pass


def run_worker(master, listener, ready_w, parent_pid):
    """A worker's life: serve on the shared socket until SIGTERM; returns its exit code."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    gevent.reinit()
    server = Server(master.config, master.service, master.handler, listener=listener,
                    register=False, instance_id=master.instance_id, endpoint=False)
    export = None
    try:
        server.start()
        if master.metrics_dir is not None:
            from soa.observe.endpoint import make_registry, server_families
            from soa.observe.workers import WorkerExport

            export = WorkerExport(master.metrics_dir,
                                  make_registry(lambda: server_families(server, False))).start()
    except BaseException:
        _write(ready_w, FAILED)
        raise
    _write(ready_w, READY)
    on_stop_signals(lambda signum: server.stop(grace=0))
    gevent.spawn(_watch_parent, parent_pid, server)
    server.wait()
    if export is not None:
        export.stop()
    return 0


def _watch_parent(parent_pid, server):
    while os.getppid() == parent_pid:
        gevent.sleep(0.5)
    log.warning("supervisor %d is gone: stopping", parent_pid)
    server.stop(grace=0, drain_timeout=1.0)


def _write(fd, data):
    try:
        os.write(fd, data)
    except OSError as e:
        if e.errno not in (errno.EPIPE, errno.EBADF):
            raise
