"""Per-method server metrics: calls, errors by kind, and a fixed-bucket latency histogram.

``Metrics.middleware`` is a server ``Middleware``; ``Metrics.snapshot()`` returns plain data.
Recording is a few integer increments and one ``bisect`` per call; all of it happens in the
greenlet that served the call, so no locks are needed.
"""

import time
from bisect import bisect_left

from thriftpy2.thrift import TApplicationException, TException

# Upper bounds of the latency buckets, in milliseconds; a last, open bucket holds the rest.
BUCKETS_MS = (0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000)
_BOUNDS_S = tuple(b / 1000.0 for b in BUCKETS_MS)


def outcome_of(error):
    """The kind of a call's failure: ``declared:<Name>`` for IDL exceptions, ``application``
    for a ``TApplicationException``, ``internal`` for anything else."""
    if isinstance(error, TApplicationException):
        return "application"
    if isinstance(error, TException):
        return "declared:" + type(error).__name__
    return "internal"


class MethodStats:
    __slots__ = ("buckets", "calls", "errors", "max_s", "total_s")

    def __init__(self):
        self.calls = 0
        self.errors = {}
        self.buckets = [0] * (len(BUCKETS_MS) + 1)
        self.total_s = 0.0
        self.max_s = 0.0

    def record(self, seconds, error_kind=None):
        self.calls += 1
        self.buckets[bisect_left(_BOUNDS_S, seconds)] += 1
        self.total_s += seconds
        self.max_s = max(self.max_s, seconds)
        if error_kind is not None:
            self.errors[error_kind] = self.errors.get(error_kind, 0) + 1


class Metrics:
    """Counters for one served service, per method."""

    def __init__(self, service):
        self.service = service
        self.methods = {}

    def stats(self, method):
        stats = self.methods.get(method)
        if stats is None:
            stats = self.methods[method] = MethodStats()
        return stats

    def record_error(self, method, kind, seconds=0.0):
        """Record a call that failed outside the middleware chain (late, unknown, bad args)."""
        self.stats(method).record(seconds, kind)

    def middleware(self, handler):
        """Middleware recording every call that reaches the handler."""
        perf_counter = time.perf_counter
        stats_for = self.stats

        def measured(call):
            start = perf_counter()
            try:
                value = handler(call)
            except BaseException as e:
                stats_for(call.method).record(perf_counter() - start, outcome_of(e))
                raise
            stats_for(call.method).record(perf_counter() - start)
            return value

        return measured

    def snapshot(self):
        """``{"service", "buckets_ms", "methods": {name: {calls, errors, histogram, ...}}}``."""
        methods = {}
        for name, s in sorted(self.methods.items()):
            methods[name] = {
                "calls": s.calls,
                "errors": dict(s.errors),
                "error_count": sum(s.errors.values()),
                "histogram": list(s.buckets),
                "mean_ms": (s.total_s / s.calls * 1000.0) if s.calls else 0.0,
                "max_ms": s.max_s * 1000.0,
            }
        return {"service": self.service, "buckets_ms": list(BUCKETS_MS), "methods": methods}
