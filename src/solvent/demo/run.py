"""`solvent demo`: synthesise a venue on embedded defaults, margin it, summarise, write a report.

Everything comes from the package: a price history drawn from the shipped generator (GARCH(1,1)-t
fitted to real BTC/ETH/LTC prices, see market/synthetic.py), volatilities calibrated from it, a venue
of accounts over BTC/ETH/SOL spot, perpetuals, futures and options, and the default parameters with
filtered historical simulation. The inputs are written beside the report so `solvent margin`
reproduces the run.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar

import msgspec
import numpy as np
from rich.console import Console
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from solvent._extras import check_extra
from solvent.api import compute_margin
from solvent.convert.results import write_result
from solvent.demo.defaults import DEMO_ACCOUNTS, DEMO_SEED
from solvent.demo.report import print_summary, write_report
from solvent.demo.venue import ASSETS, OPTION_DAYS, expiry_at, synthetic_book, venue_instruments
from solvent.engine.book import book_to_arrow
from solvent.engine.results import MarginResult
from solvent.formats.io import atomic_output, write_portfolio_parquet
from solvent.formats.provenance import provenance_of
from solvent.formats.schemas import MARKET_SCHEMA, AssetQuote, Depth, MarketSnapshot, OracleSource, VolSurface
from solvent.market.history import PriceHistory, write_history
from solvent.market.synthetic import load_generator, synthetic_history
from solvent.market.volatility import calibrate_asset_vols
from solvent.params import FhsParams, MarginParams, ScenarioParams

T = TypeVar("T")

HISTORY_DAYS = 1500
#: The demo market's date: the synthetic history ends here.
DEMO_DATE = np.datetime64("2026-11-25", "D")
#: Implied-vol surface of the demo market: ATM vol = calibrated vol x premium, skew per unit log-moneyness.
IMPLIED_PREMIUM = 1.05
IMPLIED_SKEW = -0.10
#: Illustrative order books (docs/model.md, "Liquidity add-on"): BTC deep, SOL thin, written to the market
#: file as book curves (`demo_book_side`). asset: (spread, size within 1% of mid, size within 2%, vol bid-ask)
DEMO_DEPTH: dict[str, tuple[float, float, float, float]] = {
    "BTC": (0.0001, 800.0, 2_000.0, 0.02),
    "ETH": (0.0002, 10_000.0, 25_000.0, 0.03),
    "SOL": (0.0005, 60_000.0, 150_000.0, 0.05),
}

#: Illustrative oracle sources (docs/model.md, "Oracle uncertainty"): each quotes the close with a
#: seeded relative error of ORACLE_NOISE (1 sigma), a band of ORACLE_CONFIDENCE of the price, and is
#: 0-10 s old.
ORACLE_SOURCES: tuple[str, ...] = ("pyth", "chainlink", "binance", "coinbase", "okx")
ORACLE_NOISE = 0.0005
ORACLE_CONFIDENCE = 0.0002


def demo_params() -> MarginParams:
    """The demo's parameters: defaults, with filtered historical simulation over 1,000 days."""
    return MarginParams(scenarios=ScenarioParams(method="fhs", fhs=FhsParams(lookback_days=1000)))


def demo_history(seed: int) -> PriceHistory:
    """HISTORY_DAYS daily closes ending on DEMO_DATE, rescaled so the last close is the generator's price."""
    generator = load_generator()
    raw = synthetic_history(HISTORY_DAYS, seed, generator, start=DEMO_DATE - (HISTORY_DAYS - 1))
    today = np.array([asset.start_price for asset in generator.assets])
    return PriceHistory(raw.timestamps, raw.assets, raw.closes * (today / raw.closes[-1]))


#: Distances from mid of the demo book levels after the touch (which sits at half the spread).
BOOK_DISTANCES = (0.0025, 0.005, 0.01, 0.015, 0.02)
#: Size at the touch, as a fraction of the size within 1% of mid.
TOUCH_SHARE = 0.02


def demo_book_side(spread: float, depth_1pct: float, depth_2pct: float) -> list[tuple[float, float]]:
    """One side of a 6-level book curve, [distance from mid, cumulative size] per level.

    The touch (half the spread) holds TOUCH_SHARE x depth_1pct; the levels at BOOK_DISTANCES hold the
    cumulative size of the parametric line through (spread/2, 0), (0.01, depth_1pct), (0.02, depth_2pct),
    so the curve passes through the parametric depth at 1% and 2% of mid.
    """
    half = spread / 2.0
    sizes = np.interp(BOOK_DISTANCES, [half, 0.01, 0.02], [0.0, depth_1pct, depth_2pct])
    levels = [(half, TOUCH_SHARE * depth_1pct)] + [
        (d, round(float(q), 2)) for d, q in zip(BOOK_DISTANCES, sizes, strict=True)
    ]
    return levels


def _demo_depth(name: str) -> tuple[Depth | None, float | None]:
    """The demo book of an asset as (book-curve depth, vol bid-ask); (None, None) outside DEMO_DEPTH."""
    if name not in DEMO_DEPTH:
        return None, None
    spread, depth_1pct, depth_2pct, vol_spread = DEMO_DEPTH[name]
    side = demo_book_side(spread, depth_1pct, depth_2pct)
    return Depth(bid=side, ask=list(side)), vol_spread


