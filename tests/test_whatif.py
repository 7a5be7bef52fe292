"""Pre-trade what-if (engine/whatif.py): the O(S) update against the engine run from scratch.

Layers: the account P&L vector against the numpy twin; market risk from the vector against the fused
kernel for every measure and generator; IM and equity after an order against `margin_book` on the book
with the order applied (liquidity, concentration, oracle and risk tier on); the fast check against its
numpy twin; the rules (a hedge below IM, degraded oracle, reduce-only, non-finite inputs); hypothesis:
inputs never mutated, same input -> same Decision.
"""

from __future__ import annotations

from datetime import timedelta

import msgspec
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from small_venue import INSTRUMENTS, LINEAR, NOW

from solvent.convert.inputs import portfolio_to_book
from solvent.engine.book import Book
from solvent.engine.kernel import margins, scenario_pnl_numpy
from solvent.engine.margin import margin_book
from solvent.engine.results import MarginResult
from solvent.engine.riskarrays import scenario_risk_arrays
from solvent.engine.whatif import (
    EMPTY_ORDER,
    INSUFFICIENT_MARGIN,
    NOT_FINITE,
    OK,
    ORACLE_DEGRADED,
    REDUCE_ONLY,
    UNKNOWN_INSTRUMENT,
    Decision,
    PreTradeChecker,
    account_greeks,
    account_scenario_pnl,
    apply_books,
    apply_order,
    concentration_thresholds,
    im_numpy,
    market_risk,
)
from solvent.factors.basis import account_books
from solvent.factors.concentration import tier_multiplier
from solvent.formats.schemas import Account, AssetQuote, Depth, MarketSnapshot, OracleSource, Portfolio, Position
from solvent.market.oracle import OracleStatus
from solvent.market.state import MarketState, build_market_state
from solvent.params import ConcentrationParams, MarginParams, ScenarioParams, VolatilityParams

BTC, ETH = 95_000.0, 3_400.0
INDEX = {inst.id: i for i, inst in enumerate(INSTRUMENTS)}
SIZE = {inst.id: inst.contract_size for inst in INSTRUMENTS}


def sources(price: float, age_s: float = 0.0) -> list[OracleSource]:
    return [
        OracleSource(
            name=f"src{k}",
            price=price * (1.0 + 0.001 * k),
            confidence=price * 1e-4,
            timestamp=NOW - timedelta(seconds=age_s),
        )
        for k in range(3)
    ]


def snapshot(eth_age_s: float = 0.0) -> MarketSnapshot:
    """BTC with a parametric book and a vol bid-ask, ETH with ADV (square-root law); both from 3 oracle sources."""
    return MarketSnapshot(
        schema="solvent.market/1",
        time=NOW,
        assets={
            "BTC": AssetQuote(
                price=BTC,
                vol=0.5,
                depth=Depth(spread=0.0002, depth_1pct=30.0, depth_2pct=80.0),
                vol_spread=0.02,
                sources=sources(BTC),
            ),
            "ETH": AssetQuote(price=ETH, vol=0.7, adv=50_000.0, vol_spread=0.03, sources=sources(ETH, eth_age_s)),
        },
        rate=0.03,  # futures carry: linear weights differ from 1
    )


def params_of(
    method: str = "grid", measure: str = "es", form: str = "simm", apc: str = "floor", **conc: object
) -> MarginParams:
    return MarginParams(
        measure=measure,  # type: ignore[arg-type]
        scenarios=ScenarioParams(method=method),  # type: ignore[arg-type]
        concentration=ConcentrationParams(form=form, threshold=100_000.0, relative_floor=0.0, **conc),  # type: ignore[arg-type]
        volatility=VolatilityParams(apc_mode=apc),  # type: ignore[arg-type]
    )


DEFAULT = params_of()
PARAMS = {
    "simm-grid-es": DEFAULT,
    "simm-mc-var": params_of("mc", "var"),
    "ramp-deribit-worst": params_of("deribit", "worst", form="ramp", ramp_lower_cap=50_000.0, ramp_upper_cap=2e6),
    "apc-buffer": params_of(apc="buffer"),
}
POSITIONS = [
    ("BTC-PERP", 1.5),
    ("BTC-FUT", -0.5),
    ("ETH-PERP", -20.0),
    ("BTC-C", 3.0),
    ("BTC-P", -2.0),
    ("ETH-C", 10.0),
]


