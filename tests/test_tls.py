"""TLS and mTLS on calls: real certificates, a real etcd, real sockets; every failure is one line
on the client and the server keeps serving the others."""

import shutil
import subprocess
import sys
import time
from dataclasses import replace

import pytest
from thriftpy2.transport import TTransportException

import soa
from fixtures.server_support import HERE, client, echo_idl
from fixtures.tls_support import make_pki
from soa.config import load_config
from soa.clients.connection import ConnectError, Connection
from soa.errors import SoaError, TransportError
from soa.registry.instance import instance_key, parse_instance
from soa.testing import wait_until
from soa.testing.processes import write_config
from soa.tls import ClientTls


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_pki(tmp_path_factory.mktemp("pki"))


def tls_config(tmp_path, etcd_config, server_tls, client_tls=None):
    for name in ("echo.thrift", "echo_handler.py"):
        shutil.copy(HERE / name, tmp_path / name)
    service = {"idl": "echo.thrift", "service": "EchoService",
               "handler": "echo_handler:EchoHandler", "port": 0, "grace_period": 0}
    if server_tls:
        service["tls"] = server_tls
    path = write_config(tmp_path, etcd_endpoints=list(etcd_config.endpoints),
                        prefix=etcd_config.prefix, services={"echo": service},
                        client={"tls": client_tls, "timeout_ms": 2000, "retries": 0}
                        if client_tls else {"timeout_ms": 2000, "retries": 0})
    return path


@pytest.fixture
def serve(tmp_path, etcd_config):
    servers = []

    def start(server_tls, client_tls=None):
        path = tls_config(tmp_path, etcd_config, server_tls, client_tls)
        config = load_config(str(path))
        server = soa.serve("echo", config, block=False)
        servers.append(server)
        return server, config, path

    yield start
    for server in servers:
        server.stop(grace=0)


def one_line(error):
    text = str(error)
    assert "\n" not in text and "Traceback" not in text, text
    return text


def calls_with(config, tls):
    c = soa.client("echo", replace(config, client=replace(config.client, tls=tls)))
    try:
        return c.echo("hi")
    finally:
        c.close()


def test_tls_call_through_the_registry(serve, pki, etcd, etcd_config):
    cert, key = pki["server"]
    server, config, _ = serve({"cert": cert, "key": key}, {"ca": pki["ca"]})
    value = parse_instance(etcd.get(instance_key(etcd_config.prefix, server.instance))[0])
    assert value.tls is True
    c = soa.client("echo", config)
    try:
        assert [c.echo(str(i)) for i in range(20)] == [str(i) for i in range(20)]
        assert c.echo("x" * 200_000) == "x" * 200_000
    finally:
        c.close()


def test_failures_are_one_line_and_the_server_keeps_serving(serve, pki, tmp_path, capfd):
    cert, key = pki["server"]
    server, config, _ = serve({"cert": cert, "key": key}, {"ca": pki["ca"]})
    good = soa.client("echo", config)
    try:
        assert good.echo("before") == "before"
        # a client that trusts another CA
        with pytest.raises(ConnectError) as info:
            calls_with(config, ClientTls(ca=pki["other_ca"]))
        assert "certificate verify failed" in one_line(info.value)
        # a plaintext client: refused at the handshake; the server logs one line
        plain = client(echo_idl(tmp_path), server.address[1], timeout=2000)
        with pytest.raises((TTransportException, OSError)):
            plain.echo("plaintext")
        assert good.echo("after") == "after"
        assert "Traceback" not in capfd.readouterr().err
    finally:
        good.close()


@pytest.mark.parametrize("which,reason", [
    ("expired", "certificate has expired"),
    ("wrong_host", "IP address mismatch"),
])
def test_a_bad_server_certificate_is_refused(serve, pki, which, reason):
    cert, key = pki[which]
    _, config, _ = serve({"cert": cert, "key": key}, {"ca": pki["ca"]})
    with pytest.raises(ConnectError) as info:
        calls_with(config, ClientTls(ca=pki["ca"]))
    assert reason in one_line(info.value)


