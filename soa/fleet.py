"""Every service of one soa.yaml as child processes: what ``soa up`` (and ``soa scale``) run.

- ``run_config(...)`` writes a soa.yaml for a run elsewhere (absolute IDL paths, the etcd to
  use, optional per-service overrides), so a run's data lives under that file's folder.
- ``Fleet(config_path, etcd_endpoint)`` starts ``instances`` ``soa serve`` processes of every
  service (each in its own session, so a terminal's Ctrl-C reaches only the parent, and each
  dying with its supervisor: ``soa.orphans``), waits until each has registered (matched by pid),
  reports ``status()`` from the registry, ``terminate()``s some of them, ``scale()``s a
  service up or down (removed instances drain through their normal stop sequence), and
  ``stop()``s them all with SIGTERM so they deregister, then removes any key left behind.
- ``start_etcd(data_dir, port)`` starts the embedded etcd, which dies with its supervisor too.
"""

import logging
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

from .config import load_config
from .errors import SoaError
from .etcd_server import EtcdProcess, free_port
from .orphans import guarded

log = logging.getLogger("soa.fleet")


def run_config(source, target_dir, etcd_endpoint, *, prefix=None, lease_ttl=None,
                services=None, overrides=None):
    """Copy soa.yaml ``source`` to ``target_dir/soa.yaml`` for a run against ``etcd_endpoint``.

    ``services`` keeps only those names; ``overrides`` maps a service name to keys to set.
    Returns the new file's path.
    """
    source = Path(source).resolve()
    data = yaml.safe_load(source.read_text(encoding="utf-8")) or {}
    etcd = dict(data.get("etcd") or {})
    etcd["endpoints"] = [etcd_endpoint]
    if prefix:
        etcd["prefix"] = prefix
    if lease_ttl:
        etcd["lease_ttl"] = lease_ttl
    data["etcd"] = etcd
    kept = {}
    for name, entry in (data.get("services") or {}).items():
        if services is not None and name not in services:
            continue
        entry = dict(entry)
        entry["idl"] = str((source.parent / entry["idl"]).resolve())
        entry.update((overrides or {}).get(name, {}))
        kept[name] = entry
    data["services"] = kept
    # Handlers stay importable from where the source config found them.
    data["pythonpath"] = [str((source.parent / folder).resolve())
                          for folder in data.get("pythonpath") or ["."]]
    target = Path(target_dir)
    target.mkdir(parents=True, exist_ok=True)
    path = target / "soa.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def start_etcd(data_dir, port=None):
    """The embedded etcd on ``port`` (or a free one), data in ``data_dir``; returns it running.
    It dies with this process, however this process ends."""
    return EtcdProcess(Path(data_dir), client_port=port or free_port()).start(guard=True)


@dataclass
class Child:
    service: str
    index: int
    proc: subprocess.Popen
    log_path: Path
    address: str = ""
    retired: bool = False  # stopped on purpose by ``scale``

    @property
    def pid(self):
        return self.proc.pid

    def alive(self):
        return self.proc.poll() is None


