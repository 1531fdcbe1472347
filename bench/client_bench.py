"""The soa client against a raw thriftpy2 client (baseline), on the same servers.

Groups (per call and concurrency): ``raw thriftpy2 -> thriftpy2`` (baseline: ``make_client``, one
connection per greenlet, against ``make_server`` on gevent), ``soa -> soa`` (one shared soa client,
its pool and middleware, against a soa server), ``soa -> soa over TLS`` (what TLS costs per call,
in the same run), and ``soa -> thriftpy2`` (the client alone changes). Against soa servers the
client speaks THeader, as it does with a registered soa server (deadline and target identity on
every call); against thriftpy2, plain. ``soa -> soa, plain Thrift`` calls the same soa server
without THeader (as a client does an instance registered without ``theader``): what THeader
costs the client. The soa client gets its instance from a fixed resolver:
discovery is off the call path either way (a call never touches etcd), so this measures the
per-call path. Calls: ``ping`` and a 1 KB ``echo``; concurrency 1 and 64. Every round starts a
fresh set of server processes (``harness.fresh_servers``).

The CPU column is the CPU time of THIS process (the client side, load generator included) per
call; the case name carries what soa adds per call over the baseline, in microseconds. The soa
client runs with metrics on (the default) and, in the same run, with ``metrics=False``
(``soa metrics off -> thriftpy2``); the ``soa -> thriftpy2`` case's name also carries what
metrics add per call (``metrics +X.XX us``).
"""

import os
from pathlib import Path

from . import harness
from .server_bench import CALLS, thrift_caller

IDL = Path(__file__).with_name("bench.thrift")
CONCURRENCY = (1, 64)


def soa_caller(port, method, pool_size, theader=False, tls=None, metrics=True):
    """One soa client shared by every greenlet of the measurement; ``theader`` as a soa server
    registers itself (the call then carries its deadline and target in a THeader frame);
    ``metrics=False`` drops the client's metrics middleware."""
    from soa.registry.instance import Instance
    from soa.clients import StaticResolver
    from soa.clients.service_client import build
    from soa.config import Config

    resolver = StaticResolver([Instance(service="bench", host=harness.HOST, port=port,
                                        theader=theader, tls=tls is not None)])
    client = build("bench", Config(), resolver, idl=IDL, thrift_service="BenchService",
                   timeout_ms=30000, pool_size=pool_size, tls=tls, metrics=metrics)
    fn, args = getattr(client, method), CALLS[method]
    open_callers = [0]

    def close():
        open_callers[0] -= 1
        if open_callers[0] == 0:  # the last greenlet's caller closes the shared client
            client.close()

    def make():
        open_callers[0] += 1
        return (lambda: fn(*args)), close

    return make


def run(args):
    import thriftpy2

    module = thriftpy2.load(str(IDL), module_name="bench_thrift")
    import tempfile

    from soa.testing.certs import Authority
    from soa.tls import ClientTls

    me = os.getpid()
    pki = Path(tempfile.mkdtemp(prefix="soa-bench-pki-"))
    authority = Authority(pki, "ca")
    authority.issue("server")
    tls = ClientTls(ca=str(authority.path))
    servers = {
        "soa": ("bench.server_bench:soa_server",),
        "soa-tls": ("bench.server_bench:soa_server", str(pki)),
        "thriftpy2": ("bench.server_bench:thriftpy2_server",),
    }
    cases = [
        ("raw thriftpy2 -> thriftpy2", "thriftpy2", "raw", True),
        ("soa -> soa", "soa", "soa", False),
        ("soa -> soa, plain Thrift", "soa", "soa plain", False),
        ("soa -> soa over TLS", "soa-tls", "soa", False),
        ("soa -> thriftpy2", "thriftpy2", "soa", False),
        ("soa metrics off -> thriftpy2", "thriftpy2", "soa off", False),
    ]
    groups = [(method, concurrency) for method in CALLS for concurrency in CONCURRENCY]
    results = {(group, case): [] for group in groups for case, *_ in cases}
    for _ in range(args.rounds):
        with harness.fresh_servers(servers) as running:
            for method, concurrency in groups:
                makers = []
                for _case, server, client, _ in cases:
                    port = running[server].port
                    if client == "raw":
                        makers.append(thrift_caller(module, port, method))
                    else:
                        makers.append(soa_caller(port, method, max(concurrency, 1),
                                                 theader=(server.startswith("soa")
                                                          and client != "soa plain"),
                                                 tls=tls if server == "soa-tls" else None,
                                                 metrics=client != "soa off"))
                measured = harness.compare([(make, me) for make in makers], concurrency,
                                           args.seconds)
                for (case, *_), result in zip(cases, measured):
                    results[(method, concurrency), case].append(result)
    rows = []
    for method, concurrency in groups:
        mine = {case: results[(method, concurrency), case] for case, *_ in cases}
        base = harness.median([r.cpu_us for r in mine[cases[0][0]]])
        for case, _, _, baseline in cases:
            label = case
            if not baseline:
                extra = harness.median([r.cpu_us for r in mine[case]]) - base
                label = f"{case} ({extra:+.1f} us cpu/call)"
            if case == "soa -> thriftpy2":
                pairs = zip(mine[case], mine["soa metrics off -> thriftpy2"])
                added = harness.median([a.cpu_us - b.cpu_us for a, b in pairs])
                label = f"{case} ({extra:+.1f} us cpu/call; metrics {added:+.2f} us)"
            rows.append(harness.Row(f"client {method} c={concurrency}", label, mine[case],
                                    baseline))
    rows += metrics_alone_rows(args.rounds)
    return rows


