"""Fused factor kernels against their plain numpy twins (liquidity, oracle buffer, position value, haircuts)."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import numpy as np
import pytest

from solvent.convert.inputs import load_portfolio
from solvent.engine.book import CROSS, Book
from solvent.engine.equity import collateral_columns, collateral_row_values, position_value, position_value_numpy
from solvent.factors.haircuts import collateral_haircuts, collateral_haircuts_numpy
from solvent.factors.liquidity import liquidity_by_asset, liquidity_kernel, pack_liquidity
from solvent.factors.oracle_buffer import oracle_buffer_by_asset, oracle_buffer_numpy
from solvent.formats.io import load_market
from solvent.formats.schemas import AssetQuote, Depth, Instrument, MarketSnapshot
from solvent.market.depth import AssetLiquidity, DepthCurve
from solvent.market.state import build_market_state
from solvent.params import CollateralParams, MarginParams


def curve(sizes: list[float], distances: list[float]) -> DepthCurve:
    return DepthCurve.from_knots(np.array(sizes), np.array(distances))


LIQUIDITY = (
    AssetLiquidity(
        bid=curve([0, 5, 20, 60], [0.001, 0.004, 0.01, 0.03]), ask=curve([0, 8], [0.0005, 0.02]), vol_spread=0.02
    ),
    AssetLiquidity(adv=1_000.0),  # square-root law only
    AssetLiquidity(),  # nothing known: zero
    AssetLiquidity(
        bid=curve([0, 1, 2], [0.002, 0.01, 0.05]),
        ask=curve([0, 1, 2, 3, 4], [0.002, 0.003, 0.01, 0.02, 0.2]),
        adv=50.0,
        vol_spread=0.05,
    ),
)


@pytest.mark.parametrize("stress", [1.0, 2.0, 7.5])
def test_liquidity_kernel_agrees_with_numpy_twin(stress: float) -> None:
    rng = np.random.default_rng(int(stress * 10))
    greeks = rng.normal(0, 30, (2_000, 4, 3))
    greeks[::7] = 0.0  # flat accounts
    price = np.array([95_000.0, 3_400.0, 1.0, 180.0])
    daily_vol = np.array([0.03, 0.04, 0.0, 0.06])
    fast = liquidity_kernel(greeks, pack_liquidity(LIQUIDITY), price, daily_vol, stress, 0.0005, 1.0)
    slow = liquidity_by_asset(greeks[:, :, 0], greeks[:, :, 2], LIQUIDITY, price, daily_vol, stress, 0.0005, 1.0)
    np.testing.assert_allclose(fast, slow, rtol=1e-12, atol=1e-9)
    assert np.all(fast[::7] == 0.0)
    assert np.count_nonzero(fast[:, 0]) > 1_500 and np.all(fast[:, 2] == 0.0)


def test_oracle_buffer_kernel_agrees_with_numpy_twin() -> None:
    rng = np.random.default_rng(5)
    greeks = rng.normal(0, 10, (1_000, 5, 3))
    uncertainty = np.array([12.0, 0.0, 3.5, 0.01, math.pi])
    np.testing.assert_array_equal(
        oracle_buffer_by_asset(greeks[:, :, 0], uncertainty[np.newaxis, :], 1.7),
        oracle_buffer_numpy(greeks, uncertainty, 1.7),
    )


def test_position_value_kernel_agrees_with_numpy_twin(examples_dir) -> None:  # type: ignore[no-untyped-def]
    book = load_portfolio(examples_dir / "portfolio.json")
    params = MarginParams()
    state = build_market_state(list(book.instruments), load_market(examples_dir / "market.json"), params)
    unit_value = np.linspace(0.0, 500.0, len(book.instruments))
    np.testing.assert_allclose(
        position_value(book, state, unit_value), position_value_numpy(book, state, unit_value), rtol=1e-13, atol=1e-9
    )


HAIRCUT_MARKET = MarketSnapshot(
    schema="solvent.market/1",
    time=datetime(2026, 11, 25, tzinfo=UTC),
    assets={
        "BTC": AssetQuote(
            price=100_000.0,
            vol=0.5,
            depth=Depth(bid=[(0.001, 1.0), (0.003, 3.0), (0.02, 9.0)], ask=[(0.001, 2.0), (0.01, 5.0)]),
        ),
        "ETH": AssetQuote(price=4_000.0, vol=0.7, adv=1_000.0),  # square-root law only
        "SOL": AssetQuote(price=180.0, vol=0.9),  # no depth at all
        "USDC": AssetQuote(price=1.0, vol=0.0, depth=Depth(spread=0.0004, depth_1pct=2e6, depth_2pct=5e6)),
        "USDT": AssetQuote(price=1.0, vol=0.0, adv=1e9),
    },
)
HAIRCUT_ASSETS = ("USD", "BTC", "ETH", "SOL", "USDC", "USDT")  # USD never has a haircut


def random_collateral_book(n_accounts: int, seed: int) -> Book:
    """Accounts with 0..4 balances over HAIRCUT_ASSETS (some debts, some empty), no positions."""
    rng = np.random.default_rng(seed)
    counts = rng.integers(0, 5, n_accounts)
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    codes = np.concatenate([rng.choice(len(HAIRCUT_ASSETS), k, replace=False) for k in counts]).astype(np.int32)
    amount = rng.lognormal(0, 3, offsets[-1]) * rng.choice([1.0, 1.0, 1.0, -1.0, 0.0], offsets[-1])
    return Book(
        instruments=(Instrument(id="BTC-PERP", kind="perp", underlying="BTC"),),
        account_ids=np.array([f"a{n}" for n in range(n_accounts)], dtype=object),
        pos_offsets=np.zeros(n_accounts + 1, dtype=np.int64),
        pos_instrument=np.zeros(0, dtype=np.int32),
        pos_quantity=np.zeros(0),
        pos_entry=np.zeros(0),
        collateral_assets=HAIRCUT_ASSETS,
        col_offsets=offsets,
        col_asset=codes,
        col_amount=amount,
        risk_tier=np.full(n_accounts, np.nan),
        mode=np.full(n_accounts, CROSS, dtype=np.int8),
        parent=np.full(n_accounts, None, dtype=object),
    )


@pytest.mark.parametrize(
    ("mode", "scale_start", "size_imf", "liquidity", "with_greeks"),
    [
        ("haircut", 0.0, 0.0, True, True),
        ("haircut", 1e6, 0.003, True, True),  # size scaling on, both parts
        ("haircut", 0.0, 0.01, True, False),  # size discount only, no positions (no Greeks)
        ("haircut", 1e9, 0.0, False, True),  # deposit scaling only, book part off
        ("integrated", 1e6, 0.003, True, True),
    ],
)
def test_collateral_haircut_kernel_agrees_with_numpy_twin(
    mode: str, scale_start: float, size_imf: float, liquidity: bool, with_greeks: bool
) -> None:
    collateral = CollateralParams(
        mode=mode,  # type: ignore[arg-type]
        scale_start=scale_start,
        size_imf=size_imf,
        liquidity=liquidity,
        wrong_way=1.5,
        asset_floor={"SOL": 0.3},
        asset_cap={"USDT": 0.01},
    )
    params = MarginParams(collateral=collateral)
    book = random_collateral_book(3_000, seed=int(scale_start) % 97 + int(size_imf * 1e3))
    state = build_market_state(list(book.instruments), HAIRCUT_MARKET, params)
    columns = collateral_columns(book, state)
    values = collateral_row_values(book, state)
    rng = np.random.default_rng(11)
    greeks = rng.normal(0, 3, (book.n_accounts, len(state.assets), 3)) if with_greeks else np.zeros((0, 0, 3))
    fast = collateral_haircuts(book, state, params, columns, values, greeks)
    slow = collateral_haircuts_numpy(book, state, params, columns, values, greeks)
    for name in ("rate", "value", "by_account", "by_asset"):
        np.testing.assert_allclose(getattr(fast, name), getattr(slow, name), rtol=1e-12, atol=1e-12, err_msg=name)
    assert fast.by_asset.shape == (book.n_accounts, len(state.assets))
    held = book.col_amount > 0.0
    assert np.all((fast.rate >= 0.0) & (fast.rate <= 1.0)) and np.count_nonzero(fast.value[held]) > held.sum() // 2
    if with_greeks:  # some long balances are matched by a long delta of the same asset (wrong way)
        account = book.collateral_account()
        assert np.any(held & (greeks[account, columns[book.col_asset], 0] > 0.0))


def test_collateral_haircut_kernel_on_an_empty_book() -> None:
    params = MarginParams(collateral=CollateralParams(mode="haircut", size_imf=0.01))
    book = random_collateral_book(5, seed=0)
    empty = Book(
        **{
            **book.__dict__,
            "col_offsets": np.zeros(6, dtype=np.int64),
            "col_asset": book.col_asset[:0],
            "col_amount": book.col_amount[:0],
        }
    )
    state = build_market_state(list(book.instruments), HAIRCUT_MARKET, params)
    columns = collateral_columns(empty, state)
    result = collateral_haircuts(empty, state, params, columns, np.zeros(0), np.zeros((5, len(state.assets), 3)))
    assert (
        result.rate.size == 0 and np.all(result.by_account == 0.0) and result.by_asset.shape == (5, len(state.assets))
    )
