"""Shared benchmark machinery: servers in child processes, a greenlet load generator, the table.

- ``start_server("module:function", *args)`` runs ``function(*args)`` in a fresh Python process
  (gevent-patched); the function starts a server and returns its port. ``stop()`` ends it.
  ``fresh_servers`` starts (and stops) a named set of them: a bench takes one per round.
- ``measure(make_caller, concurrency, seconds)`` opens ``concurrency`` connections, one greenlet
  each, calls as fast as they answer, and returns calls/s, p50 and p99 (after a short warm-up).
- ``Row`` is one line of the table (one ``Result`` per round); ``print_table`` prints medians
  and adds ratio columns against the row marked ``baseline`` in the same group, taken round by
  round.
Servers run on the last CPU and the load generator on the first (when there are two or more).
Load goes only to 127.0.0.1.
"""

import contextlib
import importlib
import json
import os
import random
import signal
import subprocess
import sys
import time
from dataclasses import dataclass

HOST = "127.0.0.1"
# The CPUs this process may use, read before anything is pinned.
_CPUS = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
WARMUP = 0.3
# Turns each case of a compare() round takes (see compare).
SLICES = 24


@dataclass
class Result:
    calls: int
    seconds: float
    p50_ms: float
    p99_ms: float
    cpu_us: float | None = None  # server CPU time per call, when its pid was given

    @property
    def calls_per_s(self):
        return self.calls / self.seconds if self.seconds else 0.0


@dataclass
class Row:
    """One case of a group. ``results`` holds one ``Result`` per round; rounds of the cases of
    a group are measured back to back, so ratios are taken round by round (then the median),
    which cancels most of the noise of a shared machine."""

    group: str
    case: str
    results: list
    baseline: bool = False

    @property
    def result(self):
        """The median of each measure over the rounds."""
        rs = self.results
        cpu = [r.cpu_us for r in rs if r.cpu_us is not None]
        return Result(
            calls=int(median([r.calls_per_s for r in rs])), seconds=1.0,
            p50_ms=median([r.p50_ms for r in rs]), p99_ms=median([r.p99_ms for r in rs]),
            cpu_us=median(cpu) if cpu else None,
        )


