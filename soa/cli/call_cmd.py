"""``soa call SERVICE METHOD [JSON]``: one call through discovery (or to one address)."""

import json
import logging
import sys

import click

from .options import Command


@click.command(
    cls=Command,
    examples="""
  soa call greeter ping
  soa call greeter greet '{"name": "Ada", "times": 2}'    # arguments by name
  soa call greeter greet '["Ada", 2]'                     # or in IDL order
  soa call greeter describe '{"person": {"name": "Ada", "tags": ["x"]}}'  # structs as objects
  echo '["Ada", 1]' | soa call greeter greet -            # JSON from stdin
  soa call greeter ping --address 127.0.0.1:9090          # one instance, no etcd
  soa call greeter greet '["Ada", 1]' --timeout 3000
""",
)
@click.argument("service")
@click.argument("method")
@click.argument("arguments", required=False, metavar="[JSON]")
@click.option("--address", metavar="HOST:PORT", help="call this instance (no etcd needed)")
@click.option("--timeout", "timeout_ms", type=click.IntRange(1, 3_600_000), metavar="MS",
              help="total timeout of the call in ms [client.timeout_ms]")
@click.option("--idl", "idl_path", metavar="PATH",
              help="IDL file, for a service that is not in soa.yaml")
@click.option("--thrift-service", metavar="NAME", help="service name inside --idl")
@click.pass_obj
def call(obj, service, method, arguments, address, timeout_ms, idl_path, thrift_service):
    """Call METHOD of SERVICE with JSON arguments and print the result as JSON.

    JSON is an object keyed by argument name or an array in IDL order ("-" reads stdin).
    Structs are objects, enums are names (or numbers), binary is base64, maps are objects.
    A declared exception is printed as {"exception": NAME, "fields": {...}}, exit code 1.
    """
    from soa import jsonthrift
    from soa.clients.discovery import StaticResolver
    from soa.clients.plan import plans as make_plans
    from soa.clients.service_client import resolve_service

    config = obj.config if idl_path is None else _lenient_config(obj)
    data = _parse_json(arguments)
    # Everything that can be checked without the network is checked first: a bad call never
    # opens an etcd connection.
    service_class, idl, known = resolve_service(service, config, idl_path, thrift_service)
    plan = make_plans(service_class).get(method)
    if plan is None:
        names = ", ".join(service_class.thrift_services) or "none"
        raise click.ClickException(f"{service} has no method {method!r} (methods: {names})")
    args = jsonthrift.args_from_json(plan, data)
    options = {"idl": idl, "thrift_service": service_class.__name__}
    if timeout_ms is not None:
        options["timeout_ms"] = timeout_ms
    if address is not None:
        resolver = StaticResolver.of(service, _address(address), **_wire(known))
        owns = False
    else:
        from soa.registry.resolver import EtcdResolver

        resolver = EtcdResolver(config.etcd)
        owns = True
    # One call: when etcd fails, its error says which endpoint and why; the watch's retry
    # warnings would only repeat it (-v shows them).
    quiet = None if obj.verbose else _RetryWarnings()
    registry_log = logging.getLogger("soa.registry")
    if quiet is not None:
        registry_log.addFilter(quiet)
    try:
        _call(service, method, args, config, resolver, owns, options)
    finally:
        if quiet is not None:
            registry_log.removeFilter(quiet)


class _RetryWarnings(logging.Filter):
    def filter(self, record):
        return not (record.levelno == logging.WARNING and "retrying in" in record.getMessage())


def _call(service, method, args, config, resolver, owns, options):
    from thriftpy2.thrift import TApplicationException

    from soa import jsonthrift
    from soa.clients.service_client import build
    from soa.errors import SoaError

    try:
        client = build(service, config, resolver, owns_resolver=owns, **options)
    except BaseException:
        resolver.close()
        raise
    try:
        plan = client.plans[method]
        try:
            value = client.call(method, *args)
        except TApplicationException as e:
            raise click.ClickException(f"{service}.{method}: the server failed: "
                                       f"{e.message or e}") from e
        except SoaError:
            raise
        except _declared(plan) as e:
            click.echo(json.dumps(jsonthrift.exception_to_json(e), indent=2, ensure_ascii=False))
            sys.exit(1)
        click.echo(json.dumps(jsonthrift.result_to_json(plan, value), indent=2,
                              ensure_ascii=False))
    finally:
        client.close()


def _declared(plan):
    """The exception classes the method declares (a tuple, for ``except``)."""
    spec = plan.result_class.thrift_spec
    return tuple(entry[2] for fid, entry in spec.items() if fid != 0)


def _parse_json(text):
    if text is None:
        return None
    if text == "-":
        text = sys.stdin.read()
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise click.ClickException(
            f"invalid JSON arguments: {e.msg} (line {e.lineno} column {e.colno})") from None


def _address(text):
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise click.ClickException(f"--address: expected HOST:PORT, got {text!r}")
    return text


def _wire(known):
    """Protocol and transport for --address: soa.yaml's, else binary/buffered."""
    if known is None:
        return {}
    return {"protocol": known.protocol, "transport": known.transport}


def _lenient_config(obj):
    """With --idl, a soa.yaml that is missing or broken is fine (unless named by --config)."""
    from soa.config import Config
    from soa.errors import ConfigError

    try:
        return obj.config
    except ConfigError:
        if obj.config_path:
            raise
        return Config(source="(defaults)")
