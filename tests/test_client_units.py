"""Client pieces against in-process servers: pool, retries and budget, deadlines, ejection,
mass-removal guard, IDL policy. (Real processes, etcd and signals: test_client_failures.py.)"""

import logging
import time

import gevent
import pytest
from fixtures.client_handler import IDL
from fixtures.client_misbehaving import (
    RECEIVED,
    BlackHole,
    CannedReply,
    ResetAfterRequest,
    refused_instance,
    unread,
)
from fixtures.client_servers import RawServer
from thriftpy2.thrift import TApplicationException

from soa import deadline
from soa import idl as idl_module
from soa.clients import RetryBudget, StaticResolver
from soa.clients.pool import Pool
from soa.clients.service_client import build
from soa.config import Config
from soa.errors import (
    ClientClosed,
    ConfigError,
    NoInstanceAvailable,
    RetryError,
    RpcTimeout,
    TransportError,
)
from soa.testing.poll import wait_until

MODULE = idl_module.load(IDL)


@pytest.fixture
def servers():
    started = []

    def start(n=1, **kwargs):
        made = [RawServer(**kwargs).start() for _ in range(n)]
        started.extend(made)
        return made

    yield start
    for s in started:
        s.stop()


@pytest.fixture
def soa_servers(tmp_path):
    """In-process soa servers of client_echo.thrift (unregistered): they speak THeader."""
    from soa.config import load_config
    from soa.server.runtime import Server
    from soa.testing.processes import write_config

    path = write_config(tmp_path, etcd_endpoints="127.0.0.1:1", prefix="/unused", services={
        "echo": {"idl": str(IDL), "service": "EchoService",
                 "handler": "fixtures.client_handler:EchoHandler", "port": 0}})
    config = load_config(str(path))
    started = []

    def start(n=1):
        made = [Server(config, config.service("echo"), register=False).start() for _ in range(n)]
        started.extend(made)
        return made

    yield start
    for server in started:
        server.stop(grace=0)


@pytest.fixture
def make_client():
    made = []

    def make(resolver, **options):
        options.setdefault("idl", IDL)
        c = build("echo", Config(), resolver, **options)
        made.append(c)
        return c

    yield make
    for c in made:
        c.close()


def test_a_plain_peer_gets_no_deadline(servers, make_client):
    (server,) = servers()
    assert make_client(resolver_of(server), timeout_ms=2000).deadline_ms() == -1


def test_a_reused_port_refuses_the_call_and_the_client_goes_elsewhere(soa_servers, make_client):
    """The registry still lists a dead instance whose port another instance now holds."""
    from dataclasses import replace

    old, other = soa_servers(2)
    stale = replace(old.instance, id="00000000deadbeef")  # what the dead process registered
    client = make_client(StaticResolver([stale, other.instance]), balancer="round_robin",
                         retries=0)
    before, served = old.handler.calls, other.handler.calls
    for _ in range(6):
        assert client.echo("x") == "x"  # every call succeeds
    assert old.handler.calls == before  # and none ran on the stale registration's port
    assert other.handler.calls == served + 6
    assert stale.address in client.discovery.ejected


