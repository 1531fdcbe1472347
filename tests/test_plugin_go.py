"""The Go plugin (plugins/go) against a real etcd and real soa servers.

The Go side is ``go vet`` plus ``go test -race`` (vectors, hash vectors, balancer logic, the
registry against the etcd this test started, the README's Example) and ``internal/livecheck``, a
Go program over the EchoService of tests/fixtures, driven from here: spread per balancer, kill -9
under load, a new instance within 1 s, etcd stopped for 10 s, a late call refused, connection
reuse counted from the servers' access logs. A missing Go toolchain is a failure, never a skip.
"""

import json
import os
import re
import subprocess
import time
from pathlib import Path

import pytest

from soa.balancer.consistent_hash import ConsistentHash
from soa.etcd_server import EtcdProcess
from soa.middleware import Call
from soa.testing.poll import wait_until
from soa.testing.tools import require_tool as tool

from fixtures.tls_support import Echoes

ROOT = Path(__file__).resolve().parent.parent
PLUGIN = ROOT / "plugins" / "go"
ECHO_IDL = ROOT / "tests" / "fixtures" / "client_echo.thrift"
GO_ENV = {"GOFLAGS": "-mod=mod -buildvcs=false", "GOTOOLCHAIN": "local"}


def run(cmd, cwd, timeout, env=None):
    """Run ``cmd``; fail with its output when it exits non-zero. Returns stdout."""
    try:
        proc = subprocess.run([str(c) for c in cmd], cwd=cwd, env=dict(os.environ, **(env or {})),
                              capture_output=True, text=True, timeout=timeout,
                              stdin=subprocess.DEVNULL, check=False)
    except subprocess.TimeoutExpired as e:
        pytest.fail(f"{cmd} timed out after {timeout}s:\n{e.stdout}\n{e.stderr}")
    if proc.returncode != 0:
        pytest.fail(f"{cmd} exited with {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    return proc.stdout


@pytest.fixture(scope="session")
def livecheck(tmp_path_factory):
    binary = tmp_path_factory.mktemp("go") / "livecheck"
    run([tool("go"), "build", "-o", binary, "./internal/livecheck"], PLUGIN, 300, GO_ENV)
    return binary


@pytest.fixture
def echoes(tmp_path, etcd_config):
    shop = Echoes(tmp_path, etcd_config.endpoints, etcd_config.prefix)
    try:
        yield shop
    finally:
        shop.stop()


def livecheck_json(binary, echoes, *args, timeout=60):
    out = run([binary, "-etcd", ",".join(echoes.endpoints), "-prefix", echoes.prefix, *args],
              ROOT, timeout)
    return json.loads(out.strip().splitlines()[-1])


# --- the Go side -------------------------------------------------------------------------------


def test_go_vet_and_race_tests(etcd_server, tmp_path):
    """Besides the session's etcd, one of its own whose auth the Go test enables (TestEtcdAuth:
    a read-only user lists, wrong credentials get one clear error)."""
    go = tool("go")
    run([go, "vet", "./..."], PLUGIN, 300, GO_ENV)
    auth_etcd = EtcdProcess(tmp_path / "etcd-auth" / "data").start()
    try:
        out = run([go, "test", "-race", "-count=1", "-timeout", "120s", "./..."], PLUGIN, 400,
                  {**GO_ENV, "SOA_TEST_ETCD": etcd_server.endpoint,
                   "SOA_TEST_ETCD_AUTH": auth_etcd.endpoint})
    finally:
        auth_etcd.stop()
    assert "ok  \tgithub.com/soa-shop/soa/plugins/go/soa" in out, out


def test_committed_echo_code_matches_the_fixture_idl():
    """internal/gen/client_echo is `soa gen` output for tests/fixtures/client_echo.thrift."""
    from soa import idl as soa_idl

    want = soa_idl.idl_hash(soa_idl.load(ECHO_IDL).EchoService)
    text = (PLUGIN / "internal" / "gen" / "client_echo" / "soa_idl.go").read_text()
    assert f'const SoaIDLHash = "{want}"' in text, "regenerate it: see plugins/go/README.md"


# --- live: real etcd, real soa servers ------------------------------------------------------------


def peers(process):
    """The distinct client addresses in a server's access log: its connections."""
    return set(re.findall(r"echo\.whoami (\S+) ", process.output()))


def test_balancers_spread_calls_as_promised(echoes, livecheck):
    for name, weight in (("a", 100), ("b", 100), ("c", 200)):
        echoes.add(name, weight=weight, logged=True)
    a, b, c = (echoes.port(n) for n in "abc")

    rr = livecheck_json(livecheck, echoes, "-balancer", "round_robin", "-calls", 60)
    assert rr["failed"] == 0, rr
    assert rr["served"] == {a: 20, b: 20, c: 20}, rr

    swrr = livecheck_json(livecheck, echoes, "-balancer", "weighted_round_robin", "-calls", 80)
    assert swrr["served"] == {a: 20, b: 20, c: 40}, swrr

    wr = livecheck_json(livecheck, echoes, "-balancer", "weighted_random", "-calls", 600,
                        "-concurrency", 4)
    assert wr["failed"] == 0 and sum(wr["served"].values()) == 600, wr
    assert 0.4 < wr["served"][c] / 600 < 0.6, wr

    p2c = livecheck_json(livecheck, echoes, "-balancer", "least_inflight", "-calls", 300,
                         "-concurrency", 6)
    assert p2c["failed"] == 0 and set(p2c["served"]) == {a, b, c}, p2c
    assert min(p2c["served"].values()) >= 300 * 0.15, p2c

    ch = livecheck_json(livecheck, echoes, "-balancer", "consistent_hash", "-calls", 120,
                        "-keys", 40, "-concurrency", 4)
    assert ch["failed"] == 0, ch  # a key that moved between calls is an error too
    instances = tuple(p.instance for p in echoes.processes.values())
    ring = ConsistentHash(key=lambda call: call.meta["key"]).picker(instances)
    python = {k: ring.pick(Call("echo", "whoami", meta={"key": k})).port for k in ch["keys"]}
    assert ch["keys"] == python, "the Go ring and the Python ring disagree"

    # Pooling: 300 calls over 4 goroutines needed at most 4 connections per instance.
    for name in "abc":
        wait_until(lambda n=name: peers(echoes.processes[n]), timeout=5,
                   message="the access log shows no call")
    before = {n: peers(echoes.processes[n]) for n in "abc"}
    reuse = livecheck_json(livecheck, echoes, "-calls", 300, "-concurrency", 4)
    assert reuse["failed"] == 0, reuse
    assert reuse["reused"] >= 300 - 12, reuse
    for n in "abc":
        wait_until(lambda n=n: len(peers(echoes.processes[n]) - before[n]) >= 1, timeout=5,
                   message=f"{n}'s access log shows no call of the last run")
        fresh = peers(echoes.processes[n]) - before[n]
        assert 1 <= len(fresh) <= 4, f"{n} saw {len(fresh)} connections for 100 calls: {fresh}"


def test_idl_mismatch_policy(echoes, livecheck):
    echoes.add("a")
    warn = livecheck_json(livecheck, echoes, "-idl-hash", "sha256:0000000000000000", "-calls", 3)
    assert warn["failed"] == 0, warn
    exclude = livecheck_json(livecheck, echoes, "-idl-hash", "sha256:0000000000000000",
                             "-idl-mismatch", "exclude", "-calls", 3)
    assert exclude["failed"] == 3 and exclude["instances"] == 0, exclude
    assert "IDL mismatch" in exclude["errors"][0], exclude
    same = livecheck_json(livecheck, echoes, "-idl-mismatch", "exclude", "-calls", 3)
    assert same["failed"] == 0, same


class Load:
    """livecheck -mode load: whoami calls from 8 goroutines until stdin closes."""

    def __init__(self, binary, endpoints, prefix):
        self.proc = subprocess.Popen(
            [str(binary), "-mode", "load", "-concurrency", "8", "-etcd", ",".join(endpoints),
             "-prefix", prefix], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True)
        self.first_seen = {}  # port -> unix ms
        assert json.loads(self.proc.stdout.readline())["event"] == "started"

    def wait_for(self, port, timeout):
        deadline = time.monotonic() + timeout
        while port not in self.first_seen:
            if time.monotonic() > deadline:
                pytest.fail(f"port {port} not served within {timeout}s; saw {self.first_seen}")
            line = self.proc.stdout.readline()
            if not line:
                pytest.fail(f"the load exited: {self.proc.stderr.read()}")
            event = json.loads(line)
            if event["event"] == "new":
                self.first_seen[str(event["port"])] = event["at_ms"]
        return self.first_seen[port]

    def finish(self):
        self.proc.stdin.close()
        out, err = self.proc.communicate(timeout=30)
        assert self.proc.returncode == 0, err
        return json.loads(out.strip().splitlines()[-1])

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


def test_kill_new_instance_and_etcd_outage_under_load(tmp_path, livecheck, etcd_prefix):
    etcd = EtcdProcess(tmp_path / "etcd" / "data").start()
    echoes = Echoes(tmp_path, [etcd.endpoint], etcd_prefix)
    load = None
    try:
        for name in "abc":  # the default lease TTL (10 s): b's key outlives its kill -9
            echoes.add(name, lease_ttl=10)
        load = Load(livecheck, echoes.endpoints, echoes.prefix)
        for name in "abc":
            load.wait_for(echoes.port(name), 10)

        echoes.processes["b"].kill()
        echoes.processes["b"].wait(10)
        d = echoes.add("d", lease_ttl=10)
        # started_at is stamped before the server binds and registers: an upper bound on the
        # time from registration to the first call d served.
        registered_ms = d.instance.started_at * 1000
        used_ms = load.wait_for(echoes.port("d"), 5)
        assert used_ms - registered_ms < 1000, f"d served after {used_ms - registered_ms:.0f} ms"

        etcd.stop()
        time.sleep(10)  # the outage itself is what is tested, not a wait for a condition
        etcd.start()
        echoes.add("e", lease_ttl=10)
        load.wait_for(echoes.port("e"), 10)  # the watch resumed
        summary = load.finish()
        print("d used after", used_ms - registered_ms, "ms;", summary)  # shown on failure
        assert summary["failed"] == 0, summary
        assert summary["served"].get(echoes.port("a"), 0) > 0
        load = None
    finally:
        if load is not None:
            load.kill()
        echoes.stop()
        etcd.stop()


def test_catalog_example_builds_against_soa_gen_output(tmp_path):
    """examples/catalog-call, next to `soa gen go` output for idl/catalog.thrift, builds (it uses
    the generated SoaService and SoaIDLHash)."""
    import shutil
    import sys

    example = PLUGIN / "examples" / "catalog-call"
    demo = tmp_path / "catalog-call"
    demo.mkdir()
    shutil.copy(example / "main.go", demo)
    go_mod = (example / "go.mod").read_text(encoding="utf-8")
    (demo / "go.mod").write_text(go_mod.replace("=> ../..", f"=> {PLUGIN}"), encoding="utf-8")
    soa_cli = Path(sys.executable).parent / "soa"
    run([soa_cli, "gen", "go", "--idl", ROOT / "idl" / "catalog.thrift", "--out", demo / "gen-go",
         "--module", "soa-example/catalog-call/gen-go"], ROOT, 120)
    (demo / "gen-go" / "go.mod").unlink()
    run([tool("go"), "build", "-o", tmp_path / "catalog-call-bin", "."], demo, 300, GO_ENV)


def test_late_call_is_refused_by_the_server_and_not_executed(echoes, livecheck):
    process = echoes.add("a")
    assert process.instance.theader and process.instance.id, process.instance
    late = livecheck_json(livecheck, echoes, "-mode", "late", "-tries", 30)
    print(late)  # shown on failure
    assert late["succeeded"] == 0 and not late["other"], late
    assert late["refused"] >= 1, f"the server never answered soa-error: late: {late}"
    assert late["after"] == 1, f"the handler ran {late['after'] - 1} of the late calls"
    assert 1500 < late["deadline_ms"] <= 2000, "a 2 s deadline did not reach the handler"


def test_wrong_target_is_not_sent_and_goes_elsewhere(echoes, livecheck, etcd):
    """A registry value whose id is not the server's: the server refuses the call unexecuted,
    so even a call not marked idempotent goes on to the other instance."""
    a, b = echoes.add("a"), echoes.add("b")
    key = f"{echoes.prefix}/services/echo/{a.address}"
    value = json.loads(etcd.get(key)[0])
    value["id"] = "another-registration"
    etcd.put(key, json.dumps(value))
    out = livecheck_json(livecheck, echoes, "-calls", 20, "-idempotent", "")
    assert out["failed"] == 0, out
    assert out["served"] == {str(b.port): 20}, out
    assert out["instances"] == 1, "the wrong target is still in rotation"


def test_tls_and_mtls_to_a_soa_server(echoes, livecheck, tmp_path):
    from soa.testing.certs import Authority

    ca, other = Authority(tmp_path / "pki", "ca"), Authority(tmp_path / "pki", "other-ca")
    cert, key = ca.issue("server")
    client_cert, client_key = ca.issue("client", hosts=(), client=True)
    process = echoes.add("a", tls={"cert": str(cert), "key": str(key), "ca": str(ca.path),
                                   "require_client_cert": True})
    assert process.instance.tls, process.instance
    good = livecheck_json(livecheck, echoes, "-calls", 5, "-tls-ca", ca.path, "-tls-cert",
                          client_cert, "-tls-key", client_key)
    assert good["failed"] == 0 and good["served"] == {echoes.port("a"): 5}, good
    for args, why in ((["-tls-ca", ca.path], "without a client certificate"),
                      (["-tls-ca", other.path, "-tls-cert", client_cert, "-tls-key", client_key],
                       "with a wrong CA")):
        bad = livecheck_json(livecheck, echoes, "-calls", 2, *args)
        assert bad["failed"] == 2, f"{why}: {bad}"
        assert all("\n" not in e for e in bad["errors"]), bad
        assert any("tls" in e for e in bad["errors"]), bad  # a reset may come before the alert
        assert "(sent)" not in bad["errors"][0], f"{why}: a refused TLS session was sent: {bad}"
