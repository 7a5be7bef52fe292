"""`make bench`: the margin core's performance targets, each beside a baseline measured in the same run.

Targets (issue 2): 1,000,000 accounts x ~7 positions over ~2,000 instruments x 256 scenarios, ES +
Greeks, <= 0.5 s on 2 cores after JIT warm-up (goal 0.25 s), peak memory <= 2 GB; loading 1,000,000
accounts from Parquet <= 1 s; CLI cold start (numba compile) bounded by the on-disk cache.

Run: `make bench` (or `.venv/bin/python benchmarks/bench_margin.py --accounts 1000000`); the 200-asset venue
beside the 20-asset one is benchmarks/bench_assets.py.
"""

from __future__ import annotations

import argparse
import functools
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import msgspec
import numpy as np
from rich.console import Console
from rich.table import Table

from solvent.convert.inputs import load_portfolio
from solvent.engine.book import CROSS, Book, book_to_arrow, canonical_book
from solvent.engine.kernel import held_margins, margins_numpy
from solvent.engine.margin import margin_book
from solvent.engine.riskarrays import build_risk_arrays
from solvent.factors.held import held_assets
from solvent.formats.io import write_portfolio_parquet
from solvent.formats.schemas import AssetQuote, Depth, Instrument, MarketSnapshot, OracleSource
from solvent.market.state import build_market_state
from solvent.params import (
    CollateralParams,
    ConcentrationParams,
    LiquidityParams,
    MarginParams,
    McParams,
    ScenarioParams,
)
from solvent.scenarios import generate_scenarios

ROOT = Path(__file__).resolve().parents[1]
NOW = datetime(2026, 11, 25, tzinfo=UTC)


