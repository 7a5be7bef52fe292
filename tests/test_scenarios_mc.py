"""The stressed-correlation Monte Carlo: determinism, target correlation, marginal widths."""

from __future__ import annotations

import math
from datetime import UTC, datetime

import numpy as np
import pytest
from msgspec import structs

from solvent.errors import InputError
from solvent.formats.schemas import AssetQuote, Instrument, MarketSnapshot
from solvent.market.history import PriceHistory
from solvent.market.state import MarketState, build_market_state
from solvent.params import MarginParams, McParams
from solvent.scenarios import generate_scenarios
from solvent.scenarios.mc import (
    DEFAULT_CORRELATION,
    correlation_factor,
    monte_carlo,
    nearest_psd_correlation,
    target_correlation,
)

NOW = datetime(2026, 1, 2, tzinfo=UTC)
VOLS = {"BTC": 0.6, "ETH": 0.8, "SOL": 1.1}
H = 2.0 / 365.0


def mc_params(**mc: object) -> MarginParams:
    params = MarginParams()
    scenarios = structs.replace(params.scenarios, method="mc", mc=structs.replace(McParams(), **mc))
    return structs.replace(params, scenarios=scenarios)


def market(params: MarginParams, vols: dict[str, float] = VOLS) -> MarketState:
    instruments = [Instrument(id=f"{a}-PERP", kind="perp", underlying=a) for a in vols]
    quotes = {a: AssetQuote(price=100.0, vol=v) for a, v in vols.items()}
    quotes["USDC"] = AssetQuote(price=1.0, vol=0.02)
    return build_market_state(instruments, MarketSnapshot(schema="solvent.market/1", time=NOW, assets=quotes), params)


def traded_log_moves(state: MarketState, moves: np.ndarray) -> np.ndarray:
    return np.log1p(moves[:, [state.asset_index[a] for a in VOLS]])


def test_same_params_bit_identical() -> None:
    params = mc_params()
    state = market(params)
    first, second = monte_carlo(state, params), generate_scenarios(state, params)
    assert np.array_equal(first.price_move, second.price_move)
    assert np.array_equal(first.vol_move, second.vol_move)
    assert first.labels == second.labels and first.labels[0] == "mc 0001"


def test_seed_changes_the_draws() -> None:
    state = market(mc_params())
    a, b = monte_carlo(state, mc_params(seed=1)), monte_carlo(state, mc_params(seed=2))
    assert not np.array_equal(a.price_move, b.price_move)


def test_shape_group_and_untraded_columns() -> None:
    params = mc_params(n_scenarios=64)
    state = market(params)
    scenarios = monte_carlo(state, params)
    assert scenarios.price_move.shape == (64, len(state.assets))
    assert scenarios.group.tolist() == [0] * 64 and scenarios.pnl_weight.tolist() == [1.0] * 64
    assert scenarios.horizon_years == pytest.approx(H)
    for name in ("USD", "USDC"):
        assert not scenarios.price_move[:, state.asset_index[name]].any()
        assert not scenarios.vol_move[:, state.asset_index[name]].any()


@pytest.mark.parametrize(
    ("distribution", "dof", "stress_weight", "tolerance"),
    [("normal", 4.0, 0.25, 0.01), ("normal", 4.0, 0.0, 0.01), ("t", 8.0, 0.25, 0.02), ("t", 8.0, 0.6, 0.02)],
)
def test_sample_correlation_matches_blended_target(
    distribution: str, dof: float, stress_weight: float, tolerance: float
) -> None:
    params = mc_params(n_scenarios=200_000, distribution=distribution, dof=dof, stress_weight=stress_weight)
    state = market(params)
    logs = traded_log_moves(state, monte_carlo(state, params).price_move)
    expected = (1.0 - stress_weight) * DEFAULT_CORRELATION + stress_weight
    sample = np.corrcoef(logs, rowvar=False)[np.triu_indices(3, 1)]
    np.testing.assert_allclose(sample, expected, atol=tolerance)


@pytest.mark.parametrize(("distribution", "dof"), [("normal", 4.0), ("t", 10.0), ("t", 5.0)])
def test_marginal_std_is_sigma_sqrt_h(distribution: str, dof: float) -> None:
    params = mc_params(n_scenarios=200_000, distribution=distribution, dof=dof)
    state = market(params)
    logs = traded_log_moves(state, monte_carlo(state, params).price_move)
    np.testing.assert_allclose(logs.std(axis=0), np.array(list(VOLS.values())) * math.sqrt(H), rtol=0.03)


