"""Idempotency keys, implemented once for every mutating method of every service.

A table keyed by ``(method, key)`` stores a hash of the call's payload and the serialized first
result (the method's Thrift ``<method>_result`` struct). Replaying a key with the same payload
returns that result; the same key with another payload raises ``ShopError(CONFLICT)``. Failed
calls are not recorded, so they can be retried with the same key.

Two shapes:
- ``once(method, key, args, work)``: a call done in one local transaction. ``work(tx)`` runs in
  the same transaction as the record, so the effect and the record commit together.
- ``claim`` / ``complete`` / ``abandon``: a call that makes RPCs between local steps. ``claim``
  records the key as in progress (with a note, e.g. the order id it will create); a concurrent
  replay gets ``ShopError(UNAVAILABLE)`` until ``complete`` stores the result, and a claim older
  than ``stale_after_ms`` is taken over (its note kept, so the retry resumes the same work).
"""

import time
from dataclasses import dataclass

from . import codec

SCHEMA = """
CREATE TABLE IF NOT EXISTS idempotency (
  method TEXT NOT NULL,
  key TEXT NOT NULL,
  payload_hash TEXT NOT NULL,
  result BLOB,
  note TEXT NOT NULL DEFAULT '',
  claimed_at_ms INTEGER NOT NULL,
  PRIMARY KEY (method, key)
)
"""


def now_ms():
    return int(time.time() * 1000)


@dataclass(frozen=True)
class Claim:
    """The outcome of ``claim``: ``replayed`` with the first ``result``, or a fresh claim."""

    replayed: bool
    result: object = None
    note: str = ""
    resumed: bool = False


class Idempotency:
    def __init__(self, db, service, errors, stale_after_ms=30_000):
        self.db = db
        self.service = service
        self.errors = errors
        self.stale_after_ms = stale_after_ms

    def digest(self, method, args):
        """Hash of the call's arguments after the key (the key is the first IDL argument)."""
        args_cls = getattr(self.service, f"{method}_args")
        return codec.digest(args_cls(*(("",) + tuple(args))))

    def _encode(self, method, value):
        result_cls = getattr(self.service, f"{method}_result")
        if 0 not in result_cls.thrift_spec:  # void
            return codec.encode(result_cls())
        return codec.encode(result_cls(success=value))

    def _decode(self, method, blob):
        result_cls = getattr(self.service, f"{method}_result")
        return getattr(codec.decode(result_cls, blob), "success", None)

    def _check_key(self, key):
        if not key:
            raise self.errors.invalid("an idempotency key is required")

    def _lookup(self, tx, method, key, digest):
        row = tx.one("SELECT payload_hash, result, note, claimed_at_ms FROM idempotency "
                     "WHERE method = ? AND key = ?", (method, key))
        if row is not None and row["payload_hash"] != digest:
            raise self.errors.conflict(
                f"{method}: idempotency key {key!r} reused with another payload")
        return row

    def once(self, method, key, args, work):
        """Run ``work(tx)`` once per key; replays return the recorded result."""
        self._check_key(key)
        digest = self.digest(method, args)
        with self.db.transaction() as tx:
            row = self._lookup(tx, method, key, digest)
            if row is not None and row["result"] is not None:
                return self._decode(method, row["result"])
            value = work(tx)
            tx.execute(
                "INSERT INTO idempotency (method, key, payload_hash, result, note, "
                "claimed_at_ms) VALUES (?, ?, ?, ?, '', ?) ON CONFLICT (method, key) DO UPDATE "
                "SET payload_hash = excluded.payload_hash, result = excluded.result, "
                "note = excluded.note, claimed_at_ms = excluded.claimed_at_ms",
                (method, key, digest, self._encode(method, value), now_ms()),
            )
        return value

    def claim(self, method, key, args, note):
        """Start a multi-step call: a replay, or a claim carrying ``note`` (or the stale one's)."""
        self._check_key(key)
        digest = self.digest(method, args)
        now = now_ms()
        with self.db.transaction() as tx:
            row = self._lookup(tx, method, key, digest)
            if row is None:
                tx.execute(
                    "INSERT INTO idempotency (method, key, payload_hash, result, note, "
                    "claimed_at_ms) VALUES (?, ?, ?, NULL, ?, ?)",
                    (method, key, digest, note, now),
                )
                return Claim(replayed=False, note=note)
            if row["result"] is not None:
                return Claim(replayed=True, result=self._decode(method, row["result"]),
                             note=row["note"])
            if now - row["claimed_at_ms"] < self.stale_after_ms:
                raise self.errors.shop("UNAVAILABLE", f"{method}: {key!r} is in progress; retry")
            tx.execute("UPDATE idempotency SET claimed_at_ms = ? WHERE method = ? AND key = ?",
                       (now, method, key))
            return Claim(replayed=False, note=row["note"], resumed=True)

    def complete(self, tx, method, key, value):
        """Record the result of a claimed call, inside the caller's final transaction."""
        tx.execute("UPDATE idempotency SET result = ? WHERE method = ? AND key = ?",
                   (self._encode(method, value), method, key))

    def abandon(self, method, key):
        """Forget a claim whose call failed, so the key can be retried."""
        self.db.execute("DELETE FROM idempotency WHERE method = ? AND key = ? AND result IS NULL",
                        (method, key))