def best_of(repeats: int, run: Callable[[], object]) -> float:
    """Fastest wall time of `repeats` runs (the machines are noisy; the minimum is the signal)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        run()
        times.append(time.perf_counter() - start)
    return min(times)


def with_factor_inputs(market: MarketSnapshot) -> MarketSnapshot:
    """The same market with parametric depth, a vol bid-ask and five fresh oracle sources per asset."""
    assets = {}
    for a, (name, quote) in enumerate(sorted(market.assets.items())):
        offsets = (0.9995, 0.9998, 1.0, 1.0003, 1.0006)
        sources = [
            OracleSource(name=f"s{k}", price=quote.price * o, confidence=quote.price * 1e-4, timestamp=NOW)
            for k, o in enumerate(offsets)
        ]
        units = (1 + a % 3) / quote.price  # 1-3 USD million per 1% of depth
        depth = Depth(spread=0.0004, depth_1pct=2e6 * units, depth_2pct=5e6 * units)
        assets[name] = msgspec.structs.replace(quote, depth=depth, vol_spread=0.02, sources=sources)
    return msgspec.structs.replace(market, assets=assets)


def bench_venue(n_assets: int = 20) -> tuple[list[Instrument], MarketSnapshot]:
    """~2,000 instruments: per asset spot, perp, 4 futures and 4 expiries x 12 strikes x call/put."""
    instruments: list[Instrument] = []
    assets = {}
    for a in range(n_assets):
        name = f"A{a:02d}"
        price = 10.0 ** (1 + a % 4)
        assets[name] = AssetQuote(price=price, vol=0.4 + 0.05 * (a % 8))
        instruments += [
            Instrument(id=f"{name}-SPOT", kind="spot", underlying=name),
            Instrument(id=f"{name}-PERP", kind="perp", underlying=name),
        ]
        for e in range(4):
            expiry = NOW + timedelta(days=7 * 4**e)
            instruments.append(Instrument(id=f"{name}-F{e}", kind="future", underlying=name, expiry=expiry))
            for k in range(12):
                for kind in ("call", "put"):
                    instruments.append(
                        Instrument(
                            id=f"{name}-O{e}-{k}-{kind}",
                            kind="option",
                            underlying=name,
                            expiry=expiry,
                            strike=price * (0.7 + 0.05 * k),
                            option_type=kind,
                        )
                    )  # type: ignore[arg-type]
    assets["USDC"] = AssetQuote(price=1.0, vol=0.0)
    return instruments, MarketSnapshot(schema="solvent.market/1", time=NOW, assets=assets)


def bench_book(instruments: list[Instrument], n_accounts: int, seed: int = 1) -> Book:
    """Accounts with 1..13 positions (mean ~7) drawn uniformly over the instruments."""
    rng = np.random.default_rng(seed)
    counts = rng.integers(1, 14, n_accounts)
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    inst = rng.integers(0, len(instruments), offsets[-1]).astype(np.int32)
    linear = np.array([i.kind != "option" for i in instruments])[inst]
    return Book(
        instruments=tuple(instruments),
        account_ids=np.array([f"a{n}" for n in range(n_accounts)], dtype=object),
        pos_offsets=offsets,
        pos_instrument=inst,
        pos_quantity=rng.normal(0, 5, offsets[-1]),
        pos_entry=np.where(linear, 100.0, np.nan),
        collateral_assets=("USDC",),
        col_offsets=np.arange(n_accounts + 1, dtype=np.int64),
        col_asset=np.zeros(n_accounts, dtype=np.int32),
        col_amount=rng.lognormal(8, 1, n_accounts),
        risk_tier=np.full(n_accounts, np.nan),
        mode=np.full(n_accounts, CROSS, dtype=np.int8),
        parent=np.full(n_accounts, None, dtype=object),
    )


def gather_rows(instrument: np.ndarray, rows: np.ndarray, chunk: int = 20_000) -> float:
    """Sum the risk-array row of every position (the bytes the kernel must read), chunk by chunk."""
    total = np.zeros(rows.shape[1])
    for lo in range(0, instrument.size, chunk):
        total += rows[instrument[lo : lo + chunk]].sum(axis=0)
    return float(total.sum())


def cli_start(cache_dir: Path, cold: bool) -> float:
    """Wall time of `solvent margin` on the examples, with an empty (cold) or filled numba cache."""
    env = dict(os.environ, NUMBA_CACHE_DIR=str(cache_dir))
    if cold:
        shutil.rmtree(cache_dir, ignore_errors=True)
    command = [
        str(Path(sys.executable).with_name("solvent")),
        "margin",
        "--portfolio",
        str(ROOT / "examples/portfolio.json"),
        "--market",
        str(ROOT / "examples/market.json"),
        "--format",
        "json",
    ]
    start = time.perf_counter()
    subprocess.run(command, env=env, check=True, capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--mc-stress-weight",
        type=float,
        default=McParams().stress_weight,
        help="the Monte Carlo's correlation stress (0: the joint draws alone, one group, as before issue 12)",
    )
    args = parser.parse_args()
    console = Console(width=150)
    rows: list[tuple[str, str, str]] = []

    instruments, market = bench_venue()
    mc = McParams(n_scenarios=256, stress_weight=args.mc_stress_weight)
    params = MarginParams(scenarios=ScenarioParams(method="mc", mc=mc))
    state = build_market_state(instruments, market, params)
    scenarios = generate_scenarios(state, params)
    build_s = best_of(3, lambda: build_risk_arrays(state, scenarios, 1e-6))
    arrays = build_risk_arrays(state, scenarios, 1e-6)
    rows.append(
        (
            f"risk arrays ({len(instruments):,} instruments x {scenarios.n_scenarios} scen.)",
            f"{build_s * 1e3:.1f} ms",
            "Black-76 full revaluation",
        )
    )

    console.print(f"building {args.accounts:,} accounts ...")
    book = bench_book(instruments, args.accounts)
    n_pos = int(book.pos_offsets[-1])
    csr = (book.pos_offsets, book.pos_instrument, book.pos_quantity)
    held = held_assets(book.pos_offsets, arrays.instrument_asset[book.pos_instrument], arrays.n_assets)
    buffers = held_margins(*csr, arrays, 0.99, "es", held)  # JIT warm-up (or cache load); keeps the outputs
    fused = best_of(
        args.repeats, lambda: held_margins(*csr, arrays, 0.99, "es", held, out=buffers[0], out_greeks=buffers[1])
    )
    fresh = best_of(args.repeats, lambda: held_margins(*csr, arrays, 0.99, "es", held))
    peak_gb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2
    rows.append(
        (
            f"fused kernel: {args.accounts:,} accounts, {n_pos:,} positions, ES + Greeks (output buffers reused)",
            f"{fused:.3f} s",
            f"target <= 0.5 s (goal 0.25 s); peak RSS {peak_gb:.2f} GB (<= 2 GB)",
        )
    )
    greeks_mb = buffers[1].nbytes / 1e6
    rows.append(
        (
            "fused kernel, fresh outputs each call",
            f"{fresh:.3f} s",
            f"+ allocating and first-touching the {greeks_mb:.0f} MB Greeks (on the {held.n_rows:,} held rows)",
        )
    )
    twin = best_of(1, lambda: margins_numpy(*csr, arrays, 0.99, "es", chunk=50_000))
    rows.append(
        (
            "numpy twin (sparse @ dense, chunks of 50k, full sort)",
            f"{twin:.3f} s",
            f"baseline: fused is {twin / fused:.1f}x faster",
        )
    )
    bytes_read = [book.pos_quantity, book.pos_instrument, book.pos_offsets, arrays.instrument_pnl]
    total_bytes = sum(a.nbytes for a in bytes_read)
    bandwidth = best_of(args.repeats, lambda: [float(np.add.reduce(a, axis=None)) for a in bytes_read])
    rows.append(
        (
            f"bandwidth baseline: numpy sum over the book and risk arrays ({total_bytes / 1e6:.0f} MB)",
            f"{bandwidth:.3f} s",
            f"fused / this = {fused / bandwidth:.0f}",
        )
    )
    gathered = best_of(1, lambda: gather_rows(book.pos_instrument, arrays.instrument_pnl))
    row_gb = n_pos * arrays.instrument_pnl.shape[1] * 8 / 1e9
    rows.append(
        (
            f"gather baseline: numpy sum of one risk-array row per position ({row_gb:.1f} GB read)",
            f"{gathered:.3f} s",
            f"fused / this = {fused / gathered:.2f}",
        )
    )

    market_only = msgspec.structs.replace(
        params, liquidity=LiquidityParams(enabled=False), concentration=ConcentrationParams(enabled=False)
    )
    full_state = build_market_state(instruments, with_factor_inputs(market), params)
    every_factor = msgspec.structs.replace(params, collateral=CollateralParams(mode="haircut"))
    margin_book(book, state, market_only)  # warm-up of every kernel on both paths
    margin_book(book, full_state, params)
    margin_book(book, full_state, every_factor)
    base = best_of(args.repeats, lambda: margin_book(book, state, market_only))
    factors = best_of(args.repeats, lambda: margin_book(book, full_state, params))
    full = best_of(args.repeats, lambda: margin_book(book, full_state, every_factor))
    rows.append(("margin_book, market risk only (equity, MM, health included)", f"{base:.3f} s", "baseline"))
    rows.append(
        (
            "margin_book, liquidity, concentration, oracle and tier on (haircuts off, the default)",
            f"{factors:.3f} s",
            f"{factors / base:.2f}x market-risk only",
        )
    )
    rows.append(
        (
            "margin_book, every factor on (the above + collateral haircuts)",
            f"{full:.3f} s",
            f"{full / base:.2f}x market-risk only (target <= 1.5x)",
        )
    )

    with tempfile.TemporaryDirectory() as tmp:
        # The bench book's positions are in random order within each account: loading sorts and merges them
        # (the canonical book, issue 12 item 16); a file solvent wrote from a loaded book is already canonical.
        for order, written in (("canonical", canonical_book(book)), ("random", book)):
            path = Path(tmp) / f"portfolio-{order}.parquet"
            write_portfolio_parquet(written.instruments, book_to_arrow(written), path)
            load = best_of(3, functools.partial(load_portfolio, path))
            rows.append(
                (
                    f"load {args.accounts:,} accounts from Parquet ({path.stat().st_size / 1e6:.0f} MB), positions"
                    f" in {order} order",
                    f"{load:.3f} s",
                    "target <= 1 s" if order == "canonical" else "sorted and merged at load",
                )
            )
        cache = Path(tmp) / "numba-cache"
        cold = cli_start(cache, cold=True)
        warm = cli_start(cache, cold=False)
        rows.append(("CLI `solvent margin` on examples, empty numba cache", f"{cold:.2f} s", "compiles kernels"))
        rows.append(("CLI `solvent margin` on examples, numba cache filled", f"{warm:.2f} s", "cache=True"))

    table = Table(title=f"solvent benchmarks ({os.cpu_count()} cores)")
    for name in ("what", "time", "compared with"):
        table.add_column(name)
    for row in rows:
        table.add_row(*row)
    console.print(table)


if __name__ == "__main__":
    main()
