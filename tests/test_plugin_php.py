"""The PHP plugin (plugins/php): its PHPUnit suite, then the plugin live against a real etcd and
real soa servers of the echo service (tests/fixtures/echo.thrift), driven by
plugins/php/tests/live/drive.php (one JSON summary line per run).

Toolchains missing is a failure, never a skip: `bash .ci/ensure-tools` installs PHP, Apache
Thrift's PHP library, PHPUnit and APCu. APCu needs apc.enable_cli=1 on the command line (it is a
php.ini-level setting). The Thrift code the programs use is generated into each test's tmp dir.
"""

import json
import os
import re
import subprocess
import time
from pathlib import Path

import pytest

from fixtures.server_support import client as raw_client
from fixtures.server_support import echo_config
from soa import idl
from soa.balancer.consistent_hash import ConsistentHashPicker
from soa.etcd_server import EtcdProcess, free_port
from soa.registry.instance import Instance
from soa.testing.poll import wait_until
from soa.testing.processes import ServiceProcess, write_config
from soa.testing.tools import require_tool as tool

from fixtures.php_driver import DRIVE, drive, php_cmd, run, thrift_gen

ROOT = Path(__file__).resolve().parent.parent
PLUGIN = ROOT / "plugins" / "php"
WEB = PLUGIN / "tests" / "live" / "web.php"
ECHO_IDL = ROOT / "tests" / "fixtures" / "echo.thrift"
CATALOG_IDL = ROOT / "idl" / "catalog.thrift"


@pytest.fixture(scope="module")
def echo_gen(tmp_path_factory):
    return thrift_gen(ECHO_IDL, tmp_path_factory.mktemp("gen-php-echo"))


class LoggedServiceProcess(ServiceProcess):
    """``soa -v serve``: the access log (one line per call, with the caller's address) is on."""

    def command(self):
        cmd = super().command()
        return cmd[:3] + ["-v"] + cmd[3:]

    def peers(self):
        """The distinct client addresses (host:port) of the calls this server logged."""
        return set(re.findall(r"peer=(\S+)", self.output()))


class EchoFleet:
    """Echo instances of one registry prefix, each in its own config root."""

    def __init__(self, tmp_path, etcd_config, lease_ttl=2):
        self.tmp_path = tmp_path
        self.etcd_config = etcd_config
        self.lease_ttl = lease_ttl
        self.processes = {}

    def add(self, name, logged=False, **service):
        root = self.tmp_path / f"echo-{name}"
        root.mkdir()
        path = echo_config(root, self.etcd_config, **service)
        if self.lease_ttl != 2:
            text = path.read_text(encoding="utf-8")
            path.write_text(text.replace("lease_ttl: 2", f"lease_ttl: {self.lease_ttl}"),
                            encoding="utf-8")
        cls = LoggedServiceProcess if logged else ServiceProcess
        self.processes[name] = process = cls(path, "echo")
        process.start(30)  # one at a time: a fork while gRPC polls etcd can crash the child
        return process

    def address(self, name):
        return self.processes[name].address

    def stop(self):
        for process in self.processes.values():
            process.stop(timeout=5)


@pytest.fixture
def fleet(tmp_path, etcd_config):
    made = EchoFleet(tmp_path, etcd_config)
    try:
        yield made
    finally:
        made.stop()


def call_count(process):
    """The echo calls ``process`` has executed (its handler counts them), asked directly."""
    c = raw_client(idl.load(ECHO_IDL), process.port)
    try:
        return c.call_count()
    finally:
        c.close()


def start_drive(echo_gen, etcd_config, *args, endpoints=None):
    endpoints = endpoints or ",".join(etcd_config.endpoints)
    cmd = php_cmd(DRIVE, f"--gen={echo_gen}", f"--etcd={endpoints}",
                  f"--prefix={etcd_config.prefix}", *args)
    return subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, text=True)


def finish(proc, timeout=60):
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        out, err = proc.communicate()
        pytest.fail(f"the driver did not finish in {timeout}s: {out}\n{err}")
    assert proc.returncode == 0, f"{out}\n{err}"
    return json.loads(out.strip().splitlines()[-1])


# --- the PHPUnit suite: vectors (registry and hash), balancers, caches, registry, client ------


