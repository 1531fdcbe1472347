"""``soa demo``: the shop's purchase flow through the running shop; ``--up`` runs the shop too.

The shop's soa.yaml registers it (``commands: {demo: services.demo_cmd:demo}``), so the
framework's CLI knows nothing of the shop.
"""

import shutil
import sys
import time

import click

from soa.cli.options import Command
from soa.config import load_config
from soa.fleet import Fleet, format_status, run_config, start_etcd
from soa.observe.top import measured
from soa.up import config_file


@click.command(
    cls=Command,
    examples="""
  soa demo --up                   # fresh etcd and shop in .soa/demo, the flow, then stop
  soa up &  soa demo              # against a running shop
""",
)
@click.option("--up", "start", is_flag=True,
              help="start etcd and every service first (fresh data in .soa/demo), stop after")
@click.pass_obj
def demo(obj, start):
    """Browse, order, run a flash sale with a burst of buyers while instances are killed,
    cancel, count notifications.

    The last line is a JSON summary. Exits 1 if anything oversold or any call failed.
    """
    from services.demo import summary_line

    if start:
        summary = demo_up(obj.config, echo=click.echo)
    else:
        summary = run_demo_against(obj.config, echo=click.echo)
    click.echo(summary_line(summary))
    if summary["oversold"] or summary["failed_calls"]:
        sys.exit(1)


def run_demo_against(config, echo=print):
    """The flow against whatever is registered in the configured etcd."""
    from services.demo import run_demo

    echo(f"soa demo against etcd {','.join(config.etcd.endpoints)} prefix {config.etcd.prefix}")
    with measured(config.etcd, echo, "the purchase flow"):
        return run_demo(config, echo)


def demo_up(config, echo=print):
    """Fresh etcd and shop under ``.soa/demo``, the flow, then stop everything."""
    from services.demo import run_demo

    started = time.monotonic()
    path = config_file(config)
    base = path.parent / ".soa" / "demo"
    shutil.rmtree(base, ignore_errors=True)
    etcd = start_etcd(base / "etcd")
    try:
        demo_path = run_config(path, base, etcd.endpoint)
        fleet = Fleet(demo_path, etcd.endpoint, log_dir=base / "logs")
        try:
            count = sum(fleet.config.service(s).instances for s in fleet.services)
            echo(f"starting etcd {etcd.endpoint} and {count} service processes "
                 f"(data and logs in {base})")
            fleet.start(progress=lambda child, done, total: echo(
                f"  [{done}/{total}] {child.service} #{child.index} at {child.address}"))
            echo(format_status(fleet.status()))
            echo(f"shop up in {time.monotonic() - started:.1f}s")
            demo_config = load_config(str(demo_path), etcd.endpoint)
            with measured(demo_config.etcd, echo, "the purchase flow"):
                summary = run_demo(demo_config, echo, fleet=fleet)
        finally:
            _removed, left = fleet.stop()
    finally:
        etcd.stop()
    echo(f"stopped everything; {left} key(s) left; total {time.monotonic() - started:.1f}s")
    return summary
