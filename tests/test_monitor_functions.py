"""The detection functions and operators on synthetic series (no I/O)."""

import math

from soa.monitor.evaluate import Vector, evaluate, increase, truth
from soa.monitor.expr import parse
from soa.monitor.scrape import parse as parse_metrics
from soa.monitor.series import COUNTER, GAUGE, SeriesStore


def run(store, text, now):
    return evaluate(parse(text), store, now)


def L(**labels):
    return tuple(sorted(labels.items()))


def gauge(store, source, t, **values):
    """One write of ``source``: ``name=value`` gauges labelled with the source as ``address``."""
    store.replace(source, [(n, {"address": source}, v, GAUGE) for n, v in values.items()], t)


def counter(store, source, t, value, **labels):
    store.replace(source, [("calls_total", {"address": source, **labels}, value, COUNTER)], t)


def test_val_is_the_latest_sample_of_present_series():
    s = SeriesStore()
    gauge(s, "a", 1.0, x=3)
    gauge(s, "b", 1.0, x=5)
    gauge(s, "a", 2.0, x=4)
    assert run(s, "val(x)", 2.0) == {L(address="a"): 4.0, L(address="b"): 5.0}
    assert run(s, 'val(x{address="b"})', 2.0) == {L(address="b"): 5.0}
    assert run(s, 'val(x{address!="b"})', 2.0) == {L(address="a"): 4.0}
    assert run(s, 'val(x{address=~"a|b"})', 2.0).keys() == {L(address="a"), L(address="b")}
    assert run(s, "val(nothing)", 2.0) == {}


def test_a_series_that_disappears():
    s = SeriesStore()
    gauge(s, "a", 1.0, x=1, y=2)
    gauge(s, "a", 2.0, y=2)  # x is no longer in this source's output
    assert run(s, "val(x)", 2.0) == {}
    assert run(s, "exist(x)", 2.0) == 0.0 and run(s, "empty(x)", 2.0) == 1.0
    assert run(s, "exist(y)", 2.0) == 1.0 and run(s, "empty(y)", 2.0) == 0.0
    assert run(s, "count(x, 10s)", 2.0) == {L(address="a"): 1.0}  # its past is still there
    s.drop_source("a")  # the instance left
    assert run(s, "exist(y)", 3.0) == 0.0
    s.expire(100_000.0)
    assert len(s) == 0


def test_count_of_a_gauge_is_its_samples_in_the_window():
    s = SeriesStore()
    for t in (1.0, 2.0, 3.0, 4.0):
        gauge(s, "a", t, x=7)
    # window (now - w, now]: at now=4, 2s covers t=3 and t=4 (t=2 is exactly w ago: out)
    assert run(s, "count(x, 2s)", 4.0) == {L(address="a"): 2.0}
    assert run(s, "count(x, 2.5s)", 4.0) == {L(address="a"): 3.0}
    assert run(s, "count(x, 10s)", 4.0) == {L(address="a"): 4.0}


def test_count_over_an_empty_window():
    s = SeriesStore()
    gauge(s, "a", 1.0, x=7)
    counter(s, "b", 1.0, 5.0)
    assert run(s, "count(x, 5s)", 10.0) == {}
    assert run(s, "count(calls_total, 5s)", 10.0) == {}
    assert not truth(run(s, "count(x, 5s) > 0", 10.0))
    assert run(s, "sum(count(calls_total, 5s))", 10.0) == {}


def test_count_of_a_counter_is_its_increase_from_the_baseline():
    s = SeriesStore()
    for t, v in ((0.0, 10.0), (1.0, 12.0), (2.0, 15.0), (3.0, 15.0), (4.0, 21.0)):
        counter(s, "a", t, v)
    # baseline is the last sample at or before now - w = 2.0 (15); in window: 15, 21
    assert run(s, "count(calls_total, 2s)", 4.0) == {L(address="a"): 6.0}
    assert run(s, "count(calls_total, 3s)", 4.0) == {L(address="a"): 9.0}
    # no baseline (the window reaches past the first sample): from the first sample
    assert run(s, "count(calls_total, 1h)", 4.0) == {L(address="a"): 11.0}