def _header_reply(method, seqid, block, *, size=None, words=None):
    """A THeader reply frame to ``method`` (an empty result) with header ``block``; the length
    and word count can be made wrong."""
    from thriftpy2.protocol import TBinaryProtocol
    from thriftpy2.transport import TMemoryBuffer

    from soa import theader

    out = TMemoryBuffer()
    proto = TBinaryProtocol(out)
    proto.write_message_begin(method, 2, seqid)
    proto.write_struct(getattr(MODULE.EchoService, f"{method}_result")(success="hi"))
    proto.write_message_end()
    payload = out.getvalue()
    if size is None:
        size = theader.FIXED_SIZE + len(block) + len(payload)
    head = theader.HEAD.pack(size, theader.MAGIC, 0, seqid,
                             len(block) // 4 if words is None else words)
    return head + block + payload


def _plain_block():
    from soa import theader

    return theader.header_block(0, 0, b"")


@pytest.mark.parametrize("reply, reason", [
    (b"\x00\x00\x00\x30\x12\x34" + bytes(60), "not a THeader reply (magic 0x1234"),
    (_header_reply("echo", 1, _plain_block(), words=0), "0 header words"),
    (_header_reply("echo", 1, _plain_block(), size=14), "whose header fills it"),
    (_header_reply("echo", 1, b"\x00\x01\x05\x00"), "transform"),
], ids=["magic", "no header words", "header fills the frame", "bad header block"])
def test_a_malformed_theader_reply_is_a_clear_sent_failure(reply, reason, make_client):
    peer = CannedReply(reply).start()
    try:
        client = make_client(StaticResolver([peer.instance(theader=True)]), retries=0,
                             timeout_ms=3000)
        with pytest.raises(TransportError) as caught:
            client.echo("x")
        assert caught.value.sent is True
        assert "bad reply" in str(caught.value) and reason in str(caught.value)
    finally:
        peer.stop()


@pytest.mark.parametrize("headers", [None, {"x-note": "kept"}], ids=["plain", "with headers"])
@pytest.mark.parametrize("chunk", [1, 5, 17])
def test_a_theader_reply_split_into_small_segments_is_read_whole(chunk, headers, make_client,
                                                                monkeypatch):
    """Each chunk reaches the client, and the client reads it, before the next is sent."""
    from soa import theader
    from soa.clients import connection, deadlines

    block = (theader.header_block(0, len(headers), theader.encode_pairs(headers.items()))
             if headers else _plain_block())
    reply = _header_reply("echo", 1, block)
    watch = deadlines.watch()
    peer = CannedReply(reply, chunk=chunk, taken=lambda: all(
        unread(conn.sock, RECEIVED) == 0 for conn in watch._calls)).start()
    reads = []
    wire = connection._Wire.__init__

    def counted(self, sock):
        wire(self, sock)
        read = self.read
        self.read = lambda n: reads.append(read(n)) or reads[-1]

    monkeypatch.setattr(connection._Wire, "__init__", counted)
    try:
        client = make_client(StaticResolver([peer.instance(theader=True)]), retries=0,
                             timeout_ms=3000)
        assert client.echo("x") == "hi"
    finally:
        peer.stop()
    assert [len(r) for r in reads] == [len(reply[at:at + chunk])
                                       for at in range(0, len(reply), chunk)]


def resolver_of(*things):
    return StaticResolver([t if not hasattr(t, "instance") else t.instance() for t in things])


# -- pool ----------------------------------------------------------------------------------------


def test_pool_max_size_waits_then_times_out(servers):
    (server,) = servers()
    pool = Pool(server.instance(), size=2, idle_timeout=60)
    soon = time.monotonic() + 1
    a, b = pool.acquire(soon), pool.acquire(soon)
    assert pool.busy == 2
    start = time.monotonic()
    with pytest.raises(RpcTimeout) as e:
        pool.acquire(time.monotonic() + 0.05)
    assert not e.value.sent
    assert time.monotonic() - start < 0.5
    gevent.spawn_later(0.05, pool.release, a)
    c = pool.acquire(time.monotonic() + 1)  # waits for the release
    assert c is a and pool.opened == 2
    pool.release(b)
    pool.release(c)
    assert pool.idle == 2 and pool.busy == 0
    pool.close()


def test_pool_reuses_and_closes_idle_connections(servers):
    (server,) = servers()
    pool = Pool(server.instance(), size=4, idle_timeout=5)
    conn = pool.acquire(time.monotonic() + 1)
    pool.release(conn)
    assert pool.acquire(time.monotonic() + 1) is conn
    pool.release(conn)
    assert pool.sweep(now=time.monotonic() + 1) == 0
    assert pool.sweep(now=time.monotonic() + 6) == 1
    assert pool.idle == 0
    wait_until(lambda: not server.sockets, 2, message="server saw the idle connection close")
    conn2 = pool.acquire(time.monotonic() + 1)
    assert conn2 is not conn and pool.opened == 2
    pool.release(conn2)
    pool.close()


def test_pool_drops_broken_and_stale_connections(servers):
    (server,) = servers()
    pool = Pool(server.instance(), size=4, idle_timeout=60, check_after=0.0)
    conn = pool.acquire(time.monotonic() + 1)
    conn.broken = True
    pool.release(conn)
    assert pool.idle == 0
    conn = pool.acquire(time.monotonic() + 1)
    pool.release(conn)
    wait_until(lambda: server.sockets, 2)
    server.drop_connections()  # the server closes the idle connection
    wait_until(lambda: not conn.alive(), 2)
    fresh = pool.acquire(time.monotonic() + 1)
    assert fresh is not conn and pool.opened == 3
    pool.release(fresh)
    pool.close()
    assert pool.idle == 0


def test_pools_are_closed_when_an_instance_leaves(servers, make_client):
    a, b = servers(2)
    resolver = resolver_of(a, b)
    client = make_client(resolver)
    assert {client.whoami() for _ in range(4)} == {a.port, b.port}
    assert a.sockets and b.sockets
    resolver.set("echo", [b.instance()])
    assert a.address not in client.transport.pools
    wait_until(lambda: not a.sockets, 2, message="a's pooled connections closed")
    assert {client.whoami() for _ in range(4)} == {b.port}


def test_a_closed_client_refuses_calls_and_opens_nothing(servers, make_client):
    (a,) = servers(1)
    client = make_client(resolver_of(a))
    assert client.whoami() == a.port
    client.close()
    wait_until(lambda: not a.sockets, 2, message="the pooled connection closed")
    accepted = a.accepted
    with pytest.raises(ClientClosed, match="echo: the client is closed"):
        client.whoami()
    assert a.accepted == accepted and not a.sockets


def test_protocols_and_transports(servers, make_client):
    made = [servers(protocol=p, transport=t)[0] for p in ("binary", "compact")
            for t in ("buffered", "framed")]
    client = make_client(resolver_of(*made))
    assert {client.whoami() for _ in range(8)} == {s.port for s in made}
    order = MODULE.Order(id=2**40, lines=[MODULE.Line(sku="a", quantity=3, color=2)],
                         prices={"a": 1.5}, tags={"x"}, blob=b"\x00\xff")
    for _ in range(4):
        back = client.place(order, "")
        assert set(back.tags) == order.tags  # thriftpy2 decodes sets as lists
        back.tags = order.tags
        assert back == order


# -- calls, errors, deadlines -----------------------------------------------------------------


def test_declared_exceptions_pass_through_and_are_not_retried(servers, make_client):
    (server,) = servers()
    client = make_client(resolver_of(server))
    before = server.handler.calls
    with pytest.raises(MODULE.Rejected) as e:
        client.place(MODULE.Order(id=1), "sold out")
    assert e.value.reason == "sold out" and e.value.code == 7
    assert server.handler.calls == before + 1
    with pytest.raises(TApplicationException):
        client.crash()


def test_keyword_arguments_and_call_by_name(servers, make_client):
    (server,) = servers()
    client = make_client(resolver_of(server))
    assert client.echo(msg="hi") == "hi"
    assert client.call("echo", "yo") == "yo"
    with pytest.raises(TypeError):
        client.echo("a", "b")
    with pytest.raises(AttributeError):
        client.call("nope")


def test_total_timeout(servers, make_client):
    (server,) = servers()
    client = make_client(resolver_of(server), timeout_ms=100, retries=0)
    start = time.monotonic()
    with pytest.raises(RpcTimeout) as e:
        client.slow(600)
    assert e.value.sent
    assert time.monotonic() - start < 0.4
    assert client.whoami() == server.port  # the next call gets a fresh connection


def test_calls_in_flight_end_at_their_own_deadlines_from_one_watch(make_client):
    """Sockets wait with no timer of their own; the hub's one DeadlineWatch ends each call of
    many in flight at its deadline (within a tick), and holds nothing once they are over."""
    from soa.clients import deadlines

    hole = BlackHole().start()
    try:
        clients = {ms: make_client(StaticResolver([hole.instance()]), timeout_ms=ms, retries=0)
                   for ms in (60, 120, 240)}
        ended = {}

        def call(ms):
            start = time.monotonic()
            with pytest.raises(RpcTimeout) as e:
                clients[ms].echo("x")
            ended[ms] = time.monotonic() - start
            assert e.value.sent

        watch = deadlines.watch()
        callers = [gevent.spawn(call, ms) for ms in clients for _ in range(4)]
        wait_until(lambda: len(watch) == 12, 2)  # all twelve are waiting on their sockets
        assert all(conn.sock.gettimeout() is None for conn in watch._calls)
        gevent.joinall(callers, raise_error=True)
        for ms, took in ended.items():
            assert ms / 1000 <= took < ms / 1000 + 0.1, (ms, took)
        assert len(watch) == 0
        wait_until(lambda: not watch._timer.active, 1)  # the timer stops once nothing waits
    finally:
        hole.stop()


def test_a_call_killed_while_waiting_leaves_the_watch(make_client):
    from soa.clients import deadlines

    hole = BlackHole().start()
    try:
        client = make_client(StaticResolver([hole.instance()]), timeout_ms=200, retries=0)
        watch = deadlines.watch()
        caller = gevent.spawn(client.echo, "x")
        wait_until(lambda: len(watch) == 1, 2)
        caller.kill()
        assert len(watch) == 0  # so the sweep has nothing to throw, into it or anywhere
        assert caller.dead and isinstance(caller.value, gevent.GreenletExit)
        with pytest.raises(RpcTimeout):  # the client goes on: a new call, its own deadline
            client.echo("x")
        assert len(watch) == 0
    finally:
        hole.stop()


def test_deadline_travels_and_nested_calls_inherit_the_earlier_one(soa_servers, make_client):
    (server,) = soa_servers()
    client = make_client(StaticResolver([server.instance]), timeout_ms=2000)
    assert 1500 < client.deadline_ms() <= 2000
    token = deadline.set_current(time.monotonic() + 0.3)
    try:
        assert 0 < client.deadline_ms() <= 300
    finally:
        deadline.reset(token)
    token = deadline.set_current(time.monotonic() + 60)
    try:
        assert client.deadline_ms() <= 2000  # our own timeout is the earlier one
    finally:
        deadline.reset(token)


def test_options_are_checked():
    with pytest.raises(ConfigError, match="balancer"):
        build("echo", Config(), StaticResolver(), idl=IDL, balancer="fastest")
    with pytest.raises(ConfigError, match="unknown client option"):
        build("echo", Config(), StaticResolver(), idl=IDL, timeout=5)
    with pytest.raises(ConfigError, match="unknown service"):
        build("nope", Config(), StaticResolver())


# -- retries -------------------------------------------------------------------------------------


def test_unsent_failures_are_retried_on_another_instance_even_without_retries(servers,
                                                                              make_client):
    (good,) = servers()
    client = make_client(resolver_of(refused_instance(), good), retries=0,
                         balancer="round_robin")
    for _ in range(10):
        assert client.bump("k") >= 1  # not idempotent, still retried: it was never sent


def test_sent_failures_are_retried_only_for_idempotent_methods(servers, make_client):
    (good,) = servers()
    bad = ResetAfterRequest().start()
    try:
        client = make_client(resolver_of(bad, good), retries=2, balancer="round_robin")
        for _ in range(10):
            assert client.echo("x") == "x"
        failures = 0
        for _ in range(10):
            try:
                client.bump("k")
            except TransportError as e:
                assert e.sent
                failures += 1
        assert failures >= 3
    finally:
        bad.stop()


def test_retry_error_keeps_every_attempt():
    bad = [ResetAfterRequest().start() for _ in range(2)]
    try:
        client = build("echo", Config(), resolver_of(*bad), idl=IDL, retries=2)
        with pytest.raises(RetryError) as e:
            client.echo("x")
        assert len(e.value.attempts) == 3
        assert all(isinstance(a, TransportError) and a.sent for a in e.value.attempts)
        assert e.value.method == "echo"
        client.close()
    finally:
        for s in bad:
            s.stop()


def test_no_instance_available(make_client):
    client = make_client(StaticResolver())
    with pytest.raises(NoInstanceAvailable):
        client.echo("x")


def test_retry_budget_token_bucket():
    budget = RetryBudget(ratio=0.1, min_per_second=0)
    assert not budget.withdraw()
    for _ in range(100):
        budget.deposit()
    assert sum(budget.withdraw() for _ in range(20)) == 10
    capped = RetryBudget(ratio=0.5, min_per_second=0, cap=3)
    for _ in range(100):
        capped.deposit()
    assert sum(capped.withdraw() for _ in range(10)) == 3
    quiet = RetryBudget(ratio=0.1, min_per_second=5)
    assert sum(quiet.withdraw() for _ in range(10)) == 5  # the reserve, for low traffic


def test_retry_budget_stops_a_retry_storm():
    bad = [ResetAfterRequest().start() for _ in range(3)]
    try:
        client = build("echo", Config(), resolver_of(*bad), idl=IDL, retries=2,
                       retry_budget=0.1)
        client.budget.min_per_second = client.budget.reserve = 2
        for _ in range(50):
            with pytest.raises((TransportError, RetryError)):
                client.echo("x")
        attempts = sum(s.accepted for s in bad)
        assert attempts <= 50 + 50 * 0.1 + 2 + 1, attempts
        client.close()
    finally:
        for s in bad:
            s.stop()


# -- ejection --------------------------------------------------------------------------------


def test_outlier_is_ejected_and_probed_before_readmission(servers, make_client):
    (good,) = servers()
    hole = BlackHole().start()
    try:
        client = make_client(resolver_of(hole, good), timeout_ms=80, retries=0,
                             eject_after=3, balancer="round_robin")
        timeouts = 0
        for _ in range(12):
            try:
                client.whoami()
            except RpcTimeout:
                timeouts += 1
        # the first timeout ejects it, the other instance being healthy (one more only if the
        # machine stalls)
        assert 1 <= timeouts <= 2
        assert hole.address in client.discovery.ejected
        assert [i.port for i in client.instances] == [good.port]
        # the probe (ping) gets no answer, so it stays out with a longer backoff
        wait_until(lambda: client.ejector.streak.get(hole.address, 0) >= 2, 3)
        assert hole.address in client.discovery.ejected
    finally:
        hole.stop()


def test_strikes_eject_at_once_only_when_the_others_are_healthy(servers, make_client):
    a, b, c = servers(3)
    client = make_client(resolver_of(a, b, c), eject_after=3)
    client.ejector.failed(a.address)  # b and c are healthy: a is the outlier
    assert a.address in client.discovery.ejected
    client.ejector.failed(b.address)  # c is healthy: out at once too
    assert b.address in client.discovery.ejected
    assert [i.port for i in client.instances] == [c.port]  # never the last one


def test_strikes_need_eject_after_in_a_row_when_others_fail_too(servers, make_client):
    a, b = servers(2)
    client = make_client(resolver_of(a, b), eject_after=3)
    client.ejector.strikes[b.address] = 1  # b failed too: the fault may not be a's
    client.ejector.failed(a.address)
    client.ejector.failed(a.address)
    assert not client.discovery.ejected
    client.ejector.failed(a.address)
    assert a.address in client.discovery.ejected


def test_ejected_instance_comes_back_after_a_probe(servers, make_client):
    a, b = servers(2)
    client = make_client(resolver_of(a, b), eject_after=1)
    client.ejector.base = 0.05
    client.ejector.failed(a.address)
    assert [i.port for i in client.instances] == [b.port]
    wait_until(lambda: len(client.instances) == 2, 2, message="readmitted after the probe")


def test_the_last_instance_is_never_ejected(servers, make_client):
    (a,) = servers()
    client = make_client(resolver_of(a), eject_after=1)
    client.ejector.failed(a.address)
    assert [i.port for i in client.instances] == [a.port]


# -- discovery: guard, IDL policy, weights ---------------------------------------------------


def test_mass_removal_is_held_until_probes_confirm(servers, make_client):
    a, b, c = servers(3)
    resolver = resolver_of(a, b, c)
    client = make_client(resolver)
    client.discovery.probe_interval = 0.05
    resolver.set("echo", [])  # a registry glitch: everything gone at once
    assert len(client.instances) == 3
    assert {client.whoami() for _ in range(9)} == {a.port, b.port, c.port}
    c.kill()
    wait_until(lambda: len(client.instances) == 2, 3, message="c dropped after a failed probe")
    assert {client.whoami() for _ in range(6)} == {a.port, b.port}
    resolver.set("echo", [a.instance()])  # a is back: the registry is right again about a
    assert set(client.discovery.held) == {b.address}


def test_removing_more_than_the_share_is_guarded_but_less_is_not(servers, make_client):
    a, b, c, d = servers(4)
    resolver = resolver_of(a, b, c, d)
    client = make_client(resolver, mass_removal_share=0.5)
    resolver.set("echo", [a.instance(), b.instance(), c.instance()])  # 1 of 4: a normal change
    assert len(client.instances) == 3
    resolver.set("echo", [a.instance()])  # 2 more: 3 of the 4 seen within the window, held
    # d, removed a moment ago, counts too: removals are judged against the largest set seen
    # within the window (issue 10), so all three come back until probes say otherwise.
    assert len(client.instances) == 4
    assert set(client.discovery.held) == {b.address, c.address, d.address}


def test_idl_mismatch_warn_uses_instance_and_warns_once(servers, make_client, caplog):
    (good,) = servers()
    (other,) = servers(idl_hash="sha256:0000000000000000")
    caplog.set_level(logging.WARNING, logger="soa.client")
    client = make_client(resolver_of(good, other), idl_mismatch="warn")
    assert {client.whoami() for _ in range(6)} == {good.port, other.port}
    client.discovery.update([good.instance(), other.instance()])
    warnings = [r for r in caplog.records if "IDL" in r.getMessage()]
    assert len(warnings) == 1 and other.address in warnings[0].getMessage()


def test_idl_mismatch_exclude(servers, make_client):
    (good,) = servers()
    (other,) = servers(idl_hash="sha256:0000000000000000")
    (unknown,) = servers(idl_hash="")
    client = make_client(resolver_of(good, other, unknown), idl_mismatch="exclude")
    assert {client.whoami() for _ in range(6)} == {good.port, unknown.port}
    only = make_client(resolver_of(other), idl_mismatch="exclude")
    with pytest.raises(NoInstanceAvailable, match="IDL mismatch"):
        only.whoami()


def test_weight_zero_gets_no_calls(servers, make_client):
    a, b = servers(2)
    client = make_client(StaticResolver([a.instance(), b.instance(weight=0)]))
    assert {client.whoami() for _ in range(6)} == {a.port}


def test_consistent_hash_by_argument(servers, make_client):
    made = servers(3)
    client = make_client(resolver_of(*made), balancer="consistent_hash", hash_key="ms")
    assert len({client.slow(1) for _ in range(5)}) == 1
    assert len({client.slow(ms) for ms in range(30)}) > 1


def test_least_inflight_spreads_load(servers, make_client):
    made = servers(3)
    client = make_client(resolver_of(*made), balancer="least_inflight")
    ports = [g.value for g in gevent.joinall([gevent.spawn(client.slow, 30) for _ in range(30)])]
    assert set(ports) == {s.port for s in made}
    assert all(v == 0 for v in client.transport.load.inflight.values())


def test_client_metrics_count_every_call_by_outcome_around_user_middleware(soa_servers,
                                                                          make_client):
    """The bound method records each call (its user middleware and retries included); a
    call refused by user middleware counts, a call with bad arguments never starts."""
    (server,) = soa_servers()

    def refuse_bump(next_handler):
        def handle(call):
            if call.method == "bump":
                raise TransportError("refused by middleware", sent=False)
            return next_handler(call)
        return handle

    client = make_client(StaticResolver([server.instance]), middleware=[refuse_bump],
                         retries=0)
    for _ in range(3):
        assert client.echo("x") == "x"
    with pytest.raises(TApplicationException):
        client.crash()
    with pytest.raises(TransportError):
        client.bump("k")
    with pytest.raises(TypeError):
        client.echo("x", "too many")
    snapshot = client.metrics.snapshot()
    assert snapshot["echo"]["calls"] == 3 and snapshot["echo"]["errors"] == {}
    assert sum(snapshot["echo"]["buckets_ms"].values()) == 3
    assert snapshot["crash"] == {**snapshot["crash"], "calls": 1,
                                 "errors": {"application": 1}}
    assert snapshot["bump"]["calls"] == 1 and snapshot["bump"]["errors"] == {"transport": 1}
    assert snapshot["echo"]["mean_ms"] > 0

    quiet = make_client(StaticResolver([server.instance]), metrics=False)
    assert quiet.echo("y") == "y"
    assert quiet.metrics.snapshot() == {}
