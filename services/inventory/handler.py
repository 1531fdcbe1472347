"""InventoryService handler: validation, idempotency and Thrift types around ``stock``."""

from services.errors import Errors
from services.idempotency import SCHEMA as IDEMPOTENCY_SCHEMA
from services.idempotency import Idempotency, now_ms
from services.seed import ALLOCATION, STOCK
from services.storage import open_database

from . import stock


class InventoryHandler:
    def __init__(self, context):
        self.idl = context.idl
        self.channel = context.idl.Channel
        self.errors = Errors(context.idl)
        self.db = open_database(context, IDEMPOTENCY_SCHEMA + ";" + stock.SCHEMA)
        self.idempotency = Idempotency(self.db, context.idl.InventoryService, self.errors)
        self._seed()

    def ping(self):
        return "pong"

    def set_stock(self, idempotency_key, warehouse, sku, quantity):
        if not warehouse or not sku:
            raise self.errors.invalid("warehouse and sku are required")
        if quantity is None or quantity < 0:
            raise self.errors.invalid(f"quantity must be >= 0, got {quantity}")

        def work(tx):
            if not stock.set_warehouse(tx, sku, warehouse, quantity):
                raise self.errors.invalid(
                    f"{sku}: the new total would fall below what channels have allocated")
            return self._level(tx, sku)

        return self.idempotency.once("set_stock", idempotency_key,
                                     (warehouse, sku, quantity), work)

    def allocate(self, idempotency_key, sku, channel, quantity, from_channel):
        self._check_channel(channel)
        source = from_channel or 0
        if source:
            self._check_channel(source)
        if source == channel:
            raise self.errors.invalid("from_channel and channel are the same")
        self._check_quantity(quantity)

        def work(tx):
            self._require(tx, sku)
            try:
                stock.allocate(tx, sku, channel, quantity, source)
            except stock.OutOfStock as e:
                raise self.errors.insufficient(sku, quantity, e.available) from None
            return self._level(tx, sku)

        return self.idempotency.once("allocate", idempotency_key,
                                     (sku, channel, quantity, from_channel), work)

    def reserve(self, idempotency_key, sku, channel, quantity, order_id):
        self._check_channel(channel)
        self._check_quantity(quantity)

        def work(tx):
            self._require(tx, sku)
            try:
                row = stock.reserve(tx, sku, channel, quantity, order_id, now_ms())
            except stock.OutOfStock as e:
                raise self.errors.insufficient(sku, quantity, e.available) from None
            return self._reservation(row)

        return self.idempotency.once("reserve", idempotency_key,
                                     (sku, channel, quantity, order_id), work)

    def confirm(self, idempotency_key, reservation_id):
        return self._settle("confirm", idempotency_key, reservation_id, stock.CONFIRMED)

    def release(self, idempotency_key, reservation_id):
        return self._settle("release", idempotency_key, reservation_id, stock.RELEASED)

    def get_stock(self, sku):
        with self.db.snapshot() as tx:
            found = self._level(tx, sku)
        if found is None:
            raise self.errors.not_found("sku", sku)
        return found

    # -- internals

    def _settle(self, method, key, reservation_id, status):
        def work(tx):
            row = stock.reservation(tx, reservation_id)
            if row is None:
                raise self.errors.not_found("reservation", reservation_id)
            if row["status"] == status:
                return self._reservation(row)
            if row["status"] != stock.HELD:
                raise self.errors.shop("INVALID_STATE", f"reservation {reservation_id} is "
                                       f"{self.idl.ReservationStatus._VALUES_TO_NAMES[row['status']]}")
            return self._reservation(stock.settle(tx, row, status))

        return self.idempotency.once(method, key, (reservation_id,), work)

    def _check_channel(self, channel):
        if channel not in (self.channel.WEB, self.channel.APP, self.channel.FLASH_SALE):
            raise self.errors.invalid(f"unknown channel {channel}")

    def _check_quantity(self, quantity):
        if quantity is None or quantity <= 0:
            raise self.errors.invalid(f"quantity must be > 0, got {quantity}")

    def _require(self, tx, sku):
        if not sku or not stock.exists(tx, sku):
            raise self.errors.not_found("sku", sku)

    def _level(self, tx, sku):
        found = stock.level(tx, sku)
        if found is None:
            return None
        head, warehouses, channels = found
        return self.idl.StockLevel(
            sku=sku,
            warehouses={r["warehouse"]: r["quantity"] for r in warehouses},
            total=head["total"],
            unallocated=head["unallocated"],
            channels=[self.idl.ChannelStock(channel=r["channel"], allocated=r["allocated"],
                                            available=r["available"], reserved=r["reserved"],
                                            confirmed=r["confirmed"]) for r in channels],
        )

    def _reservation(self, row):
        return self.idl.Reservation(
            reservation_id=row["reservation_id"], sku=row["sku"], channel=row["channel"],
            quantity=row["quantity"], order_id=row["order_id"], status=row["status"],
            created_at_ms=row["created_at_ms"], expires_at_ms=row["expires_at_ms"],
        )

    def _seed(self):
        """The first start stocks the seed SKUs and allocates part of them to WEB and APP."""
        with self.db.transaction() as tx:
            if tx.one("SELECT 1 FROM stock LIMIT 1") is not None:
                return
            for sku, warehouses in STOCK.items():
                for warehouse, quantity in warehouses.items():
                    stock.set_warehouse(tx, sku, warehouse, quantity)
                for name, quantity in ALLOCATION.get(sku, {}).items():
                    stock.allocate(tx, sku, getattr(self.channel, name), quantity, 0)
