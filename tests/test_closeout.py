"""Partial liquidation (`solvent.liquidation.closeout`): execution cost by hand, the sizer on the real engine, the caps.

Layers: the cost of a close-out walked by hand on one- and two-level books, the square-root law and the vega
spread; the vectorised cost against a per-account loop (its slow twin); the sizer with `margin_book` as the
requirement (never more than needed, greedy order, bankruptcy, healthy accounts); each venue rule as a
parametrized case on a linear requirement whose numbers are done by hand; hypothesis invariants; inputs not
mutated; bad inputs refused with the offending value.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from msgspec import structs
from small_venue import INSTRUMENTS, LINEAR, NOW

from solvent.convert.inputs import portfolio_to_book
from solvent.engine.book import Book
from solvent.engine.margin import margin_book
from solvent.engine.riskarrays import scenario_risk_arrays
from solvent.factors.liquidity import delta_cost
from solvent.formats.schemas import Account, AssetQuote, Depth, MarketSnapshot, Portfolio, Position
from solvent.liquidation.closeout import (
    CloseOutBook,
    CloseOutMarket,
    CloseOutPlan,
    _bracket_root,
    _closed_fraction,
    _greedy_slots,
    closeout_cost,
    plan_closeout,
)
from solvent.market.depth import AssetLiquidity, DepthCurve
from solvent.market.state import OPTION, MarketState, build_market_state
from solvent.params import LiquidationParams, MarginParams

FloatArray = np.ndarray
BTC, ETH = 95_000.0, 3_400.0
#: Caps off: only the sizer decides.
NO_CAPS = LiquidationParams(max_share_per_slice=1.0, min_slice_notional=0.0, min_position_notional=0.0)


def closeout_book(quantity: list[float], units: list[float], notional: list[float], **kw: list[float]) -> CloseOutBook:
    """One account per call unless `offsets` is given; asset 0, vega 0 and mark = notional by default."""
    n = len(quantity)
    offsets = kw.pop("offsets", [0, n])
    return CloseOutBook(
        offsets=np.array(offsets, dtype=np.int64),
        instrument=np.zeros(n, dtype=np.int32),
        quantity=np.array(quantity),
        asset=np.array(kw.pop("asset", [0] * n), dtype=np.int32),
        units=np.array(units),
        vega=np.array(kw.pop("vega", [0.0] * n)),
        notional=np.array(notional),
        mark=np.array(kw.pop("mark", notional)),
    )


def flat_market(liquidity: tuple[AssetLiquidity, ...], price: list[float], stress: list[float]) -> CloseOutMarket:
    return CloseOutMarket(
        liquidity=liquidity,
        price=np.array(price),
        daily_vol=np.full(len(price), 0.04),
        stress=np.array(stress),
        half_spread=0.0005,
        coefficient=1.0,
    )


#: One level: every unit fills 0.2% from mid, whatever the size (flat beyond the level).
ONE_LEVEL = DepthCurve.from_knots(np.array([0.0, 50.0]), np.array([0.002, 0.002]))
#: Two levels: 10 units at 0.1%, then linear to 0.5% at 30 units cumulative (slope 0.0002 per unit, extrapolated).
TWO_LEVELS = DepthCurve.from_knots(np.array([0.0, 10.0, 30.0]), np.array([0.001, 0.001, 0.005]))


# --------------------------------------------------------------------------------- the cost by hand


@pytest.mark.parametrize(
    ("curve", "sold", "stress", "want"),
    [
        (ONE_LEVEL, 30.0, 1.0, 100.0 * 0.002 * 30.0),  # 6.0
        (ONE_LEVEL, 30.0, 2.0, 100.0 * 0.002 * 30.0),  # a flat book costs the same thinned
        # 10 at 0.1% = 0.01; 10..25 at 0.001 + 0.0002 (x - 10): 0.015 + 0.0001 x 15^2 = 0.0375; x price 100
        (TWO_LEVELS, 25.0, 1.0, 100.0 * (0.01 + 0.015 + 0.0225)),  # 4.75
        # stress 2: D(50) = 0.01 + 40 x 0.001 + 0.0001 x 40^2 = 0.21 (beyond 30 by the last slope); x 100 / 2
        (TWO_LEVELS, 25.0, 2.0, 100.0 / 2.0 * 0.21),  # 10.5
    ],
)
def test_walk_cost_by_hand(curve: DepthCurve, sold: float, stress: float, want: float) -> None:
    """A long closed sells `sold` units into the bid; the fill is below mark by cost / contracts."""
    book = closeout_book([sold], [1.0], [100.0])
    market = flat_market((AssetLiquidity(bid=curve, ask=ONE_LEVEL),), [100.0], [stress])
    cost, fill = closeout_cost(book, np.array([sold]), market)
    assert cost[0] == pytest.approx(want, rel=1e-12)
    assert fill[0] == pytest.approx(100.0 - want / sold, rel=1e-12)


def test_short_buys_from_the_ask() -> None:
    """Closing a short buys: the ask curve (two levels here) prices it and the fill is above mark."""
    book = closeout_book([-25.0], [1.0], [100.0])
    market = flat_market((AssetLiquidity(bid=ONE_LEVEL, ask=TWO_LEVELS),), [100.0], [1.0])
    cost, fill = closeout_cost(book, np.array([-25.0]), market)
    assert cost[0] == pytest.approx(4.75, rel=1e-12)
    assert fill[0] == pytest.approx(100.0 + 4.75 / 25.0, rel=1e-12)


def test_net_units_are_priced_and_the_cost_shared_by_gross_units() -> None:
    """Selling 10 units (a long perp) and buying 4 (a short future) trades a net 6: cost = walk(6), shared 10 : 4."""
    book = closeout_book([10.0, -4.0], [1.0, 1.0], [100.0, 100.0])
    market = flat_market((AssetLiquidity(bid=TWO_LEVELS, ask=TWO_LEVELS),), [100.0], [1.0])
    cost, fill = closeout_cost(book, np.array([10.0, -4.0]), market)
    want = 100.0 * 6.0 * 0.001  # 0.6: six units inside the first level
    assert cost[0] == pytest.approx(want, rel=1e-12)
    assert fill == pytest.approx([100.0 - want * 10.0 / 14.0 / 10.0, 100.0 + want * 4.0 / 14.0 / 4.0], rel=1e-12)
    assert np.abs(np.array([10.0, -4.0]) * (fill - 100.0)).sum() == pytest.approx(cost[0], rel=1e-12)


def test_square_root_law_by_hand() -> None:
    """No depth, ADV 10,000: cost = P |q| (half_spread + coefficient x daily_vol x sqrt(|q| s / adv))."""
    book = closeout_book([100.0], [1.0], [2_000.0])
    market = flat_market((AssetLiquidity(adv=10_000.0),), [2_000.0], [1.0])
    cost, _ = closeout_cost(book, np.array([100.0]), market)
    assert cost[0] == pytest.approx(2_000.0 * 100.0 * (0.0005 + 0.04 * 0.1), rel=1e-12)  # 900


def test_vega_spread_by_hand() -> None:
    """Two long options of vega 50 USD per vol point, vol bid-ask 2 points, stress 1.5: 2 x 50 x 1 x 1.5 = 150."""
    book = closeout_book([3.0], [0.0], [95_000.0], vega=[50.0], mark=[1_200.0])
    market = flat_market((AssetLiquidity(vol_spread=0.02),), [95_000.0], [1.5])
    cost, fill = closeout_cost(book, np.array([2.0]), market)
    assert cost[0] == pytest.approx(150.0, rel=1e-12)
    assert fill[0] == pytest.approx(1_200.0 - 75.0, rel=1e-12)


def test_nothing_closed_costs_nothing_and_fills_at_mark() -> None:
    book = closeout_book([5.0, -2.0], [1.0, 0.0], [100.0, 100.0], vega=[0.0, 30.0], mark=[100.0, 7.0])
    market = flat_market((AssetLiquidity(bid=TWO_LEVELS, ask=TWO_LEVELS, vol_spread=0.02),), [100.0], [1.0])
    cost, fill = closeout_cost(book, np.zeros(2), market)
    assert cost[0] == 0.0
    assert fill.tolist() == [100.0, 7.0]


# ------------------------------------------------------------------------- the slow, obvious twin


def cost_loop(book: CloseOutBook, close: FloatArray, market: CloseOutMarket) -> tuple[FloatArray, FloatArray]:
    """Per account, per asset, per position: what `closeout_cost` does with arrays."""
    cost = np.zeros(book.n_accounts)
    fill = book.mark.copy()
    for k in range(book.n_accounts):
        rows = range(int(book.offsets[k]), int(book.offsets[k + 1]))
        for a in {int(book.asset[p]) for p in rows}:
            mine = [p for p in rows if book.asset[p] == a]
            net = sum(close[p] * book.units[p] for p in mine)
            gross = sum(abs(close[p] * book.units[p]) for p in mine)
            liq = market.liquidity[a]
            s = float(market.stress[a])
            c = delta_cost(np.array([net]), liq, market.price[a], market.daily_vol[a], s, 0.0005, 1.0)[0]
            for p in mine:
                vega = abs(close[p] * book.vega[p]) * (liq.vol_spread / 2 / 0.01 * s if liq.vol_spread >= 0 else 0.0)
                own = (c * (abs(close[p] * book.units[p]) / gross) if gross > 0 else 0.0) + vega
                cost[k] += own
                if close[p] != 0.0:
                    fill[p] = book.mark[p] - math.copysign(own / abs(close[p]), close[p])
    return cost, fill


# ---------------------------------------------------------------------------- the real engine


def quote(price: float, vol: float, **liquidity: object) -> AssetQuote:
    return AssetQuote(price=price, vol=vol, **liquidity)  # type: ignore[arg-type]


#: BTC: 2 BTC at 0.05% from mid, then linear to 1% at 40 BTC, both sides; ETH: ADV only (square-root law).
SNAPSHOT = MarketSnapshot(
    schema="solvent.market/1",
    time=NOW,
    assets={
        "BTC": quote(
            BTC, 0.5, depth=Depth(bid=[(0.0005, 2.0), (0.01, 40.0)], ask=[(0.0005, 2.0), (0.01, 40.0)]), vol_spread=0.02
        ),
        "ETH": quote(ETH, 0.7, adv=200_000.0, vol_spread=0.03),
    },
    rate=0.0,
)
PARAMS = MarginParams()


def account(name: str, usd: float, *positions: tuple[str, float]) -> Account:
    entry = {"BTC": BTC, "ETH": ETH}
    return Account(
        id=name,
        collateral={"USD": usd},
        positions=[
            Position(instrument=i, quantity=q, entry_price=entry[i[:3]] if i in LINEAR else None) for i, q in positions
        ],
    )


@dataclasses.dataclass(frozen=True)
class Venue:
    """A Book on the small venue, its market state and the close-out inputs the caller would build."""

    book: Book
    state: MarketState
    inputs: CloseOutBook
    market: CloseOutMarket
    equity: FloatArray

    def requirement(self, q: FloatArray) -> FloatArray:
        return margin_book(dataclasses.replace(self.book, pos_quantity=q), self.state, PARAMS).im


def venue(*accounts: Account) -> Venue:
    book = portfolio_to_book(Portfolio(schema="solvent.portfolio/1", instruments=INSTRUMENTS, accounts=list(accounts)))
    state = build_market_state(list(book.instruments), SNAPSHOT, PARAMS)
    _, arrays = scenario_risk_arrays(state, PARAMS)
    inst = book.pos_instrument
    option = state.instruments.kind[inst] == OPTION
    size = state.instruments.contract_size[inst]
    asset = state.instruments.asset[inst]
    inputs = CloseOutBook(
        offsets=book.pos_offsets,
        instrument=inst,
        quantity=book.pos_quantity,
        asset=asset,
        units=np.where(option, 0.0, arrays.unit_greeks[inst, 0]),
        vega=np.where(option, arrays.unit_greeks[inst, 2], 0.0),
        notional=size * np.where(option, state.price[asset], state.forward[inst]),
        mark=np.where(option, arrays.value[inst], size * state.forward[inst]),
    )
    market = CloseOutMarket(
        liquidity=state.liquidity,
        price=state.price,
        daily_vol=state.vol / math.sqrt(PARAMS.days_per_year),
        stress=np.ones(len(state.assets)),
        half_spread=PARAMS.liquidity.adv_half_spread,
        coefficient=PARAMS.liquidity.impact_coefficient,
    )
    return Venue(book, state, inputs, market, margin_book(book, state, PARAMS).equity)


#: Three accounts under water and one healthy: a long BTC / short ETH book, a short BTC with a long call, and a
#: 10 BTC + 100 ETH long hedged by 2 short BTC futures.
UNDER_WATER = venue(
    account("mixed", 30_000.0, ("BTC-PERP", 4.0), ("ETH-PERP", -30.0)),
    account("option", 5_000.0, ("BTC-PERP", -2.0), ("BTC-C", 1.0)),
    account("healthy", 1_000_000.0, ("BTC-PERP", 1.0)),
    account("hedged", 100_000.0, ("BTC-PERP", 10.0), ("ETH-PERP", 100.0), ("BTC-FUT", -2.0)),
)


def gap(v: Venue, close: FloatArray, rules: LiquidationParams) -> FloatArray:
    """equity - cost - fee - target x IM after closing `close`, computed here from the engine and the twin."""
    cost, _ = cost_loop(v.inputs, close, v.market)
    account_of = v.book.position_account()
    fee = rules.fee * np.bincount(account_of, weights=np.abs(close) * v.inputs.notional, minlength=v.book.n_accounts)
    return v.equity - cost - fee - rules.target * v.requirement(v.book.pos_quantity - close)


@pytest.fixture(scope="module")
def proportional() -> CloseOutPlan:
    return plan_closeout(UNDER_WATER.inputs, UNDER_WATER.equity, UNDER_WATER.requirement, UNDER_WATER.market, NO_CAPS)


@pytest.mark.parametrize("k", [0, 1, 3])
def test_proportional_closes_never_more_than_needed(proportional: CloseOutPlan, k: int) -> None:
    """The fraction t found restores equity >= IM on the engine's own numbers; t - 1e-6 does not."""
    v, plan = UNDER_WATER, proportional
    assert plan.needed[k] and plan.restores[k] and not plan.capped[k] and not plan.bankrupt[k]
    rows = slice(int(v.book.pos_offsets[k]), int(v.book.pos_offsets[k + 1]))
    q = v.book.pos_quantity
    assert plan.close[rows] == pytest.approx(plan.fraction[k] * q[rows], rel=1e-15)
    at_t = np.zeros_like(q)
    at_t[rows] = plan.fraction[k] * q[rows]
    assert gap(v, at_t, NO_CAPS)[k] >= 0.0
    below = np.zeros_like(q)
    below[rows] = (plan.fraction[k] - 1e-6) * q[rows]
    assert gap(v, below, NO_CAPS)[k] < 0.0
    assert 0.0 < plan.fraction[k] < 1.0


