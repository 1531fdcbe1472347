"""Is an instance up? A ``ping()`` call when the IDL has one, else a TCP connect.

A TCP connect alone cannot tell a stopped (SIGSTOP) or wedged process from a healthy one, since
the kernel completes the handshake for it; the ping call can. Any reply to ping counts as alive,
an application error included: the process answered.
"""

import time

from soa.errors import TransportError

from .connection import Connection


class Prober:
    """``prober(instance) -> bool``. Runs in the caller's greenlet (ejection and mass-removal
    guard greenlets); blocks at most ``connect_timeout + timeout`` seconds; never raises."""

    def __init__(self, plans, connect_timeout=0.25, timeout=1.0, tls=None):
        self.tls = tls
        plan = plans.get("ping")
        self.ping = plan if plan is not None and not plan.arg_names and not plan.oneway else None
        self.connect_timeout = connect_timeout
        self.timeout = timeout

    def __call__(self, instance):
        try:
            conn = Connection.open(instance, self.connect_timeout, self.tls)
        except TransportError:
            return False
        try:
            if self.ping is None:
                return True
            try:
                conn.call(self.ping, (), time.monotonic() + self.timeout)
            except (TransportError, OSError):
                return False
            except Exception:  # noqa: BLE001 - any reply means the process answered
                return True  # it answered, with an error
            return True
        finally:
            conn.close()
