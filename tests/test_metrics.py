"""/metrics, /healthz and /readyz of a real server, its clients' series, and metrics: false."""

import gevent
import pytest
from prometheus_client.parser import text_string_to_metric_families
from thriftpy2.thrift import TApplicationException

import soa
from fixtures.server_support import client, echo_config, echo_idl
from soa.config import load_config
from soa.observe.scrape import fetch
from soa.registry.inspect import registered
from soa.registry.etcd import EtcdConnection
from soa.testing.poll import wait_until


@pytest.fixture
def serve_echo(tmp_path, etcd_config):
    servers = []

    def start(**service):
        config = load_config(str(echo_config(tmp_path, etcd_config, **service)))
        server = soa.serve("echo", config, block=False)
        servers.append(server)
        return server, config

    yield start
    for server in servers:
        server.stop(grace=0)


def scrape(port):
    status, text = fetch("127.0.0.1", port)
    assert status == 200
    types = [line for line in text.splitlines() if line.startswith("# TYPE ")]
    assert len(types) == len(set(types))  # every family once
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def value(samples, name, **labels):
    return samples.get((name, tuple(sorted(labels.items()))), 0)


def test_server_and_client_series_count_the_calls_made(serve_echo, tmp_path, etcd_config):
    server, config = serve_echo()
    port = server.endpoint.port
    assert server.instance.metrics_port == port  # in the registry value
    connection = EtcdConnection(etcd_config)
    try:
        [listed] = registered(connection, etcd_config.prefix, "echo")
    finally:
        connection.close()
    assert listed.metrics_port == port
    module = echo_idl(tmp_path)
    raw = client(module, server.address[1])
    for _ in range(5):
        raw.echo("x")
    with pytest.raises(module.EchoError):
        raw.fail("declared")
    with pytest.raises(TApplicationException):
        raw.fail("app")
    with pytest.raises(TApplicationException):
        raw.fail("internal")
    with soa.client("echo", config) as c:
        for _ in range(3):
            c.add(1, 2)
        # the standalone client reports through the process that owns it: compare its snapshot
        assert c.metrics.snapshot()["add"]["calls"] == 3
    samples = scrape(port)
    calls = "soa_server_calls_total"
    assert value(samples, calls, service="echo", method="echo", outcome="ok") == 5
    assert value(samples, calls, service="echo", method="add", outcome="ok") == 3
    assert value(samples, calls, service="echo", method="fail", outcome="declared") == 1
    assert value(samples, calls, service="echo", method="fail", outcome="application") == 1
    assert value(samples, calls, service="echo", method="fail", outcome="internal") == 1
    hist = "soa_server_call_duration_seconds"
    assert value(samples, hist + "_count", service="echo", method="echo") == 5
    assert value(samples, hist + "_bucket", service="echo", method="echo", le="+Inf") == 5
    assert value(samples, "soa_server_connections", service="echo") >= 1
    assert value(samples, "soa_server_inflight_calls", service="echo") == 0
    assert ("process_cpu_seconds_total", ()) in samples
    assert value(samples, "soa_registry_registrations_total", service="echo") == 0
    # A call in flight shows in the gauge.
    slow = client(module, server.address[1], timeout=10000)
    slow._send("sleep", seconds=1.0)
    wait_until(lambda: value(scrape(port), "soa_server_inflight_calls", service="echo") == 1,
               timeout=5, message="the call in flight is counted")
    assert slow._recv("sleep") == "slept"


def test_unknown_method_is_counted_without_its_name(serve_echo, tmp_path):
    server, _ = serve_echo()
    import thriftpy2

    other = tmp_path / "other.thrift"
    other.write_text("service Other { void nosuch_method() }\n")
    module = thriftpy2.load(str(other), module_name="other_thrift")
    from thriftpy2.rpc import make_client

    c = make_client(module.Other, "127.0.0.1", server.address[1], timeout=5000)
    with pytest.raises(TApplicationException):
        c.nosuch_method()
    samples = scrape(server.endpoint.port)
    assert value(samples, "soa_server_calls_total", service="echo", method="",
                 outcome="unknown_method") == 1
    assert not [k for k in samples if "nosuch_method" in str(k)]


