"""Issue 16 items 3-4: the parameter dry run on a demo venue and VPIN on an hourly history, each beside a
baseline measured in the same run.

- `dry_run` (margin under the parameters before and after, the per-account diff) against one `compute_margin`
  of the same book: the dry run's own cost above its two margin passes is the per-account document.
- `vpin` (bulk classification, the bucket fill from the cumulative volume, the rolling sum) against a loop over
  bars filling the buckets one bar at a time (the plain way; the same buckets, tests/test_toxicity.py's twin
  does it unit by unit).

Run: `.venv/bin/python benchmarks/bench_governance.py [--accounts 100000] [--bars 20000]`.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from datetime import UTC, datetime

import numpy as np
from rich.console import Console
from rich.table import Table

from solvent.api import compute_margin
from solvent.demo.run import DEMO_SEED, demo_history, demo_market, demo_params
from solvent.demo.venue import synthetic_book, venue_instruments
from solvent.formats.governance import Change, Proposal
from solvent.governance.bounds import get_value
from solvent.governance.digest import params_sha256
from solvent.governance.proposal import dry_run
from solvent.market.toxicity import PAPER_WINDOW, bulk_buy_fraction, causal_sigma, volume_buckets, vpin_by_bucket


def best_of(repeats: int, run: Callable[[], object]) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def buckets_by_bar_loop(volume: np.ndarray, share: np.ndarray, size: float) -> np.ndarray:
    """The buy volume of each complete bucket, filling one bar at a time (a bar may span several buckets)."""
    out, buy, filled = [], 0.0, 0.0
    for v, s in zip(volume.tolist(), share.tolist(), strict=True):
        left = v
        while left > 0.0:
            take = min(left, size - filled)
            buy += take * s
            filled += take
            left -= take
            if filled >= size:
                out.append(buy)
                buy, filled = 0.0, 0.0
    return np.array(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--accounts", type=int, default=100_000)
    parser.add_argument("--bars", type=int, default=20_000)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    table = Table(title="issue 16: governance and toxicity")
    for column in ("what", "seconds", "baseline", "baseline seconds"):
        table.add_column(column)

    params = demo_params()
    history = demo_history(DEMO_SEED)
    market = demo_market(history, params, DEMO_SEED)
    prices = {name: quote.price for name, quote in market.assets.items()}
    book = synthetic_book(venue_instruments(market.time, prices), prices, args.accounts, DEMO_SEED)
    path = "liquidity.stress"
    proposal = Proposal(
        proposed_by="bench",
        created=datetime(2026, 1, 1, tzinfo=UTC),
        base_params_sha256=params_sha256(params),
        changes=[Change(path=path, current=get_value(params, path), proposed=2.5, target=2.5)],
    )
    compute_margin(book, market, params, history)  # compile
    margin_s = best_of(args.repeats, lambda: compute_margin(book, market, params, history))
    diff_s = best_of(args.repeats, lambda: dry_run(proposal, params, book, market, history))
    table.add_row(f"dry run, {args.accounts:,} accounts", f"{diff_s:.3f}", "one compute_margin", f"{margin_s:.3f}")

    rng = np.random.default_rng(7)
    price = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.01, args.bars)))
    volume = rng.uniform(10.0, 200.0, args.bars)
    size = float(volume.sum()) / (args.bars / 24) / PAPER_WINDOW
    change = np.concatenate(([np.nan], np.diff(np.log(price))))
    share = bulk_buy_fraction(change, causal_sigma(change, 720))

    def fast() -> object:
        return vpin_by_bucket(volume_buckets(volume, share, size))

    fast_s = best_of(args.repeats, fast)
    loop_s = best_of(args.repeats, lambda: buckets_by_bar_loop(volume, share, size))
    np.testing.assert_allclose(volume_buckets(volume, share, size).buy, buckets_by_bar_loop(volume, share, size))
    table.add_row(f"VPIN buckets, {args.bars:,} bars", f"{fast_s:.4f}", "loop over bars", f"{loop_s:.4f}")
    Console(width=140).print(table)


if __name__ == "__main__":
    main()
