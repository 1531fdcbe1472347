"""One scrape for the monitor: an instance's ``/metrics`` (fetched by ``soa.observe.scrape``) as
samples with target labels.

The text is parsed with prometheus-client's own parser (``text_string_to_metric_families``).
Every sample gets the target labels, as Prometheus does: ``service`` (when the sample has none)
and ``address`` (the registry key's ``host:port``, always). ``_created`` samples are dropped;
counter ``_total`` samples and histogram/summary ``_bucket``/``_count``/``_sum`` samples are
counters (``count()`` reads their increase), everything else is a gauge.
"""

from prometheus_client.parser import text_string_to_metric_families

from soa.observe.scrape import ScrapeError, metrics_text, url_of

from .series import COUNTER, GAUGE

__all__ = ["ScrapeError", "parse", "scrape"]


def scrape(instance, timeout):
    """The samples of one instance, as ``(name, labels, value, kind)``; ``ScrapeError`` when it
    does not answer with 200 and parseable text within ``timeout`` seconds."""
    text = metrics_text(instance.host, instance.metrics_port, timeout)
    try:
        return parse(text, instance.service, instance.address)
    except Exception as e:  # noqa: BLE001 -- the parser raises assorted types on bad text
        raise ScrapeError(f"{url_of(instance.host, instance.metrics_port)}: "
                          f"unparseable metrics: {e}") from e


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
