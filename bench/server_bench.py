"""The soa server against raw thriftpy2 ``make_server`` (baseline) and a raw gevent echo (floor).

All three are called over 127.0.0.1 by the same load generator: a raw thriftpy2 client (cybin,
buffered) for the two Thrift servers, and a raw socket sending the same request bytes for the
echo floor. Calls: ``ping`` and a 1 KB ``echo``; concurrency 1 and 64 (one connection per
greenlet). The soa server runs with its default middleware (access log off, metrics on), and
again with ``metrics: false`` in the same run: the ``soa`` case's name carries what metrics add
per call, in server CPU microseconds (``metrics +X.XX us cpu/call``). The ``wire`` groups also
call a second, identical soa server process (``soa again``): how far its figures stand from the
``soa`` row's is what this machine's noise alone does to a comparison. Every soa server process
serves the same cases as its counterpart (``soa`` and ``soa metrics off``: the thriftpy2 client
and the wire; THeader and the A/A row a process each), so that the metrics figure compares like
with like. Every round starts a fresh set of server processes (``harness.fresh_servers``).

The groups called by the thriftpy2 client are bound by that client (the load generator uses a
whole core while the soa server does not). There a server that keeps up loses calls: it is
idle when each request is sent, and waking its core is charged to the sender's system time.
The control case shows it: a soa server that burns ``SLOWED_US`` more CPU per call, and so
sleeps less, serves more calls per second there than the plain one (the wire groups measure
the servers themselves). Both kinds of group also call a soa server with ``spin_us: 0``, whose
hub sleeps as soon as it has nothing to run (soa.server.spin): what polling before sleeping
does, in the same run.
"""

import os
import socket
import tempfile
from pathlib import Path

from . import harness

IDL = Path(__file__).with_name("bench.thrift")
TEXT_1K = "x" * 1024
CALLS = {"ping": (), "echo": (TEXT_1K,)}
CONCURRENCY = (1, 64)
SLOWED_US = 3
SPIN_OFF = "soa spin_us: 0 (sleeps at once)"


class BenchHandler:
    burn = 0.0  # seconds of busy CPU per call: the control case's deliberately slower server

    def ping(self):
        if self.burn:
            _burn(self.burn)

    def echo(self, text):
        if self.burn:
            _burn(self.burn)
        return text


def _burn(seconds):
    from time import perf_counter

    end = perf_counter() + seconds
    while perf_counter() < end:
        pass


# -- servers (each runs in its own process, started by harness.start_server) -----------------

def soa_server(tls_folder=None, metrics=True, burn_us=0, spin_us=None):
    """The soa server; with ``tls_folder`` (holding server.crt/.key) it serves TLS; with
    ``metrics=False`` it records nothing and serves no /metrics; ``burn_us`` makes its handler
    burn that much CPU per call (the control case); ``spin_us`` overrides the default of
    soa.yaml's ``spin_us`` (soa.server.spin)."""
    BenchHandler.burn = burn_us / 1e6
    from soa.config import load_config
    from soa.server import Server

    root = Path(tempfile.mkdtemp(prefix="soa-bench-"))
    tls = (f"    tls: {{cert: {tls_folder}/server.crt, key: {tls_folder}/server.key}}\n"
           if tls_folder else "")
    (root / "soa.yaml").write_text(
        "services:\n"
        "  bench:\n"
        f"    idl: {IDL}\n"
        "    service: BenchService\n"
        "    handler: bench.server_bench:BenchHandler\n"
        "    host: 127.0.0.1\n"
        "    port: 0\n" + tls
        + f"    metrics: {'true' if metrics else 'false'}\n"
        + (f"    spin_us: {spin_us}\n" if spin_us is not None else "")
    )
    config = load_config(str(root / "soa.yaml"))
    # Registration is off: this measures serving, and needs no etcd.
    server = Server(config, config.service("bench"), register=False).start()
    return server.address[1]


def soa_servers(metrics, spin_us=None):
    """One process serving the bench service once per flag of ``metrics`` (each a Server of
    its own, metrics on or off); returns their ports. Between the servers of one process
    nothing differs but the recording: not the process's placement, memory layout or luck."""
    return [soa_server(None, on, 0, spin_us) for on in metrics]


def thriftpy2_server():
    import gevent
    import thriftpy2
    from thriftpy2.rpc import make_server

    module = thriftpy2.load(str(IDL), module_name="bench_thrift")
    port = _free_port()
    # A client timeout as by default (a timer on every wait), but of 60 s instead of 3 s: a
    # case's connections sit idle while the other cases take their turns.
    server = make_server(module.BenchService, BenchHandler(), harness.HOST, port,
                         client_timeout=60000)
    gevent.spawn(server.serve)
    _await_listening(port)
    return port


def echo_server():
    from gevent.server import StreamServer

    def handle(sock, _address):
        recv, sendall = sock.recv, sock.sendall
        while True:
            data = recv(65536)
            if not data:
                return
            sendall(data)

    server = StreamServer((harness.HOST, 0), handle)
    server.start()
    return server.server_port


def _await_listening(port, timeout=10.0):
    import gevent

    deadline = gevent.get_hub().loop.now() + timeout
    while True:
        try:
            socket.create_connection((harness.HOST, port), timeout=1).close()
            return
        except OSError:
            if gevent.get_hub().loop.now() > deadline:
                raise
            gevent.sleep(0.01)


def _free_port():
    with socket.socket() as s:
        s.bind((harness.HOST, 0))
        return s.getsockname()[1]


# -- clients ------------------------------------------------------------------------------

def thrift_caller(module, port, method):
    from thriftpy2.rpc import make_client

    def make():
        client = make_client(module.BenchService, harness.HOST, port, timeout=30000)
        fn, args = getattr(client, method), CALLS[method]
        return (lambda: fn(*args)), client.close

    return make


