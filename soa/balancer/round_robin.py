"""``round_robin``: each usable instance in turn, ignoring weights (weight 0 still gets none)."""

import itertools
import random

from .base import Balancer, Picker, usable


class RoundRobinPicker(Picker):
    __slots__ = ("_n", "_next", "instances")

    def __init__(self, instances):
        self.instances = instances
        self._n = len(instances)
        # Start at a random place so that many clients don't all begin with the first instance.
        # itertools.count's __next__ is atomic under the GIL: no lock needed.
        self._next = itertools.count(random.randrange(self._n)).__next__

    def pick(self, call):
        return self.instances[self._next() % self._n]


class RoundRobin(Balancer):
    name = "round_robin"

    def picker(self, instances):
        live, empty = usable(instances)
        return empty or RoundRobinPicker(live)
