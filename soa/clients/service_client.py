"""``Client``: a service's IDL methods, called through discovery, balancing, pools and middleware.

Building one (``soa.client`` / ``Clients.client``) precomputes everything a call needs: a
``MethodPlan`` per method, the middleware chain (user middleware, deadline, retry, ejection,
then the transport), and one bound function per IDL method, which also records the call's
metrics. A call then allocates one ``Call``, walks the chain, picks from the current immutable
Picker (no lock), borrows a pooled connection and does one send and one receive. No call
touches etcd.
"""

import dataclasses
import logging
import time

import gevent

from soa import idl as idl_module
from soa._check import Fields
from soa.balancer import EndpointLoad, by_name
from soa.config import ClientConfig, load_config, parse_client
from soa.config_tls import parse_client_tls
from soa.errors import ConfigError
from soa.middleware import Call, chain, load_middleware
from soa.observe.histogram import FOLD_AT

from .discovery import Discovery
from .ejection import Ejector
from .metrics import ClientMetrics
from .plan import plans as make_plans
from .probe import Prober
from .retry import RetryBudget, retry_middleware
from .timeout import timeout_middleware
from .transport import Transport

log = logging.getLogger("soa.client")
OPTIONS = tuple(f.name for f in dataclasses.fields(ClientConfig))


class _Runtime:
    """Everything a ``Client`` runs on, kept in the client's one slot so that no IDL method,
    whatever its name, can replace it."""

    __slots__ = ("budget", "discovery", "ejector", "handler", "methods", "metrics", "owns_resolver",
                 "plans", "prober", "resolver", "service", "service_class", "settings",
                 "sweeper", "transport")


def _runtime_attribute(name):
    return property(lambda self: getattr(self._soa, name),
                    doc=f"The client's {name} (read-only).")


class Client:
    """Methods named as in the IDL (positional arguments in IDL order, or keywords), plus:

    - ``call(method, *args, **kwargs)``: the same, by name; the only way to reach an IDL
      method named like one of the client's own attributes (``close``, ``metrics``,
      ``discovery``, ...), which always mean the client's
    - ``instances``: the instances the client currently balances over
    - ``metrics``: a ``ClientMetrics`` (``metrics.snapshot()``)
    - ``settings``: the effective ``ClientConfig``
    - ``close()``: stop following the registry and close every pooled connection

    The client's own state lives in one slot (``_soa``) behind read-only properties; IDL
    methods go into the instance's ``__dict__`` only under names the class does not define,
    so no IDL name can shadow or replace it.

    Methods raise the IDL's declared exceptions as their own types, ``TApplicationException``
    for errors the server reports, and ``SoaError`` subclasses for soa's own failures
    (``NoInstanceAvailable``, ``TransportError``, ``RpcTimeout``, ``RetryError``).
    """

    __slots__ = ("_soa", "__dict__", "__weakref__")

    def __init__(self, service, service_class, settings, resolver, *, idl_path=None,
                 idempotent=(), middleware=(), hash_key=None, owns_resolver=False):
        rt = self._soa = _Runtime()
        rt.service = service
        rt.service_class = service_class
        rt.settings = settings
        rt.resolver = resolver
        rt.owns_resolver = owns_resolver
        rt.plans = plans = make_plans(service_class, idempotent, idl_path)
        rt.metrics = ClientMetrics(plans)
        load = EndpointLoad() if settings.balancer == "least_inflight" else None
        balancer = by_name(settings.balancer, load=load, key=_key_function(plans, hash_key))
        connect_timeout = settings.connect_timeout_ms / 1000.0
        rt.prober = Prober(connect_timeout, settings.timeout_ms / 1000.0, settings.tls)
        rt.transport = Transport(None, plans, settings, load)
        rt.discovery = Discovery(
            service, resolver, balancer,
            idl_hash=idl_module.idl_hash(service_class),
            idl_mismatch=settings.idl_mismatch,
            mass_removal_share=settings.mass_removal_share,
            prober=rt.prober,
            on_leave=rt.transport.close_pool,
        )
        rt.transport.discovery = rt.discovery
        rt.ejector = Ejector(rt.discovery, rt.prober, settings.eject_after)
        rt.budget = RetryBudget(settings.retry_budget)
        user = [load_middleware(m) if isinstance(m, str) else m for m in middleware]
        rt.handler = chain(
            *user,
            timeout_middleware(settings.timeout_ms / 1000.0),
            retry_middleware(plans, settings.retries, rt.budget, rt.transport.has_untried,
                             attempt_timeout=settings.attempt_timeout_ms / 1000.0),
            rt.ejector.middleware,
        )(rt.transport)
        stats = rt.metrics.stats if settings.metrics else lambda _name: None
        rt.methods = {name: _bound(service, plan, rt.handler, stats(name))
                      for name, plan in plans.items()}
        names = vars(self)
        for name, method in rt.methods.items():
            if not hasattr(Client, name):
                names[name] = method
        rt.sweeper = None
        rt.discovery.start()
        rt.sweeper = gevent.spawn(_sweep, rt.transport, max(0.5, settings.pool_idle_timeout / 2))

    service = _runtime_attribute("service")
    service_class = _runtime_attribute("service_class")
    settings = _runtime_attribute("settings")
    resolver = _runtime_attribute("resolver")
    plans = _runtime_attribute("plans")
    metrics = _runtime_attribute("metrics")
    prober = _runtime_attribute("prober")
    transport = _runtime_attribute("transport")
    discovery = _runtime_attribute("discovery")
    ejector = _runtime_attribute("ejector")
    budget = _runtime_attribute("budget")
    handler = _runtime_attribute("handler")

    @property
    def instances(self):
        return self._soa.discovery.instances

    def call(self, method, *args, **kwargs):
        bound = self._soa.methods.get(method)
        if bound is None:
            raise AttributeError(f"{self._soa.service} has no method {method!r}")
        return bound(*args, **kwargs)

    def close(self):
        rt = self._soa
        if rt.sweeper is not None:
            rt.sweeper.kill(block=False)
        rt.discovery.close()
        rt.ejector.close()
        rt.transport.close()
        if rt.owns_resolver:
            rt.resolver.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __repr__(self):
        return f"<soa client {self._soa.service} ({len(self.instances)} instance(s))>"


