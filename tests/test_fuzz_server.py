"""Fuzzing a live server: hypothesis-made messages and frames, for every protocol and transport,
plain and in THeader frames, while a steady client keeps calling.

Each example opens a connection, sends its bytes (at once, or a byte at a time), ends its side
and waits for the server to close: whatever it sent, the server answers or refuses it and closes
within seconds. Throughout, the event loop is never held for 100 ms (tiny messages declaring
huge empty containers froze it for seconds). Afterwards the server still serves a new client, and
its socket fds, connections and greenlets are back to their baseline.

Deterministic (``derandomize``, no example database) and bounded: a few hundred examples in all,
each a few ms.
"""

import socket

import gevent
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fixtures import wire_fuzz as wf
from fixtures.badinput import WIRES, LoopWatch, closed_by_server, live_servers
from fixtures.server_support import raw_socket

FUZZ = settings(max_examples=60, deadline=None, derandomize=True, database=None,
                suppress_health_check=list(HealthCheck), print_blob=True)
HELD_MAX = 0.1


@pytest.fixture
def live(tmp_path, etcd_config):
    yield from live_servers(tmp_path, etcd_config)


def exchange(port, data, pause=None):
    """Send ``data`` (a byte at a time with ``pause`` seconds between), end our side, and wait for
    the server to close; returns what it sent. Fails if it has not closed within 3 s."""
    sock = raw_socket(port)
    try:
        if pause is None:
            sock.sendall(data)
        else:
            for i in range(len(data)):
                sock.send(data[i:i + 1])
                gevent.sleep(pause)
        sock.shutdown(socket.SHUT_WR)
    except OSError:  # the server refused it before it was all sent
        pass
    return closed_by_server(sock, timeout=3)


def payloads(protocol, module):
    """Message-sized payloads in ``protocol``: random bytes, valid headers with garbage bodies,
    structured messages with lying counts and bad types, deep nesting, valid calls mutated or cut
    short."""
    valid = [wf.message(protocol, "echo", [(1, ("str", b"hello", None))]),
             wf.message(protocol, "add", [(1, ("fixed", 8, b"\0\0\0\1")),
                                          (2, ("fixed", 8, b"\0\0\0\2"))]),
             wf.message(protocol, "roundtrip", [(1, ("struct", [
                 (1, ("str", b"n", None)),
                 (2, ("list", 8, None, [("fixed", 8, b"\0\0\0\7")] * 3)),
                 (3, ("map", 11, 11, None, [("str", b"k", None), ("str", b"v", None)]))]))])]
    header = st.sampled_from(wf.METHODS).map(lambda name: wf.message(protocol, name, [])[:-1])
    return st.one_of(
        st.binary(max_size=300),
        st.tuples(header, st.binary(max_size=200)).map(b"".join),
        wf.messages(protocol),
        st.sampled_from(valid).flatmap(wf.mutated),
        st.tuples(st.sampled_from(valid), st.integers(0, 60)).map(lambda t: t[0][:t[1]]),
        st.tuples(st.integers(20, 300), st.sampled_from(["struct", "list"])).map(
            lambda t: wf.message(protocol, "echo", [(1, wf.deep(*t))])),
    )


def framing(transport, payload_strategy):
    if transport != "framed":
        return payload_strategy
    lies = st.one_of(st.none(), st.none(), st.integers(-5, 10), st.integers(0, 1 << 31),
                     st.just(0x7FFFFFFF))
    return st.tuples(payload_strategy, lies).map(lambda t: wf.framed(*t))


def fuzz(server, strategy, pause=None, examples=None):
    """Run the examples against ``server``; returns how long the loop was held at most."""
    watch = LoopWatch()

    @(FUZZ if examples is None else settings(FUZZ, max_examples=examples))
    @given(strategy)
    def one(data):
        watch.restart()  # generating the example (in this thread too) is not the server's work
        exchange(server.port, data, pause)

    try:
        one()
    finally:
        held = watch.stop()
    return held


@pytest.mark.parametrize("wire", WIRES, ids=["-".join(w) for w in WIRES])
def test_fuzzed_messages(live, wire):
    server = live(*wire)
    held = fuzz(server, framing(server.transport, payloads(server.protocol, server.module)))
    assert held < HELD_MAX, f"the event loop was held for {held * 1000:.0f} ms"
    server.assert_healthy()


@pytest.mark.parametrize("wire", [("binary", "buffered"), ("compact", "framed")],
                         ids=["binary-buffered", "compact-framed"])
def test_fuzzed_theader_frames(live, wire):
    """THeader frames (which any soa server accepts beside its own format) with bad header sizes,
    info counts, protocol ids and transforms, around payloads of either protocol."""
    server = live(*wire)
    strategy = st.sampled_from(["binary", "compact"]).flatmap(
        lambda protocol: payloads(protocol, server.module)).flatmap(wf.theader_frames)
    held = fuzz(server, strategy)
    assert held < HELD_MAX, f"the event loop was held for {held * 1000:.0f} ms"
    server.assert_healthy()


@pytest.mark.parametrize("wire", WIRES, ids=["-".join(w) for w in WIRES])
def test_byte_at_a_time_senders(live, wire):
    """Slowloris-style: calls (valid or mutated) sent one byte at a time are answered or refused,
    and the steady client is served meanwhile."""
    server = live(*wire)
    valid = server.request("echo", text="slow")
    strategy = st.one_of(st.just(valid), wf.mutated(valid))
    held = fuzz(server, strategy, pause=0.001, examples=6)
    assert held < HELD_MAX, f"the event loop was held for {held * 1000:.0f} ms"
    assert exchange(server.port, valid, pause=0.001)  # a whole call gets its reply
    server.assert_healthy()
