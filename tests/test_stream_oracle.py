"""A degraded oracle pauses liquidation on its price instead of triggering it (issue 12 item 4).

Mango v4 changelog v0.19 (../shared/REFERENCES.md): with a stale oracle, full withdrawals and full repayments are
still allowed; everything else that depends on the untrusted price waits for it.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
from small_venue import INSTRUMENTS, NOW

from solvent.convert.inputs import portfolio_to_book
from solvent.engine.book import Book
from solvent.formats.schemas import Account, AssetQuote, Depth, MarketSnapshot, OracleSource, Portfolio, Position
from solvent.market.oracle import OracleStatus
from solvent.params import MarginParams
from solvent.stream import events as ev
from solvent.stream.engine import StreamEngine
from solvent.stream.feed import Quote, Withdrawal

BTC = 95_000.0
DEPTH = Depth(spread=0.0002, depth_1pct=40.0, depth_2pct=100.0)


def market() -> MarketSnapshot:
    sources = [
        OracleSource(name=n, price=BTC * (1 + d), confidence=5.0, timestamp=NOW)
        for n, d in (("a", 0.0), ("b", 1e-4), ("c", -1e-4))
    ]
    return MarketSnapshot(
        schema="solvent.market/1",
        time=NOW,
        assets={
            "BTC": AssetQuote(price=BTC, vol=0.5, depth=DEPTH, vol_spread=0.02, sources=sources),
            "ETH": AssetQuote(price=3_400.0, vol=0.7, depth=DEPTH, vol_spread=0.03),
        },
        rate=0.0,
    )


def book() -> Book:
    """`long3x`: 3 BTC perps on a third of their notional; `eth`: an ETH perp only; `cash`: USD and BTC coin."""
    accounts = [
        Account(
            id="long3x",
            collateral={"USD": 3 * BTC / 3.0},
            positions=[Position(instrument="BTC-PERP", quantity=3.0, entry_price=BTC)],
        ),
        Account(
            id="eth",
            collateral={"USD": 20_000.0},
            positions=[Position(instrument="ETH-PERP", quantity=10.0, entry_price=3_400.0)],
        ),
        Account(id="cash", collateral={"USD": 50_000.0, "BTC": 1.0}, positions=[]),
    ]
    return portfolio_to_book(Portfolio(schema="solvent.portfolio/1", instruments=INSTRUMENTS, accounts=accounts))


def stale_quote(seq: int, seconds: float) -> Quote:
    """Source `a` republishes its snapshot quote (timestamp NOW) `seconds` later: every source is that old."""
    return Quote(seq=seq, time=NOW + timedelta(seconds=seconds), asset="BTC", price=BTC, source="a", timestamp=NOW)


def test_all_stale_oracle_neither_inflates_requirements_nor_liquidates() -> None:
    """issue 12 item 4: three sources 61 s old (ALL_STALE). On main U became 50% of the price and the 3x long went
    from IM 10%, healthy, to IM 110% and MM 88%, liquidatable. Now U is the last known band widened over 61 s,
    IM stays near 10%, nobody is liquidated, and the pause is an event naming the asset and the reason."""
    out: list[ev.Event] = []
    engine = StreamEngine.start(book(), market(), MarginParams(), sink=out.extend)
    row = engine.store.row_of["long3x"]
    notional = 3 * BTC
    im_before = float(engine.figures.im[row])
    assert im_before / notional < 0.2
    engine.process([stale_quote(1, 61.0)])
    assert engine.market.status[engine.market.state.asset_index["BTC"]] == OracleStatus.ALL_STALE
    paused = [e for e in out if isinstance(e, ev.LiquidationsPaused)]
    assert [(e.asset, e.reason, e.cause) for e in paused] == [("BTC", "ALL_STALE", 1)]
    im_after = float(engine.figures.im[row])
    assert im_after / notional < 0.2
    assert im_after == pytest.approx(im_before, rel=0.05)
    assert engine.figures.equity[row] >= engine.figures.mm[row]
    assert not any(isinstance(e, (ev.AccountBecameLiquidatable, ev.LiquidationExecuted)) for e in out)
    # A fresh quote from every source: OK again, liquidation resumes (an event with the reason).
    engine.process(
        [
            Quote(seq=2 + i, time=NOW + timedelta(seconds=70), asset="BTC", price=BTC, source=s)
            for i, s in enumerate("abc")
        ]
    )
    resumed = [e for e in out if isinstance(e, ev.LiquidationsResumed)]
    assert [(e.asset, e.reason) for e in resumed] == [("BTC", "OK")]


def test_no_liquidation_on_a_degraded_price_even_when_the_account_is_under_water() -> None:
    """issue 12 item 4: the account breaches MM at the untrusted (stale) price; it is reported liquidatable but not
    liquidated while BTC's oracle is degraded; an account exposed only to ETH is unaffected by the pause."""
    out: list[ev.Event] = []
    engine = StreamEngine.start(book(), market(), MarginParams(), sink=out.extend)
    row = engine.store.row_of["long3x"]
    crash = [
        Quote(seq=1 + i, time=NOW + timedelta(seconds=1), asset="BTC", price=BTC * 0.6, source=s)
        for i, s in enumerate("abc")
    ]
    # TWAP guard: a 40% fall is clamped and flagged DEVIATES_FROM_TWAP (degraded) -> paused.
    engine.process(crash)
    btc = engine.market.state.asset_index["BTC"]
    assert engine.market.status[btc] != OracleStatus.OK
    assert any(isinstance(e, ev.LiquidationsPaused) for e in out)
    assert engine.figures.equity[row] < engine.figures.mm[row]
    assert engine.figures.in_liquidation[row]
    assert not any(isinstance(e, ev.LiquidationExecuted) for e in out)
    assert engine.store.quantity(row, engine.store.instrument_row["BTC-PERP"]) == 3.0


