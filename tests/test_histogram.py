"""soa.observe.histogram: samples wait in ``pending`` and are binned in batches; every read
bins them first, so a reader never misses one. The client's bound method folds once
``FOLD_AT`` samples wait (the server's loop: test_server.py)."""

from types import SimpleNamespace

from soa.clients.metrics import MethodStats
from soa.clients.service_client import _bound
from soa.observe.histogram import FOLD_AT, Histogram


def test_reads_bin_what_is_pending_and_bounds_are_upper_inclusive():
    h = Histogram((0.001, 0.01))
    h.pending.extend((0.0005, 0.001, 0.002, 0.01, 3.0))
    assert h.counts == [2, 2, 1]  # le 1 ms, le 10 ms, +Inf
    assert h.pending == []
    assert abs(h.total_s - 3.0135) < 1e-12
    h.pending.append(0.5)
    assert abs(h.total_s - 3.5135) < 1e-12  # total_s folds too
    assert h.counts == [2, 2, 2]


def test_folding_nothing_changes_nothing():
    h = Histogram((1.0,))
    h.fold()
    assert h.counts == [0, 0] and h.total_s == 0.0


def test_the_clients_bound_method_folds_once_fold_at_samples_wait():
    stats = MethodStats()
    pending = stats.pending
    method = _bound("svc", SimpleNamespace(name="ping", bind=None, arg_names=()),
                    lambda _call: None, stats)
    for _ in range(FOLD_AT - 1):
        method()
    assert len(pending) == FOLD_AT - 1  # nothing binned before FOLD_AT
    method()
    assert pending == [] and stats.pending is pending  # folded in place: the method keeps it
    assert sum(stats.counts) == FOLD_AT
