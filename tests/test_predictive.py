"""Predictive liquidation: first-passage breach probability, loss volatility, price velocity, time to breach."""

from __future__ import annotations

import io
import math
from datetime import UTC, datetime

import msgspec
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from msgspec import structs
from scipy.special import ndtr

from solvent.factors.held import every_asset
from solvent.formats.schemas import AssetQuote, Instrument, MarketSnapshot
from solvent.liquidation import (
    SECONDS_PER_YEAR,
    breach_probability,
    early_trigger,
    equity_drift,
    loss_volatility,
    price_velocity,
    time_to_breach,
    velocity_path,
)
from solvent.liquidation.predictive import (
    VelocityTracker,
    _book_kernel,
    account_breach,
    book_breach,
    book_moments,
    constant_correlation,
    scenario_correlation,
)
from solvent.market.state import MarketState, build_market_state
from solvent.params import MarginParams, PredictiveParams
from solvent.scenarios.base import ScenarioSet, with_depeg_scenario
from solvent.scenarios.mc import monte_carlo, nearest_psd_correlation

# ------------------------------------------------------------------------------- breach probability

#: Broadie, Glasserman and Kou (1997), "A continuity correction for discrete barrier options", Math. Finance
#: 7(4): a barrier monitored every Δt is crossed like a continuous one moved away by β σ √Δt, β = -ζ(1/2)/√(2π).
BGK_BETA = 0.5825971579390106


@pytest.mark.parametrize(
    ("d", "sigma", "mu", "h"),
    [
        (1.0, 1.0, 0.0, 1.0),
        (1.0, 1.0, -0.5, 1.0),
        (1.0, 1.0, 0.8, 1.0),
        (2.0, 1.5, -1.0, 2.0),
        (0.5, 2.0, 3.0, 0.25),
    ],
)
def test_breach_probability_matches_monte_carlo(d: float, sigma: float, mu: float, h: float) -> None:
    """20,000 discretised paths x 2,000 steps; the discrete monitor is compared with the closed form at the
    BGK-shifted distance d + β σ √Δt. Tolerance: 4 Monte Carlo standard errors + 0.003 (left-over O(Δt) bias)."""
    paths, steps = 20_000, 2_000
    dt = h / steps
    rng = np.random.default_rng(20240611)
    x = np.full(paths, d)
    hit = np.zeros(paths, dtype=bool)
    for _ in range(steps):
        x += mu * dt + sigma * math.sqrt(dt) * rng.standard_normal(paths)
        hit |= x <= 0.0
    estimate = hit.mean()
    expected = float(breach_probability(d + BGK_BETA * sigma * math.sqrt(dt), 0.0, sigma, h, mu))
    tolerance = 4.0 * math.sqrt(expected * (1.0 - expected) / paths) + 0.003
    assert abs(estimate - expected) < tolerance, (estimate, expected)


@pytest.mark.parametrize(("d", "sigma", "h"), [(1.0, 1.0, 1.0), (3.0, 0.5, 4.0), (1e-3, 2.0, 1e-6), (1e4, 1e3, 0.5)])
def test_zero_drift_is_twice_the_normal_tail(d: float, sigma: float, h: float) -> None:
    """Reflection principle: P(min W <= -d) = 2 Φ(-d/(σ√h))."""
    got = float(breach_probability(d, 0.0, sigma, h))
    assert got == pytest.approx(2.0 * ndtr(-d / (sigma * math.sqrt(h))), rel=1e-12, abs=1e-300)


@pytest.mark.parametrize("z", [0.1, 1.0, 3.0, 6.0])
@pytest.mark.parametrize("m", [-6.0, -1.5, 0.0, 0.7, 4.0])
def test_stable_form_equals_the_textbook_formula_where_that_is_safe(z: float, m: float) -> None:
    """Φ(-z-m) + exp(-2zm) Φ(m-z), evaluated naively, at moderate z and m (no overflow there)."""
    naive = ndtr(-z - m) + math.exp(-2.0 * z * m) * ndtr(m - z)
    got = float(breach_probability(z, 0.0, 1.0, 1.0, m))  # σ = h = 1: z = d, m = μ
    assert got == pytest.approx(naive, rel=1e-10, abs=1e-15)


@pytest.mark.parametrize(
    ("d", "sigma", "h", "mu", "expected"),
    [
        (0.0, 1.0, 1.0, 0.0, 1.0),  # at MM
        (-5.0, 1.0, 1.0, 10.0, 1.0),  # below MM, whatever the drift
        (-5.0, 0.0, 0.0, 0.0, 1.0),
        (1.0, 0.0, 1.0, 0.0, 0.0),  # no diffusion, no drift
        (1.0, 0.0, 1.0, -0.5, 0.0),  # drifts to 0.5 only
        (1.0, 0.0, 1.0, -2.0, 1.0),  # drifts through MM at t = 0.5
        (1.0, 1.0, 0.0, -2.0, 0.0),  # no time
    ],
)
def test_edge_cases(d: float, sigma: float, h: float, mu: float, expected: float) -> None:
    assert float(breach_probability(1_000.0 + d, 1_000.0, sigma, h, mu)) == expected