def test_phpunit(etcd_config):
    """PHPUnit 9.6 from Debian over plugins/php/tests, with the session's real etcd."""
    out = run(php_cmd(tool("phpunit"), "--colors=never"), cwd=PLUGIN, timeout=240,
              env={"SOA_TEST_ETCD": etcd_config.endpoints[0],
                   "SOA_TEST_PREFIX": etcd_config.prefix})
    assert re.search(r"^OK \(\d+ tests", out, re.M), out
    assert int(re.search(r"OK \((\d+) tests", out).group(1)) >= 80, out


def test_composer_json_is_valid_and_maps_soa_to_src():
    """composer.json without Composer (no network): its PSR-4 map matches the files, and every
    class under src/ sits where PSR-4 expects it."""
    data = json.loads((PLUGIN / "composer.json").read_text(encoding="utf-8"))
    assert data["autoload"]["psr-4"] == {"Soa\\": "src/"}
    assert data["name"] == "soa/soa-client"
    assert "apache/thrift" in data["require"]
    for path in (PLUGIN / "src").rglob("*.php"):
        if path.name == "autoload.php":
            continue
        text = path.read_text(encoding="utf-8")
        namespace = re.search(r"^namespace ([\w\\]+);", text, re.M).group(1)
        declared = re.search(r"^(?:final |abstract )?(?:class|interface) (\w+)", text, re.M)
        rel = path.relative_to(PLUGIN / "src").with_suffix("")
        expected = "Soa\\" + str(rel).replace("/", "\\")
        assert f"{namespace}\\{declared.group(1)}" == expected, path


# --- live: real etcd, real soa servers -------------------------------------------------------


def test_spread_per_balancer(fleet, echo_gen, etcd_config):
    """Each balancer spreads calls as registry/BALANCING.md promises; the consistent-hash ring
    maps each key to the instance Python's ring gives."""
    fleet.add("a", weight=100)
    fleet.add("b", weight=100)
    fleet.add("c", weight=200)
    a, b, c = (fleet.address(n) for n in "abc")

    rr = drive(echo_gen, etcd_config, "--balancer=round_robin", "--calls=30")
    assert rr["failed"] == 0, rr
    assert rr["served"] == {a: 10, b: 10, c: 10}, rr

    wrr = drive(echo_gen, etcd_config, "--balancer=weighted_round_robin", "--calls=40")
    assert wrr["served"] == {a: 10, b: 10, c: 20}, wrr

    wr = drive(echo_gen, etcd_config, "--balancer=weighted_random", "--calls=400")
    assert wr["failed"] == 0 and sum(wr["served"].values()) == 400, wr
    assert 140 <= wr["served"][c] <= 260, wr  # expected 200
    assert 50 <= wr["served"][a] <= 150, wr  # expected 100

    p2c = drive(echo_gen, etcd_config, "--balancer=least_inflight", "--calls=300")
    assert p2c["failed"] == 0 and set(p2c["served"]) == {a, b, c}, p2c
    assert all(60 <= n <= 140 for n in p2c["served"].values()), p2c  # uniform: weights unused

    ch = drive(echo_gen, etcd_config, "--balancer=consistent_hash", "--keys=60")
    assert ch["failed"] == 0, ch
    instances = tuple(sorted((Instance("echo", "127.0.0.1", int(addr.rsplit(":", 1)[1]), weight=w)
                              for addr, w in ((a, 100), (b, 100), (c, 200))),
                             key=lambda i: i.address))
    python_ring = ConsistentHashPicker(instances, key=lambda call: call)  # the call is the key
    assert ch["keys"] == {k: python_ring.pick(k).address for k in ch["keys"]}
    again = drive(echo_gen, etcd_config, "--balancer=consistent_hash", "--keys=60")
    assert again["keys"] == ch["keys"], "the same key went elsewhere in another process"
    assert len(set(ch["keys"].values())) == 3, ch


def test_kill_9_of_one_of_three_under_load_fails_no_idempotent_call(fleet, echo_gen, etcd_config):
    """Three drivers call without pause while one of three instances dies by SIGKILL: its key
    stays until the lease expires, so drivers meet refused connects and the calls whose
    connection died mid-call; all of them are retried elsewhere."""
    for name in "abc":
        fleet.add(name)
    drivers = [start_drive(echo_gen, etcd_config, "--duration=3.5", "--idempotent",
                           "--cache-ttl=0.5", "--timeout-ms=1000") for _ in range(3)]
    victim = fleet.processes["b"]
    wait_until(lambda: call_count(victim) > 30, timeout=10, message="load on b")
    victim.kill()
    victim.wait(10)
    results = [finish(d) for d in drivers]
    print(results)
    for r in results:
        assert r["failed"] == 0, r
        assert r["calls"] > 50, r
    assert any(fleet.address("b") in r["served"] for r in results), "b took no calls before"
    assert sum(r["refused"] for r in results) > 0, "the dead instance was never tried"
    assert all(set(r["served"]) >= {fleet.address("a"), fleet.address("c")} for r in results)


