"""FlashSaleService handler (BigTap): register sales, issue tickets, redeem tokens into orders.

``purchase`` records the redemption as PENDING and places the order in the background through
the order service, with the token as the order's idempotency key; ``get_result`` re-drives a
purchase left PENDING (e.g. the process died, or order was unreachable), so every redeemed
token ends SUCCEEDED or FAILED exactly once.
"""

import logging
import re
import uuid

import gevent

from services import codec
from services.errors import Errors, is_declared
from services.idempotency import SCHEMA as IDEMPOTENCY_SCHEMA
from services.idempotency import Idempotency, now_ms
from services.peers import Peers, transient
from services.storage import open_database
from soa import idl as idl_loader

from . import tickets

log = logging.getLogger("shop.flashsale")
TICKET_TTL_MS = 10 * 60 * 1000
REDRIVE_AFTER_MS = 2_000
_CURRENCY = re.compile(r"^[A-Z]{3}$")


class FlashSaleHandler:
    def __init__(self, context):
        self.context = context
        self.idl = context.idl
        self.codes = context.idl.shared.ErrorCode
        self.errors = Errors(context.idl)
        self.db = open_database(context, IDEMPOTENCY_SCHEMA + ";" + tickets.SCHEMA)
        self.idempotency = Idempotency(self.db, context.idl.FlashSaleService, self.errors)
        self.peers = Peers(context)
        self._placing = set()

    def ping(self):
        return "pong"

    def register_sale(self, idempotency_key, sku, quantity, price, starts_at_ms, ends_at_ms):
        if not sku:
            raise self.errors.invalid("sku is required")
        if quantity is None or quantity <= 0:
            raise self.errors.invalid(f"quantity must be > 0, got {quantity}")
        if price is None or not price.cents or price.cents <= 0 \
                or not _CURRENCY.match(price.currency or ""):
            raise self.errors.invalid("price must be > 0 cents in an ISO 4217 currency")
        if ends_at_ms and ends_at_ms <= (starts_at_ms or 0):
            raise self.errors.invalid("the sale must end after it starts")
        args = (sku, quantity, price, starts_at_ms, ends_at_ms)
        claim = self.idempotency.claim("register_sale", idempotency_key, args,
                                       note="sale-" + uuid.uuid4().hex[:12])
        if claim.replayed:
            return claim.result
        sale_id = claim.note
        try:
            self._check_price(sku, price)
            self.peers.get("inventory").allocate(f"{sale_id}:allocate", sku,
                                                 self._flash_channel(), quantity, None)
        except Exception as e:
            self.idempotency.abandon("register_sale", idempotency_key)
            if is_declared(e) and e.code == self.codes.INSUFFICIENT_STOCK:
                raise self.errors.shop("INSUFFICIENT_STOCK", str(e.message)) from e
            if is_declared(e) and e.code == self.codes.NOT_FOUND:
                raise self.errors.shop("NOT_FOUND", f"unknown SKU {sku!r}") from e
            if is_declared(e):
                raise self.errors.shop(e.code, e.message) from e
            raise self.errors.shop("UNAVAILABLE", f"register_sale: {e}") from e
        with self.db.transaction() as tx:
            tx.execute("INSERT OR IGNORE INTO sales (sale_id, sku, quantity, price_cents, "
                       "currency, starts_at_ms, ends_at_ms) VALUES (?, ?, ?, ?, ?, ?, ?)",
                       (sale_id, sku, quantity, price.cents, price.currency,
                        starts_at_ms or 0, ends_at_ms or 0))
            sale = self._sale(tickets.sale(tx, sale_id))
            self.idempotency.complete(tx, "register_sale", idempotency_key, sale)
        return sale

    def apply(self, sale_id, user_id):
        if not user_id:
            raise self.errors.invalid("user_id is required")
        now = now_ms()
        with self.db.transaction() as tx:
            row = tickets.sale(tx, sale_id)
            if row is None:
                raise self.errors.not_found("sale", sale_id)
            held = tickets.ticket_of(tx, sale_id, user_id)
            if held is not None:
                return self._ticket(held)
            if now < row["starts_at_ms"] or (row["ends_at_ms"] and now >= row["ends_at_ms"]):
                raise self.errors.shop("SALE_NOT_ACTIVE", f"sale {sale_id} is not open")
            issued = tickets.issue(tx, sale_id, user_id, now,
                                   min(TICKET_TTL_MS, (row["ends_at_ms"] or 2**62) - now))
            if issued is None:
                raise self.errors.shop("SOLD_OUT", f"sale {sale_id} has no tickets left")
            return self._ticket(issued)

    def purchase(self, token, address):
        address = address or self.idl.shared.Address()
        digest = codec.digest(address)
        now = now_ms()
        with self.db.transaction() as tx:
            held = tickets.ticket(tx, token) if token else None
            if held is None:
                raise self.errors.shop("INVALID_TOKEN", "unknown token")
            found = tickets.purchase(tx, token)
            if found is not None:
                if found["address_hash"] != digest:
                    raise self.errors.conflict("this token was redeemed with another address")
                return self._result(found)
            if held["expires_at_ms"] <= now:
                raise self.errors.shop("INVALID_TOKEN", "the token has expired")
            tx.execute("INSERT INTO purchases (token, address_hash, address, status, "
                       "updated_at_ms) VALUES (?, ?, ?, ?, ?)",
                       (token, digest, codec.encode(address), tickets.PENDING, now))
            result = self._result(tickets.purchase(tx, token))
        self._place_later(token)
        return result

    def get_result(self, token):
        with self.db.snapshot() as tx:
            found = tickets.purchase(tx, token) if token else None
            if found is None and (not token or tickets.ticket(tx, token) is None):
                raise self.errors.shop("INVALID_TOKEN", "unknown token")
        if found is None:
            raise self.errors.not_found("purchase", token)
        stale = now_ms() - found["updated_at_ms"] > REDRIVE_AFTER_MS
        if found["status"] == tickets.PENDING and stale:
            self._place_later(token)
        return self._result(found)

    def get_sale(self, sale_id):
        with self.db.snapshot() as tx:
            row = tickets.sale(tx, sale_id)
        if row is None:
            raise self.errors.not_found("sale", sale_id)
        return self._sale(row)

    # -- internals

    def _flash_channel(self):
        module = idl_loader.load(self.context.config.service("inventory").idl)
        return module.Channel.FLASH_SALE

    def _check_price(self, sku, price):
        """The sale price must be in the SKU's currency and no more than its list price."""
        listed = self.peers.get("catalog").get_prices([sku]).get(sku)
        if listed is None:
            raise self.errors.shop("NOT_FOUND", f"unknown SKU {sku!r}")
        if listed.currency != price.currency or price.cents > listed.cents:
            raise self.errors.invalid(
                f"sale price {price.cents} {price.currency} does not add up with the list "
                f"price {listed.cents} {listed.currency}")

    def _place_later(self, token):
        if token not in self._placing:
            self._placing.add(token)
            gevent.spawn(self._place, token)

    def _place(self, token):
        """Create the order for a PENDING purchase; a transient failure leaves it PENDING."""
        try:
            with self.db.snapshot() as tx:
                held = tickets.ticket(tx, token)
                bought = tickets.purchase(tx, token)
                row = tickets.sale(tx, held["sale_id"])
            if bought["status"] != tickets.PENDING:
                return
            order_idl = idl_loader.load(self.context.config.service("order").idl)
            req = order_idl.CreateOrderRequest(
                user_id=held["user_id"],
                lines=[order_idl.LineItem(sku=row["sku"], quantity=1)],
                channel=order_idl.inventory.Channel.FLASH_SALE,
                address=codec.decode(order_idl.shared.Address, bought["address"]),
                flash_sale_token=token)
            try:
                order = self.peers.get("order").create_order(f"flashsale:{token}", req)
            except Exception as e:  # noqa: BLE001 - classified just below
                if transient(e, self.codes):
                    log.info("flashsale %s: placing the order failed for now: %s", token, e)
                    with self.db.transaction() as tx:
                        tx.execute("UPDATE purchases SET updated_at_ms = ? WHERE token = ?",
                                   (now_ms(), token))
                    return
                with self.db.transaction() as tx:
                    tickets.settle(tx, token, held["sale_id"], tickets.FAILED, now_ms(),
                                   error_code=e.code, message=str(e.message or ""))
                return
            with self.db.transaction() as tx:
                tickets.settle(tx, token, held["sale_id"], tickets.SUCCEEDED, now_ms(),
                               order_id=order.order_id)
        finally:
            self._placing.discard(token)

    def _sale(self, row):
        now = now_ms()
        s = self.idl.SaleStatus
        if now < row["starts_at_ms"]:
            status = s.SCHEDULED
        elif row["ends_at_ms"] and now >= row["ends_at_ms"]:
            status = s.ENDED
        elif row["tickets_issued"] >= row["quantity"]:
            status = s.SOLD_OUT
        else:
            status = s.ACTIVE
        return self.idl.Sale(
            sale_id=row["sale_id"], sku=row["sku"], quantity=row["quantity"],
            price=self.idl.shared.Money(cents=row["price_cents"], currency=row["currency"]),
            starts_at_ms=row["starts_at_ms"], ends_at_ms=row["ends_at_ms"], status=status,
            tickets_issued=row["tickets_issued"], sold=row["sold"])

    def _ticket(self, row):
        return self.idl.Ticket(token=row["token"], sale_id=row["sale_id"], user_id=row["user_id"],
                               issued_at_ms=row["issued_at_ms"], expires_at_ms=row["expires_at_ms"])

    def _result(self, row):
        return self.idl.PurchaseResult(
            token=row["token"], status=row["status"], order_id=row["order_id"],
            error_code=row["error_code"], message=row["message"] or "")
