"""Registration and discovery against a real etcd: leases, expiry, restarts, compaction."""

import os
import signal
import subprocess
import sys
import textwrap
import time
from dataclasses import replace

import gevent
import pytest

from soa.registry import Instance, instance_key
from soa.registry.etcd import EtcdConnection
from soa.registry.registrar import EtcdRegistrar
from soa.registry.resolver import EtcdResolver
from soa.etcd_server import EtcdProcess
from soa.testing import wait_until


def instance(port, service="order", **kw):
    return Instance(service=service, host="127.0.0.1", port=port, pid=os.getpid(),
                    started_at=time.time(), **kw)


@pytest.fixture
def registrar(etcd_config):
    r = EtcdRegistrar(etcd_config)
    yield r
    r.close()


@pytest.fixture
def resolver(etcd_config):
    r = EtcdResolver(etcd_config)
    yield r
    r.close()


def test_registered_instance_becomes_visible_with_a_lease(etcd_config, etcd, registrar, resolver):
    seen = []
    resolver.subscribe("order", seen.append)
    one = instance(9001, version="1.2.3", idl_hash="sha256:abc", tags={"zone": "a"})
    key = registrar.register(one)
    assert key == f"{etcd_config.prefix}/services/order/127.0.0.1:9001"
    wait_until(lambda: resolver.instances("order") == (one,), message="instance visible")
    value, meta = etcd.get(key)
    assert meta.lease_id == registrar.lease_id(one)
    assert etcd.get_lease_info(meta.lease_id).TTL > 0
    assert seen[-1] == (one,)  # subscribers get the complete set


def test_subscribers_get_complete_sets_and_deregister_revokes(etcd_config, etcd, registrar,
                                                              resolver):
    sets = []
    resolver.subscribe("order", lambda s: sets.append({i.port for i in s}))
    a, b = instance(9001), instance(9002)
    registrar.register(a)
    registrar.register(b)
    wait_until(lambda: sets and sets[-1] == {9001, 9002})
    lease = registrar.lease_id(a)
    registrar.deregister(a)
    wait_until(lambda: sets[-1] == {9002})
    assert etcd.get(instance_key(etcd_config.prefix, a))[0] is None
    assert etcd.get_lease_info(lease).TTL == -1  # revoked
    assert all(s in ({9001}, {9001, 9002}, {9002}, set()) for s in sets)


def test_lease_is_renewed_beyond_its_ttl(etcd_config, etcd, registrar):
    one = instance(9003)
    key = registrar.register(one)
    deadline = time.monotonic() + etcd_config.lease_ttl * 2.5
    while time.monotonic() < deadline:  # watch the key survive 2.5 TTLs, checking as we go
        assert etcd.get(key)[0] is not None
        gevent.sleep(0.2)


def test_sigkill_of_a_registered_process_expires_its_key(etcd_config, etcd):
    script = textwrap.dedent(f"""
        from soa import entry; entry.init()
        import sys, gevent
        from soa.config import EtcdConfig
        from soa.registry import Instance
        from soa.registry.registrar import EtcdRegistrar
        config = EtcdConfig(endpoints={etcd_config.endpoints!r}, prefix={etcd_config.prefix!r},
                            lease_ttl=2)
        EtcdRegistrar(config).register(Instance("order", "127.0.0.1", 9100))
        print("registered", flush=True)
        gevent.sleep(600)
    """)
    process = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout.readline().strip() == "registered"
        key = f"{etcd_config.prefix}/services/order/127.0.0.1:9100"
        assert etcd.get(key)[0] is not None
        process.send_signal(signal.SIGKILL)
        process.wait(10)
        killed = time.monotonic()
        wait_until(lambda: etcd.get(key)[0] is None, timeout=etcd_config.lease_ttl + 1,
                   message="key gone within TTL + 1 s")
        assert time.monotonic() - killed <= etcd_config.lease_ttl + 1
    finally:
        process.kill()
        process.wait()


def test_garbage_values_are_skipped_and_never_stop_the_watch(etcd_config, etcd, registrar,
                                                             resolver, caplog):
    base = f"{etcd_config.prefix}/services/order/"
    etcd.put(base + "127.0.0.1:1", "not json at all")
    registrar.register(instance(9001))
    wait_until(lambda: [i.port for i in resolver.instances("order")] == [9001])
    etcd.put(base + "127.0.0.1:2", '{"service": "order", "host": "127.0.0.1", "port": "2"}')
    etcd.put(base + "127.0.0.1:3", b"\xff\xfe")
    registrar.register(instance(9002))
    wait_until(lambda: [i.port for i in resolver.instances("order")] == [9001, 9002])
    warnings = [r.getMessage() for r in caplog.records if "skipping" in r.getMessage()]
    assert len(warnings) == 3  # one warning per bad value