def account(positions: list[tuple[str, float, float]], usd: float = 60_000.0, tier: float | None = 1.25) -> Account:
    """positions: (instrument, quantity, linear entry price)."""
    return Account(
        id="a",
        collateral={"USD": usd},
        risk_tier=tier,
        positions=[Position(instrument=i, quantity=q, entry_price=e if i in LINEAR else None) for i, q, e in positions],
    )


def book_of(*accounts: Account) -> Book:
    return portfolio_to_book(Portfolio(schema="solvent.portfolio/1", instruments=INSTRUMENTS, accounts=list(accounts)))


def entries(positions: list[tuple[str, float]]) -> list[tuple[str, float, float]]:
    return [(i, q, BTC if i.startswith("BTC") else ETH) for i, q in positions]


class Venue:
    """A market state, its risk arrays and a checker under one set of parameters."""

    def __init__(self, params: MarginParams, eth_age_s: float = 0.0) -> None:
        self.params = params
        self.state: MarketState = build_market_state(INSTRUMENTS, snapshot(eth_age_s), params)
        _, self.arrays = scenario_risk_arrays(self.state, params)
        self.long_t, self.short_t = concentration_thresholds(self.state, params)
        self.checker = PreTradeChecker(self.state, self.arrays, params, self.long_t, self.short_t)

    def margin(self, acct: Account) -> MarginResult:
        return margin_book(book_of(acct), self.state, self.params)

    def vectors(self, acct: Account) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(scenario P&L, Greeks, books): the account's state the checker reads."""
        book = book_of(acct)
        pnl = account_scenario_pnl(book.pos_instrument, book.pos_quantity, self.arrays)
        books = account_books(
            book.pos_instrument,
            book.pos_quantity,
            self.arrays.unit_greeks,
            self.arrays.instrument_asset,
            self.checker.layout,
            self.arrays.n_assets,
        )
        return pnl, account_greeks(book.pos_instrument, book.pos_quantity, self.arrays), books


VENUES = {name: Venue(p) for name, p in PARAMS.items()}


# ------------------------------------------------------------------------------ the account vector


@pytest.mark.parametrize("name", list(PARAMS))
def test_account_scenario_pnl_matches_the_numpy_twin(name: str) -> None:
    venue = VENUES[name]
    book = book_of(account(entries(POSITIONS)))
    pnl = account_scenario_pnl(book.pos_instrument, book.pos_quantity, venue.arrays)
    reference = scenario_pnl_numpy(book.pos_offsets, book.pos_instrument, book.pos_quantity, venue.arrays)[0]
    np.testing.assert_allclose(pnl, reference, rtol=1e-12, atol=1e-9 * float(np.abs(reference).max()))
    _, greeks = margins(book.pos_offsets, book.pos_instrument, book.pos_quantity, venue.arrays, 0.99, "es")
    np.testing.assert_allclose(
        account_greeks(book.pos_instrument, book.pos_quantity, venue.arrays), greeks[0], rtol=1e-13
    )


def test_account_scenario_pnl_extra_delta_is_collateral_netting() -> None:
    venue = VENUES["simm-grid-es"]
    book = book_of(account(entries(POSITIONS)))
    extra = np.zeros(venue.arrays.n_assets)
    extra[venue.state.asset_index["BTC"]] = 0.7
    with_extra = account_scenario_pnl(book.pos_instrument, book.pos_quantity, venue.arrays, extra_delta=extra)
    plain = account_scenario_pnl(book.pos_instrument, book.pos_quantity, venue.arrays)
    np.testing.assert_allclose(with_extra - plain, extra @ venue.arrays.asset_pnl, rtol=1e-9, atol=1e-6)


