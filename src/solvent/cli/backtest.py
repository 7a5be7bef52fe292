"""`solvent backtest`: margin models backtested on a price history (coverage tests, procyclicality), and with
--portfolio each account of a book too."""

from __future__ import annotations

import sys
from datetime import datetime
from typing import TYPE_CHECKING

import click

from solvent.cli.guards import fail_cleanly, terminate_cleanly
from solvent.cli.options import baseline_params_option, history_option, market_option, params_option, portfolio_option
from solvent.errors import InputError

if TYPE_CHECKING:
    import numpy as np

    from solvent.lab.backtest import Windows


@click.command()
@history_option("Price history (CSV/Parquet, solvent.history/1).", required=True)
@click.option(
    "--columns",
    "columns",
    default=None,
    help="Read --history as a foreign CSV: key=value pairs, e.g. 'skip=1,time=date,close=close,symbol=symbol'.",
)
@click.option("--from", "start", default=None, type=click.DateTime(), help="First date to backtest (UTC).")
@click.option("--to", "end", default=None, type=click.DateTime(), help="Last date whose MPOR closes (UTC).")
@click.option(
    "--windows",
    type=click.Choice(["independent", "overlapping"]),
    default="independent",
    show_default=True,
    help="Test every MPOR-th date (independent) or every date with overlap-adjusted bounds.",
)
@click.option(
    "--models",
    default=",".join(("static", "dydx", "vol_only", "multi")),
    show_default=True,
    help="Comma-separated: static, dydx, synthetix, drift, deribit, vol_only, multi.",
)
@click.option("--assets", default=None, help="Comma-separated assets, each backtested on its own dates (default: all).")
@portfolio_option("Also backtest this book's accounts (the dirty backtest; needs --market).", required=False)
@market_option("solvent.market/1 file the --portfolio is priced at.", required=False)
@params_option("solvent.params/1 JSON file for multi and vol_only.")
@baseline_params_option()
@click.option(
    "--out", "out_dir", default="solvent-backtest", show_default=True, help="Folder for report.html and summary.json."
)
@fail_cleanly
@terminate_cleanly
def backtest(
    history_path: str,
    columns: str | None,
    start: datetime | None,
    end: datetime | None,
    windows: Windows,
    models: str,
    assets: str | None,
    portfolio_path: str | None,
    market_path: str | None,
    params_path: str | None,
    baseline_params_path: str | None,
    out_dir: str,
) -> None:
    """Backtest margin models on a price history: coverage (Kupiec, Christoffersen, Basel zone), procyclicality;
    per-date output in dates.csv and dates.parquet; with --portfolio, each account of a book too."""
    from rich.console import Console

    from solvent.console import RunProgress, print_backtest, print_portfolio_backtest
    from solvent.convert.inputs import load_baseline_params, load_params, load_portfolio
    from solvent.formats.io import load_market
    from solvent.formats.provenance import provenance_of
    from solvent.lab.backtest_dates import write_dates, write_portfolio
    from solvent.lab.margin_backtest import run_backtest
    from solvent.lab.models import check_models
    from solvent.lab.portfolio_backtest import run_portfolio_backtest
    from solvent.lab.report import write_backtest_report
    from solvent.market.history import parse_columns, read_history

    if (portfolio_path is None) != (market_path is None):
        raise InputError("--portfolio", "--market", "the portfolio backtest needs both")
    history = read_history(history_path, None if columns is None else parse_columns(columns))
    book = None if portfolio_path is None else load_portfolio(portfolio_path)
    market = None if market_path is None else load_market(market_path)
    first, last = _day(start), _day(end)
    dirty = None
    params = load_params(params_path)
    baselines = load_baseline_params(baseline_params_path)
    try:
        chosen = check_models([m.strip() for m in models.split(",") if m.strip()])
    except ValueError as error:
        raise InputError("--models", models, str(error)) from None
    names = history.assets if assets is None else tuple(a.strip() for a in assets.split(",") if a.strip())
    runs = []
    with RunProgress(len(names) + (book is not None), Console(stderr=True)) as progress:
        for name in names:
            progress.start(f"backtesting {name}")
            run = run_backtest(
                history,
                chosen,
                params,
                assets=(name,),
                source=history_path,
                baselines=baselines,
                start=first,
                end=last,
                windows=windows,
            )
            runs.append(run)
        if book is not None and market is not None:
            progress.start("backtesting the portfolio's accounts")
            dirty = run_portfolio_backtest(
                book,
                market,
                history,
                chosen,
                params,
                baselines=baselines,
                start=first,
                end=last,
                windows=windows,
                source=str(portfolio_path),
                market_source=str(market_path),
            )
    files = {"history": history_path, "portfolio": portfolio_path, "market": market_path, "params": params_path}
    provenance = provenance_of(
        files | {"baseline_params": baseline_params_path}, {"margin": params, "baseline": baselines}
    )
    report, summary = write_backtest_report(runs, out_dir, history_path, baseline_params_path, provenance)
    dates_csv, dates_parquet = write_dates(runs, out_dir, provenance)
    console = Console() if sys.stdout.isatty() else Console(width=200)  # a pipe or a file: tables not truncated
    for run in runs:
        print_backtest(run.summary(), console)
    click.echo(f"report: {report}\nsummary: {summary}\ndates: {dates_csv}, {dates_parquet}")
    if dirty is not None:
        portfolio_json, portfolio_csv, portfolio_parquet = write_portfolio(dirty, out_dir, provenance)
        print_portfolio_backtest(dirty.summary(), console)
        click.echo(f"portfolio: {portfolio_json}, {portfolio_csv}, {portfolio_parquet}")


def _day(value: datetime | None) -> np.datetime64 | None:
    """A naive --from/--to datetime (UTC) as datetime64[s]."""
    import numpy as np

    return None if value is None else np.datetime64(value.replace(tzinfo=None), "s")
