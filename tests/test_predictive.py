"""Predictive liquidation: first-passage breach probability, loss volatility, price velocity, time to breach."""

from __future__ import annotations

import math

import msgspec
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.special import ndtr

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
from solvent.params import PredictiveParams

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
