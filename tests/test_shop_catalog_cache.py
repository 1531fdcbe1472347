"""The catalog's Redis read-through cache, through real `soa serve` catalog processes and real
redis-server processes: hits, exact invalidation, sharding by the ring, and outages that no call
notices."""

import gevent
import pytest
import redis

from services.catalog.cache import NAMESPACE, Cache
from services.fixtures import postgres_server, shop_backend  # noqa: F401 - fixtures
from services.seed import PRODUCTS
from services.testing import RunningShop
from soa.observe.scrape import scrape
from soa.testing.poll import wait_until
from soa.testing.redis_server import RedisServer

PRODUCT_IDS = [p[0] for p in PRODUCTS]
SKUS = [s[0] for p in PRODUCTS for s in p[3]]


@pytest.fixture
def redis_servers():
    servers = []

    def start(n):
        for _ in range(n):
            servers.append(RedisServer().start())
        return servers

    yield start
    for server in servers:
        server.remove()


def cached_shop(tmp_path, etcd_config, urls, backend=None):
    def settings(name):
        return {**(backend(name) if backend else {}), "cache": urls}
    return RunningShop(tmp_path, etcd_config, {"catalog": 1}, settings=settings)


def cache_counts(shop):
    """``{result: count}`` of shop_catalog_cache_total over every catalog instance."""
    totals = {}
    for instance in shop.clients.resolver().instances("catalog"):
        samples = scrape(instance.host, instance.metrics_port)
        for result in ("hit", "miss", "error"):
            totals[result] = totals.get(result, 0) + samples.total(
                "shop_catalog_cache_total", result=result)
    return totals


def keys_of(server):
    client = redis.Redis.from_url(server.url)
    try:
        return {k.decode()[len(NAMESPACE):] for k in client.keys(NAMESPACE + "*")}
    finally:
        client.close()


def repriced(catalog, m, product_id, cents, key):
    product = catalog.get_product(product_id)
    for info in product.skus:
        info.price = m.shared.Money(cents=cents, currency="CNY")
    catalog.upsert_product(key, product)


def test_reads_hit_the_cache_and_an_upsert_invalidates_exactly_its_keys(
        tmp_path, etcd_config, shop_backend, redis_servers):  # noqa: F811
    servers = redis_servers(2)
    urls = [s.url for s in servers]
    with cached_shop(tmp_path, etcd_config, urls, shop_backend) as shop:
        catalog, m = shop.client("catalog"), shop.idl("catalog")
        first = [catalog.get_product(p) for p in PRODUCT_IDS]
        prices = catalog.get_prices(SKUS + ["NO-SUCH-SKU"])
        assert sorted(prices) == sorted(SKUS)
        catalog.get_sku("TV55")
        catalog.get_sku("PHONE14-128-BLACK")
        before = cache_counts(shop)
        assert [catalog.get_product(p) for p in PRODUCT_IDS] == first
        assert catalog.get_prices(SKUS + ["NO-SUCH-SKU"]) == prices
        assert catalog.list_products(0, 10) == sorted(first, key=lambda p: p.product_id)
        after = cache_counts(shop)
        assert after["hit"] - before["hit"] == 2 * len(PRODUCT_IDS) + len(SKUS) + 1
        assert after["miss"] == before["miss"] and after["error"] == 0

        # Two shards, both used, every key on the shard the project's ring names.
        held = [keys_of(s) for s in servers]
        assert all(held) and not held[0] & held[1]
        ring = Cache(urls)
        for server, keys in zip(servers, held):
            assert {ring.shard_of(k).url for k in keys} == {server.url}
        everything = held[0] | held[1]
        phone = {"product:mi-phone-14", "sku:PHONE14-128-BLACK", "price:PHONE14-128-BLACK",
                 "price:PHONE14-256-WHITE"}
        assert phone <= everything and "price:NO-SUCH-SKU" in everything

        repriced(catalog, m, "mi-phone-14", 123400, "reprice-1")
        left = keys_of(servers[0]) | keys_of(servers[1])
        assert left == everything - phone  # the others stay cached
        assert {i.price.cents for i in catalog.get_product("mi-phone-14").skus} == {123400}
        assert catalog.get_prices(["PHONE14-128-BLACK"])["PHONE14-128-BLACK"].cents == 123400


def test_redis_stopped_mid_run_fails_no_call_and_is_used_again_when_back(
        tmp_path, etcd_config, redis_servers):
    (server,) = redis_servers(1)
    with cached_shop(tmp_path, etcd_config, [server.url]) as shop:
        catalog = shop.client("catalog")
        expected = catalog.get_product("mi-band-8")
        answers, failures = [], []

        def reader():
            while True:
                try:
                    answers.append(catalog.get_product("mi-band-8") == expected)
                    answers.append(bool(catalog.get_prices(["BAND8-BLACK"])))
                except Exception as e:  # noqa: BLE001 - counted and asserted on below
                    failures.append(repr(e))
                gevent.sleep(0)

        readers = [gevent.spawn(reader) for _ in range(4)]
        try:
            wait_until(lambda: len(answers) > 50)
            server.stop()
            wait_until(lambda: cache_counts(shop)["error"] > 0)
            during = len(answers)
            wait_until(lambda: len(answers) > during + 200)  # the database answers
            server.start()
            hits = cache_counts(shop)["hit"]
            wait_until(lambda: cache_counts(shop)["hit"] > hits + 50, timeout=15)
        finally:
            gevent.killall(readers)
        assert failures == [] and all(answers)
        assert "product:mi-band-8" in keys_of(server)


def test_a_write_during_an_outage_leaves_no_stale_value_after_it(
        tmp_path, etcd_config, shop_backend, redis_servers):  # noqa: F811
    (server,) = redis_servers(1)
    with cached_shop(tmp_path, etcd_config, [server.url], shop_backend) as shop:
        catalog, m = shop.client("catalog"), shop.idl("catalog")
        catalog.get_product("mi-tv-55")
        catalog.get_prices(["TV55"])
        assert {"product:mi-tv-55", "price:TV55"} <= keys_of(server)
        server.pause()  # frozen: it keeps the old values but answers nothing
        try:
            assert catalog.get_product("mi-tv-55").skus[0].price.cents == 229900
            wait_until(lambda: cache_counts(shop)["error"] > 0)
            repriced(catalog, m, "mi-tv-55", 99, "reprice-tv")
        finally:
            server.resume()
        assert "product:mi-tv-55" in keys_of(server)  # the stale value is still there...
        hits = cache_counts(shop)["hit"]
        seen = []

        def hit_again():
            seen.append(catalog.get_product("mi-tv-55").skus[0].price.cents)
            seen.append(catalog.get_prices(["TV55"])["TV55"].cents)
            return cache_counts(shop)["hit"] > hits + 10

        wait_until(hit_again, timeout=15)
        assert set(seen) == {99}  # ...but it was flushed before the shard served again


def test_the_cache_setting_takes_one_url_or_a_list_and_refuses_anything_else():
    from services.catalog.cache import cache_urls

    assert cache_urls({}) == ()
    assert cache_urls({"cache": "redis://h:1/0"}) == ("redis://h:1/0",)
    assert cache_urls({"cache": ["redis://a:1", "redis://b:2"]}) == ("redis://a:1", "redis://b:2")
    with pytest.raises(ValueError, match=r"^services\.catalog\.settings\.cache: expected "
                                         r"redis:// URLs, got 'http://h'$"):
        cache_urls({"cache": ["redis://a:1", "http://h"]})
