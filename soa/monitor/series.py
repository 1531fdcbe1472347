"""The sample store the rules read: series by name and labels, with a bounded history.

A series is ``(name, labels)``; labels are a frozen, sorted tuple of ``(name, value)`` pairs. Each
series keeps its samples ``(time, value)`` for ``retention`` seconds, and whether it is *present*:
a series is present while the latest write of its source (one scrape of one target, or one
computation of the registry facts) included it. ``replace(source, samples, now)`` writes one
source's complete set: series of that source that it no longer includes stop being present (their
history stays, so ``count()`` still sees their past samples), which is how a series that
disappears, or a target whose scrape failed, stops answering ``val()`` and ``exist()``.

A counter series that first appears in a later write of a source that was written before (a new
label set, such as the first failing call's ``outcome``) gets a sample of 0 at that previous
write: the exporters create a label set on its first use, so it was 0 then. Without that, the
first increase of every new label set would be lost.

Only the monitor's loop greenlet writes and reads it; nothing here blocks.
"""

from collections import deque

COUNTER = "counter"
GAUGE = "gauge"


def labelset(mapping):
    return tuple(sorted(mapping.items()))


class Series:
    __slots__ = ("name", "labels", "kind", "samples", "present", "source")

    def __init__(self, name, labels, kind, source):
        self.name = name
        self.labels = labels
        self.kind = kind
        self.source = source
        self.samples = deque()
        self.present = False

    @property
    def latest(self):
        return self.samples[-1][1] if self.samples else None


class SeriesStore:
    def __init__(self, retention=3600.0):
        self.retention = retention
        self._series = {}  # (name, labels) -> Series
        self._by_name = {}  # name -> {labels: Series}
        self._by_source = {}  # source -> set of keys
        self._written = {}  # source -> time of its last write

    def replace(self, source, samples, now):
        """Write the complete set of one source: ``samples`` is an iterable of
        ``(name, labels_dict, value, kind)``. Series of the source left out stop being present."""
        keys = set()
        previous = self._written.get(source)
        for name, labels, value, kind in samples:
            key = (name, labelset(labels))
            series = self._series.get(key)
            if series is None:
                series = Series(name, key[1], kind, source)
                self._series[key] = series
                self._by_name.setdefault(name, {})[key[1]] = series
                if kind == COUNTER and previous is not None and previous < now:
                    series.samples.append((previous, 0.0))  # born since the last write
            series.kind = kind
            series.source = source
            if series.samples and series.samples[-1][0] >= now:
                series.samples.pop()  # two writes at one instant: the last one wins
            series.samples.append((now, float(value)))
            series.present = True
            keys.add(key)
        for key in self._by_source.get(source, set()) - keys:
            series = self._series.get(key)
            if series is not None and series.source == source:
                series.present = False
        self._by_source[source] = keys
        self._written[source] = now

    def drop_source(self, source):
        """A source that is gone (an instance that left): its series stop being present."""
        self._written.pop(source, None)
        for key in self._by_source.pop(source, set()):
            series = self._series.get(key)
            if series is not None and series.source == source:
                series.present = False

    def expire(self, now):
        """Forget samples older than the retention, and series with none left."""
        horizon = now - self.retention
        for key in list(self._series):
            series = self._series[key]
            samples = series.samples
            # keep one sample at or before the horizon: it is count()'s baseline
            while len(samples) > 1 and samples[1][0] <= horizon:
                samples.popleft()
            if samples and samples[-1][0] < horizon and not series.present:
                del self._series[key]
                del self._by_name[series.name][series.labels]

    def select(self, selector):
        """Every series (present or not) that the selector matches."""
        candidates = self._by_name.get(selector.name, {})
        return [s for s in candidates.values() if selector.matches(dict(s.labels))]

    def __len__(self):
        return len(self._series)
