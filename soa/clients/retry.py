"""Retries, and the budget that keeps them from becoming a retry storm.

What is retried (each retry goes to an instance this call has not tried yet, when there is one):
- A failure before the request was sent (``TransportError`` with ``sent=False``: connect refused,
  reset or timed out; the pooled connection turned out closed): always, up to ``UNSENT_RETRIES``
  extra attempts, without spending the budget: the server never saw the call.
- A failure after the request was sent (``RpcTimeout``, the connection lost mid-call, a garbled
  reply): only for idempotent methods, at most ``retries`` times, each paid from the budget.
- Never: exceptions declared in the IDL (they are answers), ``TApplicationException`` (the server
  ran the handler, or refused the call, deterministically; retrying would repeat it), caller
  errors (bad arguments), and ``NoInstanceAvailable``.
No retry starts after the call's deadline. When every attempt failed and there was more than
one, ``RetryError`` carries each attempt's error; a single failed attempt raises its own error.

``attempt_timeout`` (seconds; 0 or None: off) bounds each attempt of an idempotent method within
the call's deadline, so an attempt that hangs (a stopped process, a partition) times out while
time is left to retry it elsewhere; without it one hung attempt takes the whole deadline.
"""

import time

from soa.errors import NoInstanceAvailable, RetryError, TransportError

UNSENT_RETRIES = 3


class RetryBudget:
    """Token bucket: each call deposits ``ratio`` tokens (at most ``cap``), each retry withdraws
    one. A reserve of ``min_per_second`` retries per second lets a quiet client still retry.
    Like Finagle's RetryBudget and gRPC's retry throttling. Deposits are only counted per call
    (``calls += 1``) and settled when a retry asks, so the hot path pays one increment. Used from
    greenlets of one thread; nothing here yields, so no lock is needed."""

    def __init__(self, ratio=0.1, min_per_second=10.0, cap=None):
        self.ratio = ratio
        self.cap = cap if cap is not None else max(10.0, ratio * 1000)
        self.calls = 0
        self.retries = 0  # retries sent (metrics: soa_client_retries_total)
        self.refused = 0  # retries the budget refused (soa_client_retries_refused_total)
        self._settled_calls = 0
        self._balance = 0.0
        self.min_per_second = min_per_second
        self.reserve = min_per_second
        self._refilled = time.monotonic()

    @property
    def balance(self):
        self._settle()
        return self._balance

    def deposit(self):
        self.calls += 1

    def _settle(self):
        new = self.calls - self._settled_calls
        if new:
            self._settled_calls = self.calls
            self._balance = min(self.cap, self._balance + new * self.ratio)

    def withdraw(self):
        """Take one retry token; False when the budget is spent."""
        self._settle()
        if self._balance >= 0.999999:  # tolerate 10 x 0.1 adding up to 0.9999...
            self._balance -= 1.0
            return True
        now = time.monotonic()
        self.reserve = min(self.min_per_second,
                           self.reserve + (now - self._refilled) * self.min_per_second)
        self._refilled = now
        if self.reserve >= 1.0:
            self.reserve -= 1.0
            return True
        self.refused += 1
        return False


def retry_middleware(plans, retries, budget, has_untried=None, monotonic=time.monotonic,
                     attempt_timeout=None):
    """Middleware retrying per the rules above; ``call.meta["tried"]`` lists tried addresses.

    ``has_untried(call)`` tells whether an instance the call has not tried is left; a failure
    before sending is retried only when one is (the same instance would refuse again).
    """
    bounded = frozenset(name for name, plan in plans.items()
                        if plan.idempotent) if attempt_timeout else frozenset()

    def factory(next_handler):
        def retry(call):
            budget.calls += 1  # budget.deposit(), inlined
            if bounded and call.method in bounded:
                return _bounded(call)
            try:
                return next_handler(call)
            except TransportError as first:
                return _again(call, first)

        def _bounded(call):
            """Each attempt gets at most ``attempt_timeout`` of what is left of the deadline."""
            total = call.deadline
            call.deadline = _attempt_deadline(total)
            try:
                return next_handler(call)
            except TransportError as first:
                return _again(call, first, total)
            finally:
                call.deadline = total

        def _attempt_deadline(total):
            mine = monotonic() + attempt_timeout
            return mine if total is None or mine < total else total

        def _again(call, error, total=False):
            bounding = total is not False
            if not bounding:
                total = call.deadline
            attempts = [error]
            tried = call.meta.setdefault("tried", set())
            idempotent = plans[call.method].idempotent
            unsent_left, sent_left = UNSENT_RETRIES, retries
            while True:
                if call.peer is not None:
                    tried.add(call.peer)
                if not error.sent and unsent_left > 0 and (
                        has_untried is None or has_untried(call)):
                    unsent_left -= 1
                elif error.sent and idempotent and sent_left > 0 and budget.withdraw():
                    sent_left -= 1
                else:
                    break
                if total is not None and monotonic() >= total:
                    break
                if bounding:
                    call.deadline = _attempt_deadline(total)
                call.peer = None
                budget.retries += 1
                try:
                    return next_handler(call)
                except TransportError as e:
                    error = e
                    attempts.append(e)
                except NoInstanceAvailable as e:
                    attempts.append(e)
                    break
            if len(attempts) == 1:
                raise error
            raise RetryError(call.service, call.method, attempts) from attempts[-1]

        return retry

    return factory
