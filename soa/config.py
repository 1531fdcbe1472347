"""soa.yaml, parsed once at the edge into frozen dataclasses.

Precedence, highest first: explicit arguments (the CLI's ``--config``/``--etcd``), the environment
(``SOA_CONFIG``, ``SOA_ETCD_ENDPOINTS``), the file, then the defaults below. A bad value raises
``ConfigError`` whose text is one line naming the file and the key path.
"""

import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType

import yaml

from ._check import Fields, show
from .config_env import expand_env
from .errors import ConfigError
from .config_etcd import (EtcdConfig, EtcdCredentials, TlsFiles, parse_credentials,
                          parse_endpoints, parse_etcd)
from .config_tls import parse_client_tls, parse_server_tls
from .tls import ClientTls, ServerTls

__all__ = ["BALANCERS", "DEFAULT_FILE", "ClientConfig", "Config", "EtcdConfig",
           "EtcdCredentials", "ServiceConfig", "TlsFiles", "load_config", "parse_config"]

DEFAULT_FILE = "soa.yaml"
PROTOCOLS = ("binary", "compact")
TRANSPORTS = ("buffered", "framed")
BALANCERS = (
    "round_robin",
    "weighted_round_robin",
    "weighted_random",
    "least_inflight",
    "consistent_hash",
)


@dataclass(frozen=True)
class ServiceConfig:
    """How one service is served, and how clients find it."""

    name: str
    idl: Path
    thrift_service: str
    handler: str
    host: str = "127.0.0.1"
    port: int = 0
    advertise: str | None = None
    weight: int = 100
    workers: int = 1
    instances: int = 1
    protocol: str = "binary"
    transport: str = "buffered"
    version: str = "0.1.0"
    tags: MappingProxyType = field(default_factory=lambda: MappingProxyType({}))
    middleware: tuple[str, ...] = ()
    idempotent: tuple[str, ...] = ()
    grace_period: float = 1.0
    drain_timeout: float = 10.0
    idle_timeout: float = 300.0
    max_frame_bytes: int = 16 * 1024 * 1024
    max_connections: int = 10000
    spin_us: int = 100  # soa.server.spin: the longest the hub polls before it sleeps (0: never)
    # Monitoring: the HTTP endpoint (/metrics, /healthz, /readyz) and per-call recording.
    metrics: bool = True
    metrics_port: int = 0
    tls: ServerTls | None = None
    etcd: EtcdCredentials | None = None  # what `soa serve` of this service talks to etcd as
    # The service's own settings (``services.X.settings``): a free mapping the framework never
    # reads, passed untouched (frozen) to the handler as ``context.service.settings``.
    settings: MappingProxyType = field(default_factory=lambda: MappingProxyType({}))


@dataclass(frozen=True)
class ClientConfig:
    """Defaults for every client; ``soa.client(name, **options)`` overrides them per client."""

    balancer: str = "round_robin"
    timeout_ms: int = 1000
    connect_timeout_ms: int = 250
    retries: int = 2
    retry_budget: float = 0.1
    pool_size: int = 64
    pool_idle_timeout: float = 60.0
    idl_mismatch: str = "warn"
    mass_removal_share: float = 0.5
    eject_after: int = 3
    attempt_timeout_ms: int = 0  # 0: an attempt may take the whole timeout_ms
    hash_key: str | None = None
    metrics: bool = True  # per-call counters (soa_client_*); false drops the middleware
    tls: ClientTls | None = None


@dataclass(frozen=True)
class Config:
    source: str = DEFAULT_FILE
    root: Path = field(default_factory=Path.cwd)
    etcd: EtcdConfig = field(default_factory=EtcdConfig)
    services: MappingProxyType = field(default_factory=lambda: MappingProxyType({}))
    client: ClientConfig = field(default_factory=ClientConfig)
    pythonpath: tuple = ()  # folders put on sys.path before handlers are imported
    # the project's own `soa` subcommands: name -> "module:click_command"
    commands: MappingProxyType = field(default_factory=lambda: MappingProxyType({}))
    alerts: object = None  # soa.monitor.rules.AlertsConfig when soa.yaml has ``alerts:``

    @property
    def import_paths(self):
        """Where handler and middleware modules are imported from: ``pythonpath`` (relative to
        soa.yaml; default: the folder of soa.yaml itself)."""
        return self.pythonpath or (self.root,)

    def service(self, name):
        """The named service's config, or ``ConfigError`` naming the services that exist."""
        try:
            return self.services[name]
        except KeyError:
            known = ", ".join(sorted(self.services)) or "none"
            raise ConfigError(
                f"unknown service {name!r} (services: {known})", source=self.source
            ) from None

    def etcd_for(self, name):
        """The etcd config a process serving ``name`` uses: ``etcd`` with the service's own
        credentials (``services.X.etcd``) when it has them."""
        credentials = self.service(name).etcd
        if credentials is None:
            return self.etcd
        return replace(self.etcd, user=credentials.user, password=credentials.password)


