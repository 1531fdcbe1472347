"""``soa call``: results and declared exceptions as JSON, and one clear line for every bad call."""

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from fixtures.client_servers import RawServer

from soa.registry.registrar import EtcdRegistrar
from soa.cli.main import main
from soa.testing.processes import write_config

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture
def shop(tmp_path, etcd_config):
    shutil.copy(FIXTURES / "client_echo.thrift", tmp_path / "client_echo.thrift")
    path = write_config(tmp_path, etcd_endpoints=list(etcd_config.endpoints),
                        prefix=etcd_config.prefix,
                        services={"echo": {"idl": "client_echo.thrift", "service": "EchoService",
                                           "handler": "client_handler:EchoHandler"}},
                        client={"timeout_ms": 2000})
    server = RawServer().start()
    registrar = EtcdRegistrar(etcd_config)
    registrar.register(server.instance())
    server.config_path = path
    try:
        yield server
    finally:
        registrar.close()
        server.stop()


def soa(capsys, *args):
    """Run ``soa ARGS`` in-process; returns (exit code, stdout, stderr)."""
    with pytest.raises(SystemExit) as e:
        main(list(args))
    out, err = capsys.readouterr()
    return e.value.code, out, err


def one_line(err):
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


def test_call_through_discovery(shop, capsys):
    config = str(shop.config_path)
    code, out, _ = soa(capsys, "--config", config, "call", "echo", "echo", '{"msg": "hi"}')
    assert (code, json.loads(out)) == (0, "hi")
    code, out, _ = soa(capsys, "--config", config, "call", "echo", "echo", '["yo"]')
    assert (code, json.loads(out)) == (0, "yo")
    code, out, _ = soa(capsys, "--config", config, "call", "echo", "ping")
    assert (code, json.loads(out)) == (0, None)
    code, out, _ = soa(capsys, "--config", config, "call", "echo", "whoami")
    assert json.loads(out) == shop.port


def test_structs_enums_binary_maps_sets_round_trip(shop, capsys):
    order = {"id": 2**62, "lines": [{"sku": "a", "quantity": 2, "color": "GREEN"},
                                    {"sku": "b", "quantity": 1, "color": 1}],
             "prices": {"a": 1.5, "b": 2}, "tags": ["y", "x"], "blob": "AP8=", "gift": True}
    code, out, _ = soa(capsys, "--config", str(shop.config_path), "call", "echo", "place",
                       json.dumps({"order": order, "reason": ""}))
    assert code == 0
    assert json.loads(out) == {
        "id": 2**62, "lines": [{"sku": "a", "quantity": 2, "color": "GREEN"},
                               {"sku": "b", "quantity": 1, "color": "RED"}],
        "prices": {"a": 1.5, "b": 2.0}, "tags": ["x", "y"], "blob": "AP8=", "gift": True}


def test_declared_exception_is_printed_as_json_with_exit_1(shop, capsys):
    code, out, _ = soa(capsys, "--config", str(shop.config_path), "call", "echo", "place",
                       '{"order": {"id": 1}, "reason": "sold out"}')
    assert code == 1
    assert json.loads(out) == {"exception": "Rejected",
                               "fields": {"reason": "sold out", "code": 7}}


def test_address_needs_no_etcd(shop, capsys, tmp_path):
    broken_etcd = write_config(tmp_path / "other.yaml", etcd_endpoints=["127.0.0.1:1"],
                               prefix="/nowhere",
                               services={"echo": {"idl": "client_echo.thrift",
                                                  "service": "EchoService",
                                                  "handler": "client_handler:EchoHandler"}})
    code, out, _ = soa(capsys, "--config", str(broken_etcd), "call", "echo", "whoami",
                       "--address", shop.address)
    assert (code, json.loads(out)) == (0, shop.port)


