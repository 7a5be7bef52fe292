"""The command line: parses arguments, calls the library, prints. Bad input exits 2, one line, no traceback.

The group is lazy (issue 14 item 7): `COMMANDS` names each command's module and its one-line help, so
`solvent --help` lists them without importing any, and `solvent CMD` imports CMD's module alone; each module
imports the library inside its commands, so that `solvent CMD --help` loads none of it either.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from types import MappingProxyType

import click

from solvent.cli.lazy import LazyCommand, LazyGroup

#: Every command: where it lives and its help's first sentence (tests/test_cli_lazy.py holds them equal).
COMMANDS: Mapping[str, LazyCommand] = MappingProxyType(
    {
        "backtest": LazyCommand(
            "solvent.cli.backtest:backtest",
            "Backtest margin models on a price history: coverage (Kupiec, Christoffersen, Basel zone), "
            "procyclicality; per-date output in dates.csv and dates.parquet; with --portfolio, each account of a "
            "book too.",
        ),
        "crash": LazyCommand(
            "solvent.cli.demo:crash",
            "Write issue 4's scripted crash (BTC -40% within an hour, its book thinning by half) for `solvent stream`.",
        ),
        "crif": LazyCommand(
            "solvent.cli.simm:crif",
            "A CRIF (delta and vega per account and asset, from the Greeks) for `solvent simm` (docs/simm.md).",
        ),
        "demo": LazyCommand(
            "solvent.cli.demo:demo",
            "Build a realistic synthetic venue on embedded defaults, margin it, summarise and report.",
        ),
        "ingest": LazyCommand(
            "solvent.cli.service:ingest",
            "Feed a feed file into a durable venue: restored from its store (or started there), seen records skipped.",
        ),
        "keys": LazyCommand(
            "solvent.cli.service:keys",
            "API keys for `solvent serve` (solvent.keys/1: names, roles, SHA-256 of each key).",
        ),
        "margin": LazyCommand(
            "solvent.cli.margin:margin",
            "Margin every account: IM, MM, equity, health, liquidatable, IM terms and Greeks.",
        ),
        "nats-run": LazyCommand(
            "solvent.cli.service:nats_run",
            "Run a venue on NATS JetStream: feed records from <prefix>.feed.>, events to <prefix>.events, until "
            "SIGTERM.",
        ),
        "params": LazyCommand(
            "solvent.cli.params:params",
            "Print the default model parameters (solvent.params/1 JSON): edit and pass with --params.",
        ),
        "provenance": LazyCommand(
            "solvent.cli.provenance:provenance",
            "Print what made a solvent output (JSON, Parquet or HTML report): the engine, the digests of the "
            "parameters and of each input.",
        ),
        "prove": LazyCommand(
            "solvent.cli.proof:prove",
            "Commit every account's equity, IM and MM to a Merkle-sum tree; write the solvency statement (root, "
            "totals, Cover 2 with --portfolio) and the tree, and with --proofs each account's inclusion proof.",
        ),
        "schema": LazyCommand("solvent.cli.schema:schema", "Write the JSON Schema of every file format."),
        "serve": LazyCommand("solvent.cli.service:serve", "Run the HTTP API over a venue (docs/service.md)."),
        "simm": LazyCommand(
            "solvent.cli.simm:simm", "ISDA SIMM of every portfolio in one or more CRIF files (docs/simm.md)."
        ),
        "stream": LazyCommand(
            "solvent.cli.stream:stream",
            "Replay a feed through the streaming engine, or follow a live one: write its events (solvent.events/1) "
            "and a summary.",
        ),
        "stress": LazyCommand(
            "solvent.cli.stress:stress",
            "Replay crash episodes (and, with --synthetic, a synthetic market's day) through the cascade simulator "
            "under several margin models (and, with --history, backtest them on a price history); write a report "
            "with the models compared across both.",
        ),
        "verify": LazyCommand(
            "solvent.cli.proof:verify",
            "Check one account's inclusion proof against a published root (and totals), without the book.",
        ),
    }
)


@click.group(cls=LazyGroup, lazy=COMMANDS)
@click.version_option(package_name="solvent")
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    default="warning",
    show_default=True,
    help="The library's log lines (stderr); the commands' own output is unchanged.",
)
def main(log_level: str) -> None:
    """solvent: multi-factor margin for derivatives venues."""
    logging.basicConfig(level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
