"""EWMA and GARCH(1,1) against the arch package, slow loop twins, calibration and effective_vol.

Reference: arch 8.0.0 (bashtage/arch), `arch_model(..., mean="Zero")` with `EWMAVariance` / `GARCH`:
its backcast (`VolatilityProcess.backcast`: weights 0.94**i over the first 75 squared residuals,
whatever the EWMA lambda), its conditional variance path (`res.conditional_volatility ** 2`) and its
analytic forecasts (`res.forecast(horizon=h).variance`). arch is fitted to returns in percent (x100,
`rescale=False`), so omega and variances are divided by 1e4 to compare with ours, which work in log
return units. Tolerance 1e-10 relative: arch's compiled recursion and ours differ only in rounding.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from msgspec import structs

from solvent.errors import InputError, ModelError
from solvent.market.history import PriceHistory, read_history
from solvent.market.volatility import (
    GarchParams,
    annualise,
    calibrate_asset_vols,
    effective_vol,
    ewma_backcast,
    ewma_forecast,
    ewma_variance,
    fit_garch,
    garch_forecast,
    garch_loglikelihood,
    garch_variance,
    sampling_periods_per_year,
)
from solvent.params import VolatilityParams

arch = pytest.importorskip("arch")
from arch.univariate import GARCH, EWMAVariance, ZeroMean  # noqa: E402

BITSTAMP = "data/prices/bitstamp_btc_eth_ltc_daily_2014_2020.csv"
PCT2 = 1e4  # arch works in percent returns: variances x 1e4
RTOL = 1e-10
#: Filter vs loop: the same operations, but the compiled filter may fuse a multiply-add (1 ulp a step).
TWIN_RTOL = 1e-13


def simulate_garch(seed: int, n: int, omega: float, alpha: float, beta: float) -> np.ndarray:
    """A zero-mean GARCH(1,1) path with normal innovations, started at the unconditional variance."""
    rng = np.random.default_rng(seed)
    shocks = rng.standard_normal(n)
    out = np.empty(n)
    s = omega / (1.0 - alpha - beta)
    for t in range(n):
        out[t] = math.sqrt(s) * shocks[t]
        s = omega + alpha * out[t] ** 2 + beta * s
    return out


def loop_recursion(r: np.ndarray, omega: float, alpha: float, beta: float, backcast: float) -> np.ndarray:
    """The slow twin: arch's `garch_recursion_python` for p = q = 1, written out."""
    out = np.empty(r.shape[0])
    for t in range(r.shape[0]):
        out[t] = omega
        out[t] += alpha * (backcast if t == 0 else r[t - 1] ** 2)
        out[t] += beta * (backcast if t == 0 else out[t - 1])
    return out


def btc_returns(shared: Path) -> np.ndarray:
    history = read_history(shared / BITSTAMP)
    r = history.log_returns()[:, history.assets.index("BTC")]
    return r[np.isfinite(r)]


@pytest.fixture(scope="module")
def synthetic_returns() -> np.ndarray:
    return simulate_garch(20260101, 2500, 2e-5, 0.10, 0.86)


@pytest.fixture(params=["synthetic", "btc"])
def returns(request: pytest.FixtureRequest, synthetic_returns: np.ndarray) -> np.ndarray:
    if request.param == "synthetic":
        return synthetic_returns
    shared: Path = request.getfixturevalue("shared_dir")
    return btc_returns(shared)


def fit_arch_garch(r: np.ndarray) -> Any:
    return arch.arch_model(r * 100.0, mean="Zero", vol="GARCH", p=1, q=1, rescale=False).fit(disp="off")


# ------------------------------------------------------------------------------------------- backcast


@pytest.mark.parametrize("lam", [0.94, 0.97, 0.80])
def test_backcast_is_arch_whatever_lambda(synthetic_returns: np.ndarray, lam: float) -> None:
    """arch's backcast uses 0.94**i weights for EWMA of any lambda and for GARCH alike."""
    r = synthetic_returns
    assert float(ewma_backcast(r, lam)) == pytest.approx(EWMAVariance(lam).backcast(r), rel=1e-14)
    assert float(ewma_backcast(r)) == pytest.approx(GARCH(1, 0, 1).backcast(r), rel=1e-14)


