"""Synthetic markets for the stress lab: reproducibility, the statistics of long simulated samples against the
model's parameters (tolerances derived from the sample size), depth, regimes, fitting back, the feed."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from pathlib import Path

import msgspec
import numpy as np
import pytest
from scipy import stats

from solvent.errors import ModelError
from solvent.lab.markets import (
    AssetDynamics,
    MarketModel,
    SimulatedMarket,
    depth_scale,
    fit,
    simulate,
    step_dynamics,
    to_feed,
)
from solvent.market.history import PriceHistory, read_history
from solvent.market.synthetic import normal_scores
from solvent.stream.feed import DepthChange, Quote
from solvent.stream.feedio import read_feed, write_feed

BITSTAMP = "data/prices/bitstamp_btc_eth_ltc_daily_2014_2020.csv"
CALM = ((1.0, 0.3, 0.2), (0.3, 1.0, 0.4), (0.2, 0.4, 1.0))
STRESS = ((1.0, 0.8, 0.7), (0.8, 1.0, 0.85), (0.7, 0.85, 1.0))
START = np.array([50_000.0, 3_000.0, 100.0])


def asset(name: str, omega: float, alpha: float, beta: float, dof: float, **jumps: float) -> AssetDynamics:
    return AssetDynamics(name=name, omega=omega, alpha=alpha, beta=beta, dof=dof, **jumps)


#: Innovations with a finite fourth moment and (alpha + beta)^2 + alpha^2 (kappa - 1) < 1, so that sample
#: variances settle at the rate the tolerances below assume.
DIFFUSION = (asset("A", 2e-5, 0.05, 0.90, 8.0), asset("B", 4e-5, 0.08, 0.88, 10.0), asset("C", 1e-5, 0.10, 0.80, 12.0))
ONE_REGIME = MarketModel(assets=DIFFUSION, calm_correlation=CALM, stress_correlation=CALM)
JUMPY = (
    asset("A", 2e-5, 0.05, 0.90, 8.0, jump_intensity=0.02, jump_mean=-0.05, jump_std=0.08),
    asset("B", 4e-5, 0.08, 0.88, 10.0, jump_intensity=0.01, jump_mean=0.0, jump_std=0.10),
    asset("C", 1e-5, 0.10, 0.80, 12.0, jump_intensity=0.05, jump_mean=-0.02, jump_std=0.05),
)
FULL = MarketModel(
    assets=JUMPY,
    calm_correlation=CALM,
    stress_correlation=STRESS,
    p_calm_to_stress=0.05,
    p_stress_to_calm=0.20,
    common_jump_intensity=0.01,
)


def run(model: MarketModel, n: int, step: float = 86_400.0, seed: int = 7, **kw: int) -> SimulatedMarket:
    return simulate(model, n, step, seed, START[: len(model.assets)], **kw)


@pytest.fixture(scope="module")
def one_regime_daily() -> SimulatedMarket:
    return run(ONE_REGIME, 200_000, start_regime=0)


# ----------------------------------------------------------------------------------------- reproducibility


def test_same_seed_same_market_bit_for_bit() -> None:
    first, second = run(FULL, 5_000, 60.0, seed=3), run(FULL, 5_000, 60.0, seed=3)
    for name in ("times", "prices", "vol", "depth_scale", "regime", "jumps"):
        assert getattr(first, name).tobytes() == getattr(second, name).tobytes(), name


def test_different_seed_differs() -> None:
    first, second = run(FULL, 5_000, seed=3), run(FULL, 5_000, seed=4)
    assert not np.any(first.prices[1:] == second.prices[1:])


def test_layout_and_inputs_untouched() -> None:
    start = START.copy()
    market = simulate(FULL, 10, 5.0, 1, start)
    assert np.array_equal(start, START)
    assert market.assets == ("A", "B", "C")
    assert market.times.tolist() == [5.0 * i for i in range(11)]
    assert market.prices.shape == market.vol.shape == market.depth_scale.shape == market.jumps.shape == (11, 3)
    assert market.regime.shape == (11,) and set(market.regime.tolist()) <= {0, 1}
    assert market.prices[0].tolist() == START.tolist()
    assert not np.any(market.jumps[0])
    assert market.periods_per_year == 365.0 * 86_400.0 / 5.0


def test_jumps_off_leaves_the_diffusive_shocks_unchanged() -> None:
    """Separate random streams: the no-jump market's first steps equal the jumpy one's until its first jump."""
    jumpy = run(MarketModel(assets=JUMPY, calm_correlation=CALM, stress_correlation=CALM), 3_000, start_regime=0)
    plain = run(ONE_REGIME, 3_000, start_regime=0)
    first_jump = int(np.flatnonzero(np.any(jumpy.jumps != 0.0, axis=1))[0])
    np.testing.assert_allclose(jumpy.prices[:first_jump], plain.prices[:first_jump], rtol=1e-12)
    assert not np.allclose(jumpy.prices[first_jump], plain.prices[first_jump], rtol=1e-9)


# ------------------------------------------------------------------------------- moments and correlation


def variance_tolerance(alpha: float, beta: float, dof: float, n: int) -> float:
    """Five standard errors of the sample mean of r^2 relative to its expectation, for GARCH(1,1)-t.

    Var(r^2) = (kappa_r - 1) V^2 with kappa_r = kappa (1 - phi^2) / (1 - phi^2 - (kappa - 1) alpha^2) and
    kappa = 3 + 6 / (dof - 4); r^2 is ARMA(1,1) with AR phi = alpha + beta and MA -beta, so its
    autocorrelations are rho_1 phi^(k-1), rho_1 = alpha (1 - phi beta) / (1 + beta^2 - 2 phi beta), and the
    variance of the mean is inflated by 1 + 2 rho_1 / (1 - phi).
    """
    phi = alpha + beta
    kappa = 3.0 + 6.0 / (dof - 4.0)
    kappa_r = kappa * (1.0 - phi**2) / (1.0 - phi**2 - (kappa - 1.0) * alpha**2)
    rho_1 = alpha * (1.0 - phi * beta) / (1.0 + beta**2 - 2.0 * phi * beta)
    return 5.0 * math.sqrt((kappa_r - 1.0) * (1.0 + 2.0 * rho_1 / (1.0 - phi)) / n)


@pytest.mark.parametrize("step", [86_400.0, 3_600.0])
def test_unconditional_variance_without_jumps(step: float) -> None:
    """Jumps off, one regime: the mean squared step return is omega_s / (1 - alpha_s - beta_s) = daily * h,
    within five standard errors of a GARCH-t sample mean (`variance_tolerance`; 3.5% daily, 8% hourly)."""
    n = 200_000
    market = run(ONE_REGIME, n, step, seed=11, start_regime=0)
    dyn = step_dynamics(ONE_REGIME, step)
    h = step / 86_400.0
    expected = np.array([a.garch.unconditional_variance for a in DIFFUSION]) * h
    np.testing.assert_allclose(dyn.omega / (1.0 - dyn.alpha - dyn.beta), expected, rtol=1e-12)
    sample = np.mean(market.log_returns() ** 2, axis=0)
    for j, a in enumerate(DIFFUSION):
        tol = variance_tolerance(float(dyn.alpha[j]), float(dyn.beta[j]), a.dof, n)
        assert abs(sample[j] / expected[j] - 1.0) < tol, (a.name, sample[j] / expected[j], tol)


def standardised(market: SimulatedMarket) -> np.ndarray:
    """The diffusive shocks: each step's return over the conditional sigma known before it."""
    sigma = market.vol[:-1] / math.sqrt(market.periods_per_year)
    return np.asarray((market.log_returns() - market.jumps[1:]) / sigma)


