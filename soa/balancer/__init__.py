"""Balancers: turn a set of instances into an immutable Picker that chooses one per call.

A ``Balancer`` has a ``name`` and ``picker(instances) -> Picker``; ``Picker.pick(call)`` returns
an ``Instance``. A new Picker is built on every change of the set, so picking takes no locks.
``by_name(name, **options)`` builds one of the balancers named in ``soa.config.BALANCERS``.
"""

from .base import Balancer, Picker, usable
from .consistent_hash import ConsistentHash
from .least_inflight import EndpointLoad, LeastInflight
from .round_robin import RoundRobin
from .weighted_random import WeightedRandom
from .weighted_round_robin import WeightedRoundRobin

BALANCERS = {
    cls.name: cls
    for cls in (RoundRobin, WeightedRoundRobin, WeightedRandom, LeastInflight, ConsistentHash)
}


def by_name(name, **options):
    """The balancer called ``name``; ``options`` go to its constructor when it takes them.

    ``least_inflight`` takes ``load`` (an ``EndpointLoad``); ``consistent_hash`` takes ``key``
    (a function ``call -> key``). Unknown options for a balancer are ignored, so callers can pass
    everything they have. An unknown name raises ``ValueError`` naming the known ones.
    """
    try:
        cls = BALANCERS[name]
    except KeyError:
        raise ValueError(f"unknown balancer {name!r} (known: {', '.join(BALANCERS)})") from None
    accepted = getattr(cls, "options", ())
    return cls(**{k: v for k, v in options.items() if k in accepted and v is not None})


__all__ = [
    "BALANCERS",
    "Balancer",
    "ConsistentHash",
    "EndpointLoad",
    "LeastInflight",
    "Picker",
    "RoundRobin",
    "WeightedRandom",
    "WeightedRoundRobin",
    "by_name",
    "usable",
]
