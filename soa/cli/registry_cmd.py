"""``soa registry``: see and edit what is registered in etcd."""

import json
import time

import click

from .options import Command, Group, json_option


def _registry(ctx, operation, *args):
    """Run ``operation(connection, prefix, *args)`` over a connection that is closed after."""
    from soa.registry.etcd import EtcdConnection

    connection = EtcdConnection(ctx.obj.config.etcd)
    try:
        return operation(connection, ctx.obj.config.etcd.prefix, *args)
    finally:
        connection.close()


@click.group(
    cls=Group,
    examples="""
  soa registry ls
  soa registry ls greeter --json
  soa registry watch --json
  soa registry drain greeter 10.0.0.7:9090
  soa registry undrain greeter 10.0.0.7:9090
  soa registry weight greeter 10.0.0.7:9090 50
  soa registry rm greeter 10.0.0.7:9090
  soa registry history greeter
""",
)
def registry():
    """Inspect and edit the service registry in etcd."""


def _age(started_at):
    if not started_at:
        return "-"
    seconds = max(0, int(time.time() - started_at))
    if seconds < 120:
        return f"{seconds}s"
    if seconds < 7200:
        return f"{seconds // 60}m"
    return f"{seconds // 3600}h"


def _weight(instance):
    from soa.registry import operator

    extra = instance.extra
    if not operator.is_drained(extra):
        return str(instance.weight)
    return f"{instance.weight}(drained:{operator.remembered_weight(extra)})"


def table(headers, rows):
    """Left-aligned columns, for people."""
    widths = [max(len(str(v)) for v in column) for column in zip(headers, *rows)]
    lines = [
        "  ".join(str(v).ljust(w) for v, w in zip(row, widths)).rstrip() for row in [headers, *rows]
    ]
    return "\n".join(lines)


@registry.command(
    cls=Command,
    examples="""
  soa registry ls                 # every service
  soa registry ls greeter           # one service
  soa registry ls --json | jq .
""",
)
@click.argument("service", required=False)
@json_option
@click.pass_context
def ls(ctx, service, as_json):
    """List registered instances, with their lease time left and age."""
    from soa.registry.inspect import list_instances

    rows = _registry(ctx, list_instances, service)
    if as_json:
        out = []
        for row in rows:
            item = row.instance.to_dict() if row.instance else {"key": row.key, "error": row.error}
            item["lease_ttl_left"] = row.lease_ttl_left
            out.append(item)
        click.echo(json.dumps(out))
        return
    good = [r for r in rows if r.instance]
    headers = ("SERVICE", "ADDRESS", "WEIGHT", "VERSION", "IDL_HASH", "PROTOCOL", "LEASE", "AGE")
    body = [
        (
            r.instance.service,
            r.instance.address,
            _weight(r.instance),
            r.instance.version or "-",
            r.instance.idl_hash or "-",
            f"{r.instance.protocol}/{r.instance.transport}",
            f"{r.lease_ttl_left}s" if r.lease_ttl_left >= 0 else "none",
            _age(r.instance.started_at),
        )
        for r in good
    ]
    if body:
        click.echo(table(headers, body))
    else:
        click.echo(
            f"no instances registered{' for ' + service if service else ''} "
            f"under {ctx.obj.config.etcd.prefix} at {','.join(ctx.obj.config.etcd.endpoints)}"
        )
    for r in rows:
        if not r.instance:
            click.echo(f"skipped {r.key}: {r.error}", err=True)


@registry.command(
    cls=Command,
    examples="""
  soa registry watch
  soa registry watch greeter --json
""",
)
@click.argument("service", required=False)
@json_option
@click.pass_context
def watch(ctx, service, as_json):
    """Print every change to the registered set until interrupted."""
    import gevent

    from soa.registry.etcd import EtcdConnection
    from soa.registry.instance import service_prefix
    from soa.registry.resolver import PrefixWatch

    config = ctx.obj.config.etcd
    connection = EtcdConnection(config)
    mirror = PrefixWatch(connection, config.prefix, service_prefix(config.prefix, service))
    previous = {}

    def changed(instances):
        current = {(i.service, i.address): i for i in instances}
        for key in sorted(current.keys() - previous.keys()):
            _emit("joined", current[key], as_json)
        for key in sorted(previous.keys() & current.keys()):
            if previous[key] != current[key]:
                _emit("updated", current[key], as_json)
        for key in sorted(previous.keys() - current.keys()):
            _emit("left", previous[key], as_json)
        previous.clear()
        previous.update(current)

    mirror.subscribe(changed)
    mirror.start()
    mirror.settled.wait(config.dial_timeout)
    if mirror.refused is not None and not mirror.ready.is_set():
        mirror.stop()
        connection.close()
        raise mirror.refused  # wrong credentials: one line, not a log line per retry
    try:
        while True:
            gevent.sleep(3600)
    finally:
        mirror.stop()
        connection.close()


