"""Discovery: list a service's range at revision R, watch from R+1, publish complete sets."""

import logging
import threading
import time

import gevent
import gevent.event

from soa import entry
from soa.backoff import Backoff

from .etcd import PERMANENT, RETRYABLE, EtcdConnection, describe, etcdrpc, range_end
from .instance import InvalidInstance, parse_instance, service_prefix

log = logging.getLogger("soa.registry")
DEPARTED_FOR = 120.0  # seconds a deliberate deregistration is remembered


class EtcdResolver:
    """Resolver: ``instances(service)`` and ``subscribe(service, callback)``.

    The first use of a service starts one watch greenlet for it. ``instances`` returns the latest
    complete set as a tuple sorted by address; it waits (up to ``wait`` seconds, default the dial
    timeout) only for the very first listing, and returns ``()`` if etcd has not answered by then.
    ``subscribe`` calls ``callback(instances)`` at once with the current set when there is one,
    then after every change, always with the complete set, from the watch greenlet; a callback
    must not block. On etcd errors the last good set is kept and nothing is published. When
    etcd refuses the credentials or the read before any set is known, ``instances`` raises that
    ``EtcdAuthError`` (the watch keeps trying; a refusal after a first listing is logged as an
    error). ``instances`` and ``subscribe`` raise ``SoaError`` in a process that has not patched
    the socket module for gevent (``soa.entry.cooperative_grpc``): the watch would hang it.
    """

    def __init__(self, etcd_config, connection=None):
        self.config = etcd_config
        self.connection = connection or EtcdConnection(etcd_config)
        self._owns_connection = connection is None
        self._watches = {}
        self._lock = threading.Lock()

    def _watch(self, service):
        entry.cooperative_grpc()  # here, so a process that cannot use grpc hears it at once
        with self._lock:
            watch = self._watches.get(service)
            if watch is None:
                prefix = service_prefix(self.config.prefix, service)
                watch = PrefixWatch(self.connection, self.config.prefix, prefix)
                self._watches[service] = watch
                watch.start()
            return watch

    def instances(self, service, wait=None):
        watch = self._watch(service)
        watch.settled.wait(self.config.dial_timeout if wait is None else wait)
        if watch.refused is not None and not watch.ready.is_set():
            raise watch.refused
        return watch.snapshot

    def subscribe(self, service, callback):
        self._watch(service).subscribe(callback)

    def watch_state(self, service):
        """``(relists, connected)`` of the service's watch: how many times it listed the range,
        and 1 while its stream is up (0 before the first listing and after an error)."""
        watch = self._watches.get(service)
        if watch is None:
            return 0, 0
        return watch.relists, int(watch.connected)
    def departed(self, service):
        """Addresses of ``service`` that deregistered on purpose lately (their value was marked
        ``leaving`` before the key went): a removal that no glitch explains."""
        watch = self._watches.get(service)
        return watch.departed if watch is not None else {}

    def last_error(self, service):
        """Why the watch of ``service`` has no listing yet (one line naming the endpoint), or
        None when it has one."""
        watch = self._watches.get(service)
        return None if watch is None or watch.ready.is_set() else watch.last_error

    def unsubscribe(self, service, callback):
        watch = self._watches.get(service)
        if watch is not None:
            watch.unsubscribe(callback)

    def close(self):
        with self._lock:
            watches, self._watches = list(self._watches.values()), {}
        for watch in watches:
            watch.stop()
        if self._owns_connection:
            self.connection.close()