def test_a_new_instance_is_used_within_the_cache_ttl(fleet, echo_gen, etcd_config):
    fleet.add("a")
    driver = start_drive(echo_gen, etcd_config, "--duration=4", "--pause-ms=20",
                         "--cache-ttl=1", "--cache=file", f"--cache-dir={fleet.tmp_path}/cache")
    wait_until(lambda: call_count(fleet.processes["a"]) > 5, timeout=10, message="calls to a")
    fleet.add("b")
    registered = time.time()  # start() returned: the key is in etcd
    result = finish(driver)
    assert result["failed"] == 0, result
    first = result["first_seen"].get(fleet.address("b"))
    assert first is not None, f"the new instance was never used: {result}"
    assert first - registered <= 1.0 + 0.3, f"used {first - registered:.2f}s after registering"


def test_etcd_stopped_for_10s_fails_no_call(tmp_path, echo_gen):
    """A dedicated etcd is stopped for 10 s while php-cli processes, one call each, keep calling:
    the file cache (stale_ttl 30 s) serves them. After etcd returns, listing resumes: an instance
    registered then is used within the cache TTL."""
    etcd = EtcdProcess(tmp_path / "etcd" / "data")
    etcd.start()
    fleet = None
    try:
        from soa.config import EtcdConfig

        config = EtcdConfig(endpoints=(etcd.endpoint,), prefix="/soa-php-down", lease_ttl=30)
        fleet = EchoFleet(tmp_path, config, lease_ttl=30)
        fleet.add("a")
        fleet.add("b")
        args = ["--calls=1", "--cache=file", f"--cache-dir={tmp_path}/cache", "--cache-ttl=0.5",
                "--stale-ttl=30", "--idempotent"]
        failed, calls = [], 0

        def one_call():
            nonlocal calls
            calls += 1
            r = drive(echo_gen, config, *args)
            if r["failed"]:
                failed.append(r)
            return r

        one_call()  # fills the cache
        etcd.stop()
        down_until = time.monotonic() + 10
        while time.monotonic() < down_until:
            one_call()
        etcd.start()
        assert failed == [], failed[:3]
        assert calls > 20
        fleet.add("c")
        seen = wait_until(lambda: fleet.address("c") in one_call()["served"], timeout=10,
                          message="the instance registered after etcd came back")
        assert seen
        assert failed == [], failed[:3]
    finally:
        if fleet is not None:
            fleet.stop()
        etcd.stop()


class PhpWebServer:
    """``php -S`` running plugins/php/tests/live/web.php: one PHP process serving requests in
    turn, as a php-fpm worker does, so persistent sockets outlive each request."""

    def __init__(self, echo_gen, etcd_config, persist, calls=4):
        self.port = free_port()
        env = dict(os.environ, SOA_GEN=str(echo_gen), SOA_ETCD=",".join(etcd_config.endpoints),
                   SOA_PREFIX=etcd_config.prefix, SOA_PERSIST="1" if persist else "0",
                   SOA_CALLS=str(calls))
        env.pop("PHP_CLI_SERVER_WORKERS", None)
        self.proc = subprocess.Popen(php_cmd("-S", f"127.0.0.1:{self.port}", WEB), cwd=ROOT,
                                     env=env, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)

    def get(self):
        import urllib.request

        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/", timeout=10) as r:
            return json.loads(r.read())

    def ready(self):
        try:
            return self.get()
        except OSError:
            return None

    def stop(self):
        self.proc.terminate()
        self.proc.wait(10)


