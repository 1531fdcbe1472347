"""The monitor against a real etcd: registry facts, expiry versus deregistration, following the
watch to new scrape targets, /metrics served over real HTTP, webhook delivery with retries."""

import io
import json

import gevent
import gevent.pywsgi
import pytest
from prometheus_client import CollectorRegistry, Counter, make_wsgi_app

from soa.config import Config
from soa.etcd_server import free_port
from soa.monitor.evaluate import evaluate
from soa.monitor.expr import parse
from soa.monitor.monitor import Monitor
from soa.monitor.policy import RuleState
from soa.monitor.rules import load_rules
from soa.monitor.state import StateFile
from soa.registry.etcd import EtcdConnection
from soa.registry.instance import Instance, instance_key
from soa.registry.registrar import EtcdRegistrar
from soa.testing.poll import wait_until


class Http:
    """A WSGI app on a real port in this process; stopped by the fixture."""

    def __init__(self, app):
        self.server = gevent.pywsgi.WSGIServer(("127.0.0.1", 0), app, log=None)
        self.server.start()
        self.port = self.server.server_port

    def stop(self):
        self.server.stop(timeout=1)


@pytest.fixture
def http():
    servers = []

    def start(app):
        servers.append(Http(app))
        return servers[-1]

    yield start
    for s in servers:
        s.stop()


class Receiver:
    """A webhook receiver: records JSON bodies; answers 500 to the first ``fail`` requests."""

    def __init__(self, fail=0):
        self.fail = fail
        self.requests = 0
        self.bodies = []

    def __call__(self, environ, start_response):
        self.requests += 1
        body = environ["wsgi.input"].read()
        if self.requests <= self.fail:
            start_response("500 Internal Server Error", [("Content-Length", "0")])
            return [b""]
        self.bodies.append(json.loads(body))
        start_response("204 No Content", [])
        return [b""]


@pytest.fixture
def registrar(etcd_config):
    r = EtcdRegistrar(etcd_config)
    yield r
    r.close()


def rules_file(tmp_path, text):
    path = tmp_path / "rules.yaml"
    path.write_text(text)
    return load_rules(path)


@pytest.fixture
def monitors(etcd_config):
    started = []

    def start(alerts):
        m = Monitor(Config(etcd=etcd_config), alerts, stream=io.StringIO())
        started.append(m.start(ready_timeout=5, loop=False))
        return m

    yield start
    for m in started:
        m.stop()


def value(monitor, text, now):
    return evaluate(parse(text), monitor.store, now)


def test_registry_facts_expiry_versus_deregistration(tmp_path, etcd_config, registrar, monitors):
    alerts = rules_file(tmp_path, f"""
state: {tmp_path}/state.json
rules:
  - {{name: none, expr: 'empty(soa_instances{{service="svc"}})'}}
  - {{name: ghost, expr: 'val(soa_instances{{service="ghost"}}) < 1'}}
""")
    monitor = monitors(alerts)
    notes = monitor.tick(1.0)
    # a service the rules name but nobody registered has soa_instances 0
    assert value(monitor, 'val(soa_instances{service="ghost"})', 1.0) == {
        (("service", "ghost"),): 0.0}
    assert [n["rule"] for n in notes] == ["ghost"]
    # soa_instances exists (at 0) for named services, so empty() of it is false; a service
    # without instances has no soa_instance_up series
    assert value(monitor, 'empty(soa_instances{service="svc"})', 1.0) == 0.0
    assert value(monitor, 'empty(soa_instance_up{service="svc"})', 1.0) == 1.0
    a, b, c = (Instance("svc", "127.0.0.1", free_port()) for _ in range(3))
    registrar.register(a)
    registrar.register(c)
    # b is written by hand under a lease of its own (a live registrar would repair a deletion)
    connection = EtcdConnection(etcd_config)
    client = connection.client()
    lease = client.lease(60)
    client.put(instance_key(etcd_config.prefix, b), b.encode(), lease=lease)
    wait_until(lambda: len(monitor.targets.instances) == 3, timeout=5)
    monitor.tick(2.0)
    assert value(monitor, 'val(soa_instances{service="svc"})', 2.0) == {
        (("service", "svc"),): 3.0}
    up = value(monitor, "val(soa_instance_up)", 2.0)
    assert up == {(("address", i.address), ("service", "svc")): 1.0 for i in (a, b, c)}
    assert value(monitor, 'empty(soa_instance_up{service="svc"})', 2.0) == 0.0

    registrar.deregister(a)  # marked leaving, deleted, revoked: not an expiry
    try:  # deleted by hand while its lease lives: not an expiry either
        client.delete(instance_key(etcd_config.prefix, b))
        registrar.abandon(c)  # its lease runs out (ttl 2 s): an expiry
        wait_until(lambda: len(monitor.targets.instances) == 0, timeout=10,
                   message="every svc instance gone")
        monitor.tick(10.0)
    finally:
        lease.revoke()
        connection.close()
    assert value(monitor, 'val(soa_instances{service="svc"})', 10.0) == {
        (("service", "svc"),): 0.0}
    assert value(monitor, "val(soa_instances_expired_total)", 10.0) == {
        (("service", "svc"),): 1.0, (("service", "ghost"),): 0.0}
    assert value(monitor, 'count(soa_instances_expired_total{service="svc"}, 1h)', 10.0) == {
        (("service", "svc"),): 1.0}
    assert value(monitor, "val(soa_instance_up)", 10.0) == {}


