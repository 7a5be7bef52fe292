"""`solvent provenance FILE`: what made a solvent output (docs/formats.md, "Provenance")."""

from __future__ import annotations

import sys

import click

from solvent.cli.guards import fail_cleanly


@click.command("provenance")
@click.argument("path", metavar="FILE")
@click.option("--check", is_flag=True, help="Re-hash the inputs (paths as given, from here): exit 1 if one changed.")
@click.option("--json", "as_json", is_flag=True, help="Print the provenance as JSON.")
@fail_cleanly
def provenance(path: str, check: bool, as_json: bool) -> None:
    """Print what made a solvent output (JSON, Parquet or HTML report): the engine, the digests of the parameters
    and of each input. With --check: exit 1 when an input is missing or its bytes differ now."""
    import msgspec

    from solvent.formats.provenance import check_inputs, header_lines, read_provenance

    found = read_provenance(path)
    click.echo(msgspec.json.format(msgspec.json.encode(found), indent=2) if as_json else "\n".join(header_lines(found)))
    if check:
        changed = check_inputs(found)
        for role, what in changed.items():
            click.echo(f"changed: {role}: {what}", err=True)
        if changed:
            sys.exit(1)
        click.echo(f"OK: the {len(found.inputs)} inputs are unchanged", err=True)
