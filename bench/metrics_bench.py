"""What metrics cost per call, on the server and on the client, each beside an A/A pair.

Every group has four cases: metrics off (the baseline), metrics off again (the A/A: what the
noise alone makes of a difference), metrics on, and metrics on again. Each round starts fresh
server processes and fresh clients, and the cases take short turns in shuffled orders.

- ``server ... c=1``: four soa server processes (``spin_us: 0``, so their CPU is what serving
  costs, not how long they polled) take ``TURNS`` turns of ``CALLS_PER_TURN`` sequential wire
  pings; each process's CPU per call is summed over its turns. A server that sleeps between
  calls wakes with cold caches: this is the dearest case per line of code.
- ``server ... c=1, one process``: one more process serving the service three times (metrics
  off, off again, on: ``server_bench.soa_servers``), its three servers taking turns in the same
  shuffled orders as the four processes'. Across processes, each process's own placement and
  memory layout stand in every round's difference; within one process, nothing differs but
  the recording.
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
ONE_PROCESS_CASES = CASES[:3]


def run(args):
    import thriftpy2

    module = thriftpy2.load(str(sb.IDL), module_name="bench_thrift")
    server_c1 = "server metrics cost, ping c=1 wire, spin_us 0"
    server_c1_one = "server metrics cost, ping c=1 wire, spin_us 0, one process serving it 3 times"
    server_c64 = "server metrics cost, ping c=64 wire, spin_us 0"
    client_groups = {(method, c): f"client metrics cost, {method} c={c} -> thriftpy2"
                     for method, c in (("ping", 1), ("ping", 64))}
    groups = {}  # group -> its cases' names
    results = {}  # (group, case) -> [Result per round]

    def add(group, cases, measured):
        groups[group] = [name for name, _ in cases]
        for (name, _), result in zip(cases, measured, strict=True):
            results.setdefault((group, name), []).append(result)

    me = os.getpid()
    for _ in range(args.rounds):
        specs = {name: ("bench.server_bench:soa_server", None, on, 0, 0) for name, on in CASES}
        specs["one process"] = ("bench.server_bench:soa_servers",
                                [on for _, on in ONE_PROCESS_CASES], 0)
        specs["thriftpy2"] = ("bench.server_bench:thriftpy2_server",)
        with harness.fresh_servers(specs) as running:
            servers = [running[name] for name, _ in CASES]
            one = running["one process"]
            c1 = _sequential_turns(module, [(s.proc.pid, s.port) for s in servers]
                                   + [(one.proc.pid, port) for port in one.ports])
            add(server_c1, CASES, c1[:len(CASES)])
            add(server_c1_one, ONE_PROCESS_CASES, c1[len(CASES):])
            add(server_c64, CASES, harness.compare(
                [(sb.wire_caller(module, s.port, "ping"), s.proc.pid) for s in servers],
                64, args.seconds))
            port = running["thriftpy2"].port
            for (method, concurrency), group in client_groups.items():
                add(group, CASES, harness.compare(
                    [(soa_caller(port, method, concurrency, metrics=on), me)
                     for _, on in CASES], concurrency, args.seconds))
    rows = []
    for group, (base_name, *names) in groups.items():
        base = results[group, base_name]
        rows.append(harness.Row(group, base_name, base, baseline=True))
        for name in names:
            mine = results[group, name]
            low, mid, high = harness.median_interval([a.cpu_us - b.cpu_us
                                                      for a, b in zip(mine, base)])
            rows.append(harness.Row(group, f"{name} ({mid:+.2f} us cpu/call, interval"
                                           f" {low:+.2f} to {high:+.2f})", mine))
    return rows


def _sequential_turns(module, targets):
    """One round of the c=1 groups: ``targets`` is a list of ``(server pid, port)``; each takes
    ``TURNS`` turns of ``CALLS_PER_TURN`` sequential pings, in shuffled orders
    (``harness.turn_orders``). Returns one ``Result`` per target, with the CPU per call of its
    server process over its turns (servers sharing a process are measured in turn, never at
    once, so a turn's CPU is its own server's)."""
    request = sb._request_bytes(module, "ping")
    size = len(sb._reply_bytes(module, "ping"))
    callers = [sb._bytes_caller(port, request, size)() for _, port in targets]
    try:
        for call, _ in callers:
            for _ in range(WARMUP_CALLS):
                call()
        totals = [[0.0, 0.0, 0] for _ in targets]  # cpu s, wall s, calls
        for order in harness.turn_orders(len(targets), TURNS):
            for k in order:
                pid, call = targets[k][0], callers[k][0]
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
