"""Notifications: what one says (``build``), and the sinks that carry it.

A notification is one JSON object (README "Alerting" documents every field). The sinks:

- ``stdout`` (one JSON line per notification) or ``log`` (one log record), synchronous;
- a webhook: HTTP POST of the JSON, 2xx is delivered, anything else is retried with jittered
  backoff (``retries`` times), then dropped with an error in the log;
- a soa service call: ``alerts.call: {service, method, topic, args}`` calls that method with
  arguments rendered from templates (by default a ``publish(idempotency_key, topic, payload, key)``
  shape, with the notification's id, the topic, its JSON and the rule's name), retried likewise.

``Outbox`` delivers the entries of the monitor's on-disk outbox (see ``state``): one greenlet per
sink, in order; an entry leaves the outbox when delivered or dropped, and ``on_change`` is called
so the monitor saves the state.
"""

import json
import logging
import math
import re
import sys
import urllib.request

import gevent
import gevent.event

from soa.backoff import Backoff

from .evaluate import Vector

log = logging.getLogger("soa.monitor")


def _number(value):
    return None if value is None or math.isnan(value) or math.isinf(value) else value


def build(rule, status, state, value, now):
    """The notification for ``rule`` turning ``status`` ("firing" | "resolved")."""
    series = []
    scalar = None
    if isinstance(value, Vector):
        series = [{"labels": dict(labels), "value": _number(v)}
                  for labels, v in sorted(value.items())]
        if len(series) == 1:
            scalar = series[0]["value"]
    elif value is not None:
        scalar = _number(value)
    suffix = "resolved" if status == "resolved" else str(state.sequence)
    note = {
        "id": f"{rule.name}:{state.episode}:{suffix}",
        "rule": rule.name,
        "status": status,
        "severity": rule.severity,
        "expr": rule.expr,
        "value": scalar,
        "series": series,
        "started_at": state.since,
        "at": now,
        "episode": state.episode,
        "sequence": state.sequence,
    }
    note["message"] = render(rule.message, note)
    return note


def _series_text(note):
    parts = []
    for s in note["series"]:
        labels = ",".join(f"{k}={v}" for k, v in sorted(s["labels"].items()))
        parts.append(f"{{{labels}}}={_show(s['value'])}")
    return " ".join(parts) or _show(note["value"])


def _show(value):
    if value is None:
        return "-"
    return str(int(value)) if float(value).is_integer() else f"{value:.4g}"


def render(template, note, extra=None):
    """Fill ``{rule}``, ``{value}``, ``{label:NAME}`` ... (rules.PLACEHOLDERS) from ``note``."""
    first = note["series"][0]["labels"] if note["series"] else {}

    def one(m):
        key = m.group(1)
        if extra and key in extra:
            return extra[key]
        if key.startswith("label:"):
            return str(first.get(key[6:], ""))
        if key == "value":
            return _show(note["value"])
        if key == "series":
            return _series_text(note)
        value = note.get(key)
        return "" if value is None else str(value)

    return re.sub(r"\{([^{}]*)\}", one, template)


class StreamSink:
    name = "stdout"

    def __init__(self, stream=None):
        self.stream = stream or sys.stdout

    def deliver(self, note):
        self.stream.write(json.dumps(note, sort_keys=True) + "\n")
        self.stream.flush()


class LogSink:
    name = "log"

    def deliver(self, note):
        level = logging.INFO if note["status"] == "resolved" else logging.WARNING
        log.log(level, "alert %s %s [%s]: %s", note["rule"], note["status"], note["severity"],
                note["message"])


class WebhookSink:
    def __init__(self, webhook, index=0):
        self.webhook = webhook
        self.retries = webhook.retries
        self.name = f"webhook[{index}]"

    def deliver(self, note):
        """Raises on anything but a 2xx answer."""
        body = json.dumps(note, sort_keys=True).encode("utf-8")
        request = urllib.request.Request(self.webhook.url, data=body, method="POST", headers={
            "Content-Type": "application/json", "User-Agent": "soa-monitor"})
        with urllib.request.urlopen(request, timeout=self.webhook.timeout) as response:  # noqa: S310
            response.read(65536)


class CallSink:
    """Calls ``call.service``'s ``call.method`` through a soa client (built on first use)."""

    def __init__(self, call, config):
        self.call = call
        self.config = config
        self.retries = call.retries
        self.name = f"call[{call.service}.{call.method}]"
        self._client = None

    def deliver(self, note):
        if self._client is None:
            import soa

            self._client = soa.client(self.call.service, self.config, retries=0)
        extra = {"topic": self.call.topic, "json": json.dumps(note, sort_keys=True)}
        args = {name: render(t, note, extra) for name, t in self.call.args.items()}
        self._client.call(self.call.method, **args)

    def close(self):
        if self._client is not None:
            self._client.close()


class Outbox:
    """Delivers ``entries`` (the state's outbox list, shared): ``{"sink", "note", "attempts"}``."""

    def __init__(self, sinks, entries, on_change):
        self.sinks = {sink.name: sink for sink in sinks}
        self.entries = entries
        self.on_change = on_change
        self._wake = {name: gevent.event.Event() for name in self.sinks}
        self._greenlets = []

    def start(self):
        self._greenlets = [gevent.spawn(self._run, name) for name in self.sinks]
        for event in self._wake.values():
            event.set()

    def stop(self):
        gevent.killall(self._greenlets, timeout=2)
        for sink in self.sinks.values():
            if hasattr(sink, "close"):
                sink.close()

    def submit(self, note):
        """Queue ``note`` for every sink (the caller saves the state before it is delivered)."""
        for name in self.sinks:
            self.entries.append({"sink": name, "note": note, "attempts": 0})

    def wake(self):
        for event in self._wake.values():
            event.set()

    def pending(self, sink_name=None):
        return [e for e in self.entries if sink_name is None or e["sink"] == sink_name]

    def _run(self, name):
        sink, wake = self.sinks[name], self._wake[name]
        backoff = Backoff(base=0.2, cap=5.0)
        while True:
            wake.wait()
            wake.clear()
            while True:
                entry = next((e for e in self.entries if e["sink"] == name), None)
                if entry is None:
                    break
                try:
                    sink.deliver(entry["note"])
                    backoff.reset()
                except Exception as e:  # noqa: BLE001 -- every failure is retried, then logged
                    entry["attempts"] += 1
                    if entry["attempts"] <= sink.retries:
                        delay = backoff.next()
                        log.warning("%s: delivering %s failed (%s); retry %d in %.2fs", name,
                                    entry["note"]["id"], e, entry["attempts"], delay)
                        self.on_change()
                        gevent.sleep(delay)
                        continue
                    log.error("%s: dropping %s after %d attempts: %s", name,
                              entry["note"]["id"], entry["attempts"], e)
                    backoff.reset()
                self.entries.remove(entry)
                self.on_change()
