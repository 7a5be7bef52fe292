"""The SPAN-style grid: layout, scan range, McMillan's worked example, clipping."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import numpy as np
import pytest
from msgspec import structs
from scipy.stats import norm

from solvent.formats.schemas import AssetQuote, Instrument, MarketSnapshot
from solvent.market.state import MarketState, build_market_state
from solvent.params import GridParams, MarginParams
from solvent.scenarios.base import ScenarioSet
from solvent.scenarios.grid import N_SPAN, scan_ranges, span_grid, span_price_fractions

NOW = datetime(2026, 1, 2, tzinfo=UTC)
EXPIRY = datetime(2026, 3, 27, 8, tzinfo=UTC)


def market(
    quotes: dict[str, tuple[float, float]], underlyings: list[str], params: MarginParams, size: float = 1.0
) -> MarketState:
    """One future per underlying (contract size `size`); quotes name -> (price, vol)."""
    instruments = [
        Instrument(id=f"{u}-F", kind="future", underlying=u, expiry=EXPIRY, contract_size=size) for u in underlyings
    ]
    snapshot = MarketSnapshot(
        schema="solvent.market/1",
        time=NOW,
        assets={name: AssetQuote(price=p, vol=v) for name, (p, v) in quotes.items()},
    )
    return build_market_state(instruments, snapshot, params)


# McMillan, Options as a Strategic Investment, Part V, p. 670 (SPAN risk arrays of one future and
# one short call; the book rounds to $10).
# fmt: off
MCMILLAN_FUTURE = [
    0, 0, 3330, 3330, -3330, -3330, 6670, 6670, -6670, -6670, 10000, 10000, -10000, -10000, 7000, -7000,
]
MCMILLAN_SHORT_CALL = [
    -460, 610, -2640, -1730, 1270, 2340, -5210, -4540, 2540, 3430, -8060, -7640, 3380, 3990, -3130, 1500,
]

# (1-based scenario, price fraction of the scan, vol sign, pnl weight) with SPAN's defaults.
LAYOUT = [
    (1, 0.0, 1, 1.0), (2, 0.0, -1, 1.0), (3, 1 / 3, 1, 1.0), (4, 1 / 3, -1, 1.0),
    (5, -1 / 3, 1, 1.0), (6, -1 / 3, -1, 1.0), (7, 2 / 3, 1, 1.0), (8, 2 / 3, -1, 1.0),
    (9, -2 / 3, 1, 1.0), (10, -2 / 3, -1, 1.0), (11, 1.0, 1, 1.0), (12, 1.0, -1, 1.0),
    (13, -1.0, 1, 1.0), (14, -1.0, -1, 1.0), (15, 2.0, 0, 0.35), (16, -2.0, 0, 0.35),
]
# fmt: on


def worst_case(pnl: np.ndarray) -> tuple[float, int]:
    """Scanning risk: the largest loss over the scenarios and its 1-based scenario number."""
    loss = -np.asarray(pnl, dtype=np.float64)
    return float(loss.max()), int(loss.argmax()) + 1


@pytest.mark.parametrize(("scenario", "fraction", "vol_sign", "weight"), LAYOUT)
def test_span_layout(scenario: int, fraction: float, vol_sign: int, weight: float) -> None:
    fractions, signs, weights = span_price_fractions(GridParams())
    i = scenario - 1
    assert fractions[i] == pytest.approx(fraction, abs=1e-15)
    assert signs[i] == vol_sign
    assert weights[i] == weight


def mcmillan_future_pnl() -> np.ndarray:
    """P&L of one future sized so that a move of one scan range is worth $10,000."""
    params = MarginParams()
    state = market({"XYZ": (2000.0, 0.40)}, ["XYZ"], params)
    scan = float(scan_ranges(state, params)[state.asset_index["XYZ"]])
    size = 10_000.0 / (state.forward[0] * scan)
    grid = span_grid(state, params)
    return size * state.forward[0] * grid.price_move[:, state.asset_index["XYZ"]] * grid.pnl_weight


@pytest.mark.parametrize(("scenario", "expected"), list(enumerate(MCMILLAN_FUTURE, start=1)))
def test_mcmillan_future_risk_array(scenario: int, expected: int) -> None:
    # McMillan, Options as a Strategic Investment, Part V, p. 670: the future's SPAN risk array.
    pnl = mcmillan_future_pnl()
    assert round(pnl[scenario - 1], -1) == expected


def test_mcmillan_scanning_risk_long_future_short_call() -> None:
    # McMillan, Options as a Strategic Investment, Part V, p. 670: long future + short call,
    # scanning risk $6,620 at scenario 13 (down 3/3, vol up).
    combined = np.round(mcmillan_future_pnl(), -1) + np.array(MCMILLAN_SHORT_CALL, dtype=np.float64)
    assert worst_case(combined) == (6620.0, 13)


@pytest.mark.parametrize("pair", range(7))
def test_layout_vol_order_agrees_with_mcmillans_short_call(pair: int) -> None:
    # McMillan p. 670: at each price, the short call loses more with vol up than with vol down, so the
    # book's odd scenarios are the vol-up ones, as in our layout.
    _, signs, _ = span_price_fractions(GridParams())
    up, down = 2 * pair, 2 * pair + 1
    assert (signs[up], signs[down]) == (1.0, -1.0)
    assert MCMILLAN_SHORT_CALL[up] < MCMILLAN_SHORT_CALL[down]


def test_scan_range_is_z_vol_sqrt_mpor() -> None:
    params = MarginParams()
    state = market({"BTC": (50_000.0, 0.6), "ETH": (3000.0, 0.8)}, ["BTC", "ETH"], params)
    z = norm.ppf(0.99)
    scan = scan_ranges(state, params)
    btc, eth = state.asset_index["BTC"], state.asset_index["ETH"]
    assert scan[btc] == pytest.approx(z * 0.6 * math.sqrt(2.0 / 365.0), rel=1e-12)
    assert scan[eth] == pytest.approx(z * 0.8 * math.sqrt(2.0 / 365.0), rel=1e-12)
    grid = span_grid(state, params)
    assert grid.price_move[10, btc] == pytest.approx(scan[btc], rel=1e-12)  # scenario 11: up 3/3
    assert grid.price_move[N_SPAN + 15, eth] == pytest.approx(-2.0 * scan[eth], rel=1e-12)


@pytest.fixture
def two_asset_grid() -> tuple[MarketState, ScenarioSet]:
    params = MarginParams()
    quotes = {"BTC": (50_000.0, 0.6), "ETH": (3000.0, 0.8), "SOL": (150.0, 1.0)}
    state = market(quotes, ["ETH", "BTC"], params)  # SOL: collateral-only, no instruments
    return state, span_grid(state, params)


def test_one_group_per_traded_asset_in_sorted_order(two_asset_grid: tuple[MarketState, ScenarioSet]) -> None:
    state, grid = two_asset_grid
    assert state.assets == ("BTC", "ETH", "SOL", "USD")
    assert grid.n_scenarios == 2 * N_SPAN
    assert grid.group.tolist() == [0] * N_SPAN + [1] * N_SPAN
    assert grid.group_offsets.tolist() == [0, N_SPAN, 2 * N_SPAN]
    assert grid.labels[0].startswith("BTC #1") and grid.labels[N_SPAN].startswith("ETH #1")


@pytest.mark.parametrize("group", [0, 1])
@pytest.mark.parametrize("asset", ["BTC", "ETH", "SOL", "USD"])
def test_only_the_groups_asset_moves(two_asset_grid: tuple[MarketState, ScenarioSet], group: int, asset: str) -> None:
    state, grid = two_asset_grid
    rows = slice(group * N_SPAN, (group + 1) * N_SPAN)
    a = state.asset_index[asset]
    moves = (np.count_nonzero(grid.price_move[rows, a]), np.count_nonzero(grid.vol_move[rows, a]))
    assert moves == ((14, 14) if asset == ["BTC", "ETH"][group] else (0, 0))


def test_vol_scan_and_weights(two_asset_grid: tuple[MarketState, ScenarioSet]) -> None:
    state, grid = two_asset_grid
    btc = state.asset_index["BTC"]
    assert grid.vol_move[:N_SPAN, btc].tolist() == [0.25, -0.25] * 7 + [0.0, 0.0]
    assert grid.pnl_weight.tolist() == ([1.0] * 14 + [0.35, 0.35]) * 2
    assert grid.horizon_years == pytest.approx(2.0 / 365.0)
    assert grid.vol_term is None


def test_enormous_scan_clips_down_moves_at_minus_99_percent() -> None:
    params = structs.replace(MarginParams(), mpor_days=365.0)
    params = structs.replace(params, scenarios=structs.replace(params.scenarios, grid=GridParams(vol_scan=1.5)))
    state = market({"XYZ": (1.0, 3.0)}, ["XYZ"], params)  # scan = 2.33 * 3 = 7: a 2x extreme is -1400%
    grid = span_grid(state, params)
    a = state.asset_index["XYZ"]
    assert grid.price_move[:, a].min() == -0.99
    assert grid.vol_move[:, a].min() == -0.99
    assert grid.price_move[14, a] == pytest.approx(2.0 * scan_ranges(state, params)[a])


def test_inputs_not_mutated(two_asset_grid: tuple[MarketState, ScenarioSet]) -> None:
    state, _ = two_asset_grid
    before = (state.price.copy(), state.vol.copy())
    span_grid(state, MarginParams())
    assert np.array_equal(state.price, before[0]) and np.array_equal(state.vol, before[1])
