"""``least_inflight``: power of two random choices on calls in flight; latency EWMA breaks ties.

The picker draws two distinct usable instances at random and takes the one with fewer calls in
flight; on a tie, the one with the lower latency EWMA. Load lives in an ``EndpointLoad`` owned by
the client (the transport updates it around every attempt), so the Picker stays immutable while
the numbers it reads move. Weights other than 0 are not used by this balancer.
"""

import random

from .base import Balancer, Picker, usable


class EndpointLoad:
    """Calls in flight and a latency EWMA per address. Updated by the client's transport.

    Plain dicts mutated from greenlets of one thread: every update is a single bytecode-level
    operation sequence with no yield in between, so no lock is needed under gevent.
    """

    __slots__ = ("alpha", "inflight", "latency")

    def __init__(self, alpha=0.3):
        self.inflight = {}
        self.latency = {}
        self.alpha = alpha

    def start(self, address):
        self.inflight[address] = self.inflight.get(address, 0) + 1

    def finish(self, address, seconds):
        self.inflight[address] = self.inflight.get(address, 1) - 1
        if seconds is not None:
            old = self.latency.get(address)
            self.latency[address] = (
                seconds if old is None else old + self.alpha * (seconds - old)
            )

    def forget(self, address):
        self.inflight.pop(address, None)
        self.latency.pop(address, None)


class LeastInflightPicker(Picker):
    __slots__ = ("_addresses", "_load", "_n", "instances")

    def __init__(self, instances, load):
        self.instances = instances
        self._addresses = tuple(i.address for i in instances)
        self._n = len(instances)
        self._load = load

    def pick(self, call, _randrange=random.randrange):
        n = self._n
        if n == 1:
            return self.instances[0]
        a = _randrange(n)
        b = _randrange(n - 1)
        if b >= a:
            b += 1
        inflight = self._load.inflight
        addr_a, addr_b = self._addresses[a], self._addresses[b]
        fa, fb = inflight.get(addr_a, 0), inflight.get(addr_b, 0)
        if fa < fb:
            return self.instances[a]
        if fb < fa:
            return self.instances[b]
        latency = self._load.latency
        return self.instances[a if latency.get(addr_a, 0.0) <= latency.get(addr_b, 0.0) else b]


class LeastInflight(Balancer):
    name = "least_inflight"
    options = ("load",)

    def __init__(self, load=None):
        self.load = load if load is not None else EndpointLoad()

    def picker(self, instances):
        live, empty = usable(instances)
        return empty or LeastInflightPicker(live, self.load)
