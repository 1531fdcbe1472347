"""The shop's storage seam on a real PostgreSQL server: gevent cooperation, the SQL dialect,
and the oversell guarantee with two handlers (two pools, as two processes) on one database."""

import time

import gevent
import gevent.event
import pytest

from services.fixtures import postgres_server  # noqa: F401 - fixture
from services.postgres import translate, translate_schema
from services.storage import SqliteDatabase, open_url
from services.testing import StandInShop
from soa.testing.poll import wait_until


def test_translate_turns_the_shops_sqlite_into_postgresql():
    assert translate("SELECT * FROM t WHERE a = ? AND b LIKE 'x%'") == \
        "SELECT * FROM t WHERE a = %s AND b LIKE 'x%%'"
    assert translate("INSERT OR IGNORE INTO t (a) VALUES (?)") == \
        "INSERT INTO t (a) VALUES (%s) ON CONFLICT DO NOTHING"
    assert translate("SELECT 1 WHERE e2.rowid < e.rowid") == "SELECT 1 WHERE e2.seq < e.seq"
    assert translate_schema("a INTEGER NOT NULL, b BLOB /*pg:, seq BIGSERIAL*/") == \
        "a BIGINT NOT NULL, b BYTEA , seq BIGSERIAL"


def test_database_urls(tmp_path):
    db = open_url("sqlite:", tmp_path, "svc", "")
    assert isinstance(db, SqliteDatabase) and db.path == tmp_path / "svc.db"
    db.close()
    db = open_url("sqlite:other.db", tmp_path, "svc", "")
    assert db.path == tmp_path / "other.db"
    db.close()
    with pytest.raises(ValueError, match="expected sqlite: or postgresql://"):
        open_url("mysql://u:secret@h/db", tmp_path, "svc", "")


def test_pg_sleep_does_not_stop_other_greenlets_serving(tmp_path, postgres_server):  # noqa: F811
    url = postgres_server.create_database("coop")
    shop = StandInShop(tmp_path, settings=lambda name: {"database": url})
    catalog = shop.start("catalog")
    try:
        sleeper = gevent.spawn(catalog.db.query, "SELECT pg_sleep(1)")
        wait_until(lambda: catalog.db.query(
            "SELECT count(*) AS n FROM pg_stat_activity WHERE state = 'active'"
            " AND query LIKE 'SELECT pg_sleep%'")[0]["n"] == 1, timeout=5,
            message="pg_sleep running")
        served, started = 0, time.monotonic()
        while not sleeper.ready():
            assert catalog.get_product("mi-tv-55").title == "Mi TV 55"
            served += 1
            gevent.sleep(0)
        sleeper.get()
        assert time.monotonic() - started >= 0.8
        assert served >= 50, f"only {served} calls served while pg_sleep(1) ran"
    finally:
        shop.close()


def test_concurrent_reserves_on_two_handlers_never_oversell(tmp_path, postgres_server):  # noqa: F811
    url = postgres_server.create_database("oversell")
    shops = [StandInShop(tmp_path / str(i), settings=lambda name: {"database": url})
             for i in range(2)]
    handlers = [s.start("inventory") for s in shops]
    ch = shops[0].context("inventory").idl.Channel
    errors = shops[0].context("inventory").idl.shared
    try:
        available = {c.channel: c for c in handlers[0].get_stock("TV55").channels}[ch.WEB]
        units = available.available

        def buyer(i):
            try:
                handlers[i % 2].reserve(f"k{i}", "TV55", ch.WEB, 1, f"o{i}")
                return 1
            except errors.InsufficientStock:
                return 0

        jobs = [gevent.spawn(buyer, i) for i in range(units + 20)]
        gevent.joinall(jobs, raise_error=True)
        assert sum(j.value for j in jobs) == units
        web = {c.channel: c for c in handlers[1].get_stock("TV55").channels}[ch.WEB]
        assert (web.available, web.reserved) == (0, units)
    finally:
        for s in shops:
            s.close()


def test_service_settings_reach_the_handler_untouched_and_frozen():
    from soa.config import parse_config
    from soa.errors import ConfigError

    text = ("services:\n  catalog:\n    idl: idl/catalog.thrift\n"
            "    handler: services.catalog.handler:CatalogHandler\n    settings: {S}\n")
    from services.testing import ROOT as root
    config = parse_config(text.replace("{S}", "{database: 'sqlite:x.db', shards: [a, b]}"),
                          root=root)
    settings = config.service("catalog").settings
    assert settings == {"database": "sqlite:x.db", "shards": ("a", "b")}
    with pytest.raises(TypeError):
        settings["database"] = "other"
    with pytest.raises(ConfigError, match="services.catalog.settings: expected a mapping"):
        parse_config(text.replace("{S}", "[1]"), root=root)


def test_a_greenlet_killed_waiting_for_the_write_lock_stops_and_the_pool_lives_on(
        tmp_path, postgres_server):  # noqa: F811
    """Notify's delivery loop is killed on close while it may wait for the write lock: the
    kill must end the loop (the rollback's "command in progress" error must not replace the
    GreenletExit, or the loop logs it and goes on), and the database must serve after it."""
    url = postgres_server.create_database("killed")
    shop = StandInShop(tmp_path, settings=lambda name: {"database": url})
    notify = shop.start("notify")
    release = gevent.event.Event()
    try:
        def hold_the_lock():
            with notify.db.transaction():
                release.wait()

        holder = gevent.spawn(hold_the_lock)
        waiting = ("SELECT count(*) AS n FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
                   " AND query LIKE 'SELECT pg_advisory_xact_lock%'")
        wait_until(lambda: notify.db.query(waiting)[0]["n"] >= 1, timeout=10,
                   message="the delivery loop waiting for the write lock")
        with gevent.Timeout(10, AssertionError("stopping the delivery loop hung")):
            notify.dispatcher.stop()
        release.set()
        holder.get(timeout=10)
        wait_until(lambda: notify.db.query(waiting)[0]["n"] == 0, timeout=10,
                   message="the killed waiter's session gone")
        with notify.db.transaction() as tx:
            assert tx.one("SELECT 1 AS one")["one"] == 1
    finally:
        release.set()
        shop.close()
