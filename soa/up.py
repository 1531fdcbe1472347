"""The plain functions behind ``soa up`` and ``soa scale``: etcd, every service of soa.yaml, and
the control socket through which a running ``soa up`` is told to scale.

``soa up`` reuses an etcd that already answers on soa.yaml's endpoint (``soa etcd`` started
earlier, say) and otherwise starts the embedded one, on that port when it can be bound and on a
free one when not. It records what it runs in ``.soa/up.json`` beside soa.yaml (its pid, the
etcd endpoint, the control socket), so ``soa registry``, ``soa call`` and ``soa scale`` find the
etcd it really uses (``running(root)``). Every child dies with it, even on SIGKILL.
"""

import json
import os
import socket
import tempfile
import urllib.request
from pathlib import Path

from .config import load_config
from .errors import ConfigError, SoaError
from .fleet import Fleet, format_status, start_etcd, wait_for_stop_signal

STATE = Path(".soa") / "up.json"


def config_file(config):
    """The soa.yaml behind ``config``; ``ConfigError`` when it has none."""
    source = Path(config.source)
    if source.is_file():
        return source.resolve()
    candidate = Path(config.root) / "soa.yaml"
    if candidate.is_file():
        return candidate
    raise ConfigError("no soa.yaml to run (pass --config)", source=config.source)


def running(root):
    """What a live ``soa up`` of the soa.yaml in ``root`` recorded, or None."""
    try:
        state = json.loads((Path(root) / STATE).read_text())
        os.kill(int(state["pid"]), 0)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return state


def _answers(endpoint):
    """Whether a healthy etcd answers on ``endpoint`` (host:port, plain http)."""
    try:
        with urllib.request.urlopen(f"http://{endpoint}/health", timeout=0.5) as reply:
            return json.loads(reply.read()).get("health") == "true"
    except (OSError, ValueError):
        return False