def test_proportional_plan_reports_the_engines_numbers(proportional: CloseOutPlan) -> None:
    """equity_after and im_after are the engine's, the fee 0.5% of the notional, BTC sold inside the 0.05% touch."""
    v, plan = UNDER_WATER, proportional
    cost, fill = cost_loop(v.inputs, plan.close, v.market)
    assert plan.cost == pytest.approx(cost, rel=1e-12)
    assert plan.fill_price == pytest.approx(fill, rel=1e-12)
    assert plan.im_after == pytest.approx(v.requirement(v.book.pos_quantity - plan.close), rel=1e-12)
    assert plan.fee == pytest.approx(0.005 * plan.notional, rel=1e-12)
    assert plan.equity_after == pytest.approx(v.equity - plan.cost - plan.fee, rel=1e-12)
    # "mixed" sells 4 t < 2 BTC: every unit at the touch, 95,000 x (1 - 0.0005)
    assert 4.0 * plan.fraction[0] < 2.0
    assert plan.fill_price[0] == pytest.approx(BTC * (1 - 0.0005), rel=1e-12)
    # the target is met to within the bisection tolerance: equity_after / IM_after is 1 at 1e-6
    needed = plan.needed
    assert plan.equity_after[needed] / plan.im_after[needed] == pytest.approx(1.0, abs=1e-6)


