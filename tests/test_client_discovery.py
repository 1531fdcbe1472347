"""The client and the real registry: new instances, etcd outages, the empty-set guard and the
IDL policy, with calls in flight. Servers run in-process and register with EtcdRegistrar."""

import time
from dataclasses import replace

import pytest
from fixtures.client_handler import IDL
from fixtures.client_load import Load
from fixtures.client_servers import RawServer

from soa.registry.registrar import EtcdRegistrar
from soa.registry.resolver import EtcdResolver
from soa.clients.service_client import build
from soa.config import Config
from soa.errors import NoInstanceAvailable
from soa.etcd_server import EtcdProcess
from soa.testing.poll import wait_until


@pytest.fixture
def cluster(etcd_config):
    """Servers registered in the test's etcd prefix, and clients; all closed at the end."""
    servers, clients, registrars, resolvers = [], [], [], []

    class Cluster:
        def __init__(self, etcd_config):
            self.etcd_config = etcd_config

        def server(self, register=True, **kwargs):
            server = RawServer(**kwargs).start()
            servers.append(server)
            if register:
                self.register(server)
            return server

        def register(self, server):
            registrar = EtcdRegistrar(self.etcd_config)
            registrars.append(registrar)
            registrar.register(server.instance())
            server.registrar = registrar
            return registrar

        def client(self, **options):
            resolver = EtcdResolver(self.etcd_config)
            resolvers.append(resolver)
            made = build("echo", Config(etcd=self.etcd_config), resolver, idl=IDL, **options)
            clients.append(made)
            return made

    try:
        yield Cluster(etcd_config)
    finally:
        for made in clients:
            made.close()
        for resolver in resolvers:
            resolver.close()
        for registrar in registrars:
            registrar.close()
        for server in servers:
            server.stop()


def ports(instances):
    return {i.port for i in instances}


def test_new_instance_gets_traffic_within_100ms(cluster):
    a = cluster.server()
    client = cluster.client()
    with Load(client.whoami, greenlets=16) as load:
        wait_until(lambda: load.values_since(0) == {a.port}, 5)
        for _ in range(3):
            b = cluster.server(register=False)
            cluster.register(b)
            registered = time.monotonic()
            wait_until(lambda b=b, t=registered: b.port in load.values_since(t), 1,
                       interval=0.002)
            first = min(when for when, port in load.results if port == b.port)
            assert first - registered < 0.1, first - registered
    assert load.failures == []


def test_etcd_down_for_10s_then_back(tmp_path):
    """The client keeps its last known set and its pools: zero failed calls."""
    etcd = EtcdProcess(tmp_path / "etcd")
    etcd.start()
    config = Config().etcd
    config = replace(config, endpoints=(etcd.endpoint,), prefix="/outage", lease_ttl=2,
                     dial_timeout=1.0)
    servers = [RawServer().start() for _ in range(3)]
    registrars = []
    client = None
    try:
        for server in servers:
            registrar = EtcdRegistrar(config)
            registrar.register(server.instance())
            registrars.append(registrar)
        client = build("echo", Config(etcd=config), EtcdResolver(config), owns_resolver=True,
                       idl=IDL, retries=2)
        wait_until(lambda: len(client.instances) == 3, 5)
        with Load(client.whoami, greenlets=16, pause=0.001) as load:
            wait_until(lambda: load.values_since(0) == {s.port for s in servers}, 5)
            etcd.stop()
            down = time.monotonic()
            wait_until(lambda: time.monotonic() - down >= 10, 12, interval=0.2)
            assert len(client.instances) == 3
            etcd.start()
            back = time.monotonic()
            wait_until(lambda: load.calls_since(back + 2) > 200, 15)
        assert load.failures == [], load.failures[:3]
        during = [1 for when, _ in load.results if down < when < back]
        assert len(during) > 1000
        assert load.values_since(back) == {s.port for s in servers}
    finally:
        if client is not None:
            client.close()
        for registrar in registrars:
            registrar.close()
        for server in servers:
            server.stop()
        etcd.stop()


def test_empty_set_from_the_registry_is_held_until_probes_fail(cluster, etcd):
    servers = [cluster.server() for _ in range(3)]
    client = cluster.client()
    client.discovery.probe_interval = 0.1
    wait_until(lambda: len(client.instances) == 3, 5)
    with Load(client.whoami, greenlets=16) as load:
        # a registry glitch: every key deleted in one transaction (the servers are fine, but
        # their registrars cannot reach etcd, so nobody writes the keys back)
        for server in servers:
            server.registrar.abandon(server.instance())
        etcd.delete_prefix(cluster.etcd_config.prefix + "/")
        assert not list(etcd.get_prefix(cluster.etcd_config.prefix + "/"))
        wait_until(lambda: len(client.discovery.held) == 3, 5)
        glitch = time.monotonic()
        wait_until(lambda: load.calls_since(glitch) > 300, 10)
        assert load.values_since(glitch) == {s.port for s in servers}
        servers[0].kill()  # this one really is gone: its probe fails and it is dropped
        wait_until(lambda: len(client.instances) == 2, 5)
        dropped = time.monotonic()
        wait_until(lambda: load.calls_since(dropped + 0.05) > 300, 10)
    assert load.values_since(dropped + 0.05) == {servers[1].port, servers[2].port}
    assert load.failures == [], load.failures[:3]


@pytest.mark.parametrize("policy", ["warn", "exclude"])
def test_idl_mismatch_policy(cluster, caplog, policy):
    good = cluster.server()
    other = cluster.server(idl_hash="sha256:ffffffffffffffff")
    unknown = cluster.server(idl_hash="")
    client = cluster.client(idl_mismatch=policy)
    with Load(client.whoami, greenlets=8) as load:
        wait_until(lambda: load.calls_since(0) > 300, 10)
    assert load.failures == []
    expected = {good.port, unknown.port} | ({other.port} if policy == "warn" else set())
    assert load.values_since(0) == expected
    warnings = [r for r in caplog.records if "serves IDL" in r.getMessage()]
    assert len(warnings) == 1


def test_idl_mismatch_exclude_everything_is_no_instance(cluster):
    cluster.server(idl_hash="sha256:ffffffffffffffff")
    client = cluster.client(idl_mismatch="exclude")
    with pytest.raises(NoInstanceAvailable):
        client.whoami()
