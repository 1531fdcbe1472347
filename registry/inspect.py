"""One-shot registry reads and edits for tools: list with lease times, remove, drain, undrain,
reweight, history.

These are plain functions over an ``EtcdConnection``; the ``soa registry`` commands call them.
"""

import json
import uuid
from contextlib import contextmanager
from dataclasses import dataclass

from soa.errors import DiscoveryError

from . import operator
from .etcd import RETRYABLE, describe, etcdrpc, range_end
from .instance import InvalidInstance, parse_instance, service_prefix


@dataclass(frozen=True)
class Listed:
    """An instance as ``soa registry ls`` shows it."""

    instance: object  # registry.Instance, or None when the value did not parse
    key: str
    lease_id: int
    lease_ttl_left: int  # seconds; -1 when the key has no lease or the lease is gone
    error: str | None = None


@contextmanager
def _etcd(connection):
    """The connection's client; an etcd failure moves the connection on and becomes one
    ``DiscoveryError`` naming the endpoint that failed."""
    endpoint, client = connection.endpoint, connection.client()
    try:
        yield client
    except RETRYABLE as e:
        connection.failed(client)
        raise DiscoveryError(f"etcd {endpoint}: {describe(e)}") from e


def list_instances(connection, prefix, service=None, with_leases=True):
    """Every key under the prefix (or the service's range), parsed. ``with_leases`` adds the
    lease time left, at one more etcd round trip per key."""
    with _etcd(connection) as client:
        rows = []
        for kv in connection.range_prefix(client, service_prefix(prefix, service)).kvs:
            key = kv.key.decode("utf-8", "replace")
            ttl = -1
            if kv.lease and with_leases:
                ttl = client.get_lease_info(kv.lease).TTL
            try:
                rows.append(Listed(parse_instance(kv.value, key=key, prefix=prefix), key,
                                   kv.lease, ttl))
            except InvalidInstance as e:
                rows.append(Listed(None, key, kv.lease, ttl, str(e)))
        return rows


def registered(connection, prefix, service=None):
    """The instances whose values parse (no lease lookups): for waiting on registrations."""
    rows = list_instances(connection, prefix, service, with_leases=False)
    return [row.instance for row in rows if row.instance is not None]


class NotRegistered(DiscoveryError):
    """No key for that service and address."""


class InstanceAlive(DiscoveryError):
    """The instance's lease is alive: its registrar writes the key back at once."""


def lease_left(connection, prefix, service, address):
    """Seconds left on the lease of the instance's key: -1 without a live lease, None when
    there is no such key."""
    with _etcd(connection) as client:
        value, meta = client.get(f"{service_prefix(prefix, service)}{address}")
        if value is None:
            return None
        return client.get_lease_info(meta.lease_id).TTL if meta.lease_id else -1


def remove(connection, prefix, service, address, force=True):
    """Delete one instance's key. Returns False when there was no such key. Without ``force``,
    an instance whose lease is alive is refused with ``InstanceAlive``: its registrar would
    write the key back within a second anyway (drain it to take it out of traffic)."""
    if not force:
        left = lease_left(connection, prefix, service, address)
        if left is None:
            return False
        if left > 0:
            raise InstanceAlive(
                f"{service} {address} is alive (lease {left}s left) and its registrar writes"
                " it back within a second; use --force to remove it anyway, or drain it")
    with _etcd(connection) as client:
        return bool(client.delete(f"{service_prefix(prefix, service)}{address}"))


@dataclass(frozen=True)
class Edited:
    """An operator edit: the instance before and after."""

    before: object  # registry.Instance
    after: object  # registry.Instance
    changed: bool


def drain(connection, prefix, service, address):
    """Weight 0 with the weight remembered (``registry.operator``)."""
    return _edit(connection, prefix, service, address, operator.drain)


def undrain(connection, prefix, service, address):
    """Back to the remembered weight."""
    return _edit(connection, prefix, service, address, operator.undrain)


def reweight(connection, prefix, service, address, weight):
    """A new weight (a drained instance stays drained and returns to it on undrain)."""
    return _edit(connection, prefix, service, address, lambda d: operator.reweight(d, weight))


