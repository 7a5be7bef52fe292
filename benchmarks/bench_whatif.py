"""Pre-trade what-if: microseconds per `PreTradeChecker.check`, beside baselines measured in the same run.

Target: <= 50 us per check in process, after JIT warm-up, with liquidity, concentration and the oracle
buffer on. The venue is bench_margin's (~2,000 instruments on 20 assets, parametric depth, vol bid-ask,
five oracle sources per asset); one account with 7 positions. Baselines, same account, same run (the
2-core machines are noisy, so only ratios within one run mean much):

- `margin_book` on a one-account book: what a check costs without the what-if (scenarios, risk arrays,
  every term);
- `margins` alone, the fused kernel on prebuilt risk arrays: the market-risk term recomputed from the
  positions, no other term.

Each number is the median over many batches of the time per call. Run:
`.venv/bin/python benchmarks/bench_whatif.py [--scenarios 256 10000] [--batches 300]`.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np
from bench_margin import bench_venue, with_factor_inputs
from rich.console import Console
from rich.table import Table

from solvent.engine.book import CROSS, Book
from solvent.engine.kernel import margins
from solvent.engine.margin import margin_book
from solvent.engine.riskarrays import scenario_risk_arrays
from solvent.engine.whatif import PreTradeChecker, account_greeks, account_scenario_pnl, concentration_thresholds
from solvent.formats.schemas import Instrument, MarketSnapshot
from solvent.market.state import OPTION, MarketState, build_market_state
from solvent.params import ConcentrationParams, MarginParams, McParams, ScenarioParams


def per_call_us(run: Callable[[], object], batches: int, batch: int) -> float:
    """Median over `batches` of the mean time per call in a batch of `batch` calls, microseconds."""
    for _ in range(batch):  # warm-up (JIT, caches)
        run()
    times = []
    for _ in range(batches):
        start = time.perf_counter()
        for _ in range(batch):
            run()
        times.append((time.perf_counter() - start) / batch)
    return 1e6 * statistics.median(times)


def one_account(instruments: list[Instrument], pos_instrument: np.ndarray, rng: np.random.Generator) -> Book:
    """One account holding `pos_instrument` (normal quantities), 1M USDC; no entry prices needed here."""
    n = pos_instrument.size
    return Book(
        instruments=tuple(instruments),
        account_ids=np.array(["a0"], dtype=object),
        pos_offsets=np.array([0, n], dtype=np.int64),
        pos_instrument=pos_instrument.astype(np.int32),
        pos_quantity=rng.normal(0.0, 5.0, n),
        pos_entry=np.full(n, np.nan),
        collateral_assets=("USDC",),
        col_offsets=np.array([0, 1], dtype=np.int64),
        col_asset=np.zeros(1, dtype=np.int32),
        col_amount=np.array([1e6]),
        risk_tier=np.array([np.nan]),
        mode=np.array([CROSS], dtype=np.int8),
        parent=np.array([None], dtype=object),
    )


def measure(
    n_scen: int,
    instruments: list[Instrument],
    market: MarketSnapshot,
    rng: np.random.Generator,
    batches: int,
    batch: int,
) -> list[str]:
    """One table row: the checks and the baselines on `n_scen` MC scenarios (0: the SPAN grid)."""
    scenarios = ScenarioParams() if n_scen == 0 else ScenarioParams(method="mc", mc=McParams(n_scenarios=n_scen))
    params = MarginParams(scenarios=scenarios, concentration=ConcentrationParams(threshold=1e6))
    state = build_market_state(instruments, market, params)
    _, arrays = scenario_risk_arrays(state, params)
    long_t, short_t = concentration_thresholds(state, params)
    checker = PreTradeChecker(state, arrays, params, long_t, short_t)
    is_option = state.instruments.kind == OPTION
    options, linear = np.flatnonzero(is_option), np.flatnonzero(~is_option)
    held = np.concatenate([rng.choice(options, 4, replace=False), rng.choice(linear, 3, replace=False)])
    book = one_account(instruments, held, rng)
    pnl = account_scenario_pnl(book.pos_instrument, book.pos_quantity, arrays)
    greeks = account_greeks(book.pos_instrument, book.pos_quantity, arrays)
    lin, opt = int(linear[5]), int(options[7])

    def check_linear(lin: int = lin) -> object:
        return checker.check(pnl, greeks, 1e6, 1.0, lin, 2.0, float(state.forward[lin]), 1.0)

    def check_option(opt: int = opt) -> object:
        return checker.check(pnl, greeks, 1e6, 1.0, opt, -3.0, 10.0, 1.0)

    out = (np.empty(1), np.empty((1, arrays.n_assets, 3)))

    def kernel_only() -> object:
        return margins(
            book.pos_offsets, book.pos_instrument, book.pos_quantity, arrays, params.confidence, params.measure, out
        )

    def full(book: Book = book, state: MarketState = state, params: MarginParams = params) -> object:
        return margin_book(book, state, params)

    us_lin = per_call_us(check_linear, batches, batch)
    us_opt = per_call_us(check_option, batches, batch)
    us_kernel = per_call_us(kernel_only, batches, batch)
    us_full = per_call_us(full, 5, 1)
    return [
        "grid" if n_scen == 0 else f"mc {n_scen}",
        str(arrays.n_scenarios),
        f"{us_lin:.1f}",
        f"{us_opt:.1f}",
        f"{us_kernel:.1f}",
        f"{us_full:,.0f}",
        "<= 50" + (" ok" if max(us_lin, us_opt) <= 50.0 else " MISSED"),
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scenarios", type=int, nargs="+", default=[0, 256, 10_000], help="0: the SPAN grid")
    parser.add_argument("--batches", type=int, default=300)
    parser.add_argument("--batch", type=int, default=50)
    args = parser.parse_args()

    instruments, market = bench_venue()
    market = with_factor_inputs(market)
    rng = np.random.default_rng(3)
    table = Table(title="pre-trade what-if, microseconds per call (median)")
    for column in ("scenarios", "S", "check linear", "check option", "margins (kernel)", "margin_book", "target"):
        table.add_column(column, justify="right")
    for n_scen in args.scenarios:
        table.add_row(*measure(n_scen, instruments, market, rng, args.batches, args.batch))
    Console().print(table)
    Console().print(
        f"{len(instruments)} instruments, one account with 7 positions; liquidity, SIMM concentration and the "
        "oracle buffer on; ES at 0.99"
    )


if __name__ == "__main__":
    main()