def test_counter_resets():
    assert increase([10.0, 12.0, 3.0, 5.0]) == 2.0 + 3.0 + 2.0
    assert increase([5.0, 0.0]) == 0.0
    assert increase([7.0]) == 0.0 and increase([]) == 0.0
    s = SeriesStore()
    for t, v in ((0.0, 100.0), (1.0, 110.0), (2.0, 4.0), (3.0, 9.0)):  # restarted at t=2
        counter(s, "a", t, v)
    assert run(s, "count(calls_total, 10s)", 3.0) == {L(address="a"): 10.0 + 4.0 + 5.0}


def test_a_counter_born_between_scrapes_counts_from_zero():
    s = SeriesStore()
    counter(s, "a", 1.0, 5.0, outcome="ok")
    s.replace("a", [("calls_total", {"address": "a", "outcome": "ok"}, 6.0, COUNTER),
                    ("calls_total", {"address": "a", "outcome": "internal"}, 3.0, COUNTER)], 2.0)
    assert run(s, 'count(calls_total{outcome="internal"}, 10s)', 2.0) == {
        L(address="a", outcome="internal"): 3.0}
    assert run(s, 'count(calls_total{outcome="ok"}, 10s)', 2.0) == {
        L(address="a", outcome="ok"): 1.0}
    # a source's first write has no such baseline: its counters may have run for long
    counter(s, "b", 2.0, 40.0)
    assert run(s, 'count(calls_total{address="b"}, 10s)', 2.0) == {L(address="b"): 0.0}
    # the 0 at the previous write is the baseline of a window that starts after it
    assert run(s, 'count(calls_total{outcome="internal"}, 0.5s)', 2.0) == {
        L(address="a", outcome="internal"): 3.0}


def test_arithmetic_and_division_by_zero():
    s = SeriesStore()
    s.replace("a", [("errors", {"service": "o", "address": "a"}, 3, GAUGE),
                    ("calls", {"service": "o", "address": "a"}, 4, GAUGE),
                    ("calls", {"service": "o", "address": "b"}, 0, GAUGE),
                    ("errors", {"service": "o", "address": "b"}, 0, GAUGE)], 1.0)
    ratio = run(s, "val(errors) / val(calls)", 1.0)
    assert ratio[L(service="o", address="a")] == 0.75
    assert math.isnan(ratio[L(service="o", address="b")])
    assert run(s, "val(errors) / val(calls) > 0.5", 1.0) == {L(service="o", address="a"): 0.75}
    assert run(s, "val(errors) / val(calls) < 0.5", 1.0) == {}  # NaN compares false
    assert math.isnan(run(s, "1 / 0", 1.0)) and not truth(run(s, "1 / 0", 1.0))
    assert run(s, "2 * 3 + 4 - 10 / 5", 1.0) == 8.0
    assert run(s, "-val(errors) + 1", 1.0)[L(service="o", address="a")] == -2.0
    # vector with vector: labels must be identical, the rest is dropped
    assert run(s, "val(errors) + val(nothing)", 1.0) == {}


def test_aggregation_by_labels():
    s = SeriesStore()
    s.replace("x", [("c", {"service": "o", "address": "a", "outcome": "ok"}, 1, GAUGE),
                    ("c", {"service": "o", "address": "b", "outcome": "ok"}, 3, GAUGE),
                    ("c", {"service": "p", "address": "c", "outcome": "internal"}, 8, GAUGE)], 1.0)
    assert run(s, "sum(val(c))", 1.0) == {(): 12.0}
    assert run(s, "sum(val(c)) by (service)", 1.0) == {L(service="o"): 4.0, L(service="p"): 8.0}
    assert run(s, "avg by (service) (val(c))", 1.0) == {L(service="o"): 2.0, L(service="p"): 8.0}
    assert run(s, "max(val(c)) by (outcome)", 1.0) == {L(outcome="ok"): 3.0,
                                                      L(outcome="internal"): 8.0}
    assert run(s, "min(val(c))", 1.0) == {(): 1.0}
    assert run(s, "sum(val(c)) by (zone)", 1.0) == {(): 12.0}  # a label no series has
    assert run(s, "sum(val(missing))", 1.0) == {}
    assert run(s, "sum(5)", 1.0) == {(): 5.0}
    ratio = run(s, 'sum(val(c{outcome!="ok"})) by (service) / sum(val(c)) by (service)', 1.0)
    assert ratio == {L(service="p"): 1.0}


