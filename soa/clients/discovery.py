"""From the registry's snapshot to the Picker calls use: guard, filter, balance.

``Discovery`` subscribes to the resolver for one service. On every complete set it
1. applies the mass-removal guard. Removals are judged against the largest set the registry
   showed within the last ``removal_window`` seconds, not against the previous set, so leases
   that etcd revokes one at a time count together: when the registry's set is empty, or smaller
   than that largest set by more than ``mass_removal_share`` of it, every instance removed
   within the window (and not back) is *held* (kept in the set) and probed; one that does not
   answer is dropped, one that answers stays until it reappears in the registry (its next
   change) or a later probe (every ``probe_interval`` s) fails. The window defaults to the
   resolver's lease TTL x 1.5 + 1 s (16 s for the default 10 s TTL): leases are renewed every
   TTL/3 at different moments, so expiries after one outage are spread over up to one TTL;
   the margin covers etcd's own expiry checks. A shrink that is spread over a longer time than
   the window is accepted step by step. An instance that deregistered on purpose (its value was
   marked ``leaving`` first: a drain, a scale-down, a rolling restart) is never held;
2. applies the IDL policy: an instance whose ``idl_hash`` differs from the client's is used with
   one warning per instance (``warn``) or left out (``exclude``); an empty hash is unknown and used;
3. leaves out ejected instances (``eject``/``readmit``, driven by the ejection middleware);
4. builds a new immutable Picker and swaps it in with one assignment, so the very next pick sees
   the change. Instances that left get ``on_leave(address)`` (the client closes their pools).

The callbacks run in the resolver's watch greenlet; probes run in greenlets of their own.
``picker`` before the first listing waits for it (up to the resolver's dial timeout).
"""

import logging
import time
from collections import deque

import gevent

from soa.registry.instance import Instance
from soa.balancer.base import EmptyPicker, Picker
from soa.errors import NoInstanceAvailable

log = logging.getLogger("soa.client")

DEFAULT_LEASE_TTL = 10