def test_healthy_account_is_left_alone(proportional: CloseOutPlan) -> None:
    plan = proportional
    assert not plan.needed[2] and plan.restores[2]
    assert plan.close[4] == 0.0
    assert (plan.cost[2], plan.fee[2], plan.notional[2], plan.fraction[2]) == (0.0, 0.0, 0.0, 0.0)
    assert plan.fill_price[4] == BTC


def by_name(v: Venue, values: dict[str, float]) -> FloatArray:
    """(P,) a value per position by its instrument (positions are in the book's canonical order, issue 12 item 16)."""
    return np.array([values[v.book.instruments[i].id] for i in v.book.pos_instrument.tolist()])


def row(v: Venue, account: str, instrument: str) -> int:
    """The position row of `instrument` in `account`."""
    n = int(np.flatnonzero(v.book.account_ids == account)[0])
    rows = range(int(v.book.pos_offsets[n]), int(v.book.pos_offsets[n + 1]))
    (hit,) = [r for r in rows if v.book.instruments[int(v.book.pos_instrument[r])].id == instrument]
    return hit


def test_greedy_closes_the_largest_contributor_and_never_the_hedge() -> None:
    """Priority BTC-PERP 3 > ETH-PERP 2 > BTC-FUT -1 (hedge): part of the BTC perp suffices, nothing else moves."""
    v = UNDER_WATER
    rules = structs.replace(NO_CAPS, method="greedy")
    priority = by_name(v, {"BTC-PERP": 3.0, "ETH-PERP": 2.0, "BTC-C": 2.0, "BTC-FUT": -1.0})
    plan = plan_closeout(v.inputs, v.equity, v.requirement, v.market, rules, priority)
    assert plan.restores[3] and not plan.capped[3]
    btc, eth, hedge = (plan.close[row(v, "hedged", name)] for name in ("BTC-PERP", "ETH-PERP", "BTC-FUT"))
    assert 0.0 < btc < 10.0
    assert (eth, hedge) == (0.0, 0.0)
    # the smallest such close: 1e-6 less of the account's path does not restore
    less = np.zeros_like(plan.close)
    less[row(v, "hedged", "BTC-PERP")] = btc - 1e-6 * (10.0 * BTC + 100.0 * ETH + 2.0 * BTC) / BTC  # gross notional
    assert gap(v, less, rules)[3] < 0.0