def echo_caller(module, port, method):
    """The floor: the request's bytes to a raw echo, read back in full."""
    request = _request_bytes(module, method)
    return _bytes_caller(port, request, len(request))


def wire_caller(module, port, method):
    """A Thrift client reduced to its wire: pre-encoded request bytes, the reply read by size.

    It costs the load generator far less per call than a thriftpy2 client, so throughput is
    bounded by the server under test rather than by the process measuring it.
    """
    return _bytes_caller(port, _request_bytes(module, method), len(_reply_bytes(module, method)))


def theader_wire_caller(module, port, method):
    """The wire caller in THeader frames, with the metadata a soa client sends (service,
    caller, a deadline): what the THeader path costs the server."""
    from soa import theader

    payload = _request_bytes(module, method)
    pairs = [(theader.SERVICE, "bench"), (theader.CALLER, "bench-client"),
             (theader.DEADLINE, "30000")]
    block = theader.header_block(0, len(pairs), theader.encode_pairs(pairs))
    request = theader.frame_prefix(1, block, len(payload)) + payload
    reply = len(_reply_bytes(module, method)) + 4 + theader.FIXED_SIZE + 4
    return _bytes_caller(port, request, reply)


def _bytes_caller(port, request, size):
    def make():
        sock = socket.create_connection((harness.HOST, port))
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        recv, sendall = sock.recv, sock.sendall

        def call():
            sendall(request)
            got = 0
            while got < size:
                chunk = recv(65536)
                if not chunk:
                    raise ConnectionError("server closed the connection")
                got += len(chunk)

        return call, sock.close

    return make


def _request_bytes(module, method):
    from thriftpy2.thrift import TMessageType

    args = getattr(module.BenchService, method + "_args")(*CALLS[method])
    return _message(method, TMessageType.CALL, args)


def _reply_bytes(module, method):
    from thriftpy2.thrift import TMessageType

    result = getattr(module.BenchService, method + "_result")()
    if method == "echo":
        result.success = CALLS[method][0]
    return _message(method, TMessageType.REPLY, result)


def _message(method, message_type, struct):
    from thriftpy2.protocol import TBinaryProtocol
    from thriftpy2.transport import TMemoryBuffer

    buf = TMemoryBuffer()
    proto = TBinaryProtocol(buf)
    proto.write_message_begin(method, message_type, 1)
    proto.write_struct(struct)
    proto.write_message_end()
    return buf.getvalue()


# -- the benchmark ------------------------------------------------------------------------------

def run(args):
    import thriftpy2

    module = thriftpy2.load(str(IDL), module_name="bench_thrift")
    servers = {
        "soa": ("bench.server_bench:soa_server",),
        "soa metrics off": ("bench.server_bench:soa_server", None, False),
        "soa again": ("bench.server_bench:soa_server",),
        "soa THeader": ("bench.server_bench:soa_server",),
        "soa spin off": ("bench.server_bench:soa_server", None, True, 0, 0),
        "soa slowed": ("bench.server_bench:soa_server", None, True, SLOWED_US),
        "thriftpy2": ("bench.server_bench:thriftpy2_server",),
        "gevent echo": ("bench.server_bench:echo_server",),
    }
    # (group suffix, case, server, load generator, baseline?)
    cases = [
        ("", "soa", "soa", thrift_caller, False),
        ("", "soa metrics off", "soa metrics off", thrift_caller, False),
        ("", "thriftpy2", "thriftpy2", thrift_caller, True),
        ("", "gevent echo", "gevent echo", echo_caller, False),
        ("", SPIN_OFF, "soa spin off", thrift_caller, False),
        ("", f"soa slowed by {SLOWED_US} us cpu/call (control)", "soa slowed", thrift_caller,
         False),
        (" wire", "soa", "soa", wire_caller, False),
        (" wire", "soa metrics off", "soa metrics off", wire_caller, False),
        (" wire", "soa THeader", "soa THeader", theader_wire_caller, False),
        (" wire", SPIN_OFF, "soa spin off", wire_caller, False),
        (" wire", "soa again, another process (A/A: the noise)", "soa again", wire_caller,
         False),
        (" wire", "thriftpy2", "thriftpy2", wire_caller, True),
    ]
    groups = [(method, concurrency) for method in CALLS for concurrency in CONCURRENCY]
    results = {(group, suffix, name): [] for group in groups for suffix, name, *_ in cases}
    for _ in range(args.rounds):
        with harness.fresh_servers(servers) as running:
            for method, concurrency in groups:
                measured = harness.compare(
                    [(caller(module, running[server].port, method), running[server].proc.pid)
                     for _, _, server, caller, _ in cases],
                    concurrency, args.seconds)
                for (suffix, name, *_), result in zip(cases, measured):
                    results[(method, concurrency), suffix, name].append(result)
    rows = []
    for method, concurrency in groups:
        mine = {(suffix, name): results[(method, concurrency), suffix, name]
                for suffix, name, *_ in cases}
        for suffix, name, _, _, baseline in cases:
            label = name
            if name == "soa":
                label = f"soa (metrics {_added(mine, suffix):+.2f} us cpu/call)"
            rows.append(harness.Row(f"server {method} c={concurrency}{suffix}", label,
                                    mine[suffix, name], baseline))
    return rows



def _added(results, suffix):
    """Median over rounds of (metrics on - metrics off) server CPU per call, in us."""
    pairs = zip(results[suffix, "soa"], results[suffix, "soa metrics off"])
    return harness.median([on.cpu_us - off.cpu_us for on, off in pairs
                           if on.cpu_us is not None and off.cpu_us is not None])


os.environ.setdefault("PROTOCOL_BUFFERS_PYTHON_IMPLEMENTATION", "python")
