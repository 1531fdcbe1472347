"""``soa idl``: check an IDL file, and tell wire-breaking changes between two versions."""

import json
import sys

import click

from .options import Command, Group, json_option

include_option = click.option(
    "-I", "--include", "include_dirs", multiple=True, type=click.Path(file_okay=False),
    help="also look for included files here (repeatable)",
)


@click.group(cls=Group, examples="""
  soa idl check idl/greeter.thrift
  soa idl check idl/*.thrift --strict
  git show HEAD:idl/greeter.thrift > /tmp/greeter.thrift
  soa idl diff /tmp/greeter.thrift idl/greeter.thrift -I idl
""")
def idl():
    """Check Thrift IDL files and compare their versions."""


@idl.command(cls=Command, examples="""
  soa idl check idl/greeter.thrift
  soa idl check idl/*.thrift --strict     # missing doc comments fail too
""")
@click.argument("paths", nargs=-1, required=True, type=click.Path(dir_okay=False))
@click.option("--strict", is_flag=True, help="exit 1 when a service or method lacks a doc comment")
@include_option
@json_option
def check(paths, strict, include_dirs, as_json):
    """Load each file with thriftpy2 and with the Apache Thrift compiler, and report services
    and methods that have no doc comment. Exit 2 if a file does not load."""
    from soa.scaffolding.idl_check import check as check_file

    warnings = []
    for path in paths:
        report = check_file(path, include_dirs or None)
        warnings += report.warnings
        if as_json:
            click.echo(json.dumps({"file": str(path), "ok": True, "services": report.services,
                                   "warnings": [w.as_dict() for w in report.warnings]}))
        else:
            for warning in report.warnings:
                click.echo(str(warning))
            click.echo(f"{path}: ok ({len(report.services)} service(s), "
                       f"{len(report.warnings)} warning(s))")
    if strict and warnings:
        raise click.ClickException(f"{len(warnings)} doc comment warning(s) (--strict)")


@idl.command(cls=Command, examples="""
  soa idl diff old/greeter.thrift idl/greeter.thrift
  soa idl diff /tmp/greeter.thrift idl/greeter.thrift -I idl --json
""")
@click.argument("old", type=click.Path(dir_okay=False))
@click.argument("new", type=click.Path(dir_okay=False))
@include_option
@json_option
def diff(old, new, include_dirs, as_json):
    """List the changes from OLD to NEW that matter on the wire, breaking ones first.

    Exit 1 when any change breaks existing clients or servers, else 0.
    """
    from soa.scaffolding.idl_diff import BREAKING, diff_files

    changes = diff_files(old, new, include_dirs or None)
    for change in changes:
        if as_json:
            click.echo(json.dumps(change.as_dict()))
        else:
            label = "BREAKING" if change.level == BREAKING else "safe"
            click.echo(f"{label:<9} {change.where}: {change.what}")
    breaking = sum(1 for c in changes if c.level == BREAKING)
    if not as_json:
        click.echo(f"{breaking} breaking, {len(changes) - breaking} safe change(s)")
    if breaking:
        sys.exit(1)
