"""``soa new``: generate a working service (handler, test, soa.yaml entry) from Thrift IDL."""

import click

from .options import Command


@click.command(cls=Command, examples="""
  soa new hello --idl idl/hello.thrift
  soa new greeter --idl idl/greeter.thrift --service GreeterService
  soa new hello --idl idl/hello.thrift --force     # regenerate, overwriting
""")
@click.argument("name")
@click.option("--idl", "idl_path", required=True, type=click.Path(dir_okay=False),
              help="the Thrift IDL file")
@click.option("--service", "thrift_service", metavar="THRIFT_SERVICE",
              help="the IDL service to implement (needed when the IDL defines several)")
@click.option("--force", is_flag=True, help="overwrite existing files and the soa.yaml entry")
@click.pass_context
def new(ctx, name, idl_path, thrift_service, force):
    """Generate services/NAME: a handler with one stub per IDL method, a test module that
    serves it against a real etcd and calls every method, and its soa.yaml entry.

    The project root is the folder of soa.yaml (--config, or the nearest one upwards), else the
    current folder, where soa.yaml is then created.
    """
    from soa.scaffolding.new import find_root, plan

    root, yaml_path = find_root(ctx.obj.config_path if ctx.obj else None)
    scaffold = plan(name, idl_path, root, yaml_path, thrift_service)
    written = scaffold.write(force=force)
    for path in written:
        click.echo(f"wrote {path}")
    click.echo(
        f"next: implement {scaffold.handler}, then `soa serve {name}` and"
        f" `pytest tests/test_service_{name.replace('-', '_')}.py`"
    )
