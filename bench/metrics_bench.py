"""What metrics cost per call, on the server and on the client, each beside an A/A pair.

Every group has four cases: metrics off (the baseline), metrics off again (the A/A: what the
noise alone makes of a difference), metrics on, and metrics on again. Each round starts fresh
server processes and fresh clients, and the cases take short turns in shuffled orders.

- ``server ... c=1``: four soa server processes (``spin_us: 0``, so their CPU is what serving
  costs, not how long they polled) take ``TURNS`` turns of ``CALLS_PER_TURN`` sequential wire
  pings; each process's CPU per call is summed over its turns. A server that sleeps between
  calls wakes with cold caches: this is the dearest case per line of code.
- ``server ... c=64``: the same four processes, 64 connections each (``harness.compare``).
- ``client ... -> thriftpy2``: four soa clients in this process (metrics on and off) calling one
  raw thriftpy2 server; the CPU of this process per call (``harness.compare``).

A case's name carries the median over the rounds of its per-round difference in CPU per call
to the baseline, and the sign-test interval of that median (``harness.median_interval``): with
5 rounds the range of the rounds, about 94%; with 9 or more, about 95% or over. The ``x cpu``
column is the median of the per-round ratios.
"""

import os
import time

from . import harness
from . import server_bench as sb
from .client_bench import soa_caller

TURNS = 100
CALLS_PER_TURN = 400
WARMUP_CALLS = 2000
CASES = (("metrics off", False), ("metrics off again (A/A: the noise)", False),
         ("metrics on", True), ("metrics on again", True))


def run(args):
    import thriftpy2

    module = thriftpy2.load(str(sb.IDL), module_name="bench_thrift")
    server_c1 = "server metrics cost, ping c=1 wire, spin_us 0"
    server_c64 = "server metrics cost, ping c=64 wire, spin_us 0"
    client_groups = {(method, c): f"client metrics cost, {method} c={c} -> thriftpy2"
                     for method, c in (("ping", 1), ("ping", 64))}
    results = {}  # (group, case) -> [Result per round]

    def add(group, measured):
        for (name, _), result in zip(CASES, measured):
            results.setdefault((group, name), []).append(result)

    me = os.getpid()
    for _ in range(args.rounds):
        specs = {name: ("bench.server_bench:soa_server", None, on, 0, 0) for name, on in CASES}
        specs["thriftpy2"] = ("bench.server_bench:thriftpy2_server",)
        with harness.fresh_servers(specs) as running:
            servers = [running[name] for name, _ in CASES]
            add(server_c1, _sequential_turns(module, servers))
            add(server_c64, harness.compare(
                [(sb.wire_caller(module, s.port, "ping"), s.proc.pid) for s in servers],
                64, args.seconds))
            port = running["thriftpy2"].port
            for (method, concurrency), group in client_groups.items():
                add(group, harness.compare(
                    [(soa_caller(port, method, concurrency, metrics=on), me)
                     for _, on in CASES], concurrency, args.seconds))
    rows = []
    for group in dict.fromkeys(group for group, _ in results):
        base = results[group, CASES[0][0]]
        rows.append(harness.Row(group, CASES[0][0], base, baseline=True))
        for name, _ in CASES[1:]:
            mine = results[group, name]
            low, mid, high = harness.median_interval([a.cpu_us - b.cpu_us
                                                      for a, b in zip(mine, base)])
            rows.append(harness.Row(group, f"{name} ({mid:+.2f} us cpu/call, interval"
                                           f" {low:+.2f} to {high:+.2f})", mine))
    return rows


def _sequential_turns(module, servers):
    """One round of the c=1 group: ``TURNS`` turns of ``CALLS_PER_TURN`` sequential pings per
    server, in shuffled orders (``harness.turn_orders``); one ``Result`` per server with its
    CPU per call over all its turns."""
    request = sb._request_bytes(module, "ping")
    size = len(sb._reply_bytes(module, "ping"))
    callers = [sb._bytes_caller(s.port, request, size)() for s in servers]
    try:
        for call, _ in callers:
            for _ in range(WARMUP_CALLS):
                call()
        totals = [[0.0, 0.0, 0] for _ in servers]  # cpu s, wall s, calls
        for order in harness.turn_orders(len(servers), TURNS):
            for k in order:
                pid, call = servers[k].proc.pid, callers[k][0]
                cpu, start = harness.cpu_seconds(pid), time.perf_counter()
                for _ in range(CALLS_PER_TURN):
                    call()
                total = totals[k]
                total[0] += harness.cpu_seconds(pid) - cpu
                total[1] += time.perf_counter() - start
                total[2] += CALLS_PER_TURN
    finally:
        for _, close in callers:
            close()
    return [harness.Result(n, wall, 0.0, 0.0, cpu / n * 1e6) for cpu, wall, n in totals]