def test_compaction_makes_the_watcher_list_again_and_miss_nothing(etcd_config, etcd, resolver):
    from soa.registry.resolver import PrefixWatch

    connection = EtcdConnection(etcd_config)
    watch = PrefixWatch(connection, etcd_config.prefix, f"{etcd_config.prefix}/services/order/")
    sets = []
    watch.subscribe(lambda s: sets.append({i.port for i in s}))
    try:
        watch.start()
        wait_until(watch.ready.is_set)
        base = f"{etcd_config.prefix}/services/order/127.0.0.1:"
        # Freeze the watcher between listing and watching: simulate a watcher that fell behind.
        watch._greenlet.kill()
        watch._stream and watch._stream.cancel()
        for port in range(9001, 9006):
            etcd.put(f"{base}{port}", Instance("order", "127.0.0.1", port).encode())
        etcd.delete(f"{base}9001")
        revision = etcd.get(f"{base}9002")[1].mod_revision
        etcd.compact(revision + 1)
        relists = watch.relists
        watch.start()  # resumes from the old revision, which is now compacted
        wait_until(lambda: watch.relists > relists and sets[-1] == {9002, 9003, 9004, 9005},
                   message="relisted after compaction")
    finally:
        watch.stop()
        connection.close()


def test_watch_and_keepalive_run_while_other_greenlets_work(etcd_config, registrar, resolver):
    one = instance(9001)
    registrar.register(one)
    wait_until(lambda: resolver.instances("order"))
    busy = {"ticks": 0}

    def worker():
        end = time.monotonic() + etcd_config.lease_ttl * 2
        while time.monotonic() < end:
            busy["ticks"] += 1
            gevent.sleep(0)

    workers = [gevent.spawn(worker) for _ in range(20)]
    other = EtcdRegistrar(etcd_config)
    try:
        gevent.sleep(0.1)
        other.register(instance(9002))  # a change arrives through the watch mid-work
        wait_until(lambda: len(resolver.instances("order")) == 2, timeout=2)
        gevent.joinall(workers)
    finally:
        other.close()
    assert busy["ticks"] > 1000
    # The lease outlived two TTLs of busy greenlets: keepalive ran among them.
    assert len(resolver.instances("order")) == 1 and resolver.instances("order")[0] == one


def test_etcd_restart_reregisters_and_watchers_resume(tmp_path, etcd_prefix):
    from soa.config import EtcdConfig

    server = EtcdProcess(tmp_path / "etcd")
    server.start()
    config = EtcdConfig(endpoints=(server.endpoint,), prefix=etcd_prefix, lease_ttl=2)
    registrar, resolver = EtcdRegistrar(config), EtcdResolver(config)
    try:
        registrar.register(instance(9001))
        wait_until(lambda: len(resolver.instances("order")) == 1)
        server.kill()
        # While etcd is down, the last known set is kept (stale beats empty).
        gevent.sleep(config.lease_ttl + 0.5)
        assert [i.port for i in resolver.instances("order")] == [9001]
        # Start over with an empty data dir: the lease and key are gone for good.
        server = EtcdProcess(tmp_path / "etcd2", client_port=server.client_port)
        server.start()
        connection = EtcdConnection(config)
        try:
            wait_until(lambda: connection.client().get(
                f"{etcd_prefix}/services/order/127.0.0.1:9001")[0] is not None, timeout=15,
                message="registered again")
        finally:
            connection.close()
        registrar.register(instance(9002))
        wait_until(lambda: [i.port for i in resolver.instances("order")] == [9001, 9002],
                   timeout=10, message="watcher resumed")
    finally:
        registrar.close()
        resolver.close()
        server.stop()


def test_cluster_member_loss_fails_over_to_another_endpoint(etcd_cluster, etcd_prefix):
    from soa.config import EtcdConfig

    config = EtcdConfig(endpoints=tuple(etcd_cluster.endpoints), prefix=etcd_prefix,
                        lease_ttl=2)
    registrar, resolver = EtcdRegistrar(config), EtcdResolver(config)
    try:
        registrar.register(instance(9001))
        wait_until(lambda: len(resolver.instances("order")) == 1)
        etcd_cluster.members[0].kill()  # both were talking to the first endpoint
        other = EtcdRegistrar(replace(config, endpoints=tuple(etcd_cluster.endpoints[1:])))
        try:
            other.register(instance(9002))
            wait_until(lambda: len(resolver.instances("order")) == 2, timeout=10,
                       message="watch moved to a live member")
            gevent.sleep(config.lease_ttl * 1.5)  # past the TTL: keepalive must have moved too
            assert len(resolver.instances("order")) == 2
        finally:
            other.close()
    finally:
        registrar.close()
        resolver.close()