def median(values):
    values = sorted(values)
    n = len(values)
    return (values[n // 2] + values[(n - 1) // 2]) / 2 if n else 0.0


def median_interval(values, confidence=0.95):
    """``(low, median, high)``: the median of ``values`` and its sign-test interval, the
    ``k``-th smallest and ``k``-th largest values for the largest ``k`` at which the median
    falls outside with probability at most ``1 - confidence`` (the count of values below the
    true median is binomial(n, 1/2), whatever the distribution). With too few values for that
    confidence it is their range (5 values: about 94%)."""
    from math import comb

    values = sorted(values)
    n = len(values)
    if not n:
        return 0.0, 0.0, 0.0
    k, below = 1, 0.0  # below: P(at most k - 1 values fall below the median)
    while k < (n + 1) // 2:
        below += comb(n, k - 1) / 2 ** n
        if 2 * (below + comb(n, k) / 2 ** n) > 1 - confidence:
            break
        k += 1
    return values[k - 1], median(values), values[n - k]


def ratio(row, base, measure):
    """Median over rounds of ``measure(row round) / measure(baseline round)``."""
    pairs = [(measure(a), measure(b)) for a, b in zip(row.results, base.results)]
    values = [a / b for a, b in pairs if a is not None and b]
    return median(values) if values else None


class ServerHandle:
    """A server process; ``port`` is its first (often only) port, ``ports`` all of them."""

    def __init__(self, proc, ports):
        self.proc = proc
        self.ports = ports
        self.port = ports[0]

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
    """Start ``target`` ("module:function") in a child process; returns a ``ServerHandle``.
    The function returns the port it serves on, or a list of ports (several servers in one
    process)."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([root, os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.harness", target, json.dumps(args)],
        stdout=subprocess.PIPE, env=env, cwd=root,
    )
    pin(proc.pid, server=True)
    line = proc.stdout.readline().decode().strip()
    if not line.startswith("PORT "):
        proc.kill()
        raise RuntimeError(f"{target} did not start (said {line!r})")
    return ServerHandle(proc, [int(p) for p in line.split()[1:]])


@contextlib.contextmanager
def fresh_servers(specs):
    """Start one server per ``name: ("module:function", *args)`` of ``specs`` and yield
    ``{name: ServerHandle}``; every one is stopped when the block ends.

    The benches start a fresh set for every round: two identical server processes can stand
    up to 10% apart for their whole lives (placement, memory layout, hash seeds), so a
    comparison of one pair of processes would carry that pair's luck into every round. With a
    fresh set per round, each round's ratio compares new processes, and the median over the
    rounds is not one pair's.
    """
    handles = {}
    try:
        for name, (target, *args) in specs.items():
            handles[name] = start_server(target, *args)
        yield handles
    finally:
        for handle in handles.values():
            handle.stop()


def cpu_seconds(pid):
    """The CPU seconds a process (all its threads) has used, to the nanosecond.

    Linux gives every process a CPU-time clock that any other process may read
    (``clock_getcpuclockid``: the clock id is ``~pid << 3 | CPUCLOCK_SCHED``). /proc's
    utime and stime count in clock ticks (10 ms), which over a turn of a few tens of
    milliseconds is noise of the size of what the benches look for.
    """
    try:
        return time.clock_gettime((~pid << 3) | _CPUCLOCK_SCHED)
    except OSError:  # not Linux, or the process is gone: the coarse count
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rpartition(")")[2].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


_CPUCLOCK_SCHED = 2


def cpus_for(server):
    """The CPUs a server (the last one) or the load generator (the first one) is pinned to, or
    None with fewer than two."""
    if len(_CPUS) < 2:
        return None
    return {_CPUS[-1] if server else _CPUS[0]}


def pin(pid, server):
    """With two CPUs or more, servers get the last one and the load generator the first: they
    then never compete for a core, so the scheduler's wake-up preemption between them (which
    favours whichever process uses less CPU) does not blur the comparison."""
    cpus = cpus_for(server)
    if not cpus:
        return
    try:  # every thread the process has by now (a thread's affinity is its own)
        tasks = [int(t) for t in os.listdir(f"/proc/{pid}/task")] if pid else [0]
    except FileNotFoundError:
        tasks = [pid]
    for task in tasks:
        try:
            os.sched_setaffinity(task, cpus)
        except ProcessLookupError:  # a thread that ended meanwhile
            pass


def pin_load_generator():
    """Pin this (load generating) process to the first CPU; see ``pin``."""
    pin(0, server=False)


def measure(make_caller, concurrency, seconds, warmup=WARMUP, server_pid=None):
    """Run ``concurrency`` greenlets, each with its own ``make_caller() -> (call, close)``.

    With ``server_pid``, the server's CPU time per call is measured too (over the measured
    time): on a shared machine it is steadier than throughput.
    """
    return compare([(make_caller, server_pid)], concurrency, seconds, slices=1,
                   warmup=warmup)[0]


def compare(cases, concurrency, seconds, slices=SLICES, warmup=WARMUP):
    """Measure several cases as one round: ``cases`` is a list of ``(make_caller, server_pid)``;
    returns one ``Result`` per case.

    Every case's connections are opened (and warmed for ``warmup``) first. Then the cases take
    turns: ``slices`` turns each of ``seconds / slices``, in the orders of ``turn_orders``. So
    each case's figures come from moments spread over the whole round, and a burst of load
    from elsewhere on the machine falls on all of them alike instead of on whichever case it
    met.
    """
    opened = []
    try:
        for make_caller, _pid in cases:
            opened.append([make_caller() for _ in range(concurrency)])
        runs = [_Run(callers, pid) for callers, (_make, pid) in zip(opened, cases)]
        for run in runs:
            run.turn(warmup, record=False)
        for order in turn_orders(len(runs), slices):
            for i in order:
                runs[i].turn(seconds / slices)
        return [run.result(seconds) for run in runs]
    finally:
        for callers in opened:
            for _, close in callers:
                close()


def turn_orders(cases, turns, seed=0):
    """``turns`` orders of ``range(cases)``: each a fresh shuffle (seeded, so a run repeats).

    An order that only rotates keeps every case behind the same one turn after turn, and what
    the one before left on the CPU (a process's caches, a core's frequency) then differs by
    case for the whole round: in a scratch run, the server that always followed another
    process's turn stood 2-5 us a call apart from the two beside it, every round. Shuffled,
    each case follows every other one alike.
    """
    rng = random.Random(seed)
    order = list(range(cases))
    for _ in range(turns):
        rng.shuffle(order)
        yield list(order)


class _Run:
    """One case of a ``compare``: its callers, and what its turns measured so far."""

    def __init__(self, callers, server_pid):
        self.callers = callers
        self.server_pid = server_pid
        self.latencies = []
        self.calls = 0
        self.cpu = 0.0

    def turn(self, seconds, record=True):
        """Every caller calls as fast as it is answered for ``seconds``; a call still running
        at the end finishes, is counted, and its latency is left out."""
        import gevent

        end = time.perf_counter() + seconds
        out = self.latencies if record else []
        counts = [0] * len(self.callers)
        cpu_before = cpu_seconds(self.server_pid) if self.server_pid else 0.0

        def work(i, call):
            clock = time.perf_counter
            append = out.append
            n = 0
            while True:
                t0 = clock()
                call()
                n += 1
                t1 = clock()
                if t1 > end:
                    counts[i] = n
                    return
                append(t1 - t0)

        gevent.joinall([gevent.spawn(work, i, c[0]) for i, c in enumerate(self.callers)],
                       raise_error=True)
        if record:
            self.calls += sum(counts)
            if self.server_pid:
                self.cpu += cpu_seconds(self.server_pid) - cpu_before

    def result(self, seconds):
        merged = sorted(self.latencies)
        if not merged:
            return Result(0, seconds, 0.0, 0.0)
        cpu_us = self.cpu / self.calls * 1e6 if self.server_pid and self.calls else None
        return Result(self.calls, seconds, _pct(merged, 0.50) * 1e3, _pct(merged, 0.99) * 1e3,
                      cpu_us)


def _pct(values, q):
    return values[min(len(values) - 1, int(q * len(values)))]


def print_table(rows, out=sys.stdout):
    header = ("group", "case", "calls/s", "p50 ms", "p99 ms", "x calls/s", "x p99",
              "srv cpu us/call", "x cpu")
    lines = [header]
    groups = {}
    for row in rows:
        groups.setdefault(row.group, []).append(row)
    for group, members in groups.items():
        base = next((r for r in members if r.baseline), members[0])
        for r in members:
            res = r.result
            thru = ratio(r, base, lambda x: x.calls_per_s)
            p99 = ratio(r, base, lambda x: x.p99_ms)
            xcpu = ratio(r, base, lambda x: x.cpu_us)
            lines.append((group, r.case + (" (baseline)" if r.baseline else ""),
                          f"{res.calls_per_s:,.0f}", f"{res.p50_ms:.3f}", f"{res.p99_ms:.3f}",
                          _fmt(thru), _fmt(p99), f"{res.cpu_us:.1f}" if res.cpu_us else "-",
                          _fmt(xcpu)))
    widths = [max(len(str(line[i])) for line in lines) for i in range(len(header))]
    for n, line in enumerate(lines):
        cells = [str(c).ljust(w) if i < 2 else str(c).rjust(w)
                 for i, (c, w) in enumerate(zip(line, widths))]
        print("| " + " | ".join(cells) + " |", file=out)
        if n == 0:
            print("|" + "|".join("-" * (w + 2) for w in widths) + "|", file=out)


def _fmt(value):
    return "-" if value is None else f"{value:.2f}"


def _serve_child(target, args):
    from gevent import monkey

    monkey.patch_all()
    import gevent
    import gevent.event

    module, _, function = target.partition(":")
    ports = getattr(importlib.import_module(module), function)(*args)
    ports = ports if isinstance(ports, (list, tuple)) else [ports]
    sys.stdout.write("PORT " + " ".join(map(str, ports)) + "\n")
    sys.stdout.flush()
    stop = gevent.event.Event()
    gevent.signal_handler(signal.SIGTERM, stop.set)
    stop.wait()


if __name__ == "__main__":
    _serve_child(sys.argv[1], json.loads(sys.argv[2]))