def test_withdrawals_while_degraded_only_when_they_end_the_exposure() -> None:
    """issue 12 item 4 (Mango v4 v0.19): a partial BTC withdrawal or a USD withdrawal while holding BTC is refused;
    the full BTC balance may leave, after which USD may too (the account no longer depends on BTC's price)."""
    out: list[ev.Event] = []
    engine = StreamEngine.start(book(), market(), MarginParams(), sink=out.extend)
    engine.process([stale_quote(1, 61.0)])
    engine.process(
        [
            Withdrawal(seq=2, time=NOW + timedelta(seconds=62), account="cash", asset="BTC", amount=0.5),
            Withdrawal(seq=3, time=NOW + timedelta(seconds=62), account="cash", asset="USD", amount=1_000.0),
        ]
    )
    refused = [e for e in out if isinstance(e, ev.InputRejected)]
    assert [e.cause for e in refused] == [2, 3]
    assert all("oracle degraded on BTC" in e.reason for e in refused)
    row = engine.store.row_of["cash"]
    engine.process(
        [
            Withdrawal(seq=4, time=NOW + timedelta(seconds=63), account="cash", asset="BTC", amount=1.0),
            Withdrawal(seq=5, time=NOW + timedelta(seconds=63), account="cash", asset="USD", amount=1_000.0),
        ]
    )
    assert len([e for e in out if isinstance(e, ev.InputRejected)]) == 2
    usd = engine.store.collateral_assets.index("USD")
    assert engine.store.balance[row, usd] == 49_000.0
    assert np.all(engine.store.balance[row, engine.store.collateral_assets.index("BTC")] == 0.0)


def test_new_risk_refused_reducing_allowed_while_degraded() -> None:
    """issue 12 item 4: the pre-trade check refuses a larger BTC long and allows a reduction while BTC is stale."""
    engine = StreamEngine.start(book(), market(), MarginParams())
    engine.process([stale_quote(1, 61.0)])
    more = engine.what_if("long3x", "BTC-PERP", 1.0, BTC)
    less = engine.what_if("long3x", "BTC-PERP", -1.0, BTC)
    assert not more.allowed and more.reason == "oracle degraded"
    assert less.allowed


def test_the_stable_price_and_the_pause_survive_a_saved_state(tmp_path: Path) -> None:
    """The live market's stable-price state is saved and restored bit for bit; a degraded status stays paused."""
    engine = StreamEngine.start(book(), market(), MarginParams())
    engine.process(
        [
            Quote(seq=i, time=NOW + timedelta(seconds=30), asset="BTC", price=1.05 * BTC, source=s)
            for i, s in enumerate("abc")
        ]
    )
    engine.process([stale_quote(3, 200.0)])
    path = tmp_path / "state.npz"
    engine.save(path)
    again = StreamEngine.load(path)
    for name in ("stable", "last_update", "delay", "accumulated_price", "accumulated_time", "interval"):
        np.testing.assert_array_equal(getattr(again.market.stable, name), getattr(engine.market.stable, name))
    btc = engine.market.state.asset_index["BTC"]
    assert engine.market.stable.stable[btc] > BTC
    np.testing.assert_array_equal(again.market.state.stable_price, engine.market.state.stable_price)
    assert again.market.status[btc] == OracleStatus.ALL_STALE
