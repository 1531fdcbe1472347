"""``soa serve`` as a real child process, and soa.yaml files, for tests."""

import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from soa.config import load_config
from soa.errors import SoaError


class ServiceProcess:
    """`soa serve` as a real child process, for tests.

    ``start()`` runs ``python -m soa --config CONFIG serve SERVICE --port PORT ...`` and returns
    once the instance this process registered (matched by pid) is in etcd; then ``pid``,
    ``port``, ``address`` ("127.0.0.1:PORT") and ``instance`` are set. ``stop()`` sends SIGTERM,
    waits, SIGKILLs on timeout and returns the exit code; it is idempotent. ``output()`` is the
    process's stdout and stderr so far. ``cpus`` (a set of CPU numbers) pins the process to
    them. Use it as a context manager so it is always stopped.
    """

    def __init__(self, config_path, service, *, etcd_endpoints=None, port=0, workers=None,
                 extra_args=(), env=None, cpus=None):
        self.config_path = Path(config_path)
        self.service = service
        self.etcd_endpoints = etcd_endpoints
        self.port = port
        self.workers = workers
        self.extra_args = tuple(str(a) for a in extra_args)
        self.env = env
        self.cpus = cpus
        self.proc = None
        self.instance = None
        self.returncode = None
        self._log = None

    @property
    def pid(self):
        return self.proc.pid if self.proc else None

    @property
    def address(self):
        return f"127.0.0.1:{self.port}"

    def command(self):
        cmd = [sys.executable, "-m", "soa", "--config", str(self.config_path)]
        if self.etcd_endpoints:
            endpoints = self.etcd_endpoints
            cmd += ["--etcd", endpoints if isinstance(endpoints, str) else ",".join(endpoints)]
        cmd += ["serve", self.service, "--port", str(self.port)]
        if self.workers:
            cmd += ["--workers", str(self.workers)]
        return cmd + list(self.extra_args)

    def start(self, timeout=15):
        env = dict(os.environ)
        env.update(self.env or {})
        self._log = tempfile.TemporaryFile()  # noqa: SIM115 -- lives as long as self
        self.proc = subprocess.Popen(self.command(), env=env, stdout=self._log,
                                     stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        if self.cpus:  # before its start-up creates threads, which inherit it
            os.sched_setaffinity(self.proc.pid, self.cpus)
        try:
            self.instance = self._await_registration(timeout)
        except BaseException:
            self.stop(timeout=5)
            raise
        self.port = self.instance.port
        return self

    def _await_registration(self, timeout):
        from soa.registry.etcd import EtcdConnection
        from soa.registry.inspect import registered

        config = load_config(str(self.config_path), self.etcd_endpoints, check_idl=False)
        connection = EtcdConnection(config.etcd)
        deadline = time.monotonic() + timeout
        try:
            while True:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"{self.service} exited with {self.proc.returncode} before"
                                       f" registering:\n{self.output()}")
                try:
                    for instance in registered(connection, config.etcd.prefix, self.service):
                        if instance.pid == self.proc.pid:
                            return instance
                except SoaError as e:  # etcd may be briefly unreachable
                    last = e
                else:
                    last = None
                if time.monotonic() >= deadline:
                    raise RuntimeError(f"{self.service} not registered after {timeout}s"
                                       f" (last etcd error: {last!r}):\n{self.output()}")
                time.sleep(0.05)
        finally:
            connection.close()

    def output(self):
        if self._log is None:
            return ""
        self._log.flush()
        self._log.seek(0)
        return self._log.read().decode("utf-8", "replace")

    def signal(self, sig):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)

    def kill(self):
        self.signal(signal.SIGKILL)

    def wait(self, timeout=15):
        """Wait for the process to exit by itself; returns its exit code."""
        self.returncode = self.proc.wait(timeout)
        return self.returncode

    def stop(self, timeout=15):
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.returncode = self.proc.returncode
        return self.returncode

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()

    def __del__(self):
        if self._log is not None:
            self._log.close()


def write_config(path, *, etcd_endpoints, prefix, services, client=None, lease_ttl=2):
    """Write a soa.yaml for tests (``services`` is the raw ``services:`` mapping); returns the
    path. ``lease_ttl`` defaults to etcd's 2 s minimum so a killed process's key goes quickly."""
    path = Path(path)
    if path.is_dir():
        path = path / "soa.yaml"
    endpoints = [etcd_endpoints] if isinstance(etcd_endpoints, str) else list(etcd_endpoints)
    data = {"etcd": {"endpoints": endpoints, "prefix": prefix, "lease_ttl": lease_ttl},
            "services": services}
    if client:
        data["client"] = client
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def alive(pid):
    """Whether process ``pid`` runs (a zombie, waiting to be reaped, does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0] != "Z"
    except FileNotFoundError:
        return False