@pytest.mark.parametrize(
    ("d", "sigma", "h", "mu", "low", "high"),
    [
        (1e6, 1e-300, 1.0, 0.0, 0.0, 0.0),  # d/σ overflows
        (1.0, 1e-200, 1.0, -1e6, 1.0, 1.0),  # μ/σ overflows, drifting through MM
        (1e300, 1e-300, 1.0, 1e300, 0.0, 0.0),
        (1.0, 1e-3, 1.0, -1e6, 1.0, 1.0),  # exp(-2μd/σ²) = exp(2e12)
        (1e6, 1.0, 1.0, 1e6, 0.0, 0.0),  # exp(-2e12)
        (50.0, 1.0, 1.0, -50.0, 0.5, 0.51),  # exp(5000) Φ(-100): ≈ 0.5 + 1/(100√(2π))
        (1e-300, 1e300, 1e10, 1e300, 0.0, 1.0),
        (1e300, 1e300, 1e-300, -1e300, 0.0, 1.0),
    ],
)
def test_extreme_inputs_neither_overflow_nor_warn(
    d: float, sigma: float, h: float, mu: float, low: float, high: float
) -> None:
    """pytest turns warnings into errors, so a numpy overflow or divide-by-zero here fails the test."""
    got = float(breach_probability(d, 0.0, sigma, h, mu))
    assert math.isfinite(got)
    assert low <= got <= high


def test_strong_adverse_drift_value() -> None:
    """z = 50, m = -50: Φ(0) + exp(5000) Φ(-100) = 0.5 + (1 - 1/100² + 3/100⁴ - ...)/(100 √(2π)) (Mills ratio)."""
    mills = (1.0 - 1e-4 + 3e-8 - 15e-12) / (100.0 * math.sqrt(2.0 * math.pi))
    assert float(breach_probability(50.0, 0.0, 1.0, 1.0, -50.0)) == pytest.approx(0.5 + mills, rel=1e-12)


def test_vectorised_over_accounts_and_does_not_mutate() -> None:
    equity = np.array([1_100.0, 1_000.0, 900.0, 5_000.0])
    mm = np.array([1_000.0, 1_000.0, 1_000.0, 1_000.0])
    vol = np.array([100.0, 100.0, 100.0, 0.0])
    before = (equity.copy(), mm.copy(), vol.copy())
    got = breach_probability(equity, mm, vol, 1.0)
    assert got.shape == (4,)
    np.testing.assert_array_equal(got, [2.0 * ndtr(-1.0), 1.0, 1.0, 0.0])
    for a, b in zip((equity, mm, vol), before, strict=True):
        np.testing.assert_array_equal(a, b)
    reordered = breach_probability(equity[::-1], mm[::-1], vol[::-1], 1.0)
    np.testing.assert_array_equal(reordered, got[::-1])


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"loss_vol": -1.0}, "loss_vol must be >= 0"),
        ({"horizon": -1.0}, "horizon must be >= 0"),
        ({"equity": math.nan}, "equity must be finite"),
        ({"drift": math.inf}, "drift must be finite"),
    ],
)
def test_bad_inputs_fail_fast(kwargs: dict[str, float], message: str) -> None:
    args = {"equity": 2.0, "mm": 1.0, "loss_vol": 1.0, "horizon": 1.0, "drift": 0.0} | kwargs
    with pytest.raises(ValueError, match=message):
        breach_probability(**args)


distances = st.floats(1e-6, 1e4)
vols = st.floats(1e-3, 1e4)
horizons = st.floats(1e-8, 10.0)
drifts = st.floats(-1e4, 1e4)
EPS = 1e-12


@settings(deadline=None)
@given(distances, distances, vols, horizons, drifts)
def test_non_increasing_in_distance(d1: float, d2: float, sigma: float, h: float, mu: float) -> None:
    near, far = sorted((d1, d2))
    p = breach_probability(np.array([near, far]), 0.0, sigma, h, mu)
    assert 0.0 <= p[1] <= p[0] + EPS <= 1.0 + EPS


@settings(deadline=None)
@given(distances, vols, horizons, horizons, drifts)
def test_non_decreasing_in_horizon(d: float, sigma: float, h1: float, h2: float, mu: float) -> None:
    short, long = sorted((h1, h2))
    p = breach_probability(d, 0.0, sigma, np.array([short, long]), mu)
    assert 0.0 <= p[0] <= p[1] + EPS <= 1.0 + EPS


@settings(deadline=None)
@given(distances, vols, vols, horizons, st.floats(0.0, 1e4))
def test_non_decreasing_in_volatility_without_adverse_drift(
    d: float, s1: float, s2: float, h: float, mu: float
) -> None:
    """Only for μ >= 0: with μ < 0 a calm path drifts into MM for sure, and noise can make that less likely."""
    low, high = sorted((s1, s2))
    p = breach_probability(d, 0.0, np.array([low, high]), h, mu)
    assert 0.0 <= p[0] <= p[1] + EPS <= 1.0 + EPS


@settings(deadline=None)
@given(distances, vols, horizons, drifts, drifts)
def test_non_increasing_in_drift(d: float, sigma: float, h: float, mu1: float, mu2: float) -> None:
    down, up = sorted((mu1, mu2))
    p = breach_probability(d, 0.0, sigma, h, np.array([down, up]))
    assert 0.0 <= p[1] <= p[0] + EPS <= 1.0 + EPS


def test_adverse_drift_beats_zero_drift_beats_favourable() -> None:
    p = breach_probability(1.0, 0.0, 1.0, 1.0, np.array([-1.0, 0.0, 1.0]))
    assert p[0] > p[1] > p[2]


