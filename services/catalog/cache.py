"""The catalog's read-through cache: encoded values in one or more Redis servers.

``services.catalog.settings.cache`` is one ``redis://`` URL or a list of them. Several URLs are
shards: a key lives on the shard the project's consistent-hash ring (``soa.balancer.
consistent_hash.Ring``, the ring of registry/BALANCING.md, as twemproxy does with ketama) maps it
to, named by its URL. Keys are ``catalog:v1:<kind>:<id>``; a TTL bounds the life of every value.

The cache is never a point of failure. Sockets time out after ``TIMEOUT_S``; a shard that fails
(refused, timed out, any Redis error) is skipped for ``BACKOFF_S`` and its keys read from the
database. After the back-off the next use tries it again; before it serves anything again, its
``catalog:v1:*`` keys are deleted, since invalidations may have been missed while it was down.
No method here raises a Redis error. Methods are called from the handler's greenlets; counters
are plain integers (one process, cooperative greenlets).
"""

import time

from soa.balancer.consistent_hash import Ring

NAMESPACE = "catalog:v1:"
TTL_S = 300
TIMEOUT_S = 0.1
BACKOFF_S = 1.0


def cache_urls(settings):
    """The URLs of ``settings["cache"]`` (a string or a list of strings); () when unset."""
    value = settings.get("cache")
    if value is None:
        return ()
    urls = (value,) if isinstance(value, str) else tuple(value)
    for url in urls:
        if not isinstance(url, str) or not url.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError(f"services.catalog.settings.cache: expected redis:// URLs, "
                             f"got {url!r}")
    return urls


class Shard:
    """One Redis server, with its circuit breaker and counters."""

    def __init__(self, url):
        import redis

        self.url = url
        self.name = _label(url)
        self.redis = redis.Redis.from_url(url, socket_timeout=TIMEOUT_S,
                                          socket_connect_timeout=TIMEOUT_S)
        self.counts = {"hit": 0, "miss": 0, "error": 0}
        self.open_until = None  # breaker: None is closed; else skip the shard until then
        self.dirty = False  # missed invalidations: flush before serving again

    def usable(self):
        """True when the shard may be used now (flushing it first if it came back)."""
        if self.open_until is not None:
            if time.monotonic() < self.open_until:
                return False
            self.open_until = None
        if self.dirty:
            try:
                for batch in _batches(self.redis.scan_iter(match=NAMESPACE + "*", count=500)):
                    self.redis.delete(*batch)
            except Exception:  # noqa: BLE001 - any Redis failure opens the breaker again
                self.failed()
                return False
            self.dirty = False
        return True

    def failed(self):
        self.counts["error"] += 1
        self.open_until = time.monotonic() + BACKOFF_S
        self.dirty = True


class Cache:
    """``get_many``, ``set_many``, ``delete`` of bytes values under names relative to the
    namespace. An empty URL list gives a cache that holds nothing (every get is a miss, not
    counted)."""

    def __init__(self, urls, ttl_s=TTL_S):
        self.shards = tuple(Shard(url) for url in urls)
        self.ttl_s = ttl_s
        self._ring = Ring((s.url, 100, s) for s in self.shards) if self.shards else None

    def __bool__(self):
        return bool(self.shards)

    def shard_of(self, key):
        return self._ring.owner(NAMESPACE + key)

    def _by_shard(self, keys):
        groups = {}
        if not self.shards:
            return ()
        for key in keys:
            groups.setdefault(self.shard_of(key), []).append(key)
        return groups.items()

    def get_many(self, keys):
        """``{key: bytes}`` for the keys found; missing keys and unreachable shards are absent."""
        found = {}
        for shard, group in self._by_shard(keys):
            if not shard.usable():
                shard.counts["miss"] += len(group)
                continue
            try:
                values = shard.redis.mget([NAMESPACE + k for k in group])
            except Exception:  # noqa: BLE001 - the database answers instead
                shard.failed()
                continue
            for key, value in zip(group, values):
                if value is None:
                    shard.counts["miss"] += 1
                else:
                    shard.counts["hit"] += 1
                    found[key] = value
        return found

    def set_many(self, values):
        """Store ``{key: bytes}`` with the TTL; a failing shard just keeps nothing."""
        for shard, group in self._by_shard(values):
            if not shard.usable():
                continue
            try:
                pipe = shard.redis.pipeline(transaction=False)
                for key in group:
                    pipe.set(NAMESPACE + key, values[key], ex=self.ttl_s)
                pipe.execute()
            except Exception:  # noqa: BLE001
                shard.failed()

    def delete(self, keys):
        """Remove ``keys``. A shard that cannot be reached is marked to be flushed before it
        serves again, so no stale value outlives the outage (in this process; see README)."""
        for shard, group in self._by_shard(keys):
            if not shard.usable():
                shard.dirty = True
                continue
            try:
                shard.redis.delete(*(NAMESPACE + k for k in group))
            except Exception:  # noqa: BLE001
                shard.failed()

    def families(self):
        """``shop_catalog_cache_total{shard, result}`` (scrape time)."""
        from prometheus_client.core import CounterMetricFamily

        family = CounterMetricFamily("shop_catalog_cache", "Catalog cache look-ups by result "
                                     "(hit, miss, error) per shard.", labels=["shard", "result"])
        for shard in self.shards:
            for result, count in shard.counts.items():
                family.add_metric([shard.name, result], count)
        yield family

    def close(self):
        for shard in self.shards:
            shard.redis.close()


def _label(url):
    """``host:port/db`` of a URL, never its password."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    return f"{parts.hostname}:{parts.port or 6379}{parts.path or '/0'}"


def _batches(items, size=500):
    batch = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch
