"""Invariants of the margin engine, with hypothesis: hedges, homogeneity, ordering, determinism."""

from __future__ import annotations

import msgspec
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from small_venue import INSTRUMENTS, LINEAR, MARKET

from solvent.api import compute_margin
from solvent.convert.inputs import portfolio_to_book
from solvent.engine.results import MarginResult
from solvent.formats.schemas import Account, Portfolio, Position
from solvent.params import MaintenanceParams, MarginParams, ScenarioParams

METHODS = ["grid", "deribit", "mc"]


def params_for(method: str, **extra: object) -> MarginParams:
    return MarginParams(scenarios=ScenarioParams(method=method), **extra)  # type: ignore[arg-type]


def margin(accounts: list[Account], params: MarginParams) -> MarginResult:
    book = portfolio_to_book(Portfolio(schema="solvent.portfolio/1", instruments=INSTRUMENTS, accounts=accounts))
    return compute_margin(book, MARKET, params)


def one(positions: list[tuple[str, float]], collateral: float = 50_000.0) -> Account:
    return Account(
        id="x",
        collateral={"USDC": collateral},
        positions=[
            Position(instrument=name, quantity=q, entry_price=95_000.0 if name in LINEAR else None)
            for name, q in positions
        ],
    )


positions_strategy = st.lists(
    st.tuples(st.sampled_from([i.id for i in INSTRUMENTS]), st.floats(-20, 20).filter(lambda q: abs(q) > 1e-3)),
    min_size=0,
    max_size=6,
)
accounts_strategy = st.lists(positions_strategy, min_size=1, max_size=12)


def accounts_from(books: list[list[tuple[str, float]]]) -> list[Account]:
    return [
        msgspec.structs.replace(one(positions, collateral=10_000.0 * (n + 1)), id=f"acct-{n}")
        for n, positions in enumerate(books)
    ]


@pytest.mark.parametrize("method", METHODS)
@settings(max_examples=25, deadline=None)
@given(books=accounts_strategy)
def test_im_at_least_mm_at_least_zero(method: str, books: list[list[tuple[str, float]]]) -> None:
    for maintenance in (MaintenanceParams(), MaintenanceParams(mode="model")):
        result = margin(accounts_from(books), params_for(method, maintenance=maintenance))
        assert np.all(result.mm >= 0.0)
        assert np.all(result.im >= result.mm)


@pytest.mark.parametrize("method", METHODS)
@settings(max_examples=25, deadline=None)
@given(size=st.floats(0.01, 50.0))
def test_hedge_lowers_market_risk(method: str, size: float) -> None:
    """Long spot + short perpetual of the same size on one asset needs less than either leg alone."""
    params = params_for(method)
    hedged = margin([one([("BTC-SPOT", size), ("BTC-PERP", -size)])], params).terms["market_risk"][0]
    long_leg = margin([one([("BTC-SPOT", size)])], params).terms["market_risk"][0]
    short_leg = margin([one([("BTC-PERP", -size)])], params).terms["market_risk"][0]
    assert long_leg > 0.0 and short_leg > 0.0
    assert hedged < long_leg
    assert hedged < short_leg


@pytest.mark.parametrize("method", METHODS)
@settings(max_examples=25, deadline=None)
@given(books=accounts_strategy)
def test_doubling_linear_positions_doubles_market_risk(method: str, books: list[list[tuple[str, float]]]) -> None:
    linear_books = [[(n, q) for n, q in b if n in LINEAR] for b in books]
    doubled = [[(n, 2 * q) for n, q in b] for b in linear_books]
    params = params_for(method)
    base = margin(accounts_from(linear_books), params).terms["market_risk"]
    twice = margin(accounts_from(doubled), params).terms["market_risk"]
    np.testing.assert_allclose(twice, 2.0 * base, rtol=1e-12, atol=1e-9)


@pytest.mark.parametrize("method", METHODS)
@settings(max_examples=20, deadline=None)
@given(books=accounts_strategy, seed=st.integers(0, 2**32 - 1))
def test_reordering_accounts_and_positions_changes_nothing(
    method: str, books: list[list[tuple[str, float]]], seed: int
) -> None:
    rng = np.random.default_rng(seed)
    accounts = accounts_from(books)
    order = rng.permutation(len(accounts))
    shuffled = [
        msgspec.structs.replace(
            accounts[i], positions=[accounts[i].positions[j] for j in rng.permutation(len(accounts[i].positions))]
        )
        for i in order
    ]
    params = params_for(method)
    base = margin(accounts, params)
    other = margin(shuffled, params)
    np.testing.assert_allclose(other.im, base.im[order], rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(other.equity, base.equity[order], rtol=1e-12, atol=1e-9)
    np.testing.assert_allclose(other.greeks, base.greeks[order], rtol=1e-12, atol=1e-9)


@pytest.mark.parametrize("method", METHODS)
@settings(max_examples=10, deadline=None)
@given(books=accounts_strategy)
def test_same_input_gives_bit_for_bit_the_same_output(method: str, books: list[list[tuple[str, float]]]) -> None:
    accounts = accounts_from(books)
    first = margin(accounts, params_for(method)).to_arrow()
    second = margin(accounts, params_for(method)).to_arrow()
    assert first.equals(second)
    for name in first.column_names[1:]:
        a = np.asarray(first.column(name))
        b = np.asarray(second.column(name))
        assert a.tobytes() == b.tobytes(), name