class PrefixWatch:
    """Mirrors every instance under one key range; one greenlet, restarted on any error.

    ``snapshot`` is the complete set (a tuple sorted by service and address). ``ready`` is set
    after the first successful listing. ``revision`` is the etcd revision the snapshot reflects.
    ``refused`` is the ``EtcdAuthError`` of the last attempt, if etcd refused it; ``settled`` is
    set once there is a listing or a refusal.
    """

    def __init__(self, connection, prefix, range_prefix):
        self.connection = connection
        self.prefix = prefix
        self.range_prefix = range_prefix
        self.snapshot = ()
        self.revision = 0
        self.relists = 0
        self.connected = False  # True from a successful listing until the next error
        self.ready = gevent.event.Event()
        self.settled = gevent.event.Event()
        self.refused = None
        self.last_error = None  # the last failure, while there is no listing
        self.departed = {}  # address -> monotonic time it was marked leaving (recent ones)
        self._entries = {}
        self._warned = set()
        self._subscribers = []
        self._stopped = threading.Event()
        self._stream = None
        self._greenlet = None

    def start(self):
        self._greenlet = gevent.spawn(self._run)

    def stop(self):
        self._stopped.set()
        stream = self._stream
        if stream is not None:
            stream.cancel()
        if self._greenlet is not None:
            self._greenlet.kill(block=True, timeout=2)

    def subscribe(self, callback):
        self._subscribers.append(callback)
        if self.ready.is_set():
            _call(callback, self.snapshot)

    def unsubscribe(self, callback):
        if callback in self._subscribers:
            self._subscribers.remove(callback)

    def _run(self):
        backoff = Backoff(base=0.05, cap=1.0)
        while not self._stopped.is_set():
            client = None
            try:
                client = self.connection.client()
                self._list(client)
                backoff.reset()
                self._follow(client)
            except PERMANENT as e:
                if self.refused is None:  # once per run of refusals
                    # Before the first listing, instances() raises it to the caller instead.
                    level = logging.ERROR if self.ready.is_set() else logging.INFO
                    log.log(level, "watch %s: %s", self.range_prefix, e)
                self.refused = e
                self.settled.set()
                if self._stopped.wait(backoff.next()):
                    return
            except RETRYABLE as e:
                self.connected = False
                if self._stopped.is_set():
                    return
                self.last_error = f"etcd {self.connection.endpoint} did not answer: {describe(e)}"
                if client is not None:
                    self.connection.failed(client)
                delay = backoff.next()
                log.log(  # the first failure and every 10th after it (retries come often)
                    logging.WARNING if backoff.attempt % 10 == 1 else logging.DEBUG,
                    "watch %s: %s; keeping %d known instance(s), retrying in %.2fs",
                    self.range_prefix,
                    describe(e),
                    len(self.snapshot),
                    delay,
                )
                if self._stopped.wait(delay):
                    return

    def _list(self, client):
        response = self.connection.range_prefix(client, self.range_prefix)
        self._entries = {}
        for kv in response.kvs:
            self._put(kv)
        self.revision = response.header.revision
        self.relists += 1
        self.connected = True
        self.refused = None
        self._publish()
        self.ready.set()
        self.settled.set()

    def _follow(self, client):
        """Watch from revision+1 until the stream ends; returns to have the caller list again."""
        create = etcdrpc.WatchCreateRequest(
            key=self.range_prefix.encode(),
            range_end=range_end(self.range_prefix),
            start_revision=self.revision + 1,
            progress_notify=True,
        )
        done = threading.Event()
        requests = _requests(etcdrpc.WatchRequest(create_request=create), done)
        stream = self.connection.watch(client, requests)
        self._stream = stream
        try:
            for response in stream:
                if response.compact_revision:
                    log.warning(
                        "watch %s: revision %d was compacted (now %d); listing again",
                        self.range_prefix,
                        self.revision + 1,
                        response.compact_revision,
                    )
                    return
                if response.canceled:
                    log.warning("watch %s canceled: %s", self.range_prefix, response.cancel_reason)
                    return
                changed = False
                for event in response.events:
                    if event.type == event.DELETE:
                        changed |= self._entries.pop(event.kv.key, None) is not None
                    else:
                        changed |= self._put(event.kv)
                if response.header.revision:
                    self.revision = response.header.revision
                if changed:
                    self._publish()
                if self._stopped.is_set():
                    return
        finally:
            self._stream = None
            done.set()
            stream.cancel()

    def _put(self, kv):
        """Parse one key-value into the mirror. Returns whether the mirror changed."""
        key = kv.key
        try:
            instance = parse_instance(
                kv.value, key=key.decode("utf-8", "replace"), prefix=self.prefix
            )
        except InvalidInstance as e:
            mark = (key, kv.mod_revision)
            if mark not in self._warned:
                self._warned.add(mark)
                log.warning("skipping %s: %s", key.decode("utf-8", "replace"), e)
            return self._entries.pop(key, None) is not None
        if instance.extra.get("leaving") is True:
            now = time.monotonic()
            self.departed = {a: t for a, t in self.departed.items() if t > now - DEPARTED_FOR}
            self.departed[instance.address] = now
            return self._entries.pop(key, None) is not None
        previous = self._entries.get(key)
        self._entries[key] = instance
        return previous != instance

    def _publish(self):
        snapshot = tuple(sorted(self._entries.values(), key=lambda i: (i.service, i.host, i.port)))
        if snapshot == self.snapshot and self.ready.is_set():
            return
        self.snapshot = snapshot
        for callback in list(self._subscribers):
            _call(callback, snapshot)


def _requests(first, done):
    """The watch's request stream: one create request, then held open until ``done``."""
    yield first
    done.wait()


def _call(callback, snapshot):
    try:
        callback(snapshot)
    except Exception:
        log.exception("registry subscriber %r failed", callback)
