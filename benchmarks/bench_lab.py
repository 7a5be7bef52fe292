"""`make bench`: the stress lab's performance target (issue 5), beside a baseline measured in the same run.

Target: a one-day episode at one-second steps over 100,000 accounts simulates in under a minute on 2 cores.
Measured here: the one-day Black Thursday episode (2020-03-12) over `--accounts` traders at `--step` seconds
(default 1 s: 86,400 margin cycles) with the health screen, as `solvent stress` runs it (the engine watching
only what the results read). Baselines in the same run: the episode's first `--baseline-hours` as measured and
with every event watched (`CascadeConfig.all_events`: margin calls, every re-flag), the same without the screen
(every exposed account re-margined every cycle) extrapolated to the day from its per-cycle cost, and one
`margin_book` of the whole population from scratch (the floor of a cycle that re-margins every account).

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
from solvent.lab.cascade import CascadeConfig, PopulationSpec, PricePath, market_for, population, simulate
from solvent.lab.episodes import load_episode
from solvent.lab.stress import episode_venue
from solvent.market.state import build_market_state
from solvent.params import MarginParams

TARGET_SECONDS = 60.0
DAY_SECONDS = 86_400.0


def episode(
    accounts: int, step: float, screen: bool, hours: float | None = None, all_events: bool = False
) -> tuple[float, int, int]:
    """(wall seconds, margin cycles, account re-margins) of the multi-factor model along 2020-03-12, the whole
    day or its first `hours`."""
    venue = episode_venue(
        load_episode("2020-03-12"), spec=PopulationSpec(n_accounts=accounts), step_seconds=step, seed=7
    )
    path = venue.path
    if hours is not None:
        end = int(np.searchsorted(path.seconds, hours * 3600.0, side="right"))
        path = PricePath(path.seconds[:end], path.assets, path.prices[:end], path.depth[:end])
    config = CascadeConfig(block_seconds=step, factor_samples=0, screen=screen, all_events=all_events)
    result = simulate(venue.book, venue.market, MarginParams(), path, config)
    return result.wall_seconds, int(result.seconds.size), int(result.totals["accounts_remargined"])


def margin_book_seconds(accounts: int) -> float:
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
    parser.add_argument("--step", type=float, default=1.0, help="seconds per path point and margin cycle")
    parser.add_argument("--baseline-hours", type=float, default=1.0, help="hours of the all-events baseline")
    parser.add_argument("--unscreened-hours", type=float, default=0.25, help="hours of the unscreened baseline")
    args = parser.parse_args()
    console = Console(width=150)
    episode(1_000, 60.0, True, hours=1.0)  # compile and warm every kernel outside the timings
    day, cycles, screened = episode(args.accounts, args.step, True)
    lean = episode(args.accounts, args.step, True, hours=args.baseline_hours)
    full = episode(args.accounts, args.step, True, hours=args.baseline_hours, all_events=True)
    plain, plain_cycles, every = episode(args.accounts, args.step, False, hours=args.unscreened_hours)
    floor = margin_book_seconds(args.accounts)
    table = Table(title=f"Stress lab: 2020-03-12, multi-factor model, {args.accounts:,} traders, {args.step:g} s steps")
    for column in ("measure", "seconds", "per cycle (ms)", "re-margins per cycle", "target", "met"):
        table.add_column(column, justify="left" if column == "measure" else "right")
    table.add_row(
        f"the day with the health screen ({cycles:,} cycles)",
        f"{day:.1f}",
        f"{day / cycles * 1000:.2f}",
        f"{screened / cycles:,.0f}",
        f"< {TARGET_SECONDS:g}",
        "yes" if day < TARGET_SECONDS else "no",
    )
    for label, (seconds, n, remargins) in (("as measured", lean), ("every event watched", full)):
        table.add_row(
            f"baseline: first {args.baseline_hours:g} h, {label} ({n:,} cycles)",
            f"{seconds:.1f}",
            f"{seconds / n * 1000:.2f}",
            f"{remargins / n:,.0f}",
            "",
            "",
        )
    table.add_row(
        f"baseline: without the screen, first {args.unscreened_hours:g} h ({plain_cycles:,} cycles)",
        f"{plain:.1f}",
        f"{plain / plain_cycles * 1000:.2f}",
        f"{every / plain_cycles:,.0f}",
        "",
        "",
    )
    table.add_row(
        "baseline: without the screen, the day (extrapolated per cycle)",
        f"{plain / plain_cycles * cycles:,.0f}",
        "",
        "",
        "",
        "",
    )
    table.add_row("baseline: one margin_book of every account", f"{floor:.3f}", "", f"{args.accounts:,}", "", "")
    console.print(table)
    console.print(f"numpy {np.__version__}; screened day {plain / plain_cycles * cycles / day:.1f}x faster")


if __name__ == "__main__":
    main()
