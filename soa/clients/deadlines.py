"""The deadlines of calls in flight, kept by one timer per hub instead of one per socket wait.

A gevent socket with a timeout builds a ``Timeout`` and arms and disarms a libev timer every
time it waits. With 64 calls in flight that measured ~9 us of client CPU per call, a fifth of
it (a scratch A/B in turns against one soa server; README "Benchmarks", client). So a
connection's socket has no timeout: each call enters its deadline here before it writes and
leaves once its reply is read. One repeating timer, running while any call is in flight, looks
every ``TICK`` seconds for calls past their deadline and throws ``TimeoutError`` into the
greenlet waiting on that call's socket, as a socket timeout would. A call therefore ends at
most ``TICK`` (and the hub's lag) after its deadline.

Only the socket waits of a call are in its window (``Connection.call`` enters after the checks
that can fail without I/O and leaves in a ``finally``), so the throw always lands in a send or
a receive.
"""

import time
import weakref

from gevent import get_hub, getcurrent

TICK = 0.005  # seconds between looks: the most a call can outlive its deadline by
_monotonic = time.monotonic
_WATCHES = weakref.WeakKeyDictionary()  # hub -> its DeadlineWatch


class DeadlineWatch:
    __slots__ = ("_calls", "_timer", "__weakref__")

    def __init__(self, loop):
        self._calls = {}  # key (one per connection) -> (deadline, greenlet waiting on it)
        # ref=False: the timer alone never keeps the loop alive; the sockets waited on do.
        self._timer = loop.timer(TICK, TICK, ref=False)

    def enter(self, key, deadline):
        """``key``'s call, made by the current greenlet, ends by ``deadline`` (monotonic)."""
        self._calls[key] = (deadline, getcurrent())
        if not self._timer.active:
            self._timer.start(self._sweep)

    def leave(self, key):
        self._calls.pop(key, None)

    def _sweep(self):
        calls = self._calls
        if not calls:
            self._timer.stop()  # started again by the next enter
            return
        now = _monotonic()
        late = [key for key, (deadline, _) in calls.items() if deadline <= now]
        for key in late:
            _, greenlet = calls.pop(key)
            if not greenlet.dead:
                greenlet.throw(TimeoutError("the call's deadline passed"))

    def __len__(self):
        return len(self._calls)


def watch():
    """The ``DeadlineWatch`` of the current thread's hub."""
    hub = get_hub()
    found = _WATCHES.get(hub)
    if found is None:
        found = _WATCHES[hub] = DeadlineWatch(hub.loop)
    return found