@pytest.mark.parametrize("measure", ["es", "var", "worst"])
@pytest.mark.parametrize("method", ["grid", "deribit", "mc"])
def test_market_risk_from_the_vector_equals_the_fused_kernel(method: str, measure: str) -> None:
    params = params_of(method, measure)
    state = build_market_state(INSTRUMENTS, snapshot(), params)
    _, arrays = scenario_risk_arrays(state, params)
    books = [
        POSITIONS,
        [("BTC-PERP", 2.0), ("BTC-SPOT", -2.0)],
        [("ETH-C", -40.0)],
        [("BTC-C", 1.0), ("ETH-PERP", 5.0)],
    ]
    book = book_of(
        *[
            Account(
                id=f"a{n}",
                positions=[Position(instrument=i, quantity=q, entry_price=1.0 if i in LINEAR else None) for i, q in b],
            )
            for n, b in enumerate(books)
        ]
    )
    expected, _ = margins(book.pos_offsets, book.pos_instrument, book.pos_quantity, arrays, params.confidence, measure)
    for n in range(book.n_accounts):
        rows = slice(int(book.pos_offsets[n]), int(book.pos_offsets[n + 1]))
        pnl = account_scenario_pnl(book.pos_instrument[rows], book.pos_quantity[rows], arrays)
        assert market_risk(pnl, arrays, params.confidence, measure) == pytest.approx(expected[n], rel=1e-12)


def test_the_default_grid_has_one_scenario_group_per_asset() -> None:
    """So the grouped reduction is what the market-risk tests above exercise."""
    arrays = VENUES["simm-grid-es"].arrays
    assert arrays.group_offsets.size - 1 >= 2


# ------------------------------------------------------------------- IM after against margin_book

ORDERS = [
    ("BTC-PERP", 0.8, 95_500.0, 4.0),
    ("BTC-PERP", -3.0, 94_800.0, 0.0),
    ("BTC-FUT", 1.0, 95_400.0, 2.5),
    ("BTC-SPOT", -0.4, 95_000.0, 1.0),
    ("ETH-PERP", 30.0, 3_390.0, 1.0),
    ("BTC-C", 2.0, 2_500.0, 3.0),
    ("BTC-P", -1.5, 1_700.0, 0.0),
    ("ETH-C", -25.0, 120.0, 0.5),  # within pretrade.price_band of its mark (~234)
]


def after_order(
    positions: list[tuple[str, float, float]], usd: float, order: tuple[str, float, float, float]
) -> Account:
    """The account once the order fills: a new position row; options' premium and the fee paid from USD."""
    inst, q, price, fee = order
    cash = fee + (0.0 if inst in LINEAR else q * SIZE[inst] * price)
    return account([*positions, (inst, q, price)], usd=usd - cash)


@pytest.mark.parametrize("order", ORDERS, ids=[f"{o[0]}{o[1]:+g}" for o in ORDERS])
@pytest.mark.parametrize("name", list(PARAMS))
def test_im_and_equity_after_equal_margin_book_on_the_book_with_the_order(
    name: str, order: tuple[str, float, float, float]
) -> None:
    venue = VENUES[name]
    positions = entries(POSITIONS)
    before = venue.margin(account(positions))
    after = venue.margin(after_order(positions, 60_000.0, order))
    pnl, greeks, books = venue.vectors(account(positions))
    inst, q, price, fee = order
    tier = float(tier_multiplier(np.array([1.25]))[0])
    equity = float(before.equity[0])
    decision = venue.checker.check(pnl, greeks, equity, tier, INDEX[inst], q, price, fee, books=books)
    assert decision.im_before == pytest.approx(before.im[0], rel=1e-9)
    assert decision.im_after == pytest.approx(after.im[0], rel=1e-9)
    # Issue 12 item 2: the check counts the fill's loss against the mark, never its gain. margin_book books the
    # whole instant P&L (after - before + fee); the check keeps min(it, 0).
    instant = float(after.equity[0] - before.equity[0]) + fee
    assert decision.equity_after == pytest.approx(float(before.equity[0]) - fee + min(instant, 0.0), rel=1e-12)
    assert decision.im_after != pytest.approx(decision.im_before, rel=1e-6)  # the order moved IM
    assert decision.reason in (OK, INSUFFICIENT_MARGIN) and decision.allowed == (decision.reason == OK)


@pytest.mark.parametrize("name", list(PARAMS))
def test_every_im_term_is_live_in_the_comparison(name: str) -> None:
    """Liquidity, concentration and oracle terms are non-zero, so the equality above tests them."""
    result = VENUES[name].margin(account(entries(POSITIONS)))
    for term in ("market_risk", "liquidity", "basis", "concentration", "oracle", "risk_tier"):
        assert result.terms[term][0] > 0.0, term


