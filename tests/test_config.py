"""soa.yaml: parsed into frozen dataclasses; every bad value is one line naming file and key."""

import subprocess
import sys
from pathlib import Path

import pytest

from soa.config import load_config, parse_config
from soa.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent
IDL = ROOT / "idl" / "catalog.thrift"

GOOD = f"""
etcd:
  endpoints: [127.0.0.1:2379, "http://127.0.0.1:22379"]
  prefix: /shop
  lease_ttl: 5
client:
  balancer: least_inflight
  timeout_ms: 500
services:
  catalog:
    idl: {IDL}
    service: CatalogService
    handler: services.catalog.handler:CatalogHandler
    port: 7001
    protocol: compact
    transport: framed
    tags: {{zone: a}}
"""


def test_good_config_parses_into_frozen_dataclasses(tmp_path):
    config = parse_config(GOOD, source="soa.yaml", root=tmp_path)
    assert config.etcd.endpoints == ("127.0.0.1:2379", "127.0.0.1:22379")
    assert config.etcd.prefix == "/shop" and config.etcd.lease_ttl == 5
    assert config.client.balancer == "least_inflight" and config.client.timeout_ms == 500
    catalog = config.service("catalog")
    assert (catalog.port, catalog.protocol, catalog.transport) == (7001, "compact", "framed")
    assert dict(catalog.tags) == {"zone": "a"} and catalog.weight == 100
    with pytest.raises(AttributeError):
        catalog.port = 1  # frozen


@pytest.mark.parametrize(
    "change, message",
    [
        (("port: 7001", 'port: "abc"'),
         'soa.yaml: services.catalog.port: expected an integer 0-65535, got "abc"'),
        (("port: 7001", "port: 70000"),
         "soa.yaml: services.catalog.port: expected an integer 0-65535, got 70000"),
        (("lease_ttl: 5", "lease_ttl: 1"),
         "soa.yaml: etcd.lease_ttl: expected an integer 2-3600, got 1"),
        (("protocol: compact", "protocol: json"),
         'soa.yaml: services.catalog.protocol: expected one of binary | compact, got "json"'),
        (("balancer: least_inflight", "balancer: random"),
         "soa.yaml: client.balancer: expected one of round_robin | weighted_round_robin"),
        (("tags: {zone: a}", "tagz: {zone: a}"), "soa.yaml: services.catalog.tagz: unknown key"),
        (("prefix: /shop", "prefix: shop"),
         'soa.yaml: etcd.prefix: expected a path like /soa, got "shop"'),
        (("endpoints: [127.0.0.1:2379,", "endpoints: [nohost,"),
         'soa.yaml: etcd.endpoints[0]: expected host:port, got "nohost"'),
        ((f"idl: {IDL}", "idl: missing.thrift"),
         "soa.yaml: services.catalog.idl: IDL file not found: missing.thrift"),
        (("service: CatalogService", "service: NoSuchService"),
         "soa.yaml: services.catalog.service: IDL"),
        (("handler: services.catalog.handler:CatalogHandler", "handler: not a path"),
         'soa.yaml: services.catalog.handler: expected module.path:ClassName, got "not a path"'),
        (("port: 7001", "port: 7001\n    spin_us: -5"),
         "soa.yaml: services.catalog.spin_us: expected an integer 0-10000, got -5"),
        (("timeout_ms: 500", "timeout_ms: [1]"),
         "soa.yaml: client.timeout_ms: expected an integer 1-3600000, got [1]"),
    ],
)
def test_bad_values_give_one_line_naming_file_and_key(tmp_path, change, message):
    text = GOOD.replace(*change)
    assert text != GOOD
    with pytest.raises(ConfigError) as info:
        parse_config(text, source="soa.yaml", root=tmp_path)
    assert str(info.value).startswith(message)
    assert "\n" not in str(info.value)


def test_invalid_yaml_and_non_mapping(tmp_path):
    with pytest.raises(ConfigError, match=r"^soa.yaml: line 2: invalid YAML"):
        parse_config("a: b\n  c: [d\n", source="soa.yaml")
    with pytest.raises(ConfigError, match=r"^soa.yaml: expected a mapping, got \[1, 2\]"):
        parse_config("[1, 2]", source="soa.yaml")


def test_idl_that_does_not_load_names_file_and_line(tmp_path):
    bad = tmp_path / "bad.thrift"
    bad.write_text("service S {\n  void f(1: nosuchtype x)\n}\n")
    text = GOOD.replace(f"idl: {IDL}", f"idl: {bad}")
    with pytest.raises(ConfigError, match=r"services.catalog.idl: .*nosuchtype"):
        parse_config(text, source="soa.yaml", root=tmp_path)


def test_environment_and_explicit_overrides(tmp_path, monkeypatch):
    path = tmp_path / "shop.yaml"
    path.write_text(GOOD)
    monkeypatch.setenv("SOA_CONFIG", str(path))
    monkeypatch.setenv("SOA_ETCD_ENDPOINTS", "10.0.0.1:2379,10.0.0.2:2379")
    config = load_config()
    assert config.etcd.prefix == "/shop"
    assert config.etcd.endpoints == ("10.0.0.1:2379", "10.0.0.2:2379")
    config = load_config(etcd_endpoints="127.0.0.9:1234")
    assert config.etcd.endpoints == ("127.0.0.9:1234",)
    monkeypatch.setenv("SOA_ETCD_ENDPOINTS", "garbage")
    with pytest.raises(ConfigError, match=r"^SOA_ETCD_ENDPOINTS: endpoints\[0\]"):
        load_config()


def test_missing_explicit_file_and_defaults(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("SOA_CONFIG", raising=False)
    monkeypatch.delenv("SOA_ETCD_ENDPOINTS", raising=False)
    assert load_config().etcd.endpoints == ("127.0.0.1:2379",)
    with pytest.raises(ConfigError, match=r"^nope.yaml: no such file"):
        load_config("nope.yaml")


def test_cli_prints_one_line_and_exits_2_on_bad_config(tmp_path):
    path = tmp_path / "soa.yaml"
    path.write_text(GOOD.replace("port: 7001", 'port: "abc"'))
    result = subprocess.run(
        [sys.executable, "-m", "soa", "--config", str(path), "registry", "ls"],
        capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f'error: {path}: services.catalog.port: expected an integer 0-65535, got "abc"'
    ]
    assert "Traceback" not in result.stderr + result.stdout