def score_correlation(z: np.ndarray, model: MarketModel) -> np.ndarray:
    scores = np.column_stack([normal_scores(z[:, j], a.dof) for j, a in enumerate(model.assets)])
    return np.asarray(np.corrcoef(scores, rowvar=False))


def test_shocks_are_unit_student_t(one_regime_daily: SimulatedMarket) -> None:
    """Standardised shocks: unit variance (5 SE) and the asset's Student-t law (Kolmogorov-Smirnov, 1%)."""
    z = standardised(one_regime_daily)
    for j, a in enumerate(DIFFUSION):
        se = math.sqrt((3.0 + 6.0 / (a.dof - 4.0) - 1.0) / z.shape[0])
        assert abs(np.mean(z[:, j] ** 2) - 1.0) < 5.0 * se
        scaled = z[:, j] * math.sqrt(a.dof / (a.dof - 2.0))
        assert stats.kstest(scaled, stats.t(a.dof).cdf).pvalue > 0.01


def test_one_regime_has_its_correlation(one_regime_daily: SimulatedMarket) -> None:
    """The shocks' normal scores have the regime's copula correlation, within 5 (1 - rho^2) / sqrt(n)."""
    corr = score_correlation(standardised(one_regime_daily), ONE_REGIME)
    target = np.array(CALM)
    n = one_regime_daily.regime.shape[0] - 1
    assert np.all(np.abs(corr - target) <= 5.0 * (1.0 - target**2) / math.sqrt(n) + 1e-12)