class Discovery:
    def __init__(self, service, resolver, balancer, *, idl_hash="", idl_mismatch="warn",
                 mass_removal_share=0.5, prober=None, on_leave=None, probe_interval=1.0,
                 removal_window=None, clock=time.monotonic):
        self.service = service
        self.resolver = resolver
        self.balancer = balancer
        self.idl_hash = idl_hash
        self.idl_mismatch = idl_mismatch
        self.mass_removal_share = mass_removal_share
        self.prober = prober
        self.on_leave = on_leave
        self.probe_interval = probe_interval
        if removal_window is None:
            ttl = getattr(getattr(resolver, "config", None), "lease_ttl", DEFAULT_LEASE_TTL)
            removal_window = ttl * 1.5 + 1.0
        self.removal_window = removal_window
        self.clock = clock
        self._sizes = deque()  # (until, size): the registry's earlier set sizes, oldest first
        self._registry_size = 0  # the size of the registry's current set
        self._gone = {}  # address -> (instance, when): removed from the registry lately
        self.picker = _FirstListing(self)
        self.known = {}  # address -> Instance: the registry's set plus held instances
        self.held = {}  # address -> Instance kept through a suspicious mass removal
        self.ejected = set()
        self.ejections = 0  # instances ejected so far (soa_client_ejections_total)
        self.listed = False
        self._warned = set()
        self._addresses = {}  # id(instance) -> (instance, address)
        self._greenlets = set()
        self._closed = False

    def start(self):
        self.resolver.subscribe(self.service, self.update)
        return self

    def close(self):
        self._closed = True
        unsubscribe = getattr(self.resolver, "unsubscribe", None)
        if unsubscribe is not None:
            unsubscribe(self.service, self.update)
        gevent.killall(list(self._greenlets), block=False)

    @property
    def instances(self):
        """The instances the current picker chooses from."""
        return self.picker.instances

    # -- the registry's view ------------------------------------------------------------------

    def update(self, instances):
        """A complete set from the resolver (its watch greenlet)."""
        if self._closed:
            return
        now = self.clock()
        fresh = self._by_address(instances)
        known, held, gone = self.known, self.held, self._gone
        for address in [a for a in held if a in fresh]:
            del held[address]  # it is back in the registry: the registry is right again
        removed = [a for a in known if a not in fresh and a not in held]
        peak = self._peak(now, len(fresh))
        departed = getattr(self.resolver, "departed", None)
        departed = departed(self.service) if departed is not None else {}
        for address in removed:
            if address not in departed:  # a deregistration is no glitch: never held
                gone[address] = (known[address], now)
        for address in [a for a, (_, when) in gone.items()
                        if a in fresh or a in held or when < now - self.removal_window]:
            del gone[address]
        if gone and self.listed and self._is_mass_removal(len(fresh), peak):
            log.warning(
                "%s: the registry went from %d to %d instance(s) within %.0fs; keeping the %d"
                " removed until probes confirm", self.service, peak, len(fresh),
                self.removal_window, len(gone))
            for address, (instance, _) in gone.items():
                held[address] = instance
                self._spawn(self._probe_held, address)
            gone.clear()
            removed = []
        rewired = [a for a, i in fresh.items()
                   if (old := known.get(a)) is not None and old is not i and _wire(old) != _wire(i)]
        self.known = {**fresh, **held}
        self.listed = True
        if self.on_leave is not None:
            for address in rewired:  # same address, new protocol/transport: new connections
                self.on_leave(address)
        for address in removed:
            self.ejected.discard(address)
        self._rebuild()
        for address in removed:
            self._left(address)

    def _peak(self, now, size):
        """The largest set size the registry showed within the window, ``size`` (now) included."""
        sizes = self._sizes
        if self.listed and size != self._registry_size:
            sizes.append((now, self._registry_size))  # the previous set was current until now
        self._registry_size = size
        while sizes and sizes[0][0] < now - self.removal_window:
            sizes.popleft()
        return max([size, *(s for _, s in sizes)])

    def _by_address(self, instances):
        """``{address: instance}``. Unchanged instances are the same objects from one set to the
        next, so their addresses are remembered (by object, held strongly, so an id is never
        reused while remembered) instead of formatted again: a set of 1,000 costs no strings."""
        cache, fresh, remembered = self._addresses, {}, {}
        for instance in instances:
            entry = cache.get(id(instance))
            if entry is None or entry[0] is not instance:
                entry = (instance, instance.address)
            remembered[id(instance)] = entry
            fresh[entry[1]] = instance
        self._addresses = remembered
        return fresh

    def _is_mass_removal(self, size, peak):
        return peak > 0 and (size == 0 or (peak - size) / peak > self.mass_removal_share)

    def _probe_held(self, address):
        while not self._closed:
            instance = self.held.get(address)
            if instance is None:
                return
            if not self.prober(instance):
                if self.held.pop(address, None) is not None:
                    log.warning("%s: %s did not answer a probe; dropping it", self.service,
                                address)
                    self.known.pop(address, None)
                    self.ejected.discard(address)
                    self._rebuild()
                    self._left(address)
                return
            gevent.sleep(self.probe_interval)

    def _left(self, address):
        if self.on_leave is not None and address not in self.known:
            self.on_leave(address)

    # -- ejection -----------------------------------------------------------------------------

    def eject(self, address):
        """Leave ``address`` out of the picker. Refused (False) when it is unknown, already out,
        or the last usable instance: ejecting that would only turn slow calls into failures."""
        if address not in self.known or address in self.ejected:
            return False
        remaining = [i for a, i in self.known.items()
                     if a != address and a not in self.ejected and i.weight > 0]
        if not remaining:
            return False
        self.ejected.add(address)
        self.ejections += 1
        self._rebuild()
        return True

    def readmit(self, address):
        if address in self.ejected:
            self.ejected.discard(address)
            self._rebuild()

    # -- building the picker ------------------------------------------------------------------

    def _rebuild(self):
        ejected, mine = self.ejected, self.idl_hash
        chosen = tuple(
            i for a, i in self.known.items()  # the resolver's order (by address), then held ones
            if a not in ejected
            and (not i.idl_hash or not mine or i.idl_hash == mine or self._accept(i))
        )
        if chosen:
            self.picker = self.balancer.picker(chosen)
        elif self.known:
            self.picker = EmptyPicker(
                self.service,
                f"none of the {len(self.known)} registered instance(s) can take calls"
                " (IDL mismatch, weight 0 or ejected)")
        else:
            self.picker = EmptyPicker(self.service, "no instances registered")

    def _accept(self, instance):
        if not instance.idl_hash or not self.idl_hash or instance.idl_hash == self.idl_hash:
            return True
        mark = (instance.address, instance.idl_hash)
        exclude = self.idl_mismatch == "exclude"
        if mark not in self._warned:
            self._warned.add(mark)
            log.warning(
                "%s: %s serves IDL %s but this client has %s; %s", self.service,
                instance.address, instance.idl_hash, self.idl_hash,
                "excluding it (idl_mismatch: exclude)" if exclude else "using it anyway")
        return not exclude

    def _spawn(self, function, *args):
        greenlet = gevent.spawn(function, *args)
        self._greenlets.add(greenlet)
        greenlet.link(self._greenlets.discard)
        return greenlet


def _wire(instance):
    return instance.protocol, instance.transport


class _FirstListing(Picker):
    """The picker before the registry's first answer: waits for it, then defers to the real one."""

    def __init__(self, discovery):
        self.discovery = discovery

    def pick(self, call):
        d = self.discovery
        d.resolver.instances(d.service)
        if d.picker is self:
            if d.listed:
                d._rebuild()
            else:
                why = getattr(d.resolver, "last_error", lambda service: None)(d.service)
                raise NoInstanceAvailable(d.service, why or "the registry has not answered yet")
        return d.picker.pick(call)


class StaticResolver:
    """A Resolver over a fixed set (``soa call --address``, tests): ``instances``, ``subscribe``,
    ``unsubscribe``, ``set`` (publish a new complete set), ``close``."""

    def __init__(self, instances=()):
        self._sets = {}
        self._subscribers = {}
        for instance in instances:
            self._sets.setdefault(instance.service, []).append(instance)
        self._sets = {k: tuple(v) for k, v in self._sets.items()}

    @classmethod
    def of(cls, service, *addresses, **fields):
        out = []
        for address in addresses:
            host, _, port = address.rpartition(":")
            out.append(Instance(service=service, host=host.strip("[]"), port=int(port), **fields))
        return cls(out)

    def instances(self, service, wait=None):
        return self._sets.get(service, ())

    def subscribe(self, service, callback):
        self._subscribers.setdefault(service, []).append(callback)
        callback(self.instances(service))

    def unsubscribe(self, service, callback):
        callbacks = self._subscribers.get(service, [])
        if callback in callbacks:
            callbacks.remove(callback)

    def set(self, service, instances):
        self._sets[service] = tuple(instances)
        for callback in list(self._subscribers.get(service, ())):
            callback(self._sets[service])

    def close(self):
        self._subscribers.clear()
