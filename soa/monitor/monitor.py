"""``Monitor``: every interval, scrape the registry's instances, evaluate the rules, notify.

One tick (``tick(now)``), in the loop greenlet:

1. count the registry departures seen by the watch (``RegistryTargets.refresh``);
2. scrape every registered instance that has a ``metrics_port``, concurrently (at most 32 at a
   time), each within ``scrape_timeout``; a failed scrape makes its series absent and its
   ``soa_instance_up`` 0; an instance that left has its series dropped;
3. write the registry facts (``soa_instances`` ...), then evaluate every rule and step its
   policies (``policy.step``);
4. put the due notifications in the outbox, save the state file (atomically), then print or log
   them and wake the webhook and service-call deliveries.

Nothing is evaluated before the registry watch has listed once, so a monitor that starts while
etcd is unreachable does not report every service as having no instances. Scraped history lives
in memory only, so after a (re)start a rule's ``count()`` windows are not full yet: until the
monitor has run for a rule's longest window, a miss of a rule that is firing is not recorded (a
half-empty window must not resolve it, only to fire it again later); hits, and the misses of a
rule that is not firing, count from the first evaluation.
"""

import logging
import time

import gevent
import gevent.event
import gevent.pool

from .evaluate import evaluate, truth
from .nodes import longest_window
from .sinks import CallSink, LogSink, Outbox, StreamSink, WebhookSink, build
from .policy import RuleState, step
from .scrape import scrape
from .series import SeriesStore
from .state import StateFile
from .targets import RegistryTargets

log = logging.getLogger("soa.monitor")


class Monitor:
    """``start()`` returns once the registry is listed (or ``ready_timeout`` passed) and the loop
    runs (with ``loop=False`` only the watch and the deliveries run, and the caller calls
    ``tick(now)``); ``stop()`` ends it and saves the state. ``stream`` receives the ``stdout``
    output. Building one raises ``ConfigError`` when the service call names a service ``config``
    lacks. The loop, the watch and each sink's delivery are greenlets of the caller's thread; an
    error in a tick is logged and the next tick runs; etcd being away only delays facts (the
    watch keeps the last set it knew)."""

    def __init__(self, config, alerts, connection=None, stream=None, clock=time.time):
        from soa.registry.etcd import EtcdConnection

        alerts.check(config)
        self.config = config
        self.alerts = alerts
        self.clock = clock
        self._owns_connection = connection is None
        self.connection = connection or EtcdConnection(config.etcd)
        longest = max([longest_window(r.tree) for r in alerts.rules] + [0.0])
        self.store = SeriesStore(retention=longest + 3 * alerts.interval + 1.0)
        self.state_file = StateFile(alerts.state)
        saved, outbox, registry = self.state_file.load()
        self.states = {rule.name: saved.get(rule.name) or RuleState() for rule in alerts.rules}
        self.targets = RegistryTargets(self.connection, config.etcd.prefix, alerts.services(),
                                       registry)
        self.output = {"stdout": StreamSink(stream), "log": LogSink()}.get(alerts.output)
        sinks = [WebhookSink(w, i) for i, w in enumerate(alerts.webhooks)]
        if alerts.call is not None:
            sinks.append(CallSink(alerts.call, config))
        names = {s.name for s in sinks}
        outbox[:] = [e for e in outbox
                     if e.get("sink") in names and isinstance(e.get("note"), dict)]
        self.outbox = Outbox(sinks, outbox, self._save)
        self.ticks = 0
        self.first_tick = None
        self.warmup = {r.name: longest_window(r.tree) for r in alerts.rules}
        self._scraped = set()
        self._down = set()
        self._stopped = gevent.event.Event()
        self._greenlet = None
        self._pool = gevent.pool.Pool(32)

    def start(self, ready_timeout=None, loop=True):
        self.targets.start()
        self.targets.wait_ready(self.config.etcd.dial_timeout if ready_timeout is None
                                else ready_timeout)
        self.outbox.start()
        log.info("monitoring %s/services/: %d rule(s) every %gs, state in %s",
                 self.targets.prefix, len(self.alerts.rules), self.alerts.interval,
                 self.state_file.path)
        if loop:
            self._greenlet = gevent.spawn(self._loop)
        return self

    def stop(self):
        self._stopped.set()
        if self._greenlet is not None:
            self._greenlet.kill(timeout=5)
        self.outbox.stop()
        self.targets.stop()
        self._save()
        if self._owns_connection:
            self.connection.close()

    def _loop(self):
        next_tick = time.monotonic()
        while not self._stopped.is_set():
            try:
                self.tick(self.clock())
            except Exception:  # a tick never ends the monitor
                log.exception("evaluation failed")
            next_tick += self.alerts.interval
            delay = next_tick - time.monotonic()
            if delay < 0:  # fell behind: skip the missed ticks rather than bunching them
                next_tick, delay = time.monotonic(), 0
            if self._stopped.wait(delay):
                return

    def tick(self, now):
        """One evaluation of every rule at ``now``; returns the notifications it decided."""
        if not self.targets.watch.ready.is_set():
            log.warning("registry not listed yet; not evaluating")
            return []
        self.targets.refresh()
        up = self._scrape_all(now)
        self.store.replace("registry", self.targets.facts(up), now)
        self.store.expire(now)
        if self.first_tick is None:
            self.first_tick = now
        notes = []
        for rule in self.alerts.rules:
            state = self.states[rule.name]
            try:
                value = evaluate(rule.tree, self.store, now)
            except (ArithmeticError, ValueError, TypeError) as e:
                log.warning("rule %s: %s; counted as a miss", rule.name, e)
                value = 0.0
            hit = truth(value)
            if state.firing and not hit and now - self.first_tick < self.warmup[rule.name]:
                continue  # the window has not filled since the start: not a resolution yet
            for status in step(rule.policies, state, hit, now):
                notes.append(build(rule, status, state, value, now))
        for note in notes:
            self.outbox.submit(note)
        self._save()
        if self.output is not None:
            for note in notes:
                self.output.deliver(note)
        if notes:
            self.outbox.wake()
        self.ticks += 1
        return notes

    def _scrape_all(self, now):
        timeout = min(self.alerts.scrape_timeout, self.alerts.interval)
        instances = [i for i in self.targets.instances if i.metrics_port]
        jobs = {(i.service, i.address): self._pool.spawn(scrape, i, timeout) for i in instances}
        gevent.joinall(list(jobs.values()), timeout=timeout + 0.5)
        up = {}
        for source, job in jobs.items():
            if job.successful():
                self.store.replace(source, job.value, now)
                up[source] = True
                continue
            job.kill(block=False)
            if source not in self._down:  # one line when it goes down, not one per tick
                log.warning("scrape %s %s failed: %s", source[0], source[1],
                            job.exception or "timed out")
            self.store.replace(source, [], now)
            up[source] = False
        for source in self._down - {s for s, ok in up.items() if not ok}:
            if source in up:
                log.info("scrape %s %s answers again", *source)
        self._down = {s for s, ok in up.items() if not ok}
        for source in self._scraped - set(jobs):
            self.store.drop_source(source)
        self._scraped = set(jobs)
        return up

    def _save(self):
        try:
            self.state_file.save(self.states, self.outbox.entries, self.targets.saved())
        except OSError as e:
            log.error("cannot save the alert state to %s: %s", self.state_file.path, e)
