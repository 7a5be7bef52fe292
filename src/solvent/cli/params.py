"""`solvent params`: the default model parameters, and their governance (propose a bounded step, dry-run it on a
book, apply it with an audit record)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import TYPE_CHECKING, Literal

import click

from solvent.cli.guards import fail_cleanly
from solvent.cli.options import history_option, market_option, now_option, params_option, portfolio_option

if TYPE_CHECKING:
    from solvent.formats.governance import ParamsDiff

_CURRENT_PARAMS = "The current solvent.params/1 file (default: built-in)."
_HISTORY = "solvent.history/1 file, for scenarios that need it."
_LIVE_BOOK = "solvent.portfolio/1 file: the live book."


@click.group(invoke_without_command=True)
@click.pass_context
def params(context: click.Context) -> None:
    """Print the default model parameters (solvent.params/1 JSON): edit and pass with --params.

    Subcommands govern changes: propose (calibrate a bounded step), diff (dry run on a book), apply (audited)."""
    if context.invoked_subcommand is None:
        from solvent.params import MarginParams

        click.echo(MarginParams().to_json().decode())


@params.command("show")
@params_option()
@fail_cleanly
def params_show(params_path: str | None) -> None:
    """Print the parameters of a file (or the defaults) with every field."""
    from solvent.convert.inputs import load_params

    click.echo(load_params(params_path).to_json().decode())


def _utc(when: datetime | None) -> datetime | None:
    return None if when is None else (when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC))


@params.command("propose")
@portfolio_option(_LIVE_BOOK)
@market_option("solvent.market/1 JSON file: the market now.")
@params_option(_CURRENT_PARAMS)
@history_option(_HISTORY)
@click.option(
    "--depth-market", "depth_markets", multiple=True, help="An earlier market snapshot (repeat): depth drops."
)
@click.option(
    "--signal", "signal_path", default=None, help="solvent.signal/1 CSV (timestamp,value): an external signal."
)
@click.option(
    "--signal-scales",
    type=click.Choice(["vol_floor", "liquidity_stress"]),
    default="vol_floor",
    show_default=True,
    help="The target the signal may scale.",
)
@click.option("--proposed-by", default="solvent calibrator", show_default=True, help="Who or what proposes.")
@now_option()
@click.option("--out", "out_path", required=True, help="Where to write the solvent.proposal/1 JSON.")
@fail_cleanly
def params_propose(
    portfolio_path: str,
    market_path: str,
    params_path: str | None,
    history_path: str | None,
    depth_markets: tuple[str, ...],
    signal_path: str | None,
    signal_scales: Literal["vol_floor", "liquidity_stress"],
    proposed_by: str,
    now: datetime | None,
    out_path: str,
) -> None:
    """Calibrate targets from market data and propose one bounded step toward each."""
    from solvent.governance.run import propose_from_files, write_json

    proposal = propose_from_files(
        portfolio_path,
        market_path,
        params_path,
        proposed_by=proposed_by,
        history=history_path,
        depth_markets=depth_markets,
        signal=signal_path,
        signal_target=signal_scales,
        now=_utc(now),
    )
    write_json(out_path, proposal)
    for change in proposal.changes:
        click.echo(f"{change.path}: {change.current!r} -> {change.proposed!r} (target {change.target!r})")
    click.echo(f"proposal: {out_path}")


@params.command("diff")
@click.option("--proposal", "proposal_path", required=True, help="solvent.proposal/1 JSON file.")
@params_option(_CURRENT_PARAMS)
@portfolio_option(_LIVE_BOOK)
@market_option()
@history_option(_HISTORY)
@click.option("--out", "out_path", default=None, help="Write the solvent.params-diff/1 JSON here.")
@fail_cleanly
def params_diff(
    proposal_path: str,
    params_path: str | None,
    portfolio_path: str,
    market_path: str,
    history_path: str | None,
    out_path: str | None,
) -> None:
    """Dry run: each account's IM and MM before and after, who becomes liquidatable. Changes nothing."""
    from solvent.governance.run import diff_from_files, write_json

    diff = diff_from_files(proposal_path, params_path, portfolio_path, market_path, history_path)
    if out_path is not None:
        write_json(out_path, diff)
    _echo_totals(diff)


def _echo_totals(diff: ParamsDiff) -> None:
    t = diff.totals
    click.echo(
        f"accounts {t.accounts}: IM {t.im_before:,.2f} -> {t.im_after:,.2f} ({t.im_change:+,.2f}), "
        f"MM {t.mm_before:,.2f} -> {t.mm_after:,.2f} ({t.mm_change:+,.2f}); "
        f"newly liquidatable {t.newly_liquidatable}, no longer {t.no_longer_liquidatable}"
    )


@params.command("apply")
@click.option("--proposal", "proposal_path", required=True, help="solvent.proposal/1 JSON file.")
@params_option(_CURRENT_PARAMS)
@click.option("--approved-by", required=True, help="Who approves the change (recorded in the audit log).")
@click.option("--log", "log_path", required=True, help="The audit log (solvent.audit/1 JSONL), appended to.")
@click.option("--out", "out_path", required=True, help="Where to write the new solvent.params/1 JSON.")
@portfolio_option("The live book: its dry run goes into the log.", required=False)
@market_option("solvent.market/1 JSON file (with --portfolio).", required=False)
@history_option(_HISTORY)
@now_option()
@fail_cleanly
def params_apply(
    proposal_path: str,
    params_path: str | None,
    approved_by: str,
    log_path: str,
    out_path: str,
    portfolio_path: str | None,
    market_path: str | None,
    history_path: str | None,
    now: datetime | None,
) -> None:
    """Apply a proposal within its bounds and delays: write the new parameters and append the audit record."""
    from solvent.governance.run import apply_from_files

    if (portfolio_path is None) != (market_path is None):
        raise click.UsageError("--portfolio and --market go together")
    record, diff = apply_from_files(
        proposal_path,
        params_path,
        out_path,
        log_path,
        approved_by=approved_by,
        portfolio=portfolio_path,
        market=market_path,
        history=history_path,
        now=_utc(now),
    )
    if diff is not None:
        _echo_totals(diff)
    click.echo(
        f"applied #{record.seq}: params {record.params_before_sha256[:12]} -> {record.params_after_sha256[:12]}; "
        f"params: {out_path}; log: {log_path}"
    )
