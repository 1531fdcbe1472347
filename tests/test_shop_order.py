"""The order flow across real services: catalog, inventory, order (two processes), notify and
the mailer subscriber, and flash-sale purchases that become orders; idempotency and declared
errors over the wire; compensation when inventory refuses or a later step fails."""


from services.fixtures import postgres_server, shop_backend  # noqa: F401 - fixtures
from services.testing import RunningShop
from soa.clients.served import ServedBy
from soa.testing.poll import wait_until

SHOP = {"catalog": 1, "inventory": 1, "order": 2, "notify": 1, "mailer": 1, "flashsale": 1}


def _web(inv, sku):
    return {c.channel: c for c in inv.get_stock(sku).channels}[1]


def _mails(shop, backend):
    """Mails the mailer recorded, by topic, read from its own database on either backend."""
    from services.storage import open_url

    db = open_url(backend.url("mailer"), shop.data_root / "mailer", "mailer", "")
    try:
        rows = db.query("SELECT topic, COUNT(*) AS n FROM mails GROUP BY topic")
        return {r["topic"]: r["n"] for r in rows}
    except Exception:  # noqa: BLE001 - the table appears when the mailer starts
        return {}
    finally:
        db.close()


def _expect(code_or_cls, call, shared):
    try:
        call()
    except (shared.ShopError, shared.NotFound, shared.InsufficientStock) as e:
        if isinstance(code_or_cls, type):
            assert isinstance(e, code_or_cls), e
        else:
            assert isinstance(e, shared.ShopError) and e.code == code_or_cls, e
        return e
    raise AssertionError(f"expected {code_or_cls}")


def test_order_flow_across_services(tmp_path, etcd_config,
        shop_backend):  # noqa: F811 - the imported fixture: SQLite and PostgreSQL
    with RunningShop(tmp_path, etcd_config, SHOP, settings=shop_backend) as shop:
        peers = ServedBy()
        orders = shop.client("order", middleware=[peers])
        inv = shop.client("inventory")
        notify = shop.client("notify")
        m = shop.idl("order")
        shared, codes = m.shared, m.shared.ErrorCode
        wait_until(lambda: len(notify.subscriptions("")) == 2, timeout=15,
                   message="the mailer's subscriptions")
        catalog = shop.client("catalog")
        cm = shop.idl("catalog")
        assert len(catalog.list_products(0, 100)) == 4  # seeded on first start
        product = cm.Product(product_id="p1", title="P1", skus=[cm.SkuInfo(
            sku="P1-A", product_id="p1", price=shared.Money(cents=500, currency="CNY"))])
        catalog.upsert_product("u1", product)
        catalog.upsert_product("u1", product)
        product.title = "other"
        _expect(codes.CONFLICT, lambda: catalog.upsert_product("u1", product), shared)
        _expect(shared.NotFound, lambda: catalog.get_sku("NOPE"), shared)

        def request(user, sku="TV55", quantity=2):
            return m.CreateOrderRequest(
                user_id=user, lines=[m.LineItem(sku=sku, quantity=quantity)],
                channel=m.inventory.Channel.WEB, address=shared.Address(recipient=user))

        before = _web(inv, "TV55").reserved
        order = orders.create_order("k1", request("alice"))
        assert order.status == m.OrderStatus.CONFIRMED and order.total.cents == 2 * 229900
        assert _web(inv, "TV55").reserved == before + 2
        assert orders.create_order("k1", request("alice")) == order  # the other instance too
        assert len(peers.calls("order")) == 2
        _expect(codes.CONFLICT, lambda: orders.create_order("k1", request("alice", quantity=3)),
                shared)
        wait_until(lambda: _mails(shop, shop_backend).get("order.created") == 1,
                   message="order.created mail")

        cancelled = orders.cancel_order("x1", order.order_id)
        assert cancelled.status == m.OrderStatus.CANCELLED
        assert orders.cancel_order("x1", order.order_id) == cancelled
        assert _web(inv, "TV55").reserved == before
        wait_until(lambda: _mails(shop, shop_backend).get("order.cancelled") == 1,
                   message="cancel mail")

        # Inventory refuses: no order is left behind, nothing stays reserved.
        _expect(shared.InsufficientStock,
                lambda: orders.create_order("k2", request("bob", quantity=10_000)), shared)
        assert orders.list_orders("bob", 0, 10) == []
        assert _web(inv, "TV55").reserved == before
        _expect(shared.NotFound, lambda: orders.create_order("k3", request("bob", sku="NOPE")),
                shared)
        _expect(codes.INVALID_ARGUMENT,
                lambda: orders.create_order("k4", request("bob", quantity=0)), shared)
        _expect(shared.NotFound, lambda: orders.cancel_order("x2", "o-missing"), shared)
        _expect(shared.NotFound, lambda: orders.get_order("o-missing"), shared)

        # A flash-sale purchase becomes an order, once per token.
        sales = shop.client("flashsale")
        fm = shop.idl("flashsale")
        sale = sales.register_sale("sale", "TV55", 2, shared.Money(cents=199900, currency="CNY"),
                                   0, 0)
        ticket = sales.apply(sale.sale_id, "carol")
        address = shared.Address(recipient="carol")
        sales.purchase(ticket.token, address)
        done = wait_until(lambda: (r := sales.get_result(ticket.token)).status
                          == fm.PurchaseStatus.SUCCEEDED and r, message="purchase result")
        placed = orders.get_order(done.order_id)
        assert placed.flash_sale_token == ticket.token and placed.channel == 3
        assert sales.purchase(ticket.token, address).order_id == done.order_id
        _expect(codes.CONFLICT, lambda: sales.purchase(ticket.token, shared.Address()), shared)
        assert sales.get_sale(sale.sale_id).sold == 1
        wait_until(lambda: _mails(shop, shop_backend).get("order.created") == 2,
                   message="flash-sale mail")

        # A later step fails (Notify is gone): the reservation is released, the order FAILED.
        stopping = shop.children("notify")
        killed = shop.shop.terminate(stopping, timeout=15)
        assert not killed, "notify did not stop on SIGTERM:\n" + _log_tail(stopping[0])
        wait_until(lambda: not [i for i in shop.shop.registered() if i.service == "notify"])
        reserved = _web(inv, "TV55").reserved
        _expect(codes.UNAVAILABLE, lambda: orders.create_order("k5", request("dave")), shared)
        assert _web(inv, "TV55").reserved == reserved
        assert [o.status for o in orders.list_orders("dave", 0, 10)] == [m.OrderStatus.FAILED]


def _log_tail(child, lines=40):
    return "\n".join(child.log_path.read_text(errors="replace").splitlines()[-lines:])
