"""Scraping one instance's ``/metrics`` and reading the series soa serves.

``scrape(host, port, timeout)`` returns a ``Samples`` (parsed with prometheus-client's own text
parser) or raises ``ScrapeError`` (unreachable, not 200, unparsable). ``Samples.total(name,
**labels)`` sums the samples of ``name`` whose labels match; ``buckets(name)`` merges a
histogram's cumulative buckets over every label set; ``quantile(buckets, q)`` interpolates a
quantile from cumulative buckets as Prometheus's ``histogram_quantile`` does. Runs in the caller's
greenlet (urllib over gevent's patched sockets).
"""

import math
import urllib.error
import urllib.request

from soa.errors import SoaError


class ScrapeError(SoaError):
    """An instance's metrics could not be read."""


class Samples:
    """Every sample of one scrape: ``(name, labels, value)`` triples."""

    def __init__(self, samples):
        self.samples = list(samples)

    @classmethod
    def parse(cls, text):
        from prometheus_client.parser import text_string_to_metric_families

        try:
            return cls((s.name, s.labels, s.value)
                       for family in text_string_to_metric_families(text)
                       for s in family.samples)
        except Exception as e:  # noqa: BLE001 -- the parser raises assorted types on bad text
            raise ScrapeError(f"unparsable metrics: {e}") from e

    def select(self, name, **labels):
        return [(lab, v) for n, lab, v in self.samples
                if n == name and all(lab.get(k) == w for k, w in labels.items())]

    def total(self, name, **labels):
        return sum(v for _, v in self.select(name, **labels))

    def buckets(self, name, **labels):
        """``{le (float): cumulative count}`` of histogram ``name``, summed over label sets."""
        out = {}
        for lab, value in self.select(name + "_bucket", **labels):
            le = float(lab["le"])
            out[le] = out.get(le, 0.0) + value
        return out


def quantile(buckets, q):
    """The ``q`` quantile (0-1) of cumulative ``{le: count}`` buckets, linearly interpolated
    inside the bucket it falls in; None without observations. A quantile in the open +Inf
    bucket is reported as the highest finite bound."""
    if not buckets:
        return None
    bounds = sorted(buckets)
    total = buckets[bounds[-1]]
    if total <= 0:
        return None
    rank = q * total
    previous_bound, previous_count = 0.0, 0.0
    for bound in bounds:
        count = buckets[bound]
        if count >= rank:
            if math.isinf(bound):
                return previous_bound
            if count == previous_count:
                return bound
            return previous_bound + (bound - previous_bound) * (
                (rank - previous_count) / (count - previous_count))
        previous_bound, previous_count = bound, count
    return previous_bound


def delta(new, old):
    """Cumulative buckets ``new - old`` (a counter reset, new < old, counts ``new`` alone)."""
    if old is None or any(new.get(le, 0) < n for le, n in old.items()):
        return dict(new)
    return {le: n - old.get(le, 0.0) for le, n in new.items()}


MAX_BYTES = 8 * 1024 * 1024


def url_of(host, port, path="/metrics"):
    shown = f"[{host}]" if ":" in host else host
    return f"http://{shown}:{port}{path}"


def fetch(host, port, path="/metrics", timeout=1.0):
    """GET ``http://host:port/path``; returns ``(status, text)``; ``ScrapeError`` when the
    instance cannot be reached or answers more than ``MAX_BYTES``."""
    url = url_of(host, port, path)
    try:
        with urllib.request.urlopen(url, timeout=timeout) as reply:  # noqa: S310
            status, body = reply.status, reply.read(MAX_BYTES + 1)
    except urllib.error.HTTPError as e:
        status, body = e.code, e.read(MAX_BYTES + 1)
    except (OSError, ValueError) as e:
        raise ScrapeError(f"{url}: {getattr(e, 'reason', None) or e}") from e
    if len(body) > MAX_BYTES:
        raise ScrapeError(f"{url}: more than {MAX_BYTES} bytes")
    return status, body.decode("utf-8", "replace")


def metrics_text(host, port, timeout=1.0):
    """The text of the instance's ``/metrics``; ``ScrapeError`` unless it answers 200."""
    status, text = fetch(host, port, "/metrics", timeout)
    if status != 200:
        raise ScrapeError(f"{url_of(host, port)} answered {status}")
    return text


def scrape(host, port, timeout=1.0):
    """The parsed ``/metrics`` of the instance at ``host:port``."""
    return Samples.parse(metrics_text(host, port, timeout))
