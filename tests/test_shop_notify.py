"""Notify loses nothing: events published while the subscriber is down survive a SIGKILL of
Notify, and after a restart every one is delivered (at least once) through soa."""

import json
import signal
import sqlite3

from services.fixtures import postgres_server, shop_backend  # noqa: F401 - fixtures
from services.testing import RunningShop
from soa.testing.poll import wait_until

EVENTS = 20


def _mailed(shop):
    path = shop.data_root / "mailer" / "mailer.db"
    if not path.exists():
        return 0
    with sqlite3.connect(path) as db:
        return db.execute("SELECT COUNT(*) FROM mails").fetchone()[0]


def test_events_survive_sigkill_of_notify(tmp_path, etcd_config,
        shop_backend):  # noqa: F811 - the imported fixture: SQLite and PostgreSQL
    with RunningShop(tmp_path, etcd_config, {"notify": 1}, settings=shop_backend) as shop:
        notify = shop.client("notify", retries=3)
        m = shop.idl("notify")
        sub = notify.subscribe("order.created", "mailer", "on_event", "")
        ids = [notify.publish(f"k{i}", "order.created", json.dumps({"order_id": f"o{i}"}),
                              f"o{i}") for i in range(EVENTS)]
        assert len(set(ids)) == EVENTS
        assert notify.publish("k0", "order.created", json.dumps({"order_id": "o0"}), "o0") \
            == ids[0]

        def attempted():
            page = notify.deliveries(sub.subscription_id, 0, 1000)
            return (len(page) == EVENTS and all(d.attempts >= 1 and d.last_error for d in page)
                    and page)

        pending = wait_until(attempted, timeout=15, message="failed first attempts")
        assert {d.status for d in pending} == {m.DeliveryStatus.PENDING}
        assert all(d.last_error for d in pending)  # the mailer is down

        (first,) = shop.children("notify")
        first.proc.send_signal(signal.SIGKILL)
        first.proc.wait(10)
        shop.start_service("notify", index=1)  # same database file, new process
        shop.start_service("mailer")

        wait_until(lambda: _mailed(shop) == EVENTS, timeout=30, message="every event mailed")
        def all_delivered():
            page = notify.deliveries(sub.subscription_id, 0, 1000)
            return all(d.status == m.DeliveryStatus.DELIVERED for d in page) and page

        delivered = wait_until(all_delivered, timeout=10, message="deliveries marked DELIVERED")
        assert sorted(d.event_id for d in delivered) == sorted(ids)
        assert notify.stats().pending == 0
