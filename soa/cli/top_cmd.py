"""``soa top [SERVICE]``: a live table of every instance's calls/s, errors and latency."""

import json
import sys

import click

from .options import Command

# Cursor home; erase to the end of each line and, after the table, to the end of the screen:
# the frame is rewritten in place without a blank flash.
_HOME, _EOL, _EOS = "\x1b[H", "\x1b[K", "\x1b[J"


@click.command(
    cls=Command,
    examples="""
  soa top                         # every service, refreshed every second (Ctrl-C quits)
  soa top greeter                 # one service's instances
  soa top --once                  # one table after one interval, for a shell
  soa top --once --json           # the same as JSON, for scripts
""",
)
@click.argument("service", required=False)
@click.option("--once", is_flag=True, help="print one snapshot (rates over one interval) and exit")
@click.option("--json", "as_json", is_flag=True, help="JSON output (one object per snapshot)")
@click.option("--interval", type=click.FloatRange(0.1, 60), default=1.0, show_default=True,
              metavar="S", help="seconds between refreshes (and the window of the rates)")
@click.pass_obj
def top(obj, service, once, as_json, interval):
    """Live calls/s, error %, p50/p99 latency, calls in flight, weight and version of every
    instance found in the registry, scraped from its metrics endpoint.

    Instances that join or leave the registry show up or go at the next redraw (at once, on the
    registry's watch). On a terminal the table is redrawn in place; otherwise (a pipe, a file)
    each refresh is printed as plain lines, without escape codes.
    """
    from soa.observe.top import Top, snapshot, table

    watcher = Top(obj.config.etcd, service)
    try:
        if not watcher.watch.ready.wait(obj.config.etcd.dial_timeout * 2):
            raise click.ClickException(
                f"etcd at {', '.join(obj.config.etcd.endpoints)} did not answer")
        watcher.sample()
        if once:
            _sleep(interval)
            watcher.sample()
            rows = watcher.rows()
            click.echo(json.dumps(snapshot(rows), indent=2) if as_json else table(rows))
            return
        _live(watcher, interval, as_json, table, snapshot)
    except KeyboardInterrupt:
        pass
    finally:
        watcher.close()


def _live(watcher, interval, as_json, table, snapshot):
    import time

    tty = sys.stdout.isatty() and not as_json
    if tty:
        sys.stdout.write("\x1b[2J")  # clear once; frames then overwrite in place
    next_full = time.monotonic() + interval
    while True:
        rows = watcher.rows()
        if as_json:
            click.echo(json.dumps(snapshot(rows)))
        elif tty:
            stamp = time.strftime("%H:%M:%S")
            lines = [f"soa top  {stamp}  every {interval:g}s  (Ctrl-C quits)", ""]
            lines += table(rows).splitlines()
            sys.stdout.write(_HOME + "".join(line + _EOL + "\n" for line in lines) + _EOS)
            sys.stdout.flush()
        else:
            click.echo(f"-- {time.strftime('%H:%M:%S')}")
            click.echo(table(rows))
        # Wake at the next interval, or at once when the registry's set changes.
        watcher.changed.clear()
        left = next_full - time.monotonic()
        if left > 0 and watcher.changed.wait(left):
            watcher.sample(only_new=True)
            continue
        next_full = time.monotonic() + interval
        watcher.sample()


def _sleep(seconds):
    import gevent

    gevent.sleep(seconds)
