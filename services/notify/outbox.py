"""The outbox tables and the lease/settle steps of delivery. Functions take an open ``Tx``."""

import hashlib

SCHEMA = """
CREATE TABLE IF NOT EXISTS subscriptions (
  subscription_id TEXT PRIMARY KEY,
  topic TEXT NOT NULL,
  service_name TEXT NOT NULL,
  method TEXT NOT NULL,
  grp TEXT NOT NULL DEFAULT '',
  created_at_ms INTEGER NOT NULL,
  UNIQUE (topic, service_name, method, grp)
);
CREATE TABLE IF NOT EXISTS events (
  event_id TEXT PRIMARY KEY,
  topic TEXT NOT NULL,
  payload TEXT NOT NULL DEFAULT '',
  key TEXT NOT NULL DEFAULT '',
  published_at_ms INTEGER NOT NULL /*pg:, seq BIGSERIAL*/
);
CREATE TABLE IF NOT EXISTS deliveries (
  event_id TEXT NOT NULL,
  subscription_id TEXT NOT NULL,
  topic TEXT NOT NULL,
  status INTEGER NOT NULL,
  attempts INTEGER NOT NULL DEFAULT 0,
  last_attempt_at_ms INTEGER NOT NULL DEFAULT 0,
  next_attempt_at_ms INTEGER NOT NULL DEFAULT 0,
  last_error TEXT NOT NULL DEFAULT '',
  PRIMARY KEY (event_id, subscription_id)
);
CREATE INDEX IF NOT EXISTS deliveries_due ON deliveries (status, next_attempt_at_ms);
CREATE INDEX IF NOT EXISTS deliveries_by_subscription
  ON deliveries (subscription_id, status);
CREATE INDEX IF NOT EXISTS events_by_key ON events (key)
"""

PENDING, DELIVERED, DEAD = 1, 2, 3


def fan_out(tx, event_id, topic, now):
    """One delivery per consumer group of the topic; the group member is chosen by event id."""
    groups = {}
    for row in tx.query("SELECT subscription_id, service_name, grp FROM subscriptions "
                        "WHERE topic = ? ORDER BY subscription_id", (topic,)):
        groups.setdefault((row["service_name"], row["grp"]), []).append(row["subscription_id"])
    for members in groups.values():
        pick = int(hashlib.sha1(event_id.encode()).hexdigest(), 16) % len(members)
        tx.execute("INSERT INTO deliveries (event_id, subscription_id, topic, status, "
                   "next_attempt_at_ms) VALUES (?, ?, ?, ?, ?)",
                   (event_id, members[pick], topic, PENDING, now))
    return len(groups)


def lease_due(tx, now, lease_ms, limit):
    """Take up to ``limit`` due deliveries: count the attempt and push the next try past the
    lease, so another dispatcher (or this one after a restart) retries if the call never ends.

    Events with the same non-empty key reach a subscription in publishing order: a delivery
    waits while an earlier event of its key is still pending (or in flight) for that
    subscription."""
    rows = tx.query(
        "SELECT d.event_id, d.subscription_id, d.attempts, e.topic, e.payload, e.key, "
        "e.published_at_ms, s.service_name, s.method FROM deliveries d "
        "JOIN events e ON e.event_id = d.event_id "
        "JOIN subscriptions s ON s.subscription_id = d.subscription_id "
        "WHERE d.status = ? AND d.next_attempt_at_ms <= ? AND (e.key = '' OR NOT EXISTS ("
        "  SELECT 1 FROM deliveries d2 JOIN events e2 ON e2.event_id = d2.event_id "
        "  WHERE d2.subscription_id = d.subscription_id AND d2.status = ? "
        "  AND e2.key = e.key AND e2.rowid < e.rowid)) "
        "ORDER BY d.next_attempt_at_ms LIMIT ?", (PENDING, now, PENDING, limit))
    for row in rows:
        tx.execute("UPDATE deliveries SET attempts = attempts + 1, last_attempt_at_ms = ?, "
                   "next_attempt_at_ms = ? WHERE event_id = ? AND subscription_id = ?",
                   (now, now + lease_ms, row["event_id"], row["subscription_id"]))
    return rows


def mark_delivered(tx, event_id, subscription_id):
    return tx.execute("UPDATE deliveries SET status = ?, next_attempt_at_ms = 0 "
                      "WHERE event_id = ? AND subscription_id = ? AND status = ?",
                      (DELIVERED, event_id, subscription_id, PENDING))


def mark_failed(tx, event_id, subscription_id, error, next_at, dead):
    status = DEAD if dead else PENDING
    return tx.execute("UPDATE deliveries SET status = ?, next_attempt_at_ms = ?, last_error = ? "
                      "WHERE event_id = ? AND subscription_id = ? AND status = ?",
                      (status, 0 if dead else next_at, error[:500], event_id, subscription_id,
                       PENDING))