def test_student_t_has_fatter_tails_than_normal() -> None:
    state = market(mc_params())
    kurtosis = {}
    for dist in ("normal", "t"):
        logs = traded_log_moves(state, monte_carlo(state, mc_params(n_scenarios=100_000, distribution=dist)).price_move)
        z = logs[:, 0] / logs[:, 0].std()
        kurtosis[dist] = float(np.mean(z**4))
    assert kurtosis["normal"] == pytest.approx(3.0, abs=0.1)
    assert kurtosis["t"] > 5.0


def test_vol_moves_independent_lognormal() -> None:
    params = mc_params(n_scenarios=200_000, vol_of_vol=0.8)
    state = market(params)
    scenarios = monte_carlo(state, params)
    log_vol = traded_log_moves(state, scenarios.vol_move)
    np.testing.assert_allclose(log_vol.std(axis=0), 0.8 * math.sqrt(H), rtol=0.01)
    both = np.column_stack([log_vol, traded_log_moves(state, scenarios.price_move)])
    off_diagonal = np.corrcoef(both, rowvar=False)[:3]
    np.testing.assert_allclose(off_diagonal[:, 3:], 0.0, atol=0.01)
    assert np.all(scenarios.vol_move > -1.0)


def test_full_stress_moves_every_asset_together() -> None:
    params = mc_params(stress_weight=1.0)
    state = market(params)
    logs = traded_log_moves(state, monte_carlo(state, params).price_move)
    standardised = logs / np.array(list(VOLS.values()))
    np.testing.assert_allclose(standardised, standardised[:, :1].repeat(3, axis=1), rtol=1e-10, atol=1e-14)


def correlated_history(rho: float, n: int, seed: int) -> PriceHistory:
    rng = np.random.default_rng(seed)
    c = np.array([[1.0, rho, rho], [rho, 1.0, rho], [rho, rho, 1.0]])
    returns = 0.03 * rng.standard_normal((n, 3)) @ np.linalg.cholesky(c).T
    closes = 100.0 * np.exp(np.vstack([np.zeros(3), np.cumsum(returns, axis=0)]))
    timestamps = (np.datetime64("2010-01-01") + np.arange(n + 1) * np.timedelta64(1, "D")).astype("datetime64[s]")
    return PriceHistory(timestamps, ("BTC", "ETH", "SOL"), closes)


@pytest.mark.parametrize("rho", [0.0, 0.3, 0.9])
def test_history_sets_the_correlation(rho: float) -> None:
    params = mc_params()
    params = structs.replace(
        params,
        scenarios=structs.replace(params.scenarios, fhs=structs.replace(params.scenarios.fhs, lookback_days=6000)),
    )
    target = target_correlation(market(params), params, correlated_history(rho, 6000, 3))
    np.testing.assert_allclose(target[np.triu_indices(3, 1)], 0.75 * rho + 0.25, atol=0.04)
    assert np.diag(target).tolist() == [1.0, 1.0, 1.0]


def test_history_missing_an_asset_is_an_input_error() -> None:
    history = correlated_history(0.5, 100, 1).select(("BTC", "ETH"))
    with pytest.raises(InputError, match="'SOL'"):
        monte_carlo(market(mc_params()), mc_params(), history)


def test_nearest_psd_repairs_an_indefinite_matrix() -> None:
    c = np.array([[1.0, 0.9, -0.9], [0.9, 1.0, 0.9], [-0.9, 0.9, 1.0]])
    assert np.linalg.eigvalsh(c)[0] < 0.0
    repaired = nearest_psd_correlation(c)
    assert np.linalg.eigvalsh(repaired)[0] > -1e-12
    np.testing.assert_allclose(np.diag(repaired), 1.0, rtol=1e-12)
    factor = correlation_factor(repaired)
    np.testing.assert_allclose(factor @ factor.T, repaired, atol=1e-10)


def test_psd_matrix_is_left_alone() -> None:
    c = np.array([[1.0, 0.5], [0.5, 1.0]])
    assert np.array_equal(nearest_psd_correlation(c), c)
