"""``consistent_hash``: a hash ring with virtual nodes, keyed by one argument of the call.

Each usable instance owns ``VNODES`` points on a 64-bit ring (scaled by its weight relative to the
default weight 100, at least one); a key goes to the owner of the first point at or after the
key's hash. When one of N instances joins or leaves, only about 1/N of the keys move. Hashes are
MD5-based, so every process (and every language's plugin) maps a key to the same instance.

The key comes from ``key(call)``: by default the client passes a function that reads the
argument named by ``client.hash_key``. A call without a key (``None``) goes to a random instance.
"""

import bisect
import hashlib
import random

from .base import Balancer, Picker, usable

VNODES = 160


def hash64(data):
    """The ring position of ``data`` (bytes, str or anything ``str()`` can render)."""
    if not isinstance(data, bytes):
        data = str(data).encode()
    return int.from_bytes(hashlib.md5(data).digest()[:8], "big")


class Ring:
    """Maps a key to one of several owners, as BALANCING.md specifies: each owner named ``name``
    with weight ``w`` holds ``max(1, VNODES * w // 100)`` points at ``hash64(f"{name}#{v}")``;
    a key goes to the owner of the first point at or after ``hash64(key)``, wrapping around.
    ``owners`` is a non-empty sequence of ``(name, weight, owner)``; the ring is immutable."""

    __slots__ = ("_owners", "_points")

    def __init__(self, owners):
        ring = []
        for name, weight, owner in owners:
            for v in range(max(1, VNODES * weight // 100)):
                ring.append((hash64(f"{name}#{v}"), name, owner))
        ring.sort(key=lambda point: point[:2])
        self._points = tuple(p[0] for p in ring)
        self._owners = tuple(p[2] for p in ring)

    def owner(self, key):
        i = bisect.bisect_left(self._points, hash64(key))
        return self._owners[i if i < len(self._points) else 0]


class ConsistentHashPicker(Picker):
    __slots__ = ("_key", "_ring", "instances")

    def __init__(self, instances, key):
        self.instances = instances
        self._ring = Ring((i.address, i.weight, i) for i in instances)
        self._key = key

    def pick(self, call):
        key = self._key(call) if self._key is not None else None
        if key is None:
            return self.instances[random.randrange(len(self.instances))]
        return self._ring.owner(key)


def meta_key(call):
    """The default key: ``call.meta["hash_key"]`` (set by the client from ``hash_key``)."""
    return call.meta.get("hash_key")


class ConsistentHash(Balancer):
    name = "consistent_hash"
    options = ("key",)

    def __init__(self, key=meta_key):
        self.key = key

    def picker(self, instances):
        live, empty = usable(instances)
        return empty or ConsistentHashPicker(live, self.key)