@pytest.mark.parametrize("order", ORDERS, ids=[f"{o[0]}{o[1]:+g}" for o in ORDERS])
@pytest.mark.parametrize("name", list(PARAMS))
def test_the_check_agrees_with_its_numpy_twin(name: str, order: tuple[str, float, float, float]) -> None:
    venue = VENUES[name]
    pnl, greeks, books = venue.vectors(account(entries(POSITIONS)))
    inst, q, price, fee = order
    decision = venue.checker.check(pnl, greeks, 1e6, 1.25, INDEX[inst], q, price, fee, books=books)
    new_pnl, new_greeks = apply_order(pnl, greeks, INDEX[inst], q, venue.arrays)
    new_books = apply_books(books, INDEX[inst], q, venue.arrays, venue.checker.layout)
    args = (venue.state, venue.arrays, venue.params, venue.long_t, venue.short_t)
    assert decision.im_before == pytest.approx(im_numpy(pnl, greeks, 1.25, *args, books=books), rel=1e-12)
    assert decision.im_after == pytest.approx(im_numpy(new_pnl, new_greeks, 1.25, *args, books=new_books), rel=1e-12)


def test_apply_order_then_check_is_the_engine_on_the_filled_book() -> None:
    """Two orders in a row: the kept vectors stay equal to margin_book on the filled book."""
    venue = VENUES["simm-grid-es"]
    positions = entries(POSITIONS)
    pnl, greeks, books = venue.vectors(account(positions))
    first, second = ORDERS[0], ORDERS[5]
    books = apply_books(books, INDEX[first[0]], first[1], venue.arrays, venue.checker.layout)
    pnl, greeks = venue.checker.apply(pnl, greeks, INDEX[first[0]], first[1])
    filled = after_order(positions, 60_000.0, first)
    order = (INDEX[second[0]], second[1], second[2], second[3])
    decision = venue.checker.check(pnl, greeks, 1e6, 1.25, *order, books=books)
    assert decision.im_before == pytest.approx(venue.margin(filled).im[0], rel=1e-9)
    assert decision.im_after == pytest.approx(
        venue.margin(after_order([*positions, (first[0], first[1], first[2])], 60_000.0 - first[3], second)).im[0],
        rel=1e-9,
    )


# -------------------------------------------------------------------------------------- the rules


def check(
    venue: Venue, positions: list[tuple[str, float]], order: tuple[str, float], usd: float, **kwargs: object
) -> Decision:
    acct = account(entries(positions), usd=usd)
    pnl, greeks, books = venue.vectors(acct)
    equity = float(venue.margin(acct).equity[0])
    inst, q = order
    price = BTC if inst in LINEAR and inst.startswith("BTC") else ETH if inst in LINEAR else 100.0
    return venue.checker.check(pnl, greeks, equity, 1.25, INDEX[inst], q, price, books=books, **kwargs)  # type: ignore[arg-type]


def test_a_hedge_is_allowed_below_im() -> None:
    venue = VENUES["simm-grid-es"]
    positions = [("BTC-PERP", 5.0)]
    decision = check(venue, positions, ("BTC-FUT", -4.0), usd=1_000.0)
    assert decision.equity_after < decision.im_after < decision.im_before
    assert decision == Decision(True, OK, decision.im_before, decision.im_after, decision.equity_after)


def test_closing_part_of_a_position_is_allowed_below_im() -> None:
    venue = VENUES["simm-grid-es"]
    decision = check(venue, [("BTC-PERP", 5.0)], ("BTC-PERP", -2.0), usd=1_000.0, position=5.0)
    assert decision.allowed and decision.reason == OK
    assert decision.equity_after < decision.im_after


def test_a_risk_increasing_order_below_im_is_refused() -> None:
    venue = VENUES["simm-grid-es"]
    decision = check(venue, [("BTC-PERP", 5.0)], ("BTC-PERP", 1.0), usd=1_000.0, position=5.0)
    assert not decision.allowed and decision.reason == INSUFFICIENT_MARGIN
    assert decision.im_after > decision.im_before


def test_a_risk_increasing_order_with_margin_is_allowed() -> None:
    venue = VENUES["simm-grid-es"]
    decision = check(venue, [("BTC-PERP", 5.0)], ("BTC-PERP", 1.0), usd=1e6, position=5.0)
    assert decision.allowed and decision.reason == OK