def test_new_instances_are_scraped_without_a_restart(tmp_path, registrar, monitors, http):
    metrics, counters = [], []
    for _ in range(2):
        registry = CollectorRegistry()
        counters.append(Counter("soa_server_calls", "calls", ["service", "method", "outcome"],
                                registry=registry))
        metrics.append(http(make_wsgi_app(registry)))
    alerts = rules_file(tmp_path, f"""
state: {tmp_path}/state.json
rules:
  - name: failing
    expr: >
      sum(count(soa_server_calls_total{{outcome="internal"}}, 1h)) by (service)
      / sum(count(soa_server_calls_total, 1h)) by (service) > 0.5
    message: "{{label:service}} fails {{value}} of its calls"
""")
    monitor = monitors(alerts)
    first = Instance("svc", "127.0.0.1", free_port(), metrics_port=metrics[0].port)
    registrar.register(first)
    wait_until(lambda: monitor.targets.instances, timeout=5)
    counters[0].labels("svc", "ping", "ok").inc(10)
    assert monitor.tick(1.0) == []
    labels = {"service": "svc", "method": "ping", "outcome": "ok", "address": first.address}
    key = tuple(sorted(labels.items()))
    assert value(monitor, "val(soa_server_calls_total)", 1.0) == {key: 10.0}

    second = Instance("svc", "127.0.0.1", free_port(), metrics_port=metrics[1].port)
    registrar.register(second)
    wait_until(lambda: len(monitor.targets.instances) == 2, timeout=5)
    counters[1].labels("svc", "ping", "ok").inc(1)
    counters[1].labels("svc", "ping", "internal").inc(1)
    monitor.tick(2.0)
    counters[1].labels("svc", "ping", "internal").inc(30)
    notes = monitor.tick(3.0)
    # increase over the window: internal 30 of 30 + 0 + 0 calls since the first samples
    assert [(n["rule"], n["status"]) for n in notes] == [("failing", "firing")]
    assert notes[0]["message"] == "svc fails 1 of its calls"
    assert notes[0]["series"] == [{"labels": {"service": "svc"}, "value": 1.0}]

    metrics[1].stop()  # the second instance stops answering its scrapes
    monitor.tick(4.0)
    up = value(monitor, "val(soa_instance_up)", 4.0)
    assert up == {(("address", first.address), ("service", "svc")): 1.0,
                  (("address", second.address), ("service", "svc")): 0.0}
    assert value(monitor, f'exist(soa_server_calls_total{{address="{second.address}"}})',
                 4.0) == 0.0


