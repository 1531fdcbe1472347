"""The client under failure, with calls continuously in flight: real etcd, real `soa serve`
processes, real signals. Each test keeps 16 greenlets calling for a few seconds."""

import shutil
import signal
import time
from pathlib import Path

import gevent
import pytest
from fixtures.client_load import Load

from soa.clients import client as make_client
from soa.config import load_config
from soa.etcd_server import free_port
from soa.testing.poll import wait_until
from soa.testing.processes import ServiceProcess, write_config

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture
def shop(tmp_path, etcd_config):
    """soa.yaml for the echo service, and a way to start instances that are always stopped."""
    for name in ("client_echo.thrift", "client_handler.py"):
        shutil.copy(FIXTURES / name, tmp_path / name)
    path = write_config(
        tmp_path, etcd_endpoints=list(etcd_config.endpoints), prefix=etcd_config.prefix,
        services={"echo": {"idl": "client_echo.thrift", "service": "EchoService",
                           "handler": "client_handler:EchoHandler", "host": "127.0.0.1",
                           "grace_period": 0.5, "drain_timeout": 5}})
    started = []

    class Shop:
        config = load_config(str(path))

        def start(self):
            port = free_port()
            process = ServiceProcess(path, "echo", port=port, env={"SOA_TEST_PORT": str(port)})
            started.append(process)
            return process.start()

    try:
        yield Shop()
    finally:
        for process in started:
            process.signal(signal.SIGCONT)
            process.stop(timeout=5)


def ports(instances):
    return {i.port for i in instances}


def test_kill_9_of_one_of_three(shop):
    """Zero failed calls to an idempotent method; nothing goes to the dead instance once the
    client has noticed (ejection or the registry, whichever comes first)."""
    a, b, c = shop.start(), shop.start(), shop.start()
    client = make_client("echo", shop.config, timeout_ms=1000, retries=2)
    try:
        wait_until(lambda: ports(client.instances) == {a.port, b.port, c.port}, 5)
        with Load(client.whoami, greenlets=16) as load:
            wait_until(lambda: load.values_since(0) == {a.port, b.port, c.port}, 5)
            wait_until(lambda: len(load.results) > 500, 10)  # steady state
            b.kill()
            killed = time.monotonic()
            wait_until(lambda: b.port not in ports(client.instances), 5,
                       message="the client notices the dead instance")
            noticed = time.monotonic()
            pool = client.transport.pools.get(b.address)
            attempts = pool.acquired if pool is not None else 0
            wait_until(lambda: load.calls_since(noticed) > 300, 10)
            gevent.sleep(0)
        assert load.failures == [], load.failures[:3]
        assert b.port not in load.values_since(noticed)
        pool = client.transport.pools.get(b.address)
        assert (pool.acquired if pool is not None else 0) == attempts
        assert noticed - killed < 3.0
        wait_until(lambda: b.address not in client.discovery.known, 5,
                   message="the lease expires and the registry drops it")
        assert b.address not in client.transport.pools
    finally:
        client.close()


@pytest.mark.chaos  # part of the chaos suite (tests/test_chaos.py)
def test_rolling_restart_without_retries(shop):
    """SIGTERM each of three instances in turn, each followed by a new one: zero failures with
    retries disabled (the server deregisters, serves a grace period, then drains)."""
    instances = [shop.start(), shop.start(), shop.start()]
    client = make_client("echo", shop.config, timeout_ms=2000, retries=0)
    try:
        wait_until(lambda: len(client.instances) == 3, 5)
        with Load(lambda: client.bump("k"), greenlets=16) as load:
            for i in range(3):
                old = instances[i]
                old.signal(signal.SIGTERM)
                assert old.wait(15) == 0
                instances[i] = shop.start()
                new_port = instances[i].port
                wait_until(lambda port=new_port: port in ports(client.instances), 5)
            end = time.monotonic()
            wait_until(lambda: load.calls_since(end) > 100, 10)
        assert load.failures == [], load.failures[:3]
        assert len(load.results) > 500
        assert ports(client.instances) == {p.port for p in instances}
    finally:
        client.close()


def test_sigstop_instance_is_ejected_within_three_timeouts(shop):
    a, b, c = shop.start(), shop.start(), shop.start()
    timeout = 0.3
    client = make_client("echo", shop.config, timeout_ms=int(timeout * 1000), retries=2)
    try:
        wait_until(lambda: len(client.instances) == 3, 5)
        with Load(client.whoami, greenlets=16) as load:
            wait_until(lambda: load.values_since(0) == {a.port, b.port, c.port}, 5)
            b.signal(signal.SIGSTOP)
            stopped = time.monotonic()
            try:
                wait_until(lambda: b.port not in ports(client.instances), 3 * timeout + 0.5,
                           interval=0.005)
                ejected = time.monotonic()
                assert ejected - stopped <= 3 * timeout, ejected - stopped
                assert b.address in client.discovery.ejected  # ejected, not just expired
                # calls that picked b before its ejection fail at their deadline, up to one
                # timeout later; every call started after the ejection must succeed
                after = ejected + timeout + 0.05
                wait_until(lambda: load.calls_since(after) > 300, 10)
                late = [e for when, e in load.failures if when > after]
                assert late == [], late[:3]
                assert load.values_since(after) == {a.port, c.port}
            finally:
                b.signal(signal.SIGCONT)
    finally:
        client.close()
