"""CatalogService handler: reads for browsing and pricing, idempotent upserts, seeding."""

import json
import re

from services.catalog.cache import Cache, cache_urls
from services.codec import decode, encode
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
        self.cache = Cache(cache_urls(context.service.settings))
        if self.cache:
            context.add_metrics(self.cache.families)
            context.on_close(self.cache.close)
        self._seed()

    def ping(self):
        return "pong"

    def get_product(self, product_id):
        product = self._products([product_id]).get(product_id)
        if product is None:
            raise self.errors.not_found("product", product_id)
        return product

    def list_products(self, offset, limit):
        if not 1 <= limit <= 1000 or offset < 0:
            raise self.errors.invalid("limit must be 1-1000 and offset >= 0")
        rows = self.db.query("SELECT product_id FROM products WHERE active = 1 "
                             "ORDER BY product_id LIMIT ? OFFSET ?", (limit, offset))
        ids = [r["product_id"] for r in rows]
        products = self._products(ids)
        return [products[i] for i in ids if i in products]

    def get_sku(self, sku):
        cached = self.cache.get_many([f"sku:{sku}"])
        if cached:
            return decode(self.idl.SkuInfo, cached[f"sku:{sku}"])
        rows = self.db.query("SELECT * FROM skus WHERE sku = ?", (sku,))
        if not rows:
            raise self.errors.not_found("sku", sku)
        info = self._sku(rows[0])
        self.cache.set_many({f"sku:{sku}": encode(info)})
        return info

    def get_prices(self, skus):
        """Prices of active SKUs of active products; a cached empty value says "no price"."""
        if not skus:
            return {}
        money = self.idl.shared.Money
        cached = self.cache.get_many([f"price:{s}" for s in skus])
        prices = {s: decode(money, cached[f"price:{s}"]) for s in skus
                  if cached.get(f"price:{s}")}
        missing = tuple(dict.fromkeys(s for s in skus if f"price:{s}" not in cached))
        if not missing:
            return prices
        marks = ",".join("?" * len(missing))
        rows = self.db.query(
            f"SELECT s.sku, s.price_cents, s.currency FROM skus s JOIN products p "
            f"ON p.product_id = s.product_id WHERE s.active = 1 AND p.active = 1 "
            f"AND s.sku IN ({marks})", missing)
        found = {r["sku"]: money(cents=r["price_cents"], currency=r["currency"]) for r in rows}
        prices.update(found)
        self.cache.set_many({f"price:{s}": encode(found[s]) if s in found else b""
                             for s in missing})
        return prices

    def upsert_product(self, idempotency_key, product):
        self._validate(product)
        written = []  # filled by _write: not when the key replays an earlier call
        self.idempotency.once("upsert_product", idempotency_key, (product,),
                              lambda tx: written.append(self._write(tx, product)))
        if written:  # after the commit: exactly the product, its SKUs and their prices
            self.cache.delete([f"product:{product.product_id}"]
                              + [f"{kind}:{s}" for s in sorted(written[0])
                                 for kind in ("sku", "price")])

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
        """Writes ``product``; returns the SKU codes it touched, old and new."""
        changed = {r["sku"] for r in tx.query("SELECT sku FROM skus WHERE product_id = ?",
                                              (product.product_id,))}
        changed.update(info.sku for info in product.skus or ())
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
        return changed

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

    def _products(self, ids):
        """``{product_id: Product}`` of those of ``ids`` that exist: the cache, then the DB."""
        cached = self.cache.get_many([f"product:{i}" for i in ids])
        products = {i: decode(self.idl.Product, cached[f"product:{i}"])
                    for i in ids if f"product:{i}" in cached}
        missing = tuple(dict.fromkeys(i for i in ids if i not in products))
        if missing:
            marks = ",".join("?" * len(missing))
            rows = self.db.query(f"SELECT * FROM products WHERE product_id IN ({marks})",
                                 missing)
            found = {r["product_id"]: self._product(r) for r in rows}
            products.update(found)
            self.cache.set_many({f"product:{i}": encode(p) for i, p in found.items()})
        return products

    def _product(self, row):
        skus = self.db.query("SELECT * FROM skus WHERE product_id = ? ORDER BY sku",
                             (row["product_id"],))
        return self.idl.Product(
            product_id=row["product_id"], title=row["title"], description=row["description"],
            skus=[self._sku(r) for r in skus], active=bool(row["active"]),
            updated_at_ms=row["updated_at_ms"],
        )