def test_backcast_of_short_series_uses_every_return() -> None:
    r = np.array([0.01, -0.02, 0.03])
    weights = 0.94 ** np.arange(3)
    assert float(ewma_backcast(r)) == pytest.approx(float(weights @ r**2 / weights.sum()), rel=1e-15)


# ------------------------------------------------------------------------------------------ EWMA


@pytest.mark.parametrize("lam", [0.94, 0.97])
def test_ewma_path_and_forecast_match_arch(returns: np.ndarray, lam: float) -> None:
    result = ZeroMean(returns * 100.0, volatility=EWMAVariance(lam)).fit(disp="off")
    expected = np.asarray(result.conditional_volatility) ** 2 / PCT2
    np.testing.assert_allclose(ewma_variance(returns, lam), expected, rtol=RTOL, atol=0.0)
    forecast = result.forecast(horizon=1, reindex=False).variance.to_numpy()[-1, 0] / PCT2
    assert float(ewma_forecast(returns, lam)) == pytest.approx(forecast, rel=RTOL)


def test_ewma_columns_are_independent_series(synthetic_returns: np.ndarray) -> None:
    r = synthetic_returns
    both = np.column_stack([r, 3.0 * r[::-1]])
    path = ewma_variance(both, 0.94)
    # Equal to rounding: the (75,) x (75, 2) backcast product may sum in another order than (75,) x (75,).
    np.testing.assert_allclose(path[:, 0], ewma_variance(r, 0.94), rtol=1e-14, atol=0.0)
    np.testing.assert_allclose(path[:, 1], ewma_variance(3.0 * r[::-1], 0.94), rtol=1e-14, atol=0.0)
    assert ewma_forecast(both)[1] == pytest.approx(float(ewma_forecast(3.0 * r[::-1])), rel=1e-14)


def test_ewma_equals_its_loop_twin(synthetic_returns: np.ndarray) -> None:
    r = synthetic_returns
    b = float(ewma_backcast(r))
    expected = loop_recursion(r, 0.0, 1.0 - 0.94, 0.94, b)
    np.testing.assert_allclose(ewma_variance(r, 0.94), expected, rtol=TWIN_RTOL, atol=0.0)


def test_ewma_with_given_backcast_and_empty_input() -> None:
    r = np.array([0.1, -0.2])
    path = ewma_variance(r, 0.5, np.float64(0.04))
    np.testing.assert_allclose(path, [0.04, 0.5 * 0.01 + 0.5 * 0.04], rtol=1e-15)
    assert ewma_variance(np.empty(0)).shape == (0,)


# ----------------------------------------------------------------------------------------- GARCH


def test_garch_path_and_forecasts_match_arch(returns: np.ndarray) -> None:
    result = fit_arch_garch(returns)
    omega, alpha, beta = (float(v) for v in result.params.to_numpy())
    params = GarchParams(omega=omega / PCT2, alpha=alpha, beta=beta)
    expected = np.asarray(result.conditional_volatility) ** 2 / PCT2
    np.testing.assert_allclose(garch_variance(returns, params), expected, rtol=RTOL, atol=0.0)
    forecasts = result.forecast(horizon=30, reindex=False).variance.to_numpy()[-1] / PCT2
    np.testing.assert_allclose(garch_forecast(returns, params, 30), forecasts, rtol=RTOL, atol=0.0)
    loglik = result.loglikelihood + returns.shape[0] * math.log(100.0)  # density of r = 100 x that of 100 r
    assert garch_loglikelihood(returns, params) == pytest.approx(loglik, rel=RTOL)


def test_fit_garch_agrees_with_arch_fit(returns: np.ndarray) -> None:
    result = fit_arch_garch(returns)
    ours = fit_garch(returns)
    loglik = result.loglikelihood + returns.shape[0] * math.log(100.0)
    assert garch_loglikelihood(returns, ours) == pytest.approx(loglik, rel=1e-6)
    assert garch_loglikelihood(returns, ours) >= loglik - 1e-6 * abs(loglik)
    _, alpha, beta = result.params.to_numpy()
    assert ours.alpha == pytest.approx(alpha, abs=2e-3)
    assert ours.beta == pytest.approx(beta, abs=2e-3)


def test_fit_garch_recovers_the_simulating_parameters() -> None:
    r = simulate_garch(7, 20_000, 2e-5, 0.08, 0.90)
    fit = fit_garch(r)
    assert fit.alpha == pytest.approx(0.08, abs=0.015)
    assert fit.beta == pytest.approx(0.90, abs=0.02)
    assert fit.unconditional_variance == pytest.approx(1e-3, rel=0.1)


