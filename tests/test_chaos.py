"""The chaos suite: faults injected into a running system while calls are continuously in flight.

Real etcd processes (a 3-member cluster, or a single member killed and restarted), real
``soa serve`` processes, real signals (SIGKILL, SIGSTOP/SIGCONT, SIGTERM) and a TCP proxy that
partitions one instance (``soa.testing.proxy``). Each case keeps greenlets calling, builds a
``lost`` dict of everything that was lost (failed calls, registrations missing), prints it, and
asserts that it is nothing. The rolling restart with retries off is
``tests/test_client_failures.py::test_rolling_restart_without_retries`` (marked ``chaos`` too).
Run the suite alone with ``pytest -m chaos``.

The etcd outage lasts ``SOA_CHAOS_OUTAGE_S`` seconds (default 30, as issue 10 asks).
"""

import dataclasses
import json
import os
import shutil
import signal
import socket
import time
import urllib.request
from pathlib import Path

import gevent
import pytest
from fixtures.client_load import Load

from soa.clients import client as make_client
from soa.config import EtcdConfig, load_config
from soa.etcd_server import EtcdProcess, free_port
from soa.registry.etcd import EtcdConnection
from soa.registry.inspect import drain, registered
from soa.registry.registrar import EtcdRegistrar
from soa.testing.poll import wait_until
from soa.testing.processes import ServiceProcess, write_config
from soa.testing.proxy import Proxy

pytestmark = pytest.mark.chaos

FIXTURES = Path(__file__).parent / "fixtures"
OUTAGE = float(os.environ.get("SOA_CHAOS_OUTAGE_S", "30"))
REREGISTER_GOAL = 2.0


class Shop:
    """soa.yaml for the echo service against ``endpoints``, and instances that are always
    stopped (``close``), SIGCONT first in case a test left one stopped."""

    def __init__(self, tmp_path, endpoints, prefix):
        for name in ("client_echo.thrift", "client_handler.py", "chaos_handler.py"):
            shutil.copy(FIXTURES / name, tmp_path / name)
        self.endpoints = list(endpoints)
        self.prefix = prefix
        self.path = write_config(
            tmp_path, etcd_endpoints=self.endpoints, prefix=prefix,
            services={"echo": {"idl": "client_echo.thrift", "service": "EchoService",
                               "handler": "chaos_handler:SlowableEchoHandler",
                               "host": "127.0.0.1", "grace_period": 0.5, "drain_timeout": 5}})
        self.config = load_config(str(self.path))
        self.started = []

    def start(self, delay_ms=0):
        port = free_port()
        env = {"SOA_TEST_PORT": str(port), "SOA_CHAOS_DELAY_MS": str(delay_ms)}
        process = ServiceProcess(self.path, "echo", port=port, env=env)
        self.started.append(process)
        return process.start(timeout=20)

    def registered_pids(self, endpoints=None):
        """{pid: address} of the echo instances in etcd now (through ``endpoints``)."""
        config = EtcdConfig(endpoints=tuple(endpoints or self.endpoints), prefix=self.prefix,
                            dial_timeout=1.0)
        connection = EtcdConnection(config)
        try:
            return {i.pid: i.address for i in registered(connection, self.prefix, "echo")}
        finally:
            connection.close()

    def close(self):
        for process in self.started:
            process.signal(signal.SIGCONT)
            process.stop(timeout=5)


@pytest.fixture
def shop_on(tmp_path, etcd_prefix):
    shops = []

    def make(endpoints):
        shop = Shop(tmp_path, endpoints, etcd_prefix)
        shops.append(shop)
        return shop

    try:
        yield make
    finally:
        for shop in shops:
            shop.close()


def ports(instances):
    return {i.port for i in instances}


def report(case, lost, **figures):
    print(f"\nchaos {case}: lost={json.dumps(lost, sort_keys=True)}"
          f" figures={json.dumps(figures, sort_keys=True)}")


def failures_of(load, since=0.0):
    return [f"{type(e).__name__}: {e}" for when, e in load.failures if when >= since]


# -- etcd ------------------------------------------------------------------------------------


def member_status(endpoint):
    request = urllib.request.Request(f"http://{endpoint}/v3/maintenance/status", data=b"{}",
                                     method="POST")
    with urllib.request.urlopen(request, timeout=1) as response:
        return json.loads(response.read())


def leader_of(members):
    """The member that is the cluster's leader, asked of the members given; None when none is."""
    for member in members:
        try:
            status = member_status(member.endpoint)
        except OSError:
            continue
        if status.get("leader") and status["leader"] == status["header"]["member_id"]:
            return member
    return None


