"""``soa monitor`` end to end: real ``soa serve`` processes, ``kill -9``, a real monitor process
and a webhook receiver started by the test."""

import json
import signal
import subprocess
import sys
import tempfile

import gevent
import gevent.pywsgi
import pytest
from thriftpy2.thrift import TApplicationException

import soa
from soa.config import load_config
from soa.testing.poll import wait_until
from soa.testing.processes import ServiceProcess
from fixtures.server_support import echo_config


class Receiver:
    """Records the JSON bodies POSTed to it."""

    def __init__(self):
        self.bodies = []
        self.server = gevent.pywsgi.WSGIServer(("127.0.0.1", 0), self, log=None)
        self.server.start()
        self.url = f"http://127.0.0.1:{self.server.server_port}/alerts"

    def __call__(self, environ, start_response):
        assert environ["REQUEST_METHOD"] == "POST"
        assert environ["CONTENT_TYPE"] == "application/json"
        self.bodies.append(json.loads(environ["wsgi.input"].read()))
        start_response("200 OK", [("Content-Length", "2")])
        return [b"ok"]

    def of(self, rule, status=None):
        return [b for b in self.bodies if b["rule"] == rule and status in (None, b["status"])]

    def stop(self):
        self.server.stop(timeout=1)


class MonitorProcess:
    """``soa monitor`` as a child process; ``stop()`` sends SIGTERM and waits."""

    def __init__(self, config, rules, state, interval="0.2s"):
        self.cmd = [sys.executable, "-m", "soa", "--config", str(config), "monitor",
                    "--rules", str(rules), "--interval", interval, "--state", str(state)]
        self.state = state
        self.log = tempfile.TemporaryFile()  # noqa: SIM115 -- closed in stop()
        self.proc = subprocess.Popen(self.cmd, stdout=self.log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL)

    def output(self):
        self.log.seek(0)
        return self.log.read().decode("utf-8", "replace")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode

    def rule_state(self, name):
        return json.loads(self.state.read_text())["rules"][name]

    def evaluated_at(self, name):
        """The time of the rule's latest evaluation (0 before the first)."""
        try:
            history = self.rule_state(name)["history"]
        except (OSError, ValueError, KeyError):
            return 0.0
        return history[-1][0] if history else 0.0

    def wait_evaluated_past(self, name, t, timeout=15):
        wait_until(lambda: self.evaluated_at(name) > t, timeout=timeout,
                   message=f"an evaluation of {name} after {t}:\n{self.output()}")


@pytest.fixture
def started(request):
    """Start-and-stop helper: everything it is handed is stopped at teardown, newest first."""
    things = []

    def add(thing):
        things.append(thing)
        return thing

    yield add
    for thing in reversed(things):
        (getattr(thing, "stop", None) or thing.close)()


