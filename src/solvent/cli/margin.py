"""`solvent margin`: every account's IM, MM, equity and health; one account's attribution with --explain; a venue
rule beside the multi-factor IM with --baseline. The library loads when the command runs, not for its --help."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from solvent.choices import BASELINE_NAMES
from solvent.cli.collector import one_shot
from solvent.cli.guards import fail_cleanly, terminate_cleanly
from solvent.cli.options import baseline_params_option, format_option, margin_inputs, out_option
from solvent.cli.output import emit
from solvent.errors import InputError

if TYPE_CHECKING:
    from solvent.engine.book import Book
    from solvent.formats.provenance import Provenance
    from solvent.formats.schemas import MarketSnapshot
    from solvent.market.history import PriceHistory
    from solvent.params import MarginParams


@click.command()
@margin_inputs()
@format_option("table", "json", "parquet")
@out_option()
@click.option("--explain", "explain_account", default=None, metavar="ACCOUNT", help="Attribute ACCOUNT's market risk.")
@click.option(
    "--baseline",
    "baseline_name",
    type=click.Choice(BASELINE_NAMES),
    default=None,
    help="Also margin every account under this venue rule and compare with the multi-factor IM.",
)
@baseline_params_option()
@fail_cleanly
@terminate_cleanly
@one_shot
def margin(
    portfolio_path: str,
    market_path: str,
    params_path: str | None,
    history_path: str | None,
    fmt: str,
    out_path: str | None,
    explain_account: str | None,
    baseline_name: str | None,
    baseline_params_path: str | None,
) -> None:
    """Margin every account: IM, MM, equity, health, liquidatable, IM terms and Greeks.

    With --explain ACCOUNT: each of ACCOUNT's positions' contribution to its market-risk term instead.
    With --baseline NAME: each account's IM and MM under that venue rule next to its multi-factor IM
    (the rule's parameters from --baseline-params FILE, else the built-in defaults).
    """
    from solvent.api import baseline_margin_for, compute_margin
    from solvent.console import print_baseline, print_margin
    from solvent.convert.inputs import load_baseline_params, load_params, load_portfolio
    from solvent.convert.results import result_json, write_result
    from solvent.formats.io import load_market
    from solvent.formats.provenance import provenance_of
    from solvent.market.history import read_history

    if baseline_name is not None and (explain_account is not None or fmt == "parquet"):
        raise click.UsageError("--baseline prints table or json, without --explain")
    if baseline_params_path is not None and baseline_name is None:
        raise click.UsageError("--baseline-params needs --baseline NAME")
    if fmt == "parquet" and (out_path is None or explain_account is not None):
        raise click.UsageError(
            "--format parquet needs --out FILE" if explain_account is None else "--explain prints table or json"
        )
    params = load_params(params_path)
    baselines = load_baseline_params(baseline_params_path)
    book = load_portfolio(portfolio_path)
    market = load_market(market_path)
    history = read_history(history_path) if history_path else None
    files = {"portfolio": portfolio_path, "market": market_path, "params": params_path, "history": history_path}
    used = {"margin": params, "baseline": baselines if baseline_name else None}
    provenance = provenance_of(files | {"baseline_params": baseline_params_path}, used)
    if explain_account is not None:
        _explain(
            book, market, params, history, explain_account, fmt, out_path, (portfolio_path, market_path), provenance
        )
        return
    result = compute_margin(book, market, params, history, portfolio_source=portfolio_path, market_source=market_path)
    market_time = market.time.isoformat()
    if baseline_name is not None:
        baseline = baseline_margin_for(
            book, market, baseline_name, baselines, params, portfolio_source=portfolio_path, market_source=market_path
        )
        emit(
            fmt,
            out_path,
            lambda console: print_baseline(baseline, result.im, console),
            lambda: baseline.to_json(market_time, result.im, provenance).decode(),
        )
    elif fmt == "parquet" and out_path is not None:  # --format parquet without --out was refused above
        write_result(result, out_path, fmt, market_time, provenance)
        click.echo(f"wrote {result.n_accounts:,} accounts to {out_path}", err=True)
    else:
        emit(
            fmt,
            out_path,
            lambda console: print_margin(result, console),
            lambda: result_json(result, market_time, provenance).decode(),
        )


def _explain(
    book: Book,
    market: MarketSnapshot,
    params: MarginParams,
    history: PriceHistory | None,
    account: str,
    fmt: str,
    out_path: str | None,
    sources: tuple[str, str],
    provenance: Provenance,
) -> None:
    """`margin --explain ACCOUNT`: the attribution as a table or a solvent.explain/1 JSON document."""
    from solvent.api import explain_margin
    from solvent.console import print_explain

    if account not in set(book.account_ids.tolist()):
        raise InputError("", "--explain", f"unknown account {account!r}")
    attribution = explain_margin(
        book, market, account, params, history, portfolio_source=sources[0], market_source=sources[1]
    )
    emit(
        fmt,
        out_path,
        lambda console: print_explain(attribution, console),
        lambda: attribution.to_json(market.time.isoformat(), provenance).decode(),
    )
