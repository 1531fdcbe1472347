"""etcd authentication against a real etcd with auth enabled by ``soa etcd auth-setup``.

One etcd for the module: auth-setup runs once in the fixture (its first output is kept), every
test then uses the accounts it made. Tokens are per-call grpc metadata (registry.etcd_auth), so
all of this works on a plaintext etcd, where etcd3 0.12's own call credentials are refused.
"""

import json
from pathlib import Path

import grpc
import pytest
from etcd3 import etcdrpc

from soa.errors import EtcdAuthError
from soa.registry.etcd import EtcdConnection
from soa.registry.inspect import list_instances, remove
from soa.registry.instance import Instance
from soa.registry.registrar import EtcdRegistrar
from soa.registry.resolver import EtcdResolver
from soa.testing.poll import wait_until
from soa.testing.processes import ServiceProcess
from soa.testing.secure_etcd import SecureShop

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    shop = SecureShop(tmp_path_factory.mktemp("auth"), FIXTURES / "echo.thrift",
                      FIXTURES / "echo_handler.py").start()
    try:
        shop.first_setup = shop.setup()
        yield shop
    finally:
        shop.stop()


@pytest.fixture
def env(shop, monkeypatch):
    """The passwords in this process's environment too (ServiceProcess reads soa.yaml)."""
    for name, value in shop.env.items():
        monkeypatch.setenv(name, value)
    return shop.env


def instance(service, port):
    return Instance(service=service, host="127.0.0.1", port=port)


@pytest.fixture
def closing():
    things = []
    yield things.append
    for thing in reversed(things):
        thing.close()


def test_auth_setup_creates_roles_users_and_enables_auth_without_printing_passwords(shop):
    out = shop.first_setup.stdout
    for line in ("created role soa:/soa:service:alpha", "created role soa:/soa:service:beta",
                 "created role soa:/soa:reader", "created user alpha", "created user reader",
                 "created user root", "granted role root to user root",
                 "granted role soa:/soa:service:alpha read+write on /soa/services/alpha/*",
                 "granted role soa:/soa:reader read on /soa/*", "enabled authentication"):
        assert line in out
    for password in shop.passwords.values():
        assert password not in out + shop.first_setup.stderr
    # auth is on: no credentials, no answer
    ch = grpc.insecure_channel(shop.endpoint)
    with pytest.raises(grpc.RpcError) as refused:
        etcdrpc.KVStub(ch).Range(etcdrpc.RangeRequest(key=b"/soa/"), 2)
    ch.close()
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_auth_setup_twice_changes_nothing(shop):
    again = shop.setup()
    assert again.stdout.strip().splitlines() == [
        f"auth-setup: nothing to change on {shop.endpoint}"]


def test_registry_ls_works_with_credentials_on_a_plaintext_etcd(shop, env, closing):
    """Regression: etcd3 0.12 sent the token as call credentials, which grpc refuses on an
    insecure channel (UNAUTHENTICATED: Established channel does not have a sufficient security
    level...)."""
    registrar = EtcdRegistrar(shop.etcd_config("alpha"))
    closing(registrar)
    registrar.register(instance("alpha", 7001))
    result = shop.run("registry", "ls", "--json")
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert [(r["service"], r["port"]) for r in rows] == [("alpha", 7001)]
    assert rows[0]["lease_ttl_left"] > 0
    assert result.stderr == ""


def test_service_credentials_cannot_register_as_or_delete_another_service(shop, closing):
    beta = EtcdRegistrar(shop.etcd_config("beta"))
    closing(beta)
    beta.register(instance("beta", 7002))
    alpha = EtcdRegistrar(shop.etcd_config("alpha"))
    closing(alpha)
    with pytest.raises(EtcdAuthError) as refused:
        alpha.register(instance("beta", 7003), timeout=5)
    assert str(refused.value) == (f"etcd {shop.endpoint}: permission denied: etcd user 'alpha'"
                                  " may not write /soa/services/beta/127.0.0.1:7003")
    connection = EtcdConnection(shop.etcd_config("alpha"))
    closing(connection)
    with pytest.raises(EtcdAuthError, match="user 'alpha' may not delete /soa/services/beta/"):
        remove(connection, "/soa", "beta", "127.0.0.1:7002")
    rows = list_instances(connection, "/soa", "beta")  # alpha may read, and beta is still there
    assert [r.instance.port for r in rows] == [7002]


def test_cli_refuses_deleting_another_services_instance_in_one_line(shop, closing):
    beta = EtcdRegistrar(shop.etcd_config("beta"))
    closing(beta)
    beta.register(instance("beta", 7004))
    result = shop.run("registry", "rm", "beta", "127.0.0.1:7004", "--force",
                      env={"SOA_ETCD_USER": "alpha", "SOA_ETCD_PASSWORD": shop.passwords["alpha"]})
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"error: etcd {shop.endpoint}: permission denied: etcd user 'alpha' may not delete"
        " /soa/services/beta/127.0.0.1:7004"]


