"""`solvent schema`: the JSON Schema of every file format, written to a folder."""

from __future__ import annotations

import click

from solvent.cli.guards import fail_cleanly


@click.command()
@click.option("--out", "out_dir", default="docs/schemas", show_default=True, help="Folder to write into.")
@fail_cleanly
def schema(out_dir: str) -> None:
    """Write the JSON Schema of every file format."""
    from solvent.jsonschemas import write_schemas

    for path in write_schemas(out_dir):
        click.echo(str(path))
