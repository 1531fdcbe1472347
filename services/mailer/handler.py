"""EventSink handler of the mailer service."""

import logging

import gevent

from services.idempotency import now_ms
from services.peers import Peers
from services.storage import open_database
from soa.backoff import Backoff

log = logging.getLogger("shop.mailer")
TOPICS = ("order.created", "order.cancelled")

SCHEMA = """
CREATE TABLE IF NOT EXISTS mails (
  event_id TEXT PRIMARY KEY,
  topic TEXT NOT NULL,
  payload TEXT NOT NULL,
  sent_at_ms INTEGER NOT NULL
)
"""


class MailerHandler:
    def __init__(self, context, *, subscribe=True):
        self.name = context.service.name
        self.db = open_database(context, SCHEMA)
        self.peers = Peers(context)
        self._subscriber = gevent.spawn(self._subscribe) if subscribe else None

    def ping(self):
        return "pong"

    def on_event(self, event):
        with self.db.transaction() as tx:
            fresh = tx.execute("INSERT OR IGNORE INTO mails (event_id, topic, payload, "
                               "sent_at_ms) VALUES (?, ?, ?, ?)",
                               (event.id, event.topic, event.payload or "", now_ms()))
        if fresh:
            log.info("mail for %s: %s", event.topic, event.payload)

    def sent(self):
        """How many distinct events were mailed (for tests and the demo)."""
        return self.db.query("SELECT COUNT(*) AS n FROM mails")[0]["n"]

    def _subscribe(self):
        backoff = Backoff(base=0.2, cap=2.0)
        for topic in TOPICS:
            while True:
                try:
                    self.peers.get("notify").subscribe(topic, self.name, "on_event", "")
                    break
                except Exception as e:  # noqa: BLE001 - Notify not up yet: keep trying for as long as we live
                    log.info("mailer: subscribing to %s failed, retrying: %s", topic, e)
                    gevent.sleep(backoff.next())
            backoff.reset()
