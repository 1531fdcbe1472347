"""Business logic of the shop's handlers, wired to each other in one process (no servers).

The rules are tested again against real servers and etcd in test_shop_services.py; these
tests pin the details cheaply.
"""

import json

import pytest

from services.fixtures import postgres_server, shop_backend  # noqa: F401 - fixtures
from services.testing import StandInShop
from soa.testing.poll import wait_until


@pytest.fixture
def shop(tmp_path, shop_backend):  # noqa: F811 - the imported fixture
    """Every test here runs on SQLite and on PostgreSQL."""
    shop = StandInShop(tmp_path, settings=shop_backend)
    yield shop
    shop.close()


def idl(shop, name):
    return shop.context(name).idl


def test_catalog_seeds_once_and_validates(shop):
    catalog = shop.start("catalog")
    first = catalog.list_products(0, 100)
    assert len(first) >= 3
    again = shop.start("catalog")  # a second start (or instance) seeds nothing more
    assert again.list_products(0, 100) == first
    shared = idl(shop, "catalog").shared
    with pytest.raises(shared.NotFound) as e:
        catalog.get_sku("NOPE")
    assert e.value.code == shared.ErrorCode.NOT_FOUND and e.value.kind == "sku"
    with pytest.raises(shared.ShopError) as e:
        catalog.list_products(0, 0)
    assert e.value.code == shared.ErrorCode.INVALID_ARGUMENT
    assert catalog.get_prices([]) == {}
    assert set(catalog.get_prices(["TV55", "NOPE"])) == {"TV55"}


def test_idempotency_replays_and_conflicts(shop):
    catalog = shop.start("catalog")
    m = idl(shop, "catalog")
    product = m.Product(product_id="p1", title="P", skus=[
        m.SkuInfo(sku="P1-A", product_id="p1", price=m.shared.Money(cents=100, currency="CNY"))])
    catalog.upsert_product("k1", product)
    catalog.upsert_product("k1", product)  # replay: same payload, same (void) result
    assert catalog.get_sku("P1-A").price.cents == 100
    changed = m.Product(product_id="p1", title="P", skus=[
        m.SkuInfo(sku="P1-A", product_id="p1", price=m.shared.Money(cents=200, currency="CNY"))])
    with pytest.raises(m.shared.ShopError) as e:
        catalog.upsert_product("k1", changed)
    assert e.value.code == m.shared.ErrorCode.CONFLICT
    with pytest.raises(m.shared.ShopError) as e:
        catalog.upsert_product("", product)
    assert e.value.code == m.shared.ErrorCode.INVALID_ARGUMENT
    bad = m.Product(product_id="p2", skus=[
        m.SkuInfo(sku="P2", price=m.shared.Money(cents=-1, currency="CNY"))])
    with pytest.raises(m.shared.ShopError) as e:
        catalog.upsert_product("k2", bad)
    assert e.value.code == m.shared.ErrorCode.INVALID_ARGUMENT


def test_inventory_channels_reserve_confirm_release(shop):
    inv = shop.start("inventory")
    m = idl(shop, "inventory")
    ch, shared = m.Channel, m.shared
    level = inv.get_stock("TV55")
    assert level.total == 80 and level.unallocated == 20
    level = inv.allocate("a1", "TV55", ch.FLASH_SALE, 5, None)
    assert level.unallocated == 15
    level = inv.allocate("a2", "TV55", ch.FLASH_SALE, 10, ch.WEB)  # channel to channel
    flash = {c.channel: c for c in level.channels}[ch.FLASH_SALE]
    assert (flash.allocated, flash.available) == (15, 15)
    with pytest.raises(shared.InsufficientStock) as e:
        inv.reserve("r0", "TV55", ch.FLASH_SALE, 16, "o0")
    assert e.value.available == 15
    r1 = inv.reserve("r1", "TV55", ch.FLASH_SALE, 10, "o1")
    assert inv.reserve("r1", "TV55", ch.FLASH_SALE, 10, "o1") == r1  # replay
    r2 = inv.reserve("r2", "TV55", ch.FLASH_SALE, 5, "o2")
    with pytest.raises(shared.InsufficientStock):
        inv.reserve("r3", "TV55", ch.FLASH_SALE, 1, "o3")
    assert inv.confirm("c1", r1.reservation_id).status == m.ReservationStatus.CONFIRMED
    assert inv.confirm("c1b", r1.reservation_id).status == m.ReservationStatus.CONFIRMED
    with pytest.raises(shared.ShopError) as e:
        inv.release("x1", r1.reservation_id)
    assert e.value.code == shared.ErrorCode.INVALID_STATE
    assert inv.release("l2", r2.reservation_id).status == m.ReservationStatus.RELEASED
    flash = {c.channel: c for c in inv.get_stock("TV55").channels}[ch.FLASH_SALE]
    assert (flash.available, flash.reserved, flash.confirmed) == (5, 0, 10)
    for call in (lambda: inv.reserve("b1", "TV55", ch.WEB, 0, "o"),
                 lambda: inv.reserve("b2", "TV55", 99, 1, "o"),
                 lambda: inv.set_stock("b3", "beijing", "TV55", -1),
                 lambda: inv.set_stock("b4", "beijing", "TV55", 0)):  # below allocated
        with pytest.raises(shared.ShopError) as e:
            call()
        assert e.value.code == shared.ErrorCode.INVALID_ARGUMENT
    with pytest.raises(shared.NotFound):
        inv.reserve("b5", "NOPE", ch.WEB, 1, "o")
    with pytest.raises(shared.NotFound):
        inv.confirm("b6", "r-missing")


