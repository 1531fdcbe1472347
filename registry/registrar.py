"""Keeping instances registered in etcd under a lease, for as long as the process lives."""

import json
import logging
import time

import gevent
import gevent.event

from soa.backoff import Backoff
from soa.errors import DiscoveryError

from .etcd import RETRYABLE, EtcdConnection, describe
from .instance import instance_key

log = logging.getLogger("soa.registry")


class EtcdRegistrar:
    """Registrar: ``register(instance)``, ``deregister(instance)``, ``close()``.

    ``register`` writes the key under a fresh lease and returns once it is written, or raises
    ``DiscoveryError`` after ``timeout`` seconds (the background greenlet keeps trying even then).
    A keeper greenlet renews the lease every TTL/3; when the lease is lost it grants a new one and
    writes the key again, with jittered backoff, until ``deregister``. ``deregister`` deletes the
    key and revokes the lease; etcd errors there are logged, not raised (the lease expires anyway).
    All methods are called from any greenlet of the process that owns the registration.
    """

    def __init__(self, etcd_config, connection=None):
        self.config = etcd_config
        self.connection = connection or EtcdConnection(etcd_config)
        self._owns_connection = connection is None
        self._keepers = {}

    def register(self, instance, timeout=None):
        key = instance_key(self.config.prefix, instance)
        if key in self._keepers:
            self._keepers.pop(key).stop(self.connection, revoke=False)
        keeper = _Keeper(key, instance.encode(), self.config.lease_ttl)
        self._keepers[key] = keeper
        keeper.start(self.connection)
        wait = self.config.dial_timeout * 2 if timeout is None else timeout
        if not keeper.registered.wait(wait):
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

    def close(self):
        for key in list(self._keepers):
            self._keepers.pop(key).stop(self.connection, revoke=True)
        if self._owns_connection:
            self.connection.close()


class _Keeper:
    """One key under one lease, kept alive by one greenlet."""

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
        self._stopped = gevent.event.Event()
        self._greenlet = None

    def start(self, connection):
        self._greenlet = gevent.spawn(self._run, connection)

    def stop(self, connection, revoke):
        self._stopped.set()
        if self._greenlet is not None:
            self._greenlet.kill(block=True, timeout=2)
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
        except RETRYABLE as e:
            log.warning(
                "deregister %s: %s (the lease will expire by itself)", self.key, describe(e)
            )
        self.lease_id = None

    def _run(self, connection):
        backoff = Backoff(base=0.1, cap=min(5.0, self.ttl / 2))
        renewed_at = 0.0
        while not self._stopped.is_set():
            client = None
            try:
                client = connection.client()
                if self.lease_id is None:
                    self._grant_and_put(client)
                    renewed_at = time.monotonic()
                    backoff.reset()
                if self._stopped.wait(self.ttl / 3):
                    return
                if not self._refresh(client):
                    log.warning("lease for %s was lost; registering again", self.key)
                    self.lease_id = None
                    self.lost += 1
                    continue
                self.renewals += 1
                renewed_at = time.monotonic()
                backoff.reset()
            except RETRYABLE as e:
                self.last_error = describe(e)
                if client is not None:
                    connection.failed(client)
                if self.lease_id is not None and time.monotonic() - renewed_at > self.ttl:
                    self.lease_id = None  # it has certainly expired by now
                    self.lost += 1
                delay = backoff.next()
                log.warning("registry %s: %s; retrying in %.2fs", self.key, self.last_error, delay)
                if self._stopped.wait(delay):
                    return

    def _grant_and_put(self, client):
        lease = client.lease(self.ttl)
        client.put(self.key, self.value, lease=lease)
        self.lease_id = lease.id
        self.writes += 1
        self.registered.set()
        log.info("registered %s (lease %x, ttl %ss)", self.key, lease.id, self.ttl)

    def _refresh(self, client):
        """Renew the lease once. False when etcd no longer knows it."""
        for response in client.refresh_lease(self.lease_id):
            return response.TTL > 0
        return False
