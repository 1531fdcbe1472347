"""`soa registry drain / undrain / weight` and `rm --force`, against real `soa serve` processes
and a Python client under calls; the instance's own registrar keeps the operator's change."""

import json
import os
import subprocess
import sys
import time

import pytest
from fixtures.client_load import Load
from fixtures.server_support import echo_config

from soa.clients import client as make_client
from soa.config import load_config
from soa.registry import Instance, instance_key
from soa.registry import inspect as registry_inspect
from soa.registry.etcd import EtcdConnection
from soa.registry.registrar import EtcdRegistrar
from soa.testing import wait_until
from soa.testing.processes import ServiceProcess


def soa(path, *args):
    return subprocess.run([sys.executable, "-m", "soa", "--config", str(path), *args],
                          capture_output=True, text=True, timeout=30,
                          env={k: v for k, v in os.environ.items() if k != "SOA_CONFIG"})


@pytest.fixture
def two(tmp_path, etcd_config):
    path = echo_config(tmp_path, etcd_config)
    processes = [ServiceProcess(path, "echo"), ServiceProcess(path, "echo")]
    try:
        for process in processes:
            process.start()
        yield path, processes
    finally:
        for process in processes:
            process.stop(timeout=5)


def last_call_to(load, value, since):
    return max((when for when, v in load.results if v == value and when >= since), default=None)


def test_drain_undrain_and_weight_are_followed_by_clients_within_a_second(two, etcd_config,
                                                                          etcd):
    path, (a, b) = two
    client = make_client("echo", load_config(str(path)), balancer="weighted_round_robin")
    try:
        with Load(client.pid, greenlets=8, pause=0.001) as load:
            wait_until(lambda: load.values_since(0) == {a.pid, b.pid}, 5)

            result = soa(path, "registry", "drain", "echo", a.address)
            drained = time.monotonic()
            assert result.returncode == 0, result.stderr
            assert result.stdout.strip() == (
                f"echo {a.address} drained: weight 100 -> 0(drained:100)")
            wait_until(lambda: load.calls_since(drained + 1.0) > 100, 5)
            assert a.pid not in load.values_since(drained + 1.0)  # none reach it after 1 s
            last = last_call_to(load, a.pid, drained) or drained
            print(f"last call to the drained instance {last - drained:.3f}s after drain")
            assert soa(path, "registry", "drain", "echo", a.address).stdout.strip() == (
                f"echo {a.address} was already drained (weight 0(drained:100))")
            listed = soa(path, "registry", "ls", "echo").stdout
            assert "0(drained:100)" in listed

            # The registrar keeps the drain when the key is deleted and written again.
            key = instance_key(etcd_config.prefix, a.instance)
            assert soa(path, "registry", "rm", "echo", a.address, "--force").returncode == 0
            wait_until(lambda: etcd.get(key)[0] is not None, 1, interval=0.01,
                       message="written back within 1 s")
            value = json.loads(etcd.get(key)[0])
            assert (value["weight"], value["drained"], value["drained_weight"]) == (0, True, 100)
            back = time.monotonic()
            wait_until(lambda: load.calls_since(back + 0.5) > 100, 5)
            assert a.pid not in load.values_since(back)

            result = soa(path, "registry", "undrain", "echo", a.address)
            undrained = time.monotonic()
            assert result.returncode == 0, result.stderr
            assert result.stdout.strip() == (
                f"echo {a.address} undrained: weight 0(drained:100) -> 100")
            wait_until(lambda: a.pid in load.values_since(undrained), 1, interval=0.01,
                       message="undrained instance gets calls within 1 s")
            assert "drained" not in json.loads(etcd.get(key)[0])

            result = soa(path, "registry", "weight", "echo", a.address, "300")
            reweighted = time.monotonic()
            assert result.returncode == 0, result.stderr
            wait_until(lambda: load.calls_since(reweighted + 1.0) > 400, 10)
            after = [v for when, v in load.results if when >= reweighted + 1.0]
            share = after.count(a.pid) / len(after)
            assert 0.7 < share < 0.8, share  # 300 : 100

            assert soa(path, "registry", "weight", "echo", a.address, "0").returncode == 0
            zero = time.monotonic()
            wait_until(lambda: load.calls_since(zero + 1.0) > 100, 5)
            assert a.pid not in load.values_since(zero + 1.0)
        assert load.failures == [], load.failures[:3]
    finally:
        client.close()


def test_rm_of_a_live_instance_needs_force(two, etcd_config, etcd):
    path, (a, _) = two
    key = instance_key(etcd_config.prefix, a.instance)
    result = soa(path, "registry", "rm", "echo", a.address)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "is alive" in lines[0] and "--force" in lines[0], lines
    assert etcd.get(key)[0] is not None  # refused: nothing removed
    result = soa(path, "registry", "rm", "echo", a.address, "--force")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"removed echo {a.address}"
    assert "writes it back" in result.stderr
    wait_until(lambda: etcd.get(key)[0] is not None, 1, interval=0.01,
               message="the live instance wrote itself back")


def test_edits_of_missing_or_invalid_instances_are_one_line(two, etcd_config, etcd):
    path, _ = two
    for command in (["drain", "echo", "127.0.0.1:1"], ["undrain", "echo", "127.0.0.1:1"],
                    ["weight", "echo", "127.0.0.1:1", "5"]):
        result = soa(path, "registry", *command)
        assert result.returncode == 1, command
        assert result.stderr.strip().splitlines() == [
            "error: no instance 127.0.0.1:1 registered for echo"], result.stderr
    assert soa(path, "registry", "weight", "echo", "127.0.0.1:1", "-3").returncode == 2
    etcd.put(f"{etcd_config.prefix}/services/echo/127.0.0.1:2", "garbage")
    result = soa(path, "registry", "drain", "echo", "127.0.0.1:2")
    assert result.returncode == 1 and "invalid value" in result.stderr
    assert etcd.get(f"{etcd_config.prefix}/services/echo/127.0.0.1:2")[0] == b"garbage"


def test_the_registrar_keeps_a_drain_across_a_lease_loss(etcd_config, etcd):
    registrar = EtcdRegistrar(etcd_config)
    connection = EtcdConnection(etcd_config)
    one = Instance("order", "127.0.0.1", 9301, weight=40, pid=os.getpid(), started_at=1.0)
    key = instance_key(etcd_config.prefix, one)
    try:
        registrar.register(one)
        edit = registry_inspect.drain(connection, etcd_config.prefix, "order", one.address)
        assert edit.changed and edit.after.weight == 0
        wait_until(lambda: b'"drained":true' in registrar.value(one), 1,
                   message="the registrar adopted the drain")
        lease = registrar.lease_id(one)
        etcd.revoke_lease(lease)  # the key goes with it; the registrar grants a new lease
        wait_until(lambda: registrar.lease_id(one) not in (None, lease)
                   and etcd.get(key)[0] is not None, 3, message="registered again")
        value = json.loads(etcd.get(key)[0])
        assert (value["weight"], value["drained"], value["drained_weight"]) == (0, True, 40)
        registry_inspect.reweight(connection, etcd_config.prefix, "order", one.address, 70)
        wait_until(lambda: b'"drained_weight":70' in registrar.value(one), 1)
        registry_inspect.undrain(connection, etcd_config.prefix, "order", one.address)
        wait_until(lambda: json.loads(registrar.value(one))["weight"] == 70, 1)
        assert "drained" not in json.loads(registrar.value(one))
    finally:
        registrar.close()
        connection.close()
