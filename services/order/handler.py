"""OrderService handler: create (price, reserve, record, announce) and cancel, with
compensation: a refused reservation leaves no order behind, and a later failure releases the
stock it had reserved. Orders live on the shard of their user; idempotency claims and seen events
on the shard of their key (``shards.py``)."""

import json
import logging

from services.errors import Errors, is_declared
from services.idempotency import SCHEMA as IDEMPOTENCY_SCHEMA
from services.idempotency import Idempotency, now_ms
from services.peers import Peers

from . import orders
from .shards import Shards, new_order_id

log = logging.getLogger("shop.order")
MAX_CENTS = 2**62


class OrderHandler:
    def __init__(self, context):
        self.idl = context.idl
        self.status = context.idl.OrderStatus
        self.channel = context.idl.inventory.Channel
        self.errors = Errors(context.idl)
        self.shards = Shards.open(context, IDEMPOTENCY_SCHEMA + ";" + orders.SCHEMA)
        self._claims = {id(db): Idempotency(db, context.idl.OrderService, self.errors)
                        for db in self.shards.databases}
        self.peers = Peers(context)

    def ping(self):
        return "pong"

    def create_order(self, idempotency_key, req):
        self._validate(req)
        claims = self._idempotency(idempotency_key)
        claim = claims.claim("create_order", idempotency_key, (req,),
                             note=new_order_id(req.user_id))
        if claim.replayed:
            return claim.result
        order_id = claim.note
        db = self.shards.for_user(req.user_id)
        reserved = {}
        try:
            prices, total, currency = self._price(req)
            with db.transaction() as tx:
                orders.insert(tx, order_id, req, prices, total, currency, self.status.PENDING,
                              now_ms())
            for line in req.lines:
                reservation = self.peers.get("inventory").reserve(
                    f"{order_id}:reserve:{line.sku}", line.sku, req.channel, line.quantity,
                    order_id)
                reserved[line.sku] = reservation.reservation_id
                with db.transaction() as tx:
                    orders.set_reservation(tx, order_id, line.sku, reservation.reservation_id)
        except Exception as e:
            # Refused (or unreachable) before the order existed for anyone: undo everything.
            self._release(order_id, reserved)
            with db.transaction() as tx:
                orders.delete(tx, order_id)
            claims.abandon("create_order", idempotency_key)
            raise self._as_declared(e, "create_order") from e
        try:
            self._publish("order.created", order_id, self._payload(order_id))
        except Exception as e:
            self._release(order_id, reserved)
            with db.transaction() as tx:
                orders.set_status(tx, order_id, self.status.FAILED, now_ms(),
                                  f"announcing the order failed: {type(e).__name__}")
            claims.abandon("create_order", idempotency_key)
            raise self._as_declared(e, "create_order") from e
        def confirm(tx):
            orders.set_status(tx, order_id, self.status.CONFIRMED, now_ms())
            return orders.load(tx, self.idl, order_id)

        return self._finish(db, confirm, "create_order", idempotency_key)

    def get_order(self, order_id):
        db = self.shards.for_order(order_id)
        order = None
        if db is not None:
            with db.snapshot() as tx:
                order = orders.load(tx, self.idl, order_id)
        if order is None:
            raise self.errors.not_found("order", order_id)
        return order

    def cancel_order(self, idempotency_key, order_id):
        order = self.get_order(order_id)
        claims = self._idempotency(idempotency_key)
        claim = claims.claim("cancel_order", idempotency_key, (order_id,), note="")
        if claim.replayed:
            return claim.result
        try:
            if order.status == self.status.FAILED:
                raise self.errors.shop("INVALID_STATE", f"order {order_id} is FAILED")
            if order.status != self.status.CANCELLED:
                inventory = self.peers.get("inventory")
                for line in order.lines:
                    if line.reservation_id:
                        inventory.release(f"{order_id}:release:{line.sku}", line.reservation_id)
                self._publish("order.cancelled", order_id, self._payload(order_id))
        except Exception as e:
            claims.abandon("cancel_order", idempotency_key)
            raise self._as_declared(e, "cancel_order") from e

        def cancel(tx):
            current = orders.load(tx, self.idl, order_id)
            if current.status != self.status.CANCELLED:
                orders.set_status(tx, order_id, self.status.CANCELLED, now_ms(), "cancelled")
                current = orders.load(tx, self.idl, order_id)
            return current

        return self._finish(self.shards.for_order(order_id), cancel, "cancel_order",
                            idempotency_key)

    def list_orders(self, user_id, offset, limit):
        if not 1 <= limit <= 1000 or offset < 0:
            raise self.errors.invalid("limit must be 1-1000 and offset >= 0")
        with self.shards.for_user(user_id).snapshot() as tx:
            return [orders.load(tx, self.idl, oid)
                    for oid in orders.of_user(tx, user_id, offset, limit)]

    def on_event(self, event):
        """Notify delivery. ``order.cancel_requested`` ({"order_id": ...}) cancels an order;
        other topics are acknowledged. A repeated event id is ignored."""
        if event.topic == "order.cancel_requested":
            try:
                order_id = json.loads(event.payload or "{}")["order_id"]
            except (ValueError, KeyError, TypeError) as e:
                raise self.errors.invalid(f"event {event.id}: bad payload") from e
            try:
                self.cancel_order(f"event:{event.id}", order_id)
            except self.idl.shared.NotFound:
                pass  # nothing to cancel: acknowledge
        with self.shards.for_key(event.id).transaction() as tx:
            orders.first_sight(tx, event.id, event.topic, now_ms())

    # -- internals

    def _idempotency(self, key):
        """The claims of ``key``'s shard: one place per key, whichever user sends it."""
        return self._claims[id(self.shards.for_key(key or ""))]

    def _finish(self, db, work, method, key):
        """Run ``work(tx)`` on the order's shard and record its result as the key's outcome:
        in one transaction when the claim lives there too, else the order first. A crash in
        between leaves the claim in progress; once stale, a retry resumes the same order id
        (every step is idempotent) and records the result then."""
        claims = self._idempotency(key)
        if claims.db is db:
            with db.transaction() as tx:
                value = work(tx)
                claims.complete(tx, method, key, value)
            return value
        with db.transaction() as tx:
            value = work(tx)
        with claims.db.transaction() as tx:
            claims.complete(tx, method, key, value)
        return value

    def _validate(self, req):
        if req is None or not req.user_id:
            raise self.errors.invalid("req.user_id is required")
        if not req.lines:
            raise self.errors.invalid("an order needs at least one line")
        skus = set()
        for line in req.lines:
            if not line.sku:
                raise self.errors.invalid("every line needs a SKU")
            if line.quantity is None or line.quantity <= 0:
                raise self.errors.invalid(f"{line.sku}: quantity must be > 0")
            if line.sku in skus:
                raise self.errors.invalid(f"{line.sku} appears on two lines")
            skus.add(line.sku)
        if req.channel not in (self.channel.WEB, self.channel.APP, self.channel.FLASH_SALE):
            raise self.errors.invalid(f"unknown channel {req.channel}")
        if req.channel == self.channel.FLASH_SALE and not req.flash_sale_token:
            raise self.errors.shop("INVALID_TOKEN", "a FLASH_SALE order needs its ticket token")

    def _price(self, req):
        """Prices from the catalog; unknown SKUs are NotFound, mixed currencies don't add up."""
        skus = [line.sku for line in req.lines]
        prices = self.peers.get("catalog").get_prices(skus)
        for sku in skus:
            if sku not in prices:
                raise self.errors.not_found("sku", sku)
        currencies = {prices[sku].currency for sku in skus}
        if len(currencies) != 1:
            raise self.errors.invalid(f"prices in several currencies: {sorted(currencies)}")
        total = sum(prices[line.sku].cents * line.quantity for line in req.lines)
        if not 0 <= total < MAX_CENTS:
            raise self.errors.invalid("the order total is out of range")
        return prices, total, currencies.pop()

    def _release(self, order_id, reserved):
        for sku, reservation_id in reserved.items():
            try:
                self.peers.get("inventory").release(f"{order_id}:release:{sku}", reservation_id)
            except Exception:  # best effort; the reservation stays HELD and is logged
                log.exception("order %s: releasing %s failed", order_id, reservation_id)

    def _publish(self, topic, order_id, payload):
        self.peers.get("notify").publish(f"{order_id}:{topic}", topic, payload, order_id)

    def _payload(self, order_id):
        order = self.get_order(order_id)
        return json.dumps({
            "order_id": order.order_id, "user_id": order.user_id,
            "channel": self.channel._VALUES_TO_NAMES.get(order.channel, str(order.channel)),
            "total_cents": order.total.cents, "currency": order.total.currency,
            "lines": [{"sku": ln.sku, "quantity": ln.quantity} for ln in order.lines],
        }, sort_keys=True)

    def _as_declared(self, error, method):
        """Our declared exception for a failure: adopted if declared, else UNAVAILABLE."""
        if is_declared(error):
            return self.errors.adopt(error)
        return self.errors.shop("UNAVAILABLE", f"{method}: {type(error).__name__}: {error}")
