"""`soa serve` as a real process: readiness, the SIGTERM sequence, forced exit, pre-fork."""

import os
import signal
import socket
import subprocess
import sys
import time

import gevent
import pytest
from thriftpy2.transport import TTransportException

from fixtures.server_support import client, echo_config, echo_idl
from soa.registry.instance import instance_key, service_prefix
from soa.testing.poll import wait_until
from soa.testing.processes import ServiceProcess


def refused(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except ConnectionRefusedError:
        return True
    return False


def call_in_background(module, port, method, **kwargs):
    """Send a call on its own connection now; a greenlet receives the reply. Returns both."""
    c = client(module, port, timeout=30000)
    c._send(method, **kwargs)  # on the wire when this returns
    return gevent.spawn(c._recv, method), c


def test_sigterm_deregisters_then_serves_grace_then_drains(tmp_path, etcd_config, etcd):
    path = echo_config(tmp_path, etcd_config, grace_period=1.0, drain_timeout=10)
    module = echo_idl(tmp_path)
    with ServiceProcess(path, "echo") as proc:
        proc.start()
        key = instance_key(etcd_config.prefix, proc.instance)
        probe = client(module, proc.port)
        idle = client(module, proc.port)
        idle.ping()
        before = probe.call_count()
        # A call longer than the grace period.
        slow, _ = call_in_background(module, proc.port, "sleep", seconds=2.5)
        wait_until(lambda: probe.call_count() == before + 1, timeout=5, message="slow call runs")
        signalled = time.monotonic()
        proc.signal(signal.SIGTERM)
        wait_until(lambda: etcd.get(key)[0] is None, timeout=3, message="deregistered")
        # Deregistered, yet still accepting and serving during the grace period.
        assert not refused(proc.port)
        assert client(module, proc.port).echo("during grace") == "during grace"
        wait_until(lambda: refused(proc.port), timeout=5, message="stopped accepting")
        assert time.monotonic() - signalled >= 0.9
        assert slow.get(timeout=10) == "slept"  # the call in flight completed
        assert proc.wait(timeout=10) == 0
        with pytest.raises(TTransportException):  # the idle connection was closed
            idle.ping()
        assert "deregistered" in proc.output()


def test_sigint_stops_gracefully_too(tmp_path, etcd_config, etcd):
    path = echo_config(tmp_path, etcd_config, grace_period=0)
    with ServiceProcess(path, "echo") as proc:
        proc.start()
        proc.signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 0
        assert etcd.get(instance_key(etcd_config.prefix, proc.instance))[0] is None


def test_second_signal_forces_exit(tmp_path, etcd_config):
    path = echo_config(tmp_path, etcd_config, grace_period=0.2, drain_timeout=60)
    module = echo_idl(tmp_path)
    with ServiceProcess(path, "echo") as proc:
        proc.start()
        probe = client(module, proc.port)
        slow, _ = call_in_background(module, proc.port, "sleep", seconds=30.0)
        wait_until(lambda: probe.call_count() == 1, timeout=5, message="slow call runs")
        proc.signal(signal.SIGTERM)
        wait_until(lambda: refused(proc.port), timeout=5, message="draining")
        started = time.monotonic()
        proc.signal(signal.SIGTERM)
        assert proc.wait(timeout=5) == 128 + signal.SIGTERM
        assert time.monotonic() - started < 5
        slow.join(timeout=5)
        assert slow.exception is not None  # cut off, as forced


def test_cli_unknown_service_and_bad_config_exit_2(tmp_path, etcd_config):
    path = echo_config(tmp_path, etcd_config)
    run = [sys.executable, "-m", "soa", "--config", str(path), "serve"]
    result = subprocess.run(run + ["nope"], capture_output=True, text=True, timeout=30)
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0 and "unknown service 'nope'" in result.stderr
    bad = tmp_path / "bad.yaml"
    bad.write_text(path.read_text().replace("port: 0", "port: abc"))
    result = subprocess.run([sys.executable, "-m", "soa", "--config", str(bad), "serve", "echo"],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 2 and "port" in result.stderr
    assert "Traceback" not in result.stderr
    missing = tmp_path / "missing.yaml"
    missing.write_text(path.read_text().replace("echo_handler:EchoHandler", "nowhere:Handler"))
    result = subprocess.run([sys.executable, "-m", "soa", "--config", str(missing), "serve",
                             "echo"], capture_output=True, text=True, timeout=30)
    assert result.returncode == 2 and "cannot import handler 'nowhere:Handler'" in result.stderr
    result = subprocess.run(run + ["--help"], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0
    assert "Examples:" in result.stdout and "--drain-timeout" in result.stdout


def worker_pids(module, port, attempts=20):
    pids = set()
    for _ in range(attempts):
        c = client(module, port)
        pids.add(c.pid())
        c.close()
    return pids


def test_prefork_workers_one_registration_restart_and_drain(tmp_path, etcd_config, etcd):
    path = echo_config(tmp_path, etcd_config, grace_period=0.3, drain_timeout=10)
    module = echo_idl(tmp_path)
    prefix = service_prefix(etcd_config.prefix, "echo")
    with ServiceProcess(path, "echo", workers=2) as proc:
        proc.start()
        assert proc.instance.pid == proc.pid
        assert len(list(etcd.get_prefix(prefix))) == 1
        pids = wait_until(lambda: _both(worker_pids(module, proc.port)), timeout=10,
                          message="both workers answer")
        assert proc.pid not in pids
        victim, survivor = sorted(pids)
        os.kill(victim, signal.SIGKILL)
        replaced = wait_until(
            lambda: worker_pids(module, proc.port) - {victim, survivor},
            timeout=10, message="a replacement worker answers",
        )
        assert victim not in worker_pids(module, proc.port)
        assert len(replaced) == 1
        assert len(list(etcd.get_prefix(prefix))) == 1
        slow, _ = call_in_background(module, proc.port, "sleep", seconds=1.5)
        proc.signal(signal.SIGTERM)
        wait_until(lambda: not list(etcd.get_prefix(prefix)), timeout=3, message="deregistered")
        assert slow.get(timeout=10) == "slept"
        assert proc.wait(timeout=15) == 0
        for pid in pids | replaced:
            wait_until(lambda pid=pid: not os.path.exists(f"/proc/{pid}") or _zombie(pid),
                       timeout=5, message=f"worker {pid} exited")


def _both(pids):
    return pids if len(pids) == 2 else None


def _zombie(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rpartition(")")[2].split()[0] == "Z"
    except FileNotFoundError:
        return True


@pytest.mark.parametrize("workers", [1, 2])
def test_handler_that_cannot_start_exits_1_with_one_line(tmp_path, etcd_config, workers):
    path = echo_config(tmp_path, etcd_config, handler="echo_handler:BrokenHandler")
    result = subprocess.run([sys.executable, "-m", "soa", "--config", str(path), "serve", "echo",
                             "--workers", str(workers)], capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    expected = "worker failed to start" if workers > 1 else "cannot start: no database"
    assert len(errors) == 1 and expected in errors[0], result.stderr
