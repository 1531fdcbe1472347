"""The innermost handler of a client call: pick an instance, borrow a pooled connection, send.

Sets ``call.peer`` to the chosen instance's address before anything can fail, so the ejection
and retry middlewares know which instance an error belongs to. Prefers instances the call has not
tried yet (``call.meta["tried"]``, kept by the retry middleware). Pools are created on first use
and closed by ``close_pool`` when an instance leaves the set. Keeps ``EndpointLoad`` current when
the balancer needs it (least_inflight).
"""

import time

from soa.errors import ClientClosed, RpcTimeout, TransportError

from .connection import Connection
from .pool import Pool

_monotonic = time.monotonic


class Transport:
    def __init__(self, discovery, plans, client_config, load=None):
        self.discovery = discovery
        self.plans = plans
        self.pools = {}
        self._routes = {}  # id(instance) -> (instance, address, pool)
        self.load = load
        self.pool_size = client_config.pool_size
        self.idle_timeout = client_config.pool_idle_timeout
        self.connect_timeout = client_config.connect_timeout_ms / 1000.0
        tls = client_config.tls
        self.connect = lambda instance, timeout: Connection.open(instance, timeout, tls)
        self.closed = False

    def __call__(self, call):
        instance = self.discovery.picker.pick(call)
        route = self._routes.get(id(instance))
        if route is None or route[0] is not instance:
            route = self._route(instance)
        if call.meta:
            tried = call.meta.get("tried")
            if tried and route[1] in tried:
                route = self._route(self._untried(call, instance, tried))
        _, address, pool = route
        call.peer = address
        deadline = call.deadline
        conn = pool.acquire(deadline)
        load = self.load
        if load is None:
            try:
                return conn.call(self.plans[call.method], call.args, deadline)
            except TransportError as e:
                _lost(pool, e)
                raise
            finally:
                pool.release(conn)
        load.start(address)
        start = _monotonic()
        elapsed = None
        try:
            result = conn.call(self.plans[call.method], call.args, deadline)
            elapsed = _monotonic() - start
            return result
        except TransportError as e:
            _lost(pool, e)
            raise
        finally:
            pool.release(conn)
            load.finish(address, elapsed)

    def has_untried(self, call):
        """Whether the current set holds an instance this call has not tried."""
        tried = call.meta.get("tried", ())
        return any(i.address not in tried for i in self.discovery.picker.instances)

    def _untried(self, call, instance, tried):
        picker = self.discovery.picker
        for _ in range(3):
            other = picker.pick(call)
            if other.address not in tried:
                return other
        for other in picker.instances:
            if other.address not in tried:
                return other
        return instance  # every instance was tried: try the picked one again

    def _route(self, instance):
        """``(instance, address, pool)``, cached by the instance object's id.

        The entry holds the instance itself, so the id cannot be reused while the entry lives,
        and ``route[0] is instance`` confirms a hit; this saves formatting the address and
        hashing it on every call. Entries go when their address's pool is closed.
        """
        if self.closed:  # close() emptied the routes: every later call comes here
            raise ClientClosed(instance.service)
        address = instance.address
        pool = self.pools.get(address)
        if pool is None:
            pool = Pool(instance, self.pool_size, self.idle_timeout, self.connect_timeout,
                        self.connect)
            self.pools[address] = pool
        stale = [k for k, r in self._routes.items() if r[1] == address and r[0] is not instance]
        for key in stale:
            del self._routes[key]
        route = self._routes[id(instance)] = (instance, address, pool)
        return route

    def close_pool(self, address):
        for key in [k for k, r in self._routes.items() if r[1] == address]:
            del self._routes[key]
        pool = self.pools.pop(address, None)
        if pool is not None:
            pool.close()
        if self.load is not None:
            self.load.forget(address)

    def sweep(self):
        now = _monotonic()
        return sum(pool.sweep(now) for pool in list(self.pools.values()))

    def close(self):
        self.closed = True
        for address in list(self.pools):
            self.close_pool(address)


def _lost(pool, error):
    """A connection was lost (not a timeout): the peer probably closed or died, and its other
    idle connections with it. Close them now, so the next calls connect afresh (and fail before
    sending, which is always safe to retry) instead of each finding a dead connection."""
    if not isinstance(error, RpcTimeout):
        pool.discard_idle()