def _sweep(transport, interval):
    while True:
        gevent.sleep(interval)
        transport.sweep()


def _bound(service, plan, handler, stats=None, clock=time.perf_counter):
    """The client's method for ``plan``: its arguments in IDL order, one ``Call`` down the
    chain. With ``stats`` (a ``MethodStats``) it times and counts each call, around everything
    the call does (user middleware, retries), in its own frame: as a middleware of its own,
    the recording was a frame more on every call."""
    name, bind, arity = plan.name, plan.bind, len(plan.arg_names)
    if stats is None:
        def method(*args, **kwargs):
            if kwargs or len(args) != arity:
                args = bind(args, kwargs)
            return handler(Call(service, name, args))
    else:
        pending = stats.pending  # binned in batches (soa.observe.histogram)

        def method(*args, **kwargs):
            if kwargs or len(args) != arity:
                args = bind(args, kwargs)
            start = clock()
            try:
                return handler(Call(service, name, args))
            except BaseException as e:
                stats.fail(e)
                raise
            finally:
                pending.append(clock() - start)
                if len(pending) >= FOLD_AT:
                    stats.fold()

    method.__name__ = name
    method.__qualname__ = f"{service}.{name}"
    return method


def _key_function(plans, hash_key):
    """consistent_hash's key: a function of the call, or the argument named ``hash_key``."""
    if callable(hash_key):
        return hash_key
    if not hash_key:
        return None
    index = {name: p.arg_names.index(hash_key) for name, p in plans.items()
             if hash_key in p.arg_names}

    def key(call):
        i = index.get(call.method)
        return None if i is None else call.args[i]

    return key


def settings_for(config, options):
    """``config.client`` with per-client ``options`` applied and checked like soa.yaml's."""
    unknown = sorted(set(options) - set(OPTIONS))
    if unknown:
        raise ConfigError(f"unknown client option(s) {', '.join(unknown)} "
                          f"(known: {', '.join(OPTIONS)})", source="client options")
    merged = dataclasses.asdict(config.client)
    merged.update({k: v for k, v in options.items() if k not in ("hash_key", "tls")})
    merged["hash_key"] = merged["tls"] = None
    settings = parse_client(Fields(merged, "client options"))
    hash_key = options.get("hash_key", config.client.hash_key)
    tls = options.get("tls", config.client.tls)
    if isinstance(tls, dict):  # as soa.yaml writes it
        tls = parse_client_tls(Fields(tls, "client options", "tls"), config.root)
    return dataclasses.replace(settings, hash_key=hash_key, tls=tls)


