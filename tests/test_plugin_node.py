"""The Node.js plugin (plugins/node) against a real etcd and real soa servers.

The plugin's own tests (``node --test``: the registry and hash vectors, the balancers, THeader
framing, pooling, retries, ejection, the IDL policy) and ``tsc --noEmit`` over a consumer of
``index.d.ts`` run first. The live tests drive ``plugins/node/test/live/driver.js`` (one soa
client, commanded by JSON lines) against ``soa serve`` processes of tests/fixtures'
EchoService, which tell which instance served each call (``whoami``) and count executions
(``bump``).

Toolchains missing is a failure, never a skip; ``npm ci`` installs the plugin's packages from
its lock file.
"""

import json
import re
import urllib.request
from pathlib import Path

import gevent
import pytest

from soa.balancer.consistent_hash import ConsistentHashPicker
from soa.config import EtcdConfig
from soa.etcd_server import EtcdProcess, etcd_binary, free_port
from soa.registry.instance import Instance
from soa.testing.poll import wait_until
from soa.testing.processes import ServiceProcess, write_config
from soa.testing.tools import require_tool as tool

from fixtures.node_driver import IDEMPOTENT, NODE_DIR, Driver, generate, node_install, run

ROOT = Path(__file__).resolve().parent.parent
ECHO_IDL = ROOT / "tests" / "fixtures" / "client_echo.thrift"
HANDLER = "tests.fixtures.client_handler:EchoHandler"


@pytest.fixture(scope="module")
def node_gen(tmp_path_factory):
    """Apache-generated Node code for client_echo.thrift."""
    return generate(tmp_path_factory.mktemp("gen-nodejs"))


# --- the plugin's own tests ---------------------------------------------------------------------


def test_node_unit_tests():
    node_install()
    files = sorted(str(p.relative_to(NODE_DIR)) for p in (NODE_DIR / "test").glob("*.test.js"))
    out = run([tool("node"), "--test", *files], NODE_DIR, 180)
    assert re.search(r"^# fail 0$", out, re.M), out
    assert re.search(r"^# pass [1-9]", out, re.M), out


def test_typescript_declarations_compile():
    node_install()
    run([tool("node"), "node_modules/typescript/bin/tsc", "--noEmit", "-p", "test/types"],
        NODE_DIR, 120)


# --- live: real etcd, real soa servers ----------------------------------------------------------


class VerboseProcess(ServiceProcess):
    """``soa -v serve``: the access log (one line per call, with the peer) is in ``output()``."""

    def command(self):
        cmd = super().command()
        return [*cmd[:3], "-v", *cmd[3:]]


class Echoes:
    """EchoService instances of one registry prefix, each with its own config root."""

    def __init__(self, tmp_path, etcd_config):
        self.tmp_path = tmp_path
        self.etcd_config = etcd_config
        self.processes = {}

    def add(self, name, weight=100, lease_ttl=2, service="echo", verbose=False):
        root = self.tmp_path / f"echo-{name}"
        root.mkdir()
        spec = {"idl": str(ECHO_IDL), "service": "EchoService", "handler": HANDLER,
                "host": "127.0.0.1", "weight": weight, "grace_period": 0.1,
                "idempotent": IDEMPOTENT}
        path = write_config(root, etcd_endpoints=list(self.etcd_config.endpoints),
                            prefix=self.etcd_config.prefix, services={service: spec},
                            lease_ttl=lease_ttl)
        cls = VerboseProcess if verbose else ServiceProcess
        process = cls(path, service, env={"PYTHONPATH": str(ROOT)})
        self.processes[name] = process
        process.start(30)  # one at a time: a fork while gRPC polls etcd can crash the child
        return process

    def address(self, name):
        return self.processes[name].address

    def stop(self):
        for process in self.processes.values():
            process.stop(timeout=5)


@pytest.fixture
def echoes(tmp_path, etcd_config):
    shop = Echoes(tmp_path, etcd_config)
    try:
        yield shop
    finally:
        shop.stop()


@pytest.fixture
def driver(node_gen, etcd_config):
    drivers = []

    def make(options=None, service="echo", config=None):
        d = Driver(node_gen, config or etcd_config, options, service)
        drivers.append(d)
        return d

    try:
        yield make
    finally:
        for d in drivers:
            d.close()