def test_webhook_delivery_is_retried_with_backoff(tmp_path, monitors, http):
    receiver = Receiver(fail=2)
    hook = http(receiver)
    alerts = rules_file(tmp_path, f"""
state: {tmp_path}/state.json
webhook: {{url: "http://127.0.0.1:{hook.port}/hook", retries: 3, timeout: 2s}}
rules:
  - {{name: ghost, expr: 'empty(soa_instance_up{{service="ghost"}})', severity: info}}
""")
    monitor = monitors(alerts)
    notes = monitor.tick(1.0)
    assert len(notes) == 1
    wait_until(lambda: receiver.bodies, timeout=10, message="the webhook delivery")
    assert receiver.requests == 3  # two 500s, then delivered
    body = receiver.bodies[0]
    assert body == notes[0]
    assert (body["rule"], body["status"], body["severity"]) == ("ghost", "firing", "info")
    assert body["id"] == "ghost:1:1" and body["value"] == 1.0 and body["series"] == []
    wait_until(lambda: json.loads((tmp_path / "state.json").read_text())["outbox"] == [],
               timeout=5, message="the outbox saved empty")


def test_a_restart_does_not_resolve_on_a_half_empty_window(tmp_path, monitors):
    """Scraped history is in memory: after a restart, a firing count() rule waits for its window
    to fill before a miss can resolve it; the expiry counts come back from the state file."""
    alerts = rules_file(tmp_path, f"""
state: {tmp_path}/state.json
rules:
  - {{name: busy, expr: 'count(soa_server_calls_total, 10s) > 0'}}
""")
    state = StateFile(tmp_path / "state.json")
    firing = RuleState(history=[[50.0, True]], firing=True, since=50.0, notified=True, episode=1,
                       sequence=1, last_sent=50.0)
    state.save({"busy": firing}, [], {"expired": {"svc": 4}})
    monitor = monitors(alerts)
    assert monitor.tick(100.0) == []  # nothing scraped yet: a miss, but inside the warm-up
    assert monitor.tick(105.0) == []
    assert monitor.states["busy"].firing
    assert value(monitor, "val(soa_instances_expired_total)", 105.0) == {
        (("service", "svc"),): 4.0}
    (note,) = monitor.tick(110.0)  # a full window since the start: the miss resolves it
    assert (note["status"], note["id"]) == ("resolved", "busy:1:resolved")


def test_an_instance_serving_garbage_is_down_and_the_monitor_goes_on(tmp_path, registrar,
                                                                       monitors, http):
    def garbage(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"# TYPE x counter\nx_total{a=\"1\" 12 oops\n\xff\xfe"]

    bad = http(garbage)
    alerts = rules_file(tmp_path, f"""
state: {tmp_path}/state.json
rules:
  - {{name: down, expr: 'val(soa_instance_up{{service="svc"}}) == 0'}}
""")
    monitor = monitors(alerts)
    instance = Instance("svc", "127.0.0.1", free_port(), metrics_port=bad.port)
    registrar.register(instance)
    wait_until(lambda: monitor.targets.instances, timeout=5)
    (note,) = monitor.tick(1.0)
    assert note["series"] == [{"labels": {"service": "svc", "address": instance.address},
                               "value": 0.0}]
    assert value(monitor, "exist(x_total)", 1.0) == 0.0
    assert monitor.tick(2.0) == [] and monitor.ticks == 2


def test_output_to_the_log_or_nowhere(tmp_path, monitors, caplog):
    for output in ("log", "none"):
        alerts = rules_file(tmp_path, f"""
state: {tmp_path}/{output}.json
output: {output}
rules:
  - {{name: ghost, expr: 'empty(soa_instance_up{{service="ghost"}})', message: "no ghost"}}
""")
        monitor = monitors(alerts)
        caplog.clear()
        with caplog.at_level("INFO", logger="soa.monitor"):
            (note,) = monitor.tick(1.0)
        logged = [r.getMessage() for r in caplog.records if r.name == "soa.monitor"]
        line = "alert ghost firing [warning]: no ghost"
        assert (line in logged) == (output == "log"), logged
        assert monitor.output is None or monitor.output.name == "log"