def _request(m, sku="TV55", quantity=1, channel=None, user="u1"):
    return m.CreateOrderRequest(user_id=user, lines=[m.LineItem(sku=sku, quantity=quantity)],
                                channel=channel or m.inventory.Channel.WEB,
                                address=m.shared.Address(recipient="Li", city="Beijing"))


def _web(inv, m, sku="TV55"):
    return {c.channel: c for c in inv.get_stock(sku).channels}[m.inventory.Channel.WEB]


def test_order_create_cancel_and_compensation(shop):
    shop.start("catalog")
    inv = shop.start("inventory")
    notify = shop.start("notify")
    order = shop.start("order")
    m = idl(shop, "order")
    shared = m.shared
    placed = order.create_order("c1", _request(m, quantity=2))
    assert placed.status == m.OrderStatus.CONFIRMED and placed.total.cents == 2 * 229900
    assert order.create_order("c1", _request(m, quantity=2)) == placed
    with pytest.raises(shared.ShopError) as e:
        order.create_order("c1", _request(m, quantity=3))
    assert e.value.code == shared.ErrorCode.CONFLICT
    assert _web(inv, m).reserved == 2
    assert [e.topic for e in _events(notify)] == ["order.created"]
    cancelled = order.cancel_order("x1", placed.order_id)
    assert cancelled.status == m.OrderStatus.CANCELLED
    assert order.cancel_order("x2", placed.order_id).status == m.OrderStatus.CANCELLED
    assert _web(inv, m).reserved == 0
    # Inventory refuses: no order is left behind.
    with pytest.raises(shared.InsufficientStock):
        order.create_order("c2", _request(m, quantity=10_000, user="u2"))
    assert order.list_orders("u2", 0, 10) == []
    with pytest.raises(shared.NotFound):
        order.create_order("c3", _request(m, sku="NOPE"))
    with pytest.raises(shared.ShopError) as e:
        order.create_order("c4", _request(m, quantity=0))
    assert e.value.code == shared.ErrorCode.INVALID_ARGUMENT
    with pytest.raises(shared.NotFound):
        order.cancel_order("x3", "o-missing")
    # A later step fails (Notify is down): the reservation is released.
    del shop.handlers["notify"]
    notify.close()
    with pytest.raises(shared.ShopError) as e:
        order.create_order("c5", _request(m, quantity=3, user="u5"))
    assert e.value.code == shared.ErrorCode.UNAVAILABLE
    assert _web(inv, m).reserved == 0
    assert [o.status for o in order.list_orders("u5", 0, 10)] == [m.OrderStatus.FAILED]


def _events(notify):
    rows = notify.db.query("SELECT topic, payload FROM events ORDER BY published_at_ms")
    return [type("E", (), {"topic": r["topic"], "payload": json.loads(r["payload"])}) for r in rows]