def test_etcd_leader_loss(etcd_cluster, shop_on):
    """Kill the leader of a 3-member cluster: no call fails, no registration is missing at any
    moment (the keepers' leases are renewed through the new leader), and an instance that
    registers after the loss is discovered."""
    leader = wait_until(lambda: leader_of(etcd_cluster.members), 10, message="a leader")
    others = [m for m in etcd_cluster.members if m is not leader]
    # The leader's endpoint first: every connection (servers' and client's) starts on it.
    shop = shop_on([leader.endpoint, *(m.endpoint for m in others)])
    a, b, c = shop.start(), shop.start(), shop.start()
    client = make_client("echo", shop.config, timeout_ms=1000, retries=2)
    survivors = [m.endpoint for m in others]
    missing = set()
    try:
        wait_until(lambda: ports(client.instances) == {a.port, b.port, c.port}, 5)
        with Load(client.whoami, greenlets=8, max_seconds=60) as load:
            wait_until(lambda: len(load.results) > 300, 10, message="steady calls")
            leader.kill()
            killed = time.monotonic()
            new = wait_until(lambda: leader_of(others), 10, message="a new leader")
            elected = time.monotonic() - killed
            ttl = shop.config.etcd.lease_ttl

            def watched_long_enough():
                seen = shop.registered_pids(survivors)
                missing.update(p.address for p in (a, b, c) if p.pid not in seen)
                return time.monotonic() - killed > 2 * ttl  # every lease renewed since

            wait_until(watched_long_enough, 4 * ttl + 5, interval=0.1,
                       message="registrations watched for two lease TTLs")
            d = shop.start()
            joined = time.monotonic()
            wait_until(lambda: d.port in ports(client.instances), 5,
                       message="the new instance is discovered")
            discovered = time.monotonic() - joined
            wait_until(lambda: d.port in load.values_since(joined), 5)
            wait_until(lambda: load.calls_since(joined) > 300, 10)
        final = shop.registered_pids(survivors)
        lost = {"failed_calls": len(load.failures),
                "registrations_missing": sorted(missing),
                "not_registered_at_end": sorted(p.address for p in (a, b, c, d)
                                                if p.pid not in final)}
        report("etcd leader loss", lost, calls=len(load.results), new_leader=new.name,
               election_s=round(elected, 3), new_instance_discovered_s=round(discovered, 3))
        assert lost == {"failed_calls": 0, "registrations_missing": [],
                        "not_registered_at_end": []}, failures_of(load)[:3]
    finally:
        client.close()


@pytest.fixture(params=["with its data", "with an empty data dir"])
def outage(request, tmp_path):
    """One etcd member of the test's own, and how it comes back after the outage."""
    server = EtcdProcess(tmp_path / "etcd-a")
    server.start()
    state = {"server": server, "empty": request.param == "with an empty data dir"}
    try:
        yield state
    finally:
        state["server"].stop()
        server.stop()


def test_etcd_down_then_back(outage, shop_on):
    """etcd entirely down (SIGKILL) for OUTAGE seconds, then back, with its data or empty
    (every lease lost): no call fails, and every instance is registered again within 2 s of
    etcd answering."""
    server = outage["server"]
    shop = shop_on([server.endpoint])
    instances = [shop.start(), shop.start(), shop.start()]
    client = make_client("echo", shop.config, timeout_ms=1000, retries=2)
    try:
        wait_until(lambda: ports(client.instances) == {p.port for p in instances}, 5)
        with Load(client.whoami, greenlets=8, max_seconds=OUTAGE + 60) as load:
            wait_until(lambda: len(load.results) > 300, 10, message="steady calls")
            server.kill()
            down = time.monotonic()
            gevent.sleep(OUTAGE)  # the outage itself, with the calls going on
            during = load.calls_since(down)
            if outage["empty"]:
                server = outage["server"] = EtcdProcess(
                    server.data_dir.with_name("etcd-b"), client_port=server.client_port)
            server.start()
            back = time.monotonic()
            seen = {}

            def all_registered():
                pids = shop.registered_pids()
                for p in instances:
                    if p.pid in pids:
                        seen.setdefault(p.address, time.monotonic() - back)
                return len(seen) == len(instances)

            wait_until(all_registered, 15, interval=0.01, message="every instance registered")
            after = time.monotonic()
            wait_until(lambda: load.calls_since(after) > 300, 10)
        late = {a: round(s, 3) for a, s in seen.items() if s > REREGISTER_GOAL}
        lost = {"failed_calls": len(load.failures), "registered_later_than_2s": late}
        report(f"etcd down {OUTAGE:.0f}s, back {'empty' if outage['empty'] else 'with data'}",
               lost, calls=len(load.results), calls_during_outage=during,
               reregistered_s=sorted(round(s, 3) for s in seen.values()))
        assert lost == {"failed_calls": 0, "registered_later_than_2s": {}}, \
            failures_of(load)[:3]
        assert during > 300  # the calls did go on while etcd was down
        assert ports(client.instances) == {p.port for p in instances}
    finally:
        client.close()


# -- instances -------------------------------------------------------------------------------


def test_silent_death_sigstop(etcd_config, shop_on):
    """SIGSTOP one of three. Idempotent calls (each attempt bounded by attempt_timeout_ms, so a
    hung attempt is retried elsewhere in time): none fails. Non-idempotent calls: only calls
    sent to it before its ejection fail. After SIGCONT it is readmitted."""
    shop = shop_on(etcd_config.endpoints)
    a, b, c = shop.start(), shop.start(), shop.start()
    attempt = 0.2
    client = make_client("echo", shop.config, timeout_ms=1000, attempt_timeout_ms=200,
                         retries=2)
    plain = make_client("echo", shop.config, timeout_ms=500, retries=2)
    figures = {}
    try:
        wait_until(lambda: ports(client.instances) == ports(plain.instances) == {
            a.port, b.port, c.port}, 5)
        # 1. idempotent: nothing may fail
        with Load(client.whoami, greenlets=16, max_seconds=60) as load:
            wait_until(lambda: load.values_since(0) == {a.port, b.port, c.port}, 5)
            b.signal(signal.SIGSTOP)
            stopped = time.monotonic()
            wait_until(lambda: b.port not in ports(client.instances), 5, interval=0.005,
                       message="the stopped instance is ejected")
            ejected = time.monotonic()
            figures["idempotent_ejected_s"] = round(ejected - stopped, 3)
            around = ejected + attempt + 0.05
            wait_until(lambda: load.calls_since(around) > 300, 10)
            assert b.port not in load.values_since(around)
        idempotent_failures = failures_of(load)
        # it comes back after SIGCONT: a probe answers, it is readmitted and serves again
        b.signal(signal.SIGCONT)
        resumed = time.monotonic()
        with Load(client.whoami, greenlets=4, max_seconds=30) as check:
            wait_until(lambda: b.port in ports(client.instances), 10,
                       message="readmitted after SIGCONT")
            figures["readmitted_after_sigcont_s"] = round(time.monotonic() - resumed, 3)
            wait_until(lambda: b.port in check.values_since(resumed), 5)
        # 2. not idempotent (bump): at most the calls already sent to it fail
        wait_until(lambda: b.port in ports(plain.instances), 10)
        with Load(lambda: plain.bump("k"), greenlets=16, max_seconds=60) as load:
            wait_until(lambda: len(load.results) > 300, 10)
            b.signal(signal.SIGSTOP)
            stopped = time.monotonic()
            wait_until(lambda: b.port not in ports(plain.instances), 5, interval=0.005)
            ejected = time.monotonic()
            figures["not_idempotent_ejected_s"] = round(ejected - stopped, 3)
            after = ejected + 0.5 + 0.05  # a call sent to b before its ejection ends by then
            wait_until(lambda: load.calls_since(after) > 300, 10)
        b.signal(signal.SIGCONT)
        late = [f"{type(e).__name__}: {e}" for when, e in load.failures if when > after]
        not_on_b = [f"{type(e).__name__}: {e}" for _, e in load.failures
                    if getattr(e, "address", None) != b.address]
        figures["not_idempotent_failed_in_flight"] = len(load.failures)
        lost = {"idempotent_failed_calls": len(idempotent_failures),
                "not_idempotent_failed_after_ejection": len(late),
                "not_idempotent_failed_elsewhere": len(not_on_b)}
        report("silent death (SIGSTOP)", lost, **figures)
        assert lost == {"idempotent_failed_calls": 0, "not_idempotent_failed_after_ejection": 0,
                        "not_idempotent_failed_elsewhere": 0}, (idempotent_failures[:3],
                                                                late[:3], not_on_b[:3])
        assert len(load.failures) <= 16  # at most one call in flight per greenlet
        assert figures["idempotent_ejected_s"] < 1.0
    finally:
        client.close()
        plain.close()


