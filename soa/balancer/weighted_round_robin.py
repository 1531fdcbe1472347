"""``weighted_round_robin``: nginx's smooth weighted round robin, precomputed.

nginx keeps a running "current weight" per peer and mutates it on every pick. To keep the Picker
immutable and lock-free, the picker plays that algorithm once, at build time, over one full cycle
(the sum of the weights divided by their gcd), and then walks the resulting sequence with an atomic
counter. The order is exactly nginx's: weights 5,1,1 give a a b a c a a, never a long run of one
peer. A cycle longer than ``MAX_CYCLE`` picks is scaled down first (weights stay proportional to
within 1/``MAX_CYCLE``).
"""

import itertools
import math
import random
from functools import reduce

from .base import Balancer, Picker, usable

MAX_CYCLE = 65536


def smooth_sequence(weights):
    """Indices into ``weights`` in nginx's smooth order, for one full cycle."""
    g = reduce(math.gcd, weights)
    weights = [w // g for w in weights]
    total = sum(weights)
    if total == len(weights):  # all weights equal: the cycle is simply the instances in order
        return list(range(total))
    if total > MAX_CYCLE:
        weights = [max(1, round(w * MAX_CYCLE / total)) for w in weights]
        total = sum(weights)
    current = [0] * len(weights)
    out = []
    for _ in range(total):
        for i, w in enumerate(weights):
            current[i] += w
        best = max(range(len(weights)), key=current.__getitem__)
        current[best] -= total
        out.append(best)
    return out


class WeightedRoundRobinPicker(Picker):
    __slots__ = ("_n", "_next", "_sequence", "instances")

    def __init__(self, instances):
        self.instances = instances
        self._sequence = tuple(instances[i] for i in smooth_sequence([i.weight for i in instances]))
        self._n = len(self._sequence)
        self._next = itertools.count(random.randrange(self._n)).__next__

    def pick(self, call):
        return self._sequence[self._next() % self._n]


class WeightedRoundRobin(Balancer):
    name = "weighted_round_robin"

    def picker(self, instances):
        live, empty = usable(instances)
        return empty or WeightedRoundRobinPicker(live)
