"""Polling the sockets for a moment before the hub sleeps, while spinning pays.

A server that keeps up with its callers is asleep in ``epoll_wait`` when each request comes, and
waking it costs both sides: the caller's ``send`` pays to wake the server's core, and the server
pays to come back. On a virtual machine that is tens of microseconds a call. So when a
connection goes to wait, the hub keeps polling without blocking (a libev idle watcher) until
``window`` seconds pass with no call served, and only then sleeps. Go's scheduler spins the same
way before it parks.

The window adapts, as Linux KVM's halt polling does. It starts at ``SHORTEST``. When the hub
wakes soon after a spin ended (so a longer spin would have caught what woke it, without going
over ``longest``), the window doubles. When it wakes later than that, the window goes back to
``SHORTEST``. A caller that calls again a fixed time after each reply (a client at concurrency
1) thus gets a window that covers its gap, while a server called at sparse moments keeps the
shortest window.

A spin that served nothing and was followed by a long sleep was wasted CPU. After one, the next
spins are skipped, twice as many each time in a row (up to ``MAX_SKIP``), and one that serves a
call resets that. A server called less often than once per window therefore spins on about one
sleep in ``MAX_SKIP``, and an idle one never. A spin during which the loop went ``PREEMPTED``
seconds without polling (another process had the core, or a handler ran that long) ends at once
and counts as wasted: on a crowded machine polling takes the core from the processes it waits
for.
"""

from time import perf_counter
from weakref import WeakKeyDictionary

SHORTEST = 20e-6  # the window a spin starts with, and goes back to
MAX_SKIP = 64
PREEMPTED = 0.5e-3  # a gap this long between two polls of one spin: the core was not ours


class Spin:
    """One per hub. ``before_wait()`` is called by a connection whose socket has nothing to
    read, just before it waits in the hub. ``window`` is the current spin's length (seconds),
    between ``shortest`` and ``longest``."""

    __slots__ = ("_backoff", "_last", "_served", "_since", "_skip", "_stopped", "_useful",
                 "_waits", "_watcher", "_woke", "longest", "preempted", "shortest", "window")

    def __init__(self, loop, longest, shortest=SHORTEST, preempted=PREEMPTED):
        self.longest = longest
        self.shortest = self.window = min(shortest, longest)
        self.preempted = preempted
        self._watcher = loop.idle()
        self._watcher.ref = False  # a spin never keeps the loop alive
        self._woke = loop.check()  # runs when the loop has polled: after a spin, how long it slept
        self._woke.ref = False
        self._waits = 0  # connections gone to wait: one per call served, or so
        self._served = 0  # _waits when the spin last saw a call served
        self._since = 0.0  # when it last did (or began)
        self._last = 0.0  # when the spin last polled
        self._stopped = 0.0  # when the last spin ended
        self._useful = False
        self._skip = 0  # spins still to skip
        self._backoff = 0  # spins skipped after the last wasted one

    @property
    def spinning(self):
        """Whether the hub is polling instead of sleeping."""
        return self._watcher.active

    def before_wait(self):
        self._waits += 1
        watcher = self._watcher
        if watcher.active:
            return
        if self._skip:
            self._skip -= 1
            return
        self._served = self._waits
        self._since = self._last = perf_counter()
        self._useful = False
        watcher.start(self._tick)

    def _tick(self):
        """The loop polled and found nothing to run."""
        now = perf_counter()
        if self._waits != self._served:
            self._served = self._waits
            self._since = now
            self._useful = True
        elif now - self._last >= self.preempted:
            self._watcher.stop()
            self._woke.stop()
            self._wasted()
            return
        elif now - self._since >= self.window:
            self._watcher.stop()
            self._stopped = now
            self._woke.start(self._after_sleep)
        self._last = now

    def _after_sleep(self):
        """The loop polled again after a spin ended (it slept in between, or had work)."""
        self._woke.stop()
        slept = perf_counter() - self._stopped
        if self.window + slept <= self.longest:  # a longer spin would have caught it
            self.window = min(self.longest, 2 * self.window)
            self._backoff = 0
        elif self._useful:
            self.window = self.shortest
            self._backoff = 0
        else:
            self._wasted()

    def _wasted(self):
        self.window = self.shortest
        self._backoff = min(MAX_SKIP, 2 * self._backoff or 1)
        self._skip = self._backoff


_spins = WeakKeyDictionary()


def for_hub(hub, longest):
    """The hub's ``Spin`` (made on first use), or None when ``longest`` is 0."""
    if longest <= 0:
        return None
    spin = _spins.get(hub)
    if spin is None:
        spin = _spins[hub] = Spin(hub.loop, longest)
    return spin
