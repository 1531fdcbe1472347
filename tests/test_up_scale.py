"""`soa up` as a supervisor: `soa scale` under load, children that die with it, the etcd it
reuses or moves, and the endpoint it records for the other commands."""

import json
import os
import re
import signal
import socket
import subprocess
import sys

import gevent
import pytest

from services.testing import ROOT
from soa.config import load_config
from soa.errors import SoaError
from soa.etcd_server import EtcdProcess, free_port
from soa.fleet import run_config
from soa.testing.poll import wait_until
from soa.testing.processes import alive


class Up:
    """``soa up`` of the shop's soa.yaml (copied into a test folder) as a real process."""

    def __init__(self, tmp_path, *args, endpoint=None, prefix=None):
        self.tmp_path = tmp_path
        self.config = run_config(ROOT / "soa.yaml", tmp_path,
                                 endpoint or f"127.0.0.1:{free_port()}",
                                 prefix=prefix or f"/up-{os.getpid()}-{free_port()}", lease_ttl=2)
        self.log_path = tmp_path / "up.log"
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen([sys.executable, "-m", "soa", "--config", str(self.config),
                                      "up", *args], cwd=tmp_path, stdin=subprocess.DEVNULL,
                                     stdout=self._log, stderr=subprocess.STDOUT)

    def text(self):
        return self.log_path.read_text()

    def wait_table(self, rows, timeout=60):
        def table():
            text = self.text()
            assert self.proc.poll() is None, text
            found = re.findall(r"^(\w+)\s+(127\.0\.0\.1:\d+)\s+(\d+)\s+up(?:\s+\S+)?$", text, re.M)
            return len(found) >= rows and found
        return wait_until(table, timeout=timeout, message="soa up's status table")

    def soa(self, *args, timeout=120):
        return subprocess.run([sys.executable, "-m", "soa", "--config", str(self.config), *args],
                              cwd=self.tmp_path, capture_output=True, text=True, timeout=timeout)

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._log.close()


@pytest.fixture
def up(tmp_path):
    started = []

    def start(*args, **kwargs):
        u = Up(tmp_path, *args, **kwargs)
        started.append(u)
        return u

    yield start
    for u in started:
        u.stop()


def test_scale_flashsale_out_and_back_while_buyers_call(up):
    from services.demo import FLASH_SKU, Demo

    shop = up("--etcd-port", "0")
    shop.wait_table(10)
    # `soa scale` and this test find the etcd through the endpoint `soa up` recorded.
    state = json.loads((shop.tmp_path / ".soa" / "up.json").read_text())
    config = load_config(str(shop.config), state["etcd"])
    demo = Demo(config, lambda line: None)
    try:
        fm = demo.m["flashsale"]
        demo._restock()
        sale = demo.call("flashsale", "register_sale", demo.key("scale"), FLASH_SKU, 40,
                         fm.shared.Money(cents=100, currency="CNY"), 0, 0)
        assert sale is not None, demo.failed
        tickets, sold_out, stop = [], [0], [False]

        def buyer(n):
            i = 0
            while not stop[0]:
                i += 1
                try:
                    t = demo.call("flashsale", "apply", sale.sale_id, f"b{n}-{i}",
                                  expected=(fm.shared.ShopError,))
                except fm.shared.ShopError:
                    sold_out[0] += 1
                    gevent.sleep(0.005)
                    continue
                if t is not None:
                    tickets.append(t.token)
                gevent.sleep(0.005)

        buyers = [gevent.spawn(buyer, n) for n in range(20)]
        try:
            for count in (6, 2):
                result = shop.soa("scale", "flashsale", str(count), "--json")
                assert result.returncode == 0, result.stdout + result.stderr
                reply = json.loads(result.stdout)
                assert reply["instances"] == count
                live = [r for r in reply["status"] if r[0] == "flashsale" and r[3] == "up"]
                assert len(live) == count, reply
                before = len(demo.served.by_service["flashsale"])
                gevent.sleep(1.0)  # buyers keep calling across the change
            assert before >= 6  # calls reached the scaled-out instances
        finally:
            stop[0] = True
            gevent.joinall(buyers, timeout=30)
        final = demo.call("flashsale", "get_sale", sale.sale_id)
        assert demo.failed == []  # no failed call
        assert len(tickets) == len(set(tickets)) <= 40  # no unit oversold
        assert final.tickets_issued == len(tickets) <= final.quantity
        assert sold_out[0] > 0
    finally:
        demo.close()


def test_children_and_etcd_die_with_a_sigkilled_up(up):
    shop = up("--only", "catalog", "--etcd-port", "0")
    rows = shop.wait_table(2)
    pids = [int(pid) for _, _, pid in rows]
    assert json.loads((shop.tmp_path / ".soa" / "up.json").read_text())["pid"] == shop.proc.pid
    etcd_pids = [int(p) for p in subprocess.run(
        ["pgrep", "-f", f"data-dir {shop.tmp_path}/.soa/etcd"], capture_output=True,
        text=True).stdout.split()]
    assert etcd_pids
    shop.proc.kill()
    shop.proc.wait()
    wait_until(lambda: not [p for p in pids + etcd_pids if alive(p)], timeout=20,
               message="every child gone after SIGKILL of soa up")


def test_up_reuses_a_healthy_etcd_and_records_a_moved_one(up, tmp_path):
    etcd = EtcdProcess(tmp_path / "theirs", client_port=free_port()).start()
    try:
        shop = up("--only", "catalog", endpoint=etcd.endpoint)
        shop.wait_table(2)
        assert f"etcd: {etcd.endpoint} (already running; reusing it)" in shop.text()
        assert not (tmp_path / ".soa" / "etcd").exists()
        shop.stop()
    finally:
        etcd.stop()


def test_other_commands_follow_an_etcd_that_had_to_move(up, tmp_path):
    with socket.socket() as taken:  # soa.yaml's port is held by something that is not etcd
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        shop = up("--only", "catalog", endpoint=f"127.0.0.1:{taken.getsockname()[1]}")
        shop.wait_table(2)
        assert "is taken; the embedded etcd uses a free port instead" in shop.text()
        listing = shop.soa("registry", "ls", "catalog", "--json")
        assert listing.returncode == 0, listing.stderr
        assert len(json.loads(listing.stdout)) == 2


def test_a_port_in_time_wait_is_not_taken(tmp_path):
    from soa.up import _bindable

    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port = server.getsockname()[1]
    client = socket.create_connection(("127.0.0.1", port))
    accepted, _ = server.accept()
    accepted.close()  # the server side closes first: its end goes to TIME-WAIT
    client.close()
    server.close()
    assert _bindable(port)


def test_an_etcd_that_never_gets_healthy_is_not_left_running(tmp_path):
    member = EtcdProcess(tmp_path / "slow", client_port=free_port())
    with pytest.raises(SoaError, match="not healthy"):
        member.start(timeout=0.001)
    assert member.process is None  # stop() ended and reaped it
    assert not subprocess.run(["pgrep", "-f", f"data-dir {tmp_path}/slow"],
                              capture_output=True).stdout