def test_a_risk_increasing_order_is_refused_under_a_degraded_oracle() -> None:
    venue = Venue(DEFAULT, eth_age_s=3_600.0)  # every ETH source stale
    assert venue.state.oracle_status[venue.state.asset_index["ETH"]] == OracleStatus.ALL_STALE
    decision = check(venue, [("ETH-PERP", 5.0)], ("ETH-PERP", 1.0), usd=1e7, position=5.0)
    assert not decision.allowed and decision.reason == ORACLE_DEGRADED
    assert decision.equity_after > decision.im_after  # margin alone would have allowed it
    reducing = check(venue, [("ETH-PERP", 5.0)], ("ETH-PERP", -1.0), usd=1e7, position=5.0)
    assert reducing.allowed
    other_asset = check(venue, [("ETH-PERP", 5.0)], ("BTC-PERP", 1.0), usd=1e7)
    assert other_asset.allowed


def test_reduce_only_refuses_an_order_that_does_not_close() -> None:
    venue = VENUES["simm-grid-es"]
    opening = check(venue, [("BTC-PERP", 5.0)], ("BTC-PERP", 1.0), usd=1e7, position=5.0, reduce_only=True)
    assert not opening.allowed and opening.reason == REDUCE_ONLY
    flipping = check(venue, [("BTC-PERP", 5.0)], ("BTC-PERP", -6.0), usd=1e7, position=5.0, reduce_only=True)
    assert not flipping.allowed and flipping.reason == REDUCE_ONLY
    hedge_elsewhere = check(venue, [("BTC-PERP", 5.0)], ("BTC-FUT", -4.0), usd=1e7, reduce_only=True)
    assert not hedge_elsewhere.allowed and hedge_elsewhere.reason == REDUCE_ONLY
    closing = check(venue, [("BTC-PERP", 5.0)], ("BTC-PERP", -5.0), usd=1e7, position=5.0, reduce_only=True)
    assert closing.allowed and closing.im_after == pytest.approx(0.0, abs=1e-6)


@pytest.mark.parametrize(
    "field,value",
    [("price", np.nan), ("price", np.inf), ("quantity", np.nan), ("fee", np.nan), ("equity", np.nan), ("tier", np.nan)],
)
def test_non_finite_inputs_are_refused(field: str, value: float) -> None:
    venue = VENUES["simm-grid-es"]
    pnl, greeks, books = venue.vectors(account(entries(POSITIONS)))
    args = {"equity": 1e9, "tier": 1.0, "instrument": INDEX["BTC-PERP"], "quantity": -0.1, "price": BTC, "fee": 0.0}
    args[field] = value
    decision = venue.checker.check(pnl, greeks, **args, books=books)  # type: ignore[arg-type]
    assert not decision.allowed and decision.reason == NOT_FINITE


@pytest.mark.parametrize("where", ["pnl", "greeks"])
def test_a_non_finite_account_vector_is_refused(where: str) -> None:
    venue = VENUES["simm-grid-es"]
    pnl, greeks, books = venue.vectors(account(entries(POSITIONS)))
    if where == "pnl":
        pnl[3] = np.nan
    else:
        greeks[0, 2] = np.inf
    decision = venue.checker.check(pnl, greeks, 1e9, 1.0, INDEX["BTC-PERP"], -0.1, BTC, books=books)
    assert not decision.allowed and decision.reason == NOT_FINITE


def test_an_overflowing_order_is_refused() -> None:
    venue = VENUES["simm-grid-es"]
    pnl, greeks, books = venue.vectors(account(entries(POSITIONS)))
    decision = venue.checker.check(pnl, greeks, 1e9, 1.0, INDEX["BTC-C"], 1e306, 1.0, books=books)
    assert not decision.allowed and decision.reason == NOT_FINITE


@pytest.mark.parametrize("instrument", [-1, len(INSTRUMENTS)])
def test_an_unknown_instrument_is_refused(instrument: int) -> None:
    venue = VENUES["simm-grid-es"]
    pnl, greeks, books = venue.vectors(account(entries(POSITIONS)))
    decision = venue.checker.check(pnl, greeks, 1e9, 1.0, instrument, 1.0, BTC, books=books)
    assert not decision.allowed and decision.reason == UNKNOWN_INSTRUMENT


