"""IDL methods named like the client's own attributes: the client still starts, every method
can be called, and ``close()`` still releases everything (an IDL method named ``discovery``,
``metrics`` or ``transport`` used to replace the client's own and leak its pools and resolver)."""

import pytest
from thriftpy2.parser import lexer

import soa
from fixtures.fds import socket_fds, wait_fds_back
from soa.clients.service_client import Client, _Runtime
from soa.config import load_config
from soa.testing.poll import wait_until
from soa.testing.processes import write_config


def client_attribute_names():
    """Every attribute a client has that an IDL method can be named: the class's and its
    runtime state's, but Python's dunders (no Thrift library can serve those either) and Thrift
    keywords (``service``, which the IDL grammar refuses as a method name)."""
    names = {n for n in dir(Client) if not (n.startswith("__") and n.endswith("__"))}
    return sorted((names | set(_Runtime.__slots__)) - set(lexer.keywords))


class NamedHandler:
    """Answers each method with its own name."""

    def __init__(self, names):
        for name in names:
            setattr(self, name, lambda name=name: name)


@pytest.fixture
def server(tmp_path, etcd_config):
    names = client_attribute_names()
    idl = tmp_path / "named.thrift"
    idl.write_text("service Named {\n" + "".join(f"  string {n}(),\n" for n in names) + "}\n")
    path = write_config(tmp_path, etcd_endpoints=list(etcd_config.endpoints),
                        prefix=etcd_config.prefix,
                        services={"named": {"idl": str(idl), "service": "Named",
                                            "handler": "unused:Unused", "host": "127.0.0.1",
                                            "port": 0, "grace_period": 0.1}})
    config = load_config(str(path))
    running = soa.serve("named", config, handler=NamedHandler(names), block=False)
    yield config, running, names
    running.stop(grace=0)


def test_every_method_named_like_a_client_attribute_is_callable(server):
    config, running, names = server
    assert {"discovery", "metrics", "transport", "close", "call", "_soa"} <= set(names)
    port = running.address[1]
    baseline = socket_fds(port)
    client = soa.client("named", config)
    try:
        wait_until(lambda: client.instances, timeout=10, message="the instance discovered")
        for name in names:
            assert client.call(name) == name
            if not hasattr(Client, name):  # the rest are attributes too
                assert getattr(client, name)() == name
        # the client's own attributes are still its own
        assert client.metrics.snapshot() is not None
        assert client.settings.timeout_ms > 0
        assert len(client.instances) == 1
        rt = client._soa
        assert rt.transport.pools  # a pooled connection to the server
    finally:
        client.close()
    assert not rt.transport.pools
    assert rt.sweeper.dead or wait_until(lambda: rt.sweeper.dead, timeout=5)
    assert not rt.resolver._watches  # the client's own resolver stopped watching
    wait_fds_back(port, baseline)
