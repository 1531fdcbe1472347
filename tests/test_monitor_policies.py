"""times, percent, limit and snooze at their exact boundaries; resolution; the state file."""

import json

from soa.monitor.policy import Policies, RuleState, step
from soa.monitor.state import StateFile


def drive(policies, hits, state=None, start=0.0, every=1.0):
    """Evaluate at start, start+every, ...; returns [(time, statuses)] with a status."""
    state = state or RuleState()
    out = []
    for i, hit in enumerate(hits):
        now = start + i * every
        statuses = step(policies, state, hit, now)
        if statuses:
            out.append((now, statuses))
    return out, state


def test_times_fires_at_the_nth_consecutive_hit():
    p = Policies(times=3)
    out, state = drive(p, [True, True])
    assert out == [] and not state.firing
    out, state = drive(p, [True, True, True])
    assert out == [(2.0, ["firing"])] and state.firing and state.since == 2.0
    # a miss in between starts the count again
    out, _ = drive(p, [True, True, False, True, True, True])
    assert out == [(5.0, ["firing"])]


def test_times_one_is_the_default():
    out, _ = drive(Policies(), [False, True])
    assert out == [(1.0, ["firing"])]


def test_without_snooze_or_limit_one_notification_per_episode_and_one_resolved():
    out, state = drive(Policies(), [True, True, True, False, False, True])
    assert out == [(0.0, ["firing"]), (3.0, ["resolved"]), (5.0, ["firing"])]
    assert state.episode == 2


def test_percent_boundaries():
    p = Policies(percent=(50.0, 4.0))
    # t=3: the window (-1, 3] holds F F T T: exactly 50% -> fires (at least p%)
    out, _ = drive(p, [False, False, True, True])
    assert out == [(3.0, ["firing"])]
    # F F F T: 25% at t=3, never 50% before
    out, _ = drive(p, [False, False, False, True])
    assert out == []
    # t=0: 1 of 1; t=3: (-1, 3] T T F F = 50% still holds; t=4: (0, 4] T F F F = 25%: resolves
    out, state = drive(p, [True, True, False, False, False])
    assert out == [(0.0, ["firing"]), (4.0, ["resolved"])]
    assert not state.firing


def test_percent_window_excludes_the_evaluation_exactly_w_ago():
    p = Policies(percent=(75.0, 4.0))
    # t=4: (0, 4] holds T F T T = 75% -> fires; counting t=0's miss too would be 3/5 = 60%
    out, _ = drive(p, [False, True, False, True, True])
    assert out == [(4.0, ["firing"])]


def test_percent_with_times_needs_both():
    p = Policies(times=2, percent=(75.0, 10.0))
    out, _ = drive(p, [True, False, True, True])
    # at t=3: last two hit, but 3/4 = 75% -> fires exactly at the boundary
    assert out == [(3.0, ["firing"])]
    out, _ = drive(p, [False, False, True, True])
    assert out == []  # 2/4 = 50% < 75%


def test_limit_boundaries():
    p = Policies(limit=(2, 10.0))
    # firing on every evaluation, at most 2 per 10 s; one sent exactly 10 s ago no longer counts
    out, state = drive(p, [True] * 12)
    assert [t for t, _ in out] == [0.0, 1.0, 10.0, 11.0]
    assert state.sequence == 4 and state.episode == 1


def test_snooze_boundaries():
    p = Policies(snooze=3.0)
    out, _ = drive(p, [True] * 8)
    # muted while now < last + 3: sent at 0, 3, 6 (exactly at the boundary)
    assert [t for t, _ in out] == [0.0, 3.0, 6.0]


def test_snooze_mutes_a_new_episode_and_its_resolution():
    p = Policies(snooze=10.0)
    out, state = drive(p, [True, False, True, False, False])
    # fires at 0, resolves at 1 (notified), fires again at 2 inside the snooze: muted, and so
    # is its resolution at 3 (its firing was never notified)
    assert out == [(0.0, ["firing"]), (1.0, ["resolved"])]
    assert state.episode == 2 and not state.firing


def test_limit_and_snooze_together():
    p = Policies(limit=(2, 100.0), snooze=5.0)
    out, _ = drive(p, [True] * 30)
    assert [t for t, _ in out] == [0.0, 5.0]  # snooze spaces them, limit stops the third


def test_resolved_is_never_limited_or_snoozed():
    p = Policies(limit=(1, 1000.0), snooze=1000.0)
    out, _ = drive(p, [True, True, False])
    assert out == [(0.0, ["firing"]), (2.0, ["resolved"])]


def test_state_round_trips_and_a_restart_neither_repeats_nor_forgets(tmp_path):
    p = Policies(times=2, snooze=60.0)
    out, state = drive(p, [True, True, True])
    assert out == [(1.0, ["firing"])]
    file = StateFile(tmp_path / "state" / "alerts.json")
    file.save({"r": state}, [{"sink": "webhook[0]", "note": {"id": "r:1:1"}, "attempts": 1}],
              {"expired": {"svc": 2}})
    rules, outbox, registry = StateFile(tmp_path / "state" / "alerts.json").load()
    assert registry == {"expired": {"svc": 2}}
    restored = rules["r"]
    assert restored.to_dict() == state.to_dict()
    assert outbox == [{"sink": "webhook[0]", "note": {"id": "r:1:1"}, "attempts": 1}]
    # still hitting after the restart: no repeat inside the snooze
    assert step(p, restored, True, 3.0) == []
    # it stopped hitting while the monitor was down: the resolution is still sent
    assert step(p, restored, False, 4.0) == ["resolved"]
    assert list((tmp_path / "state").iterdir()) == [tmp_path / "state" / "alerts.json"]


def test_a_corrupt_state_file_is_moved_aside(tmp_path):
    path = tmp_path / "alerts.json"
    path.write_text("{not json")
    assert StateFile(path).load() == ({}, [], {})
    assert (tmp_path / "alerts.json.corrupt").read_text() == "{not json"
    path.write_text(json.dumps({"version": 99}))
    assert StateFile(path).load() == ({}, [], {})