def resolve_service(service, config, idl=None, thrift_service=None):
    """``(service_class, idl_path, service_config or None)`` for ``service``.

    The IDL and Thrift service come from ``config.services[service]`` unless given; a service
    not in the config needs ``idl`` (and ``thrift_service`` when the IDL defines several).
    Raises ``ConfigError`` (unknown service, IDL without that service) or ``IdlError``.
    """
    known = config.services.get(service)
    if idl is None:
        if known is None:
            config.service(service)  # raises ConfigError naming the known services
        idl = known.idl
    if thrift_service is None:
        thrift_service = known.thrift_service if known is not None else None
    module = idl_module.load(idl)
    if thrift_service is None:
        names = idl_module.service_names(module)
        if len(names) != 1:
            raise ConfigError(f"{idl} defines {len(names)} services; pass thrift_service=",
                              source="client options")
        thrift_service = names[0]
    service_class = idl_module.find_service(module, thrift_service)
    if service_class is None:
        known_names = ", ".join(idl_module.service_names(module)) or "none"
        raise ConfigError(f"IDL {idl} defines no service {thrift_service!r} "
                          f"(it defines: {known_names})", source="client options")
    return service_class, idl, known


def build(service, config, resolver, *, owns_resolver=False, idl=None, thrift_service=None,
          idempotent=None, middleware=(), **options):
    """A ``Client`` for ``service`` (see ``soa.client``)."""
    service_class, idl, known = resolve_service(service, config, idl, thrift_service)
    if idempotent is None:
        idempotent = known.idempotent if known is not None else ()
    hash_key = options.get("hash_key")
    settings = settings_for(config, options)
    return Client(service, service_class, settings, resolver, idl_path=idl,
                  idempotent=idempotent, middleware=middleware,
                  hash_key=hash_key if hash_key is not None else settings.hash_key,
                  owns_resolver=owns_resolver)


class Clients:
    """Builds clients that share one resolver (one etcd connection, one watch per service) per
    etcd config, and closes them all together.

    soa keeps no process-wide state: a process that wants its clients to share a resolver owns a
    ``Clients`` (a soa server holds one for its handler's ``context.client(...)``); ``soa.client``
    alone gives a client with a resolver of its own.
    """

    def __init__(self, config=None):
        self.config = config if config is not None else load_config()
        self._resolvers = {}
        self._clients = []

    def resolver(self, etcd_config=None):
        from soa.registry.resolver import EtcdResolver

        etcd_config = etcd_config or self.config.etcd
        resolver = self._resolvers.get(etcd_config)
        if resolver is None:
            resolver = self._resolvers[etcd_config] = EtcdResolver(etcd_config)
        return resolver

    def client(self, service, *, resolver=None, **options):
        made = build(service, self.config, resolver or self.resolver(), **options)
        self._clients.append(made)
        return made

    def __iter__(self):
        """The clients made so far and not closed (a copy: safe while clients are made)."""
        return iter(list(self._clients))

    def close(self):
        clients, self._clients = self._clients, []
        for made in clients:
            made.close()
        resolvers, self._resolvers = list(self._resolvers.values()), {}
        for resolver in resolvers:
            resolver.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def client(service, config=None, *, resolver=None, **options):
    """A client of ``service``: its IDL's methods, through discovery and balancing.

    ``config`` is a ``Config`` (default: ``load_config()``, i.e. ./soa.yaml or $SOA_CONFIG).
    ``options`` override soa.yaml's ``client:`` section (``balancer``, ``timeout_ms``,
    ``connect_timeout_ms``, ``retries``, ``retry_budget``, ``pool_size``, ``pool_idle_timeout``,
    ``idl_mismatch``, ``mass_removal_share``, ``eject_after``, ``hash_key`` (an argument name or a
    function of the ``Call``)), and also take ``idl=``/``thrift_service=`` for a service not in
    the config, ``idempotent=`` (method names), ``middleware=`` (middlewares or
    ``"module:factory"`` strings, outermost first) and ``resolver=`` (shared with other clients;
    not closed by this client). Without ``resolver`` the client owns an ``EtcdResolver`` of its
    own; use ``Clients`` to share one among several clients.
    """
    config = config if config is not None else load_config()
    if resolver is not None:
        return build(service, config, resolver, **options)
    from soa.registry.resolver import EtcdResolver

    own = EtcdResolver(config.etcd)
    try:
        return build(service, config, own, owns_resolver=True, **options)
    except BaseException:
        own.close()
        raise
