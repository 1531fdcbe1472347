"""Order shards: which database holds a user's orders, an order id, or an idempotency key.

A fixed number of hash buckets (``BUCKETS``) sits between keys and databases. A user's bucket is
a stable hash of the UTF-8 user id (the first 8 bytes of its SHA-1, mod ``BUCKETS``; never
Python's ``hash()``, which changes per process). Buckets map to shards in contiguous ranges:
bucket ``b`` of ``n`` shards lives on shard ``b * n // BUCKETS``. An order id carries its bucket
(``o-<3 hex digits>-<20 hex digits>``), so an id alone finds its shard; moving buckets between
databases (resharding) changes the map, never an id.

Idempotency keys and event ids are routed by the same hash of the key itself, so a key is
claimed in one place whichever user sends it.
"""

import hashlib
import re
import uuid

from services.storage import open_url

BUCKETS = 4096
_ORDER_ID = re.compile(r"o-([0-9a-f]{3})-[0-9a-f]{20}")


def bucket(text):
    """The stable bucket (0 .. BUCKETS-1) of a string."""
    digest = hashlib.sha1(text.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % BUCKETS


def new_order_id(user_id):
    """A fresh order id carrying the bucket of ``user_id``."""
    return f"o-{bucket(user_id):03x}-{uuid.uuid4().hex[:20]}"


def order_bucket(order_id):
    """The bucket an order id carries, or None for an id that is not one of ours."""
    match = _ORDER_ID.fullmatch(order_id or "")
    return int(match.group(1), 16) if match else None


def shard_urls(settings):
    """The shard URLs from ``services.order.settings``: ``shards`` (a non-empty list of URLs)
    or, without it, the single ``database`` (default ``sqlite:``). Raises ``ValueError`` with
    one line naming the key when ``shards`` is not a list of strings."""
    shards = settings.get("shards")
    if shards is None:
        return [settings.get("database") or "sqlite:"]
    if isinstance(shards, str) or not isinstance(shards, (list, tuple)) or not shards \
            or not all(isinstance(u, str) and u for u in shards):
        raise ValueError("services.order.settings.shards: expected a non-empty list of "
                         "database URLs")
    if len(set(shards)) != len(shards):
        raise ValueError("services.order.settings.shards: a URL appears twice")
    return list(shards)


class Shards:
    """The order service's databases and the bucket map over them.

    ``for_user`` / ``for_key`` always answer; ``for_order`` answers None for an id that names no
    bucket (a malformed id: the caller treats it as not found). Any greenlet may call them.
    """

    def __init__(self, databases):
        if not databases:
            raise ValueError("an order service needs at least one shard")
        self.databases = tuple(databases)

    @classmethod
    def open(cls, context, schema):
        settings = getattr(context.service, "settings", None) or {}
        urls = shard_urls(settings)
        name = context.service.name
        shards = cls([open_url(url, context.data_dir, name, schema) for url in urls])
        context.on_close(shards.close)
        return shards

    def of_bucket(self, b):
        """The shard index holding bucket ``b`` (contiguous ranges)."""
        return b * len(self.databases) // BUCKETS

    def for_user(self, user_id):
        return self.databases[self.of_bucket(bucket(user_id))]

    def for_key(self, key):
        """The database where an idempotency key or event id is recorded."""
        return self.databases[self.of_bucket(bucket(key))]

    def for_order(self, order_id):
        if len(self.databases) == 1:  # one database holds every id, older ones included
            return self.databases[0]
        b = order_bucket(order_id)
        return None if b is None else self.databases[self.of_bucket(b)]

    def close(self):
        for db in self.databases:
            db.close()