def test_slow_instance_gets_less_load(etcd_config, shop_on):
    """One of three instances answers 50 ms late: least_inflight gives it far less than 1/3."""
    shop = shop_on(etcd_config.endpoints)
    a, slow, c = shop.start(), shop.start(delay_ms=50), shop.start()
    client = make_client("echo", shop.config, balancer="least_inflight", timeout_ms=2000,
                         retries=0)
    try:
        wait_until(lambda: ports(client.instances) == {a.port, slow.port, c.port}, 5)
        with Load(client.whoami, greenlets=16, max_seconds=30) as load:
            wait_until(lambda: len(load.results) > 200, 10)
            start = time.monotonic()
            wait_until(lambda: load.calls_since(start) > 3000, 20)
        served = [v for when, v in load.results if when >= start]
        share = served.count(slow.port) / len(served)
        lost = {"failed_calls": len(load.failures)}
        report("slow instance (least_inflight)", lost, calls=len(served),
               slow_share=round(share, 4))
        assert lost == {"failed_calls": 0}, failures_of(load)[:3]
        assert share < 0.15, share  # 1/3 if balanced blindly
    finally:
        client.close()


def test_partitioned_instance(etcd_config, shop_on):
    """One instance reachable only through a proxy, which then drops everything (no close, no
    reset): it is ejected, calls succeed through the others, and it is readmitted when the
    partition heals."""
    shop = shop_on(etcd_config.endpoints)
    a, b, c = shop.start(), shop.start(), shop.start()
    proxy = Proxy(("127.0.0.1", c.port))
    # c's own address drained (no traffic); the proxy's address registered in its place, with
    # c's instance id, so c accepts the calls as its own.
    connection = EtcdConnection(etcd_config)
    registrar = EtcdRegistrar(etcd_config)
    client = None
    try:
        registrar.register(dataclasses.replace(c.instance, port=proxy.port))
        drain(connection, etcd_config.prefix, "echo", c.address)
        via = f"127.0.0.1:{proxy.port}"
        client = make_client("echo", shop.config, timeout_ms=1000, attempt_timeout_ms=200,
                             retries=2)
        wait_until(lambda: {i.address for i in client.instances} == {a.address, b.address, via},
                   5, message="the proxy's address in place of c's")
        with Load(client.whoami, greenlets=16, max_seconds=60) as load:
            wait_until(lambda: load.values_since(0) == {a.port, b.port, c.port}, 5,
                       message="calls reach c through the proxy")
            proxy.partition()
            cut = time.monotonic()
            wait_until(lambda: via not in {i.address for i in client.instances}, 5,
                       interval=0.005, message="the partitioned instance is ejected")
            ejected = time.monotonic()
            around = ejected + 0.2 + 0.05
            wait_until(lambda: load.calls_since(around) > 300, 10)
            assert c.port not in load.values_since(around)
            failed = failures_of(load)
            proxy.heal()
            healed = time.monotonic()
            wait_until(lambda: via in {i.address for i in client.instances}, 10,
                       message="readmitted once the partition heals")
            readmitted = time.monotonic() - healed
            wait_until(lambda: c.port in load.values_since(healed), 5)
        lost = {"failed_calls": len(failed), "failed_after_heal": len(load.failures) - len(failed)}
        report("partition through a proxy", lost, ejected_s=round(ejected - cut, 3),
               readmitted_after_heal_s=round(readmitted, 3), calls=len(load.results))
        assert lost == {"failed_calls": 0, "failed_after_heal": 0}, failures_of(load)[:3]
    finally:
        if client is not None:
            client.close()
        registrar.close()
        connection.close()
        proxy.close()


# -- the proxy itself ------------------------------------------------------------------------


def test_proxy_holds_bytes_while_partitioned():
    """Partitioned, the proxy neither forwards nor closes; healed, the held bytes go on."""
    server = socket.create_server(("127.0.0.1", 0))
    proxy = Proxy(server.getsockname())
    try:
        conn = socket.create_connection(("127.0.0.1", proxy.port), timeout=5)
        upstream, _ = server.accept()
        upstream.settimeout(5)
        conn.sendall(b"one")
        assert upstream.recv(16) == b"one"
        proxy.partition()  # a pump woken by new bytes checks this before it reads them
        conn.sendall(b"two")
        upstream.settimeout(0.3)
        with pytest.raises(TimeoutError):
            upstream.recv(16)  # nothing passes ...
        conn.settimeout(0.3)
        with pytest.raises(TimeoutError):
            conn.recv(16)  # ... and nothing is closed (recv would return b"")
        proxy.heal()
        upstream.settimeout(5)
        assert upstream.recv(16) == b"two"
        upstream.sendall(b"back")
        conn.settimeout(5)
        assert conn.recv(16) == b"back"
        upstream.close()
        assert conn.recv(16) == b""  # a real close is passed on
        conn.close()
    finally:
        proxy.close()
        server.close()
