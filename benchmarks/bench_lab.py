"""`make bench`: the stress lab's performance target (issue 5), beside a baseline measured in the same run.

Target: a one-day episode at one-second steps over 100,000 accounts simulates in under a minute on 2 cores.
Measured here: the one-day Black Thursday episode (2020-03-12) over `--accounts` traders at `--step` seconds
(default 60 s: 1,440 margin cycles), and one hour of it at 1 s steps over a tenth of them; the one-day, 1 s,
full-size figure is extrapolated from the per-cycle cost. Baseline: one `margin_book` of the whole population
from scratch, the floor of a cycle that re-margins every account.

Run: `make bench` (or `.venv/bin/python benchmarks/bench_lab.py --accounts 100000`).
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime

import numpy as np
from rich.console import Console
from rich.table import Table

from solvent.engine.margin import margin_book
from solvent.lab.cascade import CascadeConfig, PopulationSpec, market_for, population
from solvent.lab.episodes import load_episode
from solvent.lab.stress import run_episode
from solvent.market.state import build_market_state
from solvent.params import MarginParams

TARGET_SECONDS = 60.0
DAY_SECONDS = 86_400.0


def episode_seconds(accounts: int, step: float, hours: float | None = None) -> tuple[float, int]:
    """(wall seconds, margin cycles) of the multi-factor model along 2020-03-12 (`hours`: only that much)."""
    episode = load_episode("2020-03-12")
    config = CascadeConfig(block_seconds=step, factor_samples=0)
    if hours is not None:
        import msgspec

        episode = msgspec.structs.replace(
            episode, moves=tuple(msgspec.structs.replace(m, hours=hours) for m in episode.moves), depth=()
        )
    run = run_episode(
        episode,
        ["multi"],
        MarginParams(),
        spec=PopulationSpec(n_accounts=accounts),
        config=config,
        step_seconds=step,
        seed=7,
    )
    result = run.results["multi"]
    return result.wall_seconds, int(result.seconds.size)


def baseline(accounts: int) -> float:
    """Seconds of one margin_book of the whole population, from scratch (scenarios, risk arrays, every term)."""
    assets, prices = ("BTC", "ETH"), (60_000.0, 3_000.0)
    book = population(assets, prices, PopulationSpec(n_accounts=accounts), 7)
    market = market_for(assets, prices, (0.6, 0.6), (None, None), datetime(2026, 1, 1, tzinfo=UTC))
    state = build_market_state(list(book.instruments), market, MarginParams())
    margin_book(book, state, MarginParams())  # warm the kernels
    start = time.perf_counter()
    margin_book(book, state, MarginParams())
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=100_000)
    parser.add_argument("--step", type=float, default=60.0, help="seconds per path point and margin cycle")
    args = parser.parse_args()
    console = Console()
    day, cycles = episode_seconds(args.accounts, args.step)
    hour, hour_cycles = episode_seconds(max(1, args.accounts // 10), 1.0, hours=1.0)
    per_cycle = day / cycles
    floor = baseline(args.accounts)
    table = Table(title="Stress lab: cascade simulator (2020-03-12, multi-factor model)")
    for column in ("measure", "seconds", "baseline (same run)", "target", "met"):
        table.add_column(column, justify="left" if column == "measure" else "right")
    table.add_row(
        f"one day, {args.accounts:,} traders, {args.step:g} s steps ({cycles:,} cycles)",
        f"{day:.1f}",
        f"{floor * cycles:.1f} = {cycles:,} x margin_book {floor * 1000:.0f} ms",
        "",
        "",
    )
    table.add_row(
        f"one hour, {max(1, args.accounts // 10):,} traders, 1 s steps ({hour_cycles:,} cycles)",
        f"{hour:.1f}",
        "",
        "",
        "",
    )
    extrapolated = per_cycle * DAY_SECONDS
    table.add_row(
        f"one day, {args.accounts:,} traders, 1 s steps (extrapolated from the per-cycle cost)",
        f"{extrapolated:,.0f}",
        "",
        f"< {TARGET_SECONDS:g}",
        "yes" if extrapolated < TARGET_SECONDS else "no",
    )
    console.print(table)
    console.print(f"per cycle: {per_cycle * 1000:.1f} ms at {args.accounts:,} traders; numpy {np.__version__}")


if __name__ == "__main__":
    main()
