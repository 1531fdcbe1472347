"""Virtual inventory in SQL: the tables and the moves between pool, channels and reservations.

Every function takes an open transaction (``services.storage.Tx``) and either succeeds or
raises, leaving the transaction to roll back. Counters per SKU:
``stock.total`` = sum of warehouse quantities; ``stock.unallocated`` = total - sum(allocated);
per channel ``available + reserved + confirmed = allocated``.
"""

import uuid

SCHEMA = """
CREATE TABLE IF NOT EXISTS stock (
  sku TEXT PRIMARY KEY,
  total INTEGER NOT NULL CHECK (total >= 0),
  unallocated INTEGER NOT NULL CHECK (unallocated >= 0)
);
CREATE TABLE IF NOT EXISTS warehouses (
  sku TEXT NOT NULL,
  warehouse TEXT NOT NULL,
  quantity INTEGER NOT NULL CHECK (quantity >= 0),
  PRIMARY KEY (sku, warehouse)
);
CREATE TABLE IF NOT EXISTS channels (
  sku TEXT NOT NULL,
  channel INTEGER NOT NULL,
  allocated INTEGER NOT NULL CHECK (allocated >= 0),
  available INTEGER NOT NULL CHECK (available >= 0),
  reserved INTEGER NOT NULL CHECK (reserved >= 0),
  confirmed INTEGER NOT NULL CHECK (confirmed >= 0),
  PRIMARY KEY (sku, channel),
  CHECK (available + reserved + confirmed = allocated)
);
CREATE TABLE IF NOT EXISTS reservations (
  reservation_id TEXT PRIMARY KEY,
  sku TEXT NOT NULL,
  channel INTEGER NOT NULL,
  quantity INTEGER NOT NULL,
  order_id TEXT NOT NULL DEFAULT '',
  status INTEGER NOT NULL,
  created_at_ms INTEGER NOT NULL,
  expires_at_ms INTEGER NOT NULL DEFAULT 0
)
"""

HELD, CONFIRMED, RELEASED = 1, 2, 3


class OutOfStock(Exception):
    """A conditional move found fewer units than asked for; ``available`` is what there was."""

    def __init__(self, available):
        super().__init__(available)
        self.available = available


def exists(tx, sku):
    return tx.one("SELECT 1 FROM stock WHERE sku = ?", (sku,)) is not None


def set_warehouse(tx, sku, warehouse, quantity):
    """Set one warehouse's on-hand quantity. Returns False if channels hold more than the total."""
    tx.execute("INSERT OR IGNORE INTO stock (sku, total, unallocated) VALUES (?, 0, 0)", (sku,))
    old = tx.one("SELECT quantity FROM warehouses WHERE sku = ? AND warehouse = ?",
                 (sku, warehouse))
    delta = quantity - (old["quantity"] if old else 0)
    row = tx.one("SELECT total, unallocated FROM stock WHERE sku = ?", (sku,))
    if row["unallocated"] + delta < 0:
        return False
    tx.execute("UPDATE stock SET total = total + ?, unallocated = unallocated + ? WHERE sku = ?",
               (delta, delta, sku))
    tx.execute("INSERT INTO warehouses (sku, warehouse, quantity) VALUES (?, ?, ?) "
               "ON CONFLICT (sku, warehouse) DO UPDATE SET quantity = excluded.quantity",
               (sku, warehouse, quantity))
    return True


def allocate(tx, sku, channel, quantity, from_channel):
    """Move available units from the pool (from_channel 0) or another channel into channel."""
    if from_channel:
        taken = tx.execute(
            "UPDATE channels SET allocated = allocated - ?, available = available - ? "
            "WHERE sku = ? AND channel = ? AND available >= ?",
            (quantity, quantity, sku, from_channel, quantity))
        if not taken:
            row = tx.one("SELECT available FROM channels WHERE sku = ? AND channel = ?",
                         (sku, from_channel))
            raise OutOfStock(row["available"] if row else 0)
    else:
        taken = tx.execute("UPDATE stock SET unallocated = unallocated - ? "
                           "WHERE sku = ? AND unallocated >= ?", (quantity, sku, quantity))
        if not taken:
            row = tx.one("SELECT unallocated FROM stock WHERE sku = ?", (sku,))
            raise OutOfStock(row["unallocated"])
    tx.execute(
        "INSERT INTO channels (sku, channel, allocated, available, reserved, confirmed) "
        "VALUES (?, ?, ?, ?, 0, 0) ON CONFLICT (sku, channel) DO UPDATE SET "
        "allocated = channels.allocated + excluded.allocated, "
        "available = channels.available + excluded.available",
        (sku, channel, quantity, quantity))


def reserve(tx, sku, channel, quantity, order_id, now):
    """Hold units of a channel's available stock; returns the reservation row."""
    taken = tx.execute(
        "UPDATE channels SET available = available - ?, reserved = reserved + ? "
        "WHERE sku = ? AND channel = ? AND available >= ?",
        (quantity, quantity, sku, channel, quantity))
    if not taken:
        row = tx.one("SELECT available FROM channels WHERE sku = ? AND channel = ?", (sku, channel))
        raise OutOfStock(row["available"] if row else 0)
    reservation_id = "r-" + uuid.uuid4().hex[:20]
    tx.execute("INSERT INTO reservations (reservation_id, sku, channel, quantity, order_id, "
               "status, created_at_ms) VALUES (?, ?, ?, ?, ?, ?, ?)",
               (reservation_id, sku, channel, quantity, order_id or "", HELD, now))
    return reservation(tx, reservation_id)


def reservation(tx, reservation_id):
    return tx.one("SELECT * FROM reservations WHERE reservation_id = ?", (reservation_id,))


def settle(tx, row, status):
    """HELD -> CONFIRMED (reserved to confirmed) or HELD -> RELEASED (reserved to available)."""
    target = "confirmed" if status == CONFIRMED else "available"
    tx.execute(f"UPDATE channels SET reserved = reserved - ?, {target} = {target} + ? "
               "WHERE sku = ? AND channel = ?",
               (row["quantity"], row["quantity"], row["sku"], row["channel"]))
    tx.execute("UPDATE reservations SET status = ? WHERE reservation_id = ? AND status = ?",
               (status, row["reservation_id"], HELD))
    return reservation(tx, row["reservation_id"])


def level(tx, sku):
    """(stock row, warehouse rows, channel rows) of a SKU, or None if it was never stocked."""
    head = tx.one("SELECT * FROM stock WHERE sku = ?", (sku,))
    if head is None:
        return None
    warehouses = tx.query("SELECT warehouse, quantity FROM warehouses WHERE sku = ?", (sku,))
    channels = tx.query("SELECT * FROM channels WHERE sku = ? ORDER BY channel", (sku,))
    return head, warehouses, channels