@pytest.mark.parametrize("regime", [0, 1])
def test_each_regime_has_its_correlation(regime: int) -> None:
    model = msgspec.structs.replace(FULL, assets=DIFFUSION, common_jump_intensity=0.0)
    market = run(model, 150_000, seed=5)
    z = standardised(market)[market.regime[:-1] == regime]
    target = np.array((CALM, STRESS)[regime])
    corr = score_correlation(z, model)
    assert np.all(np.abs(corr - target) <= 5.0 * (1.0 - target**2) / math.sqrt(z.shape[0]) + 1e-12)


# ------------------------------------------------------------------------------------------------ jumps


@pytest.mark.parametrize("step", [86_400.0, 600.0])
def test_jump_counts_hit_the_intensity(step: float) -> None:
    """Steps with a jump per asset: n (1 - exp(-(lambda_a + lambda_common) h)); with every asset at once:
    n (1 - exp(-lambda_common h)) plus chance coincidences of idiosyncratic jumps. Poisson: 5 sqrt(mean)."""
    n = 200_000
    h = step / 86_400.0
    market = run(FULL, n, step, seed=9)
    jumped = market.jumps[1:] != 0.0
    for j, a in enumerate(JUMPY):
        expected = n * (1.0 - math.exp(-(a.jump_intensity + FULL.common_jump_intensity) * h))
        assert abs(int(jumped[:, j].sum()) - expected) < 5.0 * math.sqrt(expected), a.name
    p_own = [1.0 - math.exp(-a.jump_intensity * h) for a in JUMPY]
    p_common = 1.0 - math.exp(-FULL.common_jump_intensity * h)
    expected = n * (p_common + (1.0 - p_common) * math.prod(p_own))
    assert abs(int(np.all(jumped, axis=1).sum()) - expected) < 5.0 * math.sqrt(expected)


def test_jump_sizes_follow_their_normal() -> None:
    """A step with exactly one idiosyncratic jump moves by N(jump_mean, jump_std) (common jumps off)."""
    model = msgspec.structs.replace(FULL, common_jump_intensity=0.0)
    sizes = run(model, 100_000, seed=2).jumps[1:, 0]
    sizes = sizes[sizes != 0.0]
    a = JUMPY[0]
    se = a.jump_std / math.sqrt(sizes.size)
    assert abs(sizes.mean() - a.jump_mean) < 5.0 * se * math.sqrt(1.0 + a.jump_mean**2 / a.jump_std**2)
    assert abs(sizes.std(ddof=1) / a.jump_std - 1.0) < 0.15


def test_jumps_raise_kurtosis() -> None:
    """The same diffusive shocks with jumps added: excess kurtosis at least twice that without."""
    with_jumps = MarketModel(assets=JUMPY, calm_correlation=CALM, stress_correlation=CALM, common_jump_intensity=0.01)
    plain = stats.kurtosis(run(ONE_REGIME, 50_000, seed=1, start_regime=0).log_returns(), axis=0)
    jumpy = stats.kurtosis(run(with_jumps, 50_000, seed=1, start_regime=0).log_returns(), axis=0)
    assert np.all(jumpy > 2.0 * plain), (plain, jumpy)


# ------------------------------------------------------------------------------------------------ depth


def test_depth_scale_is_monotone_and_floored() -> None:
    sigma = np.geomspace(0.01, 100.0, 2_001)[:, np.newaxis]
    scale = depth_scale(sigma, np.array([1.0]), 1.5, 0.1, 1.0)[:, 0]
    assert np.all(np.diff(scale) <= 0.0)
    assert scale[0] == 1.0 and scale[-1] == 0.1
    assert depth_scale(np.array([2.0]), np.array([1.0]), 1.0, 0.1, 1.0)[0] == 0.5
    assert depth_scale(np.array([0.5]), np.array([1.0]), 1.0, 0.1, 3.0)[0] == 2.0