@pytest.mark.parametrize("persist", [True, False], ids=["persistent", "per-request"])
def test_connections_are_reused_counted_from_the_server_side(fleet, echo_gen, etcd_config,
                                                            persist):
    """Eight requests of four calls each to two instances: with persistent sockets each server
    sees the calls of all requests come over one connection; without, over one per request.
    Counted from the servers' access logs (the peer address of each call)."""
    fleet.add("a", logged=True)
    fleet.add("b", logged=True)
    web = PhpWebServer(echo_gen, etcd_config, persist)
    try:
        wait_until(web.ready, timeout=10, message="php -S")
        pages = [web.get() for _ in range(7)]  # with the one of ready(): eight
    finally:
        web.stop()
    for page in pages:
        assert len(page["served"]) == 4 and len(set(page["served"])) == 2, page
    for name in "ab":
        process = fleet.processes[name]
        wait_until(lambda p=process: len(re.findall(r"peer=", p.output())) >= 16, timeout=5,
                   message="the access log lines")
        assert len(re.findall(r"echo\.echo peer=", process.output())) == 16
        peers = process.peers()
        assert len(peers) == (1 if persist else 8), peers


def test_the_example_calls_the_catalog(tmp_path, etcd_config):
    """plugins/php/examples/catalog-call.php against two real catalog servers, one binary/
    buffered and one compact/framed, behind a dead etcd endpoint."""
    processes = []
    try:
        for name, protocol, transport in (("a", "binary", "buffered"), ("b", "compact", "framed")):
            root = tmp_path / f"catalog-{name}"
            root.mkdir()
            service = {"idl": str(CATALOG_IDL), "service": "CatalogService",
                       "handler": "services.catalog.handler:CatalogHandler", "host": "127.0.0.1",
                       "protocol": protocol, "transport": transport, "grace_period": 0.1}
            path = write_config(root, etcd_endpoints=list(etcd_config.endpoints),
                                prefix=etcd_config.prefix, services={"catalog": service})
            process = ServiceProcess(path, "catalog", env={"PYTHONPATH": str(ROOT)})
            processes.append(process)
            process.start(30)
        gen = thrift_gen(CATALOG_IDL, tmp_path / "gen-php")
        etcd = ",".join([f"127.0.0.1:{free_port()}", *etcd_config.endpoints])
        out = json.loads(run(php_cmd("plugins/php/examples/catalog-call.php", f"--gen={gen}",
                                     f"--etcd={etcd}", f"--prefix={etcd_config.prefix}",
                                     "--calls=10")))
        assert out["failed"] == 0, out
        assert out["served"] == {p.address: 5 for p in processes}, out
        assert out["products"] > 0, out
    finally:
        for process in processes:
            process.stop(timeout=5)


def test_large_requests_and_replies_go_through_whole(fleet, echo_gen, etcd_config):
    """Echoes of 6 MB: more than the socket takes at once, so the plugin's non-blocking writes
    wait and go on, and the reply frame comes in many reads; each comes back byte for byte."""
    fleet.add("a")
    out = drive(echo_gen, etcd_config, "--calls=3", "--size=6000000", "--timeout-ms=20000")
    assert out["failed"] == 0 and out["calls"] == 3, out


def test_a_late_call_is_refused_by_the_server_and_not_executed(fleet, echo_gen, etcd_config):
    """A THeader frame with soa-deadline-ms 1 gets soa-error: late and the handler never runs;
    so does a plugin call with 1 ms left (or it times out locally: either way, not executed)."""
    process = fleet.add("a")
    assert process.instance.theader, "soa servers advertise THeader"
    before = call_count(process)
    late = json.loads(run(php_cmd(DRIVE, f"--gen={echo_gen}", f"--late={process.address}")))
    assert late["refused"] is True, late
    assert late["headers"].get("soa-error") == "late", late
    one_ms = drive(echo_gen, etcd_config, "--calls=5", "--timeout-ms=1")
    assert one_ms["failed"] == 5, one_ms
    assert set(one_ms["error_types"]) == {"Soa\\RpcTimeout"}, one_ms
    assert call_count(process) == before, "a late call was executed"
    fine = drive(echo_gen, etcd_config, "--calls=3")
    assert fine["failed"] == 0, fine
    assert call_count(process) == before + 3