def _edit(connection, prefix, service, address, change, attempts=5):
    """Rewrite one value with ``change(dict) -> dict``, under the key's own lease, only if no
    one wrote the key in between (a transaction on its mod revision; retried). The instance's
    registrar sees the write and keeps it."""
    key = f"{service_prefix(prefix, service)}{address}"
    with _etcd(connection) as client:
        for _ in range(attempts):
            value, meta = client.get(key)
            if value is None:
                raise NotRegistered(f"no instance {address} registered for {service}")
            try:
                before = parse_instance(value, key=key, prefix=prefix)
            except InvalidInstance as e:
                raise DiscoveryError(f"{key} holds an invalid value ({e}); not editing it") from e
            data = json.loads(value)
            edited = change(data)
            after = parse_instance(json.dumps(edited), key=key, prefix=prefix)
            if edited == data:
                return Edited(before, after, False)
            encoded = operator.encode(edited)
            done, _ = client.transaction(
                compare=[client.transactions.mod(key) == meta.mod_revision],
                success=[client.transactions.put(key, encoded, lease=meta.lease_id or None)],
                failure=[],
            )
            if done:
                return Edited(before, after, True)
    raise DiscoveryError(f"{key} kept changing; try again")


@dataclass(frozen=True)
class Change:
    revision: int
    kind: str  # "joined" | "updated" | "left"
    service: str
    address: str
    reason: str = ""  # for "left": "deregistered", "lease expired or revoked", "deleted"


def history(connection, prefix, service=None, timeout=10.0):
    """Joins and leaves of the service from etcd's revision history (what compaction kept).

    A watch from revision 1 (or, when etcd has compacted, from the compaction point) replays
    every change. To know when the replay has caught up, a throwaway key is written under
    ``{prefix}/.history/`` (outside the services range, so no client ever sees it) and the replay
    stops at its event. A ``left`` whose previous value was marked ``leaving`` was an explicit
    deregistration; one whose key had a lease that no longer exists went with its lease;
    anything else was deleted by hand. Returns ``(changes, oldest_revision)``.
    """
    watch_prefix = prefix.rstrip("/") + "/"
    services = service_prefix(prefix, service)
    sentinel = f"{watch_prefix}.history/{uuid.uuid4().hex}"
    start = 1
    with _etcd(connection) as client:
        for _ in range(3):
            stream = _replay(connection, client, watch_prefix, start, timeout)
            client.put(sentinel, "")
            client.delete(sentinel)
            changes, leases = [], {}
            for response in stream:
                if response.compact_revision:
                    start = response.compact_revision
                    break
                for event in response.events:
                    key = event.kv.key.decode("utf-8", "replace")
                    if key == sentinel:
                        stream.cancel()
                        return changes, start
                    if key.startswith(services):
                        changes.append(_change(client, event, key, prefix, leases))
            stream.cancel()
    raise DiscoveryError("could not replay the registry history")


def _replay(connection, client, watch_prefix, start, timeout):
    create = etcdrpc.WatchCreateRequest(
        key=watch_prefix.encode(), range_end=range_end(watch_prefix),
        start_revision=start, prev_kv=True,
    )
    return connection.watch(client, iter([etcdrpc.WatchRequest(create_request=create)]),
                            timeout)


def _change(client, event, key, prefix, leases):
    service, _, address = key[len(prefix.rstrip("/") + "/services/"):].partition("/")
    revision = event.kv.mod_revision
    if event.type == event.DELETE:
        previous = event.prev_kv
        reason = "deleted"
        try:
            if json.loads(previous.value or b"{}").get("leaving"):
                reason = "deregistered"
            elif previous.lease:
                alive = leases.get(previous.lease)
                if alive is None:
                    alive = client.get_lease_info(previous.lease).TTL > 0
                    leases[previous.lease] = alive
                reason = "deleted" if alive else "lease expired or revoked"
        except (ValueError, AttributeError):
            pass
        return Change(revision, "left", service, address, reason)
    kind = "joined" if event.kv.version == 1 else "updated"
    try:
        parse_instance(event.kv.value, key=key, prefix=prefix)
    except InvalidInstance as e:
        return Change(revision, kind, service, address, f"invalid value: {e}")
    return Change(revision, kind, service, address)

