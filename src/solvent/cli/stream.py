"""`solvent stream`: replay a feed through the streaming engine, or follow a live one. The engine loads only when
the command runs."""

from __future__ import annotations

import contextlib
import sys
from typing import IO, TYPE_CHECKING

import click

from solvent.cli.guards import fail_cleanly, stop_if_terminated, stop_on_signals, terminate_cleanly
from solvent.cli.options import (
    accounts_option,
    history_option,
    insurance_fund_option,
    market_option,
    params_option,
    summary_option,
)

if TYPE_CHECKING:
    from solvent.stream.follow import Followed
    from solvent.stream.replay import ReplayFiles


@click.command()
@click.option("--feed", "feed_path", required=True, help="solvent.feed/1 file (.ndjson or .parquet).")
@accounts_option(required=False)
@market_option("solvent.market/1 JSON file: the market at the start.", required=False)
@params_option()
@history_option()
@insurance_fund_option()
@click.option("--block-ms", default=None, type=click.IntRange(1), help="Batch records by time windows of N ms.")
@click.option("--state-in", default=None, help="Resume a stream saved with --state-out (instead of accounts/market).")
@click.option("--state-out", default=None, help="Save the final state here (solvent.state/1).")
@click.option("--events", "events_path", default="events.ndjson", show_default=True, help="Events file to write.")
@summary_option()
@click.option(
    "--screen",
    is_flag=True,
    help="Health screen: re-margin only the accounts a move can have changed (the same events, faster).",
)
@click.option(
    "--no-margin-calls",
    is_flag=True,
    help="No margin-call status (a perpetual DEX): healthy down to MM, then liquidatable.",
)
@click.option("--first-flags-only", is_flag=True, help="Publish each account's early flag once, its first.")
@click.option(
    "--follow",
    is_flag=True,
    help="Live: read NDJSON as it arrives (--feed - for stdin, or a growing file) until end of input or SIGTERM; "
    "events written as published (--events - for stdout).",
)
@fail_cleanly
@terminate_cleanly
def stream(
    feed_path: str,
    accounts_path: str | None,
    market_path: str | None,
    params_path: str | None,
    history_path: str | None,
    insurance_fund: float,
    block_ms: int | None,
    state_in: str | None,
    state_out: str | None,
    events_path: str,
    summary_path: str,
    screen: bool,
    no_margin_calls: bool,
    first_flags_only: bool,
    follow: bool,
) -> None:
    """Replay a feed through the streaming engine, or follow a live one: write its events (solvent.events/1) and a
    summary."""
    from rich.console import Console

    from solvent.console import print_stream_summary
    from solvent.convert.inputs import load_params
    from solvent.formats.provenance import provenance_of
    from solvent.stream.replay import ReplayFiles, replay

    if state_in is None and (accounts_path is None or market_path is None):
        raise click.UsageError("give --accounts and --market, or --state-in")
    inputs = {
        "feed": None if follow or feed_path == "-" else feed_path,
        "accounts": accounts_path,
        "market": market_path,
    }
    inputs |= {"params": params_path, "history": history_path, "state_in": state_in}
    used = {"margin": load_params(params_path) if state_in is None else None}  # a saved state carries its own
    files = ReplayFiles(
        feed=feed_path,
        events=events_path,
        summary=summary_path,
        accounts=accounts_path,
        market=market_path,
        params=params_path,
        history=history_path,
        insurance_fund=insurance_fund,
        state_in=state_in,
        state_out=state_out,
        block_ms=block_ms,
        screen=screen,
        margin_calls=not no_margin_calls,
        reflag=not first_flags_only,
        provenance=provenance_of(inputs, used),
    )
    if follow:
        if feed_path.lower().endswith(".parquet"):
            raise click.UsageError("--follow reads NDJSON (a Parquet file is not written line by line)")
        followed = _follow(files)
        print_stream_summary(followed.summary, Console(stderr=events_path == "-"))
        if followed.unapplied_bytes:
            click.echo(f"stopped with a partial last line ({followed.unapplied_bytes} bytes) unapplied", err=True)
        return
    if "-" in (feed_path, events_path):
        raise click.UsageError("--feed - and --events - (standard input and output) need --follow")
    console = Console(stderr=True)
    with console.status("replaying the feed") as status:

        def progress(done: int, total: int) -> None:
            stop_if_terminated()
            status.update(f"replaying the feed: {done:,} of {total:,} records")

        summary = replay(files, progress)
    print_stream_summary(summary, Console())
    click.echo(f"events: {events_path}\nsummary: {summary_path}" + (f"\nstate: {state_out}" if state_out else ""))


def _follow(files: ReplayFiles) -> Followed:
    """`stream --follow`: stdin or the file, events to stdout or the file (continued by a resumed follower)."""
    from solvent.stream.follow import follow

    with stop_on_signals() as stop, contextlib.ExitStack() as stack:
        fd = sys.stdin.fileno() if files.feed == "-" else stack.enter_context(open(files.feed, "rb")).fileno()

        def open_events() -> IO[bytes]:
            if files.events == "-":
                return sys.stdout.buffer
            return stack.enter_context(open(files.events, "ab" if files.state_in else "wb"))

        return follow(files, fd, open_events, stop)
