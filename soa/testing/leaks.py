"""What a test left running: the framework's greenlets (registry watches, client sweepers,
probes, pool readers, servers) still alive, named so that a leak says which one it is."""

import gc

import gevent

FRAMEWORK = ("soa.", "registry.")


def _target(greenlet):
    run = getattr(greenlet, "_run", None)
    owner = getattr(run, "__self__", None)
    module = getattr(run, "__module__", None) or (type(owner).__module__ if owner else "")
    name = getattr(run, "__qualname__", None) or repr(run)
    return module or "", name, owner


def running():
    """``{id: description}`` of every live gevent greenlet running framework code (its target's
    module is under ``soa`` or ``registry``). Called from the test's own greenlet; never
    raises."""
    found = {}
    for obj in gc.get_objects():
        if not issubclass(type(obj), gevent.Greenlet) or obj.dead:  # type(): no weakproxy
            continue
        module, name, owner = _target(obj)
        if not module.startswith(FRAMEWORK):
            continue
        detail = getattr(owner, "range_prefix", None)  # a registry watch says what it watches
        found[id(obj)] = f"{module}.{name}" + (f" (watching {detail})" if detail else "")
    return found


def left_running(before, settle=2.0):
    """Descriptions of the framework greenlets alive now that were not in ``before`` (a
    ``running()`` result), after giving those being killed up to ``settle`` seconds to end."""
    from .poll import wait_until

    def new():
        return {k: v for k, v in running().items() if k not in before}

    try:
        wait_until(lambda: not new(), settle, interval=0.02)
    except AssertionError:
        pass
    return sorted(new().values())
