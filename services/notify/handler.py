"""NotifyService handler: publish into the outbox, manage subscriptions, report deliveries."""

import json
import uuid

from services.errors import Errors
from services.idempotency import SCHEMA as IDEMPOTENCY_SCHEMA
from services.idempotency import Idempotency, now_ms
from services.storage import open_database
from soa import idl as idl_loader

from . import outbox
from .dispatcher import Counters, DeliverySettings, Dispatcher


class NotifyHandler:
    def __init__(self, context, *, settings=None):
        self.context = context
        self.idl = context.idl
        self.errors = Errors(context.idl)
        self.db = open_database(context, IDEMPOTENCY_SCHEMA + ";" + outbox.SCHEMA)
        self.idempotency = Idempotency(self.db, context.idl.NotifyService, self.errors)
        self.counters = Counters()
        self._clients = {}
        self.dispatcher = Dispatcher(self.db, settings or DeliverySettings(), self._event,
                                     self._deliver, self.counters).start()
        context.on_close(self.close)

    def close(self):
        self.dispatcher.stop()

    def ping(self):
        return "pong"

    def publish(self, idempotency_key, topic, payload, key):
        if not topic:
            raise self.errors.invalid("topic is required")
        if payload:
            try:
                json.loads(payload)
            except ValueError as e:
                raise self.errors.invalid(f"payload is not JSON: {e}") from e

        def work(tx):
            event_id = "e-" + uuid.uuid4().hex[:20]
            now = now_ms()
            tx.execute("INSERT INTO events (event_id, topic, payload, key, published_at_ms) "
                       "VALUES (?, ?, ?, ?, ?)", (event_id, topic, payload or "", key or "", now))
            outbox.fan_out(tx, event_id, topic, now)
            fresh.append(event_id)
            return event_id

        fresh = []
        event_id = self.idempotency.once("publish", idempotency_key, (topic, payload, key), work)
        self.counters.published += len(fresh)
        self.dispatcher.wake()
        return event_id

    def subscribe(self, topic, service_name, method, group):
        if not topic or not service_name or not method:
            raise self.errors.invalid("topic, service_name and method are required")
        self._check_sink(service_name, method)
        group = group or ""
        with self.db.transaction() as tx:
            row = tx.one("SELECT * FROM subscriptions WHERE topic = ? AND service_name = ? "
                         "AND method = ? AND grp = ?", (topic, service_name, method, group))
            if row is None:
                subscription_id = "s-" + uuid.uuid4().hex[:16]
                tx.execute("INSERT INTO subscriptions (subscription_id, topic, service_name, "
                           "method, grp, created_at_ms) VALUES (?, ?, ?, ?, ?, ?)",
                           (subscription_id, topic, service_name, method, group, now_ms()))
                row = tx.one("SELECT * FROM subscriptions WHERE subscription_id = ?",
                             (subscription_id,))
        return self._subscription(row)

    def unsubscribe(self, subscription_id):
        with self.db.transaction() as tx:
            if not tx.execute("DELETE FROM subscriptions WHERE subscription_id = ?",
                              (subscription_id,)):
                raise self.errors.not_found("subscription", subscription_id)
            tx.execute("DELETE FROM deliveries WHERE subscription_id = ? AND status = ?",
                       (subscription_id, outbox.PENDING))

    def subscriptions(self, topic):
        if topic:
            rows = self.db.query("SELECT * FROM subscriptions WHERE topic = ? "
                                 "ORDER BY created_at_ms, subscription_id", (topic,))
        else:
            rows = self.db.query("SELECT * FROM subscriptions ORDER BY created_at_ms, "
                                 "subscription_id")
        return [self._subscription(row) for row in rows]

    def ack(self, subscription_id, event_id):
        with self.db.transaction() as tx:
            found = tx.one("SELECT status FROM deliveries WHERE subscription_id = ? AND "
                           "event_id = ?", (subscription_id, event_id))
            if found is None:
                raise self.errors.not_found("delivery", f"{subscription_id}/{event_id}")
            if outbox.mark_delivered(tx, event_id, subscription_id):
                self.counters.delivered += 1

    def deliveries(self, subscription_id, offset, limit):
        if not 1 <= limit <= 1000 or offset < 0:
            raise self.errors.invalid("limit must be 1-1000 and offset >= 0")
        with self.db.snapshot() as tx:
            if tx.one("SELECT 1 FROM subscriptions WHERE subscription_id = ?",
                      (subscription_id,)) is None:
                raise self.errors.not_found("subscription", subscription_id)
            rows = tx.query("SELECT d.* FROM deliveries d JOIN events e ON e.event_id = d.event_id "
                            "WHERE d.subscription_id = ? ORDER BY e.published_at_ms DESC, "
                            "d.event_id DESC LIMIT ? OFFSET ?", (subscription_id, limit, offset))
        return [self.idl.Delivery(
            event_id=r["event_id"], subscription_id=r["subscription_id"], status=r["status"],
            topic=r["topic"], attempts=r["attempts"], last_attempt_at_ms=r["last_attempt_at_ms"],
            next_attempt_at_ms=r["next_attempt_at_ms"], last_error=r["last_error"]) for r in rows]

    def stats(self):
        with self.db.snapshot() as tx:
            pending = tx.one("SELECT COUNT(*) AS n FROM deliveries WHERE status = ?",
                             (outbox.PENDING,))["n"]
            subscriptions = tx.one("SELECT COUNT(*) AS n FROM subscriptions")["n"]
        c = self.counters
        return self.idl.Stats(published=c.published, delivered=c.delivered, pending=pending,
                              dead=c.dead, retries=c.retries, subscriptions=subscriptions)

    # -- internals

    def _check_sink(self, service_name, method):
        """The subscriber must be a service of soa.yaml whose IDL has ``method(Event)``."""
        services = getattr(self.context.config, "services", {})
        if service_name not in services:
            raise self.errors.invalid(f"unknown service {service_name!r}")
        service = services[service_name]
        module = idl_loader.load(service.idl)
        thrift_service = idl_loader.find_service(module, service.thrift_service)
        args = getattr(thrift_service, f"{method}_args", None) if thrift_service else None
        spec = list(args.thrift_spec.values()) if args is not None else []
        if len(spec) != 1 or getattr(spec[0][2], "__name__", "") != "Event":
            raise self.errors.invalid(
                f"{service_name}.{method} must exist and take exactly one shared.Event")

    def _subscription(self, row):
        return self.idl.Subscription(
            subscription_id=row["subscription_id"], topic=row["topic"],
            service_name=row["service_name"], method=row["method"], group=row["grp"],
            created_at_ms=row["created_at_ms"])

    def _event(self, row, attempt):
        return self.idl.shared.Event(
            id=row["event_id"], topic=row["topic"], payload=row["payload"], key=row["key"],
            published_at_ms=row["published_at_ms"], attempt=attempt,
            subscription_id=row["subscription_id"])

    def _deliver(self, service_name, method, event):
        client = self._clients.get(service_name)
        if client is None:
            client = self._clients[service_name] = self.context.client(service_name)
        getattr(client, method)(event)
