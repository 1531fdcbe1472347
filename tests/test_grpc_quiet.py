"""Nothing a user sees comes from grpc: keepalive that etcd's enforcement accepts, and grpc's
own logging off.

Regression: with a 5 s keepalive and ``permit_without_calls`` an idle ``soa up`` printed grpc's
``GOAWAY ... ENHANCE_YOUR_CALM ... too_many_pings``. At etcd's real settings that takes 15 s or
more to show, so the keepalive test scales time down: etcd runs with
``--grpc-keepalive-min-time=1s`` and the probe with ``grpc_options(keepalive_time=2.0)``, the
same shape as the real options (twice etcd's minimum, no pings without a call). A control run
with the old shape (pings at etcd's minimum, also without calls) proves that the test sees the
GOAWAY when it happens: grpc's lines are turned back on there with GRPC_VERBOSITY=ERROR.
"""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from soa.etcd_server import EtcdProcess
from soa.registry.etcd import ETCD_KEEPALIVE_MIN_TIME, GRPC_OPTIONS
from soa.testing.processes import ServiceProcess

from fixtures.server_support import client, echo_config, echo_idl

PROBE = Path(__file__).parent / "fixtures" / "keepalive_probe.py"
# soa's own log lines (the CLI's logging format) and nothing else
SOA_LINE = re.compile(r"^\d{4}-\d\d-\d\d [\d:,]+ (DEBUG|INFO|WARNING|ERROR) soa[\w.]*: ")


@pytest.fixture(scope="module")
def strict_etcd(tmp_path_factory):
    server = EtcdProcess(tmp_path_factory.mktemp("strict") / "data",
                         extra_args=["--grpc-keepalive-min-time", "1s"])
    server.start()
    yield server
    server.stop()


def probe(endpoint, keepalive, permit, parts, seconds=6):
    env = dict(os.environ, GRPC_VERBOSITY="ERROR")
    return subprocess.Popen(
        [sys.executable, str(PROBE), endpoint, "/soa-keepalive", str(seconds), str(keepalive),
         str(permit), parts], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True)


def test_real_options_keep_to_etcds_keepalive_policy():
    options = dict(GRPC_OPTIONS)
    assert options["grpc.keepalive_permit_without_calls"] == 0
    assert options["grpc.keepalive_time_ms"] >= 2 * ETCD_KEEPALIVE_MIN_TIME * 1000


def test_keepalive_draws_no_goaway_from_a_strict_etcd(strict_etcd):
    runs = {
        "old idle": probe(strict_etcd.endpoint, keepalive=1.0, permit=1, parts="idle"),
        "idle": probe(strict_etcd.endpoint, keepalive=2.0, permit=0, parts="idle"),
        "all": probe(strict_etcd.endpoint, keepalive=2.0, permit=0, parts="all"),
    }
    out = {}
    try:
        for name, p in runs.items():
            out[name] = p.communicate(timeout=60)[0]
    finally:
        for p in runs.values():
            if p.poll() is None:
                p.kill()
                p.wait()
    assert "too_many_pings" in out["old idle"], f"the control saw no GOAWAY:\n{out['old idle']}"
    for name in ("idle", "all"):
        assert runs[name].returncode == 0 and out[name].strip() == "done", out[name]


def test_an_idle_registered_server_prints_only_soas_own_lines(tmp_path, etcd_config):
    path = echo_config(tmp_path, etcd_config)
    env = {k: v for k, v in os.environ.items() if not k.startswith("GRPC_")}
    with ServiceProcess(path, "echo", env=env).start() as server:
        # a few lease renewals (ttl 2 s) and a call, then idle
        module = echo_idl(tmp_path)
        c = client(module, server.port)
        assert c.echo("quiet") == "quiet"
        c.close()
        try:
            server.wait(timeout=3)  # it must not exit: the wait times out while it idles
        except subprocess.TimeoutExpired:
            pass
        assert server.proc.poll() is None, server.output()
    output = server.output()
    assert server.returncode == 0, output
    lines = [line for line in output.splitlines() if line.strip()]
    assert lines, "the server logged nothing at all"
    foreign = [line for line in lines if not SOA_LINE.match(line)]
    assert foreign == [], output
