"""The soak: open-loop load at a fixed share of measured capacity against 3 instances, with one
instance restarted (SIGTERM, graceful) every minute, for ten minutes by default.

    python -m bench.soak [--minutes 10] [--share 0.7] [--restart-every 60] [--trace FILE]
    (or: make soak)

It starts an etcd of its own and three ``soa serve`` processes of the echo service (the test
fixtures' IDL and handler, copied to a temporary folder), all on 127.0.0.1, pinned to the last
CPU, and pins itself (the load generator) to the first, as the benchmarks do. Calls go on a
fixed schedule from 64 greenlets: each takes the next slot of the schedule and calls at its
time whatever the previous calls did (open loop); latency counts from the slot's time, so a
stall shows up in the figures (no coordinated omission) instead of slowing the load.
Capacity is the highest open-loop rate that keeps up (``measure_capacity``: steps of 10% of a
closed-loop rate); the soak runs at ``share`` of it. Every ``restart_every`` seconds the next
instance gets SIGTERM (it deregisters, serves its grace period, drains) and a new one starts.

Reported, for the load generator's process (the client), per minute: calls, failures, p50/p99,
p99 of the calls outside restart windows (SIGTERM to replacement up + 2 s), RSS, open fds, live
greenlets by kind (the function each runs; the soak's own callers left out), and the share of
CPU time the hypervisor took (``stolen``). Goals: RSS growth from the end of minute 1 (warm-up)
to the end < 5 MB; fds beside pooled connections and greenlets stable after minute 1; p99
drift < 10%, the drift being where the trend line (Theil-Sen) through each second's p99 outside
restart windows ends against where it begins, over the minutes after the first; 0 failed calls.
One JSON line at the end; exit 1 when a goal is missed. ``--trace`` writes each second's
figures to a file.
"""

import argparse
import gc
import json
import math
import os
import resource
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path

from soa import entry

entry.init()

import gevent  # noqa: E402
import greenlet  # noqa: E402

from soa.clients import client as make_client  # noqa: E402
from soa.config import load_config  # noqa: E402
from soa.etcd_server import EtcdProcess, free_port  # noqa: E402
from soa.testing.processes import ServiceProcess, write_config  # noqa: E402

from . import harness  # noqa: E402

FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "fixtures"
PAGE = resource.getpagesize()


def rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE


def open_fds():
    return len(os.listdir("/proc/self/fd"))


def greenlet_census():
    """``(kinds, objects)``: live greenlets counted by what each one runs (the function at the
    bottom of its stack, ``module.function``, or its target when it has not started; dead ones
    and the caller left out), and every greenlet object, in one walk of the heap."""
    kinds, current, objects = {}, greenlet.getcurrent(), 0
    for g in gc.get_objects():
        if not issubclass(type(g), greenlet.greenlet):  # issubclass: no weakproxy
            continue
        objects += 1
        if g.dead or g is current:
            continue
        frame, name = g.gr_frame, None
        while frame is not None:
            code = frame.f_code
            name = f"{Path(code.co_filename).stem}.{code.co_name}"
            frame = frame.f_back
        if name is None:
            run = getattr(g, "_run", None) or getattr(g, "run", None)
            name = getattr(run, "__qualname__", None) or type(g).__name__
        kinds[name] = kinds.get(name, 0) + 1
    return kinds, objects


class Histogram:
    """Latencies in buckets 2% wide (from 10 us): constant memory, so the soak's own figures
    do not grow the RSS it measures."""

    GROWTH = math.log(1.02)

    def __init__(self):
        self.counts = {}
        self.n = 0

    def add(self, seconds):
        bucket = int(math.log(max(seconds, 1e-5) / 1e-5) / self.GROWTH)
        self.counts[bucket] = self.counts.get(bucket, 0) + 1
        self.n += 1

    def quantile(self, q):
        if not self.n:
            return 0.0
        rank, seen = q * self.n, 0
        for bucket in sorted(self.counts):
            seen += self.counts[bucket]
            if seen >= rank:
                return 1e-5 * math.exp((bucket + 1) * self.GROWTH)  # the bucket's upper edge
        return 0.0