def test_greedy_closes_each_position_in_full_before_the_next() -> None:
    """Only 0.5 BTC of the first position: it goes in full, then ETH in part; the hedge stays."""
    v = venue(account("g", 20_000.0, ("BTC-PERP", 0.5), ("ETH-PERP", 60.0), ("BTC-FUT", -0.1)))
    rules = structs.replace(NO_CAPS, method="greedy")
    priority = by_name(v, {"BTC-PERP": 2.0, "ETH-PERP": 1.0, "BTC-FUT": -1.0})
    plan = plan_closeout(v.inputs, v.equity, v.requirement, v.market, rules, priority)
    assert plan.needed[0] and plan.restores[0]
    assert plan.close[row(v, "g", "BTC-PERP")] == 0.5
    assert 0.0 < plan.close[row(v, "g", "ETH-PERP")] < 60.0
    assert plan.close[row(v, "g", "BTC-FUT")] == 0.0


@pytest.mark.parametrize(
    ("usd", "bankrupt"),
    [
        # 30 BTC sold: D(30) = 2 x 0.0005 + 28 x 0.0005 + 0.5 x (0.0095 / 38) x 28^2 = 0.113; x 95,000 = 10,735
        (5_000.0, True),  # 5,000 - 10,735 < 0
        (-1_000.0, True),  # equity already negative
        (11_000.0, False),  # 11,000 - 10,735 = 265 >= 0: close everything, the fee takes what is left
    ],
)
def test_bankrupt_when_closing_everything_cannot_pay_its_cost(usd: float, bankrupt: bool) -> None:
    v = venue(account("big", usd, ("BTC-PERP", 30.0)))
    plan = plan_closeout(v.inputs, v.equity, v.requirement, v.market, NO_CAPS)
    assert plan.needed[0]
    assert plan.bankrupt[0] == bankrupt
    assert plan.close[0] == 30.0 and plan.fraction[0] == 1.0
    assert plan.cost[0] == pytest.approx(95_000.0 * 0.113, rel=1e-12)
    assert plan.im_after[0] == 0.0
    if bankrupt:
        assert plan.fee[0] == 0.0 and not plan.restores[0] and not plan.capped[0]
    else:  # (6): the fee is capped at what the cost leaves, 265 rather than 0.5% x 2.85M
        assert plan.fee[0] == pytest.approx(usd - 95_000.0 * 0.113, rel=1e-9)
        assert plan.equity_after[0] == pytest.approx(0.0, abs=1e-9) and plan.restores[0]


def test_bankrupt_accounts_ignore_the_caps() -> None:
    v = venue(account("big", 5_000.0, ("BTC-PERP", 30.0)))
    plan = plan_closeout(v.inputs, v.equity, v.requirement, v.market, LiquidationParams(max_notional_per_slice=1e5))
    assert plan.bankrupt[0] and plan.close[0] == 30.0 and plan.fee[0] == 0.0


# ------------------------------------------------------------------ the venue rules, on numbers by hand


def linear_requirement(book: CloseOutBook, rate: float = 0.1) -> Callable[[FloatArray], FloatArray]:
    """IM = rate x sum |q| x notional per account: positively homogeneous and separable by account."""
    account_of = book.position_account()

    def requirement(q: FloatArray) -> FloatArray:
        return np.bincount(account_of, weights=rate * np.abs(q) * book.notional, minlength=book.n_accounts)

    return requirement


#: No execution cost: only the fee and the requirement move equity.
FREE = flat_market((AssetLiquidity(),), [100.0], [1.0])


def rules(**kw: object) -> LiquidationParams:
    base: dict[str, object] = {"max_share_per_slice": 1.0, "min_slice_notional": 0.0, "min_position_notional": 0.0}
    return LiquidationParams(**{**base, "fee": 0.0, **kw})  # type: ignore[arg-type]


def plan_by_hand(book: CloseOutBook, equity: float, liquidation: LiquidationParams) -> CloseOutPlan:
    return plan_closeout(book, np.array([equity]), linear_requirement(book), FREE, liquidation)


# Two positions, 100 and 50 contracts of notional 1,000: IM = 0.1 x 150,000 = 15,000. With equity 6,000 and no
# cost or fee, IM(t) = 15,000 (1 - t) <= 6,000 at t = 0.6: the sizer closes 60 and 30 contracts.
TWO = closeout_book([100.0, -50.0], [1.0, 1.0], [1_000.0, 1_000.0])


def test_sized_close_by_hand() -> None:
    plan = plan_by_hand(TWO, 6_000.0, rules())
    assert plan.fraction[0] == pytest.approx(0.6, abs=1e-9)
    assert plan.close == pytest.approx([60.0, -30.0], abs=1e-6)
    assert plan.restores[0] and not plan.capped[0]


@pytest.mark.parametrize(
    ("liquidation", "want", "capped"),
    [
        # (2) at most 20% of each position
        (rules(max_share_per_slice=0.2), [20.0, -10.0], True),
        # (3) $45,000 of the sized $90,000: every close halved
        (rules(max_notional_per_slice=45_000.0), [30.0, -15.0], True),
        # (2) then (3): 20% is $30,000, under a $45,000 cap
        (rules(max_share_per_slice=0.2, max_notional_per_slice=45_000.0), [20.0, -10.0], True),
        # (3) $20,000 then (4) the minimum slice lifts the 2/9 x 30 = 6.67 contracts of the second to $10,000
        (rules(max_notional_per_slice=20_000.0, min_slice_notional=10_000.0), [40.0 / 3.0, -10.0], True),
        # (4) a minimum slice of $70,000 of a $50,000 position: all of it
        (rules(min_slice_notional=70_000.0), [70.0, -50.0], False),
        # (5) dust: the second would keep $20,000 < $25,000, so closes in full
        (rules(min_position_notional=25_000.0), [60.0, -50.0], False),
        # (2) then (5): 20% of each leaves 80 and 40 contracts, not dust at $25,000
        (rules(max_share_per_slice=0.2, min_position_notional=25_000.0), [20.0, -10.0], True),
    ],
    ids=["share", "notional", "share+notional", "notional+min-slice", "min-slice", "dust", "share+dust"],
)
def test_caps_respected_exactly(liquidation: LiquidationParams, want: list[float], capped: bool) -> None:
    plan = plan_by_hand(TWO, 6_000.0, liquidation)
    # a capped close is set by the cap (exact to rounding); an uncapped one inherits the bisection's 1e-9 in t
    assert plan.close == pytest.approx(want, rel=1e-12 if capped else 1e-8)
    assert plan.capped[0] == capped
    assert plan.restores[0] == (not capped)
    assert plan.notional[0] == pytest.approx(1_000.0 * np.abs(want).sum(), rel=1e-8)


