"""The alert state on disk: one JSON file, replaced atomically.

It holds, per rule, what ``policy.RuleState`` holds (recent evaluations, whether it fires and
since when, the notifications sent for ``limit`` and ``snooze``); the *outbox*: notifications
decided but not yet delivered to a webhook or a service; and the registry facts that are not in
the registry itself (the services seen, the expiry counts). A restarted monitor loads it, so it
neither repeats a notification it sent nor forgets one it owed (delivery is at least once; each
notification has a stable ``id`` for receivers to drop duplicates).

``save`` writes a temporary file in the same folder, fsyncs it and renames it over the old one,
so a crash leaves either the old state or the new one, never a torn file. A file that does not
parse is moved aside (``state.json.corrupt``) with one warning, and the monitor starts afresh.
Only the monitor's greenlets call it (one process, one thread).
"""

import json
import logging
import os
from pathlib import Path

from .policy import RuleState

log = logging.getLogger("soa.monitor")
VERSION = 1


class StateFile:
    def __init__(self, path):
        self.path = Path(path)

    def load(self):
        """``(rules, outbox, registry)``: rule name -> ``RuleState``, the undelivered entries,
        and the saved registry facts (``{"expired": {service: n}}``)."""
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            if not isinstance(data, dict) or data.get("version") != VERSION:
                raise ValueError("not a soa monitor state file")
            rules = {name: RuleState.from_dict(value) for name, value in data["rules"].items()}
            outbox = [entry for entry in data.get("outbox", []) if isinstance(entry, dict)]
            registry = data.get("registry", {})
            if not isinstance(registry, dict):
                raise ValueError("registry: not an object")
            return rules, outbox, registry
        except FileNotFoundError:
            return {}, [], {}
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
            aside = self.path.with_name(self.path.name + ".corrupt")
            log.warning("state %s unreadable (%s); moved to %s, starting afresh",
                        self.path, e, aside)
            try:
                os.replace(self.path, aside)
            except OSError:
                pass
            return {}, [], {}

    def save(self, rules, outbox, registry=None):
        data = {
            "version": VERSION,
            "rules": {name: state.to_dict() for name, state in rules.items()},
            "outbox": list(outbox),
            "registry": registry or {},
        }
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(data, f, allow_nan=False, separators=(",", ":"))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)
        try:
            fd = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError:
            pass