def test_flash_sale_tickets_and_purchase(shop):
    shop.start("catalog")
    inv = shop.start("inventory")
    shop.start("notify")
    shop.start("order")
    sale_svc = shop.start("flashsale")
    m = idl(shop, "flashsale")
    shared = m.shared
    price = shared.Money(cents=199900, currency="CNY")
    sale = sale_svc.register_sale("s1", "TV55", 3, price, 0, 0)
    assert sale_svc.register_sale("s1", "TV55", 3, price, 0, 0) == sale
    assert inv.get_stock("TV55").unallocated == 17
    with pytest.raises(shared.ShopError) as e:  # money that doesn't add up
        sale_svc.register_sale("s2", "TV55", 1, shared.Money(cents=999999, currency="CNY"), 0, 0)
    assert e.value.code == shared.ErrorCode.INVALID_ARGUMENT
    with pytest.raises(shared.ShopError) as e:
        sale_svc.register_sale("s3", "TV55", 0, price, 0, 0)
    assert e.value.code == shared.ErrorCode.INVALID_ARGUMENT
    tickets = [sale_svc.apply(sale.sale_id, f"user{i}") for i in range(3)]
    assert sale_svc.apply(sale.sale_id, "user0") == tickets[0]  # one ticket per user
    with pytest.raises(shared.ShopError) as e:
        sale_svc.apply(sale.sale_id, "user9")
    assert e.value.code == shared.ErrorCode.SOLD_OUT
    address = shared.Address(recipient="Wang")
    first = sale_svc.purchase(tickets[0].token, address)
    assert first.status in (m.PurchaseStatus.PENDING, m.PurchaseStatus.SUCCEEDED)
    done = wait_until(lambda: sale_svc.get_result(tickets[0].token).status
                      == m.PurchaseStatus.SUCCEEDED and sale_svc.get_result(tickets[0].token))
    assert sale_svc.purchase(tickets[0].token, address).order_id == done.order_id
    with pytest.raises(shared.ShopError) as e:
        sale_svc.purchase(tickets[0].token, shared.Address(recipient="Zhao"))
    assert e.value.code == shared.ErrorCode.CONFLICT
    with pytest.raises(shared.ShopError) as e:
        sale_svc.purchase("t-unknown", address)
    assert e.value.code == shared.ErrorCode.INVALID_TOKEN
    assert sale_svc.get_sale(sale.sale_id).sold == 1
    flash = {c.channel: c for c in inv.get_stock("TV55").channels}[m.shared and 3]
    assert flash.reserved == 1 and flash.available == 2


class Sink:
    """A subscriber that fails its first ``failures`` calls (for events of key ``key`` only,
    when given)."""

    def __init__(self, failures, key=None):
        self.failures = failures
        self.key = key
        self.seen = []

    def on_event(self, event):
        if self.failures > 0 and self.key in (None, event.key):
            self.failures -= 1
            raise RuntimeError("not yet")
        self.seen.append(event.id)


def test_notify_retries_until_delivered(shop):
    from services.notify.dispatcher import DeliverySettings

    sink = Sink(failures=3)
    shop.handlers["mailer"] = sink
    notify = shop.start("notify", settings=DeliverySettings(retry_base_ms=10, retry_cap_ms=20))
    m = idl(shop, "notify")
    sub = notify.subscribe("order.created", "mailer", "on_event", "")
    assert notify.subscribe("order.created", "mailer", "on_event", "") == sub
    with pytest.raises(m.shared.ShopError):
        notify.subscribe("order.created", "mailer", "no_such_method", "")
    with pytest.raises(m.shared.ShopError):
        notify.subscribe("order.created", "nobody", "on_event", "")
    ids = [notify.publish(f"p{i}", "order.created", json.dumps({"i": i}), "") for i in range(2)]
    assert notify.publish("p0", "order.created", json.dumps({"i": 0}), "") == ids[0]
    with pytest.raises(m.shared.ShopError):
        notify.publish("p0", "order.created", json.dumps({"i": 9}), "")
    with pytest.raises(m.shared.ShopError):
        notify.publish("p9", "order.created", "{not json", "")
    wait_until(lambda: sorted(sink.seen) == sorted(ids), timeout=10)
    # The dispatcher records a delivery after the call returns (on PostgreSQL that commit
    # yields to other greenlets): wait for the record, then check it.
    wait_until(lambda: notify.stats().delivered == 2, timeout=10)
    deliveries = notify.deliveries(sub.subscription_id, 0, 10)
    assert {d.status for d in deliveries} == {m.DeliveryStatus.DELIVERED}
    assert sum(d.attempts for d in deliveries) == 5
    stats = notify.stats()
    assert (stats.published, stats.delivered, stats.retries, stats.pending) == (2, 2, 3, 0)


def test_notify_keeps_the_order_of_a_key(shop):
    from services.notify.dispatcher import DeliverySettings

    sink = Sink(failures=3, key="order-1")  # the first event fails three times; the second
    # event of its key must wait for it, while another key's event goes ahead
    shop.handlers["mailer"] = sink
    notify = shop.start("notify", settings=DeliverySettings(retry_base_ms=10, retry_cap_ms=20))
    notify.subscribe("order.created", "mailer", "on_event", "")
    first = notify.publish("a", "order.created", "{}", "order-1")
    other = notify.publish("b", "order.created", "{}", "order-2")
    second = notify.publish("c", "order.created", "{}", "order-1")
    wait_until(lambda: len(sink.seen) == 3, timeout=10)
    assert sink.seen.index(first) < sink.seen.index(second)
    assert sink.seen[0] == other  # another key is not held up
