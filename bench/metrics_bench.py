"""What metrics cost per call, on the server and on the client, each beside an A/A pair.

Every group has four cases: metrics off (the baseline), metrics off again (the A/A: what the
noise alone makes of a difference), metrics on, and metrics on again. Each round starts fresh
server processes and fresh clients, and the cases take short turns in shuffled orders.

- ``server ... c=1``: four soa server processes (``spin_us: 0``, so their CPU is what serving
  costs, not how long they polled) take ``TURNS`` turns of ``CALLS_PER_TURN`` sequential wire
  pings; each process's CPU per call is summed over its turns. A server that sleeps between
  calls wakes with cold caches: this is the dearest case per line of code.
- ``server ... c=1, one process``: one more process serving the service four times (the same
  four cases: ``server_bench.soa_servers``), its four servers taking turns in the same shuffled
  orders as the four processes'. Across processes, each process's own placement and
  memory layout stand in every round's difference; within one process, nothing differs but
  the recording.
- ``server ... c=64``: the same four processes, 64 connections each (``harness.compare``).
- ``client ... c=1 -> thriftpy2``: four soa clients in this process (metrics on and off) calling
  one raw thriftpy2 server, in sequential turns as the server's c=1 group takes them; the CPU
  of this process per call.
- ``client ... c=64 -> thriftpy2``: the same, 64 greenlets per client (``harness.compare``).

A case's name carries the median over the rounds of its per-round difference in CPU per call
to the baseline, and the sign-test interval of that median (``harness.median_interval``): with
5 rounds the range of the rounds, about 94%; with 9 or more, about 95% or over. Each group's
last row, ``metrics on, pooled``, takes both pairs at once: per round, the mean of the two "on"
cases less the mean of the two "off" ones (its other columns are the two "on" cases' means).
The ``x cpu`` column is the median of the per-round ratios to the baseline.
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
    server_c1_one = "server metrics cost, ping c=1 wire, spin_us 0, one process serving it 4 times"
    server_c64 = "server metrics cost, ping c=64 wire, spin_us 0"
    client_c1 = "client metrics cost, ping c=1 -> thriftpy2"
    client_c64 = "client metrics cost, ping c=64 -> thriftpy2"
    results = {}  # group -> [[Result of each case] per round]

    def add(group, measured):
        results.setdefault(group, []).append(measured)

    me = os.getpid()
    for _ in range(args.rounds):
        specs = {name: ("bench.server_bench:soa_server", None, on, 0, 0) for name, on in CASES}
        specs["one process"] = ("bench.server_bench:soa_servers", [on for _, on in CASES], 0)
        specs["thriftpy2"] = ("bench.server_bench:thriftpy2_server",)
        with harness.fresh_servers(specs) as running:
            servers = [running[name] for name, _ in CASES]
            one = running["one process"]
            c1 = _sequential_turns(
                [(sb.wire_caller(module, s.port, "ping"), s.proc.pid) for s in servers]
                + [(sb.wire_caller(module, port, "ping"), one.proc.pid) for port in one.ports])
            add(server_c1, c1[:len(CASES)])
            add(server_c1_one, c1[len(CASES):])
            add(server_c64, harness.compare(
                [(sb.wire_caller(module, s.port, "ping"), s.proc.pid) for s in servers],
                64, args.seconds))
            port = running["thriftpy2"].port
            add(client_c1, _sequential_turns(
                [(soa_caller(port, "ping", 1, metrics=on), me) for _, on in CASES]))
            add(client_c64, harness.compare(
                [(soa_caller(port, "ping", 64, metrics=on), me) for _, on in CASES],
                64, args.seconds))
    return [row for group, rounds in results.items() for row in _rows(group, rounds)]


def _rows(group, rounds):
    """A group's rows: its cases' (each with its median difference to the baseline, in CPU per
    call, and that median's interval), then the two pairs pooled."""
    by_case = list(zip(*rounds))  # [Result per round] of each case
    base = by_case[0]
    rows = [harness.Row(group, CASES[0][0], list(base), baseline=True)]
    for (name, _), mine in zip(CASES[1:], by_case[1:]):
        rows.append(harness.Row(group, name + _difference([a.cpu_us - b.cpu_us
                                                           for a, b in zip(mine, base)]),
                                list(mine)))
    on = [[r for (_, metrics), r in zip(CASES, results) if metrics] for results in rounds]
    off = [[r for (_, metrics), r in zip(CASES, results) if not metrics] for results in rounds]
    pooled = [_mean(results) for results in on]
    rows.append(harness.Row(group, "metrics on, pooled" + _difference(
        [a.cpu_us - _mean(b).cpu_us for a, b in zip(pooled, off)]), pooled))
    return rows


def _difference(values):
    low, mid, high = harness.median_interval(values)
    return f" ({mid:+.2f} us cpu/call, interval {low:+.2f} to {high:+.2f})"


def _mean(results):
    """The mean of several cases' ``Result`` of one round, measure by measure."""
    n = len(results)
    return harness.Result(sum(r.calls for r in results) // n,
                          sum(r.seconds for r in results) / n,
                          sum(r.p50_ms for r in results) / n, sum(r.p99_ms for r in results) / n,
                          sum(r.cpu_us for r in results) / n)


def _sequential_turns(cases):
    """One round of a c=1 group. ``cases`` is a list of ``(make_caller, pid)`` as for
    ``harness.compare``: each case opens one caller and, after a warm-up, takes ``TURNS`` turns
    of ``CALLS_PER_TURN`` sequential calls, in shuffled orders (``harness.turn_orders``).
    Returns one ``Result`` per case, with the CPU per call of process ``pid`` over its turns
    (cases sharing a process take their turns one at a time, so a turn's CPU is its own)."""
    callers = []
    try:
        for make_caller, _ in cases:
            callers.append(make_caller())
        for call, _ in callers:
            for _ in range(WARMUP_CALLS):
                call()
        totals = [[0.0, 0.0, 0] for _ in cases]  # cpu s, wall s, calls
        for order in harness.turn_orders(len(cases), TURNS):
            for k in order:
                pid, call = cases[k][1], callers[k][0]
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