def test_depth_thins_in_a_crash() -> None:
    """On a simulated path depth falls as vol rises, and a run of crashes takes it to its floor."""
    crashes = tuple(msgspec.structs.replace(a, jump_mean=-0.3, jump_std=0.1) for a in JUMPY)
    model = msgspec.structs.replace(FULL, assets=crashes, common_jump_intensity=2.0, depth_elasticity=2.0)
    market = run(model, 20_000, 300.0, seed=4)
    for j in range(3):
        order = np.argsort(market.vol[:, j], kind="stable")
        assert np.all(np.diff(market.depth_scale[order, j]) <= 0.0)
    assert market.depth_scale.min() == model.depth_floor
    assert market.depth_scale.max() <= model.depth_cap
    first = int(np.flatnonzero(np.any(market.jumps != 0.0, axis=1))[0])
    assert np.all(market.vol[first] > market.vol[first - 1])
    assert np.all(market.depth_scale[first] <= market.depth_scale[first - 1])


# ---------------------------------------------------------------------------------------------- regimes


@pytest.mark.parametrize("step", [86_400.0, 600.0])
def test_regime_switching_matches_the_transition_matrix(step: float) -> None:
    """Observed switching frequencies per step within 5 binomial standard errors of P_step."""
    model = msgspec.structs.replace(FULL, assets=DIFFUSION, common_jump_intensity=0.0, p_calm_to_stress=0.3)
    path = run(model, 400_000 if step < 86_400.0 else 100_000, step, seed=6).regime
    p = model.transition_matrix(step)
    before, after = path[:-1], path[1:]
    for state in (0, 1):
        n = int((before == state).sum())
        observed = int((after[before == state] != state).sum()) / n
        expected = p[state, 1 - state]
        assert abs(observed - expected) < 5.0 * math.sqrt(expected * (1.0 - expected) / n), (state, observed)


@pytest.mark.parametrize("step", [1.0, 60.0, 600.0, 3_600.0, 86_400.0])
def test_transition_matrix_composes_to_the_daily_one(step: float) -> None:
    n = round(86_400.0 / step)
    np.testing.assert_allclose(np.linalg.matrix_power(FULL.transition_matrix(step), n), FULL.transition_matrix())
    np.testing.assert_allclose(FULL.transition_matrix(), [[0.95, 0.05], [0.2, 0.8]], rtol=0, atol=1e-15)


def test_step_dynamics_of_a_day_are_the_model() -> None:
    dyn = step_dynamics(FULL, 86_400.0)
    assert dyn.alpha.tolist() == [a.alpha for a in JUMPY] and dyn.beta.tolist() == [a.beta for a in JUMPY]
    assert dyn.omega.tolist() == [a.omega for a in JUMPY]
    hourly = step_dynamics(FULL, 3_600.0)
    np.testing.assert_allclose(hourly.alpha + hourly.beta, (dyn.alpha + dyn.beta) ** (1.0 / 24.0), rtol=1e-14)
    np.testing.assert_allclose(hourly.jump_rate, dyn.jump_rate / 24.0, rtol=1e-14)


def test_stationary_start_share_of_stress() -> None:
    """Started from the stationary law (no start_regime), a run's first regime is stress p01/(p01+p10) = 20%."""
    starts = [int(simulate(FULL, 0, 60.0, seed, START).regime[0]) for seed in range(2_000)]
    assert abs(np.mean(starts) - 0.2) < 5.0 * math.sqrt(0.2 * 0.8 / 2_000)


# ------------------------------------------------------------------------------------------- validation


