"""Monte Carlo scenarios: seed-to-seed noise of a single perpetual's ES99 against the cost of the draws.

For each configuration (draws, stratified marginals or plain): the relative standard deviation of a long BTC
perpetual's IM over 40 seeds (the figure issue 12 item 11 bounds at 2%), and the time to build the scenario set
and risk arrays and to margin a 10,000-account book (two assets, perpetuals and options; the stress groups
on, `mc.stress_weight` 0.25). Timings are the median of 3; nothing here is asserted in the tests. Run:
`.venv/bin/python benchmarks/bench_mc.py [--accounts 10000]`.
"""

from __future__ import annotations

import argparse
import statistics
import time
from datetime import UTC, datetime, timedelta

import numpy as np
from msgspec import structs

from solvent.convert.inputs import portfolio_to_book
from solvent.engine.margin import margin_accounts, risk_context
from solvent.formats.schemas import Account, AssetQuote, Instrument, MarketSnapshot, Portfolio, Position
from solvent.market.state import build_market_state
from solvent.params import MarginParams, McParams, ScenarioParams

NOW = datetime(2026, 1, 2, tzinfo=UTC)
INSTRUMENTS = [
    Instrument(id="BTC-PERP", kind="perp", underlying="BTC"),
    Instrument(id="ETH-PERP", kind="perp", underlying="ETH"),
    *[
        Instrument(
            id=f"{a}-{k}-{kind[0]}", kind="option", underlying=a, expiry=NOW + timedelta(days=30), strike=float(k),
            option_type=kind,  # type: ignore[arg-type]
        )
        for a in ("BTC", "ETH")
        for k in (90, 100, 110)
        for kind in ("call", "put")
    ],
]  # fmt: skip
SNAPSHOT = MarketSnapshot(
    schema="solvent.market/1",
    time=NOW,
    assets={"BTC": AssetQuote(price=100.0, vol=0.6), "ETH": AssetQuote(price=100.0, vol=0.8)},
)


def params_for(n: int, stratified: bool, seed: int = 7) -> MarginParams:
    mc = McParams(n_scenarios=n, stratified=stratified, seed=seed)
    return structs.replace(MarginParams(), scenarios=ScenarioParams(method="mc", mc=mc))


def book_of(n_accounts: int, rng: np.random.Generator) -> object:
    accounts = []
    for k in range(n_accounts):
        held = rng.choice(len(INSTRUMENTS), size=rng.integers(1, 5), replace=False)
        positions = [
            Position(
                instrument=INSTRUMENTS[i].id,
                quantity=float(rng.normal(0.0, 5.0)),
                entry_price=100.0 if INSTRUMENTS[i].kind == "perp" else None,
            )
            for i in held.tolist()
        ]
        accounts.append(Account(id=f"a{k}", positions=positions))
    return portfolio_to_book(Portfolio(schema="solvent.portfolio/1", instruments=INSTRUMENTS, accounts=accounts))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--accounts", type=int, default=10_000)
    args = parser.parse_args()
    rng = np.random.default_rng(1)
    book = book_of(args.accounts, rng)
    single = portfolio_to_book(
        Portfolio(
            schema="solvent.portfolio/1",
            instruments=INSTRUMENTS,
            accounts=[Account(id="p", positions=[Position(instrument="BTC-PERP", quantity=1.0, entry_price=100.0)])],
        )
    )
    print(f"{'draws':>7} {'stratified':>10} {'rel std (40 seeds)':>19} {'scenarios+arrays s':>19} {'margin s':>9}")
    for n, stratified in ((256, False), (4096, False), (4096, True), (16384, True), (65536, False)):
        figures = []
        for seed in range(40):
            p = params_for(n, stratified, seed)
            state = build_market_state(INSTRUMENTS, SNAPSHOT, p)
            result = margin_accounts(single, state, p, risk_context(state, p))  # type: ignore[arg-type]
            figures.append(float(result.im[0]))
        spread = statistics.pstdev(figures) / statistics.fmean(figures)
        p = params_for(n, stratified)
        state = build_market_state(INSTRUMENTS, SNAPSHOT, p)
        build, run = [], []
        for _ in range(3):
            start = time.perf_counter()
            context = risk_context(state, p)
            middle = time.perf_counter()
            margin_accounts(book, state, p, context, predictive=False)  # type: ignore[arg-type]
            build.append(middle - start)
            run.append(time.perf_counter() - middle)
        cost = f"{statistics.median(build):>19.3f} {statistics.median(run):>9.3f}"
        print(f"{n:>7} {stratified!s:>10} {spread:>19.4f} {cost}")


if __name__ == "__main__":
    main()
