"""Does a VPIN-scaled requirement lower exceptions or procyclicality? The study behind docs/model.md, "Order-flow
toxicity": solvent.lab.toxicity_backtest on Coinbase's hourly BTC bars (../shared/data), printed as a table.

Run: `.venv/bin/python benchmarks/toxicity_study.py` (default history:
../shared/data/prices/coinbase_btcusd_hourly_2017_2019.csv; `--history` another hourly CryptoDataDownload file).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from solvent.lab.toxicity_backtest import toxicity_backtest
from solvent.market.history import read_hourly_volume
from solvent.params import MarginParams

HISTORY = (
    Path(__file__).resolve().parents[1].parent / "shared" / "data" / "prices" / "coinbase_btcusd_hourly_2017_2019.csv"
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--history", default=str(HISTORY))
    args = parser.parse_args()
    history, volume = read_hourly_volume(args.history)
    result = toxicity_backtest(history, volume, MarginParams(), ["multi", "vol_only"])
    summary = result.summary()
    runs = ("plain", "scaled", "bounded")
    table = Table(title=f"VPIN-scaled margin, {summary['days']} days ({summary['days_raised']} raised)")
    for column in ("model, portfolio", "exceptions", "capital locked", "max 1-day rise", "max 5-day rise"):
        table.add_column(column)
    for key in summary["plain"]:
        row = [summary[run][key] for run in runs]
        table.add_row(
            key,
            " / ".join(str(r["exceptions"]) for r in row),
            " / ".join(f"{r['capital_locked']:.2%}" for r in row),
            " / ".join(f"{r['max_increase_1d']:.0%}" for r in row),
            " / ".join(f"{r['max_increase_5d']:.0%}" for r in row),
        )
    console = Console(width=160)
    console.print(table)
    console.print("columns: plain / scaled / bounded")
    raised = result.multiplier[np.searchsorted(result.daily.timestamps, result.plain.dates)] > 1.0
    for model in result.plain.models:
        for p, portfolio in enumerate(result.plain.portfolios):
            hit = result.plain.loss[p] > result.plain.requirement[model][p]
            console.print(
                f"{model} {portfolio}: exceptions on raised days {int((hit & raised).sum())} of {int(hit.sum())}"
            )
    console.print(
        f"mean |move| over the MPOR after raised days {summary['mean_abs_move_raised']:.2%}, after the others "
        f"{summary['mean_abs_move_not_raised']:.2%}; vol floor x signal binding on {summary['floor_binding_days']} days"
    )


if __name__ == "__main__":
    main()
