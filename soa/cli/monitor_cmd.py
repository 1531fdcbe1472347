"""``soa monitor``: evaluate the alert rules against the registry's instances; ``--check`` only
validates them."""

import click

from .options import Command


def _alerts(obj, rules_path):
    """The rules: ``--rules FILE`` when given, else soa.yaml's ``alerts:`` (ConfigError: exit 2)."""
    from soa.errors import ConfigError
    from soa.monitor.rules import load_rules

    config = obj.config
    if rules_path:
        return config, load_rules(rules_path, root=config.root)
    if config.alerts is None:
        raise ConfigError("no alerts: section (and no --rules FILE given)", source=config.source)
    return config, config.alerts


@click.command(
    cls=Command,
    examples="""
  soa monitor --check                     # validate soa.yaml's alerts: rules, then exit
  soa monitor                             # evaluate every 5 s; notifications on stdout
  soa monitor --rules alerts.yaml --interval 1s --state /var/lib/soa/alerts.json
""",
)
@click.option("--rules", "rules_path", metavar="FILE", type=click.Path(dir_okay=False),
              help="a YAML file of rules (the alerts: mapping) instead of soa.yaml's")
@click.option("--check", is_flag=True, help="only validate the rules")
@click.option("--interval", metavar="DURATION", help="seconds or 5s/1m between evaluations "
                                                     "[alerts.interval, default 5s]")
@click.option("--state", "state_path", metavar="PATH", type=click.Path(dir_okay=False),
              help="the alert state file [alerts.state]")
@click.pass_obj
def monitor(obj, rules_path, check, interval, state_path):
    """Scrape every registered instance's /metrics, evaluate the alert rules every interval, and
    send firing and resolved notifications (stdout or log, webhooks, a soa service call).

    Runs until SIGTERM or SIGINT. Alert state survives restarts (alerts.state).
    """
    import dataclasses
    import logging
    from pathlib import Path

    from soa.errors import ConfigError
    from soa.monitor.expr import duration

    config, alerts = _alerts(obj, rules_path)
    if interval is not None:
        seconds = duration(interval)
        if seconds is None or seconds <= 0:
            raise ConfigError(f"--interval: expected a duration such as 5s, got {interval!r}")
        alerts = dataclasses.replace(alerts, interval=seconds,
                                     scrape_timeout=min(alerts.scrape_timeout, seconds))
    if state_path:
        alerts = dataclasses.replace(alerts, state=Path(state_path))
    alerts.check(config)
    if check:
        click.echo(f"ok: {len(alerts.rules)} rule(s) in {alerts.source}")
        return
    if logging.getLogger().level > logging.INFO:
        logging.getLogger("soa.monitor").setLevel(logging.INFO)
    _run(config, alerts)


def _run(config, alerts):
    import gevent.event

    from soa.monitor.monitor import Monitor
    from soa.server.signals import on_stop_signals

    monitor = Monitor(config, alerts)
    done = gevent.event.Event()
    on_stop_signals(lambda signum: done.set())
    monitor.start()
    try:
        done.wait()
    finally:
        monitor.stop()