def test_read_only_client_discovers_but_cannot_write(shop, closing):
    beta = EtcdRegistrar(shop.etcd_config("beta"))
    closing(beta)
    beta.register(instance("beta", 7005))
    resolver = EtcdResolver(shop.etcd_config("reader"))
    closing(resolver)
    wait_until(lambda: 7005 in [i.port for i in resolver.instances("beta")], timeout=5,
               message="the reader sees beta")
    reader = EtcdRegistrar(shop.etcd_config("reader"))
    closing(reader)
    with pytest.raises(EtcdAuthError, match="etcd user 'reader' may not write /soa/services/"):
        reader.register(instance("beta", 7006), timeout=5)
    result = shop.run("registry", "rm", "beta", "127.0.0.1:7005", "--force")  # as the reader
    assert result.returncode == 1
    assert "permission denied: etcd user 'reader' may not delete" in result.stderr


@pytest.mark.parametrize("env_change", [
    {"SOA_TEST_READER_PASSWORD": "not-the-password"},
    {"SOA_ETCD_USER": "nobody", "SOA_ETCD_PASSWORD": "not-the-password"},
])
@pytest.mark.parametrize("command", [("registry", "ls"), ("registry", "watch"),
                                     ("call", "alpha", "echo", '["x"]')])
def test_wrong_credentials_get_one_clear_line(shop, env_change, command):
    result = shop.run(*command, env=env_change)
    assert result.returncode == 1
    user = env_change.get("SOA_ETCD_USER", "reader")
    assert result.stderr.strip().splitlines() == [
        f"error: etcd {shop.endpoint}: authentication failed for etcd user {user!r}: wrong user"
        " name or password"]
    assert "not-the-password" not in result.stdout + result.stderr


def test_no_credentials_against_an_auth_etcd_get_one_clear_line(shop):
    config = shop.write_config("noauth.yaml", user=None, password=None)
    result = shop.run("registry", "ls", config=config)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: etcd {shop.endpoint} refused to read")
    assert "set etcd.user and etcd.password" in lines[0]


def test_serve_with_refused_credentials_exits_1_instead_of_serving_unregistered(shop, env):
    # alpha's server configured with beta's account: authenticated, but may not write alpha/
    swapped = shop.write_config("swapped.yaml")
    text = swapped.read_text().replace("user: alpha", "user: beta").replace(
        "SOA_TEST_ALPHA_PASSWORD", "SOA_TEST_BETA_PASSWORD")
    swapped.write_text(text)
    wrong = {"SOA_TEST_ALPHA_PASSWORD": "wrong"}
    for config, env_change, workers, expected in (
        (swapped, {}, "1",
         "permission denied: etcd user 'beta' may not write /soa/services/alpha/"),
        (shop.config_path, wrong, "1", "authentication failed for etcd user 'alpha'"),
        (shop.config_path, wrong, "2", "authentication failed for etcd user 'alpha'"),  # pre-fork
    ):
        result = shop.run("serve", "alpha", "--port", "0", "--workers", workers, config=config,
                          env=env_change, timeout=20)
        assert result.returncode == 1, result.stderr
        errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
        assert len(errors) == 1 and expected in errors[0], result.stderr
        assert "Traceback" not in result.stderr


def test_serve_registers_with_its_own_credentials_from_the_environment(shop, env):
    with ServiceProcess(shop.config_path, "alpha").start() as server:
        assert server.instance.service == "alpha"
        result = shop.run("call", "alpha", "echo", '["hi"]')
        assert result.returncode == 0, result.stderr
        assert json.loads(result.stdout) == "hi"
    assert server.returncode == 0


def test_a_refused_token_is_replaced_and_the_call_retried(shop, closing):
    """etcd drops a user's tokens when its password is set (as it does when a simple token idles
    past --auth-token-ttl, or a JWT expires): the next call authenticates again."""
    connection = EtcdConnection(shop.etcd_config("reader"))
    closing(connection)
    client = connection.client()
    connection.range_prefix(client, "/soa/services/")
    assert client.auth.logins == 1
    old = client.auth.token()
    root = EtcdConnection(shop.etcd_config("root"))
    closing(root)
    root.client().auth_stub.UserChangePassword(etcdrpc.AuthUserChangePasswordRequest(
        name="reader", password=shop.passwords["reader"]), 2)
    with pytest.raises(grpc.RpcError) as stale:  # the old token is refused now
        etcdrpc.KVStub(client.auth.raw_channel).Range(
            etcdrpc.RangeRequest(key=b"/soa/"), 2, metadata=(("token", old),))
    assert stale.value.code() == grpc.StatusCode.UNAUTHENTICATED
    connection.range_prefix(client, "/soa/services/")
    assert client.auth.logins == 2 and client.auth.token() != old


def test_credentials_against_an_etcd_without_auth_just_work(etcd_config, closing):
    """`soa up` starts its own etcd with auth off: a soa.yaml with credentials still works."""
    from dataclasses import replace

    config = replace(etcd_config, user="someone", password="anything")
    registrar, resolver = EtcdRegistrar(config), EtcdResolver(config)
    closing(registrar)
    closing(resolver)
    registrar.register(instance("alpha", 7501))
    wait_until(lambda: [i.port for i in resolver.instances("alpha")] == [7501], timeout=5,
               message="registered and discovered with auth off")
