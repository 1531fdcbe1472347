"""``soa demo``: drive a purchase flow through the running shop; ``--up`` runs the shop too."""

import sys

import click

from .options import Command


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
    """Browse, order, run a flash sale with a burst of buyers, cancel, count notifications.

    The last line is a JSON summary. Exits 1 if anything oversold or any call failed.
    """
    from soa.shop_demo import summary_line
    from soa.shop_commands import demo_up, run_demo_against

    if start:
        summary = demo_up(obj.config, echo=click.echo)
    else:
        summary = run_demo_against(obj.config, echo=click.echo)
    click.echo(summary_line(summary))
    if summary["oversold"] or summary["failed_calls"]:
        sys.exit(1)