def test_comparisons_and_logic():
    s = SeriesStore()
    gauge(s, "a", 1.0, n=1)
    gauge(s, "b", 1.0, n=3)
    assert run(s, "val(n) < 2", 1.0) == {L(address="a"): 1.0}
    assert run(s, "2 > val(n)", 1.0) == {L(address="a"): 1.0}
    assert run(s, "val(n) >= 3", 1.0) == {L(address="b"): 3.0}
    assert run(s, "val(n) == 7", 1.0) == {}
    assert run(s, "val(n) != 1", 1.0) == {L(address="b"): 3.0}
    assert (run(s, "1 < 2", 1.0), run(s, "2 <= 1", 1.0)) == (1.0, 0.0)
    assert run(s, "val(n) < 2 and exist(n)", 1.0) == 1.0
    assert run(s, "exist(n) and val(n) < 2", 1.0) == {L(address="a"): 1.0}
    assert run(s, "val(n) > 5 and exist(n)", 1.0) == {}
    assert run(s, "val(n) > 5 or val(n) < 2", 1.0) == {L(address="a"): 1.0}
    assert run(s, "not val(n) > 5", 1.0) == 1.0 and run(s, "not exist(n)", 1.0) == 0.0
    assert truth(Vector({(): 0.0}))  # a vector is true when it has an element
    assert not truth(0.0) and not truth(math.nan) and truth(-1.0)


def test_the_instances_rule_fires_at_zero():
    """A service with no instances has soa_instances 0, so the comparison keeps it."""
    s = SeriesStore()
    s.replace("registry", [("soa_instances", {"service": "order"}, 0, GAUGE)], 1.0)
    assert run(s, 'val(soa_instances{service="order"}) < 2', 1.0) == {L(service="order"): 0.0}
    assert truth(run(s, 'val(soa_instances{service="order"}) < 2', 1.0))
    assert run(s, 'empty(soa_instances{service="order"})', 1.0) == 0.0


def test_scraped_text_gets_target_labels_and_kinds():
    text = """# HELP soa_server_calls_total calls
# TYPE soa_server_calls_total counter
soa_server_calls_total{service="echo",method="ping",outcome="ok"} 3.0
soa_server_calls_created{service="echo",method="ping",outcome="ok"} 1.7e9
# TYPE soa_server_inflight_calls gauge
soa_server_inflight_calls{service="echo"} 2.0
# TYPE soa_server_call_duration_seconds histogram
soa_server_call_duration_seconds_bucket{service="echo",method="ping",le="0.1"} 3.0
soa_server_call_duration_seconds_bucket{service="echo",method="ping",le="+Inf"} 3.0
soa_server_call_duration_seconds_count{service="echo",method="ping"} 3.0
soa_server_call_duration_seconds_sum{service="echo",method="ping"} 0.01
# TYPE process_open_fds gauge
process_open_fds 12.0
"""
    samples = parse_metrics(text, "echo", "127.0.0.1:9000")
    by_name = {(n, labels.get("le")): (labels, v, k) for n, labels, v, k in samples}
    assert ("soa_server_calls_created", None) not in by_name
    labels, value, kind = by_name[("soa_server_calls_total", None)]
    assert labels == {"service": "echo", "method": "ping", "outcome": "ok",
                      "address": "127.0.0.1:9000"}
    assert (value, kind) == (3.0, COUNTER)
    assert by_name[("soa_server_inflight_calls", None)][2] == GAUGE
    assert by_name[("soa_server_call_duration_seconds_bucket", "0.1")][2] == COUNTER
    assert by_name[("soa_server_call_duration_seconds_count", None)][2] == COUNTER
    fds = by_name[("process_open_fds", None)][0]
    assert fds == {"service": "echo", "address": "127.0.0.1:9000"}
