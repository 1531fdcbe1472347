"""TLS and mTLS from the Node.js and PHP plugins to real ``soa serve`` instances with
``services.echo.tls``: a call over mTLS succeeds, and each way a TLS session can go wrong is one
line on the client (never a traceback) while the server goes on serving a good client.

One set of servers for the module, each alone under its own registry prefix: ``mtls`` (requires
a client certificate of the CA), ``expired`` (its certificate has expired) and ``plain`` (no TLS).
Two more prefixes hold registry values that lie about TLS, so that a client dials a TLS server in
plaintext, or a plaintext server with TLS.
"""

import uuid
from dataclasses import replace
from types import SimpleNamespace

import pytest

from fixtures.node_driver import Driver, generate
from fixtures.php_driver import drive, thrift_gen
from fixtures.tls_support import CLIENT_ECHO_IDL, Echoes, make_pki, server_tls
from soa.config import EtcdConfig
from soa.registry.etcd import EtcdConnection
from soa.registry.instance import instance_key


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    return make_pki(tmp_path_factory.mktemp("pki"))


@pytest.fixture(scope="module")
def servers(tmp_path_factory, etcd_server, pki):
    """Registry places (endpoints, prefix) by name, and the server processes behind them."""
    root = f"/soa-test/{uuid.uuid4().hex[:12]}"
    endpoints = (etcd_server.endpoint,)
    fleets = {}
    places = {name: SimpleNamespace(endpoints=endpoints, prefix=f"{root}/{name}")
              for name in ("mtls", "expired", "plain", "lie_plain", "lie_tls")}
    try:
        for name, tls in (("mtls", server_tls(pki, mtls=True)),
                          ("expired", server_tls(pki, "expired")), ("plain", None)):
            fleets[name] = Echoes(tmp_path_factory.mktemp(name), endpoints, places[name].prefix)
            fleets[name].add(name, tls=tls)
        connection = EtcdConnection(EtcdConfig(endpoints=endpoints))
        try:
            etcd = connection.client()
            for lie, real, tls in (("lie_plain", "mtls", False), ("lie_tls", "plain", True)):
                instance = replace(fleets[real].processes[real].instance, tls=tls)
                etcd.put(instance_key(places[lie].prefix, instance), instance.encode())
            yield SimpleNamespace(places=places, processes={n: f.processes[n]
                                                            for n, f in fleets.items()})
            etcd.delete_prefix(root + "/")
        finally:
            connection.close()
    finally:
        for fleet in fleets.values():
            fleet.stop()


def client_tls(pki, ca="ca", cert=None):
    """A plugin's ``tls`` option: the CA to trust and, by name, the client certificate."""
    tls = {"ca": pki[ca]}
    if cert:
        tls.update(cert=pki[cert][0], key=pki[cert][1])
    return tls


# (case, registry place, CA the client trusts, client certificate, the server it reaches)
FAILURES = [
    ("plaintext client, TLS server", "lie_plain", "ca", "client", "mtls"),
    ("TLS client, plaintext server", "lie_tls", "ca", "client", "plain"),
    ("expired server certificate", "expired", "ca", "client", "expired"),
    ("wrong CA", "mtls", "other_ca", "client", "mtls"),
    ("no client certificate", "mtls", "ca", None, "mtls"),
    ("client certificate of another CA", "mtls", "ca", "stranger", "mtls"),
]
CASES = [f[0] for f in FAILURES]

# the error, what its line says, and whether the call may have been sent
NODE_SAYS = {
    "plaintext client, TLS server": ("TransportError", "broke: read ECONNRESET", True),
    "TLS client, plaintext server": (
        "ConnectError", "disconnected before secure TLS connection was established", False),
    "expired server certificate": ("ConnectError", "certificate has expired", False),
    "wrong CA": ("ConnectError", "self-signed certificate in certificate chain", False),
    "no client certificate": (
        "TransportError", "refused the TLS session: tlsv13 alert certificate required", False),
    "client certificate of another CA": (
        "TransportError", "refused the TLS session: tlsv1 alert unknown ca", False),
}


