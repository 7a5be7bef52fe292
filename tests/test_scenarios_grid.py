"""The SPAN-style grid: layout, scan range, McMillan's worked example, clipping."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import numpy as np
import pytest
from msgspec import structs
from scipy import stats
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


def normal_moves(**changes: object) -> MarginParams:
    """SPAN's symmetric price-space scan (`grid.moves` "normal"), as in McMillan's example."""
    params = structs.replace(MarginParams(), **changes)
    grid = structs.replace(params.scenarios.grid, moves="normal")
    return structs.replace(params, scenarios=structs.replace(params.scenarios, grid=grid))


def mcmillan_future_pnl() -> np.ndarray:
    """P&L of one future sized so that a move of one scan range is worth $10,000."""
    params = normal_moves()
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


def test_normal_scan_range_is_z_vol_sqrt_mpor() -> None:
    """The "normal" moves: symmetric, z_m vol sqrt(h), z_m the normal ES quantile phi(z) / (1 - c) under ES."""
    params = normal_moves(measure="var")
    state = market({"BTC": (50_000.0, 0.6), "ETH": (3000.0, 0.8)}, ["BTC", "ETH"], params)
    z = norm.ppf(0.99)
    scan = scan_ranges(state, params)
    btc, eth = state.asset_index["BTC"], state.asset_index["ETH"]
    assert scan[btc] == pytest.approx(z * 0.6 * math.sqrt(2.0 / 365.0), rel=1e-12)
    assert scan[eth] == pytest.approx(z * 0.8 * math.sqrt(2.0 / 365.0), rel=1e-12)
    grid = span_grid(state, params)
    assert grid.price_move[10, btc] == pytest.approx(scan[btc], rel=1e-12)  # scenario 11: up 3/3
    assert grid.price_move[N_SPAN + 15, eth] == pytest.approx(-2.0 * scan[eth], rel=1e-12)
    es = normal_moves()
    assert scan_ranges(state, es)[btc] == pytest.approx(norm.pdf(z) / 0.01 * 0.6 * math.sqrt(2 / 365), rel=1e-12)


def lognormal_edges(vol: float, c: float, days: float = 2.0) -> tuple[float, float, float, float]:
    """(VaR up, VaR down, ES up, ES down) of a lognormal price's relative move, from scipy: the quantiles of
    scipy.stats.lognorm and its conditional expectation beyond them (numerical integration)."""
    dist = stats.lognorm(vol * math.sqrt(days / 365.0))
    hi, lo = float(dist.ppf(c)), float(dist.ppf(1.0 - c))
    es_up = float(dist.expect(lambda x: x, lb=hi, conditional=True))
    es_down = float(dist.expect(lambda x: x, ub=lo, conditional=True))
    return hi - 1.0, lo - 1.0, es_up - 1.0, es_down - 1.0


@pytest.mark.parametrize("vol", [0.3, 0.6, 1.5])
@pytest.mark.parametrize("confidence", [0.975, 0.99, 0.995])
@pytest.mark.parametrize("measure", ["es", "var", "worst"])
def test_scan_is_the_lognormal_quantile_or_es_at_the_models_confidence(
    vol: float, confidence: float, measure: str
) -> None:
    """issue 12 item 10: the grid's scan comes from `confidence` and `measure` on a lognormal price, checked
    against scipy's lognormal (VaR, worst: its quantiles; ES: its expected move beyond them). Before, the scan
    was a fixed symmetric normal 99% VaR whatever the measure and confidence: a short perp at 150% vol was
    charged 25.8% against the lognormal up-quantile of 29.5% (ES: 34.5%), and `confidence=0.995` changed
    nothing. The 1/3 and 2/3 moves are those fractions of each side's log move; the 2x extreme, twice it."""
    params = structs.replace(MarginParams(), confidence=confidence, measure=measure)
    state = market({"XYZ": (100.0, vol)}, ["XYZ"], params)
    grid = span_grid(state, params)
    a = state.asset_index["XYZ"]
    var_up, var_down, es_up, es_down = lognormal_edges(vol, confidence)
    up, down = (es_up, es_down) if measure == "es" else (var_up, var_down)
    moves = grid.price_move[:, a]
    assert moves[10] == pytest.approx(up, rel=1e-9)  # scenario 11: up 3/3
    assert moves[12] == pytest.approx(down, rel=1e-9)  # scenario 13: down 3/3
    assert moves[2] == pytest.approx(math.expm1(math.log1p(up) / 3.0), rel=1e-9)
    assert moves[8] == pytest.approx(math.expm1(2.0 * math.log1p(down) / 3.0), rel=1e-9)
    assert moves[14] == pytest.approx((1.0 + up) ** 2 - 1.0, rel=1e-9)
    assert moves[15] == pytest.approx((1.0 + down) ** 2 - 1.0, rel=1e-9)


@pytest.mark.parametrize("measure", ["es", "var"])
def test_a_linear_positions_grid_margin_is_its_lognormal_risk_measure(measure: str) -> None:
    """issue 12 item 10: one short and one long future on the grid are charged their lognormal VaR / ES at the
    model's confidence (the 3/3 scenario binds: 0.35 x the 2x extreme is smaller at these vols)."""
    from solvent.convert.inputs import portfolio_to_book
    from solvent.engine.margin import margin_book
    from solvent.formats.schemas import Account, Portfolio, Position

    for confidence in (0.99, 0.995):
        params = structs.replace(MarginParams(), confidence=confidence, measure=measure)
        state = market({"XYZ": (100.0, 1.5)}, ["XYZ"], params)
        accounts = [
            Account(id=name, positions=[Position(instrument="XYZ-F", quantity=q, entry_price=100.0)])
            for name, q in (("short", -1.0), ("long", 1.0))
        ]
        instruments = [Instrument(id="XYZ-F", kind="future", underlying="XYZ", expiry=EXPIRY)]
        book = portfolio_to_book(Portfolio(schema="solvent.portfolio/1", instruments=instruments, accounts=accounts))
        result = margin_book(book, state, params)
        var_up, var_down, es_up, es_down = lognormal_edges(1.5, confidence)
        up, down = (es_up, es_down) if measure == "es" else (var_up, var_down)
        forward = float(state.forward[0])
        assert result.terms["market_risk"] == pytest.approx([forward * up, -forward * down], rel=1e-9)


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
    params = structs.replace(MarginParams(), mpor_days=365.0, measure="var")
    grid_params = GridParams(vol_scan=1.5, moves="normal")
    params = structs.replace(params, scenarios=structs.replace(params.scenarios, grid=grid_params))
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
