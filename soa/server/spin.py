"""Polling the sockets for a moment before the hub sleeps, while spinning pays.

A server that keeps up with its callers is asleep in ``epoll_wait`` when each request comes, and
waking it costs both sides: the caller's ``send`` pays to wake the server's core, and the server
pays to come back. On a virtual machine that is several microseconds a call. So when a
connection goes to wait, the hub keeps polling without blocking (a libev idle watcher) until
``window`` seconds pass with no call served, and only then sleeps. Go's scheduler spins the same
way before it parks.

A spin that served nothing was wasted CPU: after one, the next spins are skipped, twice as many
each time in a row (up to ``MAX_SKIP``), and one that serves a call resets that. A server called
less often than once per window therefore spins on about one sleep in ``MAX_SKIP``, and an idle
one never.
"""

from time import perf_counter
from weakref import WeakKeyDictionary

MAX_SKIP = 64


class Spin:
    """One per hub. ``before_wait()`` is called by a connection whose socket has nothing to
    read, just before it waits in the hub."""

    __slots__ = ("_backoff", "_served", "_since", "_skip", "_useful", "_waits", "_watcher",
                 "window")

    def __init__(self, loop, window):
        self.window = window
        self._watcher = loop.idle()
        self._watcher.ref = False  # a spin never keeps the loop alive
        self._waits = 0  # connections gone to wait: one per call served, or so
        self._served = 0  # _waits when the spin last saw a call served
        self._since = 0.0  # when it last did (or began)
        self._useful = False
        self._skip = 0  # spins still to skip
        self._backoff = 0  # spins skipped after the last useless one

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
        self._since = perf_counter()
        self._useful = False
        watcher.start(self._tick)

    def _tick(self):
        """The loop polled and found nothing to run."""
        now = perf_counter()
        if self._waits != self._served:
            self._served = self._waits
            self._since = now
            self._useful = True
        elif now - self._since >= self.window:
            self._watcher.stop()
            if self._useful:
                self._backoff = 0
            else:
                self._backoff = min(MAX_SKIP, 2 * self._backoff or 1)
                self._skip = self._backoff


_spins = WeakKeyDictionary()


def for_hub(hub, window):
    """The hub's ``Spin`` (made on first use), or None when ``window`` is 0."""
    if window <= 0:
        return None
    spin = _spins.get(hub)
    if spin is None:
        spin = _spins[hub] = Spin(hub.loop, window)
    return spin