# ---------------------------------------------------------------------------------------- triggers


def test_early_trigger_flags_above_threshold_and_fails_closed_on_nan() -> None:
    np.testing.assert_array_equal(early_trigger([0.05, 0.1, 0.2, math.nan], 0.1), [False, False, True, True])


def test_early_trigger_rejects_a_threshold_outside_the_unit_interval() -> None:
    with pytest.raises(ValueError, match="threshold"):
        early_trigger([0.5], 1.0)


def test_params_are_frozen_keyword_only_strict_and_round_trip() -> None:
    params = PredictiveParams(horizon_seconds=30.0, threshold=0.2, halflife_seconds=120.0)
    assert msgspec.json.decode(msgspec.json.encode(params), type=PredictiveParams) == params
    with pytest.raises(TypeError):
        PredictiveParams(30.0)  # type: ignore[call-arg]
    with pytest.raises(AttributeError):
        params.threshold = 0.5  # type: ignore[misc]
    with pytest.raises(msgspec.ValidationError):
        msgspec.json.decode(b'{"horizon": 30}', type=PredictiveParams)
    with pytest.raises(msgspec.ValidationError):
        msgspec.json.decode(b'{"threshold": 1.5}', type=PredictiveParams)


# --------------------------------------------------------------------------------- loss volatility


@pytest.mark.parametrize("rho", [-1.0, -0.3, 0.0, 0.6, 1.0])
def test_loss_volatility_two_assets_by_hand(rho: float) -> None:
    x1, x2, s1, s2 = 250_000.0, -120_000.0, 0.6, 0.8
    got = loss_volatility(np.array([[x1, x2]]), np.array([s1, s2]), np.array([[1.0, rho], [rho, 1.0]]))
    by_hand = x1**2 * s1**2 + x2**2 * s2**2 + 2.0 * rho * x1 * x2 * s1 * s2
    assert got[0] == pytest.approx(math.sqrt(max(by_hand, 0.0)), rel=1e-12, abs=1e-6)


def test_hedged_book_has_no_loss_volatility() -> None:
    got = loss_volatility(np.array([[1e6, -1e6]]), np.array([0.7, 0.7]), np.ones((2, 2)))
    assert got[0] == 0.0


def test_loss_volatility_ignores_account_and_asset_order() -> None:
    rng = np.random.default_rng(7)
    x = rng.normal(0.0, 1e5, (5, 3))
    vol = np.array([0.5, 0.8, 1.1])
    corr = np.array([[1.0, 0.6, 0.3], [0.6, 1.0, 0.5], [0.3, 0.5, 1.0]])
    base = loss_volatility(x, vol, corr)
    perm = np.array([2, 0, 1])
    np.testing.assert_allclose(loss_volatility(x[::-1][:, perm], vol[perm], corr[np.ix_(perm, perm)]), base[::-1])


def test_gamma_term_single_asset_by_hand() -> None:
    """Var(x r + ½ g r²), r ~ N(0, s² h): x² s² h + ½ g² s⁴ h²; per year: divide by h."""
    x, g, s, h = 1e5, 4e6, 0.8, 1.0 / 365.0
    got = loss_volatility(np.array([[x]]), np.array([s]), np.eye(1), np.array([[g]]), horizon=h)
    assert got[0] == pytest.approx(math.sqrt(x**2 * s**2 + 0.5 * g**2 * s**4 * h), rel=1e-12)


def test_gamma_term_needs_a_horizon() -> None:
    with pytest.raises(ValueError, match="horizon"):
        loss_volatility(np.ones((1, 1)), np.ones(1), np.eye(1), np.ones((1, 1)))


def test_loss_volatility_checks_shapes() -> None:
    with pytest.raises(ValueError, match="shapes"):
        loss_volatility(np.ones((2, 3)), np.ones(2), np.eye(2))


def test_equity_drift_is_exposure_times_velocity() -> None:
    np.testing.assert_allclose(equity_drift(np.array([[1e5, -2e5]]), np.array([-0.5, 0.25])), [-1e5])


# ------------------------------------------------------------------------------------ time to breach


@pytest.mark.parametrize(
    ("equity", "mm", "drift", "expected"),
    [
        (1_100.0, 1_000.0, -50.0, 2.0),
        (1_100.0, 1_000.0, 0.0, math.inf),
        (1_100.0, 1_000.0, 50.0, math.inf),
        (900.0, 1_000.0, -50.0, 0.0),
        (1_000.0, 1_000.0, 50.0, 0.0),
    ],
)
def test_time_to_breach_by_hand(equity: float, mm: float, drift: float, expected: float) -> None:
    assert float(time_to_breach(equity, mm, drift)) == expected


# --------------------------------------------------------------------------------------- velocity

HOUR = 3600.0 / SECONDS_PER_YEAR


