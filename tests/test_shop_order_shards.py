"""Orders sharded by user: the bucket function and the id format, then 4 real shards behind real
order servers (SQLite files and PostgreSQL databases), each read directly afterwards."""

import pytest

from services.fixtures import postgres_server, shop_backend  # noqa: F401 - fixtures
from services.order import shards
from services.storage import open_url
from services.testing import RunningShop

N_SHARDS = 4
# (users, orders): PostgreSQL commits are slower here, so it gets fewer of them.
COUNTS = {"sqlite": (60, 200), "postgresql": (40, 80)}
SHOP = {"catalog": 1, "inventory": 1, "order": 2, "notify": 1}


def test_bucket_is_a_stable_hash():
    # Known vectors: the first 8 bytes of SHA-1, big-endian, mod 4096.
    assert [shards.bucket(u) for u in ("alice", "bob", "", "ünï")] == [3897, 3502, 2829, 1261]
    assert shards.BUCKETS == 4096


def test_buckets_map_to_contiguous_ranges():
    s = shards.Shards(["d0", "d1", "d2", "d3"])
    owners = [s.of_bucket(b) for b in range(shards.BUCKETS)]
    assert owners == sorted(owners) and set(owners) == {0, 1, 2, 3}
    assert [owners.count(i) for i in range(4)] == [1024] * 4
    assert s.for_user("alice") == "d3" and s.for_user("ünï") == "d1"


def test_order_ids_carry_the_bucket():
    order_id = shards.new_order_id("alice")
    assert order_id.startswith("o-f39-") and len(order_id) == len("o-f39-") + 20
    assert shards.order_bucket(order_id) == 3897
    s = shards.Shards(["d0", "d1", "d2", "d3"])
    assert s.for_order(order_id) == "d3"
    for bad in ("", "o-missing", "o-xyz-" + "0" * 20, "o-f39-" + "0" * 19, "o-f39-" + "g" * 20,
                "O-F39-" + "0" * 20, None):
        assert s.for_order(bad) is None, bad
    assert shards.Shards(["only"]).for_order("o-missing") == "only"  # one shard holds every id


@pytest.mark.parametrize("settings, message", [
    ({"shards": "sqlite:a.db"}, "expected a non-empty list"),
    ({"shards": []}, "expected a non-empty list"),
    ({"shards": ["sqlite:a.db", 3]}, "expected a non-empty list"),
    ({"shards": ["sqlite:a.db", "sqlite:a.db"]}, "appears twice"),
])
def test_bad_shard_settings_are_one_line(settings, message):
    with pytest.raises(ValueError, match=message) as e:
        shards.shard_urls(settings)
    assert str(e.value).startswith("services.order.settings.shards: ")


def test_without_shards_the_database_is_the_one_shard():
    assert shards.shard_urls({}) == ["sqlite:"]
    assert shards.shard_urls({"database": "sqlite:x.db"}) == ["sqlite:x.db"]
    assert shards.shard_urls({"database": "sqlite:x.db", "shards": ["sqlite:y.db"]}) \
        == ["sqlite:y.db"]


def _shard_urls(backend):
    if backend.server is None:
        return [f"sqlite:order-{i}.db" for i in range(N_SHARDS)]
    return [backend.url(f"order{i}") for i in range(N_SHARDS)]


def _rows(shop, urls, sql):
    out = []
    for url in urls:
        db = open_url(url, shop.data_root / "order", "order", "")
        try:
            out.append(db.query(sql))
        finally:
            db.close()
    return out


def test_orders_spread_over_four_shards(tmp_path, etcd_config,
        shop_backend):  # noqa: F811 - the imported fixture: SQLite and PostgreSQL
    urls = _shard_urls(shop_backend)

    def settings(name):
        return {"shards": urls} if name == "order" else shop_backend(name)

    with RunningShop(tmp_path, etcd_config, SHOP, settings=settings) as shop:
        orders = shop.client("order")
        m = shop.idl("order")
        shared = m.shared

        def request(user):
            return m.CreateOrderRequest(
                user_id=user, lines=[m.LineItem(sku="BAND8-BLACK", quantity=1)],
                channel=m.inventory.Channel.WEB, address=shared.Address(recipient=user))

        n_users, n_orders = COUNTS[shop_backend.name]
        users = [f"user-{i}" for i in range(n_users)]
        placed = {}
        for i in range(n_orders):
            user = users[i % n_users]
            order = orders.create_order(f"k-{i}", request(user))
            assert order.user_id == user and shards.order_bucket(order.order_id) \
                == shards.bucket(user)
            placed[order.order_id] = user

        # Each shard read directly: every shard holds orders, each user sits on one shard.
        per_shard = _rows(shop, urls, "SELECT order_id, user_id FROM orders")
        assert all(per_shard), [len(rows) for rows in per_shard]
        seen = {r["order_id"]: r["user_id"] for rows in per_shard for r in rows}
        assert seen == placed
        homes = {}
        for index, rows in enumerate(per_shard):
            for r in rows:
                homes.setdefault(r["user_id"], set()).add(index)
        assert all(len(h) == 1 for h in homes.values()), homes
        # Each idempotency key is recorded on exactly one shard.
        keys = [r["key"] for rows in _rows(shop, urls, "SELECT key FROM idempotency")
                for r in rows]
        assert sorted(keys) == sorted(f"k-{i}" for i in range(n_orders))

        # Every order is found by its id, and each user's list is complete.
        for order_id, user in placed.items():
            assert orders.get_order(order_id).user_id == user
        for user in users:
            listed = orders.list_orders(user, 0, 1000)
            assert {o.order_id for o in listed} == {o for o, u in placed.items() if u == user}

        # Malformed or unknown ids are NotFound, not a failure.
        for bad in ("o-missing", "o-fff-" + "0" * 20, "x"):
            with pytest.raises(shared.NotFound):
                orders.get_order(bad)
            with pytest.raises(shared.NotFound):
                orders.cancel_order(f"c-{bad}", bad)

        # A key is unique across shards: reused by a user on another shard, it is refused.
        a, b = next((a, b) for a in users for b in users
                    if shards.Shards(urls).for_user(a) != shards.Shards(urls).for_user(b))
        first = orders.create_order("shared", request(a))
        assert orders.create_order("shared", request(a)) == first
        with pytest.raises(shared.ShopError) as e:
            orders.create_order("shared", request(b))
        assert e.value.code == shared.ErrorCode.CONFLICT
        assert {o.order_id for o in orders.list_orders(b, 0, 1000)} \
            == {o for o, u in placed.items() if u == b}

        # Cancel finds the order's shard and records its key on the key's shard.
        cancelled = orders.cancel_order("cancel-1", first.order_id)
        assert cancelled.status == m.OrderStatus.CANCELLED
        assert orders.cancel_order("cancel-1", first.order_id) == cancelled
        assert orders.get_order(first.order_id).status == m.OrderStatus.CANCELLED
