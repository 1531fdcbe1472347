"""pytest plugin: gevent at process entry, and fixtures backed by real etcd servers.

- ``etcd_server``: one etcd per test session (per xdist worker), on free ports.
- ``etcd_config``: an ``EtcdConfig`` for that server with a key prefix unique to the test.
- ``etcd``: an etcd3 client for the same server (for assertions on raw keys).
- ``etcd_cluster``: a fresh 3-member cluster for the test that asks for it.
"""

from soa import entry

entry.init()

import uuid  # noqa: E402

import pytest  # noqa: E402

from soa.config import EtcdConfig  # noqa: E402
from soa.etcd_server import EtcdCluster, EtcdProcess  # noqa: E402


@pytest.fixture(scope="session")
def etcd_server(tmp_path_factory):
    server = EtcdProcess(tmp_path_factory.mktemp("etcd") / "data")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def etcd_prefix():
    return f"/soa-test/{uuid.uuid4().hex[:12]}"


@pytest.fixture
def etcd_config(etcd_server, etcd_prefix):
    return EtcdConfig(endpoints=(etcd_server.endpoint,), prefix=etcd_prefix, lease_ttl=2,
                      dial_timeout=2.0)


@pytest.fixture
def etcd(etcd_server):
    from soa.registry.etcd import EtcdConnection

    connection = EtcdConnection(EtcdConfig(endpoints=(etcd_server.endpoint,)))
    yield connection.client()
    connection.close()


@pytest.fixture
def etcd_cluster(tmp_path):
    cluster = EtcdCluster(tmp_path / "cluster")
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.stop()
