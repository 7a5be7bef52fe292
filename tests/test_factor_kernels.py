"""Fused factor kernels against their plain numpy twins (liquidity, oracle buffer, position value)."""

from __future__ import annotations

import math

import numpy as np
import pytest

from solvent.engine.equity import position_value, position_value_numpy
from solvent.factors.liquidity import liquidity_by_asset, liquidity_kernel, pack_liquidity
from solvent.factors.oracle_buffer import oracle_buffer_by_asset, oracle_buffer_numpy
from solvent.formats.io import load_market, load_portfolio
from solvent.market.depth import AssetLiquidity, DepthCurve
from solvent.market.state import build_market_state
from solvent.params import MarginParams


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
        oracle_buffer_by_asset(greeks, uncertainty, 1.7), oracle_buffer_numpy(greeks, uncertainty, 1.7)
    )


def test_position_value_kernel_agrees_with_numpy_twin(examples_dir) -> None:  # type: ignore[no-untyped-def]
    book = load_portfolio(examples_dir / "portfolio.json")
    params = MarginParams()
    state = build_market_state(list(book.instruments), load_market(examples_dir / "market.json"), params)
    unit_value = np.linspace(0.0, 500.0, len(book.instruments))
    np.testing.assert_allclose(
        position_value(book, state, unit_value), position_value_numpy(book, state, unit_value), rtol=1e-13, atol=1e-9
    )
