"""Alarm policies: when a rule that hits starts firing, when it notifies, when it resolves.

One evaluation of a rule gives a *hit* (its expression is true) or a miss. ``step(policies, state,
hit, now)`` records it and returns the notifications due, ``"firing"`` and/or ``"resolved"``. It is
a pure function of its arguments and the state it updates, so every boundary can be tested with
synthetic times. The exact rules:

- ``times(n)``: the firing condition needs the last ``n`` evaluations to be hits; it holds at the
  ``n``-th consecutive hit, not before. Without ``times`` and ``percent``, ``times(1)`` applies.
- ``percent(p, w)``: the condition needs at least ``p`` % of the evaluations made in the window
  ``(now - w, now]`` (the current one included; one made exactly ``w`` ago is out) to be hits.
  With both ``times`` and ``percent``, both must hold.
- A rule starts *firing* at the first evaluation where the condition holds, and *resolves* at the
  first evaluation where it no longer does. That resolution sends one ``"resolved"``
  notification if this episode's firing was notified; it is never limited or snoozed.
- While firing, a ``"firing"`` notification is due at every evaluation where the condition holds,
  and these gates apply:
  - ``snooze(d)``: none is sent while ``now < last + d``, where ``last`` is the time of the last
    firing notification of the rule (of any episode); at ``now == last + d`` one is sent again.
  - ``limit(n, period)``: none is sent when ``n`` firing notifications were already sent in
    ``(now - period, now]``; one sent exactly ``period`` ago no longer counts.
  - With neither ``snooze`` nor ``limit``, a rule notifies once per episode (when it starts
    firing) and once when it resolves.
"""

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Policies:
    times: int | None = None  # None: 1 unless percent is given
    percent: tuple | None = None  # (p, window seconds)
    limit: tuple | None = None  # (n, period seconds)
    snooze: float | None = None  # seconds

    @property
    def keep_seconds(self):
        """How far back the evaluation history must reach."""
        return self.percent[1] if self.percent else 0.0


@dataclass
class RuleState:
    """What the monitor remembers of one rule (and saves to disk)."""

    history: list = field(default_factory=list)  # [time, hit] of recent evaluations
    firing: bool = False
    since: float | None = None  # when the current (or last) episode started firing
    notified: bool = False  # whether the current episode's firing was notified
    episode: int = 0
    sequence: int = 0  # firing notifications sent in the current episode
    sent: list = field(default_factory=list)  # times of firing notifications within the limit
    last_sent: float | None = None

    def to_dict(self):
        return dict(self.__dict__)

    @classmethod
    def from_dict(cls, data):
        state = cls()
        for name in state.__dict__:
            if name in data:
                setattr(state, name, data[name])
        state.history = [list(h) for h in state.history]
        return state


def condition(policies, history, now):
    """Whether the firing condition holds over ``history`` (``[time, hit]``, oldest first)."""
    n = policies.times if policies.times is not None else (0 if policies.percent else 1)
    if n and (len(history) < n or not all(hit for _, hit in history[-n:])):
        return False
    if policies.percent is not None:
        p, window = policies.percent
        recent = [hit for t, hit in history if now - window < t <= now]
        if not recent or sum(1 for hit in recent if hit) * 100 < p * len(recent):
            return False
    return True


def _gates_open(policies, state, now):
    if policies.snooze is None and policies.limit is None:
        return not state.notified
    if policies.snooze is not None and state.last_sent is not None:
        if now < state.last_sent + policies.snooze:
            return False
    if policies.limit is not None:
        n, period = policies.limit
        if sum(1 for t in state.sent if t > now - period) >= n:
            return False
    return True


def step(policies, state, hit, now):
    """Record one evaluation; returns the notifications due now (a list of statuses)."""
    state.history.append([now, bool(hit)])
    keep = max(policies.times or 1, 1)
    horizon = now - policies.keep_seconds
    while len(state.history) > keep and state.history[0][0] <= horizon:
        state.history.pop(0)
    if policies.limit is not None:
        state.sent = [t for t in state.sent if t > now - policies.limit[1]]
    else:
        state.sent = []
    if condition(policies, state.history, now):
        if not state.firing:
            state.firing, state.since, state.notified = True, now, False
            state.episode += 1
            state.sequence = 0
        if _gates_open(policies, state, now):
            state.sent.append(now)
            state.last_sent = now
            state.notified = True
            state.sequence += 1
            return ["firing"]
        return []
    if state.firing:
        notified = state.notified
        state.firing, state.notified = False, False
        return ["resolved"] if notified else []
    return []