class Instances:
    def __init__(self, root, endpoint):
        for name in ("client_echo.thrift", "client_handler.py"):
            shutil.copy(FIXTURES / name, root / name)
        self.path = write_config(
            root, etcd_endpoints=[endpoint], prefix="/soa-soak",
            services={"echo": {"idl": "client_echo.thrift", "service": "EchoService",
                               "handler": "client_handler:EchoHandler", "host": "127.0.0.1",
                               "grace_period": 0.5, "drain_timeout": 5}})
        self.config = load_config(str(self.path))
        self.running = []
        self.restarts = 0

    def start(self):
        port = free_port()
        process = ServiceProcess(self.path, "echo", port=port, env={"SOA_TEST_PORT": str(port)},
                                 cpus=harness.cpus_for(server=True))
        return process.start(timeout=30)

    def restart(self, index, windows):
        """Replaces instance ``index``; appends (start, end) of the restart to ``windows``."""
        began = time.monotonic()
        old = self.running[index]
        old.signal(signal.SIGTERM)
        code = old.wait(30)
        self.running[index] = self.start()
        self.restarts += 1
        windows.append((began, time.monotonic() + RESTART_SETTLE))
        return code

    def stop(self):
        for process in self.running:
            process.stop(timeout=10)


WORKERS = 64  # the open loop's callers; capacity is measured with as many
OWN = ("soak.", "runpy.")  # the soak's own greenlets (its callers, restarter, main): not counted
RESTART_SETTLE = 2.0  # seconds after a replacement is up that still count as its restart window


def closed_loop_rate(call, seconds=5.0, greenlets=WORKERS):
    done = [0]
    end = time.monotonic() + seconds

    def loop():
        while time.monotonic() < end:
            call()
            done[0] += 1
            gevent.sleep(0)  # the soak's callers yield once per call too

    start = time.monotonic()
    gevent.joinall([gevent.spawn(loop) for _ in range(greenlets)])
    return done[0] / (time.monotonic() - start)


def pooled(client):
    """Connections the client's pools hold now (they come and go with the load and restarts)."""
    return sum(p.idle + p.busy for p in list(client.transport.pools.values()))


def cpu_split():
    """(busy, stolen, total) jiffies of the whole machine, from /proc/stat: stolen is time the
    hypervisor gave to others, counted apart from busy."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    idle, steal = fields[3] + fields[4], fields[7]
    return sum(fields) - idle - steal, steal, sum(fields)


def cpu_shares(before, after):
    """(busy, stolen) shares of the machine's CPU time between two ``cpu_split()`` readings."""
    jiffies = max(1, after[2] - before[2])
    return (after[0] - before[0]) / jiffies, (after[1] - before[1]) / jiffies


class Seconds:
    """Per second of the soak: the p99 of the calls outside restart windows (kept, a float a
    second, for the drift's trend) and, with ``path``, one JSON line of diagnostics: calls, p99
    and worst start lag (how late a caller began its slot), the hub's own lag, calls in flight,
    restart state, CPU share of this process, of the machine, and stolen by the hypervisor."""

    MIN_CALLS = 100  # a second with fewer steady calls gives no p99

    def __init__(self, path=None):
        self.file = open(path, "w") if path else None  # noqa: SIM115 - closed by close()
        self.p99s = []  # (seconds since start, steady p99 in seconds)
        self._new()

    def _new(self):
        self.latencies, self.steady, self.lag = Histogram(), Histogram(), 0.0

    def run(self, start, inflight, restarting, client):
        t0, cpu0, machine0 = time.monotonic(), time.process_time(), cpu_split()
        while True:
            gevent.sleep(1.0)
            now, cpu, machine = time.monotonic(), time.process_time(), cpu_split()
            latencies, steady, lag = self.latencies, self.steady, self.lag
            self._new()
            if steady.n >= self.MIN_CALLS:
                self.p99s.append((now - start, steady.quantile(0.99)))
            if self.file is not None:
                busy, stolen = cpu_shares(machine0, machine)
                pools = list(client.transport.pools.values())
                row = {"t": round(now - start, 1),
                       "hub_lag_ms": round((now - t0 - 1.0) * 1e3, 1), "calls": latencies.n,
                       "p99_ms": round(latencies.quantile(0.99) * 1e3, 2),
                       "steady_p99_ms": round(steady.quantile(0.99) * 1e3, 2),
                       "start_lag_ms": round(lag * 1e3, 1), "inflight": inflight[0],
                       "restarting": restarting[0] is not None,
                       "client_cpu": round((cpu - cpu0) / (now - t0), 2),
                       "machine_busy": round(busy, 2), "stolen": round(stolen, 2),
                       "instances": len(client.instances),
                       "opened": sum(p.opened for p in pools),
                       "attempts": sum(p.acquired for p in pools)}
                self.file.write(json.dumps(row) + "\n")
                self.file.flush()
            t0, cpu0, machine0 = now, cpu, machine

    def close(self):
        if self.file is not None:
            self.file.close()