def test_fit_garch_is_scale_equivariant(synthetic_returns: np.ndarray) -> None:
    small, large = fit_garch(synthetic_returns), fit_garch(10.0 * synthetic_returns)
    assert large.omega == pytest.approx(100.0 * small.omega, rel=1e-4)
    assert large.alpha == pytest.approx(small.alpha, abs=1e-5)
    assert large.beta == pytest.approx(small.beta, abs=1e-5)


def test_garch_equals_its_loop_twin(synthetic_returns: np.ndarray) -> None:
    r = synthetic_returns
    params = GarchParams(omega=2e-5, alpha=0.1, beta=0.86)
    b = float(ewma_backcast(r))
    expected = loop_recursion(r, 2e-5, 0.1, 0.86, b)
    np.testing.assert_allclose(garch_variance(r, params), expected, rtol=TWIN_RTOL, atol=0.0)
    expected = loop_recursion(r, 2e-5, 0.1, 0.86, 0.01)
    np.testing.assert_allclose(garch_variance(r, params, 0.01), expected, rtol=TWIN_RTOL, atol=0.0)


def test_garch_forecast_by_hand() -> None:
    """f1 = omega + alpha r_T^2 + beta sigma2_T; f_h = omega + (alpha + beta) f_{h-1} -> long-run variance."""
    params = GarchParams(omega=1e-5, alpha=0.1, beta=0.8)
    r = np.array([0.02, -0.03])
    s0 = 1e-5 + 0.9 * 0.0004  # backcast 0.0004, given
    s1 = 1e-5 + 0.1 * 0.0004 + 0.8 * s0
    f1 = 1e-5 + 0.1 * 0.0009 + 0.8 * s1
    f2 = 1e-5 + 0.9 * f1
    np.testing.assert_allclose(garch_forecast(r, params, 2, backcast=0.0004), [f1, f2], rtol=1e-14)
    far = garch_forecast(r, params, 2000, backcast=0.0004)[-1]
    assert far == pytest.approx(params.unconditional_variance, rel=1e-12)


@pytest.mark.parametrize(
    ("omega", "alpha", "beta"),
    [(0.0, 0.1, 0.8), (1e-5, -0.1, 0.8), (1e-5, 0.3, 0.7), (math.nan, 0.1, 0.8), (1e-5, 0.1, -0.01)],
)
def test_garch_params_reject_invalid(omega: float, alpha: float, beta: float) -> None:
    with pytest.raises(ValueError, match="GARCH"):
        GarchParams(omega=omega, alpha=alpha, beta=beta)


@pytest.mark.parametrize(
    ("returns", "match"),
    [(np.zeros(100), "every return is zero"), (np.full(10, 0.01), "at least 30"), (np.full(50, np.nan), "finite")],
)
def test_fit_garch_fails_closed(returns: np.ndarray, match: str) -> None:
    with pytest.raises(ModelError, match=match):
        fit_garch(returns)


def test_garch_forecast_rejects_bad_horizon() -> None:
    with pytest.raises(ValueError, match="horizon"):
        garch_forecast(np.ones(3), GarchParams(omega=1e-5, alpha=0.1, beta=0.8), 0)


def test_inputs_are_not_mutated(synthetic_returns: np.ndarray) -> None:
    r = synthetic_returns.copy()
    fit_garch(r)
    ewma_variance(r)
    garch_forecast(r, GarchParams(omega=1e-5, alpha=0.1, beta=0.8), 5)
    np.testing.assert_array_equal(r, synthetic_returns)


# ------------------------------------------------------------------------------------- annualise


@pytest.mark.parametrize(
    ("variance", "periods", "vol"),
    [(0.0001, 365.0, math.sqrt(0.0365)), (0.0004, 252.0, math.sqrt(0.1008)), (0.0, 365.0, 0.0)],
)
def test_annualise(variance: float, periods: float, vol: float) -> None:
    assert float(annualise(variance, periods)) == pytest.approx(vol, rel=1e-15)


# ----------------------------------------------------------------------------------- calibration


