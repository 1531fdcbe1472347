"""What server metrics cost, at a resolution the server bench's groups do not reach.

The server bench compares a metrics-on and a metrics-off process in turns with the other cases;
there two identical processes (its A/A row) stand up to 6 us of CPU per call apart, as far as
the figure it measures. Here four soa server processes, two with metrics on and two with
``metrics: false`` (each pair an A/A), take many short turns of sequential wire pings (2,000
calls each, ``TURNS`` per round, in an order that rotates), and each process's CPU per call is
summed over all its turns. The servers run with ``spin_us: 0``, so that their CPU per call is
what serving costs, not how long they polled. Rows: metrics off (baseline), metrics off again
(the A/A: the noise), metrics on, metrics on again; ``x cpu`` is the ratio of CPU per call.
"""

import time

from . import harness
from . import server_bench as sb

TURNS = 20
CALLS_PER_TURN = 2000
CASES = (("metrics off", False), ("metrics off again (A/A: the noise)", False),
         ("metrics on", True), ("metrics on again", True))


def run(args):
    import thriftpy2

    module = thriftpy2.load(str(sb.IDL), module_name="bench_thrift")
    request = sb._request_bytes(module, "ping")
    size = len(sb._reply_bytes(module, "ping"))
    results = {name: [] for name, _ in CASES}
    for _ in range(args.rounds):
        specs = {name: ("bench.server_bench:soa_server", None, on, 0, 0) for name, on in CASES}
        with harness.fresh_servers(specs) as running:
            calls, closers = {}, []
            for name, handle in running.items():
                call, close = sb._bytes_caller(handle.port, request, size)()
                calls[name] = call
                closers.append(close)
                for _ in range(CALLS_PER_TURN):  # warm-up
                    call()
            totals = {name: [0.0, 0.0, 0] for name in calls}  # cpu s, wall s, calls
            names = list(calls)
            for turn in range(TURNS):
                for i in range(len(names)):
                    name = names[(turn + i) % len(names)]
                    pid, call = running[name].proc.pid, calls[name]
                    cpu, start = harness.cpu_seconds(pid), time.perf_counter()
                    for _ in range(CALLS_PER_TURN):
                        call()
                    total = totals[name]
                    total[0] += harness.cpu_seconds(pid) - cpu
                    total[1] += time.perf_counter() - start
                    total[2] += CALLS_PER_TURN
            for close in closers:
                close()
        for name, (cpu, wall, n) in totals.items():
            results[name].append(harness.Result(n, wall, 0.0, 0.0, cpu / n * 1e6))
    group = "server metrics cost, ping c=1 wire, spin_us 0"
    rows = [harness.Row(group, CASES[0][0], results[CASES[0][0]], baseline=True)]
    rows += [harness.Row(group, name, results[name]) for name, _ in CASES[1:]]
    return rows