class Fleet:
    """Every service of a soa.yaml as ``soa serve`` child processes (see the module docstring).

    Driven from one greenlet at a time (``soa up``'s main greenlet, or its control server for
    ``scale``); ``children`` holds the live and the exited ones until ``stop``.
    """

    def __init__(self, config_path, etcd_endpoint, *, services=None, log_dir=None):
        self.config_path = Path(config_path).resolve()
        self.etcd_endpoint = etcd_endpoint
        self.config = load_config(str(self.config_path), etcd_endpoint)
        names = list(self.config.services)
        for name in services or ():
            self.config.service(name)  # ConfigError naming the known services
        self.services = [n for n in names if services is None or n in services]
        self.log_dir = Path(log_dir or self.config.root / ".soa" / "logs")
        self.children = []
        self._connection = None

    def command(self, service):
        return [sys.executable, "-m", "soa", "--config", str(self.config_path),
                "--etcd", self.etcd_endpoint, "serve", service, "--port", "0"]

    def spawn(self, service, index):
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log_path = self.log_dir / f"{service}-{index}.log"
        with open(log_path, "ab") as log:
            proc = subprocess.Popen(guarded(self.command(service)), stdout=log,
                                    stderr=subprocess.STDOUT,
                                    stdin=subprocess.DEVNULL, start_new_session=True,
                                    cwd=str(self.config.root))
        child = Child(service, index, proc, log_path)
        self.children.append(child)
        return child

    def start(self, timeout=60.0, progress=None):
        """Start every instance of every service and wait until all are registered;
        ``progress(child, done, total)`` is called as each one registers."""
        for service in self.services:
            for index in range(self.config.service(service).instances):
                self.spawn(service, index)
        self.wait_registered(self.children, timeout, progress)
        return self

    def live(self):
        """Every live child."""
        return [c for c in self.children if c.alive()]

    def running(self, service):
        """The live children of ``service``, oldest first."""
        return [c for c in self.children if c.service == service and c.alive()]

    def scale(self, service, count, timeout=60.0, progress=None):
        """Run ``count`` instances of ``service``: new ones are started and waited for until
        registered; surplus ones (the newest) get SIGTERM and drain through the normal stop
        sequence (deregister, grace period, drain), and are waited for. Returns
        ``(started, stopped)``."""
        self.config.service(service)  # ConfigError naming the known services
        if service not in self.services:
            self.services.append(service)
        live = self.running(service)
        if count > len(live):
            used = {c.index for c in self.children if c.service == service}
            indexes = [i for i in range(count + len(used)) if i not in used][:count - len(live)]
            new = [self.spawn(service, i) for i in indexes]
            self.wait_registered(new, timeout, progress)
            return len(new), 0
        surplus = sorted(live, key=lambda c: c.index)[count:]
        for child in surplus:
            child.retired = True
        self.terminate(surplus, timeout)
        return 0, len(surplus)

    def terminate(self, children, timeout=20.0):
        """SIGTERM each live one of ``children`` (they deregister and drain), wait until
        ``timeout``, SIGKILL those still running. Returns the children that had to be killed."""
        for child in children:
            if child.alive():
                child.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        killed = []
        for child in children:
            try:
                child.proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                log.warning("%s#%d (pid %d) still running %.0fs after SIGTERM: killed; see %s",
                            child.service, child.index, child.pid, timeout, child.log_path)
                child.proc.kill()
                child.proc.wait()
                killed.append(child)
        return killed

    def wait_registered(self, children, timeout=60.0, progress=None):
        deadline = time.monotonic() + timeout
        total = len(children)
        while True:
            registered = {i.pid: i for i in self.registered()}
            for child in children:
                if child.pid in registered and not child.address:
                    child.address = registered[child.pid].address
                    if progress is not None:
                        progress(child, sum(1 for c in children if c.address), total)
                elif child.pid in registered:
                    child.address = registered[child.pid].address
                elif not child.alive():
                    raise SoaError(f"{child.service} exited with {child.proc.returncode} before "
                                   f"registering; see {child.log_path}")
            if all(child.address for child in children):
                return
            if time.monotonic() >= deadline:
                missing = ", ".join(f"{c.service}#{c.index}" for c in children if not c.address)
                raise SoaError(f"not registered after {timeout}s: {missing}; see {self.log_dir}")
            time.sleep(0.1)

    def _etcd(self):
        if self._connection is None:
            from soa.registry.etcd import EtcdConnection

            self._connection = EtcdConnection(self.config.etcd)
        return self._connection

    def registered(self):
        """Every parsable instance under the prefix (an empty list when etcd is unreachable)."""
        from soa.registry.inspect import registered

        try:
            return registered(self._etcd(), self.config.etcd.prefix)
        except SoaError:
            return []

    def status(self):
        """Rows (service, address, pid, state, metrics URL or "-") from the registry and the
        child processes."""
        registered = {i.pid: i for i in self.registered()}
        rows = []
        for child in self.children:
            if child.retired:
                continue
            instance = registered.get(child.pid)
            if instance is not None:
                state = "leaving" if instance.extra.get("leaving") else "up"
                metrics = (f"http://{instance.host}:{instance.metrics_port}/metrics"
                           if instance.metrics_port else "-")
                rows.append((child.service, instance.address, child.pid, state, metrics))
            elif child.alive():
                rows.append((child.service, child.address or "-", child.pid, "not registered",
                             "-"))
            else:
                rows.append((child.service, child.address or "-", child.pid,
                             f"exited ({child.proc.returncode})", "-"))
        return rows

    def stop(self, timeout=20.0):
        """SIGTERM every child (they deregister and drain), wait, SIGKILL stragglers, then
        delete any key of ours still in etcd. Returns ``(removed, left)``: keys that had to be
        deleted, and keys of ours still there after that (0 unless etcd is unreachable)."""
        self.terminate(self.children, timeout)
        removed = self._remove_leftovers()
        pids = {child.pid for child in self.children}
        left = sum(1 for instance in self.registered() if instance.pid in pids)
        if self._connection is not None:
            self._connection.close()
            self._connection = None
        return removed, left

    def _remove_leftovers(self):
        from soa.registry.inspect import remove

        pids = {child.pid for child in self.children}
        left = 0
        for instance in self.registered():
            if instance.pid in pids:
                try:
                    left += remove(self._etcd(), self.config.etcd.prefix, instance.service,
                                   instance.address)
                except SoaError:
                    pass
        return left


def format_status(rows):
    """The status rows as an aligned table."""
    header = ("SERVICE", "ADDRESS", "PID", "STATE", "METRICS")
    table = [header] + [tuple(str(v) for v in row) for row in rows]
    widths = [max(len(r[i]) for r in table) for i in range(len(header))]
    return "\n".join("  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip() for r in table)


def wait_for_stop_signal():
    """Block (cooperatively) until SIGINT or SIGTERM; returns the signal's name."""
    import gevent
    import gevent.event

    got = gevent.event.AsyncResult()
    handlers = [gevent.signal_handler(sig, lambda s=sig: got.set(signal.Signals(s).name))
                for sig in (signal.SIGINT, signal.SIGTERM)]
    try:
        return got.get()
    finally:
        for handler in handlers:
            handler.cancel()


