"""Bad input against a live server: each bad connection is closed or answered with an
application exception, a well-behaved client is served throughout, nothing leaks."""

import contextlib
import logging
import random
import socket
import struct
import subprocess
import sys
import time

import pytest
from thriftpy2.protocol import TBinaryProtocol, TCompactProtocol
from thriftpy2.thrift import TApplicationException, TMessageType
from thriftpy2.transport import TMemoryBuffer

from fixtures.badinput import (
    IDLE,
    MAX_FRAME,
    WIRES,
    binary_message,
    closed_by_server,
    compact_message,
    live_servers,
    steady_latency,
)
from fixtures.server_support import raw_socket
from soa.testing.poll import wait_until


@pytest.fixture
def live(tmp_path, etcd_config):
    """Start a limited echo server; yields a function returning a ``Live`` for a wire format."""
    yield from live_servers(tmp_path, etcd_config)


GARBAGE = [
    b"GET / HTTP/1.1\r\nHost: example\r\n\r\n",
    b"\x80\x01\x00\x01\xff\xff\xff\xff" + b"\x00" * 32,
    b"\x82\x21\x01\x04echo\x0b\x01" + b"\xff" * 40,
    random.Random(7).randbytes(2048),
]


@pytest.mark.parametrize("wire", [("binary", "buffered"), ("binary", "framed"),
                                  ("compact", "buffered"), ("compact", "framed")])
def test_garbage_bytes(live, wire):
    server = live(*wire)
    for garbage in GARBAGE:
        sock = raw_socket(server.port)
        sock.sendall(garbage)
        closed_by_server(sock)
    server.assert_healthy()