def test_a_wrong_target_is_not_executed_and_goes_to_another_instance(fleet, echo_gen,
                                                                     etcd_config):
    """A registry value naming a's address with another instance id (a stale registration whose
    port a new process took): a refuses the call unexecuted, the plugin retries it on b even
    though echo is not marked idempotent, and leaves a alone afterwards."""
    a, b = fleet.add("a"), fleet.add("b")
    stale = dict(a.instance.to_dict(), id="stale-instance-id")
    values = [stale, b.instance.to_dict()]
    before = call_count(a)
    r = drive(echo_gen, etcd_config, "--calls=6", f"--instances={json.dumps(values)}")
    assert r["failed"] == 0, r
    assert r["served"] == {b.address: 6}, r
    assert call_count(a) == before, "a call meant for another instance ran"
    other = dict(a.instance.to_dict(), service="other")
    r = drive(echo_gen, etcd_config, "--calls=2", "--service=other",
              f"--instances={json.dumps([other])}")
    # the first call is refused; then the dropped instance is not called again
    assert r["error_types"] == {"Soa\\WrongTarget": 1, "Soa\\NoInstanceAvailable": 1}, r
    assert call_count(a) == before


def test_theader_frames_are_byte_for_byte_the_python_clients():
    """The same payload, seqid, protocol and key-values make the same frame in PHP and in
    soa.theader (what soa servers parse)."""
    from soa import theader

    cases = [(b"\x80\x01\x00\x01abc", 7, 0, {"soa-deadline-ms": "250", "soa-service": "echo",
                                             "soa-instance": "3f9a1c7e5b2d4e60"}),
             (b"\x82\x21\x05\x04ping", 5, 2, {}),
             (b"x" * 300, 2**31 + 5, 0, {"soa-caller": "web", "soa-trace-id": "t" * 64})]
    for payload, seqid, protocol, headers in cases:
        block = theader.header_block(protocol, len(headers),
                                     theader.encode_pairs(headers.items()))
        python = theader.frame_prefix(seqid, block, len(payload)) + payload
        script = ("require 'plugins/php/src/autoload.php'; $a = json_decode($argv[1], true);"
                  " echo bin2hex(Soa\\THeaderTransport::frame(hex2bin($a[0]), $a[1], $a[2],"
                  " (array) $a[3]));")
        arg = json.dumps([payload.hex(), seqid, protocol, headers])
        php = run([tool("php"), "-r", script, arg])
        assert bytes.fromhex(php) == python, (php, python.hex())


# --- etcd authentication and TLS (the JSON gateway, with etcd's own users and certificates) ---


def etcd_http(endpoint, path, body, token=None, context=None):
    import urllib.request

    url = endpoint if "://" in endpoint else f"http://{endpoint}"
    request = urllib.request.Request(url + path, data=json.dumps(body).encode(), method="POST",
                                     headers={"Authorization": token} if token else {})
    with urllib.request.urlopen(request, timeout=5, context=context) as r:
        return json.loads(r.read())


def b64(text):
    import base64

    return base64.b64encode(text.encode()).decode()


def copy_values(processes, endpoint, prefix, token=None, context=None):
    """Writes the registry values of ``processes`` under ``prefix`` in another etcd."""
    from soa.registry.instance import instance_key

    for p in processes:
        etcd_http(endpoint, "/v3/kv/put", {"key": b64(instance_key(prefix, p.instance)),
                                           "value": b64(p.instance.encode().decode())},
                  token, context)


def test_etcd_user_and_password(tmp_path, fleet, echo_gen):
    """etcd with auth enabled: a read-only user discovers and calls; wrong credentials get one
    line that names the user and never the password; the read-only user cannot write."""
    prefix = "/soa-php-auth"
    a = fleet.add("a")
    etcd = EtcdProcess(tmp_path / "etcd-auth" / "data").start()
    try:
        ep = etcd.endpoint
        for path, body in [
            ("/v3/auth/role/add", {"name": "root"}),
            ("/v3/auth/user/add", {"name": "root", "password": "root-secret"}),
            ("/v3/auth/user/grant", {"user": "root", "role": "root"}),
            ("/v3/auth/role/add", {"name": "reader"}),
            ("/v3/auth/role/grant", {"name": "reader", "perm": {
                "permType": "READ", "key": b64(prefix + "/"), "range_end": b64(prefix + "0")}}),
            ("/v3/auth/user/add", {"name": "reader", "password": "reader-secret"}),
            ("/v3/auth/user/grant", {"user": "reader", "role": "reader"}),
            ("/v3/auth/enable", {}),
        ]:
            etcd_http(ep, path, body)
        token = etcd_http(ep, "/v3/auth/authenticate",
                          {"name": "root", "password": "root-secret"})["token"]
        copy_values([a], ep, prefix, token)

        class Where:
            endpoints = (ep,)

        Where.prefix = prefix
        ok = drive(echo_gen, Where, "--calls=3", "--user=reader", "--password=reader-secret")
        assert ok["failed"] == 0 and ok["served"] == {a.address: 3}, ok
        bad = drive(echo_gen, Where, "--calls=1", "--user=reader", "--password=wrong-secret")
        assert bad["failed"] == 1, bad
        (line,) = bad["errors"]
        assert 'authentication as "reader" failed' in line, line
        assert "wrong-secret" not in line and "\n" not in line, line
        none = drive(echo_gen, Where, "--calls=1")
        assert none["failed"] == 1, none  # without a token: permission denied
        script = ("require 'plugins/php/src/autoload.php'; $g = new Soa\\EtcdGateway([$argv[1]],"
                  " ['user' => 'reader', 'password' => 'reader-secret']);"
                  " try { $g->put($argv[2], 'x'); echo 'written'; }"
                  " catch (Soa\\DiscoveryError $e) { echo $e->getMessage(); }")
        out = run([tool("php"), "-r", script, ep, f"{prefix}/services/echo/1.2.3.4:5"])
        assert "written" not in out and "permission denied" in out, out
    finally:
        etcd.stop()


