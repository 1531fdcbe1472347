"""``soa top``'s model and views: every instance in the registry, scraped, as rates per second.

``Top(etcd_config, service=None)`` follows the registry with one watch (the whole
``{prefix}/services/`` range, or one service's) and keeps, per instance, its last scrape.
``sample()`` scrapes the instances (all at once, in greenlets; ``only_new`` scrapes just those
not seen yet) and ``rows()`` turns the last two scrapes of each into a ``Row``: calls/s, error %
(calls that failed: application, internal, late, unknown method, wrong target) and declared %
(calls answered with an exception the IDL declares, a business outcome such as "sold out") over
the interval, p50/p99 from the interval's histogram buckets (Prometheus's
``histogram_quantile`` interpolation), calls in flight, and the registry's weight and version.
An instance scraped once so far is measured since it started (its counters began at zero at
the registry's ``started_at``). An instance without ``metrics_port`` or whose scrape fails is
listed with that ``state``.
``table(rows)`` and ``snapshot(rows)`` are the text and JSON views. ``changed`` is set by the
watch greenlet whenever the set of instances changes, so a live view can redraw at once.
"""

import contextlib
import time
from dataclasses import asdict, dataclass

import gevent
import gevent.event

from .scrape import ScrapeError, delta, quantile, scrape

CALLS = "soa_server_calls_total"
DURATION = "soa_server_call_duration_seconds"
INFLIGHT = "soa_server_inflight_calls"


@dataclass
class Row:
    service: str
    address: str
    metrics: str  # "host:port" of /metrics, or "" when the instance has none
    state: str  # "ok", "since start" (one scrape so far), "no metrics", or the scrape error
    calls_per_s: float | None
    error_pct: float | None  # failed calls: every outcome but ok and declared
    declared_pct: float | None  # calls answered with a declared exception
    p50_ms: float | None
    p99_ms: float | None
    inflight: int | None
    weight: int
    version: str


class _Seen:
    __slots__ = ("at", "buckets", "calls", "declared", "errors", "inflight", "previous", "error",
                 "wall")

    def __init__(self, at, samples, service, previous=None):
        self.at = at
        self.wall = time.time()
        self.calls = samples.total(CALLS, service=service)
        self.declared = samples.total(CALLS, service=service, outcome="declared")
        self.errors = (self.calls - samples.total(CALLS, service=service, outcome="ok")
                       - self.declared)
        self.buckets = samples.buckets(DURATION, service=service)
        self.inflight = int(samples.total(INFLIGHT, service=service))
        self.previous = previous
        self.error = None


class Top:
    def __init__(self, etcd_config, service=None, timeout=0.8):
        from soa.registry.etcd import EtcdConnection
        from soa.registry.instance import service_prefix
        from soa.registry.resolver import PrefixWatch

        self.timeout = timeout
        self.connection = EtcdConnection(etcd_config)
        self.watch = PrefixWatch(self.connection, etcd_config.prefix,
                                 service_prefix(etcd_config.prefix, service))
        self.changed = gevent.event.Event()
        self.watch.subscribe(lambda instances: self.changed.set())
        self.watch.start()
        self._seen = {}  # (service, address) -> _Seen, or an error string

    def close(self):
        self.watch.stop()
        self.connection.close()

    def instances(self, wait=None):
        """The registry's current set (waits up to ``wait`` s for the first listing)."""
        self.watch.ready.wait(self.connection.config.dial_timeout if wait is None else wait)
        return self.watch.snapshot

    def sample(self, only_new=False):
        instances = self.instances()
        keys = {(i.service, i.address) for i in instances}
        for key in [k for k in self._seen if k not in keys]:
            del self._seen[key]  # left the registry
        todo = [i for i in instances if i.metrics_port
                and not (only_new and (i.service, i.address) in self._seen)]
        jobs = [gevent.spawn(self._scrape_one, i) for i in todo]
        gevent.joinall(jobs, timeout=self.timeout + 0.5)

    def _scrape_one(self, instance):
        key = (instance.service, instance.address)
        old = self._seen.get(key)
        try:
            samples = scrape(instance.host, instance.metrics_port, self.timeout)
        except ScrapeError as e:
            self._seen[key] = str(e)
            return
        previous = old if isinstance(old, _Seen) else None
        if previous is not None:
            previous.previous = None  # keep two scrapes, not a chain
        self._seen[key] = _Seen(time.monotonic(), samples, instance.service, previous)

    def rows(self):
        rows = []
        for i in self.watch.snapshot:
            seen = self._seen.get((i.service, i.address))
            metrics = f"{i.host}:{i.metrics_port}" if i.metrics_port else ""
            row = Row(i.service, i.address, metrics, "ok", None, None, None, None, None,
                      None, i.weight, i.version)
            if not i.metrics_port:
                row.state = "no metrics"
            elif seen is None:
                row.state = "waiting"
            elif isinstance(seen, str):
                row.state = seen
            else:
                row.inflight = seen.inflight
                _rates(row, seen, i.started_at)
            rows.append(row)
        return rows


