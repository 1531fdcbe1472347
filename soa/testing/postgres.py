"""A real PostgreSQL server for tests: ``initdb`` in a fresh folder, ``postgres`` on a free port.

Debian's ``postgresql`` package (installed by ``.ci/ensure-tools``) puts the binaries in
/usr/lib/postgresql/<version>/bin. PostgreSQL refuses to run as root, so as root the
server runs as the ``postgres`` user (``Popen(user=...)``) in a folder that user owns.
Durability is switched off
(``fsync``, ``synchronous_commit``): test data need not survive a crash; tests stay fast.
Trust authentication on 127.0.0.1 only; ``create_database`` gives each test its own database.
"""

import glob
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from soa.testing.poll import wait_until
from soa.etcd_server import free_port


def _bin_dir():
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"))
    if not found:
        raise RuntimeError("PostgreSQL is not installed: run `bash .ci/ensure-tools`")
    return Path(found[-1]).parent


class PostgresServer:
    """``start()`` then ``url(dbname)``; ``stop()`` ends the server and removes its folder."""

    def __init__(self, port=None, user="postgres"):
        self.port = port or free_port()
        self.user = user
        self.bin = _bin_dir()
        self.root = Path(tempfile.mkdtemp(prefix="soa-pg-"))
        self.process = None
        self._as = {}
        if os.geteuid() == 0:
            account = pwd.getpwnam("postgres")
            os.chown(self.root, account.pw_uid, account.pw_gid)
            self._as = {"user": account.pw_uid, "group": account.pw_gid, "extra_groups": []}

    def _run(self, *argv):
        subprocess.run(argv, check=True, capture_output=True, timeout=60, **self._as)

    def start(self, timeout=30):
        data = self.root / "data"
        self._run(str(self.bin / "initdb"), "-D", str(data), "-U", self.user, "--auth=trust",
                  "--encoding=UTF8", "--no-sync")
        log = open(self.root / "server.log", "wb")  # noqa: SIM115 - owned by the process
        self.process = subprocess.Popen(
            [str(self.bin / "postgres"), "-D", str(data), "-p", str(self.port),
             "-c", "listen_addresses=127.0.0.1", "-c", f"unix_socket_directories={self.root}",
             "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
             "-c", "max_connections=200"],
            stdout=log, stderr=subprocess.STDOUT, **self._as)
        log.close()
        wait_until(self._ready, timeout=timeout,
                   message=lambda: f"postgres did not start: {self.log()[-2000:]}")
        return self

    def _ready(self):
        if self.process.poll() is not None:
            raise RuntimeError(f"postgres exited: {self.log()[-2000:]}")
        done = subprocess.run([str(self.bin / "pg_isready"), "-h", "127.0.0.1", "-p",
                               str(self.port), "-U", self.user], capture_output=True)
        return done.returncode == 0

    def log(self):
        path = self.root / "server.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def url(self, dbname="postgres"):
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{dbname}"

    def create_database(self, dbname):
        """A new empty database; returns its URL."""
        psql = self.bin / "psql"
        subprocess.run([str(psql), "-h", "127.0.0.1", "-p", str(self.port), "-U", self.user,
                        "-d", "postgres", "-q", "-c", f'CREATE DATABASE "{dbname}"'],
                       check=True, capture_output=True, timeout=60)
        return self.url(dbname)

    def stop(self):
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)  # fast shutdown: don't wait for clients
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None
        for _ in range(50):
            try:
                shutil.rmtree(self.root)
                return
            except OSError:
                time.sleep(0.05)