@pytest.mark.parametrize("transport", ["buffered", "framed"])
def test_truncated_message(live, transport):
    server = live(transport=transport)
    whole = server.request("echo", text="x" * 200)
    sock = raw_socket(server.port)
    sock.sendall(whole[: len(whole) // 2])
    sock.shutdown(socket.SHUT_WR)  # the peer ends mid-message
    assert closed_by_server(sock) == b""
    sock = raw_socket(server.port)
    sock.sendall(whole[: len(whole) // 2])  # ... or just stops sending
    started = time.monotonic()
    assert closed_by_server(sock) == b""
    assert time.monotonic() - started < IDLE + 2
    server.assert_healthy()


def test_frame_larger_than_maximum_is_refused_before_reading_it(live):
    server = live(transport="framed")
    for size in (MAX_FRAME + 1, 0x7FFFFFFF, -5, 0):
        sock = raw_socket(server.port)
        started = time.monotonic()
        sock.sendall(struct.pack(">i", size) + b"\x80\x01\x00\x01")
        assert closed_by_server(sock, timeout=2) == b""
        assert time.monotonic() - started < IDLE * 0.8  # refused at once, not left idle
    server.assert_healthy()


@pytest.mark.parametrize("transport", ["buffered", "framed"])
def test_oversized_message_is_refused_while_streaming(live, caplog, transport):
    """A string claiming megabytes, sent in pieces (frames each under the maximum, if framed)."""
    caplog.set_level(logging.INFO, logger="soa.server")
    server = live(transport=transport)
    header = server.request("echo", text="")[:-5]  # up to the string field's length prefix
    if transport == "framed":
        header = header[4:]  # no frame of its own: it goes out in the first piece below

    def piece(data):
        return struct.pack(">i", len(data)) + data if transport == "framed" else data

    for claimed in (10_000_000, 0x7FFFFFFF):
        sock = raw_socket(server.port)
        sock.sendall(piece(header + struct.pack(">i", claimed) + b"y" * 1024))
        try:
            for _ in range(200):  # stream up to 200 KiB; the server must give up well before
                sock.sendall(piece(b"y" * 1024))
        except (BrokenPipeError, ConnectionResetError):
            pass
        closed_by_server(sock)
    reasons = [r.getMessage() for r in caplog.records if "closing" in r.getMessage()]
    assert len(reasons) == 2 and not any("idle" in r for r in reasons), reasons
    assert "message larger than 4096 bytes" in reasons[0]  # the cap, not the allocator
    server.assert_healthy()


def test_silent_client_is_closed_by_idle_timeout(live):
    server = live()
    sock = raw_socket(server.port)
    started = time.monotonic()
    assert closed_by_server(sock) == b""
    assert IDLE * 0.8 <= time.monotonic() - started < IDLE + 2
    server.assert_healthy()


@pytest.mark.parametrize("wire", [("binary", "buffered"), ("compact", "framed")])
def test_unknown_method_gets_application_exception(live, wire):
    server = live(*wire)
    sock = raw_socket(server.port)
    sock.sendall(server.request("no_such_method", seqid=77) + server.request("echo", text="ok"))
    sock.settimeout(5)
    data = b""
    while data.count(b"ok") < 1 or len(data) < 40:
        data += sock.recv(65536)
    if server.transport == "framed":
        data = data[4:]
    proto = (TCompactProtocol if server.protocol == "compact" else TBinaryProtocol)(
        TMemoryBuffer(data))
    name, mtype, seqid = proto.read_message_begin()
    assert (name, mtype, seqid) == ("no_such_method", TMessageType.EXCEPTION, 77)
    error = TApplicationException()
    proto.read_struct(error)
    assert error.type == TApplicationException.UNKNOWN_METHOD
    sock.close()  # the same connection went on to answer the echo that followed
    server.assert_healthy()


def test_connections_beyond_the_limit_are_refused(live):
    server = live(max_connections=6)
    extra = [raw_socket(server.port) for _ in range(5)]
    wait_until(lambda: server.server.stats()["connections"] == 6, timeout=5)
    refused = raw_socket(server.port)
    assert closed_by_server(refused) == b""
    assert server.server.refused == 1
    served = server.served
    wait_until(lambda: server.served > served, timeout=5, message="steady calls at the limit")
    for sock in extra:
        sock.close()
    server.assert_healthy()


# Tiny messages that declare a huge container of a type that takes no bytes (or none at all).
ZERO_SIZE_CONTAINERS = {
    "binary": [
        # a list<type 0> of 2**31-1 elements in place of echo's string field: cybin skips it
        binary_message("echo", b"\x0f\x00\x01" + b"\x00" + struct.pack(">i", 0x7FFFFFFF)),
        # the same as a map<type 1, type 5>, inside a struct, for an unknown method
        binary_message("nothing", b"\x0c\x00\x07\x0d\x00\x01\x01\x05"
                       + struct.pack(">i", 0x7FFFFFFF)),
        # a list of i32 with room for 2**31-1 of them, and a set of lists of type 9
        binary_message("add", b"\x0f\x00\x09\x08" + struct.pack(">i", 0x7FFFFFFF)),
        binary_message("echo", b"\x0e\x00\x05\x0f" + struct.pack(">i", 3)
                       + (b"\x09" + struct.pack(">i", 0x7FFFFFFF)) * 3),
    ],
    "compact": [
        # a list of 2**28 STOPs in place of echo's string, then a map of 2**35 STOP pairs
        compact_message("echo", b"\x19\xf0\x80\x80\x80\x80\x01"),
        compact_message("echo", b"\x1b\x80\x80\x80\x80\x80\x01\x00"),
        # a list<i32> of 2**28 elements, and a varint seqid that never ends
        compact_message("add", b"\x19\xf5\x80\x80\x80\x80\x01"),
        bytes([0x82, 0x21]) + b"\xff" * 200,
    ],
}




@pytest.mark.parametrize("wire", WIRES)
def test_tiny_message_with_a_huge_empty_container_is_refused_at_once(live, caplog, wire):
    """Each such message is refused as a protocol error, its connection closed at once, while a
    steady client's calls keep being answered within 100 ms (they froze for seconds)."""
    caplog.set_level(logging.INFO, logger="soa.server")
    server = live(*wire)

    def send_all():
        for message in ZERO_SIZE_CONTAINERS[server.protocol]:
            sock = raw_socket(server.port)
            started = time.monotonic()
            sock.sendall(struct.pack(">i", len(message)) + message
                         if server.transport == "framed" else message)
            assert closed_by_server(sock, timeout=2) == b""
            assert time.monotonic() - started < IDLE * 0.8  # refused, not left to idle out

    held, calls = steady_latency(server, send_all)
    assert held < 0.1, f"the event loop was held for {held * 1000:.0f} ms"
    reasons = [r.getMessage() for r in caplog.records if "closing" in r.getMessage()]
    assert len(reasons) == len(ZERO_SIZE_CONTAINERS[server.protocol]), reasons
    assert not any("idle" in r for r in reasons), reasons
    server.assert_healthy()


SEND = """
import socket, sys
data = open(sys.argv[2], "rb").read()
sock = socket.create_connection(("127.0.0.1", int(sys.argv[1])), timeout=30)
print("ready", flush=True)
sys.stdin.readline()
sock.sendall(data)
if sys.argv[3] == "drain":
    left = len(data) - 1024
    while left > 0:
        chunk = sock.recv(1 << 20)
        if not chunk:
            sys.exit("the server closed the connection")
        left -= len(chunk)
else:  # stay connected, the message unfinished, until told to go
    print("sent", flush=True)
    sys.stdin.read()
"""
LARGE = 17 << 20


@contextlib.contextmanager
def another_process(server, path, data, drain):
    """A child process connected to the server and holding ``data``; yields a function that has
    it send ``data`` as fast as the server reads and, with ``drain``, read the reply too, else
    stay connected until the block ends. The file is written and the child started before the
    block, so that only the server's reading is counted against its loop, not the test's own
    17 MiB copy, file write and fork."""
    path.write_bytes(data)
    child = subprocess.Popen([sys.executable, "-c", SEND, str(server.port), str(path),
                              "drain" if drain else "stay"],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def send():
        child.stdin.write("go\n")
        child.stdin.flush()
        if drain:
            assert child.wait(timeout=60) == 0
        else:
            assert child.stdout.readline() == "sent\n"

    try:
        assert child.stdout.readline() == "ready\n"
        yield send
    finally:
        child.stdin.close()
        child.wait(timeout=10)
        child.stdout.close()


@pytest.mark.parametrize("wire", WIRES)
def test_reading_a_large_message_does_not_hold_the_event_loop(live, tmp_path, wire):
    """17 MiB of an 18 MiB call, sent by another process as fast as the server reads: while
    the server reads them, the loop is never held for 100 ms and a steady client is served
    (the read buffer's growth held it for 0.3-1.1 s)."""
    server = live(*wire, max_frame_bytes=32 << 20)
    whole = server.request("echo_bytes", data=b"y" * (LARGE + (1 << 20)))
    with another_process(server, tmp_path / "request.bin", whole[:LARGE], drain=False) as send:
        held, calls = steady_latency(server, send)
    assert held < 0.1, f"the event loop was held for {held * 1000:.0f} ms ({calls} calls)"
    server.assert_healthy()


@pytest.mark.parametrize("wire", WIRES)
def test_large_call_is_answered_while_others_are_served(live, tmp_path, wire):
    """A 17 MiB call is read, answered and written back while a steady client is served; the
    loop is held only while the value is decoded and encoded, each in one piece (thriftpy2's
    decoders cannot yield inside a value): tens of ms, bounded here at half a second so that a
    loaded machine's slower copies do not fail it."""
    server = live(*wire, max_frame_bytes=32 << 20)
    request = server.request("echo_bytes", data=b"y" * LARGE)
    with another_process(server, tmp_path / "request.bin", request, drain=True) as send:
        held, calls = steady_latency(server, send)
    assert held < 0.5, f"the event loop was held for {held * 1000:.0f} ms ({calls} calls)"
    server.assert_healthy()


@pytest.mark.parametrize("wire", WIRES)
def test_string_longer_than_the_maximum_is_refused_before_reading_it(live, wire):
    server = live(*wire)
    header = server.request("echo_bytes", data=b"")
    if server.protocol == "binary":  # the string's length prefix is the last 5 bytes but STOP
        message = header[:-5] + struct.pack(">i", 0x7FFFFFF0)
    else:  # compact: a varint length, then STOP
        message = header[:-2] + b"\xf0\xff\xff\xff\x07"
    if server.transport == "framed":
        message = struct.pack(">i", len(message) - 4) + message[4:]
    sock = raw_socket(server.port)
    started = time.monotonic()
    sock.sendall(message)
    assert closed_by_server(sock, timeout=2) == b""
    assert time.monotonic() - started < IDLE * 0.8
    server.assert_healthy()


FLOOD = 20_000  # pipelined calls: ~600 KB, more than a read-size yield would ever cut


@pytest.mark.parametrize("wire", WIRES + [("binary", "theader"), ("compact", "theader")])
def test_a_client_that_always_has_its_next_request_ready_does_not_starve_the_others(
        live, tmp_path, wire):
    """Another process pipelines 20,000 calls on one connection, so the server never has to wait
    for that socket; the server still gives the other connections a turn every few messages:
    its loop is never held for 50 ms, and a steady client is served throughout. (It served the
    flood in runs of ~8,000 calls, one per 256 KiB read: the loop was held for 190-370 ms.)"""
    protocol, transport = wire
    server = live(protocol, "buffered" if transport == "theader" else transport)
    if transport == "theader":
        from soa import theader

        message = server.request("echo", text="flood")
        block = theader.header_block(theader.PROTOCOL_IDS[protocol], 0, b"")
        one = theader.frame_prefix(1, block, len(message)) + message
    else:
        one = server.request("echo", text="flood")
    with another_process(server, tmp_path / "flood.bin", one * FLOOD, drain=True) as send:
        held, calls = steady_latency(server, send)
    assert held < 0.05, f"the event loop was held for {held * 1000:.0f} ms ({calls} calls)"
    server.assert_healthy()
