"""``soa serve SERVICE``: run one service as soa.yaml describes it."""

import sys

import click

from .options import Command


@click.command(
    cls=Command,
    examples="""
  soa serve greeter                         # as soa.yaml says
  soa serve greeter --port 0                # any free port; the registry records the real one
  soa serve greeter --host 0.0.0.0 --advertise 10.0.0.5 --port 9090
  soa serve greeter --workers 4             # pre-fork 4 processes sharing one socket
  soa serve greeter --grace 2 --drain-timeout 30
""",
)
@click.argument("service")
@click.option("--host", metavar="HOST", help="address to bind [services.X.host]")
@click.option("--port", type=click.IntRange(0, 65535), metavar="PORT",
              help="port to bind, 0 for any free one [services.X.port]")
@click.option("--advertise", metavar="HOST",
              help="host to publish in the registry "
                   "(default: the bind host; 127.0.0.1 for 0.0.0.0)")
@click.option("--workers", type=click.IntRange(1, 256), metavar="N",
              help="worker processes sharing the socket [services.X.workers]")
@click.option("--grace", type=click.FloatRange(0, 600), metavar="S",
              help="seconds to keep serving after deregistering [services.X.grace_period]")
@click.option("--drain-timeout", type=click.FloatRange(0, 3600), metavar="S",
              help="seconds calls in flight get to finish [services.X.drain_timeout]")
@click.pass_obj
def serve(obj, service, host, port, advertise, workers, grace, drain_timeout):
    """Serve SERVICE: listen, register in etcd, and on SIGTERM deregister, drain and exit 0.

    A second SIGTERM/SIGINT exits at once.
    """
    import logging

    from soa.server import serve as run

    if logging.getLogger().level > logging.INFO:
        logging.getLogger("soa.server").setLevel(logging.INFO)
        logging.getLogger("soa.registry").setLevel(logging.INFO)
    result = run(service, obj.config, host=host, port=port, advertise=advertise,
                 workers=workers, grace=grace, drain_timeout=drain_timeout)
    code = getattr(result, "exit_code", 0) or 0
    if code:
        sys.exit(code)