def one_line(text):
    assert "\n" not in text and "Traceback" not in text and ".c:" not in text, text
    return text


def still_serving(servers, name, good_call):
    """The server ``name`` that the bad client reached serves a good client (over mTLS, or in
    plaintext), or, for the expired one which no verifying client accepts, is still running."""
    process = servers.processes[name]
    assert process.proc.poll() is None, process.output()
    if name == "expired":
        return
    out = good_call(servers.places[name], name == "mtls")
    assert "error" not in out and out["address"] == process.address, out


# --- Node.js ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def node_gen(tmp_path_factory):
    return generate(tmp_path_factory.mktemp("gen-nodejs"))


def node_call(node_gen, place, tls):
    """One echo call by a new Node client of ``place``: the driver's answer."""
    driver = Driver(node_gen, place, {"tls": tls, "timeout": 2000, "retries": 0})
    try:
        return driver.send("call", method="echo", args=["over tls"])
    finally:
        driver.close()


def test_node_mtls_call(servers, pki, node_gen):
    out = node_call(node_gen, servers.places["mtls"], client_tls(pki, cert="client"))
    assert out == {"result": "over tls", "address": servers.processes["mtls"].address}, out


@pytest.mark.parametrize("case,place,ca,cert,server", FAILURES, ids=CASES)
def test_node_failure_is_one_line_and_the_server_keeps_serving(servers, pki, node_gen, case,
                                                               place, ca, cert, server):
    out = node_call(node_gen, servers.places[place], client_tls(pki, ca, cert))
    error, says, sent = NODE_SAYS[case]
    assert out["error"] == error and says in one_line(out["message"]), out
    assert out["sent"] is sent, out
    still_serving(servers, server, lambda where, mtls: node_call(
        node_gen, where, client_tls(pki, cert="client") if mtls else None))


# --- PHP ----------------------------------------------------------------------------------------

# every one a Soa\TransportError; PHP's OpenSSL warnings say "certificate verify failed", not why
PHP_SAYS = {
    "plaintext client, TLS server": "the connection was closed before the reply",
    "TLS client, plaintext server": "cannot connect: TLS handshake failed: the server closed the "
                                    "connection (does it serve TLS?)",
    "expired server certificate": "cannot connect: TLS handshake failed: certificate verify failed",
    "wrong CA": "cannot connect: TLS handshake failed: certificate verify failed",
    "no client certificate": "the server refused the TLS session: tlsv13 alert certificate "
                             "required",
    "client certificate of another CA": "the server refused the TLS session: tlsv1 alert "
                                        "unknown ca",
}


@pytest.fixture(scope="module")
def php_gen(tmp_path_factory):
    return thrift_gen(CLIENT_ECHO_IDL, tmp_path_factory.mktemp("gen-php"))


def php_call(php_gen, place, tls):
    """One echo call by the PHP plugin to ``place``: drive.php's summary, with the address that
    served it (``address``) or the one error line (``error``)."""
    args = [f"--tls-{what}={path}" for what, path in (tls or {}).items()]
    out = drive(php_gen, place, "--calls=1", "--retries=0", "--timeout-ms=2000", *args)
    if out["served"]:
        (out["address"],) = out["served"]
    else:
        (out["error"],) = out["errors"]
    return out


def test_php_mtls_call(servers, pki, php_gen):
    out = php_call(php_gen, servers.places["mtls"], client_tls(pki, cert="client"))
    assert out["failed"] == 0 and out["address"] == servers.processes["mtls"].address, out


@pytest.mark.parametrize("case,place,ca,cert,server", FAILURES, ids=CASES)
def test_php_failure_is_one_line_and_the_server_keeps_serving(servers, pki, php_gen, case,
                                                              place, ca, cert, server):
    out = php_call(php_gen, servers.places[place], client_tls(pki, ca, cert))
    assert out["error_types"] == {"Soa\\TransportError": 1}, out
    assert PHP_SAYS[case] in one_line(out["error"]), out
    still_serving(servers, server, lambda where, mtls: php_call(
        php_gen, where, client_tls(pki, cert="client") if mtls else None))
