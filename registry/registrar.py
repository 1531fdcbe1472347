"""Keeping instances registered in etcd under a lease, for as long as the process lives."""

import json
import logging
import time
from collections import deque

import gevent
import gevent.event
import grpc

from soa import entry
from soa.backoff import Backoff
from soa.errors import DiscoveryError

from . import operator
from .etcd import PERMANENT, RETRYABLE, EtcdConnection, describe, etcdrpc
from .instance import instance_key

log = logging.getLogger("soa.registry")

# While etcd does not answer, retry this often at most (jittered from half of it): the key is
# back within about this long of etcd answering again (the goal is 2 s).
RETRY_CAP = 0.5


class EtcdRegistrar:
    """Registrar: ``register(instance)``, ``deregister(instance)``, ``close()``.

    ``register`` writes the key under a fresh lease and returns once it is written, or raises
    ``DiscoveryError`` after ``timeout`` seconds (the background greenlet keeps trying even then).
    When etcd refuses the credentials or the write (``EtcdAuthError``, permanent) it raises that
    at once and stops trying; a refusal after the first registration is logged as an error at
    every retry.
    A keeper greenlet renews the lease every TTL/3; when the lease is lost it grants a new one and
    writes the key again, retrying every 0.05-0.5 s while etcd does not answer, until
    ``deregister``. A watch on the key makes it write the key again within a second when anyone
    deletes it, and keeps an operator's drain or weight (``registry.operator``) in every later
    write. ``deregister`` deletes the
    key and revokes the lease; etcd errors there are logged, not raised (the lease expires anyway).
    All methods are called from any greenlet of the process that owns the registration.
    """

    def __init__(self, etcd_config, connection=None):
        self.config = etcd_config
        self.connection = connection or EtcdConnection(etcd_config)
        self._owns_connection = connection is None
        self._keepers = {}

    def register(self, instance, timeout=None):
        entry.cooperative_grpc()  # a process that cannot use grpc hears it here, at once
        key = instance_key(self.config.prefix, instance)
        if key in self._keepers:
            self._keepers.pop(key).stop(self.connection, revoke=False)
        keeper = _Keeper(key, instance.encode(), self.config.lease_ttl)
        self._keepers[key] = keeper
        keeper.start(self.connection)
        wait = self.config.dial_timeout * 2 if timeout is None else timeout
        keeper.registered.wait(wait)
        if keeper.refused is not None:
            self._keepers.pop(key, None)
            keeper.stop(self.connection, revoke=True)
            raise keeper.refused
        if not keeper.registered.is_set():
            raise DiscoveryError(
                f"could not register {key} within {wait:.1f}s: {keeper.last_error or 'no answer'}"
                " (still retrying in the background)"
            )
        return key

    def deregister(self, instance):
        keeper = self._keepers.pop(instance_key(self.config.prefix, instance), None)
        if keeper is not None:
            keeper.stop(self.connection, revoke=True)

    def abandon(self, instance):
        """Stop renewing without deleting: the key goes when its lease expires (crash drills)."""
        keeper = self._keepers.pop(instance_key(self.config.prefix, instance), None)
        if keeper is not None:
            keeper.stop(self.connection, revoke=False)

    def counters(self):
        """``{"renewals", "lost", "registrations"}`` summed over the keys this registrar keeps:
        lease renewals, leases found lost, and writes of a key after its first (metrics)."""
        keepers = list(self._keepers.values())
        return {"renewals": sum(k.renewals for k in keepers),
                "lost": sum(k.lost for k in keepers),
                "registrations": sum(max(0, k.writes - 1) for k in keepers)}

    def lease_id(self, instance):
        keeper = self._keepers.get(instance_key(self.config.prefix, instance))
        return keeper.lease_id if keeper else None

    def value(self, instance):
        """The value the registrar writes for ``instance`` now (bytes), operator changes included;
        None when it is not registered here."""
        keeper = self._keepers.get(instance_key(self.config.prefix, instance))
        return keeper.value if keeper else None

    def close(self):
        for key in list(self._keepers):
            self._keepers.pop(key).stop(self.connection, revoke=True)
        if self._owns_connection:
            self.connection.close()