def test_fee_is_paid_on_the_notional_closed_and_sized_in() -> None:
    """Fee 1%: 6,000 - 0.01 x 150,000 t >= 15,000 (1 - t) -> t = 9,000 / 13,500 = 2/3."""
    plan = plan_by_hand(TWO, 6_000.0, rules(fee=0.01))
    assert plan.fraction[0] == pytest.approx(2.0 / 3.0, abs=1e-9)
    assert plan.fee[0] == pytest.approx(1_000.0, rel=1e-6)
    assert plan.restores[0]


def test_target_above_one() -> None:
    """target 1.5: 6,000 >= 1.5 x 15,000 (1 - t) at t = 11/15."""
    plan = plan_by_hand(TWO, 6_000.0, rules(target=1.5))
    assert plan.fraction[0] == pytest.approx(11.0 / 15.0, abs=1e-9)


def test_reordering_accounts_changes_nothing() -> None:
    book = closeout_book(
        [100.0, -50.0, 10.0, 7.0, -3.0], [1.0] * 5, [1_000.0, 1_000.0, 500.0, 800.0, 2_000.0], offsets=[0, 2, 3, 5]
    )
    swapped = closeout_book(
        [7.0, -3.0, 10.0, 100.0, -50.0], [1.0] * 5, [800.0, 2_000.0, 500.0, 1_000.0, 1_000.0], offsets=[0, 2, 3, 5]
    )
    market = flat_market((AssetLiquidity(bid=TWO_LEVELS, ask=TWO_LEVELS),), [100.0], [1.5])
    plan = plan_closeout(book, np.array([6_000.0, 100.0, 900.0]), linear_requirement(book), market, rules(fee=0.005))
    other = plan_closeout(
        swapped, np.array([900.0, 100.0, 6_000.0]), linear_requirement(swapped), market, rules(fee=0.005)
    )
    assert other.close.tolist() == plan.close[[3, 4, 2, 0, 1]].tolist()
    assert other.cost.tolist() == plan.cost[::-1].tolist()
    assert other.fraction.tolist() == plan.fraction[::-1].tolist()


# ------------------------------------------------------------------------------------- invariants

positions = st.tuples(
    st.floats(-50.0, 50.0).filter(lambda q: abs(q) > 1e-3),  # quantity
    st.sampled_from([0, 1]),  # asset
    st.sampled_from([0.0, 0.5, 1.0, 2.0]),  # units per contract
    st.floats(0.0, 40.0),  # vega per contract
    st.floats(0.0, 5_000.0),  # notional per contract
    st.floats(-5.0, 5.0),  # priority
)


@st.composite
def cases(draw: st.DrawFn) -> tuple[CloseOutBook, FloatArray, FloatArray, LiquidationParams, CloseOutMarket]:
    accounts = draw(st.lists(st.lists(positions, min_size=1, max_size=4), min_size=1, max_size=4))
    rows = [p for acct in accounts for p in acct]
    book = CloseOutBook(
        offsets=np.cumsum([0] + [len(a) for a in accounts]).astype(np.int64),
        instrument=np.zeros(len(rows), dtype=np.int32),
        quantity=np.array([r[0] for r in rows]),
        asset=np.array([r[1] for r in rows], dtype=np.int32),
        units=np.array([r[2] for r in rows]),
        vega=np.array([r[3] for r in rows]),
        notional=np.array([r[4] for r in rows]),
        mark=np.array([r[4] for r in rows]),
    )
    equity = np.array(draw(st.lists(st.floats(-1_000.0, 60_000.0), min_size=len(accounts), max_size=len(accounts))))
    liquidation = LiquidationParams(
        method=draw(st.sampled_from(["proportional", "greedy"])),
        target=draw(st.floats(1.0, 2.0)),
        max_share_per_slice=draw(st.floats(0.05, 1.0)),
        max_notional_per_slice=draw(st.one_of(st.none(), st.floats(1_000.0, 100_000.0))),
        min_slice_notional=draw(st.floats(0.0, 5_000.0)),
        min_position_notional=draw(st.floats(0.0, 2_000.0)),
        fee=draw(st.floats(0.0, 0.02)),
    )
    second = DepthCurve.from_knots(np.array([0.0, draw(st.floats(1.0, 20.0)), 60.0]), np.array([0.001, 0.001, 0.02]))
    market = CloseOutMarket(
        liquidity=(AssetLiquidity(bid=second, ask=TWO_LEVELS, vol_spread=0.02), AssetLiquidity(adv=500.0)),
        price=np.array([1_000.0, 50.0]),
        daily_vol=np.array([0.03, 0.05]),
        stress=np.array([draw(st.floats(1.0, 3.0)), draw(st.floats(1.0, 3.0))]),
    )
    return book, equity, np.array([r[5] for r in rows]), liquidation, market


def snapshot(book: CloseOutBook) -> list[FloatArray]:
    return [np.copy(getattr(book, f.name)) for f in dataclasses.fields(book)]


@settings(max_examples=80, deadline=None)
@given(cases())
def test_plan_invariants(case: tuple[CloseOutBook, FloatArray, FloatArray, LiquidationParams, CloseOutMarket]) -> None:
    book, equity, priority, liquidation, market = case
    before, equity_before, priority_before = snapshot(book), equity.copy(), priority.copy()
    requirement = linear_requirement(book, rate=0.2)
    plan = plan_closeout(book, equity, requirement, market, liquidation, priority)
    q, close = book.quantity, plan.close
    account_of = book.position_account()
    assert (np.abs(close) <= np.abs(q)).all()
    assert (close * q >= 0.0).all()
    assert (plan.cost >= 0.0).all() and (plan.fee >= 0.0).all()
    assert (plan.fee <= np.maximum(equity - plan.cost, 0.0) + 1e-9).all()
    # restores is the truth, recomputed here from the twin and the requirement
    cost, fill = cost_loop(book, close, market)
    assert plan.cost == pytest.approx(cost, rel=1e-9, abs=1e-9)
    assert plan.fill_price == pytest.approx(fill, rel=1e-9, abs=1e-9)
    after = equity - cost - plan.fee
    im_after = requirement(q - close)
    assert (after[plan.restores] >= liquidation.target * im_after[plan.restores] - 1e-9).all()
    assert (close[~plan.needed[account_of]] == 0.0).all()
    assert (close[plan.bankrupt[account_of]] == q[plan.bankrupt[account_of]]).all()
    assert (plan.fee[plan.bankrupt] == 0.0).all()
    # without the minimum slice and dust rules, an account neither bankrupt nor capped closes exactly what the
    # sizer found restoring (or everything, and IM of nothing is 0): it is restored
    if liquidation.min_slice_notional == 0.0 and liquidation.min_position_notional == 0.0:
        assert plan.restores[plan.needed & ~plan.bankrupt & ~plan.capped].all()
    # inputs not mutated
    for old, new in zip(before, snapshot(book), strict=True):
        assert np.array_equal(old, new)
    assert np.array_equal(equity, equity_before) and np.array_equal(priority, priority_before)