def test_balancers_spread_calls_as_promised(echoes, driver):
    for name, weight in (("a", 100), ("b", 200), ("c", 100)):
        echoes.add(name, weight=weight)
    a, b, c = (echoes.address(n) for n in "abc")
    node = driver({"balancer": "round_robin"})
    wait_until(lambda: len(node.send("instances")["instances"]) == 3, message="three instances")

    out = node.send("calls", method="whoami", n=30)
    assert out["failed"] == 0, out
    assert out["served"] == {a: 10, b: 10, c: 10}, out

    node.send("use", options={"balancer": "weighted_round_robin"})
    out = node.send("calls", method="whoami", n=40)
    assert out["served"] == {a: 10, b: 20, c: 10}, out  # weights 1:2:1, exactly per cycle

    node.send("use", options={"balancer": "weighted_random"})
    out = node.send("calls", method="whoami", n=400, concurrency=8)
    assert out["failed"] == 0, out
    assert 140 <= out["served"][b] <= 260, out  # expected 200
    assert 50 <= out["served"][a] <= 150 and 50 <= out["served"][c] <= 150, out

    node.send("use", options={"balancer": "least_inflight"})
    out = node.send("calls", method="slow", args=[5], n=120, concurrency=6)
    assert out["failed"] == 0, out
    assert set(out["served"]) == {a, b, c} and min(out["served"].values()) >= 20, out

    node.send("use", options={"balancer": "consistent_hash"})
    ring = ConsistentHashPicker(
        tuple(Instance(service="echo", host="127.0.0.1", port=int(addr.rsplit(":", 1)[1]),
                       weight=w) for addr, w in ((a, 100), (b, 200), (c, 100))),
        key=lambda call: call)
    for key in ("user-1", "user-2", "user-3", "user-42", "sku-9"):
        out = node.send("calls", method="whoami", n=5, options={"hashKey": key})
        assert out["served"] == {ring.pick(key).address: 5}, (key, out)  # as Python places it


def test_kill9_under_load_fails_no_idempotent_call_and_a_new_instance_is_used(echoes, driver):
    for name in "abc":
        echoes.add(name)
    node = driver({"balancer": "round_robin", "timeout": 2000})
    wait_until(lambda: len(node.send("instances")["instances"]) == 3, message="three instances")
    node.send("load", method="slow", args=[2], concurrency=16)
    gevent.sleep(0.3)  # calls in flight on every instance when one dies
    echoes.processes["b"].kill()
    echoes.processes["b"].wait(10)
    gevent.sleep(1.0)
    out = node.send("stop")
    print(out)
    assert out["failed"] == 0, out
    assert out["calls"] > 100, out
    assert out["counters"]["retries"] > 0, out  # calls in flight on b, and refused, went on

    echoes.add("d")  # returns once it is registered in etcd
    first = node.send("first", address=echoes.address("d"), method="whoami", timeout_ms=3000)
    assert first["failed"] == 0, first
    assert first["ms"] is not None and first["ms"] < 1000, first


def test_connections_are_reused_counted_by_the_server(echoes, driver):
    server = echoes.add("a", verbose=True)
    node = driver({"poolSize": 4})
    wait_until(lambda: node.send("instances")["instances"], message="an instance")
    out = node.send("calls", method="echo", args=["x"], n=300, concurrency=4)
    assert out["failed"] == 0, out
    peers = set(re.findall(r"soa\.access: echo\.echo peer=(\S+)", server.output()))
    assert 1 <= len(peers) <= 4, sorted(peers)  # 300 calls over at most 4 connections
    stats = node.send("stats")["stats"][server.address]
    assert stats["opened"] == len(peers), (stats, peers)


def test_a_late_call_is_refused_by_the_server_and_not_executed(echoes, driver):
    echoes.add("a")
    node = driver({"lateGrace": 3000})
    wait_until(lambda: node.send("instances")["instances"], message="an instance")
    assert node.send("call", method="whoami")["address"] == echoes.address("a")  # pooled now
    seen = node.send("call", method="deadline_ms", options={"timeout": 800})
    assert 0 < seen["result"] <= 800, seen  # the deadline travelled in soa-deadline-ms

    late = node.send("call", method="bump", args=["late"], options={"timeout": 1})
    assert late["error"] == "DeadlineExceeded" and late["late"] is True, late
    assert late["sent"] is False, late
    again = node.send("call", method="bump", args=["late"])
    assert again["result"] == 1, again  # the late call never ran


def test_etcd_stopped_for_10s_no_failed_call_and_the_watch_resumes(tmp_path, etcd_prefix,
                                                                    driver):
    server = EtcdProcess(tmp_path / "etcd")
    server.start()
    config = EtcdConfig(endpoints=(server.endpoint,), prefix=etcd_prefix, lease_ttl=2)
    shop = Echoes(tmp_path, config)
    try:
        shop.add("a")
        shop.add("b")
        node = driver({"etcd": {"endpoints": [server.endpoint], "prefix": etcd_prefix,
                                "timeout": 500}}, config=config)
        wait_until(lambda: len(node.send("instances")["instances"]) == 2, message="two")
        node.send("load", method="whoami", concurrency=4)
        server.stop()
        gevent.sleep(10)
        server = EtcdProcess(tmp_path / "etcd", client_port=server.client_port,
                             peer_port=server.peer_port)
        server.start()
        out = node.send("stop")
        assert out["failed"] == 0, out
        assert set(out["served"]) == {shop.address("a"), shop.address("b")}, out
        shop.add("c")
        wait_until(lambda: shop.address("c") in node.send("instances")["instances"],
                   timeout=5, message="the watch resumed and saw the new instance")
    finally:
        shop.stop()
        server.stop()


