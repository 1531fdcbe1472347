"""Contract tests for every balancer, plus what is special to each."""

import collections
import random

import pytest

from soa.registry.instance import Instance
from soa.balancer import BALANCERS, ConsistentHash, EndpointLoad, by_name
from soa.balancer.weighted_round_robin import smooth_sequence
from soa.config import BALANCERS as CONFIG_BALANCERS
from soa.errors import NoInstanceAvailable
from soa.middleware import Call

N = 6000


def instances(*weights, service="svc", base=9000):
    return tuple(Instance(service=service, host="127.0.0.1", port=base + i, weight=w)
                 for i, w in enumerate(weights))


def calls(n):
    """Calls with distinct keys (consistent_hash spreads by key; the others ignore it)."""
    return [Call("svc", "get", (f"key-{i}",), meta={"hash_key": f"key-{i}"}) for i in range(n)]


def counts(picker, n=N):
    return collections.Counter(picker.pick(c).port for c in calls(n))


def make(name):
    return by_name(name)


def test_every_configured_balancer_exists():
    assert set(BALANCERS) == set(CONFIG_BALANCERS)
    with pytest.raises(ValueError, match="unknown balancer"):
        by_name("nope")


@pytest.mark.parametrize("name", CONFIG_BALANCERS)
def test_even_distribution(name):
    seen = counts(make(name).picker(instances(100, 100, 100)))
    assert set(seen) == {9000, 9001, 9002}
    for port, n in seen.items():
        assert abs(n - N / 3) < N / 3 * 0.15, (port, seen)


@pytest.mark.parametrize("name", ["weighted_round_robin", "weighted_random", "consistent_hash"])
def test_weights_are_honoured_within_tolerance(name):
    """Shares within 10% (relative) of weight/total; round robin is exact, random within 10%."""
    weights = (100, 300, 600)
    seen = counts(make(name).picker(instances(*weights)), n=20000)
    for i, w in enumerate(weights):
        share = seen[9000 + i] / 20000
        assert abs(share - w / 1000) < 0.1 * w / 1000 + 0.01, (name, seen)


@pytest.mark.parametrize("name", CONFIG_BALANCERS)
def test_weight_zero_gets_no_traffic(name):
    seen = counts(make(name).picker(instances(100, 0, 100)), n=2000)
    assert 9001 not in seen
    assert set(seen) == {9000, 9002}


@pytest.mark.parametrize("name", CONFIG_BALANCERS)
@pytest.mark.parametrize("weights", [(), (0,), (0, 0)])
def test_empty_set_raises_no_instance_available(name, weights):
    picker = make(name).picker(instances(*weights))
    with pytest.raises(NoInstanceAvailable):
        picker.pick(Call("svc", "get", ("k",)))


@pytest.mark.parametrize("name", CONFIG_BALANCERS)
def test_change_is_seen_on_the_very_next_pick(name):
    balancer = make(name)
    first = balancer.picker(instances(100, 100))
    assert {first.pick(c).port for c in calls(50)} == {9000, 9001}
    second = balancer.picker(instances(100, 100, base=9500))
    assert {second.pick(c).port for c in calls(50)} <= {9500, 9501}
    # the first picker is unchanged: pickers are immutable
    assert {first.pick(c).port for c in calls(50)} == {9000, 9001}


@pytest.mark.parametrize("name", CONFIG_BALANCERS)
def test_single_instance(name):
    picker = make(name).picker(instances(100))
    assert {picker.pick(c).port for c in calls(20)} == {9000}


def test_smooth_weighted_round_robin_order_is_nginx():
    assert smooth_sequence([5, 1, 1]) == [0, 0, 1, 0, 2, 0, 0]
    picker = by_name("weighted_round_robin").picker(instances(500, 100, 100))
    cycle = [picker.pick(None).port for _ in range(7)]
    assert collections.Counter(cycle) == {9000: 5, 9001: 1, 9002: 1}


def test_round_robin_is_exact():
    picker = by_name("round_robin").picker(instances(100, 100, 100))
    seen = collections.Counter(picker.pick(None).port for _ in range(300))
    assert set(seen.values()) == {100}


def test_least_inflight_prefers_idle_and_breaks_ties_by_latency():
    load = EndpointLoad()
    picker = by_name("least_inflight", load=load).picker(instances(100, 100))
    a, b = "127.0.0.1:9000", "127.0.0.1:9001"
    for _ in range(5):
        load.start(a)
    assert {picker.pick(None).port for _ in range(50)} == {9001}
    for _ in range(5):
        load.finish(a, 0.001)
    load.start(b)
    load.finish(b, 0.050)
    assert load.inflight[a] == load.inflight[b] == 0
    assert {picker.pick(None).port for _ in range(50)} == {9000}


def test_consistent_hash_moves_about_one_nth_of_keys():
    keys = [f"user-{i}" for i in range(10000)]
    balancer = ConsistentHash(key=lambda call: call.args[0])

    def owners(picker):
        return {k: picker.pick(Call("svc", "get", (k,))).port for k in keys}

    before = owners(balancer.picker(instances(*[100] * 10)))
    after_join = owners(balancer.picker(instances(*[100] * 11)))
    moved = sum(before[k] != after_join[k] for k in keys) / len(keys)
    assert 1 / 11 * 0.6 < moved < 1 / 11 * 1.5, moved
    # every moved key went to the new instance
    assert {after_join[k] for k in keys if before[k] != after_join[k]} == {9010}
    after_leave = owners(balancer.picker(instances(*[100] * 9)))
    moved = sum(before[k] != after_leave[k] for k in keys) / len(keys)
    assert 1 / 10 * 0.6 < moved < 1 / 10 * 1.5, moved
    assert {before[k] for k in keys if before[k] != after_leave[k]} == {9009}


def test_consistent_hash_same_key_same_instance_and_no_key_is_random():
    picker = ConsistentHash(key=lambda call: call.args[0] if call.args else None).picker(
        instances(100, 100, 100))
    assert len({picker.pick(Call("svc", "get", ("k1",))).port for _ in range(50)}) == 1
    random.seed(1)
    assert len({picker.pick(Call("svc", "get", ())).port for _ in range(200)}) == 3