def _emit(kind, instance, as_json):
    if as_json:
        click.echo(json.dumps({"event": kind, **instance.to_dict()}), nl=True)
    else:
        click.echo(
            f"{time.strftime('%H:%M:%S')} {kind:<8} {instance.service:<12} "
            f"{instance.address:<22} weight={instance.weight} "
            f"idl={instance.idl_hash or '-'}"
        )


@registry.command(
    cls=Command,
    examples="""
  soa registry rm greeter 10.0.0.7:9090           # a stale key whose lease is gone
  soa registry rm greeter 10.0.0.7:9090 --force   # even though the instance is alive
""",
)
@click.argument("service")
@click.argument("address")
@click.option("--force", is_flag=True,
              help="remove it even though its lease is alive (its registrar writes it back)")
@click.pass_context
def rm(ctx, service, address, force):
    """Remove a stale instance from the registry.

    A live instance (its lease is alive) is refused without --force: its own registrar writes
    the key back within a second. To take a live instance out of traffic, drain it.
    """
    from soa.registry.inspect import InstanceAlive, remove

    try:
        removed = _registry(ctx, remove, service, address, force)
    except InstanceAlive as e:
        raise click.ClickException(str(e)) from e
    if not removed:
        raise click.ClickException(f"no instance {address} registered for {service}")
    click.echo(f"removed {service} {address}")
    if force:
        click.echo(
            "warning: if the instance is alive, its registrar writes it back within a second;"
            f" use 'soa registry drain {service} {address}' to take it out of traffic",
            err=True,
        )


def _edited(result, service, address, done, unchanged):
    after = result.after
    if not result.changed:
        click.echo(f"{service} {address} {unchanged} (weight {_weight(after)})")
    else:
        click.echo(f"{service} {address} {done}: weight {_weight(result.before)} -> "
                   f"{_weight(after)}")


@registry.command(
    cls=Command,
    examples="""
  soa registry drain greeter 10.0.0.7:9090
  soa registry ls greeter        # WEIGHT shows "0(drained:100)"
""",
)
@click.argument("service")
@click.argument("address")
@click.pass_context
def drain(ctx, service, address):
    """Take an instance out of traffic without stopping it.

    Writes weight 0 and remembers the weight it had; every client stops sending it calls
    within a second. The instance's own registrar keeps the drain when it writes its key again
    (after a lease loss or a deletion). It lasts until undrain or until the process restarts.
    """
    from soa.registry.inspect import drain as run

    _edited(_registry(ctx, run, service, address), service, address, "drained",
            "was already drained")


@registry.command(
    cls=Command,
    examples="""
  soa registry undrain greeter 10.0.0.7:9090
""",
)
@click.argument("service")
@click.argument("address")
@click.pass_context
def undrain(ctx, service, address):
    """Put a drained instance back into traffic, with the weight it had."""
    from soa.registry.inspect import undrain as run

    _edited(_registry(ctx, run, service, address), service, address, "undrained",
            "was not drained")


@registry.command(
    cls=Command,
    examples="""
  soa registry weight greeter 10.0.0.7:9090 50    # half the share of a weight-100 instance
  soa registry weight greeter 10.0.0.7:9090 0     # registered, but given no traffic
""",
)
@click.argument("service")
@click.argument("address")
@click.argument("weight", type=click.IntRange(min=0))
@click.pass_context
def weight(ctx, service, address, weight):
    """Change an instance's weight (its relative share of calls).

    Clients follow within a second; the instance's registrar keeps the new weight. A drained
    instance stays drained and gets this weight back on undrain.
    """
    from soa.registry.inspect import reweight

    _edited(_registry(ctx, reweight, service, address, weight), service, address,
            "reweighted", "already has that weight")


@registry.command(
    cls=Command,
    examples="""
  soa registry history greeter
  soa registry history --json
""",
)
@click.argument("service", required=False)
@json_option
@click.pass_context
def history(ctx, service, as_json):
    """List joins and leaves from etcd's revision history, with why each instance left."""
    from soa.registry.inspect import history as read_history

    changes, oldest = _registry(ctx, read_history, service)
    if as_json:
        for change in changes:
            click.echo(json.dumps(change.__dict__))
        return
    if oldest > 1:
        click.echo(f"(history before revision {oldest} was compacted)")
    rows = [(c.revision, c.kind, c.service, c.address, c.reason) for c in changes]
    click.echo(
        table(("REVISION", "EVENT", "SERVICE", "ADDRESS", "REASON"), rows)
        if rows
        else "no registry history"
    )
