"""The PHP and Node.js client plugins (plugins/; Go's are in test_plugin_go.py): each
language's own tests over the shared registry vectors, then each plugin live against a real
etcd (behind a dead endpoint) and real catalog servers (two binary/buffered instances, one
compact/framed): calls before and after a kill -9 of one of them, and the instance set seen as
one leaves and another comes.

Toolchains missing is a failure, never a skip: `bash .ci/ensure-tools` installs PHP's. The
Thrift code the programs use is generated into each test's tmp_path.
"""

import json
import os
import shutil
import subprocess
from pathlib import Path

import gevent
import pytest

from soa.etcd_server import free_port
from soa.testing.processes import ServiceProcess, write_config
from soa.testing.tools import require_tool as tool

ROOT = Path(__file__).resolve().parent.parent
PLUGINS = ROOT / "plugins"
CATALOG_IDL = ROOT / "idl" / "catalog.thrift"
CALLS = 24  # per run: every instance is picked 8 times by round robin over three


def run(cmd, cwd, timeout, env=None):
    """Run ``cmd``; fail with its output when it exits non-zero. Returns stdout."""
    full_env = dict(os.environ, **(env or {}))
    try:
        proc = subprocess.run([str(c) for c in cmd], cwd=cwd, env=full_env, capture_output=True,
                              text=True, timeout=timeout, stdin=subprocess.DEVNULL, check=False)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"{cmd} timed out after {timeout}s:\n{e.stdout}\n{e.stderr}")
    if proc.returncode != 0:
        pytest.fail(f"{cmd} exited with {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return proc.stdout


def thrift_gen(generator, out):
    """Fresh Apache-generated code for idl/catalog.thrift (and shared.thrift) in ``out``."""
    out = Path(out)
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    run([tool("thrift"), "-r", "--gen", generator, "-out", out, CATALOG_IDL], ROOT, 60)
    return out


# --- each language's own tests, over registry/vectors/*.json ----------------------------------


# --- live: real etcd, real catalog servers -----------------------------------------------------


class Catalogs:
    """Three catalog instances of one registry prefix: ``a`` and ``b`` binary/buffered, ``c``
    compact/framed. ``b`` registers with a 30 s lease so that after its kill -9 its key stays
    and every plugin meets a refused connection."""

    def __init__(self, tmp_path, etcd_config):
        # A dead endpoint first: every plugin must fail over to the live one.
        self.etcd = ",".join([f"127.0.0.1:{free_port()}", *etcd_config.endpoints])
        self.prefix = etcd_config.prefix
        self.processes = {}
        self.tmp_path = tmp_path
        self.etcd_config = etcd_config

    def _process(self, name, protocol, transport, lease_ttl):
        root = self.tmp_path / f"catalog-{name}"  # own config root, so its own data dir
        root.mkdir()
        service = {"idl": str(CATALOG_IDL), "service": "CatalogService",
                   "handler": "services.catalog.handler:CatalogHandler", "host": "127.0.0.1",
                   "protocol": protocol, "transport": transport, "grace_period": 0.1}
        path = write_config(root, etcd_endpoints=list(self.etcd_config.endpoints),
                            prefix=self.prefix, services={"catalog": service},
                            lease_ttl=lease_ttl)
        return ServiceProcess(path, "catalog", env={"PYTHONPATH": str(ROOT)})

    def start(self):
        specs = {"a": ("binary", "buffered", 2), "b": ("binary", "buffered", 30),
                 "c": ("compact", "framed", 2)}
        for name, spec in specs.items():
            self.add(name, *spec)
        return self

    def add(self, name, protocol="binary", transport="buffered", lease_ttl=2):
        self.processes[name] = process = self._process(name, protocol, transport, lease_ttl)
        process.start(30)  # one at a time: a fork while gRPC polls etcd can crash the child
        return process

    def address(self, name):
        return self.processes[name].address

    def stop(self):
        for process in self.processes.values():
            process.stop(timeout=5)


@pytest.fixture
def catalogs(tmp_path, etcd_config):
    shop = Catalogs(tmp_path, etcd_config)
    try:
        yield shop.start()
    finally:
        shop.stop()


def check_live(catalogs, call):
    """``call()`` runs the language's program once and returns its JSON summary."""
    first = call()
    assert first["failed"] == 0, first
    assert first["calls"] == CALLS
    assert set(first["served"]) == {catalogs.address(n) for n in "abc"}, first
    assert sum(first["served"].values()) == CALLS
    assert first["products"] > 0, first

    catalogs.processes["b"].kill()
    catalogs.processes["b"].wait(10)
    second = call()
    print("before the kill:", first, "\nafter:", second)  # shown when the test fails
    assert second["failed"] == 0, second
    assert set(second["served"]) == {catalogs.address("a"), catalogs.address("c")}, second
    assert sum(second["served"].values()) == CALLS
    assert second["refused"] > 0, f"the dead instance was never tried: {second}"


class Watcher:
    """A plugin program in watch mode: it prints the JSON array of addresses on every change."""

    def __init__(self, cmd, cwd, env=None):
        self.proc = subprocess.Popen([str(c) for c in cmd], cwd=cwd,
                                     env=dict(os.environ, **(env or {})), stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.seen = []

    def expect(self, addresses, timeout=10):
        """Read lines until one is the set ``addresses``; fail after ``timeout`` seconds."""
        want = set(addresses)
        try:
            with gevent.Timeout(timeout):
                while True:
                    line = self.proc.stdout.readline()
                    if not line:
                        pytest.fail(f"the watcher exited: {self.proc.stderr.read()}")
                    self.seen.append(json.loads(line))
                    if set(self.seen[-1]) == want:
                        return
        except gevent.Timeout:
            pytest.fail(f"no set {sorted(want)} within {timeout}s; seen {self.seen}")

    def close(self):
        self.proc.stdin.close()
        try:
            assert self.proc.wait(10) == 0, self.proc.stderr.read()
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()


def check_watch(catalogs, cmd, cwd, env=None):
    """After check_live: ``b`` is dead but registered, ``a`` leaves gracefully, ``d`` comes."""
    watcher = Watcher(cmd, cwd, env)
    try:
        watcher.expect({catalogs.address(n) for n in "abc"})
        catalogs.processes["a"].stop(timeout=10)
        watcher.expect({catalogs.address(n) for n in "bc"})
        catalogs.add("d")
        watcher.expect({catalogs.address(n) for n in "bcd"})
    finally:
        watcher.close()


def node_install():
    """``npm ci`` in plugins/node (package-lock.json), only when node_modules is missing."""
    node_dir = PLUGINS / "node"
    if not (node_dir / "node_modules" / "thrift").is_dir():
        run([tool("npm"), "ci", "--no-audit", "--no-fund"], node_dir, 150)
    return node_dir


def test_node_unit_tests():
    node_dir = node_install()
    out = run([tool("node"), "--test", "test/"], node_dir, 120)
    assert "# fail 0" in out


def test_node_live(catalogs, tmp_path):
    node_dir = node_install()
    gen = thrift_gen("js:node", tmp_path / "gen-nodejs")
    env = {"NODE_PATH": str(node_dir / "node_modules")}  # where the generated code finds thrift
    program = [tool("node"), "examples/catalog-call.js", f"--gen={gen}", f"--etcd={catalogs.etcd}",
               f"--prefix={catalogs.prefix}"]

    def call():
        return json.loads(run([*program, f"--calls={CALLS}"], node_dir, 60, env))

    check_live(catalogs, call)
    check_watch(catalogs, [*program, "--watch"], node_dir, env)


def test_php_unit_tests():
    out = run([tool("php"), "plugins/php/tests/run.php"], ROOT, 60)
    assert out.strip().splitlines()[-1].endswith(" passed, 0 failed"), out


def test_php_live(catalogs, tmp_path):
    gen = thrift_gen("php", tmp_path / "gen-php")

    def call():
        out = run([tool("php"), "plugins/php/examples/catalog-call.php", f"--gen={gen}",
                   f"--etcd={catalogs.etcd}", f"--prefix={catalogs.prefix}", f"--calls={CALLS}"],
                  ROOT, 60)
        return json.loads(out)

    check_live(catalogs, call)
    check_watch(catalogs, [tool("php"), "plugins/php/examples/catalog-call.php", f"--gen={gen}",
                           f"--etcd={catalogs.etcd}", f"--prefix={catalogs.prefix}", "--watch"],
                ROOT)
