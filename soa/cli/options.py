"""Shared CLI pieces: help that ends with an Examples block, and common options."""

import click


class Examples:
    """Mix into a click Command or Group: ``examples="..."`` is printed at the end of --help."""

    def __init__(self, *args, examples=None, **kwargs):
        self.examples = examples
        super().__init__(*args, **kwargs)

    def format_epilog(self, ctx, formatter):
        super().format_epilog(ctx, formatter)
        if self.examples:
            formatter.write_paragraph()
            formatter.write_text("Examples:")
            for line in self.examples.strip("\n").splitlines():
                formatter.write(line + "\n")


class Command(Examples, click.Command):
    pass


class Group(Examples, click.Group):
    pass


json_option = click.option("--json", "as_json", is_flag=True, help="machine-readable output")