def test_an_empty_order_is_refused() -> None:
    venue = VENUES["simm-grid-es"]
    pnl, greeks, books = venue.vectors(account(entries(POSITIONS)))
    assert venue.checker.check(pnl, greeks, 1e9, 1.0, 0, 0.0, BTC, books=books).reason == EMPTY_ORDER


def test_misshapen_vectors_are_an_error() -> None:
    venue = VENUES["simm-grid-es"]
    pnl, greeks, books = venue.vectors(account(entries(POSITIONS)))
    with pytest.raises(ValueError, match="pnl"):
        venue.checker.check(pnl[:-1], greeks, 1e9, 1.0, 0, 1.0, BTC, books=books)
    with pytest.raises(ValueError, match="float64"):
        venue.checker.check(pnl.astype(np.float32), greeks, 1e9, 1.0, 0, 1.0, BTC, books=books)


def test_oi_share_thresholds_need_the_open_interest() -> None:
    params = msgspec.structs.replace(DEFAULT, concentration=ConcentrationParams(oi_share=0.1))
    with pytest.raises(ValueError, match="open_interest"):
        concentration_thresholds(VENUES["simm-grid-es"].state, params)


# ---------------------------------------------------------------------------------- properties


@settings(max_examples=60, deadline=None)
@given(
    instrument=st.integers(0, len(INSTRUMENTS) - 1),
    quantity=st.floats(-50.0, 50.0, allow_nan=False),
    price=st.floats(0.0, 2e5) | st.just(float("nan")),
    fee=st.floats(0.0, 100.0),
    equity=st.floats(-1e5, 1e6),
    position=st.floats(-10.0, 10.0),
    reduce_only=st.booleans(),
)
def test_check_never_mutates_and_is_deterministic(
    instrument: int, quantity: float, price: float, fee: float, equity: float, position: float, reduce_only: bool
) -> None:
    venue = VENUES["simm-grid-es"]
    pnl, greeks, books = venue.vectors(account(entries(POSITIONS)))
    pnl_copy, greeks_copy = pnl.copy(), greeks.copy()
    args = (pnl, greeks, equity, 1.25, instrument, quantity, price, fee, position, reduce_only)
    books_copy = books.copy()
    first = venue.checker.check(*args, books=books)
    dirty = (instrument + 1) % len(INSTRUMENTS)
    venue.checker.check(pnl, greeks, 1e9, 1.0, dirty, 3.0, BTC, books=books)  # dirty the buffers
    second = venue.checker.check(*args, books=books)
    np.testing.assert_array_equal(pnl, pnl_copy)
    np.testing.assert_array_equal(greeks, greeks_copy)
    np.testing.assert_array_equal(books, books_copy)
    assert repr(first) == repr(second)  # NaN-safe equality of every field
    if first.allowed:
        assert first.reason == OK
        assert first.equity_after >= first.im_after or first.im_after <= first.im_before


@pytest.mark.parametrize("name", list(PARAMS))
def test_what_if_reads_its_instruments_rows_not_the_dense_view(name: str) -> None:
    """On compact risk arrays (per-asset scenario groups) the account vector and the pre-trade check read only
    their instruments' rows, never the whole (I, S) dense view (8.4 GB on a 200-asset Monte Carlo venue), and
    the account's P&L is the one the kernel gives on the dense view, bit for bit (issue 14 item 4)."""
    from solvent.engine.whatif import _account_pnl_kernel

    venue = Venue(PARAMS[name])  # fresh arrays: no dense view built by another test
    pnl, greeks, books = venue.vectors(account(entries(POSITIONS)))
    inst, q, price, fee = ORDERS[0]
    venue.checker.check(pnl, greeks, 1e6, 1.25, INDEX[inst], q, price, fee, books=books)
    arrays = venue.arrays
    assert arrays.pnl_is_dense or "_dense_pnl" not in arrays.__dict__
    book = book_of(account(entries(POSITIONS)))
    dense = np.empty_like(pnl)
    _account_pnl_kernel(
        book.pos_instrument,
        book.pos_quantity,
        arrays.instrument_asset,
        arrays.instrument_pnl,
        arrays.linear_weight,
        arrays.asset_pnl,
        np.zeros(arrays.n_assets),
        dense,
    )
    np.testing.assert_array_equal(pnl.view(np.int64), dense.view(np.int64))
