"""Orders in SQL, and their Thrift form. Functions take an open ``Tx``."""

from services import codec

SCHEMA = """
CREATE TABLE IF NOT EXISTS orders (
  order_id TEXT PRIMARY KEY,
  user_id TEXT NOT NULL,
  status INTEGER NOT NULL,
  channel INTEGER NOT NULL,
  total_cents INTEGER NOT NULL,
  currency TEXT NOT NULL,
  address BLOB,
  flash_sale_token TEXT,
  created_at_ms INTEGER NOT NULL,
  updated_at_ms INTEGER NOT NULL,
  reason TEXT NOT NULL DEFAULT ''
);
CREATE INDEX IF NOT EXISTS orders_by_user ON orders (user_id, created_at_ms);
CREATE TABLE IF NOT EXISTS order_lines (
  order_id TEXT NOT NULL,
  line INTEGER NOT NULL,
  sku TEXT NOT NULL,
  quantity INTEGER NOT NULL,
  unit_price_cents INTEGER NOT NULL,
  currency TEXT NOT NULL,
  reservation_id TEXT NOT NULL DEFAULT '',
  PRIMARY KEY (order_id, line)
);
CREATE TABLE IF NOT EXISTS seen_events (
  event_id TEXT PRIMARY KEY,
  topic TEXT NOT NULL,
  seen_at_ms INTEGER NOT NULL
)
"""


def insert(tx, order_id, req, prices, total_cents, currency, status, now):
    """Record a new order and its lines (a resumed claim finds it there already)."""
    if tx.one("SELECT 1 FROM orders WHERE order_id = ?", (order_id,)) is not None:
        return
    address = codec.encode(req.address) if req.address is not None else None
    tx.execute("INSERT INTO orders (order_id, user_id, status, channel, total_cents, currency, "
               "address, flash_sale_token, created_at_ms, updated_at_ms) "
               "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
               (order_id, req.user_id, status, req.channel, total_cents, currency, address,
                req.flash_sale_token, now, now))
    for i, line in enumerate(req.lines):
        price = prices[line.sku]
        tx.execute("INSERT INTO order_lines (order_id, line, sku, quantity, unit_price_cents, "
                   "currency) VALUES (?, ?, ?, ?, ?, ?)",
                   (order_id, i, line.sku, line.quantity, price.cents, price.currency))


def set_reservation(tx, order_id, sku, reservation_id):
    tx.execute("UPDATE order_lines SET reservation_id = ? WHERE order_id = ? AND sku = ?",
               (reservation_id, order_id, sku))


def set_status(tx, order_id, status, now, reason=""):
    tx.execute("UPDATE orders SET status = ?, updated_at_ms = ?, reason = ? WHERE order_id = ?",
               (status, now, reason, order_id))


def delete(tx, order_id):
    tx.execute("DELETE FROM order_lines WHERE order_id = ?", (order_id,))
    tx.execute("DELETE FROM orders WHERE order_id = ?", (order_id,))


def load(tx, idl, order_id):
    """The order as the IDL's ``Order``, or None."""
    row = tx.one("SELECT * FROM orders WHERE order_id = ?", (order_id,))
    if row is None:
        return None
    money = idl.shared.Money
    lines = [
        idl.OrderLine(sku=r["sku"], quantity=r["quantity"],
                      unit_price=money(cents=r["unit_price_cents"], currency=r["currency"]),
                      reservation_id=r["reservation_id"])
        for r in tx.query("SELECT * FROM order_lines WHERE order_id = ? ORDER BY line",
                          (order_id,))
    ]
    return idl.Order(
        order_id=row["order_id"], user_id=row["user_id"], status=row["status"], lines=lines,
        total=money(cents=row["total_cents"], currency=row["currency"]), channel=row["channel"],
        address=codec.decode(idl.shared.Address, row["address"]),
        flash_sale_token=row["flash_sale_token"], created_at_ms=row["created_at_ms"],
        updated_at_ms=row["updated_at_ms"], reason=row["reason"],
    )


def of_user(tx, user_id, offset, limit):
    rows = tx.query("SELECT order_id FROM orders WHERE user_id = ? "
                    "ORDER BY created_at_ms DESC, order_id DESC LIMIT ? OFFSET ?",
                    (user_id, limit, offset))
    return [r["order_id"] for r in rows]


def first_sight(tx, event_id, topic, now):
    """True the first time an event id is seen (Notify delivers at least once)."""
    return bool(tx.execute("INSERT OR IGNORE INTO seen_events (event_id, topic, seen_at_ms) "
                           "VALUES (?, ?, ?)", (event_id, topic, now)))
