"""A real Redis server for tests: Debian's ``redis-server`` on a free port, no persistence.

``.ci/ensure-tools`` installs it. ``start()`` waits until it answers PING; ``stop()`` ends it and
``start()`` again brings it back on the same port, empty (an outage); ``pause()``/``resume()``
freeze and thaw it (SIGSTOP/SIGCONT: it stops answering but keeps its data); ``remove()``
deletes the folder. Bound to 127.0.0.1, no snapshots, no append-only file.
"""

import shutil
import signal
import socket
import subprocess
import tempfile
from pathlib import Path

from soa.etcd_server import free_port
from soa.testing.poll import wait_until


class RedisServer:
    def __init__(self, port=None):
        self.binary = shutil.which("redis-server")
        if self.binary is None:
            raise RuntimeError("redis-server is not installed: run `bash .ci/ensure-tools`")
        self.port = port or free_port()
        self.root = Path(tempfile.mkdtemp(prefix="soa-redis-"))
        self.process = None

    @property
    def url(self):
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout=20):
        log = open(self.root / "server.log", "ab")  # noqa: SIM115 - owned by the process
        self.process = subprocess.Popen(
            [self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir",
             str(self.root), "--save", "", "--appendonly", "no", "--daemonize", "no"],
            stdout=log, stderr=subprocess.STDOUT)
        log.close()
        wait_until(self._ready, timeout=timeout,
                   message=lambda: f"redis-server did not start: {self.log()[-2000:]}")
        return self

    def _ready(self):
        if self.process.poll() is not None:
            raise RuntimeError(f"redis-server exited: {self.log()[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as s:
                s.sendall(b"PING\r\n")
                return s.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def log(self):
        path = self.root / "server.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def pause(self):
        self.process.send_signal(signal.SIGSTOP)

    def resume(self):
        self.process.send_signal(signal.SIGCONT)

    def stop(self):
        """End the server (its data is gone); the folder stays for a later ``start()``."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)  # a paused server could not exit
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def remove(self):
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)