def history_of(returns: dict[str, np.ndarray]) -> PriceHistory:
    names = tuple(returns)
    logs = np.vstack([np.zeros(len(names)), np.cumsum(np.column_stack(list(returns.values())), axis=0)])
    stamps = np.datetime64("2020-01-01T00:00:00") + np.arange(logs.shape[0]) * np.timedelta64(1, "D")
    return PriceHistory(stamps.astype("datetime64[s]"), names, 100.0 * np.exp(logs))


def test_calibrate_asset_vols_by_hand() -> None:
    """Returns of daily size 1% (first 260, alternating sign) then 3% (last 40): every figure by hand."""
    sizes = np.r_[np.full(260, 0.01), np.full(40, 0.03)]
    r = sizes * np.where(np.arange(300) % 2 == 0, 1.0, -1.0)
    history = history_of({"BTC": r})
    params = VolatilityParams(apc_floor_lookback_days=30)
    vols = calibrate_asset_vols(history, params)["BTC"]
    got = history.log_returns()[:, 0]  # r up to the rounding of exp/log
    # Long lookback: the last 30 returns are +-3%, 15 each: sample std = 0.03 * sqrt(30 / 29).
    assert vols.vol_long == pytest.approx(0.03 * math.sqrt(30 / 29) * math.sqrt(365), rel=1e-9)
    # Stressed: the window of the last 250 returns: 210 of +-1% and 40 of +-3%, mean 0 (even counts).
    stressed = math.sqrt((210 * 0.01**2 + 40 * 0.03**2) / 249)
    assert vols.vol_stressed == pytest.approx(stressed * math.sqrt(365), rel=1e-9)
    # Fast: the EWMA one-step forecast; after 40 returns of 3% it is close to 3% per day.
    assert vols.vol == pytest.approx(float(np.sqrt(ewma_forecast(got, 0.94) * 365)), rel=1e-15)
    assert 0.028 * math.sqrt(365) < vols.vol < 0.03 * math.sqrt(365)


def test_calibrate_garch_skips_missing_closes_and_annualises(synthetic_returns: np.ndarray) -> None:
    r = synthetic_returns[:1000]
    history = history_of({"BTC": r, "ETH": r[::-1]})
    closes = history.closes.copy()
    closes[:100, 1] = np.nan  # ETH listed later
    late = PriceHistory(history.timestamps, history.assets, closes)
    vols = calibrate_asset_vols(late, VolatilityParams(estimator="garch"), periods_per_year=252.0)
    eth = late.log_returns()[100:, 1]
    expected = garch_forecast(eth, fit_garch(eth), 1)[0]
    assert vols["ETH"].vol == pytest.approx(math.sqrt(expected * 252.0), rel=1e-12)
    assert vols["ETH"].vol_long == pytest.approx(float(np.std(eth, ddof=1)) * math.sqrt(252.0), rel=1e-12)


def test_calibrate_rejects_short_history() -> None:
    history = history_of({"BTC": np.full(100, 0.01), "SOL": np.full(100, 0.01)})
    closes = history.closes.copy()
    closes[:80, 1] = np.nan
    with pytest.raises(InputError, match="column SOL: needs 30 returns"):
        calibrate_asset_vols(PriceHistory(history.timestamps, history.assets, closes), VolatilityParams())


def test_calibrate_real_btc(shared_dir: Path) -> None:
    history = read_history(shared_dir / BITSTAMP).select(("BTC",))
    ewma = calibrate_asset_vols(history, VolatilityParams())["BTC"]
    garch = calibrate_asset_vols(history, VolatilityParams(estimator="garch"))["BTC"]
    assert ewma.vol_long == garch.vol_long and ewma.vol_stressed == garch.vol_stressed
    # Whole-sample (1864 returns < 3650) daily vol of BTC 2014-2020 is about 4% -> ~75% a year; the
    # worst 250-day window (2017-18) is higher still.
    assert 0.6 < ewma.vol_long < 0.9
    assert ewma.vol_stressed > ewma.vol_long
    assert 0.2 < ewma.vol < 2.0 and 0.2 < garch.vol < 2.0


# --------------------------------------------------------------------------------- effective_vol
# EMIR RTS 153/2013 Art. 28(1): (a) a margin buffer of at least 25%, (b) at least 25% weight on
# stressed observations, (c) a floor from volatility over a 10-year lookback.

NAN = math.nan


def apc(mode: str, **changes: object) -> VolatilityParams:
    return structs.replace(VolatilityParams(), apc_mode=mode, **changes)