def test_idl_option_without_soa_yaml(shop, capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, _ = soa(capsys, "call", "anything", "echo", '["x"]', "--address", shop.address,
                       "--idl", str(FIXTURES / "client_echo.thrift"))
    assert (code, json.loads(out)) == (0, "x")


@pytest.mark.parametrize(("args", "expected"), [
    (["echo", "echo", "{not json"], "invalid JSON arguments: Expecting property name"),
    (["echo", "nope"], "echo has no method 'nope' (methods: ping, echo"),
    (["echo", "echo", '{"message": "x"}'], "echo has no argument 'message'"),
    (["echo", "echo", '["a", "b"]'], "echo takes 1 argument(s) (msg), got 2"),
    (["echo", "echo", '{"msg": 5}'], "msg: expected a string, got 5"),
    (["echo", "place", '{"order": {"id": 1, "lines": [{"sku": "a", "quantity": "x"}]}}'],
     'order.lines[0].quantity: expected an integer, got "x"'),
    (["echo", "place", '{"order": {"lines": []}}'], "order.id: missing required field of Order"),
    (["echo", "place", '{"order": {"id": 1, "lines": [{"sku": "a"}]}}'],
     "order.lines[0].quantity: missing required field of Line"),
    (["echo", "place", '{"order": {"id": 1, "lines": [{"sku": "a", "quantity": 1, '
                       '"color": "BLUE"}]}}'],
     "order.lines[0].color: expected one of Color's values (RED, GREEN), got \"BLUE\""),
    (["echo", "place", '{"order": {"id": 1, "blob": "***"}}'], "order.blob: expected base64"),
    (["echo", "place", '{"order": {"id": 1, "extra": 1}}'], "order.extra: Order has no field"),
    (["echo", "slow", '{"ms": 99999999999}'], "ms: 99999999999 is out of range for i32"),
    (["echo", "crash"], "echo.crash: the server failed: RuntimeError('boom')"),
    (["nope", "ping"], "unknown service 'nope' (services: echo)"),
])
def test_bad_calls_get_one_line_and_a_nonzero_exit(shop, capsys, args, expected):
    code, out, err = soa(capsys, "--config", str(shop.config_path), "call", *args)
    assert code != 0
    assert expected in one_line(err)
    assert out == ""


def test_no_instances_and_connection_refused(shop, capsys, tmp_path, etcd_config):
    empty = write_config(tmp_path / "empty.yaml", etcd_endpoints=list(etcd_config.endpoints),
                         prefix=etcd_config.prefix + "-empty",
                         services={"echo": {"idl": "client_echo.thrift", "service": "EchoService",
                                            "handler": "client_handler:EchoHandler"}})
    code, _, err = soa(capsys, "--config", str(empty), "call", "echo", "ping")
    assert code == 1
    assert "echo: no instances registered" in one_line(err)
    shop.stop()
    code, _, err = soa(capsys, "--config", str(empty), "call", "echo", "ping", "--address",
                       shop.address, "--timeout", "500")
    assert code == 1
    assert "connect failed" in one_line(err)


def test_help_ends_with_examples():
    result = subprocess.run([sys.executable, "-m", "soa", "call", "--help"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0
    assert "Examples:" in result.stdout
    assert result.stdout.rstrip().splitlines()[-1].strip().startswith("soa call")


def test_real_process_error_is_one_line(shop):
    result = subprocess.run([sys.executable, "-m", "soa", "--config", str(shop.config_path),
                             "call", "echo", "place", '{"order": {"id": "x"}}'],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert result.stderr.strip() == 'error: order.id: expected an integer, got "x"'


def test_with_etcd_down_one_line_names_the_endpoint_and_the_cause(shop):
    import subprocess
    import sys

    from soa.etcd_server import free_port

    port = free_port()
    done = subprocess.run([sys.executable, "-m", "soa", "--config", str(shop.config_path),
                           "--etcd", f"127.0.0.1:{port}", "call", "echo", "ping"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith(f"error: echo: etcd 127.0.0.1:{port} did not answer: UNAVAILABLE")


def test_a_bad_etcd_flag_is_named_as_the_flag(capsys):
    code, _, err = soa(capsys, "--etcd", "nonsense", "registry", "ls")
    assert code == 2
    assert one_line(err) == 'error: --etcd: endpoints[0]: expected host:port, got "nonsense"'
