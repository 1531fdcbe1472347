"""``soa up``: the embedded etcd and every service of soa.yaml, until Ctrl-C."""

import click

from .options import Command


@click.command(
    cls=Command,
    examples="""
  soa up                          # etcd (data in .soa/etcd) and every service of soa.yaml
  soa up --etcd-port 0            # etcd on any free port
  soa up --only greeter,billing   # a subset
  soa scale greeter 4             # (from another terminal) 4 instances of greeter
""",
)
@click.option("--etcd-port", type=click.IntRange(0, 65535), default=None, metavar="PORT",
              help="port of the embedded etcd (default: the port of soa.yaml's first endpoint;"
                   " 0 for any free one)")
@click.option("--only", metavar="NAMES", help="comma-separated services to start (default: all)")
@click.option("--timeout", type=click.FloatRange(1, 600), default=60.0, show_default=True,
              metavar="S", help="seconds to wait for every instance to register")
@click.pass_obj
def up(obj, etcd_port, only, timeout):
    """Start etcd (or reuse one that answers on soa.yaml's endpoint) and every service of
    soa.yaml (instances: N of each), show their status from the registry, and on Ctrl-C or
    SIGTERM stop them all (each deregisters) and then etcd. Children die with it, even on
    SIGKILL. Other commands find its etcd through .soa/up.json."""
    from soa.up import run_up

    run_up(obj.config, etcd_port=etcd_port,
           services=only.split(",") if only else None, timeout=timeout, echo=click.echo)