def test_wrong_target_is_retried_elsewhere_and_left_out(echoes, driver, etcd, etcd_config):
    echoes.add("a")
    other = echoes.add("other", service="other", verbose=True)  # same IDL, another service
    # The registry says echo is (also) at other's address: a stale or hijacked entry.
    fake = {"service": "echo", "host": "127.0.0.1", "port": other.port, "theader": True,
            "id": "not-this-one"}
    etcd.put(f"{etcd_config.prefix}/services/echo/{other.address}", json.dumps(fake))
    node = driver({"balancer": "round_robin"})
    wait_until(lambda: len(node.send("instances")["instances"]) == 2, message="two instances")
    out = node.send("calls", method="bump", args=["k"], n=10)  # not idempotent: never sent twice
    assert out["failed"] == 0, out
    assert out["served"] == {echoes.address("a"): 10}, out
    counters = node.send("stats")["counters"]
    assert counters["wrongTarget"] == 1, counters  # refused once, then left out
    assert "other.bump peer=" not in other.output()  # refused unexecuted


class TlsEtcd(EtcdProcess):
    """etcd serving its clients over TLS only (health on a plain metrics port)."""

    def __init__(self, data_dir, certs):
        super().__init__(data_dir)
        self.certs = certs
        self.metrics_port = free_port()

    def command(self):
        plain = f"http://127.0.0.1:{self.client_port}"
        cmd = [c.replace(plain, f"https://127.0.0.1:{self.client_port}") for c in super().command()]
        return [*cmd, "--cert-file", str(self.certs / "server.pem"),
                "--key-file", str(self.certs / "server.key"),
                "--listen-metrics-urls", f"http://127.0.0.1:{self.metrics_port}"]

    def healthy(self):
        try:
            url = f"http://127.0.0.1:{self.metrics_port}/health"
            with urllib.request.urlopen(url, timeout=1) as response:
                return json.loads(response.read()).get("health") == "true"
        except (OSError, ValueError):
            return False


def make_certs(folder):
    """A CA, and a server certificate for 127.0.0.1 signed by it (openssl)."""
    folder.mkdir()
    openssl = tool("openssl")

    def ssl(*args):
        run([openssl, *args], folder, 60)

    ssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.pem",
        "-days", "1", "-subj", "/CN=soa-test-ca")
    ssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", "server.key", "-out", "server.csr",
        "-subj", "/CN=127.0.0.1")
    (folder / "ext").write_text("subjectAltName=IP:127.0.0.1\n", encoding="utf-8")
    ssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-CAcreateserial", "-out", "server.pem", "-days", "1", "-extfile", "ext")
    return folder


def test_etcd_with_tls_and_auth_read_only_client(tmp_path, echoes, etcd, etcd_config, node_gen):
    """The plugin reads an etcd that serves TLS only and requires a user: with the CA and a
    read-only user it discovers and calls; a wrong password, or no CA, is one clear error."""
    server = echoes.add("a")
    value = etcd.get(f"{etcd_config.prefix}/services/echo/{server.address}")[0]
    certs = make_certs(tmp_path / "certs")
    secure = TlsEtcd(tmp_path / "etcd-tls", certs)
    secure.start()
    try:
        ctl = [etcd_binary("etcdctl"), f"--endpoints=https://{secure.endpoint}",
               f"--cacert={certs / 'ca.pem'}"]
        for args in (["user", "add", "root", "--new-user-password=rootpw", "--interactive=false"],
                     ["user", "grant-role", "root", "root"],
                     ["role", "add", "reader"],
                     ["role", "grant-permission", "reader", "--prefix=true", "read", "/auth/"],
                     ["user", "add", "reader", "--new-user-password=readerpw",
                      "--interactive=false"],
                     ["user", "grant-role", "reader", "reader"],
                     ["auth", "enable"],
                     ["--user=root:rootpw", "put", f"/auth/services/echo/{server.address}",
                      value.decode()]):
            run([*ctl, *args], tmp_path, 30)
        etcd_opts = {"endpoints": [secure.endpoint], "prefix": "/auth", "user": "reader",
                     "password": "readerpw", "tls": {"ca": str(certs / "ca.pem")}}
        node = Driver(node_gen, etcd_config, {"etcd": etcd_opts})
        try:
            assert node.send("instances")["instances"] == [server.address]
            out = node.send("calls", method="echo", args=["over tls etcd"], n=5)
            assert out["failed"] == 0 and out["served"] == {server.address: 5}, out
        finally:
            node.close()
        for bad, why in (({"password": "wrong"}, "authentication failed"),
                         ({"tls": None}, "")):
            node = Driver(node_gen, etcd_config, {"etcd": {**etcd_opts, **bad, "timeout": 1000}})
            try:
                assert node.proc.wait(30) == 1
                err = node.proc.stderr.read()
                first = next(line for line in err.splitlines() if "Error" in line)
                assert first.startswith("DiscoveryError: soa: etcd: cannot list /auth/services/"
                                        "echo/"), err
                assert why in first.lower(), err
                assert "wrong" not in err and "readerpw" not in err, err  # no secret in errors
            finally:
                node.close()
    finally:
        secure.stop()
