"""One scrape: GET an instance's ``/metrics`` and turn the text into samples with target labels.

The text is parsed with prometheus-client's own parser (``text_string_to_metric_families``).
Every sample gets the target labels, as Prometheus does: ``service`` (when the sample has none)
and ``address`` (the registry key's ``host:port``, always). ``_created`` samples are dropped;
counter ``_total`` samples and histogram/summary ``_bucket``/``_count``/``_sum`` samples are
counters (``count()`` reads their increase), everything else is a gauge.
"""

import urllib.error
import urllib.request

from prometheus_client.parser import text_string_to_metric_families

from .series import COUNTER, GAUGE

MAX_BYTES = 8 * 1024 * 1024


class ScrapeError(Exception):
    """The instance's /metrics could not be read or parsed (the instance counts as down)."""


def metrics_url(instance):
    host = f"[{instance.host}]" if ":" in instance.host else instance.host
    return f"http://{host}:{instance.metrics_port}/metrics"


def scrape(instance, timeout):
    """The samples of one instance, as ``(name, labels, value, kind)``; ``ScrapeError`` when it
    does not answer with 200 and parseable text within ``timeout`` seconds."""
    url = metrics_url(instance)
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310
            body = response.read(MAX_BYTES + 1)
    except (OSError, urllib.error.URLError, ValueError) as e:
        raise ScrapeError(f"{url}: {e}") from e
    if len(body) > MAX_BYTES:
        raise ScrapeError(f"{url}: more than {MAX_BYTES} bytes")
    try:
        return parse(body.decode("utf-8"), instance.service, instance.address)
    except Exception as e:  # noqa: BLE001 -- the parser raises assorted types on bad text
        raise ScrapeError(f"{url}: unparseable metrics: {e}") from e


def parse(text, service, address):
    out = []
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            name = sample.name
            if name.endswith("_created"):
                continue
            counter = (family.type == "counter" and name.endswith("_total")) or (
                family.type in ("histogram", "summary")
                and name.endswith(("_bucket", "_count", "_sum")))
            labels = dict(sample.labels)
            labels.setdefault("service", service)
            labels["address"] = address
            out.append((name, labels, float(sample.value), COUNTER if counter else GAUGE))
    return out