def demo_sources(price: float, now: datetime, rng: np.random.Generator) -> list[OracleSource]:
    """ORACLE_SOURCES quotes of `price`, fresh and slightly dispersed (seeded by `rng`)."""
    noise = rng.normal(0.0, ORACLE_NOISE, len(ORACLE_SOURCES))
    ages = rng.uniform(0.0, 10.0, len(ORACLE_SOURCES))
    return [
        OracleSource(
            name=name,
            price=price * (1.0 + float(e)),
            confidence=price * ORACLE_CONFIDENCE,
            timestamp=now - timedelta(seconds=round(float(age), 3)),
        )
        for name, e, age in zip(ORACLE_SOURCES, noise, ages, strict=True)
    ]


def demo_market(history: PriceHistory, params: MarginParams, seed: int = DEMO_SEED) -> MarketSnapshot:
    """Prices at the history's last close, vols calibrated from it, an implied surface per expiry, depth
    per asset, and ORACLE_SOURCES oracle quotes per asset (the close is the TWAP reference)."""
    vols = calibrate_asset_vols(history, params.volatility)
    now = datetime.fromtimestamp(int(history.timestamps[-1].astype("int64")), tz=UTC)
    rng = np.random.default_rng(seed)
    assets = {
        name: AssetQuote(
            price=float(history.closes[-1, a]),
            vol=vols[name].vol,
            vol_long=vols[name].vol_long,
            vol_stressed=vols[name].vol_stressed,
            implied_vol=vols[name].vol * IMPLIED_PREMIUM,
            depth=_demo_depth(name)[0],
            vol_spread=_demo_depth(name)[1],
            sources=demo_sources(float(history.closes[-1, a]), now, rng),
        )
        for a, name in enumerate(history.assets)
    }
    assets["USDC"] = AssetQuote(price=1.0, vol=0.0, sources=demo_sources(1.0, now, rng))
    surfaces = [
        VolSurface(
            underlying=name,
            expiry=expiry_at(now, days),
            atm_vol=vols[name].vol * IMPLIED_PREMIUM,
            skew=IMPLIED_SKEW,
        )
        for name in ASSETS
        for days in OPTION_DAYS
    ]
    return MarketSnapshot(schema=MARKET_SCHEMA, time=now, assets=assets, surfaces=surfaces)


@dataclass(frozen=True)
class DemoRun:
    """What the demo produced: the result, the time per step and where the files are."""

    result: MarginResult
    timings: dict[str, float]
    report: Path


#: Accounts of the small venue margined first, to compile the kernels apart from the timed margin run.
WARM_UP_ACCOUNTS = 200


class _Steps:
    """Runs named steps under a progress spinner and records how long each took."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.timings: dict[str, float] = {}

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        task = self.progress.add_task(name, total=1)
        start = time.perf_counter()
        yield
        self.timings[name] = time.perf_counter() - start
        self.progress.update(task, completed=1)

    def run(self, name: str, work: Callable[[], T]) -> T:
        with self.step(name):
            return work()


def run_demo(
    out_dir: str | Path = "solvent-demo",
    n_accounts: int = DEMO_ACCOUNTS,
    seed: int = DEMO_SEED,
    console: Console | None = None,
) -> DemoRun:
    """Build, margin and report a synthetic venue; write inputs, results and report.md to `out_dir`."""
    check_extra("report")  # the report's figures: a missing matplotlib is named before anything is written
    console = Console() if console is None else console
    out = Path(out_dir)
    params = demo_params()
    columns = (SpinnerColumn(), TextColumn("{task.description}"), TimeElapsedColumn())
    with Progress(*columns, console=console, transient=False) as progress:
        steps = _Steps(progress)
        history = steps.run("price history (shipped GARCH-t generator)", lambda: demo_history(seed))
        market = steps.run("calibrate volatilities", lambda: demo_market(history, params, seed))
        prices = {name: quote.price for name, quote in market.assets.items()}
        instruments = venue_instruments(market.time, prices)
        book = steps.run(
            f"build venue ({n_accounts:,} accounts)", lambda: synthetic_book(instruments, prices, n_accounts, seed)
        )
        # The first run on a machine compiles the kernels (numba, cached on disk after): a small venue of the same
        # generator takes that cost, so the margin step below times the computation alone.
        small = synthetic_book(instruments, prices, WARM_UP_ACCOUNTS, seed)
        steps.run(
            "compile kernels (first run only: cached after)", lambda: compute_margin(small, market, params, history)
        )
        result = steps.run("margin (fhs scenarios, ES 99%)", lambda: compute_margin(book, market, params, history))
        with steps.step("write inputs, results and report"):
            write_portfolio_parquet(instruments, book_to_arrow(book), out / "portfolio.parquet")
            with atomic_output(out / "market.json") as tmp:
                Path(tmp).write_bytes(msgspec.json.format(msgspec.json.encode(market), indent=2))
            with atomic_output(out / "params.json") as tmp:
                Path(tmp).write_bytes(params.to_json())
            write_history(history, out / "history.csv")
            inputs = {
                name: str(out / name) for name in ("portfolio.parquet", "market.json", "params.json", "history.csv")
            }
            roles = dict(zip(("portfolio", "market", "params", "history"), inputs.values(), strict=True))
            provenance = provenance_of(roles, {"margin": params})  # the inputs just written, as a re-run reads them
            write_result(result, out / "margin.parquet", "parquet", market.time.isoformat(), provenance)
            report = write_report(result, steps.timings, out, inputs, provenance)
    print_summary(result, steps.timings, console)
    console.print(f"report: [bold]{report}[/] (inputs and margin.parquet beside it)")
    return DemoRun(result=result, timings=steps.timings, report=report)
