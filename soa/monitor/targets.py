"""Targets and registry facts: every instance under ``{prefix}/services/``, from one watch.

``RegistryTargets`` follows the registry (a ``PrefixWatch`` over every service), so an instance
that registers is scraped from the next evaluation on, without a restart. It also computes the
registry's own facts as series:

- ``soa_instances{service}`` (gauge): the instances registered now, for every service seen (kept
  in the state file, so across restarts too) and every service the rules name (so a service with
  none gives 0);
- ``soa_instance_up{service, address}`` (gauge): 1 while registered and its last scrape succeeded
  (or it serves no metrics: ``metrics_port`` 0), 0 while registered but its scrape failed;
- ``soa_instances_expired_total{service}`` (counter): instances that left without deregistering,
  counted from the monitor's first start (the count is kept in the state file). A deregistration
  first rewrites the value with ``"leaving": true`` (registry/SCHEMA.md); a key that goes without
  that mark went with its lease (expiry, or a revoke), or was deleted by hand (``soa registry
  rm``) while its lease was still alive, which is told apart by asking etcd whether the lease
  still exists and is not counted.

The watch greenlet only records changes; ``refresh()``, called from the monitor's loop, turns
departures into counts (the lease lookup is an etcd round trip, so it is not done in the watch).
"""

import json
import logging

from soa.registry.etcd import RETRYABLE
from soa.registry.instance import service_prefix
from soa.registry.resolver import PrefixWatch

from .series import COUNTER, GAUGE

log = logging.getLogger("soa.monitor")


class _MarkingWatch(PrefixWatch):
    """A PrefixWatch that also remembers, per key, its lease and whether it was marked leaving."""

    def __init__(self, *args):
        super().__init__(*args)
        self.leases = {}  # key (str) -> lease id
        self.leaving = set()  # keys whose last value was marked leaving

    def _put(self, kv):
        key = kv.key.decode("utf-8", "replace")
        self.leases[key] = kv.lease
        leaving = False
        if b'"leaving"' in kv.value:
            try:
                leaving = json.loads(kv.value).get("leaving") is True
            except (ValueError, AttributeError):
                pass
        if leaving:
            self.leaving.add(key)
        else:
            self.leaving.discard(key)
        return super()._put(kv)


class RegistryTargets:
    """``instances``: the current set (a tuple of registry ``Instance``); ``facts(up)``: the
    registry series. ``start()``/``stop()`` own the watch greenlet."""

    def __init__(self, connection, prefix, named_services=(), saved=None):
        self.connection = connection
        self.prefix = prefix.rstrip("/")
        self.watch = _MarkingWatch(connection, prefix, service_prefix(prefix))
        self.services = set(named_services)
        self.expired = {service: 0 for service in self.services}
        for service, n in ((saved or {}).get("expired") or {}).items():
            if isinstance(service, str) and isinstance(n, int) and n >= 0:
                self.services.add(service)
                self.expired[service] = n
        self._known = {}  # key -> Instance, as of the last refresh
        self._departed = []  # (key, instance, deregistered), not yet counted
        self.watch.subscribe(self._changed)

    def start(self):
        self.watch.start()

    def stop(self):
        self.watch.stop()

    def wait_ready(self, timeout):
        return self.watch.ready.wait(timeout)

    @property
    def instances(self):
        return self.watch.snapshot

    def _key(self, instance):
        return f"{service_prefix(self.prefix, instance.service)}{instance.address}"

    def _changed(self, snapshot):
        """Watch greenlet: note the departures, never block."""
        now = {self._key(i): i for i in snapshot}
        for key, instance in self._known.items():
            if key not in now:
                self._departed.append((key, instance, key in self.watch.leaving))
        self._known = now
        for instance in snapshot:
            self.services.add(instance.service)
            self.expired.setdefault(instance.service, 0)

    def refresh(self):
        """Monitor loop: classify the departures noted since the last call."""
        departed, self._departed = self._departed, []
        for key, instance, deregistered in departed:
            if deregistered:
                continue
            if self._lease_alive(self.watch.leases.get(key)):
                log.info("%s %s was deleted by hand", instance.service, instance.address)
                continue
            log.warning("%s %s left without deregistering (lease expired)",
                        instance.service, instance.address)
            self.expired[instance.service] = self.expired.get(instance.service, 0) + 1

    def _lease_alive(self, lease):
        if not lease:
            return False
        try:
            return self.connection.client().get_lease_info(lease).TTL > 0
        except RETRYABLE:
            return False

    def saved(self):
        """What the state file keeps: every service seen, with its expiry count."""
        return {"expired": dict(sorted(self.expired.items()))}

    def facts(self, up):
        """The registry series, as ``(name, labels, value, kind)``; ``up`` maps an instance's
        address to whether its last scrape succeeded (absent: not scraped, counts as up)."""
        counts = {service: 0 for service in self.services}
        out = []
        for instance in self.instances:
            counts[instance.service] = counts.get(instance.service, 0) + 1
            ok = up.get((instance.service, instance.address), True)
            out.append(("soa_instance_up",
                        {"service": instance.service, "address": instance.address},
                        1.0 if ok else 0.0, GAUGE))
        for service, n in counts.items():
            out.append(("soa_instances", {"service": service}, float(n), GAUGE))
            out.append(("soa_instances_expired_total", {"service": service},
                        float(self.expired.get(service, 0)), COUNTER))
        return out