@settings(max_examples=80, deadline=None)
@given(cases(), st.floats(0.0, 1.0))
def test_cost_agrees_with_its_twin(
    case: tuple[CloseOutBook, FloatArray, FloatArray, LiquidationParams, CloseOutMarket], share: float
) -> None:
    book, _, _, _, market = case
    close = share * book.quantity
    cost, fill = closeout_cost(book, close, market)
    want_cost, want_fill = cost_loop(book, close, market)
    assert cost == pytest.approx(want_cost, rel=1e-12, abs=1e-12)
    assert fill == pytest.approx(want_fill, rel=1e-12, abs=1e-12)
    assert np.abs(close * (fill - book.mark)).sum() == pytest.approx(cost.sum(), rel=1e-9, abs=1e-9)


def test_engine_inputs_not_mutated_even_by_a_meddling_requirement() -> None:
    v = UNDER_WATER
    quantity, equity = v.book.pos_quantity.copy(), v.equity.copy()

    def meddling(q: FloatArray) -> FloatArray:
        im = v.requirement(q)
        q[:] = 0.0
        return im

    plan = plan_closeout(v.inputs, v.equity, meddling, v.market, LiquidationParams())
    assert np.array_equal(v.inputs.quantity, quantity) and np.array_equal(v.book.pos_quantity, quantity)
    assert np.array_equal(v.equity, equity)
    assert plan.needed.tolist() == [True, True, False, True]


# ------------------------------------------------------------------- the root finder: calls and contract

#: What the bisection this root finder replaced made at the default tolerance 1e-9: IM before, g(1), 30 halvings
#: of [0, 1], IM after.
BISECTION_CALLS = 3 + math.ceil(math.log2(1e9))


def counted(requirement: Callable[[FloatArray], FloatArray]) -> tuple[Callable[[FloatArray], FloatArray], list[int]]:
    """The requirement, and a list that grows by one entry (the length of q) at every call."""
    calls: list[int] = []

    def wrapped(q: FloatArray) -> FloatArray:
        calls.append(q.shape[0])
        return requirement(q)

    return wrapped, calls


def most_calls(tolerance: float) -> int:
    """The root finder's bound: the bracket at least halves per iteration, but for one iteration that need not
    (each one that does not is followed by one that quarters it), so ceil(log2(1 / tolerance)) + 1 iterations of
    two calls, plus IM before, g(1) and IM after."""
    return 3 + 2 * (math.ceil(math.log2(1.0 / tolerance)) + 1)


def shaped_requirement(
    book: CloseOutBook, weight: FloatArray, shapes: list[Callable[[FloatArray], FloatArray]]
) -> Callable[[FloatArray], FloatArray]:
    """IM_k = 0.1 x N_k x shape_k(s_k): s_k the weighted share of account k's notional still held (weights
    (P,) > 0, 1 before any close), N_k its gross notional; each shape increasing with shape(1) = 1."""
    account_of = book.position_account()
    n_acc = book.n_accounts
    held = np.bincount(account_of, weights=weight * np.abs(book.quantity) * book.notional, minlength=n_acc)
    gross = np.bincount(account_of, weights=np.abs(book.quantity) * book.notional, minlength=n_acc)

    def requirement(q: FloatArray) -> FloatArray:
        share = np.bincount(account_of, weights=weight * np.abs(q) * book.notional, minlength=n_acc) / held
        return np.array([0.1 * gross[k] * shapes[k](share[k : k + 1])[0] for k in range(n_acc)])

    return requirement


def power(p: float) -> Callable[[FloatArray], FloatArray]:
    return lambda s: s**p


def kinked(at: float, below: float, above: float) -> Callable[[FloatArray], FloatArray]:
    """Piecewise linear in s: slope `below` up to `at`, `above` after, scaled to 1 at s = 1."""
    top = below * at + above * (1.0 - at)
    return lambda s: (below * np.minimum(s, at) + above * np.maximum(s - at, 0.0)) / top


def path_gap(
    book: CloseOutBook,
    equity: FloatArray,
    requirement: Callable[[FloatArray], FloatArray],
    market: CloseOutMarket,
    liquidation: LiquidationParams,
    t: float,
    k: int,
    priority: FloatArray | None = None,
) -> float:
    """g(t) of account k as the sizer defines it, recomputed here but for the path's slots (the greedy path's own
    tests check those), so that the sign at the bracket ends is the sizer's to the last bit."""
    path = None
    if liquidation.method == "greedy":
        assert priority is not None
        path = _greedy_slots(book, priority)
    at = np.zeros(book.n_accounts)
    at[k] = t
    close = _closed_fraction(at, book.position_account(), path) * book.quantity
    cost, _ = closeout_cost(book, close, market)
    fee = liquidation.fee * np.bincount(book.position_account(), weights=np.abs(close) * book.notional)
    return float(equity[k] - cost[k] - fee[k] - liquidation.target * requirement(book.quantity - close)[k])


def test_linear_requirement_takes_one_iteration() -> None:
    """g linear in t (a proportional requirement, no execution cost): IM before, g(1), the secant root, a probe
    0.999 x tolerance across it, IM after -- 5 calls, each on all positions (bisection: 33)."""
    book = closeout_book(
        [100.0, -50.0, 10.0, 7.0, -3.0], [1.0] * 5, [1_000.0, 1_000.0, 500.0, 800.0, 2_000.0], offsets=[0, 2, 3, 5]
    )
    requirement, calls = counted(linear_requirement(book))
    plan = plan_closeout(book, np.array([6_000.0, 100.0, 900.0]), requirement, FREE, rules(fee=0.01))
    assert len(calls) <= 5 < BISECTION_CALLS
    assert calls == [5] * len(calls)
    # IM 10% and fee 1% of the notional held / closed: 6,000 - 1,500 t >= 15,000 (1 - t); 100 - 50 t >= 500 (1 - t);
    # 900 - 116 t >= 1,160 (1 - t)
    assert plan.fraction == pytest.approx([2.0 / 3.0, 8.0 / 9.0, 260.0 / 1_044.0], abs=1e-9)
    assert plan.restores.all()


