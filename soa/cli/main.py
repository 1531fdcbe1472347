"""``soa``: the group, its global options, and the one place errors become exit codes."""

import importlib
import os
import sys

import click

from .options import Examples

# command name -> "module:attribute"; modules load only when their command runs.
COMMANDS = {
    "registry": "soa.cli.registry_cmd:registry",
    "etcd": "soa.cli.etcd_cmd:etcd",
    "serve": "soa.cli.serve_cmd:serve",
    "call": "soa.cli.call_cmd:call",
    "up": "soa.cli.up_cmd:up",
    "scale": "soa.cli.scale_cmd:scale",
    "new": "soa.cli.new_cmd:new",
    "gen": "soa.cli.gen_cmd:gen",
    "idl": "soa.cli.idl_cmd:idl",
    "monitor": "soa.cli.monitor_cmd:monitor",
    "top": "soa.cli.top_cmd:top",
}


class LazyGroup(Examples, click.Group):
    """soa's own commands, plus the ones the project's soa.yaml names under ``commands:``
    (imported from its ``pythonpath``; a soa.yaml that does not load adds none)."""

    def list_commands(self, ctx):
        own = [name for name in COMMANDS if self._module_exists(name)]
        return own + sorted(set(self._project(ctx)) - set(own))

    def get_command(self, ctx, name):
        target = COMMANDS.get(name)
        if target is not None and self._module_exists(name):
            module, attribute = target.split(":")
            return getattr(importlib.import_module(module), attribute)
        project = self._project(ctx)
        if name not in project:
            return None
        from soa.errors import ConfigError
        from soa.server.loading import add_import_paths

        config, target = project[name]
        add_import_paths(config.import_paths)
        module, attribute = target.split(":")
        try:
            return getattr(importlib.import_module(module), attribute)
        except (ImportError, AttributeError) as e:
            raise ConfigError(f"cannot load command {name!r} ({target}): {e}",
                              source=config.source, path=f"commands.{name}") from e

    @staticmethod
    def _project(ctx):
        from soa.config import load_config
        from soa.errors import SoaError

        try:
            config = load_config(ctx.params.get("config_path"), check_idl=False)
        except SoaError:
            return {}
        return {name: (config, target) for name, target in config.commands.items()}

    @staticmethod
    def _module_exists(name):
        module = COMMANDS[name].split(":")[0]
        return importlib.util.find_spec(module) is not None


@click.group(
    cls=LazyGroup,
    examples="""
  soa etcd                       # a local etcd for development
  soa registry ls                # what is running
  soa serve greeter --port 0     # serve one service from soa.yaml
  soa call greeter ping          # call it through discovery
  soa up                         # etcd and every service of soa.yaml
  soa top                        # live calls/s, errors and latency of every instance
  soa --log-format json serve greeter   # one JSON object per log line
""",
)
@click.option("--config", "config_path", metavar="PATH", help="soa.yaml to use [env SOA_CONFIG]")
@click.option("--etcd", "etcd_endpoints", metavar="ENDPOINTS",
              help="comma-separated etcd endpoints [env SOA_ETCD_ENDPOINTS]")
@click.option("-v", "--verbose", count=True, help="more logging (-vv for debug)")
@click.option("--log-format", type=click.Choice(["text", "json"]), default="text",
              envvar="SOA_LOG_FORMAT", show_default=True,
              help="log lines as text, or one JSON object per line [env SOA_LOG_FORMAT]")
@click.version_option(package_name="soa")
@click.pass_context
def cli(ctx, config_path, etcd_endpoints, verbose, log_format):
    """soa: Thrift services that find each other through etcd."""
    from .context import CliContext

    ctx.obj = CliContext(config_path, etcd_endpoints, verbose, log_format)


def main(argv=None):
    """Console entry point: gevent set-up, then the group, with one line per error.

    Run as the console script (``argv`` None), the process ends with ``os._exit`` after
    flushing: grpc's background poller (the etcd client's transport) can abort during
    interpreter teardown under gevent, which would turn a finished command into a crash. Called
    with an ``argv`` list (in-process, as tests do), it raises ``SystemExit`` as usual.
    """
    if argv is not None:
        _run(argv)
        sys.exit(0)
    try:
        _run(None)
        code = 0
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


def _run(argv):
    from soa import entry

    entry.init()
    from soa.errors import ConfigError, SoaError

    try:
        # Outside standalone mode click returns ctx.exit()'s code instead of exiting.
        code = cli.main(args=argv, prog_name="soa", standalone_mode=False)
        if isinstance(code, int) and code != 0:
            sys.exit(code)
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.exceptions.Exit as e:
        sys.exit(e.exit_code)
    except click.UsageError as e:  # one line, like every other error; exit 2
        where = e.ctx.command_path if e.ctx is not None else "soa"
        click.echo(f"error: {e.format_message()} (see '{where} --help')", err=True)
        sys.exit(2)
    except click.ClickException as e:
        click.echo(f"error: {e.format_message()}", err=True)
        sys.exit(e.exit_code)
    except ConfigError as e:
        click.echo(f"error: {e}", err=True)
        sys.exit(2)
    except SoaError as e:
        click.echo(f"error: {e}", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as e:  # never a traceback for the user; SOA_DEBUG=1 shows it
        if os.environ.get("SOA_DEBUG"):
            raise
        click.echo(f"error: {type(e).__name__}: {e}", err=True)
        sys.exit(1)
    sys.exit(0)
