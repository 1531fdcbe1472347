"""Per-method call counters and latency, kept by the client: ``client.metrics.snapshot()``.

Counts calls, failures by error type, and latency in fixed buckets (milliseconds). Plain dict
and list updates, no locks, nothing allocated per call beyond the latency float.
"""

import bisect
import time

BUCKETS_MS = (1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000)


class MethodStats:
    __slots__ = ("buckets", "calls", "errors", "seconds")

    def __init__(self):
        self.calls = 0
        self.errors = {}
        self.seconds = 0.0
        self.buckets = [0] * (len(BUCKETS_MS) + 1)


class ClientMetrics:
    def __init__(self, methods=()):
        self.methods = {name: MethodStats() for name in methods}

    def stats(self, method):
        stats = self.methods.get(method)
        if stats is None:
            stats = self.methods[method] = MethodStats()
        return stats

    def snapshot(self):
        """``{method: {"calls", "errors": {type: n}, "mean_ms", "buckets_ms": {le: n}}}``."""
        out = {}
        for name, s in self.methods.items():
            if not s.calls:
                continue
            labels = [str(b) for b in BUCKETS_MS] + ["+Inf"]
            out[name] = {
                "calls": s.calls,
                "errors": dict(s.errors),
                "mean_ms": round(s.seconds * 1000 / s.calls, 3),
                "buckets_ms": dict(zip(labels, s.buckets)),
            }
        return out

    def middleware(self, next_handler, clock=time.perf_counter, _bisect=bisect.bisect_left):
        methods = self.methods
        stats_for = self.stats

        def measure(call):
            stats = methods.get(call.method) or stats_for(call.method)
            start = clock()
            try:
                return next_handler(call)
            except BaseException as e:
                name = type(e).__name__
                stats.errors[name] = stats.errors.get(name, 0) + 1
                raise
            finally:
                elapsed = clock() - start
                stats.calls += 1
                stats.seconds += elapsed
                stats.buckets[_bisect(BUCKETS_MS, elapsed * 1000)] += 1

        return measure