def test_margin_engine_needs_far_fewer_calls() -> None:
    """On the real engine (three accounts under water, nonlinear costs): the same fractions as the fixture's to
    1e-9, in at most half the calls of bisection."""
    v = UNDER_WATER
    requirement, calls = counted(v.requirement)
    plan = plan_closeout(v.inputs, v.equity, requirement, v.market, NO_CAPS)
    assert len(calls) <= 16 < BISECTION_CALLS
    for k in (0, 1, 3):
        assert gap_at(v, plan.fraction[k], k) >= 0.0
        assert gap_at(v, plan.fraction[k] - 1e-9 * 1.0001, k) < 0.0


def gap_at(v: Venue, t: float, k: int) -> float:
    """g(t) of account k of a venue on the proportional path, from the engine and the cost twin."""
    rows = slice(int(v.book.pos_offsets[k]), int(v.book.pos_offsets[k + 1]))
    close = np.zeros_like(v.book.pos_quantity)
    close[rows] = t * v.book.pos_quantity[rows]
    return float(gap(v, close, NO_CAPS)[k])


#: Two positions of $100,000 and $50,000 (TWO), IM 15,000 before; requirements far from linear in t.
CURVED = [
    pytest.param(power(8.0), 0.0, id="steep-convex"),  # IM collapses only near the end
    pytest.param(power(0.2), 0.0, id="concave"),  # IM released fastest at the end, infinite slope at t = 1
    pytest.param(power(3.0), 0.002, id="cubic+fee"),  # fee $300 for all: g falls again near t = 1
    pytest.param(kinked(0.7, 0.05, 3.0), 0.0, id="kinked"),  # slope 60x steeper above the kink
    pytest.param(kinked(0.2, 4.0, 0.1), 0.0, id="kinked-concave"),
]


@pytest.mark.parametrize(("shape", "fee"), CURVED)
@pytest.mark.parametrize("equity", [1_000.0, 6_000.0, 13_000.0])
def test_nonlinear_requirement_keeps_the_contract(
    shape: Callable[[FloatArray], FloatArray], fee: float, equity: float
) -> None:
    """g(fraction) >= 0 > g(fraction - tolerance), recomputed here, in no more calls than bisection made."""
    requirement, calls = counted(shaped_requirement(TWO, np.ones(2), [shape]))
    liquidation = rules(fee=fee)
    plan = plan_closeout(TWO, np.array([equity]), requirement, FREE, liquidation)
    t = float(plan.fraction[0])
    assert plan.needed[0] and 0.0 < t < 1.0
    assert path_gap(TWO, np.array([equity]), requirement, FREE, liquidation, t, 0) >= 0.0
    assert path_gap(TWO, np.array([equity]), requirement, FREE, liquidation, t - 1e-9 * 1.0001, 0) < 0.0
    assert len(calls) - 2 <= BISECTION_CALLS  # (two calls for the checks above)


@pytest.mark.parametrize(
    ("g", "root"),
    [
        pytest.param(lambda t: np.where(t >= 0.3, 3.0, -1.0), 0.3, id="step"),  # regula falsi learns nothing
        pytest.param(lambda t: (t - 0.4) ** 3, 0.4, id="flat-at-the-root"),  # the secant crawls: safeguard
        pytest.param(lambda t: np.sign(t - 0.7) * np.sqrt(np.abs(t - 0.7)), 0.7, id="vertical-at-the-root"),
        pytest.param(lambda t: np.expm1(60.0 * (t - 0.2)), 0.2, id="exponential"),
        pytest.param(lambda t: t - 0.55, 0.55, id="linear"),
    ],
)
@pytest.mark.parametrize("tolerance", [1e-9, 1e-6, 1e-3, 0.3])
def test_bracket_root_on_hard_shapes(g: Callable[[FloatArray], FloatArray], root: float, tolerance: float) -> None:
    """The root finder alone: the result within tolerance above the root (g is non-decreasing with one sign
    change) in at most the bound of `most_calls`."""
    calls: list[int] = []

    def gap_of(t: FloatArray) -> tuple[FloatArray, FloatArray]:
        calls.append(t.shape[0])
        return g(t).astype(np.float64), np.zeros_like(t)

    hi = _bracket_root(gap_of, np.array([True]), np.ones(1), g(np.zeros(1)), g(np.ones(1)), tolerance)
    assert g(hi)[0] >= 0.0 and hi[0] >= root
    assert g(hi - 1.0001 * tolerance)[0] < 0.0 and hi[0] - root <= tolerance
    assert len(calls) + 3 <= most_calls(tolerance)


def test_bracket_root_accounts_are_independent() -> None:
    """K accounts with different shapes in one run: each ends as it would alone; the calls keep shape (K,) and
    pass `full` for the accounts not active, their hi once converged."""
    shapes: list[Callable[[FloatArray], FloatArray]] = [
        lambda t: t - 0.55,
        lambda t: np.where(t >= 0.3, 3.0, -1.0),
        lambda t: (t - 0.4) ** 3,
        lambda t: np.expm1(60.0 * (t - 0.2)),
    ]
    active = np.array([True, True, False, True, True])
    full = np.array([0.0, 0.0, 1.0, 0.0, 0.0])
    index = [0, 1, 3, 4]
    seen: list[FloatArray] = []

    def gap_of(t: FloatArray) -> tuple[FloatArray, FloatArray]:
        assert t.shape == (5,) and t[2] == 1.0
        seen.append(t.copy())
        g = np.zeros(5)
        for f, k in zip(shapes, index, strict=True):
            g[k] = f(t[k : k + 1])[0]
        return g, np.zeros(5)

    g0 = np.array([f(np.zeros(1))[0] for f in shapes])
    g1 = np.array([f(np.ones(1))[0] for f in shapes])
    g_lo, g_hi = np.zeros(5), np.ones(5)
    g_lo[index], g_hi[index] = g0, g1
    together = _bracket_root(gap_of, active, full, g_lo, g_hi, 1e-9)
    assert together[2] == 1.0
    for f, k in zip(shapes, index, strict=True):

        def alone_gap(t: FloatArray, f: Callable[[FloatArray], FloatArray] = f) -> tuple[FloatArray, FloatArray]:
            return f(t), np.zeros_like(t)

        alone = _bracket_root(alone_gap, np.array([True]), np.ones(1), g_lo[k : k + 1], g_hi[k : k + 1], 1e-9)
        assert together[k] == alone[0]
    # the linear one closes in one iteration (its secant root and the probe across it), then passes its hi
    assert len(seen) > 2 and all(t[0] == together[0] for t in seen[2:])


