"""etcd over TLS with client certificates: a real etcd with --client-cert-auth, a CA and
certificates made for the test (soa.testing.certs)."""

import json
from pathlib import Path

import pytest

from soa.config import TlsFiles, load_config
from soa.errors import DiscoveryError
from soa.etcd_server import ServerTls
from soa.registry.etcd import EtcdConnection
from soa.registry.inspect import list_instances
from soa.registry.instance import Instance
from soa.registry.registrar import EtcdRegistrar
from soa.registry.resolver import EtcdResolver
from soa.testing.certs import Authority
from soa.testing.poll import wait_until
from soa.testing.secure_etcd import SecureShop

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="module")
def tls_shop(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tls")
    ca = Authority(folder / "pki", "etcd-ca")
    server = ca.issue("etcd-server")
    client = ca.issue("soa-client", hosts=(), client=True)
    shop = SecureShop(
        folder, FIXTURES / "echo.thrift", FIXTURES / "echo_handler.py",
        tls=ServerTls(server.cert, server.key, ca.cert, client_cert_auth=True,
                      health_cert=client.cert, health_key=client.key),
        client_tls={"ca": "pki/etcd-ca.crt", "cert": "pki/soa-client.crt",
                    "key": "pki/soa-client.key"},
    )
    shop.ca, shop.client = ca, client
    shop.start()
    try:
        yield shop
    finally:
        shop.stop()


def tls_config(shop, **tls):
    files = {"ca": shop.ca.cert, "cert": shop.client.cert, "key": shop.client.key, **tls}
    return shop.etcd_config(tls=TlsFiles(**files))


def test_registry_works_over_tls_with_a_client_certificate(tls_shop, tmp_path):
    config = tls_config(tls_shop)
    registrar, resolver = EtcdRegistrar(config), EtcdResolver(config)
    try:
        registrar.register(Instance(service="alpha", host="127.0.0.1", port=7101))
        wait_until(lambda: [i.port for i in resolver.instances("alpha")] == [7101], timeout=5,
                   message="the resolver sees the instance over TLS")
        result = tls_shop.run("registry", "ls", "--json", config=tls_shop.write_config(
            "tls.yaml", user=None, password=None))
        assert result.returncode == 0, result.stderr
        assert [r["port"] for r in json.loads(result.stdout)] == [7101]
    finally:
        registrar.close()
        resolver.close()


def test_config_resolves_tls_paths_against_the_config_folder(tls_shop, monkeypatch):
    for name, value in tls_shop.env.items():
        monkeypatch.setenv(name, value)
    config = load_config(str(tls_shop.write_config("tls.yaml", user=None, password=None)))
    assert config.etcd.tls == TlsFiles(str(Path(tls_shop.ca.cert).resolve()),
                                       str(Path(tls_shop.client.cert).resolve()),
                                       str(Path(tls_shop.client.key).resolve()))


@pytest.mark.parametrize("case", ["no tls", "no client certificate", "wrong CA"])
def test_without_the_right_tls_settings_one_clear_line(tls_shop, tmp_path, case):
    tls = None
    if case == "no client certificate":
        tls = {"ca": "pki/etcd-ca.crt"}
    elif case == "wrong CA":
        other = Authority(tmp_path / "other", "other")
        tls = {"ca": other.cert, "cert": "pki/soa-client.crt", "key": "pki/soa-client.key"}
    config = tls_shop.write_config(f"{case.replace(' ', '-')}.yaml", user=None, password=None,
                                   tls=tls)
    result = tls_shop.run("registry", "ls", config=config)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith(f"error: etcd {tls_shop.endpoint}: UNAVAILABLE"), lines[0]
    assert "Traceback" not in result.stderr


def test_in_process_reads_without_tls_fail_as_discovery_errors(tls_shop):
    connection = EtcdConnection(tls_shop.etcd_config())
    try:
        with pytest.raises(DiscoveryError, match=f"etcd {tls_shop.endpoint}: UNAVAILABLE"):
            list_instances(connection, "/soa")
    finally:
        connection.close()