def load_config(path=None, etcd_endpoints=None, check_idl=True):
    """Load soa.yaml. ``path``/``etcd_endpoints`` come from the CLI; the environment fills gaps.

    With no path given and no ./soa.yaml, the defaults apply (useful for ``soa registry``).
    """
    explicit = path or os.environ.get("SOA_CONFIG")
    file = Path(explicit or DEFAULT_FILE)
    if file.is_file():
        source = str(explicit or DEFAULT_FILE)
        try:
            text = file.read_text(encoding="utf-8")
        except OSError as e:
            raise ConfigError(f"cannot read: {e.strerror}", source=source) from e
        config = parse_config(text, source=source, root=file.resolve().parent, check_idl=check_idl)
    elif explicit:
        raise ConfigError("no such file", source=str(explicit))
    else:
        config = Config(source="(defaults)")
    endpoints = etcd_endpoints or os.environ.get("SOA_ETCD_ENDPOINTS")
    if endpoints:
        items = endpoints.split(",") if isinstance(endpoints, str) else list(endpoints)
        where = "--etcd" if etcd_endpoints else "SOA_ETCD_ENDPOINTS"
        checked = parse_endpoints(Fields({"endpoints": items}, where), "endpoints")
        config = replace(config, etcd=replace(config.etcd, endpoints=checked))
    user, password = os.environ.get("SOA_ETCD_USER"), os.environ.get("SOA_ETCD_PASSWORD")
    if user or password:
        if not (user and password):
            raise ConfigError("SOA_ETCD_USER and SOA_ETCD_PASSWORD go together",
                              source="environment")
        config = replace(config, etcd=replace(config.etcd, user=user, password=password))
    return config


def parse_config(text, source=DEFAULT_FILE, root=None, check_idl=True):
    """Parse soa.yaml's text. ``root`` is the folder relative paths are resolved against."""
    root = Path(root or Path.cwd())
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise ConfigError(f"{where}invalid YAML: {problem}", source=source) from e
    data = expand_env(data, source)
    top = Fields(data, source)
    etcd = parse_etcd(top.sub("etcd"), root)
    client = parse_client(top.sub("client"), root)
    services_raw = top.sub("services")
    services = {}
    for name in services_raw.data:
        if not isinstance(name, str) or not re.fullmatch(r"[a-z][a-z0-9_-]*", name):
            raise top.fail(f"services.{name}", "service names are lower-case [a-z0-9_-]")
        services[name] = _service(name, services_raw.sub(name), root, check_idl)
    services_raw.done()
    pythonpath = tuple((root / p).resolve() for p in top.strings("pythonpath", (".",)))
    commands = _commands(top.sub("commands"))
    alerts = None
    if top.raw("alerts", None) is not None:
        from .monitor.rules import parse_alerts

        alerts = parse_alerts(top.sub("alerts"), root)
    top.done()
    return Config(source, root, etcd, MappingProxyType(services), client, pythonpath, commands,
                  alerts=alerts)