def make_certificates(folder):
    """A CA, a server certificate for 127.0.0.1 (also for clients: etcd's JSON gateway dials etcd
    with it), a client certificate, and an unrelated CA."""
    openssl = tool("openssl")
    folder.mkdir()

    def sh(*args):
        run([openssl, *args], cwd=folder, timeout=30)

    for ca in ("ca", "other-ca"):
        sh("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{ca}.key", "-out",
           f"{ca}.crt", "-subj", f"/CN={ca}", "-days", "2")
    server_ext = "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth"
    for name, ext in (("server", server_ext),
                      ("client", "extendedKeyUsage=clientAuth")):
        (folder / f"{name}.ext").write_text(ext + "\n", encoding="utf-8")
        sh("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out",
           f"{name}.csr", "-subj", f"/CN={name}")
        sh("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
           "-CAcreateserial", "-out", f"{name}.crt", "-days", "2", "-extfile", f"{name}.ext")
    return folder


def tls_etcd(data_dir, certs):
    """etcd serving clients over https only, requiring a client certificate from the CA."""
    from soa.etcd_server import ServerTls

    c = certs
    return EtcdProcess(data_dir, tls=ServerTls(
        cert=str(c / "server.crt"), key=str(c / "server.key"), ca=str(c / "ca.crt"),
        client_cert_auth=True, health_cert=str(c / "client.crt"), health_key=str(c / "client.key")))


def client_context(certs):
    import ssl

    context = ssl.create_default_context(cafile=str(certs / "ca.crt"))
    context.load_cert_chain(str(certs / "client.crt"), str(certs / "client.key"))
    return context


def test_etcd_over_tls_with_a_client_certificate(tmp_path, fleet, echo_gen):
    """https to etcd, verified against the CA, with a client certificate; without the client
    certificate, or trusting another CA, discovery fails with one line."""
    certs = make_certificates(tmp_path / "certs")
    prefix = "/soa-php-tls"
    a = fleet.add("a")
    etcd = tls_etcd(tmp_path / "etcd-tls" / "data", certs).start()
    try:
        copy_values([a], etcd.client_url, prefix, context=client_context(certs))

        class Where:
            endpoints = (etcd.client_url,)

        Where.prefix = prefix
        tls = [f"--ca={certs / 'ca.crt'}", f"--cert={certs / 'client.crt'}",
               f"--key={certs / 'client.key'}"]
        ok = drive(echo_gen, Where, "--calls=3", *tls)
        assert ok["failed"] == 0 and ok["served"] == {a.address: 3}, ok
        no_cert = drive(echo_gen, Where, "--calls=1", tls[0])
        wrong_ca = drive(echo_gen, Where, "--calls=1", f"--ca={certs / 'other-ca.crt'}", *tls[1:])
        for r in (no_cert, wrong_ca):
            assert r["failed"] == 1 and r["error_types"] == {"Soa\\DiscoveryError": 1}, r
            assert "etcd unreachable: https://127.0.0.1" in r["errors"][0], r
        assert "certificate verify failed" in wrong_ca["errors"][0], wrong_ca
    finally:
        etcd.stop()
