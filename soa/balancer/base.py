"""The Balancer and Picker contracts, and what every balancer shares."""

from soa.errors import NoInstanceAvailable


class Picker:
    """Chooses one instance per call from a fixed set.

    Contract:
    - Immutable after construction; ``pick`` may be called from any greenlet at once, takes no
      locks and never blocks.
    - ``pick(call)`` returns one of ``instances``. With no usable instance (the set is empty, or
      every weight is 0) it raises ``NoInstanceAvailable(service)``.
    - ``instances`` is the tuple of instances that can receive traffic (weight > 0).
    """

    instances = ()

    def pick(self, call):  # pragma: no cover - interface
        raise NotImplementedError


class Balancer:
    """Builds Pickers. ``name`` is the soa.yaml name; ``picker(instances)`` is called from the
    resolver's greenlet on every change of the set (and once at start), never per call."""

    name = ""
    options = ()

    def picker(self, instances):  # pragma: no cover - interface
        raise NotImplementedError


class EmptyPicker(Picker):
    """The Picker of a set with no usable instance: every pick raises ``NoInstanceAvailable``."""

    def __init__(self, service, reason):
        self.service = service
        self.reason = reason

    def pick(self, call):
        raise NoInstanceAvailable(self.service or call.service, self.reason)


def usable(instances):
    """The instances that may get traffic (weight > 0), and an EmptyPicker when there are none."""
    live = tuple(i for i in instances if i.weight > 0)
    if live:
        return live, None
    service = instances[0].service if instances else ""
    reason = "every instance has weight 0" if instances else "no instances registered"
    return live, EmptyPicker(service, reason)
