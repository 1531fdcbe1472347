"""``weighted_random``: an instance at random, with probability proportional to its weight."""

import bisect
import itertools
import random

from .base import Balancer, Picker, usable


class WeightedRandomPicker(Picker):
    __slots__ = ("_cumulative", "_total", "instances")

    def __init__(self, instances):
        self.instances = instances
        self._cumulative = tuple(itertools.accumulate(i.weight for i in instances))
        self._total = self._cumulative[-1]

    def pick(self, call, _random=random.random, _bisect=bisect.bisect_right):
        return self.instances[_bisect(self._cumulative, _random() * self._total)]


class WeightedRandom(Balancer):
    name = "weighted_random"

    def picker(self, instances):
        live, empty = usable(instances)
        return empty or WeightedRandomPicker(live)