def trend(points):
    """Theil-Sen line through ``(t, y)`` points: ``(intercept, slope)``, the slope the median
    of all pairwise slopes. A burst of slow seconds (up to about 29% of them) cannot tilt it,
    where a least-squares fit or a first-vs-last comparison follows the burst."""
    slopes = sorted((y2 - y1) / (t2 - t1) for i, (t1, y1) in enumerate(points)
                    for t2, y2 in points[i + 1:] if t2 > t1)
    slope = slopes[len(slopes) // 2]
    intercepts = sorted(y - slope * t for t, y in points)
    return intercepts[len(intercepts) // 2], slope


def soak(client, instances, rate, seconds, restart_every, out=sys.stdout, trace=None):
    """Runs the open loop; returns (minutes, failures). ``trace`` (a ``Seconds``) records each
    second."""
    call = client.whoami
    minutes = []  # one dict per minute
    current = {"latencies": Histogram(), "steady": Histogram(), "failed": 0}
    windows = []  # (start, end) of each restart, end = replacement up + RESTART_SETTLE
    restarting = [None]  # start of the restart under way
    failures = []
    inflight = [0]
    start = time.monotonic()

    def one(scheduled):
        inflight[0] += 1
        try:
            call()
        except Exception as e:  # noqa: BLE001 - every failure is a result
            current["failed"] += 1
            if len(failures) < 5:
                failures.append(f"{type(e).__name__}: {e}")
        else:
            now = time.monotonic()
            latency = now - scheduled
            current["latencies"].add(latency)
            if trace is not None:
                trace.latencies.add(latency)
            if not in_restart(scheduled, now):
                current["steady"].add(latency)
                if trace is not None:
                    trace.steady.add(latency)
        finally:
            inflight[0] -= 1

    def in_restart(begin, end):
        if restarting[0] is not None and end >= restarting[0]:
            return True
        return any(end >= a and begin <= b for a, b in windows[-2:])

    next_slot = [0]

    def worker():
        """Takes the next slot of the schedule, waits for its time, calls. With every worker
        busy a slot starts late, and its latency (from the slot's time) shows it."""
        while True:
            slot = next_slot[0]
            next_slot[0] += 1
            scheduled = start + slot / rate
            if scheduled - start >= seconds:
                return
            delay = scheduled - time.monotonic()
            gevent.sleep(delay if delay > 0 else 0)
            if trace is not None:
                trace.lag = max(trace.lag, time.monotonic() - scheduled)
            one(scheduled)

    def restarter():
        index = 0
        while True:
            gevent.sleep(restart_every)
            restarting[0] = time.monotonic()
            code = instances.restart(index % len(instances.running), windows)
            restarting[0] = None
            if code != 0:
                failures.append(f"instance exited with {code} on SIGTERM")
            index += 1

    workers = [gevent.spawn(worker) for _ in range(WORKERS)]
    scheduler = gevent.spawn(gevent.joinall, workers)
    restarts = gevent.spawn(restarter) if restart_every else None
    ticker = gevent.spawn(trace.run, start, inflight, restarting, client) if trace else None
    boundary = start + 60.0
    machine0 = cpu_split()
    while not scheduler.ready():
        scheduler.join(timeout=max(0.0, min(boundary, start + seconds) - time.monotonic()))
        if time.monotonic() >= boundary or scheduler.ready():
            gevent.sleep(1.5)  # let the calls of that minute finish before closing it
            window = current
            current = {"latencies": Histogram(), "steady": Histogram(), "failed": 0}
            lat, steady = window["latencies"], window["steady"]
            kinds, objects = greenlet_census()
            machine = cpu_split()
            _, stolen = cpu_shares(machine0, machine)
            machine0 = machine
            row = {"minute": len(minutes) + 1, "calls": lat.n + window["failed"],
                   "failed": window["failed"], "p50_ms": round(lat.quantile(0.5) * 1e3, 3),
                   "p99_ms": round(lat.quantile(0.99) * 1e3, 3),
                   "steady_p99_ms": round(steady.quantile(0.99) * 1e3, 3),
                   "steady_calls": steady.n,
                   "rss_mb": round(rss_bytes() / 2**20, 2), "fds": open_fds(),
                   "pooled_connections": pooled(client),
                   "inflight": inflight[0],  # with the earlier count (every greenlet object
                   # less the calls in flight) to show what it mixed up
                   "objects_less_inflight": objects - inflight[0],
                   "greenlets": sum(n for k, n in kinds.items() if not k.startswith(OWN)),
                   "greenlet_kinds": dict(sorted(kinds.items(), key=lambda kv: -kv[1])),
                   "restarts": instances.restarts, "stolen": round(stolen, 3)}
            minutes.append(row)
            if out is not None:
                print(json.dumps(row), file=out, flush=True)
            boundary += 60.0
    if restarts is not None:
        restarts.kill()
    if ticker is not None:
        ticker.kill()
    return minutes, failures


STEP_SECONDS = 5.0  # each step of the capacity search
STEP_P99_MS = 20.0  # a step whose p99 (from the slots' times) passes this fell behind
STEP_BUSY = 0.9  # a step that kept the machine's CPUs busier than this saturated them


def measure_capacity(client, instances, closed):
    """The highest open-loop rate sustained: steps of 10% of the closed-loop rate ``closed``,
    from 20% up, ``STEP_SECONDS`` each, until one falls behind: its p99, counted from the
    slots' times, passes ``STEP_P99_MS`` (a backlog grows it step by step), or the machine's
    CPUs were busy more than ``STEP_BUSY`` of the step (load generator and servers together).
    Five seconds are too short for a backlog to show every time at saturation: a step of a
    saturated machine sometimes keeps its p99, by luck, and a soak at 70% of that rate then
    runs at the edge. Returns (capacity, steps). A closed loop overstates it: its callers never
    wait on a timer and its servers take several calls per wake-up, so its rate is not one an
    open loop holds."""
    steps, capacity = [], None
    for tenths in range(2, 11):
        rate = closed * tenths / 10
        before = cpu_split()
        minutes, _ = soak(client, instances, rate, STEP_SECONDS, None, out=None)
        busy, _ = cpu_shares(before, cpu_split())
        p99 = minutes[-1]["p99_ms"]
        steps.append({"rate": round(rate), "p99_ms": p99, "busy": round(busy, 2)})
        if p99 > STEP_P99_MS or busy > STEP_BUSY:
            break
        capacity = rate
    return capacity, steps


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__.split(
        "\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--share", type=float, default=0.7, help="of measured capacity")
    parser.add_argument("--restart-every", type=float, default=60.0, help="seconds")
    parser.add_argument("--rate", type=float, help="calls/s, instead of a share of capacity")
    parser.add_argument("--trace", metavar="FILE", help="also write one JSON line a second to FILE")
    args = parser.parse_args(argv)
    root = Path(tempfile.mkdtemp(prefix="soa-soak-"))
    seconds = Seconds(args.trace)
    etcd = EtcdProcess(root / "etcd")
    instances = None
    client = None
    try:
        harness.pin(0, server=True)  # etcd's threads inherit the servers' CPU
        etcd.start()
        harness.pin(0, server=False)
        instances = Instances(root, etcd.endpoint)
        instances.running = [instances.start() for _ in range(3)]
        client = make_client("echo", instances.config, timeout_ms=1000, retries=2)
        while len(client.instances) < 3:
            gevent.sleep(0.05)
        closed = closed_loop_rate(client.whoami)
        capacity, steps = measure_capacity(client, instances, closed)
        if capacity is None:
            raise SystemExit(f"not even {steps[0]['rate']} calls/s is sustained: {steps}")
        rate = args.rate or capacity * args.share
        print(f"closed loop {closed:.0f} calls/s ({WORKERS} greenlets); open-loop steps"
              " (calls/s, p99 ms, CPUs busy):"
              f" {[(s['rate'], s['p99_ms'], s['busy']) for s in steps]}", flush=True)
        print(f"capacity {capacity:.0f} calls/s (open loop); soaking at"
              f" {rate:.0f} calls/s for {args.minutes:g} min, one restart every"
              f" {args.restart_every:g} s; load average {os.getloadavg()[0]:.2f}", flush=True)
        minutes, failures = soak(client, instances, rate, args.minutes * 60,
                                 args.restart_every,
                                 trace=seconds)
    finally:
        if client is not None:
            client.close()
        if instances is not None:
            instances.stop()
        etcd.stop()
        seconds.close()
        shutil.rmtree(root, ignore_errors=True)
    first, last = minutes[0], minutes[-1]
    # Minute 1 is warm-up (pools fill, the first restart lands at its end): the greenlet, RSS
    # and p99 baselines are taken after it. p99 drift is the trend, over the seconds after
    # minute 1, of each second's p99 of the calls outside restart windows (SIGTERM to
    # replacement up + RESTART_SETTLE): where the fitted line ends against where it begins.
    # Comparing two single minutes measures this machine's bursts instead (see README "The
    # soak": those follow the CPU time the hypervisor takes, printed as "stolen").
    base = minutes[1] if len(minutes) > 2 else first
    steady = sorted(m["steady_p99_ms"] for m in minutes)
    points = [(t, p99) for t, p99 in seconds.p99s if t >= 60.0 or len(minutes) <= 2]
    intercept, slope = trend(points)
    fit_first, fit_last = intercept + slope * points[0][0], intercept + slope * points[-1][0]
    summary = {
        "minutes": len(minutes), "capacity_calls_s": round(capacity), "rate_calls_s": round(rate),
        "calls": sum(m["calls"] for m in minutes),
        "failed_calls": sum(m["failed"] for m in minutes),
        "restarts": last["restarts"],
        "rss_growth_mb": round(last["rss_mb"] - base["rss_mb"], 2),
        "fds": [m["fds"] for m in minutes],
        "fds_less_pooled": [m["fds"] - m["pooled_connections"] for m in minutes],
        "greenlets": [m["greenlets"] for m in minutes],
        "greenlets_baseline": base["greenlets"],
        "p99_ms": [m["p99_ms"] for m in minutes],
        "steady_p99_ms": [m["steady_p99_ms"] for m in minutes],
        "steady_p99_median_ms": steady[len(steady) // 2],
        "p99_first_minute_ms": first["steady_p99_ms"],
        "p99_last_minute_ms": last["steady_p99_ms"],
        "p99_trend_ms": [round(fit_first * 1e3, 3), round(fit_last * 1e3, 3)],
        "p99_drift": round(fit_last / max(fit_first, 1e-6) - 1, 3),
        "stolen": [m["stolen"] for m in minutes],
        "load_average": round(os.getloadavg()[0], 2), "failures": failures,
    }
    # Pools open and close connections with the load and the restarts (at most pool_size per
    # instance), so "stable" is: no growth, first minute to last, of the fds beside the pooled
    # connections, nor of the greenlets beside the calls in flight.
    goals = {"rss_growth_under_5mb": summary["rss_growth_mb"] < 5,
             "fds_stable": summary["fds_less_pooled"][-1] <= summary["fds_less_pooled"][0] + 5,
             "greenlets_stable": max(m["greenlets"] for m in minutes[minutes.index(base):])
             <= base["greenlets"] + 10,
             "p99_drift_under_10pct": summary["p99_drift"] < 0.10,
             "no_failed_calls": summary["failed_calls"] == 0}
    summary["goals"] = goals
    print(json.dumps(summary))
    return 0 if all(goals.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
