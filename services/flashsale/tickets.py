"""Sales, tickets and purchases in SQL. Functions take an open ``Tx``.

The ticket counter moves by a conditional UPDATE (``tickets_issued < quantity``) and tickets
are UNIQUE per (sale, user), so any number of processes sharing the file never issue more
tickets than units nor two tickets to one user.
"""

import uuid

SCHEMA = """
CREATE TABLE IF NOT EXISTS sales (
  sale_id TEXT PRIMARY KEY,
  sku TEXT NOT NULL,
  quantity INTEGER NOT NULL CHECK (quantity > 0),
  price_cents INTEGER NOT NULL,
  currency TEXT NOT NULL,
  starts_at_ms INTEGER NOT NULL,
  ends_at_ms INTEGER NOT NULL,
  tickets_issued INTEGER NOT NULL DEFAULT 0,
  sold INTEGER NOT NULL DEFAULT 0,
  CHECK (tickets_issued <= quantity AND sold <= tickets_issued)
);
CREATE TABLE IF NOT EXISTS tickets (
  token TEXT PRIMARY KEY,
  sale_id TEXT NOT NULL,
  user_id TEXT NOT NULL,
  issued_at_ms INTEGER NOT NULL,
  expires_at_ms INTEGER NOT NULL,
  UNIQUE (sale_id, user_id)
);
CREATE TABLE IF NOT EXISTS purchases (
  token TEXT PRIMARY KEY,
  address_hash TEXT NOT NULL,
  address BLOB,
  status INTEGER NOT NULL,
  order_id TEXT,
  error_code INTEGER,
  message TEXT NOT NULL DEFAULT '',
  updated_at_ms INTEGER NOT NULL
)
"""

PENDING, SUCCEEDED, FAILED = 1, 2, 3


def sale(tx, sale_id):
    return tx.one("SELECT * FROM sales WHERE sale_id = ?", (sale_id,))


def ticket_of(tx, sale_id, user_id):
    return tx.one("SELECT * FROM tickets WHERE sale_id = ? AND user_id = ?", (sale_id, user_id))


def ticket(tx, token):
    return tx.one("SELECT * FROM tickets WHERE token = ?", (token,))


def issue(tx, sale_id, user_id, now, ttl_ms):
    """A new ticket, or None when every unit has a ticket (expired unredeemed ones are
    reclaimed first: their tokens become unknown and their units go back to the sale)."""
    if not _take(tx, sale_id):
        expired = tx.query("SELECT t.token FROM tickets t LEFT JOIN purchases p "
                           "ON p.token = t.token WHERE t.sale_id = ? AND t.expires_at_ms <= ? "
                           "AND p.token IS NULL", (sale_id, now))
        for row in expired:
            tx.execute("DELETE FROM tickets WHERE token = ?", (row["token"],))
            tx.execute("UPDATE sales SET tickets_issued = tickets_issued - 1 WHERE sale_id = ?",
                       (sale_id,))
        if not expired or not _take(tx, sale_id):
            return None
    token = "t-" + uuid.uuid4().hex
    tx.execute("INSERT INTO tickets (token, sale_id, user_id, issued_at_ms, expires_at_ms) "
               "VALUES (?, ?, ?, ?, ?)", (token, sale_id, user_id, now, now + ttl_ms))
    return ticket(tx, token)


def _take(tx, sale_id):
    return tx.execute("UPDATE sales SET tickets_issued = tickets_issued + 1 "
                      "WHERE sale_id = ? AND tickets_issued < quantity", (sale_id,))


def purchase(tx, token):
    return tx.one("SELECT * FROM purchases WHERE token = ?", (token,))


def settle(tx, token, sale_id, status, now, order_id=None, error_code=None, message=""):
    """PENDING -> SUCCEEDED (counting the sale) or FAILED; a settled purchase stays as it is."""
    changed = tx.execute("UPDATE purchases SET status = ?, order_id = ?, error_code = ?, "
                         "message = ?, updated_at_ms = ? WHERE token = ? AND status = ?",
                         (status, order_id, error_code, message, now, token, PENDING))
    if changed and status == SUCCEEDED:
        tx.execute("UPDATE sales SET sold = sold + 1 WHERE sale_id = ?", (sale_id,))
    return changed