def irregular_times(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.concatenate([[0.0], np.cumsum(rng.exponential(1.0, n - 1))]) / SECONDS_PER_YEAR


@pytest.mark.parametrize("growth", [-3.0, 0.0, 0.4, 25.0])
def test_velocity_of_an_exponential_path_is_its_growth_rate(growth: float) -> None:
    t = irregular_times(500, seed=1)
    prices = 30_000.0 * np.exp(growth * t)
    # one-second returns of ~1e-8 carry ~1e-16 absolute round-off each: relative error ~1e-8
    assert price_velocity(t, prices, halflife=HOUR).velocity == pytest.approx(growth, rel=1e-6, abs=1e-6)
    path, _ = velocity_path(t, prices, halflife=HOUR)
    np.testing.assert_allclose(path, growth, rtol=1e-6, atol=1e-6)


def test_fast_volatility_of_a_random_walk() -> None:
    """One-second ticks of a driftless log random walk at 80 % a year; a one-hour half-life averages about
    5,000 squared returns, so the estimate is within a few per cent."""
    rng = np.random.default_rng(3)
    n, sigma = 40_000, 0.8
    t = np.arange(n) / SECONDS_PER_YEAR
    log_p = np.concatenate([[0.0], np.cumsum(sigma * math.sqrt(1.0 / SECONDS_PER_YEAR) * rng.standard_normal(n - 1))])
    estimate = price_velocity(t, 100.0 * np.exp(log_p), halflife=HOUR)
    assert estimate.volatility == pytest.approx(sigma, rel=0.05)


def test_compiled_path_agrees_with_the_vectorised_twin_at_every_tick() -> None:
    rng = np.random.default_rng(11)
    t = irregular_times(200, seed=2)
    t[50] = t[49]  # two ticks at the same time
    prices = 2_000.0 * np.exp(np.cumsum(rng.normal(0.0, 1e-3, t.size)))
    before = (t.copy(), prices.copy())
    out = np.empty((2, t.size - 1))
    velocity, volatility = velocity_path(t, prices, halflife=10 * 60 / SECONDS_PER_YEAR, out=out)
    assert np.shares_memory(velocity, out)
    for i in range(2, t.size + 1, 13):
        twin = price_velocity(t[:i], prices[:i], halflife=10 * 60 / SECONDS_PER_YEAR)
        assert velocity[i - 2] == pytest.approx(twin.velocity, rel=1e-10, abs=1e-12)
        assert volatility[i - 2] == pytest.approx(twin.volatility, rel=1e-10)
    np.testing.assert_array_equal(t, before[0])
    np.testing.assert_array_equal(prices, before[1])


def test_no_elapsed_time_is_undefined() -> None:
    t = np.array([1.0, 1.0, 2.0])
    prices = np.array([100.0, 101.0, 102.0])
    velocity, _ = velocity_path(t, prices, halflife=1.0)
    assert math.isnan(velocity[0])
    assert velocity[1] == pytest.approx(0.5 * math.log(1.01) + math.log(102.0 / 101.0))  # halflife 1: decay 1/2
    with pytest.raises(ValueError, match="no time elapsed"):
        price_velocity(t[:2], prices[:2], halflife=1.0)


@pytest.mark.parametrize(
    ("times", "prices", "message"),
    [
        ([0.0, 2.0, 1.0], [1.0, 1.0, 1.0], "non-decreasing"),
        ([0.0, 1.0], [1.0, -1.0], "prices must be > 0"),
        ([0.0], [1.0], "T >= 2"),
        ([0.0, math.nan], [1.0, 1.0], "times must be finite"),
    ],
)
def test_velocity_rejects_bad_ticks(times: list[float], prices: list[float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        price_velocity(times, prices, halflife=1.0)


# ------------------------------------------------------------------------------ scenario correlation

H_MPOR = 2.0 / 365.0


def joint_set(name: str, moves: np.ndarray, weight: np.ndarray | None = None) -> ScenarioSet:
    s = moves.shape[0]
    return ScenarioSet(
        name=name,
        price_move=moves,
        vol_move=np.zeros_like(moves),
        pnl_weight=np.ones(s) if weight is None else weight,
        group=np.zeros(s, dtype=np.int32),
        horizon_years=H_MPOR,
        labels=tuple(f"{name} {i}" for i in range(s)),
    )


def mc_market() -> tuple[MarketState, MarginParams]:
    """BTC, ETH and SOL perps (traded), USDC quoted but untraded, and USD."""
    params = MarginParams()
    params = structs.replace(params, scenarios=structs.replace(params.scenarios, method="mc"))
    vols = {"BTC": 0.6, "ETH": 0.8, "SOL": 1.1}
    instruments = [Instrument(id=f"{a}-PERP", kind="perp", underlying=a) for a in vols]
    quotes = {a: AssetQuote(price=100.0, vol=v) for a, v in vols.items()} | {"USDC": AssetQuote(price=1.0, vol=0.02)}
    snapshot = MarketSnapshot(schema="solvent.market/1", time=datetime(2026, 1, 2, tzinfo=UTC), assets=quotes)
    return build_market_state(instruments, snapshot, params), params


def test_scenario_correlation_of_an_mc_set_is_numpys_corrcoef_of_its_log_moves() -> None:
    state, params = mc_market()
    scenarios = monte_carlo(state, params)
    got = scenario_correlation(scenarios, PredictiveParams())
    traded = [state.asset_index[a] for a in ("BTC", "ETH", "SOL")]
    drawn = scenarios.price_move[scenarios.group == 0]  # the joint draws (later groups: one asset at a time)
    expected = np.corrcoef(np.log1p(drawn[:, traded]), rowvar=False)
    np.testing.assert_allclose(got[np.ix_(traded, traded)], expected, rtol=1e-12, atol=1e-15)
    assert got[traded[0], traded[1]] > 0.5  # the MC's correlation (0.7), not the parameter's 0.8 by accident
    flat = [state.asset_index[a] for a in ("USD", "USDC")]  # no variance: 1 on the diagonal, 0 off it
    np.testing.assert_array_equal(got[flat], np.eye(len(state.assets))[flat])
    np.testing.assert_array_equal(got[:, flat], np.eye(len(state.assets))[:, flat])


def test_scenario_correlation_weights_like_repeated_scenarios() -> None:
    """pnl_weight 2 on a scenario is the same sample as that scenario twice with weight 1."""
    rng = np.random.default_rng(5)
    moves = np.expm1(rng.normal(0.0, 0.05, (40, 3)) @ np.array([[1.0, 0.5, 0.0], [0.0, 1.0, 0.3], [0.0, 0.0, 1.0]]))
    weight = np.where(np.arange(40) % 3 == 0, 2.0, 1.0)
    repeated = np.repeat(moves, weight.astype(int), axis=0)
    got = scenario_correlation(joint_set("fhs", moves, weight), PredictiveParams())
    np.testing.assert_allclose(got, np.corrcoef(np.log1p(repeated), rowvar=False), rtol=1e-12)
    assert not np.allclose(got, np.corrcoef(np.log1p(moves), rowvar=False), rtol=1e-6)


def test_scenario_correlation_leaves_out_the_depeg_group() -> None:
    rng = np.random.default_rng(6)
    moves = np.expm1(rng.normal(0.0, 0.05, (30, 3)))
    base = joint_set("mc", moves)
    with_depeg = with_depeg_scenario(base, np.array([2]), 0.1)
    np.testing.assert_array_equal(
        scenario_correlation(with_depeg, PredictiveParams()), scenario_correlation(base, PredictiveParams())
    )


@pytest.mark.parametrize("name", ["grid", "deribit"])
def test_scenario_correlation_of_a_grid_is_the_constant(name: str) -> None:
    moves = np.zeros((4, 3))
    got = scenario_correlation(joint_set(name, moves), PredictiveParams(correlation=0.35))
    np.testing.assert_array_equal(got, [[1.0, 0.35, 0.35], [0.35, 1.0, 0.35], [0.35, 0.35, 1.0]])


@pytest.mark.parametrize(
    ("n_assets", "rho", "used"), [(2, -1.0, -1.0), (3, -0.5, -0.5), (3, -0.9, -0.5), (5, -0.5, -0.25)]
)
def test_constant_correlation_is_raised_to_the_psd_bound(n_assets: int, rho: float, used: float) -> None:
    """Equicorrelation is PSD iff ρ >= -1/(A-1); below, the nearest PSD correlation (mc's repair) has ρ = -1/(A-1)."""
    got = constant_correlation(n_assets, rho)
    assert got[0, 1] == pytest.approx(used, rel=1e-15)
    assert np.linalg.eigvalsh(got).min() >= -1e-12
    raw = np.full((n_assets, n_assets), rho)
    np.fill_diagonal(raw, 1.0)
    np.testing.assert_allclose(got, nearest_psd_correlation(raw), atol=1e-12)


@pytest.mark.parametrize(
    ("name", "rows", "message"), [("spline", 5, "unknown scenario set"), ("mc", 1, "at least 2 joint scenarios")]
)
def test_scenario_correlation_fails_fast(name: str, rows: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        scenario_correlation(joint_set(name, np.full((rows, 2), 0.01)), PredictiveParams())


# ----------------------------------------------------------------------------------- account breach

BTC, ETH = 60_000.0, 3_000.0


def one_account(delta: float, gamma: float = 0.0) -> np.ndarray:
    return np.array([[[delta, gamma, 0.0]]])


def test_one_asset_account_equals_breach_probability_by_hand() -> None:
    """2 BTC long at 60,000, 60 % vol, velocity -40 a year; equity 140,500 over MM 140,000, 15-minute horizon:
    σ = 72,000 USD/√yr, μ = -4.8M USD/yr, so σ√h ≈ 384 and μh ≈ -137 against d = 500."""
    params = PredictiveParams(horizon_seconds=900.0, threshold=0.05)
    got = account_breach(
        one_account(2.0), [BTC], [0.6], np.eye(1), [140_500.0], [140_000.0], params, velocity=np.array([-40.0])
    )
    h = 900.0 / SECONDS_PER_YEAR
    d, sigma, mu = 500.0, 2.0 * BTC * 0.6, 2.0 * BTC * -40.0
    assert got.loss_vol[0] == pytest.approx(72_000.0, rel=1e-15)
    assert got.drift[0] == pytest.approx(-4_800_000.0, rel=1e-15)
    assert got.probability[0] == pytest.approx(float(breach_probability(140_500.0, 140_000.0, sigma, h, mu)), rel=1e-14)
    s = sigma * math.sqrt(h)
    textbook = ndtr((-d - mu * h) / s) + math.exp(-2.0 * mu * d / sigma**2) * ndtr((-d + mu * h) / s)
    assert got.probability[0] == pytest.approx(textbook, rel=1e-12)
    assert 0.05 < got.probability[0] < 0.9
    assert got.flagged[0]
    assert got.time_to_breach_seconds[0] == pytest.approx(d / -mu * SECONDS_PER_YEAR, rel=1e-14)


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(0, 40),
    drift=st.booleans(),
    horizon=st.floats(1.0, 86_400.0),
)
def test_book_breach_equals_account_breach_bit_for_bit(seed: int, n: int, drift: bool, horizon: float) -> None:
    """The margin engine's unchecked path: the same loss vol, probability and flags to the bit, and the same
    probability as `breach_probability` of those figures (accounts at, below and above MM; flat books; a NaN
    velocity read as 0)."""
    rng = np.random.default_rng(seed)
    greeks = rng.normal(0.0, 1.0, (n, 2, 3)) * (rng.random((n, 2, 1)) < 0.7)
    price, vol = np.array([BTC, ETH]), np.array([0.6, 0.8])
    correlation = np.array([[1.0, 0.7], [0.7, 1.0]])
    mm = rng.uniform(0.0, 50_000.0, n)
    equity = mm + rng.normal(0.0, 3_000.0, n) * (rng.random(n) < 0.9)
    velocity = np.array([rng.normal(0.0, 30.0), np.nan])
    params = PredictiveParams(horizon_seconds=horizon, use_drift=drift)
    want = account_breach(greeks, price, vol, correlation, equity, mm, params, velocity=velocity)
    loss_vol, drift, probability, flagged = book_breach(greeks, price, vol, correlation, equity, mm, params, velocity)
    assert np.array_equal(loss_vol, want.loss_vol)
    assert np.array_equal(probability, want.probability)
    assert np.array_equal(flagged, want.flagged)
    assert np.array_equal(drift, want.drift)
    h = horizon / SECONDS_PER_YEAR
    assert np.array_equal(probability, breach_probability(equity, mm, want.loss_vol, h, want.drift))
    if n:
        with pytest.raises(ValueError, match="equity must be finite"):
            book_breach(greeks, price, vol, correlation, np.where(np.arange(n) == n // 2, np.nan, equity), mm, params)


def test_gamma_term_is_present() -> None:
    """A delta-neutral option seller, Γ = -0.005 BTC per USD: loss vol = √(h/2) |Γ S²| σ² (USD per √year);
    adding 1 BTC of delta adds S σ in quadrature (the delta-gamma cross moment is 0)."""
    params = PredictiveParams(horizon_seconds=3600.0)
    h = 3600.0 / SECONDS_PER_YEAR
    gamma = -5e-3
    got = account_breach(one_account(0.0, gamma), [BTC], [0.6], np.eye(1), [1e6], [9e5], params)
    assert got.loss_vol[0] == pytest.approx(math.sqrt(0.5 * h) * abs(gamma) * BTC**2 * 0.6**2, rel=1e-13)
    with_delta = account_breach(one_account(1.0, gamma), [BTC], [0.6], np.eye(1), [1e6], [9e5], params)
    assert with_delta.loss_vol[0] == pytest.approx(math.hypot(BTC * 0.6, got.loss_vol[0]), rel=1e-13)


def test_flagged_only_above_mm() -> None:
    """Below MM: probability 1 but liquidatable, not early. At MM: not liquidatable (equity < MM is), so early."""
    greeks = np.repeat(one_account(1.0), 4, axis=0)
    equity = np.array([90_000.0, 100_000.0, 100_050.0, 200_000.0])
    got = account_breach(greeks, [BTC], [0.6], np.eye(1), equity, np.full(4, 100_000.0), PredictiveParams())
    np.testing.assert_array_equal(got.probability[:2], [1.0, 1.0])
    assert 0.1 < got.probability[2] < 1.0
    assert got.probability[3] < 1e-12
    np.testing.assert_array_equal(got.flagged, [False, True, True, False])
    np.testing.assert_array_equal(got.time_to_breach_seconds, [0.0, 0.0, math.inf, math.inf])


@pytest.mark.parametrize(("use_drift", "velocity"), [(False, [-50.0]), (True, [math.nan]), (True, None)])
def test_no_drift_without_velocity(use_drift: bool, velocity: list[float] | None) -> None:
    """use_drift off, an undefined velocity (NaN: no elapsed time yet) or none at all: driftless."""
    params = PredictiveParams(use_drift=use_drift)
    v = None if velocity is None else np.array(velocity)
    got = account_breach(one_account(1.0), [BTC], [0.6], np.eye(1), [110_000.0], [100_000.0], params, velocity=v)
    assert got.drift[0] == 0.0
    h = params.horizon_seconds / SECONDS_PER_YEAR
    assert got.probability[0] == pytest.approx(2.0 * ndtr(-10_000.0 / (BTC * 0.6 * math.sqrt(h))), rel=1e-12)


@pytest.mark.parametrize(("delta", "gamma"), [(2.0, 0.0), (2.0, -1e-3)])
def test_loss_vol_matches_a_simulation_of_correlated_returns(delta: float, gamma: float) -> None:
    """Long BTC, short ETH (ρ = 0.7), one-day horizon; 4,000 draws of r ~ N(0, Σh), P&L = x·r + ½ Σ_a g_a r_a².
    The sample variance of the P&L over h is compared with loss_vol² h; tolerance: 4 standard errors of the
    sample variance, sqrt((m4 - s⁴) / n) from the sample's own fourth moment (the P&L is not normal with gamma)."""
    rho, vols, prices = 0.7, np.array([0.6, 0.8]), np.array([BTC, ETH])
    greeks = np.array([[[delta, gamma, 0.0], [-30.0, 0.0, 0.0]]])
    params = PredictiveParams(horizon_seconds=86_400.0)
    h = 86_400.0 / SECONDS_PER_YEAR
    corr = np.array([[1.0, rho], [rho, 1.0]])
    got = account_breach(greeks, prices, vols, corr, [1e6], [5e5], params).loss_vol[0]

    paths = 4_000
    rng = np.random.default_rng(17)
    r = rng.standard_normal((paths, 2)) @ np.linalg.cholesky(np.outer(vols, vols) * corr * h).T
    pnl = r @ (greeks[0, :, 0] * prices) + 0.5 * (r**2) @ (greeks[0, :, 1] * prices**2)
    variance = pnl.var()
    se = math.sqrt((((pnl - pnl.mean()) ** 4).mean() - variance**2) / paths)
    assert abs(variance - got**2 * h) < 4.0 * se, (variance, got**2 * h, se)


def random_books(n: int, n_assets: int, density: float, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Greeks (n, A, 3) with each (account, asset) held with probability `density`, a random valid correlation."""
    rng = np.random.default_rng(seed)
    greeks = rng.normal(0.0, 1.0, (n, n_assets, 3)) * (rng.random((n, n_assets, 1)) < density)
    greeks[: n // 4, :, 1] = 0.0  # linear books
    factors = rng.normal(size=(n_assets, n_assets + 2))
    cov = factors @ factors.T
    corr = cov / np.sqrt(np.outer(np.diag(cov), np.diag(cov)))
    corr = (corr + corr.T) / 2.0
    np.fill_diagonal(corr, 1.0)
    return greeks, rng.uniform(0.5, 5e4, n_assets), corr


@pytest.mark.parametrize(("n_assets", "density"), [(1, 1.0), (5, 0.3), (22, 1.0), (22, 0.1)])
def test_compiled_book_kernel_agrees_with_the_numpy_twin(n_assets: int, density: float) -> None:
    greeks, prices, corr = random_books(2_000, n_assets, density, seed=n_assets)
    vols = np.linspace(0.3, 1.2, n_assets)
    velocity = np.linspace(-20.0, 20.0, n_assets)
    h = 3600.0 / SECONDS_PER_YEAR
    loss_vol, drift = np.empty(2_000), np.empty(2_000)
    rows = every_asset(2_000, n_assets)
    _book_kernel(rows.offsets, rows.asset, greeks.reshape(-1, 3), prices, vols, corr, h, velocity, loss_vol, drift)
    twin_vol, twin_drift = book_moments(greeks, prices, vols, corr, h, velocity)
    np.testing.assert_allclose(loss_vol, twin_vol, rtol=1e-12, atol=1e-12 * twin_vol.max())
    np.testing.assert_allclose(drift, twin_drift, rtol=1e-12, atol=1e-12 * np.abs(twin_drift).max())


def test_account_breach_reorders_with_accounts_and_does_not_mutate() -> None:
    greeks, prices, corr = random_books(500, 4, 0.5, seed=9)
    vols, velocity = np.array([0.5, 0.7, 0.9, 1.1]), np.array([3.0, -8.0, 0.0, 12.0])
    rng = np.random.default_rng(10)
    mm = rng.uniform(1e4, 1e5, 500)
    equity = mm + rng.normal(0.0, 5e3, 500)
    inputs = (greeks, prices, vols, corr, equity, mm, velocity)
    before = [a.copy() for a in inputs]
    params = PredictiveParams(horizon_seconds=600.0)
    got = account_breach(greeks, prices, vols, corr, equity, mm, params, velocity)
    for a, b in zip(inputs, before, strict=True):
        np.testing.assert_array_equal(a, b)
    perm = rng.permutation(500)
    again = account_breach(greeks[perm], prices, vols, corr, equity[perm], mm[perm], params, velocity)
    for field in ("loss_vol", "drift", "probability", "flagged", "time_to_breach_seconds"):
        np.testing.assert_array_equal(getattr(again, field), getattr(got, field)[perm])
    assert 0 < got.flagged.sum() < (equity >= mm).sum()


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"greeks": np.ones((1, 1, 2))}, "greeks must be"),
        ({"greeks": np.array([[[math.nan, 0.0, 0.0]]])}, "account 0"),
        ({"vol": [-0.1]}, "vol must be >= 0"),
        ({"price": [math.inf]}, "price must be finite"),
        (
            {
                "correlation": np.array([[1.0, 0.2], [0.3, 1.0]]),
                "greeks": np.ones((1, 2, 3)),
                "price": [1.0, 1.0],
                "vol": [1.0, 1.0],
            },
            "symmetric",
        ),
        ({"correlation": np.array([[0.9]])}, "unit diagonal"),
        ({"velocity": np.array([math.inf])}, "velocity must be finite"),
        ({"equity": [1.0, 2.0]}, "shapes"),
    ],
)
def test_account_breach_fails_fast(change: dict[str, object], message: str) -> None:
    args: dict[str, object] = {
        "greeks": one_account(1.0),
        "price": [BTC],
        "vol": [0.6],
        "correlation": np.eye(1),
        "equity": [2e5],
        "mm": [1e5],
        "params": PredictiveParams(),
        "velocity": np.array([1.0]),
    } | change
    with pytest.raises(ValueError, match=message):
        account_breach(**args)  # type: ignore[arg-type]


# --------------------------------------------------------------------------------- velocity tracker

TEN_MINUTES = 600.0 / SECONDS_PER_YEAR


def random_ticks(n: int, n_assets: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """n interleaved ticks of n_assets assets at irregular times (some ties), each asset a random walk."""
    rng = np.random.default_rng(seed)
    times = np.cumsum(rng.exponential(2.0, n) * (rng.random(n) > 0.1)) / SECONDS_PER_YEAR  # 10 % same-time ticks
    asset = rng.integers(0, n_assets, n)
    start = np.array([60_000.0, 3_000.0, 150.0, 1.0][:n_assets])
    prices = start[asset] * np.exp(np.cumsum(rng.normal(0.0, 2e-3, n)))  # one walk, read per asset
    return asset, times, prices


def test_tracker_follows_velocity_path_tick_by_tick() -> None:
    asset, times, prices = random_ticks(1_500, 3, seed=21)
    tracker = VelocityTracker(3, TEN_MINUTES)
    seen: dict[int, list[tuple[float, float]]] = {a: [] for a in range(3)}
    for a, t, p in zip(asset.tolist(), times, prices, strict=True):
        tracker.update([a], [t], [p])
        seen[a].append((tracker.velocity[a], tracker.volatility[a]))
    for a in range(3):
        mine = asset == a
        velocity, volatility = velocity_path(times[mine], prices[mine], TEN_MINUTES)
        got = np.array(seen[a][1:])
        np.testing.assert_allclose(got[:, 0], velocity, rtol=1e-12, atol=0.0)
        np.testing.assert_allclose(got[:, 1], volatility, rtol=1e-12, atol=0.0)
        twin = price_velocity(times[mine], prices[mine], TEN_MINUTES)
        assert tracker.velocity[a] == pytest.approx(twin.velocity, rel=1e-12)
        assert tracker.volatility[a] == pytest.approx(twin.volatility, rel=1e-12)


def test_tracker_batches_and_save_reload_are_bit_for_bit() -> None:
    asset, times, prices = random_ticks(2_000, 4, seed=22)
    whole = VelocityTracker.for_params(4, PredictiveParams(halflife_seconds=600.0))
    whole.update(asset, times, prices)

    first = VelocityTracker.for_params(4, PredictiveParams(halflife_seconds=600.0))
    first.update(asset[:777], times[:777], prices[:777])
    buffer = io.BytesIO()
    np.savez(buffer, **first.state())
    buffer.seek(0)
    with np.load(buffer) as saved:
        second = VelocityTracker.from_state({key: saved[key] for key in saved.files})
    for i in range(777, 2_000, 100):
        second.update(asset[i : i + 100], times[i : i + 100], prices[i : i + 100])

    for key, value in whole.state().items():
        np.testing.assert_array_equal(second.state()[key], value, strict=True)
    np.testing.assert_array_equal(second.velocity.view(np.int64), whole.velocity.view(np.int64))
    np.testing.assert_array_equal(second.volatility.view(np.int64), whole.volatility.view(np.int64))


def test_tracker_is_nan_until_time_elapses() -> None:
    tracker = VelocityTracker(3, 1.0)
    assert np.isnan(tracker.velocity).all()
    tracker.update([0, 0, 1, 1], [1.0, 1.0, 1.0, 2.0], [100.0, 101.0, 50.0, 55.0])
    assert math.isnan(tracker.velocity[0])  # a return but no elapsed time
    assert tracker.velocity[1] == pytest.approx(math.log(1.1))  # one year: velocity is the log return
    assert math.isnan(tracker.velocity[2])
    tracker.update([0], [2.0], [101.0])  # halflife 1 year: decay 1/2 on the earlier return
    assert tracker.velocity[0] == pytest.approx(0.5 * math.log(1.01))


@pytest.mark.parametrize(
    ("asset", "times", "prices", "message"),
    [
        ([0, 0], [5.0, 4.0], [1.0, 1.0], "tick 1: time 4.0 of asset 0 is before"),
        ([1], [2.0], [1.0], "tick 0: time 2.0 of asset 1 is before"),  # asset 1's last tick is at 3
        ([2], [9.0], [1.0], "asset index 2 is not in"),
        ([0], [9.0], [0.0], "prices must be > 0"),
        ([0.5], [9.0], [1.0], "must be integers"),
    ],
)
def test_tracker_refuses_bad_ticks_and_keeps_its_state(
    asset: list[float], times: list[float], prices: list[float], message: str
) -> None:
    tracker = VelocityTracker(2, 1.0)
    tracker.update([0, 1, 1], [1.0, 2.0, 3.0], [10.0, 20.0, 21.0])
    before = tracker.state()
    with pytest.raises(ValueError, match=message):
        tracker.update(asset, times, prices)
    for key, value in tracker.state().items():
        np.testing.assert_array_equal(value, before[key])


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"extra": np.zeros(2)}, "exactly the keys"),
        ({"elapsed": np.array([-1.0, 0.0])}, "elapsed must be >= 0"),
        ({"last_time": np.array([1.0, 1.0])}, "same assets"),
        ({"returns": np.zeros(3)}, r"\(A,\)"),
    ],
)
def test_tracker_refuses_an_impossible_state(change: dict[str, np.ndarray], message: str) -> None:
    tracker = VelocityTracker(2, 1.0)
    tracker.update([0, 0], [1.0, 2.0], [10.0, 11.0])
    with pytest.raises(ValueError, match=message):
        VelocityTracker.from_state(tracker.state() | change)
