"""Secrets: ``${VAR}`` in soa.yaml, and no password in any log, error, listing or repr."""

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from soa.config import parse_config
from soa.config_env import expand_env
from soa.errors import ConfigError, EtcdAuthError
from soa.registry.instance import Instance
from soa.registry.registrar import EtcdRegistrar
from soa.registry.resolver import EtcdResolver
from soa.testing.poll import wait_until
from soa.testing.secure_etcd import SecureShop

FIXTURES = Path(__file__).parent / "fixtures"


# -- ${VAR} ------------------------------------------------------------------------------------

def test_references_expand_from_the_environment():
    env = {"PW": "s3cret", "HOST": "10.0.0.7", "EMPTY": ""}
    data = {"etcd": {"password": "${PW}", "endpoints": ["${HOST}:2379", "${NOPE:-h2}:2379"],
                     "prefix": "/${EMPTY:-soa}", "user": "$${literal}", "lease_ttl": 10},
            "services": {"a": {"tags": {"zone": "${ZONE:-}"}}}}
    assert expand_env(data, "soa.yaml", env) == {
        "etcd": {"password": "s3cret", "endpoints": ["10.0.0.7:2379", "h2:2379"],
                 "prefix": "/soa", "user": "${literal}", "lease_ttl": 10},
        "services": {"a": {"tags": {"zone": ""}}}}


def test_an_unset_variable_without_default_names_the_key_path_and_the_variable():
    with pytest.raises(ConfigError) as e:
        expand_env({"etcd": {"endpoints": ["a:1", "${ETCD_B}:2379"]}}, "soa.yaml", {})
    assert str(e.value) == ("soa.yaml: etcd.endpoints[1]: environment variable ETCD_B is not set"
                            " (use ${ETCD_B:-default} for a default)")
    with pytest.raises(ConfigError, match=r"^soa.yaml: etcd.user: bad \$\{...\} reference"):
        expand_env({"etcd": {"user": "${not a name}"}}, "soa.yaml", {})


def test_parse_config_expands_before_checking(monkeypatch):
    monkeypatch.setenv("SOA_TEST_TTL_HOST", "etcd.internal")
    monkeypatch.setenv("SOA_TEST_PW", "hunter2-secret")
    config = parse_config("etcd:\n  endpoints: ['${SOA_TEST_TTL_HOST}:2379']\n  user: app\n"
                          "  password: ${SOA_TEST_PW}\n", check_idl=False)
    assert config.etcd.endpoints == ("etcd.internal:2379",)
    assert config.etcd.password == "hunter2-secret"


# -- redaction ---------------------------------------------------------------------------------

def test_repr_of_the_config_hides_every_password(tmp_path):
    (tmp_path / "echo.thrift").write_text((FIXTURES / "echo.thrift").read_text())
    config = parse_config(
        "etcd: {user: app, password: pw-one-secret, root_password: pw-root-secret}\n"
        "services:\n  echo:\n    idl: echo.thrift\n    service: EchoService\n"
        "    handler: echo_handler:EchoHandler\n"
        "    etcd: {user: echo, password: pw-echo-secret}\n", root=tmp_path, check_idl=False)
    text = repr(config) + str(config) + repr(config.etcd_for("echo"))
    assert "secret" not in text
    assert "password=<redacted>" in text and "user='echo'" in text


@pytest.mark.parametrize("value", ["123456", "[a, b]", "''"])
def test_a_bad_password_value_is_not_echoed(value):
    with pytest.raises(ConfigError) as e:
        parse_config(f"etcd: {{user: app, password: {value}}}\n", check_idl=False)
    assert str(e.value).startswith("soa.yaml: etcd.password: expected a non-empty string")
    for part in ("123456", "[a, b]", "['a', 'b']"):
        assert part not in str(e.value)


# -- a full run, grepped -----------------------------------------------------------------------

@pytest.fixture
def shop(tmp_path, monkeypatch):
    shop = SecureShop(tmp_path / "shop", FIXTURES / "echo.thrift",
                      FIXTURES / "echo_handler.py").start()
    for name, value in shop.env.items():
        monkeypatch.setenv(name, value)
    try:
        yield shop
    finally:
        shop.stop()


def test_no_secret_in_any_output_of_a_full_run(shop, tmp_path, caplog):
    caplog.set_level(logging.DEBUG)
    wrong = "wrong-Password-4711"
    outputs = [shop.setup()]
    # `soa serve` with its credentials from the environment, logging at debug
    log_path = tmp_path / "serve.log"
    env = dict(os.environ, **shop.env)
    with open(log_path, "wb") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "soa", "-vv", "--config", str(shop.config_path), "serve",
             "alpha", "--port", "0"], env=env, stdout=log, stderr=subprocess.STDOUT,
            cwd=shop.folder)
    resolver = EtcdResolver(shop.etcd_config("reader"))
    try:
        wait_until(lambda: resolver.instances("alpha"), timeout=15,
                   message="alpha registered")
        outputs += [
            shop.run("-vv", "call", "alpha", "echo", '["hi"]'),
            shop.run("-vv", "registry", "ls"),
            shop.run("registry", "ls", "--json"),
            shop.run("registry", "history"),
            shop.run("etcd", "auth-setup", "--dry-run"),
            shop.run("etcd", "auth-setup"),
            shop.run("-vv", "registry", "ls", env={"SOA_TEST_READER_PASSWORD": wrong}),
            shop.run("-vv", "serve", "beta", "--port", "0",
                     env={"SOA_TEST_BETA_PASSWORD": wrong}),
        ]
        assert [r.returncode for r in outputs] == [0, 0, 0, 0, 0, 0, 0, 1, 1], outputs
        # in-process: a refused registration and its log records
        registrar = EtcdRegistrar(shop.etcd_config("alpha", password=wrong))
        with pytest.raises(EtcdAuthError) as refused:
            registrar.register(Instance(service="alpha", host="127.0.0.1", port=7401))
        registrar.close()
        wrong_reader = EtcdResolver(shop.etcd_config("reader", password=wrong))
        with pytest.raises(EtcdAuthError):
            wrong_reader.instances("alpha")
        wrong_reader.close()
        assert "authentication failed for etcd user 'reader'" in caplog.text  # logged (info)
    finally:
        resolver.close()
        server.terminate()
        server.wait(timeout=15)
    assert server.returncode == 0
    captured = [log_path.read_text(), str(refused.value), repr(refused.value), caplog.text,
                shop.server.log_path.read_text()]
    captured += [r.stdout + r.stderr for r in outputs]
    text = "\n".join(captured)
    assert "registered" in text and '"hi"' in text  # the run did happen
    for secret in [*shop.passwords.values(), wrong]:
        assert secret not in text
