"""A THeader connection holds a reply while the client's next requests are already buffered, and
sends the replies together (``_SocketIO.reply``). Against a real soa server over real sockets:
nothing is held back behind a handler that blocks, and nothing held is lost when the connection
ends; and in one process, the send system calls are counted."""

import socket
import time
import types

import gevent
import pytest
from thriftpy2.protocol import TBinaryProtocol
from thriftpy2.thrift import TMessageType
from thriftpy2.transport import TMemoryBuffer

import soa
from fixtures.echo_handler import EchoHandler
from fixtures.server_support import client, echo_config, echo_idl
from soa import theader
from soa.config import load_config
from soa.server.connection import Connection, serve_connection
from soa.server.processor import Processor
from soa.server.runtime import State


@pytest.fixture
def echo(tmp_path, etcd_config):
    """``(port, module)`` of an echo server in this process, stopped after the test."""
    config = load_config(str(echo_config(tmp_path, etcd_config)))
    server = soa.serve("echo", config, block=False)
    try:
        yield server.address[1], echo_idl(tmp_path)
    finally:
        server.stop(grace=0)


def frame(module, method, seqid, **args):
    out = TMemoryBuffer()
    proto = TBinaryProtocol(out)
    proto.write_message_begin(method, TMessageType.CALL, seqid)
    proto.write_struct(getattr(module.EchoService, method + "_args")(**args))
    proto.write_message_end()
    payload = out.getvalue()
    pairs = [(theader.SERVICE, "echo")]
    block = theader.header_block(0, len(pairs), theader.encode_pairs(pairs))
    return theader.frame_prefix(seqid, block, len(payload)) + payload


def read_reply(reader, module, method):
    """``(seqid, result)`` of the next reply frame on ``reader`` (a socket's makefile)."""
    head = reader.read(theader.HEAD_SIZE)
    assert len(head) == theader.HEAD_SIZE, "the connection closed before the reply"
    size, magic, _flags, _seqid, words = theader.HEAD.unpack(head)
    assert magic == theader.MAGIC
    body = reader.read(size - theader.FIXED_SIZE)
    proto = TBinaryProtocol(TMemoryBuffer(body[words * 4:]))
    _, mtype, seqid = proto.read_message_begin()
    assert mtype == TMessageType.REPLY
    result = getattr(module.EchoService, method + "_result")()
    proto.read_struct(result)
    return seqid, getattr(result, "success", None)


def test_a_reply_is_not_held_behind_the_next_calls_handler(echo):
    """ping and a 3 s sleep pipelined in one write: ping's reply, held while the sleep's request
    is buffered, leaves as soon as the sleeping handler yields, not when it returns."""
    port, module = echo
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        reader = sock.makefile("rb")
        began = time.monotonic()
        sock.sendall(frame(module, "ping", 1) + frame(module, "sleep", 2, seconds=3.0))
        assert read_reply(reader, module, "ping") == (1, None)
        ping_took = time.monotonic() - began
        assert read_reply(reader, module, "sleep")[0] == 2
        sleep_took = time.monotonic() - began
    assert ping_took < 1.5 <= 3.0 <= sleep_took, (ping_took, sleep_took)


@pytest.mark.parametrize("ending", ["garbage", "end of stream"])
def test_replies_held_when_the_connection_ends_are_sent(echo, ending):
    """Calls pipelined ahead of garbage, or of the client's end of stream, are answered, all
    of them, before the connection closes; the server goes on serving."""
    port, module = echo
    calls = b"".join(frame(module, "echo", i, text=f"m{i}") for i in range(1, 6))
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        reader = sock.makefile("rb")
        if ending == "garbage":
            sock.sendall(calls + b"\x00\x00\x00\x20" + b"\xff" * 32)
        else:
            sock.sendall(calls)
            sock.shutdown(socket.SHUT_WR)
        assert [read_reply(reader, module, "echo") for _ in range(5)] == [
            (i, f"m{i}") for i in range(1, 6)]
        assert reader.read() == b""  # then the server closes it
    assert client(module, port).echo("still") == "still"


def test_pipelined_calls_are_answered_with_one_send(tmp_path, etcd_config):
    """Eight calls in one write (fewer than a turn's worth) are answered in order by one send;
    a lone call by one send of its own."""
    config = load_config(str(echo_config(tmp_path, etcd_config)))
    module = echo_idl(tmp_path)
    processor = Processor("echo", module.EchoService, EchoHandler(None))
    settings = types.SimpleNamespace(transport="buffered", protocol="binary", spin_us=0,
                                     max_frame_bytes=config.service("echo").max_frame_bytes)
    with socket.create_server(("127.0.0.1", 0)) as listener:
        client_side = socket.create_connection(listener.getsockname(), timeout=10)
        server_side, peer = listener.accept()
    sends = []
    conn = Connection(server_side, peer, State())
    served = gevent.spawn(serve_connection, conn, processor, settings)
    reader = client_side.makefile("rb")
    try:
        client_side.sendall(frame(module, "echo", 100, text="first"))
        assert read_reply(reader, module, "echo") == (100, "first")
        send = conn.io._send
        conn.io._send = lambda data: sends.append(len(data)) or send(data)
        client_side.sendall(b"".join(frame(module, "echo", i, text=f"m{i}") for i in range(8)))
        assert [read_reply(reader, module, "echo") for _ in range(8)] == [
            (i, f"m{i}") for i in range(8)]
        assert len(sends) == 1, sends
        client_side.sendall(frame(module, "echo", 9, text="alone"))
        assert read_reply(reader, module, "echo") == (9, "alone")
        assert len(sends) == 2, sends
    finally:
        reader.close()  # the socket's file closes with the last of its users
        client_side.close()
        served.join(timeout=10)
        served.kill()
        server_side.close()
