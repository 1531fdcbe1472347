"""A pool of connections to one instance: bounded size, idle timeout, broken ones thrown away.

``acquire(deadline)`` returns an idle connection (the most recently used first) or opens a new
one; when ``size`` connections are already out it waits for one to come back, until the
deadline (then ``RpcTimeout(sent=False)``). ``release(conn)`` puts it back unless it is broken or
the pool is closed. Connections idle longer than ``idle_timeout`` are closed when met and by
``sweep()``; one idle for more than ``CHECK_AFTER`` seconds gets a liveness check before reuse
(the server may have closed it), so hot connections cost no extra syscall. ``close()`` closes
idle connections at once and busy ones as they come back. Used from the greenlets of one thread
(gevent): a counter bounds the size, and only a full pool parks callers (gevent Waiters).
"""

import collections
import time

from gevent.hub import Waiter, get_hub

from soa.errors import RpcTimeout

from .connection import Connection

CHECK_AFTER = 1.0  # seconds idle after which a connection is checked before reuse
_monotonic = time.monotonic


class Pool:
    def __init__(self, instance, size=64, idle_timeout=60.0, connect_timeout=0.25,
                 connect=Connection.open, check_after=CHECK_AFTER):
        self.instance = instance
        self.check_after = check_after
        self.size = size
        self.idle_timeout = idle_timeout
        self.connect_timeout = connect_timeout
        self.closed = False
        self.opened = 0  # connections opened over the pool's life (for tests and metrics)
        self.acquired = 0  # attempts that went through this pool
        self._connect = connect
        self._idle = []
        self._busy = 0
        self._waiters = collections.deque()  # gevent Waiters of acquires waiting for a slot

    @property
    def idle(self):
        return len(self._idle)

    @property
    def busy(self):
        return self._busy

    def acquire(self, deadline):
        self.acquired += 1
        if self._busy >= self.size:
            self._wait_for_slot(deadline)
        self._busy += 1  # a plain counter: greenlets of one thread never interleave here
        idle = self._idle
        if idle:
            now = _monotonic()
            while idle:
                conn = idle.pop()
                age = now - conn.idle_since
                if age < self.check_after or (age < self.idle_timeout and conn.alive()):
                    return conn
                conn.close()
        try:
            left = deadline - _monotonic()
            if left <= 0:
                raise RpcTimeout("deadline passed before connecting",
                                 address=self.instance.address, sent=False)
            conn = self._connect(self.instance, min(self.connect_timeout, left))
        except BaseException:
            self._free_slot()
            raise
        self.opened += 1
        return conn

    def release(self, conn):
        if conn.broken or self.closed:
            conn.close()
        else:
            conn.idle_since = _monotonic()
            self._idle.append(conn)
        self._free_slot()

    def _free_slot(self):
        self._busy -= 1
        if self._waiters:  # wake the longest waiter (from the hub, as gevent Waiters require)
            get_hub().loop.run_callback(self._waiters.popleft().switch, True)

    def _wait_for_slot(self, deadline):
        """Block this greenlet until a slot frees up, or raise at the deadline."""
        while self._busy >= self.size:
            left = deadline - _monotonic()
            if left <= 0:
                raise RpcTimeout(f"all {self.size} pooled connections busy until the deadline",
                                 address=self.instance.address, sent=False)
            waiter = Waiter()
            self._waiters.append(waiter)
            timer = get_hub().loop.timer(left)
            timer.start(waiter.switch, False)
            try:
                waiter.get()
            finally:
                timer.close()
                if waiter in self._waiters:
                    self._waiters.remove(waiter)

    def sweep(self, now=None):
        """Close connections idle longer than ``idle_timeout``; returns how many."""
        now = _monotonic() if now is None else now
        keep = [c for c in self._idle if now - c.idle_since < self.idle_timeout]
        stale = [c for c in self._idle if now - c.idle_since >= self.idle_timeout]
        self._idle[:] = keep
        for conn in stale:
            conn.close()
        return len(stale)

    def discard_idle(self):
        """Close every idle connection (they are suspect after a connection to the peer broke)."""
        idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()

    def close(self):
        self.closed = True
        idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()
