"""The server runtime in-process: registration, dispatch, errors, middleware, metrics, deadlines."""

import json
import logging
import socket
from dataclasses import replace

import pytest
from thriftpy2.thrift import TApplicationException, TMessageType

import soa
from fixtures.server_support import client, echo_config, echo_idl, header_call
from soa.registry.etcd import EtcdConnection
from soa.registry.instance import instance_key, parse_instance
from soa.config import load_config
from soa.errors import ConfigError
from soa.etcd_server import EtcdProcess, free_port
from soa.idl import idl_hash
from soa.testing.poll import wait_until


@pytest.fixture
def serve_echo(tmp_path, etcd_config):
    """Start the echo service in this process (``block=False``); stopped after the test."""
    servers = []

    def start(config=None, **options):
        config = config or load_config(str(echo_config(tmp_path, etcd_config)))
        server = soa.serve("echo", config, block=False, **options)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop(grace=0)


def test_registers_real_port_once_listening(serve_echo, tmp_path, etcd_config, etcd):
    server = serve_echo()
    host, port = server.address
    assert port != 0
    value, _ = etcd.get(instance_key(etcd_config.prefix, server.instance))
    instance = parse_instance(value)
    module = echo_idl(tmp_path)
    assert (instance.host, instance.port) == ("127.0.0.1", port)
    assert (instance.protocol, instance.transport) == ("binary", "buffered")
    assert instance.idl_hash == idl_hash(module.EchoService)
    assert instance.pid > 0 and instance.started_at > 0
    assert json.loads(value)["version"] == "0.1.0"
    assert client(module, port).echo("hello") == "hello"


def test_advertise_defaults_and_override(serve_echo, tmp_path, etcd_config, etcd):
    wildcard = serve_echo(host="0.0.0.0")
    assert wildcard.instance.host == "127.0.0.1"
    published = serve_echo(advertise="10.1.2.3")
    assert published.instance.host == "10.1.2.3"
    assert etcd.get(instance_key(etcd_config.prefix, published.instance))[0] is not None


def test_serves_every_kind_of_call(serve_echo, tmp_path):
    server = serve_echo()
    module = echo_idl(tmp_path)
    c = client(module, server.address[1])
    assert c.ping() is None
    assert c.add(2, 40) == 42
    assert c.echo_bytes(b"\x00\xff") == b"\x00\xff"
    item = module.Item(name="n", values=[1, 2], attrs={"a": "b"})
    assert c.roundtrip(item) == item
    c.notify("one-way")
    wait_until(lambda: server.handler.notes == ["one-way"], timeout=5)


def test_declared_exception_arrives_as_its_type(serve_echo, tmp_path):
    server = serve_echo()
    module = echo_idl(tmp_path)
    with pytest.raises(module.EchoError) as info:
        client(module, server.address[1]).fail("declared")
    assert (info.value.message, info.value.code) == ("as declared", 42)


def test_undeclared_exception_is_internal_error_and_server_survives(serve_echo, tmp_path, caplog):
    server = serve_echo()
    module = echo_idl(tmp_path)
    c = client(module, server.address[1])
    with caplog.at_level(logging.ERROR, logger="soa.server"):
        with pytest.raises(TApplicationException) as info:
            c.fail("internal")
    assert info.value.type == TApplicationException.INTERNAL_ERROR
    assert "KeyError" not in info.value.message and "error id" in info.value.message
    logged = [r for r in caplog.records if r.name == "soa.server" and r.exc_info]
    assert logged and isinstance(logged[0].exc_info[1], KeyError)
    assert c.echo("still here") == "still here"
    assert client(module, server.address[1]).echo("new connection") == "new connection"
    with pytest.raises(TApplicationException) as info:
        c.fail("app")
    assert info.value.message == "app says no"


def test_unknown_service_is_a_config_error(tmp_path, etcd_config):
    config = load_config(str(echo_config(tmp_path, etcd_config)))
    with pytest.raises(ConfigError, match="unknown service 'nope'"):
        soa.serve("nope", config, block=False)


