"""``soa top``: --once --json under load, plain lines without a terminal, the live view in tmux."""

import json
import os
import shutil
import subprocess
import sys
import uuid

import gevent
import pytest

from thriftpy2.thrift import TApplicationException

import soa
from fixtures.server_support import client, echo_config, echo_idl
from soa.config import load_config
from soa.observe.scrape import quantile
from soa.testing.poll import wait_until


@pytest.fixture
def shop(tmp_path, etcd_config):
    """Start echo instances in this process; a greenlet keeps calling each one."""
    path = echo_config(tmp_path, etcd_config)
    module = echo_idl(tmp_path)
    servers, loaders = [], []

    def start(load=True):
        server = soa.serve("echo", load_config(str(path)), block=False)
        servers.append(server)
        if load:
            loaders.append(gevent.spawn(_load, module, server.address[1]))
        return server

    yield path, start
    gevent.killall(loaders)
    for server in servers:
        server.stop(grace=0)


def _load(module, port):
    c = client(module, port)
    n = 0
    while True:
        n += 1
        if n % 10 == 0:
            try:
                c.fail("declared")
            except module.EchoError:
                pass
        elif n % 10 == 5:
            try:
                c.fail("app")  # the handler raises TApplicationException: a failed call
            except TApplicationException:
                pass
        else:
            c.echo("x")
        gevent.sleep(0.002)


def soa_cmd(path, *args, timeout=60):
    # gevent's patched subprocess: the load greenlets keep running while this waits.
    return subprocess.run([sys.executable, "-m", "soa", "--config", str(path), *args],
                          capture_output=True, text=True, timeout=timeout)


def test_once_json_shows_rates_under_load(shop):
    path, start = shop
    first, second = start(), start()
    idle = start(load=False)
    done = soa_cmd(path, "top", "--once", "--json", "--interval", "1")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    rows = {r["address"]: r for r in data["instances"]}
    assert set(rows) == {f"127.0.0.1:{s.address[1]}" for s in (first, second, idle)}
    for server in (first, second):
        row = rows[f"127.0.0.1:{server.address[1]}"]
        assert row["state"] == "ok" and row["service"] == "echo"
        assert row["calls_per_s"] > 10
        assert 2 <= row["error_pct"] <= 25  # one call in ten fails
        assert 2 <= row["declared_pct"] <= 25  # and one in ten is answered as declared
        assert 0 < row["p50_ms"] <= row["p99_ms"] < 1000
        assert row["weight"] == 100 and row["version"] == "0.1.0"
        assert row["metrics"] == f"127.0.0.1:{server.endpoint.port}"
    quiet = rows[f"127.0.0.1:{idle.address[1]}"]
    assert quiet["calls_per_s"] == 0 and quiet["p50_ms"] is None


def test_without_a_terminal_plain_lines_and_no_escape_codes(shop):
    path, start = shop
    server = start()
    done = soa_cmd(path, "top", "--once")
    assert done.returncode == 0, done.stderr
    assert "\x1b" not in done.stdout
    header, *lines = done.stdout.splitlines()
    assert header.split()[:3] == ["SERVICE", "ADDRESS", "CALLS/S"]
    [line] = lines
    assert line.split()[:2] == ["echo", f"127.0.0.1:{server.address[1]}"]
    assert float(line.split()[2]) > 0


def test_quantile_from_cumulative_buckets():
    buckets = {0.001: 50.0, 0.01: 90.0, 0.1: 100.0, float("inf"): 100.0}
    assert quantile(buckets, 0.5) == pytest.approx(0.001)
    assert quantile(buckets, 0.7) == pytest.approx(0.001 + 0.009 * 0.5)
    assert quantile(buckets, 0.99) == pytest.approx(0.01 + 0.09 * 0.9)
    assert quantile({float("inf"): 0.0}, 0.5) is None
    assert quantile({0.5: 0.0, float("inf"): 3.0}, 0.9) == 0.5  # the open bucket


def test_live_view_in_a_real_terminal_follows_joins_and_leaves(shop, tmp_path):
    tmux = shutil.which("tmux")
    assert tmux, "tmux is missing: run .ci/ensure-tools"
    path, start = shop
    first = start()
    socket_name = f"soa-top-{uuid.uuid4().hex[:8]}"
    base = [tmux, "-L", socket_name]
    command = f"{sys.executable} -m soa --config {path} top"
    env = dict(os.environ, TERM="xterm")
    subprocess.run(base + ["new-session", "-d", "-s", "top", "-x", "160", "-y", "30", command],
                   check=True, env=env, timeout=20)

    def screen():
        return subprocess.run(base + ["capture-pane", "-p", "-t", "top"], capture_output=True,
                              text=True, timeout=10).stdout

    def row_of(server):
        for line in screen().splitlines():
            if f"127.0.0.1:{server.address[1]}" in line:
                return line.split()
        return None

    try:
        wait_until(lambda: (r := row_of(first)) and r[2] != "-" and float(r[2]) > 0,
                   timeout=15, message=f"the live view shows the instance's rate:\n{screen()}")
        assert screen().splitlines()[0].startswith("soa top")
        second = start()
        # Within a second of the registry change (the watch wakes the view; no polling tick).
        joined = wait_until(lambda: row_of(second), timeout=1.0,
                            message=f"the new instance appears:\n{screen()}")
        assert joined[0] == "echo"
        second.stop(grace=0)
        wait_until(lambda: row_of(second) is None, timeout=1.0,
                   message=f"the stopped instance disappears:\n{screen()}")
        assert row_of(first) is not None
        assert "\x1b" not in screen()  # what the terminal shows, not the codes that drew it
    finally:
        subprocess.run(base + ["kill-server"], timeout=10)
