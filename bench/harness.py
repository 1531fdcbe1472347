"""Shared benchmark machinery: servers in child processes, a greenlet load generator, the table.

- ``start_server("module:function", *args)`` runs ``function(*args)`` in a fresh Python process
  (gevent-patched); the function starts a server and returns its port. ``stop()`` ends it.
- ``measure(make_caller, concurrency, seconds)`` opens ``concurrency`` connections, one greenlet
  each, calls as fast as they answer, and returns calls/s, p50 and p99 (after a short warm-up).
- ``Row`` is one line of the table; ``print_table`` adds ratio columns against the row marked
  ``baseline`` in the same group.
Load goes only to 127.0.0.1.
"""

import importlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass

HOST = "127.0.0.1"
WARMUP = 0.3


@dataclass
class Result:
    calls: int
    seconds: float
    p50_ms: float
    p99_ms: float

    @property
    def calls_per_s(self):
        return self.calls / self.seconds if self.seconds else 0.0


@dataclass
class Row:
    group: str
    case: str
    result: Result
    baseline: bool = False


class ServerHandle:
    def __init__(self, proc, port):
        self.proc = proc
        self.port = port

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def start_server(target, *args, timeout=30):
    """Start ``target`` ("module:function") in a child process; returns a ``ServerHandle``."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([root, os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.harness", target, json.dumps(args)],
        stdout=subprocess.PIPE, env=env, cwd=root,
    )
    line = proc.stdout.readline().decode().strip()
    if not line.startswith("PORT "):
        proc.kill()
        raise RuntimeError(f"{target} did not start (said {line!r})")
    return ServerHandle(proc, int(line.split()[1]))


def measure(make_caller, concurrency, seconds, warmup=WARMUP):
    """Run ``concurrency`` greenlets, each with its own ``make_caller() -> (call, close)``."""
    import gevent

    callers = [make_caller() for _ in range(concurrency)]
    begin = time.perf_counter() + warmup
    end = begin + seconds
    latencies = [[] for _ in callers]

    def work(call, out):
        clock = time.perf_counter
        append = out.append
        while True:
            t0 = clock()
            call()
            t1 = clock()
            if t1 > end:
                return
            if t0 >= begin:
                append(t1 - t0)

    try:
        gevent.joinall([gevent.spawn(work, c[0], out) for c, out in zip(callers, latencies)],
                       raise_error=True)
    finally:
        for _, close in callers:
            close()
    merged = sorted(x for out in latencies for x in out)
    if not merged:
        return Result(0, seconds, 0.0, 0.0)
    return Result(len(merged), seconds, _pct(merged, 0.50) * 1e3, _pct(merged, 0.99) * 1e3)


def _pct(values, q):
    return values[min(len(values) - 1, int(q * len(values)))]


def best(results):
    """Of repeated runs, the one with the highest throughput (the least disturbed)."""
    return max(results, key=lambda r: r.calls_per_s)


def print_table(rows, out=sys.stdout):
    header = ("group", "case", "calls/s", "p50 ms", "p99 ms", "x calls/s", "x p99")
    lines = [header]
    groups = {}
    for row in rows:
        groups.setdefault(row.group, []).append(row)
    for group, members in groups.items():
        base = next((r for r in members if r.baseline), members[0]).result
        for r in members:
            res = r.result
            thru = res.calls_per_s / base.calls_per_s if base.calls_per_s else 0.0
            p99 = res.p99_ms / base.p99_ms if base.p99_ms else 0.0
            lines.append((group, r.case + (" (baseline)" if r.baseline else ""),
                          f"{res.calls_per_s:,.0f}", f"{res.p50_ms:.3f}", f"{res.p99_ms:.3f}",
                          f"{thru:.2f}", f"{p99:.2f}"))
    widths = [max(len(str(line[i])) for line in lines) for i in range(len(header))]
    for n, line in enumerate(lines):
        cells = [str(c).ljust(w) if i < 2 else str(c).rjust(w)
                 for i, (c, w) in enumerate(zip(line, widths))]
        print("| " + " | ".join(cells) + " |", file=out)
        if n == 0:
            print("|" + "|".join("-" * (w + 2) for w in widths) + "|", file=out)


def _serve_child(target, args):
    from gevent import monkey

    monkey.patch_all()
    import gevent
    import gevent.event

    module, _, function = target.partition(":")
    port = getattr(importlib.import_module(module), function)(*args)
    sys.stdout.write(f"PORT {port}\n")
    sys.stdout.flush()
    stop = gevent.event.Event()
    gevent.signal_handler(signal.SIGTERM, stop.set)
    stop.wait()


if __name__ == "__main__":
    _serve_child(sys.argv[1], json.loads(sys.argv[2]))