def test_kill_9_fires_once_is_limited_and_snoozed_and_resolves(tmp_path, etcd_config, started):
    config = echo_config(tmp_path, etcd_config)
    receiver = started(Receiver())
    rules = tmp_path / "rules.yaml"
    rules.write_text(f"""
webhook: {{url: "{receiver.url}", retries: 3}}
rules:
  - name: echo-low
    expr: val(soa_instances{{service="echo"}}) < 2
    policies: [limit(2, 1h), snooze(1s)]
    severity: critical
    message: "echo has {{value}} instance(s)"
""")
    state = tmp_path / "state.json"
    first = started(ServiceProcess(config, "echo").start())
    second = started(ServiceProcess(config, "echo").start())
    monitor = started(MonitorProcess(config, rules, state))
    monitor.wait_evaluated_past("echo-low", 0)
    t = monitor.evaluated_at("echo-low")
    monitor.wait_evaluated_past("echo-low", t + 0.5)
    assert receiver.bodies == [] and not monitor.rule_state("echo-low")["firing"]

    second.kill()  # SIGKILL: no deregistration; the key goes when its 2 s lease expires
    wait_until(lambda: receiver.of("echo-low"), timeout=15,
               message=f"the firing notification:\n{monitor.output()}")
    fired = receiver.of("echo-low")[0]
    assert fired["status"] == "firing" and fired["severity"] == "critical"
    assert fired["id"] == "echo-low:1:1" and fired["episode"] == 1 and fired["sequence"] == 1
    assert fired["value"] == 1.0
    assert fired["series"] == [{"labels": {"service": "echo"}, "value": 1.0}]
    assert fired["message"] == "echo has 1 instance(s)"
    assert fired["expr"] == 'val(soa_instances{service="echo"}) < 2'
    assert fired["started_at"] == fired["at"]
    # the same notification went to stdout as one JSON line
    wait_until(lambda: '"echo-low:1:1"' in monitor.output(), timeout=5)

    # snoozed for 1 s, then a second one; then the limit (2 per hour) holds
    wait_until(lambda: len(receiver.of("echo-low")) >= 2, timeout=10,
               message=f"the second notification:\n{monitor.output()}")
    again = receiver.of("echo-low")[1]
    assert again["id"] == "echo-low:1:2" and again["status"] == "firing"
    assert 1.0 <= again["at"] - fired["at"] < 2.0
    monitor.wait_evaluated_past("echo-low", again["at"] + 2.0)
    assert len(receiver.of("echo-low")) == 2

    # a restarted monitor remembers: still firing, limit spent, nothing repeated
    assert monitor.stop() == 0
    monitor = started(MonitorProcess(config, rules, state))
    restarted_at = monitor.evaluated_at("echo-low")
    monitor.wait_evaluated_past("echo-low", restarted_at + 1.5)
    assert len(receiver.of("echo-low")) == 2
    assert monitor.rule_state("echo-low")["firing"]

    # a new instance registers: one resolved notification
    started(ServiceProcess(config, "echo").start())
    wait_until(lambda: receiver.of("echo-low", "resolved"), timeout=10,
               message=f"the resolved notification:\n{monitor.output()}")
    resolved = receiver.of("echo-low", "resolved")
    assert resolved[0]["id"] == "echo-low:1:resolved"
    assert resolved[0]["started_at"] == fired["started_at"] and resolved[0]["series"] == []
    monitor.wait_evaluated_past("echo-low", resolved[0]["at"] + 1.0)
    assert len(receiver.of("echo-low", "resolved")) == 1
    assert len(receiver.bodies) == 3
    assert first.proc.poll() is None


def test_a_failing_handler_trips_the_error_rate_rule(tmp_path, etcd_config, started):
    """Needs every instance's /metrics (soa_server_calls_total{service, method, outcome})."""
    config = echo_config(tmp_path, etcd_config)
    receiver = started(Receiver())
    rules = tmp_path / "rules.yaml"
    rules.write_text(f"""
webhook: {{url: "{receiver.url}"}}
rules:
  - name: echo-failing
    expr: >
      sum(count(soa_server_calls_total{{service="echo", outcome=~"internal|application"}}, 2s))
        by (service)
      / sum(count(soa_server_calls_total{{service="echo"}}, 2s)) by (service) > 0.5
    severity: critical
    message: "{{label:service}} fails {{value}} of its calls"
""")
    started(ServiceProcess(config, "echo").start())
    monitor = started(MonitorProcess(config, rules, tmp_path / "state.json"))
    client = soa.client("echo", load_config(str(config)), retries=0)
    started(client)
    calls = {"ok": 0, "failed": 0}
    failing = {"on": False}

    def load():
        while True:
            if failing["on"]:
                with pytest.raises(TApplicationException):
                    client.fail("internal")
                calls["failed"] += 1
            else:
                assert client.echo("fine") == "fine"
                calls["ok"] += 1
            gevent.sleep(0.01)

    caller = gevent.spawn(load)
    started(Killer(caller))
    wait_until(lambda: calls["ok"] >= 20, timeout=10)
    t = monitor.evaluated_at("echo-failing")
    monitor.wait_evaluated_past("echo-failing", t + 1.0)
    assert receiver.of("echo-failing") == []

    failing["on"] = True  # the handler raises: outcome "internal"
    wait_until(lambda: receiver.of("echo-failing", "firing"), timeout=15,
               message=f"the error-rate alert:\n{monitor.output()}")
    fired = receiver.of("echo-failing", "firing")[0]
    assert fired["severity"] == "critical"
    assert fired["series"][0]["labels"] == {"service": "echo"}
    assert 0.5 < fired["value"] <= 1.0
    assert fired["message"].startswith("echo fails ")

    failing["on"] = False  # healthy again: the 2 s window forgets the failures
    wait_until(lambda: receiver.of("echo-failing", "resolved"), timeout=15,
               message=f"the resolution:\n{monitor.output()}")
    assert len(receiver.of("echo-failing", "firing")) == 1
    assert calls["failed"] > 0 and caller.exception is None


class Killer:
    def __init__(self, greenlet):
        self.greenlet = greenlet

    def stop(self):
        self.greenlet.kill()