class _Keeper:
    """One key under one lease, kept alive by one greenlet and guarded by a watch on the key.

    The keeper greenlet grants the lease, writes the key and renews the lease every TTL/3.
    While etcd does not answer it retries every 0.05-0.5 s (jittered), so the key is back within
    about half a second of etcd answering again. The guard greenlet watches the key itself: when
    the key is deleted while the instance is registered (``soa registry rm``, a stray delete), it
    wakes the keeper, which writes the key again at once; when an operator rewrites the value
    (``soa registry drain``/``undrain``/``weight``), the keeper adopts the operator fields, so
    later writes (after a lease loss or a deletion) keep them.
    """

    def __init__(self, key, value, ttl):
        self.key = key
        self.value = value
        self.ttl = ttl
        self.lease_id = None
        self.registered = gevent.event.Event()
        self.last_error = None
        self.renewals = 0  # counters read by EtcdRegistrar.counters()
        self.lost = 0
        self.writes = 0
        self._dirty = False  # the key must be written again under the current lease
        self._wake = gevent.event.Event()
        self.refused = None  # an EtcdAuthError before the first registration
        self._stopped = gevent.event.Event()
        self._greenlets = []
        self._stream = None
        self._warned_other = False
        self._written = deque(maxlen=16)  # etcd revisions of this keeper's own writes

    def start(self, connection):
        self._greenlets = [gevent.spawn(self._run, connection),
                           gevent.spawn(self._guard, connection)]

    def stop(self, connection, revoke):
        self._stopped.set()
        self._wake.set()
        stream = self._stream
        if stream is not None:
            stream.cancel()
        gevent.killall(self._greenlets, block=True, timeout=2)
        if not revoke or self.lease_id is None:
            return
        try:
            client = connection.client()
            # Mark the value as leaving first: history can then tell an explicit
            # deregistration from a lease that expired (SCHEMA.md, "leaving").
            marked = json.loads(self.value)
            marked["leaving"] = True
            client.put(self.key, json.dumps(marked, sort_keys=True), lease=self.lease_id)
            client.delete(self.key)
            client.revoke_lease(self.lease_id)
        except (*RETRYABLE, *PERMANENT) as e:
            log.warning(
                "deregister %s: %s (the lease will expire by itself)", self.key, describe(e)
            )
        self.lease_id = None

    # -- the keeper: lease and key ------------------------------------------------------------

    def _run(self, connection):
        backoff = Backoff(base=0.05, cap=RETRY_CAP)
        renewed_at = 0.0
        while not self._stopped.is_set():
            client = None
            try:
                client = connection.client()
                self._wake.clear()
                if self.lease_id is None:
                    self._grant_and_put(client)
                    renewed_at = time.monotonic()
                    backoff.reset()
                elif self._dirty:
                    self._dirty = False
                    if not self._rewrite(client):
                        log.warning("lease for %s was lost; registering again", self.key)
                        self.lease_id = None
                        self.lost += 1
                        continue
                due = renewed_at + self.ttl / 3
                now = time.monotonic()
                if now < due:
                    self._wake.wait(due - now)  # the guard wakes it to write the key again
                    continue
                if not self._refresh(client):
                    log.warning("lease for %s was lost; registering again", self.key)
                    self.lease_id = None
                    self.lost += 1
                    continue
                self.renewals += 1
                renewed_at = time.monotonic()
                backoff.reset()
            except PERMANENT as e:
                self.last_error = describe(e)
                if not self.registered.is_set():
                    self.refused = e
                    self.registered.set()  # wakes register(), which raises it
                    return
                log.error("registry %s: %s", self.key, self.last_error)
                if self._stopped.wait(backoff.next()):
                    return
            except RETRYABLE as e:
                if self._stopped.is_set():
                    return
                self.last_error = describe(e)
                if client is not None:
                    connection.failed(client)
                if self.lease_id is not None and time.monotonic() - renewed_at > self.ttl:
                    self.lease_id = None  # it has certainly expired by now
                    self.lost += 1
                delay = backoff.next()
                # Retries come every 0.5 s at most while etcd is down: warn on the first and
                # then every 20th (about every 5-10 s), so an outage is seen without a flood.
                level = logging.WARNING if backoff.attempt % 20 == 1 else logging.DEBUG
                log.log(level, "registry %s: %s; retrying in %.2fs", self.key, self.last_error,
                        delay)
                if self._stopped.wait(delay):
                    return

    def _grant_and_put(self, client):
        lease = client.lease(self.ttl)
        self._written.append(client.put(self.key, self.value, lease=lease).header.revision)
        self.lease_id = lease.id
        self.writes += 1
        self.registered.set()
        log.info("registered %s (lease %x, ttl %ss)", self.key, lease.id, self.ttl)

    def _rewrite(self, client):
        """Write the key again under the current lease. False when etcd no longer knows it."""
        try:
            written = client.put(self.key, self.value, lease=self.lease_id)
        except RETRYABLE as e:
            if isinstance(e, grpc.RpcError) and callable(getattr(e, "code", None)) \
                    and e.code() == grpc.StatusCode.NOT_FOUND:
                return False  # "requested lease not found"
            self._dirty = True  # still to do, once etcd answers
            raise
        self._written.append(written.header.revision)
        self.writes += 1
        log.warning("wrote %s again: it was deleted or changed while this instance is"
                    " registered", self.key)
        return True

    def _refresh(self, client):
        """Renew the lease once. False when etcd no longer knows it."""
        for response in client.refresh_lease(self.lease_id):
            return response.TTL > 0
        return False

    # -- the guard: a watch on the key itself -------------------------------------------------

    def _guard(self, connection):
        backoff = Backoff(base=0.05, cap=RETRY_CAP)
        self.registered.wait()
        while not self._stopped.is_set():
            client = None
            try:
                client = connection.client()
                self._follow(client, connection)
                backoff.reset()
            except RETRYABLE as e:
                if self._stopped.is_set():
                    return
                if client is not None:
                    connection.failed(client)
                log.debug("watch of %s: %s", self.key, describe(e))
                if self._stopped.wait(backoff.next()):
                    return

    def _follow(self, client, connection):
        """Watch the key until the stream ends. Once the watch exists, read the key, so a change
        made before the watch began is not missed either."""
        create = etcdrpc.WatchCreateRequest(key=self.key.encode())
        done = gevent.event.Event()
        stream = connection.watch(client, _hold_open(etcdrpc.WatchRequest(create_request=create),
                                                     done))
        self._stream = stream
        try:
            for response in stream:
                if self._stopped.is_set():
                    return
                if response.canceled or response.compact_revision:
                    return
                if response.created:
                    value, meta = client.get(self.key)
                    if meta is None:
                        self._seen(None, 0, 0)
                    else:
                        self._seen(value, meta.lease_id, meta.mod_revision)
                for event in response.events:
                    if event.type == event.DELETE:
                        self._seen(None, 0, event.kv.mod_revision)
                    else:
                        self._seen(event.kv.value, event.kv.lease, event.kv.mod_revision)
        finally:
            self._stream = None
            done.set()
            stream.cancel()

    def _seen(self, value, lease, revision):
        """The key now holds ``value`` (None: deleted) under ``lease``, since ``revision``."""
        if self._stopped.is_set() or self.lease_id is None:
            return  # not registered right now: the keeper writes the key when it is again
        if value is None:
            self._dirty = True
            self._wake.set()
            return
        if value == self.value and lease == self.lease_id:
            return
        if revision in self._written:
            # One of our own writes, made before an operator change we adopted since (or under
            # a lease we have replaced since): write the key again as it should be now.
            if lease == self.lease_id:
                self._dirty = True
                self._wake.set()
            return
        try:
            written = json.loads(value)
            own = json.loads(self.value)
        except ValueError:
            written = None
        if not isinstance(written, dict) or not operator.same_instance(own, written):
            if not self._warned_other:
                self._warned_other = True
                log.warning("%s now holds another instance's value; leaving it alone", self.key)
            return
        adopted = operator.encode(operator.adopt(own, written))
        if adopted != self.value:
            self.value = adopted
            log.info("%s: keeping the operator's change (weight %s%s)", self.key,
                     written.get("weight"), ", drained" if operator.is_drained(written) else "")
        if lease != self.lease_id:  # written without our lease: it would never expire
            self._dirty = True
            self._wake.set()


def _hold_open(first, done):
    """A watch's request stream: one create request, then held open until ``done``."""
    yield first
    done.wait()
