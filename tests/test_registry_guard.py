"""The mass-removal guard judges removals against the largest set seen within its window, so
instances removed one at a time (etcd revoking leases one by one) are held together; a shrink
spread over more than the window is accepted."""

import time

import pytest
from fixtures.client_handler import IDL
from fixtures.client_load import Load
from fixtures.client_servers import RawServer

from soa.clients import StaticResolver
from soa.clients.service_client import build
from soa.config import Config
from soa.registry.registrar import EtcdRegistrar
from soa.registry.resolver import EtcdResolver
from soa.testing.poll import wait_until


@pytest.fixture
def servers():
    started = [RawServer().start() for _ in range(3)]
    yield started
    for s in started:
        s.stop()


@pytest.fixture
def closing():
    things = []
    yield things.append
    for thing in reversed(things):
        thing.close()


def test_removals_one_at_a_time_are_judged_together(servers, closing):
    a, b, c = servers
    resolver = StaticResolver([s.instance() for s in servers])
    client = build("echo", Config(), resolver, idl=IDL, mass_removal_share=0.5)
    closing(client)
    resolver.set("echo", [a.instance(), b.instance()])  # 1 of 3: an ordinary change
    assert {i.port for i in client.instances} == {a.port, b.port}
    resolver.set("echo", [a.instance()])  # 1 of 2, but 2 of the 3 seen within the window
    assert {i.port for i in client.instances} == {a.port, b.port, c.port}
    assert set(client.discovery.held) == {b.instance().address, c.instance().address}
    assert {client.whoami() for _ in range(30)} == {a.port, b.port, c.port}


def test_a_shrink_spread_over_more_than_the_window_is_accepted(servers, closing):
    a, b, c = servers
    now = [1000.0]
    resolver = StaticResolver([s.instance() for s in servers])
    client = build("echo", Config(), resolver, idl=IDL, mass_removal_share=0.5)
    closing(client)
    client.discovery.clock = lambda: now[0]
    window = client.discovery.removal_window
    assert window == 10 * 1.5 + 1  # no lease TTL known: the default 10 s TTL's window
    resolver.set("echo", [a.instance(), b.instance()])
    now[0] += window + 0.1  # the set of three is older than the window now
    resolver.set("echo", [a.instance()])  # 1 of 2: accepted
    assert [i.port for i in client.instances] == [a.port]
    assert client.discovery.held == {}


def test_leases_revoked_one_at_a_time_in_etcd_keep_all_three_in_use(servers, etcd_config, etcd,
                                                                  closing):
    registrars = []
    for server in servers:
        registrar = EtcdRegistrar(etcd_config)
        closing(registrar)
        registrar.register(server.instance())
        registrars.append(registrar)
    resolver = EtcdResolver(etcd_config)
    closing(resolver)
    client = build("echo", Config(etcd=etcd_config), resolver, idl=IDL, mass_removal_share=0.5)
    closing(client)
    assert client.discovery.removal_window == etcd_config.lease_ttl * 1.5 + 1
    wait_until(lambda: len(client.instances) == 3, 5)
    leases = [r.lease_id(s.instance()) for r, s in zip(registrars, servers)]
    for registrar, server in zip(registrars, servers):
        registrar.abandon(server.instance())  # the processes lose etcd; their leases go
    ports = {s.port for s in servers}
    with Load(client.whoami, greenlets=8) as load:
        etcd.revoke_lease(leases[0])
        wait_until(lambda: len(client.instances) == 2, 2, message="one removal is accepted")
        etcd.revoke_lease(leases[1])  # a separate event: 1 of 2, but 2 of 3 within the window
        wait_until(lambda: len(client.discovery.held) == 2, 2, message="both held")
        held = time.monotonic()
        assert {i.port for i in client.instances} == ports
        wait_until(lambda: load.values_since(held) == ports, 3, message="calls reach all three")
    assert load.failures == [], load.failures[:3]


def test_deregistrations_are_followed_at_once_however_many(servers, etcd_config, closing):
    """Two of three instances deregister (a scale-down): no glitch, so nothing is held."""
    registrars = []
    for server in servers:
        registrar = EtcdRegistrar(etcd_config)
        closing(registrar)
        registrar.register(server.instance())
        registrars.append(registrar)
    resolver = EtcdResolver(etcd_config)
    closing(resolver)
    client = build("echo", Config(), resolver, idl=IDL, mass_removal_share=0.5)
    closing(client)
    ports = {s.port for s in servers}
    wait_until(lambda: {i.port for i in client.instances} == ports, timeout=5)
    for registrar, server in zip(registrars[1:], servers[1:]):
        registrar.deregister(server.instance())
    wait_until(lambda: {i.port for i in client.instances} == {servers[0].port}, timeout=2,
               message="the deregistered instances dropped, not held")
    assert not client.discovery.held
