"""The click options several commands share, each declared once: the input files (portfolio, market, parameters,
price history, the accounts at a stream's start), the output's format and destination, the venue rules' parameters,
the insurance fund, the demo's seed, the time of a governance step. A command passes its own help where the file
plays a particular part (the live book, the market now)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import click

from solvent.demo.defaults import DEMO_SEED

F = TypeVar("F", bound=Callable[..., Any])


def stacked(*options: Callable[[F], F]) -> Callable[[F], F]:
    """Several options as one decorator, listed in `--help` in the order given (as if written one above another)."""

    def apply(command: F) -> F:
        for option in reversed(options):
            command = option(command)
        return command

    return apply


def portfolio_option(
    help: str = "solvent.portfolio/1 file (.json or .parquet).", *, required: bool = True
) -> Callable[[F], F]:
    return click.option("--portfolio", "portfolio_path", required=required, default=None, help=help)


def market_option(help: str = "solvent.market/1 JSON file.", *, required: bool = True) -> Callable[[F], F]:
    return click.option("--market", "market_path", required=required, default=None, help=help)


def params_option(help: str = "solvent.params/1 JSON file (default: built-in).") -> Callable[[F], F]:
    return click.option("--params", "params_path", default=None, help=help)


def history_option(
    help: str = "Price history (CSV/Parquet) for fhs/mc scenarios.", *, required: bool = False
) -> Callable[[F], F]:
    return click.option("--history", "history_path", required=required, default=None, help=help)


def margin_inputs() -> Callable[[F], F]:
    """--portfolio, --market, --params, --history: what a margin run reads."""
    return stacked(portfolio_option(), market_option(), params_option(), history_option())


def accounts_option(*, required: bool) -> Callable[[F], F]:
    """--accounts FILE: a stream's or a venue's accounts at the start."""
    help = "solvent.portfolio/1 file: the accounts at the start."
    return click.option("--accounts", "accounts_path", required=required, default=None, help=help)


def format_option(*choices: str) -> Callable[[F], F]:
    return click.option("--format", "fmt", type=click.Choice(choices), default="table", show_default=True)


def out_option(help: str = "Write results here instead of standard output.") -> Callable[[F], F]:
    return click.option("--out", "out_path", default=None, help=help)


def insurance_fund_option(default: float = 0.0, help: str | None = "USD at the start.") -> Callable[[F], F]:
    return click.option("--insurance-fund", default=default, show_default=True, type=click.FloatRange(0.0), help=help)


def summary_option() -> Callable[[F], F]:
    return click.option(
        "--summary", "summary_path", default="summary.json", show_default=True, help="Summary file to write."
    )


def seed_option() -> Callable[[F], F]:
    return click.option("--seed", default=DEMO_SEED, show_default=True, type=int)


def baseline_params_option() -> Callable[[F], F]:
    """--baseline-params, for every command that margins under a venue rule."""
    return click.option(
        "--baseline-params",
        "baseline_params_path",
        default=None,
        help="solvent.baseline-params/1 JSON file: the venue rules' parameters (default: built-in).",
    )


def now_option() -> Callable[[F], F]:
    """--now: the time of a governance step."""
    return click.option(
        "--now",
        type=click.DateTime(["%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M:%S"]),
        default=None,
        help="The time of the step (ISO-8601, UTC without a zone; default: the clock).",
    )