def _commands(f):
    """``commands: {name: module:attribute}``: subcommands a project adds to ``soa``."""
    out = {}
    for name in list(f.data):
        target = f.str(name)
        if not re.fullmatch(r"[a-z][a-z0-9-]*", str(name)):
            raise f.fail(f.key(name), "command names are lower-case [a-z0-9-]")
        if not re.fullmatch(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*", target):
            raise f.fail(f.key(name), f"expected module.path:command, got {show(target)}")
        out[name] = target
    f.done()
    return MappingProxyType(out)


def parse_client(f, root=Path(".")):
    d = ClientConfig
    config = ClientConfig(
        balancer=f.choice("balancer", BALANCERS, d.balancer),
        timeout_ms=f.int("timeout_ms", d.timeout_ms, lo=1, hi=3_600_000),
        connect_timeout_ms=f.int("connect_timeout_ms", d.connect_timeout_ms, lo=1, hi=60_000),
        retries=f.int("retries", d.retries, lo=0, hi=10),
        retry_budget=f.number("retry_budget", d.retry_budget, lo=0, hi=1),
        pool_size=f.int("pool_size", d.pool_size, lo=1, hi=10_000),
        pool_idle_timeout=f.number("pool_idle_timeout", d.pool_idle_timeout, lo=0.1),
        idl_mismatch=f.choice("idl_mismatch", ("warn", "exclude"), d.idl_mismatch),
        mass_removal_share=f.number("mass_removal_share", d.mass_removal_share, lo=0, hi=1),
        eject_after=f.int("eject_after", d.eject_after, lo=1, hi=1000),
        attempt_timeout_ms=f.int("attempt_timeout_ms", d.attempt_timeout_ms, lo=0,
                                 hi=3_600_000),
        hash_key=f.str("hash_key", None),
        metrics=f.bool("metrics", d.metrics),
        tls=parse_client_tls(f.sub("tls"), root),
    )
    f.done()
    return config


def _service(name, f, root, check_idl):
    d = ServiceConfig
    idl_text = f.str("idl")
    idl = (root / idl_text).resolve()
    if not idl.is_file():
        raise f.fail(f.key("idl"), f"IDL file not found: {idl_text}")
    thrift_service = f.str("service", None) or _default_thrift_service(name)
    handler = f.str("handler")
    if not re.fullmatch(r"[A-Za-z_][\w.]*:[A-Za-z_]\w*", handler):
        raise f.fail(f.key("handler"), f"expected module.path:ClassName, got {show(handler)}")
    config = ServiceConfig(
        name=name,
        idl=idl,
        thrift_service=thrift_service,
        handler=handler,
        host=f.str("host", d.host),
        port=f.int("port", d.port, lo=0, hi=65535),
        advertise=f.str("advertise", None),
        weight=f.int("weight", d.weight, lo=0, hi=10_000),
        workers=f.int("workers", d.workers, lo=1, hi=256),
        instances=f.int("instances", d.instances, lo=1, hi=64),
        protocol=f.choice("protocol", PROTOCOLS, d.protocol),
        transport=f.choice("transport", TRANSPORTS, d.transport),
        version=f.str("version", d.version),
        tags=MappingProxyType(f.labels("tags")),
        middleware=f.strings("middleware"),
        idempotent=f.strings("idempotent"),
        grace_period=f.number("grace_period", d.grace_period, lo=0, hi=600),
        drain_timeout=f.number("drain_timeout", d.drain_timeout, lo=0, hi=3600),
        idle_timeout=f.number("idle_timeout", d.idle_timeout, lo=0.1),
        max_frame_bytes=f.int("max_frame_bytes", d.max_frame_bytes, lo=1024, hi=1 << 31),
        max_connections=f.int("max_connections", d.max_connections, lo=1, hi=1_000_000),
        spin_us=f.int("spin_us", d.spin_us, lo=0, hi=10_000),
        metrics=f.bool("metrics", d.metrics),
        metrics_port=f.int("metrics_port", d.metrics_port, lo=0, hi=65535),
        tls=parse_server_tls(f.sub("tls"), root),
        etcd=parse_credentials(f.sub("etcd")) if f.raw("etcd", None) is not None else None,
        settings=_settings(f, "settings"),
    )
    f.done()
    if check_idl:
        from . import idl as idl_module

        try:
            module = idl_module.load(idl)
        except ConfigError as e:
            raise f.fail(f.key("idl"), e.detail) from e
        if idl_module.find_service(module, thrift_service) is None:
            known = ", ".join(idl_module.service_names(module)) or "none"
            raise f.fail(
                f.key("service"),
                f"IDL {idl_text} defines no service {thrift_service!r} (it defines: {known})",
            )
    return config


def _settings(f, key):
    """``services.X.settings``: any mapping, frozen (mappings read-only, lists as tuples)."""
    value = f.raw(key, {})
    if not isinstance(value, dict):
        raise f.fail(f.key(key), f"expected a mapping, got {show(value)}")
    return _freeze(value)


def _freeze(value):
    if isinstance(value, dict):
        return MappingProxyType({k: _freeze(v) for k, v in value.items()})
    if isinstance(value, list):
        return tuple(_freeze(v) for v in value)
    return value


def _default_thrift_service(name):
    """``user_profile`` -> ``UserProfileService``: the convention when ``service`` is omitted."""
    return "".join(part.capitalize() for part in re.split(r"[_-]", name)) + "Service"
