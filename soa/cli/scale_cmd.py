"""``soa scale SERVICE N``: change how many instances of a service a running ``soa up`` runs."""

import click

from .options import Command


@click.command(
    cls=Command,
    examples="""
  soa scale greeter 6             # start instances until 6 are registered
  soa scale greeter 2             # stop the newest ones; each drains before it exits
  soa scale greeter 4 --json      # the result as one JSON object
""",
)
@click.argument("service")
@click.argument("count", type=click.IntRange(0, 64), metavar="N")
@click.option("--json", "as_json", is_flag=True, help="print the result as JSON")
@click.pass_obj
def scale(obj, service, count, as_json):
    """Run N instances of SERVICE under the `soa up` of this soa.yaml. New instances are
    started and waited for until registered; removed ones go through the normal stop sequence
    (deregister, grace period, drain) before they exit. Prints the new status table."""
    import json

    from soa.fleet import format_status
    from soa.up import scale as run

    reply = run(obj.config, service, count)
    if as_json:
        click.echo(json.dumps({k: reply[k] for k in ("service", "before", "instances",
                                                    "started", "stopped", "status")}))
        return
    click.echo(f"{service}: {reply['before']} -> {reply['instances']} instances "
               f"({reply['started']} started, {reply['stopped']} stopped)")
    click.echo(format_status(reply["status"]))