@pytest.mark.parametrize(
    ("params", "fast", "implied", "long_run", "stressed", "expected"),
    [
        # (c) floor: the 10-year vol binds when higher than fast and implied.
        (apc("floor"), 0.5, 0.6, 0.7, 1.0, 0.7),
        (apc("floor"), 0.8, 0.6, 0.7, 1.0, 0.8),
        (apc("floor"), 0.5, NAN, NAN, 1.0, 0.5),
        # (b) 25% weight on the stressed vol: sqrt(0.75 * 0.6^2 + 0.25 * 1.0^2) = sqrt(0.52).
        (apc("stressed_weight"), 0.6, NAN, 0.7, 1.0, math.sqrt(0.52)),
        (apc("stressed_weight", apc_stressed_weight=0.5), 0.6, 0.8, 0.7, 1.0, math.sqrt(0.82)),
        (apc("stressed_weight"), 0.6, NAN, 0.7, NAN, 0.6),  # no stressed vol: unchanged
        (apc("stressed_weight"), 0.6, NAN, 0.7, 0.2, 0.6),  # calmer "stressed" vol never lowers
        # (a) buffer: applied to IM, not to the vol; implied wins when higher and used.
        (apc("buffer"), 0.5, 0.6, 0.9, 1.0, 0.6),
        (apc("buffer", use_implied=False), 0.5, 0.6, 0.9, 1.0, 0.5),
        (apc("none"), 0.01, NAN, 0.9, 1.0, 0.05),  # the absolute vol_floor
        (apc("none", vol_floor=0.0), 0.01, NAN, 0.9, 1.0, 0.01),
    ],
)
def test_effective_vol_by_hand(
    params: VolatilityParams, fast: float, implied: float, long_run: float, stressed: float, expected: float
) -> None:
    got = effective_vol(np.array([fast]), np.array([implied]), np.array([long_run]), np.array([stressed]), params)
    assert float(got[0]) == pytest.approx(expected, rel=1e-15)


@pytest.mark.parametrize(("step_s", "per_year"), [(3_600, 8_760.0), (86_400, 365.0), (300, 105_120.0)])
def test_calibrate_infers_the_sampling_period(step_s: int, per_year: float) -> None:
    """issue 12 item 13: a GBM at 60% a year sampled every `step_s` seconds calibrates to ~60% whatever the
    step, the periods per year read from the timestamps (on main an hourly history gave 0.104, annualised
    as if daily: 0.6 x sqrt(365 / 8760)). Every figure of the sample against the closed form sigma sqrt(T)."""
    n = 4_000
    per_step = 0.6 / math.sqrt(per_year)
    r = np.random.default_rng(8).standard_normal(n) * per_step
    logs = np.r_[0.0, np.cumsum(r)]
    stamps = (np.datetime64("2024-01-01T00:00:00") + np.arange(n + 1) * np.timedelta64(step_s, "s")).astype(
        "datetime64[s]"
    )
    history = PriceHistory(stamps, ("BTC",), 60_000.0 * np.exp(logs)[:, None])
    assert sampling_periods_per_year(history) == pytest.approx(per_year, rel=1e-12)
    vols = calibrate_asset_vols(history, VolatilityParams())["BTC"]
    # The sample std of 4,000 normal returns is within 3 x 1/sqrt(2n) = 3.4% of the truth.
    assert vols.vol_long == pytest.approx(0.6, rel=0.034)
    assert vols.vol == pytest.approx(0.6, rel=0.35)  # the EWMA's effective sample is ~17 returns
    last = r[-round(3650 * per_year / 365.0) :]  # the 10-year lookback in observations
    assert vols.vol_long == pytest.approx(float(np.std(last, ddof=1)) * math.sqrt(per_year), rel=1e-9)
    # An explicit factor still wins, and a missing close (a gap in the stamps) leaves the median step.
    assert calibrate_asset_vols(history, VolatilityParams(), periods_per_year=365.0)["BTC"].vol == pytest.approx(
        vols.vol * math.sqrt(365.0 / per_year), rel=1e-12
    )
    gappy = PriceHistory(np.delete(stamps, 10), ("BTC",), np.delete(history.closes, 10, axis=0))
    assert sampling_periods_per_year(gappy) == pytest.approx(per_year, rel=1e-12)