def metrics_alone_rows(rounds, calls=200_000, cold_calls=100):
    """What the client's metrics add to a call, alone: a client's bound method over a no-op
    handler, without (the baseline) and with its recording (soa.clients.service_client).

    Two groups. ``client metrics alone``: ``calls`` calls in a hot loop, in CPU time
    (``process_time``, so a busy machine does not count). ``client metrics alone, cold
    caches``: ``cold_calls`` calls each, taking turns, with ``EVICT_BYTES`` copied before every
    one, as a process that slept between calls wakes (the caches and TLB hold other work's
    memory); the CPU column is the median time of one call (no I/O, so its CPU). The case's
    name carries the difference."""
    import time
    from types import SimpleNamespace

    from soa.clients.metrics import MethodStats
    from soa.clients.service_client import _bound

    plan = SimpleNamespace(name="ping", bind=None, arg_names=())
    methods = {"bare": _bound("bench", plan, lambda _call: None),
               "recorded": _bound("bench", plan, lambda _call: None, MethodStats())}
    hot = {name: [] for name in methods}
    cold = {name: [] for name in methods}
    source, scratch = bytes(EVICT_BYTES), bytearray(EVICT_BYTES)
    clock = time.perf_counter
    for _ in range(rounds):
        for name, method in methods.items():
            start = time.process_time()
            for _ in range(calls):
                method()
            cpu = time.process_time() - start
            hot[name].append(harness.Result(calls, cpu, 0.0, 0.0, cpu / calls * 1e6))
        times = {name: [] for name in methods}
        for _ in range(cold_calls):
            for name, method in methods.items():
                scratch[:] = source  # reads and writes EVICT_BYTES (no allocation)
                start = clock()
                method()
                times[name].append(clock() - start)
        for name, spent in times.items():
            typical = harness.median(spent)
            cold[name].append(harness.Result(len(spent), sum(spent), typical * 1e3,
                                             harness._pct(sorted(spent), 0.99) * 1e3,
                                             typical * 1e6))
    rows = []
    for group, results in (("client metrics alone", hot),
                           ("client metrics alone, cold caches", cold)):
        added = harness.median([w.cpu_us - b.cpu_us
                                for w, b in zip(results["recorded"], results["bare"])])
        rows += [harness.Row(group, "bound method, no metrics", results["bare"], True),
                 harness.Row(group, f"+ metrics ({added:+.2f} us cpu/call)",
                             results["recorded"])]
    return rows


# Bytes copied before each call of the cold-caches group: read and written, as much memory as
# this machine's last-level cache (48 MiB) holds, in far more pages than its TLB maps.
EVICT_BYTES = 24 << 20


if __name__ == "__main__":
    import argparse

    from gevent import monkey

    monkey.patch_all()
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=2.0)
    parser.add_argument("--rounds", type=int, default=3)
    harness.print_table(run(parser.parse_args()))