@st.composite
def monotone_cases(
    draw: st.DrawFn,
) -> tuple[CloseOutBook, FloatArray, Callable[[FloatArray], FloatArray], LiquidationParams, FloatArray, float]:
    """Up to 4 accounts on one asset with no execution cost, fee 0 and no caps: g(t) increases, from g(0) < 0
    for an account needing a close; IM per account a power (0.2 to 10) or a kinked line of a weighted share."""
    sizes = draw(st.lists(st.integers(1, 3), min_size=1, max_size=4))
    n = sum(sizes)
    floats = st.floats
    quantity = draw(st.lists(floats(-50.0, 50.0).filter(lambda q: abs(q) > 1e-2), min_size=n, max_size=n))
    notional = draw(st.lists(floats(10.0, 5_000.0), min_size=n, max_size=n))
    weight = np.array(draw(st.lists(floats(0.1, 10.0), min_size=n, max_size=n)))
    book = closeout_book(quantity, [1.0] * n, notional, offsets=np.cumsum([0, *sizes]).tolist())
    shape = st.one_of(
        floats(0.2, 10.0).map(power),
        st.builds(kinked, floats(0.05, 0.95), floats(0.02, 50.0), floats(0.02, 50.0)),
    )
    shapes = draw(st.lists(shape, min_size=len(sizes), max_size=len(sizes)))
    requirement = shaped_requirement(book, weight, shapes)
    method = draw(st.sampled_from(["proportional", "greedy"]))
    liquidation = rules(method=method, target=draw(floats(1.0, 2.0)))
    # equity as a multiple of target x IM before: < 0 (not active), in (0, 1) (a close restores), >= 1 (healthy)
    level = np.array(draw(st.lists(floats(-0.2, 1.3), min_size=len(sizes), max_size=len(sizes))))
    equity = level * liquidation.target * requirement(book.quantity)
    priority = np.array(draw(st.lists(floats(-5.0, 5.0), min_size=n, max_size=n)))
    tolerance = draw(st.sampled_from([1e-9, 1e-6, 1e-3]))
    return book, equity, requirement, liquidation, priority, tolerance


@settings(max_examples=150, deadline=None)
@given(monotone_cases())
def test_root_finder_contract_for_every_account(
    case: tuple[CloseOutBook, FloatArray, Callable[[FloatArray], FloatArray], LiquidationParams, FloatArray, float],
) -> None:
    """Every account a close restores ends at t with g(t) >= 0 > g(t - tolerance), recomputed here; healthy ones
    at 0, the others at 1; within the root finder's bound on calls."""
    book, equity, requirement, liquidation, priority, tolerance = case
    counting, calls = counted(requirement)
    plan = plan_closeout(book, equity, counting, FREE, liquidation, priority, tolerance)
    assert len(calls) <= most_calls(tolerance)
    for k in range(book.n_accounts):
        t = float(plan.fraction[k])
        if not plan.needed[k]:
            assert t == 0.0
        elif equity[k] < 0.0:  # g(1) = equity < 0: nothing restores, everything closes
            assert t == 1.0
        else:
            assert path_gap(book, equity, requirement, FREE, liquidation, t, k, priority) >= 0.0
            below = max(t - 1.0001 * tolerance, 0.0)
            assert path_gap(book, equity, requirement, FREE, liquidation, below, k, priority) < 0.0
            assert plan.restores[k]


# ----------------------------------------------------------------------------------- bad inputs


def test_greedy_needs_a_priority() -> None:
    with pytest.raises(ValueError, match="priority: required"):
        plan_closeout(TWO, np.array([6_000.0]), linear_requirement(TWO), FREE, rules(method="greedy"))


@pytest.mark.parametrize(
    ("requirement", "match"),
    [
        (lambda q: np.array([math.nan]), r"requirement\(q\) must be finite, got nan"),
        (lambda q: np.array([-1.0]), r"requirement\(q\) must be >= 0, got -1.0"),
        (lambda q: np.zeros(2), r"requirement\(q\) must have shape \(1,\)"),
    ],
)
def test_a_requirement_that_cannot_decide_is_refused(
    requirement: Callable[[FloatArray], FloatArray], match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        plan_closeout(TWO, np.array([6_000.0]), requirement, FREE, rules())


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"notional": np.array([1_000.0, -1.0])}, "notional must be >= 0, got -1.0"),
        ({"quantity": np.array([1.0, math.inf])}, "quantity must be finite, got inf"),
        ({"units": np.ones(3)}, r"units must have shape \(2,\)"),
        ({"offsets": np.array([0, 3, 2])}, "offsets must be non-decreasing"),
    ],
)
def test_bad_book_is_refused(change: dict[str, FloatArray], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        dataclasses.replace(TWO, **change)


@pytest.mark.parametrize(
    ("change", "match"),
    [
        ({"stress": np.array([0.5])}, "stress must be >= 1, got 0.5"),
        ({"price": np.array([0.0])}, "price must be > 0, got 0.0"),
        ({"daily_vol": np.array([math.nan])}, "daily_vol must be finite, got nan"),
        ({"liquidity": (AssetLiquidity(), AssetLiquidity())}, r"one entry per asset \(1\), got 2"),
    ],
)
def test_bad_market_is_refused(change: dict[str, object], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        dataclasses.replace(FREE, **change)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("equity", "tolerance", "match"),
    [(math.nan, 1e-9, "equity must be finite, got nan"), (6_000.0, 0.0, r"tolerance must be in \(0, 1\), got 0.0")],
)
def test_bad_equity_or_tolerance_is_refused(equity: float, tolerance: float, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        plan_closeout(TWO, np.array([equity]), linear_requirement(TWO), FREE, rules(), tolerance=tolerance)
