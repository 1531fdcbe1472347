"""BigTap under a burst: 2000 applications from 200 greenlets against two flashsale processes
sharing their database never issue more tickets than units, nor two tickets to one user."""

import gevent.pool

from services.fixtures import postgres_server, shop_backend  # noqa: F401 - fixtures
from services.testing import RunningShop
from soa.clients.served import ServedBy

UNITS = 150
USERS = 800
APPLICATIONS = 2000


def test_burst_of_applications_never_oversells(tmp_path, etcd_config,
        shop_backend):  # noqa: F811 - the imported fixture: SQLite and PostgreSQL
    with RunningShop(tmp_path, etcd_config, {"catalog": 1, "inventory": 1, "flashsale": 2},
                     settings=shop_backend) as shop:
        peers = ServedBy()
        sales = shop.client("flashsale", middleware=[peers])
        inv = shop.client("inventory")
        m = shop.idl("flashsale")
        shared = m.shared
        price = shared.Money(cents=19900, currency="CNY")
        before = inv.get_stock("BAND8-BLACK").unallocated
        sale = sales.register_sale("sale-1", "BAND8-BLACK", UNITS, price, 0, 0)
        assert sales.register_sale("sale-1", "BAND8-BLACK", UNITS, price, 0, 0) == sale
        assert inv.get_stock("BAND8-BLACK").unallocated == before - UNITS  # drawn once
        tokens = {}  # user -> set of tokens received
        sold_out = []
        other = []

        def apply(i):
            user = f"user-{i % USERS}"
            try:
                ticket = sales.apply(sale.sale_id, user)
            except shared.ShopError as e:
                (sold_out if e.code == shared.ErrorCode.SOLD_OUT else other).append(e)
                return
            except Exception as e:  # noqa: BLE001 - asserted on below
                other.append(e)
                return
            assert ticket.user_id == user and ticket.sale_id == sale.sale_id
            tokens.setdefault(user, set()).add(ticket.token)

        gevent.pool.Pool(200).map(apply, range(APPLICATIONS))
        assert other == []
        assert len(peers.calls("flashsale")) == 2, peers.calls("flashsale")
        assert all(len(held) == 1 for held in tokens.values())  # one ticket per user
        issued = {t for held in tokens.values() for t in held}
        assert len(issued) == UNITS  # no more tickets than units, and none wasted
        assert len(sold_out) > 0
        final = sales.get_sale(sale.sale_id)
        assert final.tickets_issued == UNITS
        assert final.status == m.SaleStatus.SOLD_OUT
        flash = {c.channel: c for c in inv.get_stock("BAND8-BLACK").channels}[3]
        assert flash.allocated == UNITS and flash.available == UNITS
        # Bad input and unknown things get declared errors with codes.
        for call, code in ((lambda: sales.register_sale("s2", "BAND8-BLACK", 0, price, 0, 0),
                            shared.ErrorCode.INVALID_ARGUMENT),
                           (lambda: sales.register_sale(
                               "s3", "BAND8-BLACK", 1, shared.Money(cents=10**9, currency="CNY"),
                               0, 0), shared.ErrorCode.INVALID_ARGUMENT),
                           (lambda: sales.register_sale("s4", "NOPE", 1, price, 0, 0),
                            shared.ErrorCode.NOT_FOUND),
                           (lambda: sales.register_sale("sale-1", "BAND8-BLACK", 2, price, 0, 0),
                            shared.ErrorCode.CONFLICT),
                           (lambda: sales.purchase("t-unknown", shared.Address()),
                            shared.ErrorCode.INVALID_TOKEN)):
            try:
                call()
            except shared.ShopError as e:
                assert e.code == code
            else:
                raise AssertionError(f"expected {code}")