def test_a_handlers_own_series_are_served_at_scrape_time(serve_echo):
    from prometheus_client.core import CounterMetricFamily

    server, _ = serve_echo()
    counts = {"n": 0}

    def collect():
        family = CounterMetricFamily("app_widgets", "Widgets.", labels=["kind"])
        family.add_metric(["blue"], counts["n"])
        yield family

    server.context.add_metrics(collect)
    assert value(scrape(server.endpoint.port), "app_widgets_total", kind="blue") == 0
    counts["n"] = 3  # read again at the next scrape
    assert value(scrape(server.endpoint.port), "app_widgets_total", kind="blue") == 3


def test_client_series_of_a_handlers_clients(serve_echo, tmp_path, etcd_config):
    server, _ = serve_echo()
    # The handler's context makes a client of its own service: its calls are scraped too.
    own = server.context.client("echo")
    for _ in range(4):
        own.echo("via context")
    with pytest.raises(server.context.idl.EchoError):
        own.fail("declared")
    samples = scrape(server.endpoint.port)
    calls = "soa_client_calls_total"
    assert value(samples, calls, service="echo", method="echo", outcome="ok") == 4
    assert value(samples, calls, service="echo", method="fail", outcome="declared") == 1
    assert value(samples, "soa_client_call_duration_seconds_count", service="echo",
                 method="echo") == 4
    assert value(samples, "soa_client_instances", service="echo") == 1
    assert value(samples, "soa_client_watch_connected", service="echo") == 1
    assert value(samples, "soa_client_watch_relists_total", service="echo") >= 1
    assert value(samples, "soa_client_pool_connections", service="echo") >= 1
    assert value(samples, "soa_client_pool_in_use", service="echo") == 0
    for name in ("soa_client_retries_total", "soa_client_retries_refused_total",
                 "soa_client_ejections_total"):
        assert value(samples, name, service="echo") == 0
    # The handler's own calls: 4 echo + 1 fail, served by this very server.
    assert value(samples, "soa_server_calls_total", service="echo", method="echo",
                 outcome="ok") == 4


def test_healthz_and_readyz_through_a_drain(serve_echo, tmp_path):
    server, _ = serve_echo(grace_period=1.0)
    port = server.endpoint.port
    assert fetch("127.0.0.1", port, "/healthz")[0] == 200
    assert fetch("127.0.0.1", port, "/readyz")[0] == 200
    assert fetch("127.0.0.1", port, "/nothing")[0] == 404
    stopper = gevent.spawn(server.stop)  # deregister, then 1 s of grace
    wait_until(lambda: fetch("127.0.0.1", port, "/readyz")[0] == 503, timeout=2,
               message="/readyz turns 503 when the drain begins")
    assert fetch("127.0.0.1", port, "/healthz")[0] == 200  # still alive while draining
    assert not stopper.ready()
    stopper.get(timeout=10)


def test_metrics_false_turns_the_endpoint_and_recording_off(serve_echo, tmp_path):
    server, _ = serve_echo(metrics=False)
    assert server.endpoint is None
    assert server.instance.metrics_port == 0
    raw = client(echo_idl(tmp_path), server.address[1])
    assert raw.echo("x") == "x"
    assert server.metrics.snapshot()["methods"] == {}


def test_fixed_metrics_port_and_bad_value(serve_echo, tmp_path, etcd_config):
    from soa.errors import ConfigError
    from soa.etcd_server import free_port

    wanted = free_port()
    server, _ = serve_echo(metrics_port=wanted)
    assert server.endpoint.port == wanted == server.instance.metrics_port
    with pytest.raises(ConfigError, match=r"services\.echo\.metrics_port"):
        load_config(str(echo_config(tmp_path, etcd_config, metrics_port="abc")))
