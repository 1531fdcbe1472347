"""soa.observe.histogram: samples wait in ``pending`` and are binned in batches; every read
bins them first, so a reader never misses one."""

from soa.observe.histogram import FOLD_AT, Histogram


def test_reads_bin_what_is_pending_and_bounds_are_upper_inclusive():
    h = Histogram((0.001, 0.01))
    for seconds in (0.0005, 0.001, 0.002, 0.01, 3.0):
        h.observe(seconds)
    assert len(h.pending) == 5  # nothing binned yet
    assert h.count == 5
    assert h.counts == [2, 2, 1]  # le 1 ms, le 10 ms, +Inf
    assert h.pending == []
    assert abs(h.total_s - 3.0135) < 1e-12


def test_the_recorder_folds_once_fold_at_samples_wait():
    h = Histogram((1.0,))
    pending = h.pending
    for _ in range(FOLD_AT - 1):
        h.observe(0.5)
    assert len(pending) == FOLD_AT - 1 and h.count == FOLD_AT - 1
    h.observe(2.0)
    assert pending == [] and h.pending is pending  # folded in place: the hot path keeps its list
    assert h.counts == [FOLD_AT - 1, 1]
    assert h.total_s == 0.5 * (FOLD_AT - 1) + 2.0


def test_folding_nothing_changes_nothing():
    h = Histogram((1.0,))
    h.fold()
    assert h.counts == [0, 0] and h.count == 0 and h.total_s == 0.0