def test_mtls_refuses_a_client_without_a_valid_certificate(serve, pki):
    cert, key = pki["server"]
    server, config, _ = serve({"cert": cert, "key": key, "ca": pki["ca"],
                               "require_client_cert": True},
                              {"ca": pki["ca"], "cert": pki["client"][0],
                               "key": pki["client"][1]})
    good = soa.client("echo", config)
    try:
        assert good.echo("with a certificate") == "with a certificate"
        for tls, reason in (
                (ClientTls(ca=pki["ca"]), "certificate required"),  # no certificate
                (ClientTls(ca=pki["ca"], cert=pki["stranger"][0], key=pki["stranger"][1]),
                 "unknown ca")):  # signed by a CA the server does not trust
            with pytest.raises(TransportError) as info:
                calls_with(config, tls)
            assert f"the server refused the TLS session: tlsv13 alert {reason}" in one_line(
                info.value) or f"alert {reason}" in one_line(info.value)
            assert info.value.sent is False
        assert good.echo("still serving") == "still serving"
    finally:
        good.close()


def test_a_tls_client_calling_a_plaintext_server(serve, pki):
    server, config, _ = serve(None)
    forced = replace(server.instance, tls=True)  # a registry value that lies about TLS
    from soa.clients import StaticResolver
    from soa.clients.service_client import build

    c = build("echo", replace(config, client=replace(config.client, tls=ClientTls(ca=pki["ca"]))),
              StaticResolver([forced]))
    try:
        with pytest.raises(ConnectError) as info:
            c.echo("hi")
        assert "TLS handshake failed" in one_line(info.value)
    finally:
        c.close()
    assert calls_with(config, None) == "hi"  # and it serves plaintext clients as before


def test_soa_call_over_tls(serve, pki):
    cert, key = pki["server"]
    _, _, path = serve({"cert": cert, "key": key}, {"ca": pki["ca"]})
    ok = subprocess.run([sys.executable, "-m", "soa", "--config", str(path), "call", "echo",
                         "echo", '["over tls"]'], capture_output=True, text=True, timeout=60)
    assert ok.returncode == 0, ok.stderr
    assert "over tls" in ok.stdout
    wrong = path.read_text().replace(pki["ca"], pki["other_ca"])
    path.write_text(wrong)
    bad = subprocess.run([sys.executable, "-m", "soa", "--config", str(path), "call", "echo",
                          "echo", '["over tls"]'], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 1
    lines = bad.stderr.strip().splitlines()
    assert len(lines) == 1 and "certificate verify failed" in lines[0], bad.stderr


def test_bad_tls_config_is_one_line(tmp_path, etcd_config, pki):
    path = tls_config(tmp_path, etcd_config, {"cert": "missing.crt", "key": pki["server"][1]})
    with pytest.raises(SoaError, match=r"services\.echo\.tls\.cert: no such file: missing\.crt"):
        load_config(str(path))
    path = tls_config(tmp_path, etcd_config, {"cert": pki["server"][0], "key": pki["server"][1],
                                              "require_client_cert": True})
    with pytest.raises(SoaError, match="require_client_cert: needs tls.ca"):
        load_config(str(path))


def test_an_idle_tls_connection_is_checked_reused_and_dropped_once_closed(serve, pki, tmp_path):
    """The pool checks a connection that sat idle before reusing it. A TLS socket cannot peek
    (``recv`` with flags raises ValueError), so the check reads through the TLS layer: a live
    connection, holding only the server's TLS 1.3 session tickets, is reused and still calls;
    one the server closed is dropped."""
    from soa.clients.plan import plans
    from soa.clients.pool import Pool

    cert, key = pki["server"]
    server, _, _ = serve({"cert": cert, "key": key})
    tls = ClientTls(ca=pki["ca"])
    pool = Pool(server.instance, size=2, check_after=0.0,
                connect=lambda instance, timeout: Connection.open(instance, timeout, tls))
    echo = plans(echo_idl(tmp_path).EchoService)["echo"]
    try:
        conn = pool.acquire(time.monotonic() + 2)
        assert conn.call(echo, ("first",), time.monotonic() + 2) == "first"
        pool.release(conn)
        for i in range(3):  # every acquire checks it (check_after 0), and keeps it
            again = pool.acquire(time.monotonic() + 2)
            assert again is conn
            assert again.call(echo, (f"again {i}",), time.monotonic() + 2) == f"again {i}"
            pool.release(again)
        assert pool.opened == 1
        server.stop(grace=0)
        wait_until(lambda: not conn.alive(), 5, message="the closed TLS connection looks alive")
    finally:
        pool.close()