def test_middleware_from_config_is_applied(serve_echo, tmp_path, etcd_config):
    path = echo_config(tmp_path, etcd_config, middleware=["echo_handler:suffix_middleware"])
    server = serve_echo(load_config(str(path)))
    c = client(echo_idl(tmp_path), server.address[1])
    assert c.echo("hi") == "hi (via middleware)"
    assert c.add(1, 1) == 2


def test_access_log_and_metrics_record_calls(serve_echo, tmp_path, caplog):
    server = serve_echo()
    module = echo_idl(tmp_path)
    c = client(module, server.address[1])
    with caplog.at_level(logging.INFO, logger="soa.access"):
        c.echo("a")
        c.echo("b")
        with pytest.raises(module.EchoError):
            c.fail("declared")
        with pytest.raises(TApplicationException):
            c.fail("internal")
    lines = [r for r in caplog.records if r.name == "soa.access"]
    assert [(r.method, r.outcome) for r in lines] == [
        ("echo", "ok"), ("echo", "ok"), ("fail", "declared:EchoError"), ("fail", "internal"),
    ]
    assert all(r.service == "echo" and r.peer.startswith("127.0.0.1:") for r in lines)
    assert all(r.duration_ms >= 0 for r in lines)
    snapshot = server.metrics.snapshot()
    echo, fail = snapshot["methods"]["echo"], snapshot["methods"]["fail"]
    assert echo["calls"] == 2 and echo["errors"] == {} and sum(echo["histogram"]) == 2
    assert fail["errors"] == {"declared:EchoError": 1, "internal": 1}
    assert len(echo["histogram"]) == len(snapshot["buckets_ms"]) + 1
    # With the access logger off, calls are still counted, and nothing is logged.
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="soa.access"):
        c.echo("c")
    assert not [r for r in caplog.records if r.name == "soa.access"]
    assert server.metrics.snapshot()["methods"]["echo"]["calls"] == 3


def test_deadline_already_passed_is_not_executed(serve_echo, tmp_path):
    server = serve_echo()
    module = echo_idl(tmp_path)
    before = server.handler.calls
    headers, _, reply = header_call(server.address[1], module, "ping",
                                    headers={"soa-deadline-ms": "1"})
    assert headers == {"soa-error": "late"}
    assert isinstance(reply, TApplicationException) and "deadline exceeded" in reply.message
    assert server.handler.calls == before
    assert server.metrics.snapshot()["methods"]["ping"]["errors"] == {"late": 1}


def test_deadline_is_current_in_the_handler_and_seqid_is_echoed(serve_echo, tmp_path):
    server = serve_echo()
    module = echo_idl(tmp_path)
    headers, seqid, reply = header_call(server.address[1], module, "deadline_left",
                                        headers={"soa-deadline-ms": "5000"}, seqid=0x5D0000FF)
    assert headers == {} and seqid == 0x5D0000FF
    assert 4.0 < reply.success <= 5.0
    # A plain client carries no deadline, whatever its seqid.
    assert client(module, server.address[1]).deadline_left() == -1.0


@pytest.mark.parametrize("protocol", ["binary", "compact"])
def test_a_theader_frame_holds_exactly_one_message(serve_echo, tmp_path, caplog, protocol):
    """A frame's payload is decoded whole: a large one (many socket reads) is answered; a
    message running past its frame, or (binary) bytes after it, closes that connection only."""
    from thriftpy2.protocol import TBinaryProtocol, TCompactProtocol
    from thriftpy2.transport import TMemoryBuffer

    from soa import theader

    caplog.set_level(logging.INFO, logger="soa.server")
    server = serve_echo()
    module = echo_idl(tmp_path)
    port = server.address[1]
    big = "x" * 300_000
    _, _, reply = header_call(port, module, "echo", module.EchoService.echo_args(text=big),
                              protocol=protocol)
    assert reply.success == big

    out = TMemoryBuffer()
    proto = (TCompactProtocol if protocol == "compact" else TBinaryProtocol)(out)
    proto.write_message_begin("echo", TMessageType.CALL, 1)
    proto.write_struct(module.EchoService.echo_args(text="hi"))
    message = out.getvalue()
    block = theader.header_block(theader.PROTOCOL_IDS[protocol], 0, b"")
    cut = message[:-3]  # the string and the struct's end lie past the frame
    bad = [cut] + ([message + b"\0\0"] if protocol == "binary" else [])
    for payload in bad:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(theader.frame_prefix(1, block, len(payload)) + payload + b"\0" * 64)
            assert sock.recv(1024) == b""  # closed, nothing answered
    reasons = [r.getMessage() for r in caplog.records if "closing" in r.getMessage()]
    assert len(reasons) == len(bad) and all("bad input" in r for r in reasons), reasons
    assert client(module, port).echo("still") == "still"


