"""``soa gen``: Go, PHP or Node.js client code from Thrift IDL, ready for its package manager."""

import click

from .options import Command


@click.command(cls=Command, examples="""
  soa gen go --idl idl/greeter.thrift --out clients/go --module example.com/acme/clients
  soa gen php --idl idl/greeter.thrift --out clients/php
  soa gen node --idl idl/greeter.thrift --out clients/node --package greeter
""")
@click.argument("language", type=click.Choice(["go", "php", "node"]))
@click.option("--idl", "idl_path", required=True, type=click.Path(dir_okay=False),
              help="the Thrift IDL file (its includes are generated too)")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False),
              help="the folder to write the package into")
@click.option("--module", metavar="PATH", help="Go module path for go.mod (required for go)")
@click.option("--package", metavar="NAME", help="composer/npm package name")
@click.option("--service", metavar="THRIFT_NAME",
              help="the service whose idl_hash is written (when the IDL defines several)")
@click.option("--name", metavar="SOA_NAME",
              help="its soa service name (default: GreeterService -> greeter)")
def gen(language, idl_path, out_dir, module, package, service, name):
    """Run the Apache Thrift compiler and lay its output out as a Go module (go.mod), a PSR-4
    composer package (composer.json) or an npm package (package.json).

    Generated code replaces the previous generation; an existing manifest is kept. The
    service's soa name and idl_hash go beside the code (soa_idl.go, soa_idl.js, SoaIdl.php), for
    the plugins' idl_mismatch policy.
    """
    from soa.scaffolding.gen import generate

    if language == "go" and not module:
        raise click.UsageError("go needs --module, the Go module path (e.g. example.com/shop)")
    result = generate(language, idl_path, out_dir, module=module, package=package,
                      service=service, name=name)
    state = "wrote" if result.manifest_written else "kept"
    click.echo(f"generated {len(result.files)} file(s) in {result.out}; {state} "
               f"{result.manifest.name}")
