"""`soa up` and `soa demo` as a user runs them: real processes, the embedded etcd, Ctrl-C."""

import json
import os
import re
import signal
import subprocess
import sys

from services.testing import ROOT
from soa.etcd_server import EtcdProcess, free_port
from soa.fleet import run_config
from soa.testing.poll import wait_until
from soa.testing.processes import alive


def _soa(*args, cwd, stdout=None):
    return subprocess.Popen([sys.executable, "-m", "soa", *args], cwd=cwd, stdin=subprocess.DEVNULL,
                            stdout=stdout or subprocess.PIPE, stderr=subprocess.STDOUT)



def test_up_shows_status_serves_demo_and_stops_clean_on_ctrl_c(tmp_path):
    config = run_config(ROOT / "soa.yaml", tmp_path, f"127.0.0.1:{free_port()}",
                         prefix="/shop-up", lease_ttl=2)
    log = open(tmp_path / "up.log", "wb")  # noqa: SIM115 - closed below
    up = _soa("--config", str(config), "up", "--etcd-port", "0", cwd=tmp_path, stdout=log)
    pids = []
    try:
        def table():
            text = (tmp_path / "up.log").read_text()
            assert up.poll() is None, text
            rows = re.findall(r"^(\w+)\s+(127\.0\.0\.1:\d+)\s+(\d+)\s+up(?:\s+\S+)?$", text,
                              re.M)
            return len(rows) == 10 and (text, rows)

        text, rows = wait_until(table, timeout=60, message="soa up's status table")
        pids = [int(pid) for _, _, pid in rows]
        assert sorted({s for s, _, _ in rows}) == sorted(
            ["catalog", "inventory", "order", "flashsale", "notify", "mailer"])
        assert sum(1 for s, _, _ in rows if s == "inventory") == 2
        endpoint = re.search(r"^etcd: (127\.0\.0\.1:\d+)", text, re.M).group(1)
        demo = subprocess.run([sys.executable, "-m", "soa", "--config", str(config), "--etcd",
                               endpoint, "demo"], cwd=tmp_path, capture_output=True, text=True,
                              timeout=90)
        assert demo.returncode == 0, demo.stdout + demo.stderr
        summary = json.loads(demo.stdout.strip().splitlines()[-1])
        assert summary["oversold"] == 0 and summary["failed_calls"] == 0
        assert len(summary["served_by"]["flashsale"]) == 2  # balanced over both instances
        up.send_signal(signal.SIGINT)
        assert up.wait(60) == 0, (tmp_path / "up.log").read_text()
        assert "0 left in etcd" in (tmp_path / "up.log").read_text()
        assert not [pid for pid in pids if alive(pid)]
    finally:
        if up.poll() is None:
            up.terminate()
            up.wait(30)
        for pid in pids:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
        log.close()
    # Nothing left behind: etcd's own data, reopened, has no instance of the shop.
    etcd = EtcdProcess(tmp_path / ".soa" / "etcd").start()
    try:
        import etcd3

        host, port = etcd.endpoint.split(":")
        client = etcd3.client(host=host, port=int(port))
        assert list(client.get_prefix("/shop-up/services/")) == []
        client.close()
    finally:
        etcd.stop()


def test_demo_up_runs_the_flow_and_exits_zero(tmp_path):
    config = run_config(ROOT / "soa.yaml", tmp_path, "127.0.0.1:2379")
    done = subprocess.run([sys.executable, "-m", "soa", "--config", str(config), "demo", "--up"],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    out = done.stdout + done.stderr
    assert done.returncode == 0, out
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["oversold"] == 0 and summary["failed_calls"] == 0
    assert summary["flash_sale_sold"] == summary["flash_sale_tokens"] > 0
    assert summary["orders"] == summary["flash_sale_sold"] + 2
    assert summary["notifications_delivered"] == summary["orders"] + 1
    # BigTap: scaled out for the sale and back, 10,000 buyers, two instances killed mid-burst
    assert summary["flash_sale_buyers"] >= 10_000 and summary["flash_sale_requests_per_second"] > 0
    assert summary["instances"]["flashsale"] == [2, 5, 2]
    assert sorted(k["signal"] for k in summary["killed"]) == ["SIGKILL", "SIGTERM"]
    assert all(k["service"] == "flashsale" for k in summary["killed"])
    for step in ("Browse", "Regular orders", "Flash sale", "Cancel", "Notifications"):
        assert step in out
    assert re.search(r"\[order @ 127\.0\.0\.1:\d+\]", out)
