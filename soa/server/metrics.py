"""Per-method server metrics: calls, errors by kind, and a fixed-bucket latency histogram.

The processor (soa.server.processor) times each call around its middleware chain and records
it in the method's ``MethodStats`` (``Metrics.stats``), and ``Metrics.record_error(method,
kind)`` counts a call refused before the chain; ``Metrics.snapshot()`` returns plain data and
``Metrics.families(...)`` the Prometheus series (``soa_server_*``, see README "Monitoring").
Recording is one list append per call (soa.observe.histogram), in the greenlet that served the
call: no locks, no label look-ups, nothing allocated but the latency float.
Prometheus objects are built only at scrape time, from these plain counters.
"""

from thriftpy2.thrift import TApplicationException, TException

from soa.observe.histogram import Histogram

# Upper bounds of the latency buckets, in milliseconds; a last, open bucket holds the rest.
BUCKETS_MS = (0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000)
BOUNDS_S = tuple(b / 1000.0 for b in BUCKETS_MS)
# The outcomes of soa_server_calls_total (besides "ok"), in the order they are listed.
OUTCOMES = ("ok", "declared", "application", "internal", "late", "unknown_method",
            "wrong_target")
_UNKNOWN = "<unknown>"  # the processor's name for a method the IDL does not have


def outcome_of(error):
    """The kind of a call's failure: ``declared:<Name>`` for IDL exceptions, ``application``
    for a ``TApplicationException``, ``internal`` for anything else. (The access log's
    ``outcome`` field; ``outcome_label`` turns it into a metric label.)"""
    if isinstance(error, TApplicationException):
        return "application"
    if isinstance(error, TException):
        return "declared:" + type(error).__name__
    return "internal"


def outcome_label(kind):
    """The ``outcome`` label for an error kind: ``declared:X`` -> ``declared``; ``wrong-target``
    -> ``wrong_target``; a kind outside the contract (a message of the wrong type) is
    ``application``, since the caller got a ``TApplicationException``."""
    if kind.startswith("declared"):
        return "declared"
    kind = kind.replace("-", "_")
    return kind if kind in OUTCOMES else "application"


class MethodStats(Histogram):
    """Counters of one method: the latency histogram of the calls served (soa.observe.histogram:
    the processor's loop appends each call's latency to ``pending``, and ``errors`` counts a
    failure's kind) and ``refused``, the calls that never reached the handler (``refuse``);
    the calls served are the histogram's count."""

    __slots__ = ("errors", "refused")

    def __init__(self):
        super().__init__(BOUNDS_S)
        self.errors = {}
        self.refused = 0

    def refuse(self, kind):
        self.refused += 1
        self.errors[kind] = self.errors.get(kind, 0) + 1


class Metrics:
    """Counters for one served service, per method. Used from the greenlets of one process."""

    def __init__(self, service):
        self.service = service
        self.methods = {}

    def stats(self, method):
        stats = self.methods.get(method)
        if stats is None:
            stats = self.methods[method] = MethodStats()
        return stats

    def record_error(self, method, kind, seconds=0.0):
        """Count a call that failed outside the middleware chain (``late``, ``wrong_target``,
        ``unknown_method``...). Called by the processor, in the connection's greenlet. An unknown
        method is counted under ``method=""`` on the Prometheus series."""
        self.stats(method).refuse(kind)

    def snapshot(self):
        """``{"service", "buckets_ms", "methods": {name: {calls, errors, histogram, ...}}}``."""
        methods = {}
        for name, s in sorted(self.methods.items()):
            counts = s.counts
            served = sum(counts)
            methods[name] = {
                "calls": served + s.refused,
                "errors": dict(s.errors),
                "error_count": sum(s.errors.values()),
                "histogram": counts,
                "mean_ms": (s.total_s / served * 1000.0) if served else 0.0,
            }
        return {"service": self.service, "buckets_ms": list(BUCKETS_MS), "methods": methods}

    def families(self, inflight=0, connections=0):
        """The ``soa_server_*`` series as prometheus-client metric families (at scrape time)."""
        from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily

        service = self.service
        calls = CounterMetricFamily(
            "soa_server_calls", "Calls served, by outcome (ok, declared, application, internal,"
            " late, unknown_method, wrong_target).", labels=("service", "method", "outcome"))
        duration = HistogramMetricFamily(
            "soa_server_call_duration_seconds",
            "Time in the middleware chain and the handler, per method.",
            labels=("service", "method"))
        for name, s in sorted(list(self.methods.items())):
            label = "" if name == _UNKNOWN else name
            buckets, errors = s.counts, dict(s.errors)
            served = sum(buckets)
            by_outcome = {"ok": served + s.refused - sum(errors.values())}
            for kind, n in errors.items():
                outcome = outcome_label(kind)
                by_outcome[outcome] = by_outcome.get(outcome, 0) + n
            for outcome, n in by_outcome.items():
                if n or outcome == "ok":
                    calls.add_metric((service, label, outcome), n)
            if served:
                duration.add_metric((service, label), cumulative(buckets), s.total_s)
        yield calls
        yield duration
        yield _gauge("soa_server_inflight_calls", "Calls being served now.", service, inflight)
        yield _gauge("soa_server_connections", "Open client connections.", service, connections)


def _gauge(name, documentation, service, value):
    from prometheus_client.core import GaugeMetricFamily

    family = GaugeMetricFamily(name, documentation, labels=("service",))
    family.add_metric((service,), value)
    return family


def cumulative(buckets, bounds=BOUNDS_S):
    """``[(le, cumulative count), ...]`` ending with ``+Inf``, from per-bucket counts."""
    out, total = [], 0
    for bound, n in zip(bounds, buckets):
        total += n
        out.append((_le(bound), total))
    out.append(("+Inf", total + sum(buckets[len(bounds):])))
    return out


def _le(bound):
    return repr(float(bound))
