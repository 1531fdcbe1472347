"""Notifications as a soa service call: the shop's Notify hub, topic ``alerts``, configured
generically (``alerts.call: {service, method, topic}``)."""

import io
import json

from services.testing import RunningShop
from soa.monitor.monitor import Monitor
from soa.monitor.rules import load_rules
from soa.testing.poll import wait_until


def test_notifications_are_published_to_notify(tmp_path, etcd_config):
    rules = tmp_path / "rules.yaml"
    rules.write_text(f"""
state: {tmp_path}/state.json
call: {{service: notify, method: publish, topic: alerts}}
rules:
  - name: no-catalog
    expr: empty(soa_instance_up{{service="catalog"}})
    severity: critical
    message: "catalog has no instance"
""")
    with RunningShop(tmp_path / "shop", etcd_config, {"notify": 1}) as shop:
        notify = shop.client("notify", retries=3)
        stream = io.StringIO()
        monitor = Monitor(shop.config, load_rules(rules), stream=stream)
        monitor.start(ready_timeout=5, loop=False)
        try:
            (note,) = monitor.tick(1.0)
            assert note["message"] == "catalog has no instance"
            assert json.loads(stream.getvalue()) == note
            wait_until(lambda: notify.stats().published == 1, timeout=15,
                       message="the alert published to notify")
            wait_until(lambda: not monitor.outbox.entries, timeout=5)
        finally:
            monitor.stop()
        # the monitor published exactly this: a replay with the same idempotency key and
        # payload is accepted as the same event (another payload would be a CONFLICT)
        notify.publish(note["id"], "alerts", json.dumps(note, sort_keys=True), "no-catalog")
        assert notify.stats().published == 1
