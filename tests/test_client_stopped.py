"""A stopped (SIGSTOP) instance among healthy ones: ejected at its first timeout, kept out while
it is stopped (the probe is a real Thrift call, which the kernel cannot answer for it), and
readmitted after SIGCONT. Real etcd, real `soa serve` processes, real signals; the IDL has no
``ping()``, and the lease outlives the stop, so neither can hide a wrong probe."""

import shutil
import signal
import time
from pathlib import Path

import gevent
import pytest
from fixtures.client_load import Load

from soa.clients import client as make_client
from soa.clients.probe import Prober
from soa.config import load_config
from soa.etcd_server import free_port
from soa.testing.poll import wait_until
from soa.testing.processes import ServiceProcess, write_config

FIXTURES = Path(__file__).parent / "fixtures"
TIMEOUT = 0.5


@pytest.fixture
def shop(tmp_path, etcd_config):
    """Three `soa serve` instances of an echo service without ping(), leases of 10 s."""
    shutil.copy(FIXTURES / "client_handler.py", tmp_path / "client_handler.py")
    idl = (FIXTURES / "client_echo.thrift").read_text()
    assert "  void ping(),\n" in idl
    (tmp_path / "client_echo.thrift").write_text(idl.replace("  void ping(),\n", ""))
    path = write_config(
        tmp_path, etcd_endpoints=list(etcd_config.endpoints), prefix=etcd_config.prefix,
        lease_ttl=10,
        services={"echo": {"idl": "client_echo.thrift", "service": "EchoService",
                           "handler": "client_handler:EchoHandler", "host": "127.0.0.1",
                           "grace_period": 0.2, "drain_timeout": 5}})
    processes = []
    try:
        for _ in range(3):
            port = free_port()
            processes.append(ServiceProcess(path, "echo", port=port,
                                            env={"SOA_TEST_PORT": str(port)}).start())
        yield load_config(str(path)), processes
    finally:
        for process in processes:
            process.signal(signal.SIGCONT)
            process.stop(timeout=5)


def ports(instances):
    return {i.port for i in instances}


def test_probe_is_a_thrift_round_trip(shop):
    config, (a, _, _) = shop
    prober = Prober(connect_timeout=0.25, timeout=TIMEOUT)
    assert prober(a.instance)
    a.signal(signal.SIGSTOP)
    try:
        started = time.monotonic()
        assert not prober(a.instance)  # the kernel accepts the connection; nobody answers
        assert time.monotonic() - started < TIMEOUT + 0.5
    finally:
        a.signal(signal.SIGCONT)
    assert prober(a.instance)


def test_stopped_instance_stays_out_until_it_continues(shop):
    config, (a, b, c) = shop
    client = make_client("echo", config, timeout_ms=int(TIMEOUT * 1000), retries=2)
    try:
        assert "ping" not in client.plans
        wait_until(lambda: len(client.instances) == 3, 5)
        with Load(client.whoami, greenlets=16) as load:
            wait_until(lambda: load.values_since(0) == {a.port, b.port, c.port}, 5)
            b.signal(signal.SIGSTOP)
            stopped = time.monotonic()
            try:
                wait_until(lambda: b.port not in ports(client.instances), TIMEOUT + 1.0,
                           interval=0.005, message="b ejected")
                ejected = time.monotonic()
                # ejected at its first timeout, not after three
                assert ejected - stopped <= TIMEOUT + 0.25, ejected - stopped
                assert b.address in client.discovery.ejected
                # stays out while stopped: probes keep failing (each one doubles the wait)
                wait_until(lambda: client.ejector.streak.get(b.address, 0) >= 3, 5,
                           message="two failed probes")
                out_until = time.monotonic() + 0.5
                while time.monotonic() < out_until:  # and it is not back in between
                    assert b.port not in ports(client.instances), "readmitted while stopped"
                    gevent.sleep(0.01)
                assert b.address in client.discovery.known  # its lease is still alive
                after = ejected + TIMEOUT + 0.05  # calls that picked b before, ended by now
                late = [e for when, e in load.failures if when > after]
                assert late == [], late[:3]
                assert load.values_since(after) == {a.port, c.port}
            finally:
                b.signal(signal.SIGCONT)
            resumed = time.monotonic()
            wait_until(lambda: b.port in ports(client.instances), 10,
                       message="b readmitted after SIGCONT")
            wait_until(lambda: b.port in load.values_since(resumed), 5,
                       message="calls reach b again")
        assert load.failures == [] or all(when <= after for when, _ in load.failures)
    finally:
        client.close()
