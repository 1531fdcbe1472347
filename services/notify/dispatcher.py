"""The delivery loop: lease due deliveries, call the subscribers, settle each outcome."""

import logging
from dataclasses import dataclass

import gevent
import gevent.event
import gevent.pool

from services.idempotency import now_ms
from soa.backoff import jittered

from . import outbox

log = logging.getLogger("shop.notify")


@dataclass(frozen=True)
class DeliverySettings:
    """How hard Notify tries. The lease must outlast one call (the client's whole deadline)."""

    concurrency: int = 32
    lease_ms: int = 10_000
    poll_interval: float = 0.1
    retry_base_ms: int = 200
    retry_cap_ms: int = 2_000
    max_attempts: int = 200

    def retry_delay_ms(self, attempts):
        return int(jittered(attempts - 1, self.retry_base_ms, self.retry_cap_ms))


class Counters:
    def __init__(self):
        self.published = self.delivered = self.retries = self.dead = 0


class Dispatcher:
    """One greenlet per Notify process. ``deliver(row)`` performs one call and returns or
    raises; ``event_of(row)`` builds the Event argument. ``wake()`` ends the idle wait early."""

    def __init__(self, db, settings, event_of, deliver, counters):
        self.db = db
        self.settings = settings
        self.event_of = event_of
        self.deliver = deliver
        self.counters = counters
        self._pool = gevent.pool.Pool(settings.concurrency)
        self._wakeup = gevent.event.Event()
        self._loop = None
        self._stopping = False

    def start(self):
        if self._loop is None:
            self._stopping = False
            self._loop = gevent.spawn(self._run)
        return self

    def stop(self):
        if self._loop is not None:
            self._stopping = True  # the loop ends even if the kill lands inside a caught error
            self._loop.kill()
            self._loop = None
        self._pool.kill()

    def wake(self):
        self._wakeup.set()

    def _run(self):
        while not self._stopping:
            try:
                leased = self._lease()
            except Exception:  # a locked or broken database: log and keep going
                log.exception("notify: leasing deliveries failed")
                leased = []
            for row in leased:
                self._pool.spawn(self._attempt, row)
            if not leased:
                self._wakeup.wait(self.settings.poll_interval)
                self._wakeup.clear()
            elif self._pool.free_count() == 0:
                self._pool.wait_available()

    def _lease(self):
        free = self._pool.free_count()
        if free <= 0:
            return []
        with self.db.transaction() as tx:
            return outbox.lease_due(tx, now_ms(), self.settings.lease_ms, free)

    def _attempt(self, row):
        attempts = row["attempts"] + 1
        try:
            self.deliver(row["service_name"], row["method"], self.event_of(row, attempts))
        except Exception as e:  # noqa: BLE001 - any failure means "retry later"; the subscriber may be down
            dead = attempts >= self.settings.max_attempts
            delay = self.settings.retry_delay_ms(attempts)
            with self.db.transaction() as tx:
                outbox.mark_failed(tx, row["event_id"], row["subscription_id"],
                                   f"{type(e).__name__}: {e}", now_ms() + delay, dead)
            if dead:
                self.counters.dead += 1
            else:
                self.counters.retries += 1
            log.info("notify: %s.%s for %s failed (attempt %d): %s", row["service_name"],
                     row["method"], row["event_id"], attempts, e)
            return
        with self.db.transaction() as tx:
            if outbox.mark_delivered(tx, row["event_id"], row["subscription_id"]):
                self.counters.delivered += 1