def _rates(row, seen, started_at):
    old = seen.previous
    if old is None:  # one scrape so far: since the instance started, from zero
        if not started_at or seen.wall <= started_at:
            row.state = "warming up"
            return
        row.state = "since start"
        old = _Zero(seen.at - (seen.wall - started_at))
    seconds = max(seen.at - old.at, 1e-6)
    if seen.calls < old.calls:  # the instance restarted: its counters began again at zero
        old = _Zero(old.at)
    calls = seen.calls - old.calls
    errors = seen.errors - old.errors
    declared = seen.declared - old.declared
    row.calls_per_s = round(calls / seconds, 1)
    row.error_pct = round(100.0 * errors / calls, 2) if calls else 0.0
    row.declared_pct = round(100.0 * declared / calls, 2) if calls else 0.0
    window = delta(seen.buckets, old.buckets)
    p50, p99 = quantile(window, 0.5), quantile(window, 0.99)
    row.p50_ms = None if p50 is None else round(p50 * 1000, 3)
    row.p99_ms = None if p99 is None else round(p99 * 1000, 3)


class _Zero:
    """Counters of an instance as it started (or restarted)."""

    calls = errors = declared = 0
    buckets = None

    def __init__(self, at):
        self.at = at


@contextlib.contextmanager
def measured(etcd_config, echo, what="the block"):
    """Scrape every registered instance before and after the ``with`` block, then ``echo``
    the ``soa top --once`` table of the block: rates and percentiles over its duration."""
    watcher = Top(etcd_config)
    try:
        watcher.sample()
        started = time.monotonic()
        yield watcher
        watcher.sample()
        echo(f"soa top --once, over the {time.monotonic() - started:.1f}s of {what}:")
        echo(table(watcher.rows()))
    finally:
        watcher.close()


HEADER = ("SERVICE", "ADDRESS", "CALLS/S", "ERR%", "DECL%", "P50 MS", "P99 MS", "INFLIGHT",
          "WEIGHT", "VERSION", "METRICS")


def table(rows):
    """The rows as an aligned text table (no escape codes), one line per instance."""
    lines = [HEADER]
    for r in rows:
        lines.append((r.service, r.address, _num(r.calls_per_s, 1), _num(r.error_pct, 2),
                      _num(r.declared_pct, 2), _num(r.p50_ms, 2), _num(r.p99_ms, 2),
                      _num(r.inflight, 0),
                      str(r.weight), r.version or "-",
                      r.metrics if r.state == "ok" else f"{r.metrics or '-'} ({r.state})"))
    widths = [max(len(line[i]) for line in lines) for i in range(len(HEADER))]
    numeric = {2, 3, 4, 5, 6, 7, 8}
    out = []
    for line in lines:
        cells = [c.rjust(w) if i in numeric else c.ljust(w)
                 for i, (c, w) in enumerate(zip(line, widths))]
        out.append("  ".join(cells).rstrip())
    if not rows:
        out.append("(no instances registered)")
    return "\n".join(out)


def snapshot(rows):
    """JSON-able: ``{"time": unix seconds, "instances": [row, ...]}``."""
    return {"time": round(time.time(), 3), "instances": [asdict(r) for r in rows]}


def _num(value, digits):
    if value is None:
        return "-"
    return f"{value:.{digits}f}" if digits else str(int(value))
