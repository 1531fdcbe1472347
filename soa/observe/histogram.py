"""A latency histogram whose hot path is one list append: ``Histogram``.

Server and client record every call's latency (soa.server.processor, soa.clients.service_client).
Binning a sample (a ``bisect`` over the bucket bounds, or any arithmetic on the float) costs
little in a hot loop, but a process that sleeps between calls runs it with cold caches, where it
cost several microseconds a call: more than the rest of the recording together. So the recorder
only appends the sample to ``pending``, and calls ``fold()`` once ``FOLD_AT`` samples wait
(inline, in soa.server.processor and soa.clients.service_client: a method call would be a frame
more per call);
``fold()`` bins them in one batch, and everything that reads the histogram (``counts``,
``total_s``) folds first. Used from the greenlets of one process: a fold never waits, so no
reader sees it half done.
"""

from bisect import bisect_left

# Samples that wait before the recorder folds them (a few KiB of floats per method at most).
FOLD_AT = 256


class Histogram:
    """Fixed buckets with upper bounds ``bounds`` (seconds) and a last, open bucket."""

    __slots__ = ("_buckets", "_total_s", "bounds", "pending")

    def __init__(self, bounds):
        self.bounds = tuple(bounds)
        self.pending = []  # samples not binned yet (the recorder appends; never replaced)
        self._buckets = [0] * (len(self.bounds) + 1)
        self._total_s = 0.0

    def fold(self):
        """Bin the pending samples."""
        pending = self.pending
        if pending:
            buckets, bounds = self._buckets, self.bounds
            for seconds in pending:
                buckets[bisect_left(bounds, seconds)] += 1
            self._total_s += sum(pending)
            pending.clear()

    @property
    def counts(self):
        """Samples per bucket (a copy), the open bucket last."""
        self.fold()
        return list(self._buckets)

    @property
    def total_s(self):
        self.fold()
        return self._total_s