@pytest.mark.parametrize("protocol,transport", [("binary", "buffered"), ("compact", "framed")])
def test_plain_seqids_across_the_old_marker_range_are_served(serve_echo, tmp_path, etcd_config,
                                                             protocol, transport):
    """0x5D000000-0x5DFFFFFF once carried a deadline; now any seqid is the caller's own."""
    from fixtures.server_support import PROTOCOLS, TRANSPORTS

    path = echo_config(tmp_path, etcd_config, protocol=protocol, transport=transport)
    server = serve_echo(load_config(str(path)))
    module = echo_idl(tmp_path)
    seqids = [0x5D000000, 0x5D000001, 0x5D000002, 0x5D7FFFFF, 0x5DFFFFFE, 0x5DFFFFFF]
    seqids += list(range(0x5D000000, 0x5DFFFFFF, 0x00FFFFFF // 200))
    before = server.handler.calls
    with socket.create_connection(server.address, timeout=5) as sock:
        from thriftpy2.transport import TSocket

        tsock = TSocket()
        tsock.sock = sock
        trans = TRANSPORTS[transport]().get_transport(tsock)
        proto = PROTOCOLS[protocol]().get_protocol(trans)
        for seqid in seqids:
            proto.write_message_begin("echo", TMessageType.CALL, seqid)
            proto.write_struct(module.EchoService.echo_args(text=str(seqid)))
            proto.write_message_end()
            trans.flush()
            _, mtype, got = proto.read_message_begin()
            result = module.EchoService.echo_result()
            proto.read_struct(result)
            proto.read_message_end()
            assert (mtype, got, result.success) == (TMessageType.REPLY, seqid, str(seqid))
    assert server.handler.calls == before + len(seqids)


def test_a_call_meant_for_another_service_or_instance_is_refused_unexecuted(serve_echo,
                                                                            tmp_path):
    server = serve_echo()
    module = echo_idl(tmp_path)
    port = server.address[1]
    before = server.handler.calls
    for wrong in ({"soa-service": "order"},
                  {"soa-service": "echo", "soa-instance": "0123456789abcdef"}):
        headers, _, reply = header_call(port, module, "ping", headers=wrong)
        assert headers == {"soa-error": "wrong-target"}
        assert isinstance(reply, TApplicationException) and "not executed" in reply.message
    assert server.handler.calls == before
    right = {"soa-service": "echo", "soa-instance": server.instance.id, "soa-deadline-ms": "900"}
    headers, _, reply = header_call(port, module, "echo",
                                    module.EchoService.echo_args(text="mine"), right)
    assert headers == {} and reply.success == "mine"
    headers, _, reply = header_call(port, module, "echo",
                                    module.EchoService.echo_args(text="c"), right,
                                    protocol="compact")
    assert reply.success == "c"


def test_registers_an_instance_id_and_theader(serve_echo, etcd_config, etcd):
    server = serve_echo()
    value = parse_instance(etcd.get(instance_key(etcd_config.prefix, server.instance))[0])
    assert value.theader is True and len(value.id) == 16 and value.id == server.instance.id
    assert serve_echo().instance.id != value.id


def test_internal_errors_reach_the_caller_as_an_error_id_only(serve_echo, tmp_path, caplog):
    server = serve_echo()
    c = client(echo_idl(tmp_path), server.address[1])
    with caplog.at_level(logging.ERROR, logger="soa.server"):
        with pytest.raises(TApplicationException) as info:
            c.fail("secret-detail")
    assert "secret-detail" not in info.value.message and "KeyError" not in info.value.message
    error_id = info.value.message.split("error id ")[1].split(";")[0]
    logged = [r for r in caplog.records if error_id in r.getMessage()]
    assert logged and "secret-detail" in logged[0].exc_text


def test_keeps_serving_while_etcd_is_down_and_registers_once_it_is_up(
        serve_echo, tmp_path, etcd_config, caplog):
    port = free_port()
    config = load_config(str(echo_config(tmp_path, etcd_config)))
    down = replace(config.etcd, endpoints=(f"127.0.0.1:{port}",), dial_timeout=0.3)
    with caplog.at_level(logging.WARNING, logger="soa.server"):
        server = serve_echo(replace(config, etcd=down))
    assert any("not registered yet" in r.getMessage() for r in caplog.records)
    assert client(echo_idl(tmp_path), server.address[1]).echo("up") == "up"
    etcd = EtcdProcess(tmp_path / "late-etcd", client_port=port)
    try:
        etcd.start()
        connection = EtcdConnection(down)
        try:
            key = instance_key(down.prefix, server.instance)
            wait_until(lambda: connection.client().get(key)[0] is not None, timeout=15,
                       message="registered once etcd is up")
        finally:
            connection.close()
        server.stop(grace=0)
    finally:
        etcd.stop()


def test_handler_object_and_context(serve_echo, tmp_path, etcd_config):
    config = load_config(str(echo_config(tmp_path, etcd_config)))
    server = serve_echo(config)
    context = server.handler.context
    assert context.service.name == "echo" and context.config == config
    assert context.idl is echo_idl(tmp_path)
    assert context.data_dir == tmp_path / ".soa" / "data" / "echo" and context.data_dir.is_dir()

    class Custom:
        def __getattr__(self, name):
            return lambda *args: "custom"

    other = serve_echo(config, handler=Custom())
    assert client(echo_idl(tmp_path), other.address[1]).echo("x") == "custom"


def test_context_client_calls_through_discovery(serve_echo, tmp_path):
    server = serve_echo()
    context = server.context
    via_registry = context.client("echo")
    assert context.client("echo") is via_registry
    assert via_registry.echo("through etcd") == "through etcd"


def test_on_close_callbacks_run_last_first_once_the_server_has_stopped(serve_echo, tmp_path,
                                                                        caplog):
    server = serve_echo()
    ran = []

    def failing():
        ran.append("failing")
        raise RuntimeError("cleanup broke")

    server.context.on_close(lambda: ran.append(("db", len(server.connections))))
    server.context.on_close(failing)
    server.context.on_close(lambda: ran.append("pool"))
    assert client(echo_idl(tmp_path), server.address[1]).echo("x") == "x"
    assert ran == []
    server.stop(grace=0)
    assert ran == ["pool", "failing", ("db", 0)], "after the last connection, last first"
    assert "on_close callback" in caplog.text and "cleanup broke" in caplog.text
    server.stop(grace=0)
    assert len(ran) == 3, "callbacks run once"


def test_the_processor_bins_latencies_once_fold_at_wait(serve_echo, tmp_path):
    from soa.observe.histogram import FOLD_AT

    server = serve_echo()
    c = client(echo_idl(tmp_path), server.address[1])
    stats = server.metrics.stats("echo")
    pending = stats.pending
    for _ in range(FOLD_AT - 1):
        c.echo("x")
    assert len(pending) == FOLD_AT - 1  # the loop only appends until FOLD_AT wait
    c.echo("x")
    assert pending == [] and stats.pending is pending
    assert sum(stats.counts) == FOLD_AT
    assert server.metrics.snapshot()["methods"]["echo"]["calls"] == FOLD_AT
