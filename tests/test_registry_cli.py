"""`soa registry` and `soa etcd` from the command line, against a real etcd."""

import json
import os
import subprocess
import sys
import time

import pytest

from soa.registry import Instance
from soa.registry.registrar import EtcdRegistrar
from soa.etcd_server import free_port
from soa.testing import wait_until


def soa(etcd_config, *args, timeout=30):
    env = dict(os.environ, SOA_ETCD_ENDPOINTS=",".join(etcd_config.endpoints))
    env.pop("SOA_CONFIG", None)
    config = f"etcd:\n  prefix: {etcd_config.prefix}\n"
    path = f"/tmp/soa-cli-{etcd_config.prefix.rsplit('/', 1)[-1]}.yaml"
    with open(path, "w") as f:
        f.write(config)
    return subprocess.run([sys.executable, "-m", "soa", "--config", path, *args],
                          capture_output=True, text=True, timeout=timeout, env=env)


@pytest.fixture
def registrar(etcd_config):
    r = EtcdRegistrar(etcd_config)
    yield r
    r.close()


def test_ls_table_and_json(etcd_config, registrar):
    registrar.register(Instance("order", "127.0.0.1", 9001, version="1.0.0",
                                idl_hash="sha256:0123456789abcdef", started_at=time.time()))
    registrar.register(Instance("catalog", "127.0.0.1", 9002, weight=50))
    result = soa(etcd_config, "registry", "ls")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["SERVICE", "ADDRESS", "WEIGHT", "VERSION", "IDL_HASH", "PROTOCOL",
                                "LEASE", "AGE"]
    order = next(line.split() for line in lines if line.startswith("order"))
    assert order[:5] == ["order", "127.0.0.1:9001", "100", "1.0.0", "sha256:0123456789abcdef"]
    assert order[6].endswith("s") and 0 < int(order[6][:-1]) <= etcd_config.lease_ttl
    result = soa(etcd_config, "registry", "ls", "catalog", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert [(d["service"], d["port"], d["weight"]) for d in data] == [("catalog", 9002, 50)]
    assert data[0]["lease_ttl_left"] > 0


def test_ls_reports_garbage_on_stderr_without_failing(etcd_config, etcd, registrar):
    etcd.put(f"{etcd_config.prefix}/services/order/127.0.0.1:1", "garbage")
    registrar.register(Instance("order", "127.0.0.1", 9001))
    result = soa(etcd_config, "registry", "ls")
    assert result.returncode == 0
    assert "127.0.0.1:9001" in result.stdout
    assert "skipped" in result.stderr and "not_json" in result.stderr


def test_rm_removes_a_stale_instance_and_complains_about_unknown_ones(etcd_config, etcd):
    key = f"{etcd_config.prefix}/services/order/127.0.0.1:9009"
    etcd.put(key, Instance("order", "127.0.0.1", 9009).encode())
    result = soa(etcd_config, "registry", "rm", "order", "127.0.0.1:9009")
    assert result.returncode == 0 and etcd.get(key)[0] is None
    result = soa(etcd_config, "registry", "rm", "order", "127.0.0.1:9009")
    assert result.returncode == 1
    assert result.stderr.strip() == "error: no instance 127.0.0.1:9009 registered for order"


def test_history_tells_deregistration_from_lease_expiry_and_deletion(etcd_config, etcd):
    a, b, c = (Instance("order", "127.0.0.1", p) for p in (9001, 9002, 9003))
    first, second = EtcdRegistrar(etcd_config), EtcdRegistrar(etcd_config)
    try:
        first.register(a)
        second.register(b)
        first.deregister(a)
        lease = second.lease_id(b)
        second.abandon(b)  # stop renewing without deleting: the lease will expire
        etcd.put(f"{etcd_config.prefix}/services/order/127.0.0.1:9003", c.encode())
        etcd.delete(f"{etcd_config.prefix}/services/order/127.0.0.1:9003")
        wait_until(lambda: etcd.get_lease_info(lease).TTL == -1, timeout=etcd_config.lease_ttl + 3)
    finally:
        first.close()
        second.close()
    result = soa(etcd_config, "registry", "history", "order", "--json")
    assert result.returncode == 0, result.stderr
    events = [json.loads(line) for line in result.stdout.splitlines()]
    summary = [(e["kind"], e["address"], e["reason"]) for e in events]
    assert ("joined", "127.0.0.1:9001", "") in summary
    assert ("left", "127.0.0.1:9001", "deregistered") in summary
    assert ("left", "127.0.0.1:9002", "lease expired or revoked") in summary
    assert ("left", "127.0.0.1:9003", "deleted") in summary


def test_watch_prints_each_change_as_json_lines(etcd_config, registrar):
    env = dict(os.environ, SOA_ETCD_ENDPOINTS=",".join(etcd_config.endpoints))
    path = f"/tmp/soa-watch-{etcd_config.prefix.rsplit('/', 1)[-1]}.yaml"
    with open(path, "w") as f:
        f.write(f"etcd:\n  prefix: {etcd_config.prefix}\n")
    process = subprocess.Popen(
        [sys.executable, "-m", "soa", "--config", path, "registry", "watch", "order", "--json"],
        stdout=subprocess.PIPE, text=True, env=env)
    try:
        registrar.register(Instance("order", "127.0.0.1", 9001))
        joined = json.loads(process.stdout.readline())
        assert (joined["event"], joined["port"]) == ("joined", 9001)
        registrar.deregister(Instance("order", "127.0.0.1", 9001))
        left = json.loads(process.stdout.readline())
        assert (left["event"], left["port"]) == ("left", 9001)
    finally:
        process.terminate()
        process.wait(10)


def test_unreachable_etcd_is_one_line_and_exit_1(etcd_config):
    from dataclasses import replace

    dead = replace(etcd_config, endpoints=(f"127.0.0.1:{free_port()}",), dial_timeout=0.5)
    result = soa(dead, "registry", "ls")
    assert result.returncode == 1
    assert len(result.stderr.strip().splitlines()) == 1
    assert result.stderr.startswith("error: etcd 127.0.0.1:")
    assert "Traceback" not in result.stderr


def test_soa_etcd_serves_until_interrupted(tmp_path):
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "soa", "etcd", "--port", str(port), "--data-dir",
         str(tmp_path / "data")], stdout=subprocess.PIPE, text=True)
    try:
        assert "etcd ready on 127.0.0.1:" in process.stdout.readline()
        from soa.etcd_server import EtcdProcess

        probe = EtcdProcess(tmp_path / "x", client_port=port)
        assert probe.healthy()
        process.send_signal(2)
        assert process.wait(15) == 0
        wait_until(lambda: not probe.healthy(), timeout=5)
    finally:
        process.kill()
        process.wait()


def test_every_help_ends_with_examples():
    for args in (["--help"], ["registry", "--help"], ["registry", "ls", "--help"],
                 ["registry", "watch", "--help"], ["registry", "rm", "--help"],
                 ["registry", "history", "--help"], ["registry", "drain", "--help"],
                 ["registry", "undrain", "--help"], ["registry", "weight", "--help"],
                 ["etcd", "--help"]):
        result = subprocess.run([sys.executable, "-m", "soa", *args], capture_output=True,
                                text=True, timeout=30)
        assert result.returncode == 0, args
        assert "Examples:" in result.stdout, args
        tail = result.stdout.rstrip().split("Examples:")[-1]
        assert "soa " in tail, args
