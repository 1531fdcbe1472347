"""Per-method call counters and latency, kept by the client: ``client.metrics.snapshot()``.

Counts calls, failures by outcome (``declared``, ``application``, ``timeout``, ``transport``,
``no_instance``) and latency in fixed buckets, recorded by the client's bound methods
(soa.clients.service_client): one list append per call (soa.observe.histogram), no locks,
nothing allocated per call beyond the latency float; the outcome of a failure is worked out
only when one happens.
``client_families(clients)`` builds the ``soa_client_*`` Prometheus series of a set of clients
at scrape time (see README "Monitoring").
"""

from thriftpy2.thrift import TApplicationException, TException

from soa.errors import NoInstanceAvailable, RetryError, RpcTimeout
from soa.observe.histogram import Histogram

BUCKETS_MS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000)
BOUNDS_S = tuple(b / 1000.0 for b in BUCKETS_MS)
OUTCOMES = ("ok", "declared", "application", "timeout", "transport", "no_instance")


def outcome_of(error):
    """The ``outcome`` of a failed call. A ``RetryError`` counts as its last attempt's outcome;
    anything that is not an answer, a timeout or a missing instance is ``transport``."""
    if isinstance(error, RetryError) and error.attempts:
        error = error.attempts[-1]
    if isinstance(error, TApplicationException):
        return "application"
    if isinstance(error, TException):
        return "declared"
    if isinstance(error, NoInstanceAvailable):
        return "no_instance"
    if isinstance(error, RpcTimeout):
        return "timeout"
    return "transport"


class MethodStats(Histogram):
    """Counters of one method: the latency histogram of its calls (soa.observe.histogram: the
    client's bound method appends each call's latency to ``pending``) and ``errors``, counted
    by ``fail``; the calls made are the histogram's count."""

    __slots__ = ("errors",)

    def __init__(self):
        super().__init__(BOUNDS_S)
        self.errors = {}  # outcome -> count

    def fail(self, error):
        name = outcome_of(error)
        self.errors[name] = self.errors.get(name, 0) + 1


class ClientMetrics:
    """Counters of one client (one target service), per method; used from its greenlets."""

    def __init__(self, methods=()):
        self.methods = {name: MethodStats() for name in methods}

    def stats(self, method):
        stats = self.methods.get(method)
        if stats is None:
            stats = self.methods[method] = MethodStats()
        return stats

    def snapshot(self):
        """``{method: {"calls", "errors": {outcome: n}, "mean_ms", "buckets_ms": {le: n}}}``."""
        out = {}
        labels = [str(b) for b in BUCKETS_MS] + ["+Inf"]
        for name, s in self.methods.items():
            counts = s.counts
            calls = sum(counts)
            if not calls:
                continue
            out[name] = {
                "calls": calls,
                "errors": dict(s.errors),
                "mean_ms": round(s.total_s * 1000 / calls, 3),
                "buckets_ms": dict(zip(labels, counts)),
            }
        return out


def client_families(clients):
    """The ``soa_client_*`` series of ``clients`` (``Client`` objects), summed per target
    service and method: several clients of one service in a process add up. Called at scrape
    time, in the greenlet serving the scrape."""
    from prometheus_client.core import (CounterMetricFamily, GaugeMetricFamily,
                                        HistogramMetricFamily)

    from soa.server.metrics import cumulative

    calls, hist, per_service = {}, {}, {}
    for client in clients:
        service = client.service
        for method, s in list(client.metrics.methods.items()):
            buckets, errors = s.counts, dict(s.errors)
            total_calls = sum(buckets)
            if not total_calls:
                continue
            by = {"ok": total_calls - sum(errors.values()), **errors}
            for outcome, n in by.items():
                key = (service, method, outcome)
                calls[key] = calls.get(key, 0) + n
            summed, total = hist.get((service, method), ([0] * len(buckets), 0.0))
            hist[service, method] = ([a + b for a, b in zip(summed, buckets)],
                                     total + s.total_s)
        row = per_service.setdefault(service, [0] * 8)
        for i, value in enumerate(_client_state(client)):
            row[i] = max(row[i], value) if i == 7 else row[i] + value
    family = CounterMetricFamily("soa_client_calls", "Calls made, by target service, method and"
                                 " outcome.", labels=("service", "method", "outcome"))
    for key, n in sorted(calls.items()):
        family.add_metric(key, n)
    yield family
    family = HistogramMetricFamily("soa_client_call_duration_seconds",
                                   "Call latency seen by the caller, retries included.",
                                   labels=("service", "method"))
    for key, (buckets, total) in sorted(hist.items()):
        family.add_metric(key, cumulative(buckets, BOUNDS_S), total)
    yield family
    specs = [
        (CounterMetricFamily, "soa_client_retries", "Retries sent."),
        (CounterMetricFamily, "soa_client_retries_refused",
         "Retries not sent because the retry budget was spent."),
        (CounterMetricFamily, "soa_client_ejections", "Instances ejected as outliers."),
        (GaugeMetricFamily, "soa_client_pool_connections", "Pooled connections open."),
        (GaugeMetricFamily, "soa_client_pool_in_use", "Pooled connections lent to a call."),
        (GaugeMetricFamily, "soa_client_instances", "Instances the client balances over."),
        (CounterMetricFamily, "soa_client_watch_relists",
         "Times the registry watch listed the service (again)."),
        (GaugeMetricFamily, "soa_client_watch_connected",
         "1 while the registry watch is connected, else 0."),
    ]
    for i, (cls, name, documentation) in enumerate(specs):
        family = cls(name, documentation, labels=("service",))
        for service, row in sorted(per_service.items()):
            family.add_metric((service,), row[i])
        yield family


def _client_state(client):
    """``(retries, refused, ejections, pooled, in_use, instances, relists, connected)``."""
    budget = client.budget
    pools = list(client.transport.pools.values())
    watch = getattr(client.resolver, "watch_state", None)
    relists, connected = watch(client.service) if watch is not None else (0, 1)
    return (getattr(budget, "retries", 0), getattr(budget, "refused", 0),
            getattr(client.discovery, "ejections", 0),
            sum(p.idle + p.busy for p in pools), sum(p.busy for p in pools),
            len(client.instances), relists, connected)