def _bindable(port):
    """Whether etcd could listen on ``port`` (a port in TIME-WAIT can be reused)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def _etcd(config, root, etcd_port, echo):
    """``(endpoint, EtcdProcess or None)``: an etcd that already answers, or ours."""
    configured = config.etcd.endpoints[0]
    if etcd_port is None and _answers(configured):
        echo(f"etcd: {configured} (already running; reusing it)")
        return configured, None
    port = etcd_port
    if port is None:
        port = int(configured.rsplit(":", 1)[1])
        if not _bindable(port):
            echo(f"port {port} is taken; the embedded etcd uses a free port instead")
            port = 0
    etcd = start_etcd(root / ".soa" / "etcd", port or None)
    echo(f"etcd: {etcd.endpoint} (data in {root / '.soa' / 'etcd'})")
    return etcd.endpoint, etcd


def _socket_path(root):
    path = root / ".soa" / "up.sock"
    if len(str(path)) < 100:  # AF_UNIX paths are short
        return path
    return Path(tempfile.mkdtemp(prefix="soa-up-")) / "up.sock"


class Control:
    """The unix socket of a running ``soa up``: one JSON request per line, one JSON reply.

    Requests: ``{"op": "scale", "service": S, "instances": N}`` and ``{"op": "status"}``.
    Replies: ``{"ok": true, ...}`` or ``{"ok": false, "error": "one line"}``. Requests are
    served one at a time, each in the control server's greenlet.
    """

    def __init__(self, fleet, path, echo):
        import gevent.lock

        self.fleet = fleet
        self.path = path
        self.echo = echo
        self._lock = gevent.lock.Semaphore()
        self._server = None

    def start(self):
        from gevent import socket as gsocket
        from gevent.server import StreamServer

        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.unlink(missing_ok=True)
        listener = gsocket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(str(self.path))
        listener.listen(16)
        self._server = StreamServer(listener, self._handle)
        self._server.start()
        return self

    def stop(self):
        if self._server is not None:
            self._server.stop(timeout=1)
        self.path.unlink(missing_ok=True)

    def _handle(self, sock, _address):
        with sock, sock.makefile("rwb") as stream:
            line = stream.readline(65536)
            try:
                reply = self._serve(json.loads(line))
            except (ValueError, KeyError, TypeError) as e:
                reply = {"ok": False, "error": f"bad request: {e}"}
            except SoaError as e:
                reply = {"ok": False, "error": str(e)}
            stream.write(json.dumps(reply).encode() + b"\n")
            stream.flush()

    def _serve(self, request):
        with self._lock:
            if request["op"] == "status":
                return {"ok": True, "status": self.fleet.status()}
            if request["op"] != "scale":
                raise ValueError(f"unknown op {request['op']!r}")
            service, count = request["service"], int(request["instances"])
            if not 0 <= count <= 64:
                raise SoaError(f"instances: expected 0-64, got {count}")
            before = len(self.fleet.running(service))
            self.echo(f"scaling {service}: {before} -> {count}")
            started, stopped = self.fleet.scale(service, count)
            self.echo(format_status(self.fleet.status()))
            return {"ok": True, "service": service, "before": before, "instances": count,
                    "started": started, "stopped": stopped, "status": self.fleet.status()}


def ask(root, request, timeout=120.0):
    """Send one request to the ``soa up`` running for ``root``; returns its reply."""
    state = running(root)
    if state is None:
        raise SoaError(f"no `soa up` is running for {Path(root) / 'soa.yaml'}")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        try:
            sock.connect(state["socket"])
            sock.sendall(json.dumps(request).encode() + b"\n")
            reply = json.loads(sock.makefile("rb").readline())
        except (OSError, ValueError) as e:
            raise SoaError(f"`soa up` (pid {state['pid']}) did not answer: {e}") from e
    if not reply.get("ok"):
        raise SoaError(reply.get("error", "refused"))
    return reply


def run_up(config, *, etcd_port=None, services=None, timeout=60.0, echo=print):
    """``soa up``: etcd, then every service; status; serve ``scale``; on SIGINT/SIGTERM stop
    all (each deregisters), then etcd if it is ours."""
    path = config_file(config)
    root = path.parent
    for name in services or ():
        config.service(name)  # ConfigError naming the known services, before starting anything
    already = running(root)
    if already is not None:
        raise SoaError(f"`soa up` is already running for {path} (pid {already['pid']})")
    endpoint, etcd = _etcd(config, root, etcd_port, echo)
    state = root / STATE
    control = None
    try:
        fleet = Fleet(path, endpoint, services=services, log_dir=root / ".soa" / "logs")
        total = sum(fleet.config.service(s).instances for s in fleet.services)
        echo(f"starting {total} service processes")
        try:
            fleet.start(timeout, progress=lambda child, done, total: echo(
                f"  [{done}/{total}] {child.service} #{child.index} registered at"
                f" {child.address}"))
            control = Control(fleet, _socket_path(root), echo).start()
            state.write_text(json.dumps({"pid": os.getpid(), "etcd": endpoint,
                                         "socket": str(control.path), "config": str(path)}))
            echo(format_status(fleet.status()))
            config_flag = "" if path == Path.cwd() / "soa.yaml" else f"--config {path} "
            echo(f"logs in {fleet.log_dir}; `soa {config_flag}registry ls` and"
                 f" `soa {config_flag}scale SERVICE N` find this etcd. Ctrl-C stops everything.")
            got = wait_for_stop_signal()
            echo(f"{got}: stopping {len(fleet.live())} service processes")
        finally:
            if control is not None:
                control.stop()
            state.unlink(missing_ok=True)
            removed, left = fleet.stop()
    finally:
        if etcd is not None:
            etcd.stop()
    echo(f"stopped; {removed} stale key(s) removed, {left} left in etcd")


def scale(config, service, count):
    """``soa scale``: tell the running ``soa up`` to run ``count`` instances of ``service``."""
    path = config_file(config)
    load_config(str(path)).service(service)  # ConfigError naming the known services
    return ask(path.parent, {"op": "scale", "service": service, "instances": count})
