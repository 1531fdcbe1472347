"""Appending a service entry to soa.yaml as text: comments, order and other entries survive."""

import pytest
import yaml

from soa.scaffolding.yaml_append import add_service, append_service, plan_append, yaml_scalar
from soa.config import parse_config
from soa.errors import ConfigError

IDL = "service HelloService {\n  string ping(),\n}\n"
FIELDS = {"idl": "idl/hello.thrift", "service": "HelloService",
          "handler": "services.hello.handler:HelloHandler", "port": 0}

EXISTING = """\
# The shop's configuration.
etcd:
  endpoints: [127.0.0.1:2379]   # local etcd
  prefix: /shop

services:
    # the first service
    catalog:
        idl: idl/hello.thrift   # shares the IDL in this test
        service: HelloService
        handler: services.catalog.handler:CatalogHandler

        port: 0

# client defaults, after the services
client:
  timeout_ms: 500
"""


@pytest.fixture
def project(tmp_path):
    (tmp_path / "idl").mkdir()
    (tmp_path / "idl" / "hello.thrift").write_text(IDL)
    return tmp_path


def test_appends_inside_services_keeping_comments_and_indentation(project):
    path = project / "soa.yaml"
    path.write_text(EXISTING)
    service = append_service(path, "hello", FIELDS)
    text = path.read_text()
    for line in EXISTING.splitlines():
        assert line in text.splitlines()  # every original line, comments included, is still there
    assert "    hello:\n        idl: idl/hello.thrift\n" in text  # the file's own indentation
    assert text.index("hello:") < text.index("# client defaults")
    config = parse_config(text, root=project)
    assert list(config.services) == ["catalog", "hello"]
    assert config.client.timeout_ms == 500 and config.etcd.prefix == "/shop"
    assert service.handler == FIELDS["handler"] and service.port == 0
    assert service.idl == project / "idl" / "hello.thrift"


def test_creates_the_file_when_missing(project):
    path = project / "soa.yaml"
    append_service(path, "hello", FIELDS)
    text = path.read_text()
    assert text.startswith("#")
    assert yaml.safe_load(text)["services"]["hello"] == FIELDS


def test_file_without_services_gets_a_block_at_the_end(project):
    path = project / "soa.yaml"
    path.write_text("# only etcd here\netcd:\n  prefix: /x")  # no trailing newline
    append_service(path, "hello", FIELDS)
    text = path.read_text()
    assert text.startswith("# only etcd here\netcd:\n  prefix: /x\n")
    assert yaml.safe_load(text)["services"]["hello"]["service"] == "HelloService"


@pytest.mark.parametrize("line", ["services: {}", "services:", "services: ~  # none yet"])
def test_empty_services_mapping(project, line):
    text = add_service(f"{line}\nclient:\n  retries: 1\n", "hello", FIELDS)
    data = yaml.safe_load(text)
    assert data["services"] == {"hello": FIELDS} and data["client"] == {"retries": 1}


def test_existing_entry_is_refused_then_replaced_in_place(project):
    path = project / "soa.yaml"
    path.write_text(EXISTING)
    with pytest.raises(ConfigError, match="already exists"):
        plan_append(path, "catalog", FIELDS)
    assert path.read_text() == EXISTING
    append_service(path, "catalog", FIELDS, replace=True)
    text = path.read_text()
    assert "CatalogHandler" not in text and "# the first service" in text
    assert "# client defaults" in text
    assert parse_config(text, root=project).services["catalog"].handler == FIELDS["handler"]


def test_flow_style_services_are_left_alone(project):
    path = project / "soa.yaml"
    original = "services: {catalog: {idl: idl/hello.thrift, handler: 'a.b:C'}}\n"
    path.write_text(original)
    with pytest.raises(ConfigError, match="flow style"):
        append_service(path, "hello", FIELDS)
    assert path.read_text() == original


def test_a_broken_file_is_not_touched(project):
    path = project / "soa.yaml"
    original = "services:\n  catalog: [oops\n"
    path.write_text(original)
    with pytest.raises(ConfigError):
        append_service(path, "hello", FIELDS)
    assert path.read_text() == original


def test_result_is_validated_by_parse_config(project):
    path = project / "soa.yaml"
    with pytest.raises(ConfigError, match="would not parse"):
        append_service(path, "hello", {**FIELDS, "port": 70000})
    assert not path.exists()


@pytest.mark.parametrize("value", ["idl/a b.thrift", "yes", "1.5", "#x", "a: b", "ok/path:C"])
def test_scalars_round_trip(value):
    assert yaml.safe_load(f"k: {yaml_scalar(value)}\n") == {"k": value}
