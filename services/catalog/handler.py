"""CatalogService handler: reads for browsing and pricing, idempotent upserts, seeding."""

import json
import re

from services.errors import Errors
from services.idempotency import SCHEMA as IDEMPOTENCY_SCHEMA
from services.idempotency import Idempotency, now_ms
from services.seed import CURRENCY, PRODUCTS
from services.storage import open_database

SCHEMA = IDEMPOTENCY_SCHEMA + """;
CREATE TABLE IF NOT EXISTS products (
  product_id TEXT PRIMARY KEY,
  title TEXT NOT NULL DEFAULT '',
  description TEXT NOT NULL DEFAULT '',
  active INTEGER NOT NULL DEFAULT 1,
  updated_at_ms INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS skus (
  sku TEXT PRIMARY KEY,
  product_id TEXT NOT NULL,
  title TEXT NOT NULL DEFAULT '',
  price_cents INTEGER NOT NULL,
  currency TEXT NOT NULL,
  attributes TEXT NOT NULL DEFAULT '{}',
  active INTEGER NOT NULL DEFAULT 1
);
CREATE INDEX IF NOT EXISTS skus_by_product ON skus (product_id)
"""

_CURRENCY = re.compile(r"^[A-Z]{3}$")


class CatalogHandler:
    def __init__(self, context):
        self.idl = context.idl
        self.errors = Errors(context.idl)
        self.db = open_database(context, SCHEMA)
        self.idempotency = Idempotency(self.db, context.idl.CatalogService, self.errors)
        self._seed()

    def ping(self):
        return "pong"

    def get_product(self, product_id):
        row = self.db.query("SELECT * FROM products WHERE product_id = ?", (product_id,))
        if not row:
            raise self.errors.not_found("product", product_id)
        return self._product(row[0])

    def list_products(self, offset, limit):
        if not 1 <= limit <= 1000 or offset < 0:
            raise self.errors.invalid("limit must be 1-1000 and offset >= 0")
        rows = self.db.query("SELECT * FROM products WHERE active = 1 ORDER BY product_id "
                             "LIMIT ? OFFSET ?", (limit, offset))
        return [self._product(row) for row in rows]

    def get_sku(self, sku):
        rows = self.db.query("SELECT * FROM skus WHERE sku = ?", (sku,))
        if not rows:
            raise self.errors.not_found("sku", sku)
        return self._sku(rows[0])

    def get_prices(self, skus):
        if not skus:
            return {}
        marks = ",".join("?" * len(skus))
        rows = self.db.query(
            f"SELECT s.sku, s.price_cents, s.currency FROM skus s JOIN products p "
            f"ON p.product_id = s.product_id WHERE s.active = 1 AND p.active = 1 "
            f"AND s.sku IN ({marks})", tuple(skus))
        money = self.idl.shared.Money
        return {r["sku"]: money(cents=r["price_cents"], currency=r["currency"]) for r in rows}

    def upsert_product(self, idempotency_key, product):
        self._validate(product)
        self.idempotency.once("upsert_product", idempotency_key, (product,),
                              lambda tx: self._write(tx, product))

    # -- internals

    def _validate(self, product):
        if product is None or not product.product_id:
            raise self.errors.invalid("product.product_id is required")
        seen = set()
        for info in product.skus or ():
            if not info.sku:
                raise self.errors.invalid("every SKU needs a code")
            if info.sku in seen:
                raise self.errors.invalid(f"SKU {info.sku!r} appears twice")
            seen.add(info.sku)
            if info.product_id and info.product_id != product.product_id:
                raise self.errors.invalid(f"SKU {info.sku!r} names product {info.product_id!r}")
            price = info.price
            if price is None or price.cents is None or price.cents < 0:
                raise self.errors.invalid(f"SKU {info.sku!r}: price must be >= 0 cents")
            if not _CURRENCY.match(price.currency or ""):
                raise self.errors.invalid(f"SKU {info.sku!r}: currency must be ISO 4217")

    def _write(self, tx, product):
        for info in product.skus or ():
            owner = tx.one("SELECT product_id FROM skus WHERE sku = ?", (info.sku,))
            if owner is not None and owner["product_id"] != product.product_id:
                raise self.errors.invalid(
                    f"SKU {info.sku!r} belongs to product {owner['product_id']!r}")
        tx.execute(
            "INSERT INTO products (product_id, title, description, active, updated_at_ms) "
            "VALUES (?, ?, ?, ?, ?) ON CONFLICT (product_id) DO UPDATE SET title = excluded.title, "
            "description = excluded.description, active = excluded.active, "
            "updated_at_ms = excluded.updated_at_ms",
            (product.product_id, product.title or "", product.description or "",
             1 if product.active is not False else 0, now_ms()),
        )
        tx.execute("UPDATE skus SET active = 0 WHERE product_id = ?", (product.product_id,))
        for info in product.skus or ():
            tx.execute(
                "INSERT INTO skus (sku, product_id, title, price_cents, currency, attributes, "
                "active) VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (sku) DO UPDATE SET "
                "title = excluded.title, price_cents = excluded.price_cents, "
                "currency = excluded.currency, attributes = excluded.attributes, "
                "active = excluded.active",
                (info.sku, product.product_id, info.title or "", info.price.cents,
                 info.price.currency, json.dumps(dict(info.attributes or {}), sort_keys=True),
                 1 if info.active is not False else 0),
            )

    def _seed(self):
        """The first start (of any instance) writes the seed products; later starts do nothing."""
        with self.db.transaction() as tx:
            if tx.one("SELECT 1 FROM products LIMIT 1") is not None:
                return
            for product_id, title, description, skus in PRODUCTS:
                tx.execute("INSERT INTO products (product_id, title, description, active, "
                           "updated_at_ms) VALUES (?, ?, ?, 1, ?)",
                           (product_id, title, description, now_ms()))
                for sku, sku_title, cents, attributes in skus:
                    tx.execute("INSERT INTO skus (sku, product_id, title, price_cents, currency, "
                               "attributes, active) VALUES (?, ?, ?, ?, ?, ?, 1)",
                               (sku, product_id, sku_title, cents, CURRENCY,
                                json.dumps(attributes, sort_keys=True)))

    def _sku(self, row):
        s = self.idl
        return s.SkuInfo(
            sku=row["sku"], product_id=row["product_id"], title=row["title"],
            price=s.shared.Money(cents=row["price_cents"], currency=row["currency"]),
            attributes=json.loads(row["attributes"]), active=bool(row["active"]),
        )

    def _product(self, row):
        skus = self.db.query("SELECT * FROM skus WHERE product_id = ? ORDER BY sku",
                             (row["product_id"],))
        return self.idl.Product(
            product_id=row["product_id"], title=row["title"], description=row["description"],
            skus=[self._sku(r) for r in skus], active=bool(row["active"]),
            updated_at_ms=row["updated_at_ms"],
        )