def model_with(**changes: object) -> MarketModel:
    fields = {f: getattr(FULL, f) for f in FULL.__struct_fields__}
    return MarketModel(**(fields | changes))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"stress_correlation": ((1.0, 0.9, -0.9), (0.9, 1.0, 0.9), (-0.9, 0.9, 1.0))}, "semi-definite"),
        ({"calm_correlation": ((1.0, 0.3), (0.3, 1.0))}, "3 x 3"),
        ({"calm_correlation": ((1.0, 0.3, 0.2), (0.31, 1.0, 0.4), (0.2, 0.4, 1.0))}, "symmetric"),
        ({"calm_correlation": ((0.9, 0.3, 0.2), (0.3, 1.0, 0.4), (0.2, 0.4, 1.0))}, "unit diagonal"),
        ({"p_calm_to_stress": 1.5}, "in \\[0, 1\\]"),
        ({"p_stress_to_calm": -0.1}, "in \\[0, 1\\]"),
        ({"p_calm_to_stress": 0.6, "p_stress_to_calm": 0.5}, "persist"),
        ({"common_jump_intensity": -1.0}, "common_jump_intensity"),
        ({"depth_floor": 0.0}, "depth_floor"),
        ({"depth_floor": 0.5, "depth_cap": 0.4}, "depth_floor"),
        ({"assets": (JUMPY[0], JUMPY[0], JUMPY[1])}, "unique"),
    ],
)
def test_invalid_models_are_refused(changes: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        model_with(**changes)


@pytest.mark.parametrize(
    "changes",
    [{"alpha": 0.5, "beta": 0.5}, {"omega": 0.0}, {"dof": 2.0}, {"jump_std": -0.1}, {"jump_mean": math.nan}],
)
def test_invalid_assets_are_refused(changes: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="A:"):
        msgspec.structs.replace(JUMPY[0], **changes)


def test_singular_correlation_is_accepted_and_simulated() -> None:
    """PSD, not only positive definite: two perfectly correlated assets move together."""
    ones = ((1.0, 1.0, 0.0), (1.0, 1.0, 0.0), (0.0, 0.0, 1.0))
    model = MarketModel(assets=DIFFUSION, calm_correlation=ones, stress_correlation=ones)
    z = standardised(run(model, 2_000, seed=1, start_regime=0))
    assert np.corrcoef(z[:, 0], z[:, 1])[0, 1] > 0.99


@pytest.mark.parametrize(
    ("args", "message"),
    [((10, 0.0), "step_seconds"), ((10, 100_000.0), "step_seconds"), ((-1, 60.0), "n_steps")],
)
def test_bad_simulation_arguments(args: tuple[int, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        simulate(FULL, args[0], args[1], 0, START)


def test_bad_start_prices() -> None:
    with pytest.raises(ValueError, match="start_prices"):
        simulate(FULL, 10, 60.0, 0, [1.0, -2.0, 3.0])


def test_model_round_trips_through_json() -> None:
    assert msgspec.json.decode(msgspec.json.encode(FULL), type=MarketModel) == FULL


# ---------------------------------------------------------------------------------------------- fitting


def history_from(market: SimulatedMarket) -> PriceHistory:
    days = np.arange(np.datetime64("2000-01-01"), np.datetime64("2000-01-01") + market.prices.shape[0])
    return PriceHistory(days.astype("datetime64[s]"), market.assets, market.prices)


RECOVERY_TRUTH = MarketModel(
    assets=(
        asset("A", 2e-5, 0.06, 0.90, 6.0, jump_intensity=0.005, jump_mean=-0.12, jump_std=0.03),
        asset("B", 4e-5, 0.08, 0.88, 8.0, jump_intensity=0.005, jump_mean=0.2, jump_std=0.03),
    ),
    calm_correlation=((1.0, 0.6), (0.6, 1.0)),
    stress_correlation=((1.0, 0.6), (0.6, 1.0)),
    common_jump_intensity=0.002,
)


@pytest.fixture(scope="module")
def recovered() -> MarketModel:
    """The fit of 20,000 simulated days of RECOVERY_TRUTH (tolerances below held on seeds 12-16)."""
    market = simulate(RECOVERY_TRUTH, 20_000, 86_400.0, 12, [100.0, 10.0], start_regime=0)
    return fit(history_from(market))


@pytest.mark.parametrize("j", [0, 1])
def test_fit_recovers_the_diffusion(recovered: MarketModel, j: int) -> None:
    """alpha and beta within 0.03, the diffusive unconditional variance within 25% (the fitted QMLE variance
    less the jumps' share). dof comes out low (between 2.5 and the truth): the jumps the 4-sigma rule misses
    stay in the residuals and fatten their tails."""
    got, truth = recovered.assets[j], RECOVERY_TRUTH.assets[j]
    assert abs(got.alpha - truth.alpha) < 0.03 and abs(got.beta - truth.beta) < 0.03
    assert abs(got.garch.unconditional_variance / truth.garch.unconditional_variance - 1.0) < 0.25
    assert 2.5 < got.dof < truth.dof


@pytest.mark.parametrize("j", [0, 1])
def test_fit_recovers_the_jumps(recovered: MarketModel, j: int) -> None:
    """Jumps of 12% and 20% against daily sigmas near 2% and 3%: each asset's total intensity (own + common)
    within 25% (jumps in volatile spells are missed); its jump mean within 0.04 (the whole return of the day,
    missed and false jumps included). Common jumps need both assets over their thresholds on the same day,
    so their intensity comes out low: between 10% and 100% of the truth."""
    got, truth = recovered.assets[j], RECOVERY_TRUTH.assets[j]
    total = truth.jump_intensity + RECOVERY_TRUTH.common_jump_intensity
    assert abs((got.jump_intensity + recovered.common_jump_intensity) / total - 1.0) < 0.25
    assert abs(got.jump_mean - truth.jump_mean) < 0.04
    assert 0.0 < got.jump_std < 0.2
    assert 0.1 < recovered.common_jump_intensity / RECOVERY_TRUTH.common_jump_intensity < 1.0


def test_fit_recovers_a_single_correlation(recovered: MarketModel) -> None:
    """One regime in the truth: the calm and stressed halves both see its copula correlation (within 0.04);
    the volatility halves switch about as often as the variance crosses its median (not a truth to recover)."""
    assert abs(recovered.calm_correlation[0][1] - 0.6) < 0.04
    assert abs(recovered.stress_correlation[0][1] - 0.6) < 0.04
    assert 0.0 < recovered.p_calm_to_stress < 0.5 and 0.0 < recovered.p_stress_to_calm < 0.5


def test_fit_on_real_btc_eth(shared_dir: Path) -> None:
    """Bitstamp daily closes, BTC 2014-2020 and ETH 2017-2020: parameters in ranges a crypto analyst expects."""
    model = fit(read_history(shared_dir / BITSTAMP), ("BTC", "ETH"))
    assert model.names == ("BTC", "ETH")
    for a in model.assets:
        annual = math.sqrt(a.garch.unconditional_variance * 365.0)
        assert 0.4 < annual < 2.0, (a.name, annual)
        assert 0.0 < a.alpha < 0.3 and 0.6 < a.alpha + a.beta < 1.0
        assert 2.5 < a.dof < 10.0
        assert 0.0 <= a.jump_intensity < 0.05 and 0.0 < a.jump_std < 0.5 and abs(a.jump_mean) < 0.3
    assert 0.0 < model.common_jump_intensity < 0.02
    for corr in (model.calm_correlation, model.stress_correlation):
        assert 0.5 < corr[0][1] < 0.95
    assert 0.01 < model.p_calm_to_stress < 0.3 and 0.01 < model.p_stress_to_calm < 0.3
    market = simulate(model, 1_000, 60.0, 1, [30_000.0, 2_000.0])
    assert np.all(np.isfinite(market.prices)) and np.all(market.prices > 0.0)


def test_fit_needs_enough_joint_days() -> None:
    market = run(ONE_REGIME, 40, start_regime=0)
    with pytest.raises(ModelError, match="dates on which every asset"):
        fit(history_from(market))


# ------------------------------------------------------------------------------------------------- feed


def test_feed_replays_the_market(tmp_path: Path) -> None:
    crashes = tuple(msgspec.structs.replace(a, jump_mean=-0.2) for a in JUMPY)
    market = run(msgspec.structs.replace(FULL, assets=crashes, common_jump_intensity=20.0), 200, 60.0, seed=3)
    start = datetime(2024, 3, 1, tzinfo=UTC)
    records = to_feed(market, start, ["BTC", "ETH", "SOL"], first_seq=10, depth_step=0.05)
    quotes = [r for r in records if isinstance(r, Quote)]
    depths = [r for r in records if isinstance(r, DepthChange)]
    assert len(quotes) == 200 * 3 and len(quotes) + len(depths) == len(records)
    assert [r.seq for r in records] == list(range(10, 10 + len(records)))
    assert quotes[0].time == start + timedelta(seconds=60) and quotes[-1].time == start + timedelta(seconds=12_000)
    assert [q.price for q in quotes[-3:]] == market.prices[-1].tolist()
    assert [q.asset for q in quotes[:3]] == ["BTC", "ETH", "SOL"]
    assert depths, "the crashes must thin the book"
    last = dict.fromkeys(("BTC", "ETH", "SOL"), 1.0)
    for d in depths:
        assert abs(d.scale - last[d.asset]) >= 0.05
        last[d.asset] = d.scale
    write_feed(tmp_path / "feed.ndjson", records)
    assert read_feed(tmp_path / "feed.ndjson") == tuple(records)


def test_feed_arguments_are_checked() -> None:
    market = run(FULL, 3, 60.0)
    with pytest.raises(ValueError, match="asset_names"):
        to_feed(market, datetime(2024, 1, 1, tzinfo=UTC), ["BTC"])
    with pytest.raises(ValueError, match="time zone"):
        to_feed(market, datetime(2024, 1, 1), ["A", "B", "C"])
