"""Volatility estimators (EWMA, GARCH(1,1)), their calibration from a price history, and the
anti-procyclical combination of volatility inputs.

Returns are log returns per observation; variances are per observation unless a name says
"annualised"; volatilities handed to the market state are annualised fractions (0.6 = 60%).

Both recursions start as the arch package (8.0.0) starts them, so that our variance paths and
forecasts reproduce arch's to rounding (tests/test_volatility.py): the backcast is an exponentially
weighted mean of the first 75 squared returns with weights 0.94**i *whatever the model's lambda*
(arch `VolatilityProcess.backcast`, used by `EWMAVariance` and `GARCH` alike), and the first
variance is one step of the recursion from it, sigma2[0] = omega + (alpha + beta) * backcast.

GARCH(1,1) here is zero-mean: sigma2[t] = omega + alpha * r[t-1]**2 + beta * sigma2[t-1]. Margin
scenarios are centred, a fitted drift of daily crypto returns is noise, and the zero mean is the
RiskMetrics convention the EWMA estimator already follows (arch: `arch_model(..., mean="Zero")`).
The likelihood is normal (a quasi-likelihood when innovations are fat-tailed; Bollerslev and
Wooldridge 1992), maximised with scipy's SLSQP under 0 <= alpha, beta and alpha + beta < 1.

The recursions run as first-order linear filters (`scipy.signal.lfilter`): the loop
``s[t] = (omega + alpha * r2[t-1]) + beta * s[t-1]`` in compiled code (equal to rounding, as the
compiled filter may fuse a multiply-add); tests hold them to a plain Python loop and to arch.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from solvent.errors import InputError, ModelError
from solvent.market.history import PriceHistory
from solvent.params import VolatilityParams

FloatArray = NDArray[np.float64]

#: Observations averaged (exponentially weighted) to start a recursion, as the arch package does.
BACKCAST_OBSERVATIONS = 75
#: Decay of the backcast weights. arch fixes it at 0.94 for every model, EWMA of any lambda included.
BACKCAST_DECAY = 0.94
#: Window (observations) of the rolling volatility whose maximum is the stressed volatility: one
#: year of daily data, the Basel backtesting window.
STRESSED_WINDOW = 250
#: Fewest returns an asset needs before its volatility is calibrated.
MIN_CALIBRATION_RETURNS = 30
#: Upper bound on alpha + beta in `fit_garch`, keeping the fitted process covariance-stationary.
MAX_PERSISTENCE = 1.0 - 1e-6
#: Calendar days per year, to turn `apc_floor_lookback_days` into observations.
CALENDAR_DAYS_PER_YEAR = 365.0
#: Seconds per day, to turn the timestamps' step into observations per year.
SECONDS_PER_DAY = 86_400.0


def ewma_backcast(returns: FloatArray, lam: float | None = None) -> FloatArray:
    """Starting variance: exponentially weighted mean of the first 75 squared returns, per column.

    returns: (T,) or (T, A) -> () or (A,). Weights 0.94**i (i = 0, 1, ...), normalised, exactly as
    arch 8.0.0 `VolatilityProcess.backcast`. `lam` (the model's smoothing parameter) is accepted
    for callers that pass it and changes nothing: arch's weights do not depend on it.
    """
    del lam
    r = np.asarray(returns, dtype=np.float64)
    n = min(BACKCAST_OBSERVATIONS, r.shape[0])
    weights = BACKCAST_DECAY ** np.arange(n, dtype=np.float64)
    weights = weights / weights.sum()
    return np.asarray(np.tensordot(weights, r[:n] ** 2, axes=(0, 0)), dtype=np.float64)


def _recursion(squared: FloatArray, omega: float, alpha: float, beta: float, backcast: FloatArray) -> FloatArray:
    """s[0] = omega + alpha*b + beta*b; s[t] = omega + alpha*squared[t-1] + beta*s[t-1] (axis 0)."""
    if squared.shape[0] == 0:
        return np.empty_like(squared)
    start = np.asarray(backcast, dtype=np.float64)
    lagged = np.concatenate([np.broadcast_to(start, squared.shape[1:])[np.newaxis], squared[:-1]])
    drive = omega + alpha * lagged
    zi = (beta * np.broadcast_to(start, squared.shape[1:]))[np.newaxis]
    from scipy.signal import lfilter  # imported here: scipy.signal costs 0.4 s to import

    out, _ = lfilter(np.ones(1), np.array([1.0, -beta]), drive, axis=0, zi=zi)
    return np.asarray(out, dtype=np.float64)


def ewma_variance(returns: FloatArray, lam: float = 0.94, backcast: FloatArray | float | None = None) -> FloatArray:
    """RiskMetrics EWMA conditional variance path, as arch's `EWMAVariance(lam)`.

    sigma2[0] = backcast (arch's, by default); sigma2[t] = (1 - lam) * r[t-1]**2 + lam * sigma2[t-1].
    returns: (T,) or (T, A) -> variance (T,) or (T, A); sigma2[t] uses returns up to t-1 only.
    """
    r = np.asarray(returns, dtype=np.float64)
    start = ewma_backcast(r) if backcast is None else np.asarray(backcast, dtype=np.float64)
    return _recursion(r**2, 0.0, 1.0 - lam, lam, start)


def ewma_forecast(returns: FloatArray, lam: float = 0.94) -> FloatArray:
    """One-step-ahead EWMA variance after the last return: (1 - lam) * r[T-1]**2 + lam * sigma2[T-1].

    returns: (T,) or (T, A), T >= 1 -> () or (A,).
    """
    r = np.asarray(returns, dtype=np.float64)
    extended = np.concatenate([r, np.zeros((1, *r.shape[1:]))])
    return np.asarray(ewma_variance(extended, lam, ewma_backcast(r))[-1], dtype=np.float64)


@dataclass(frozen=True)
class GarchParams:
    """Zero-mean GARCH(1,1): sigma2[t] = omega + alpha * r[t-1]**2 + beta * sigma2[t-1].

    omega is in squared return units per observation (not percent); alpha + beta < 1.
    """

    omega: float
    alpha: float
    beta: float

    def __post_init__(self) -> None:
        values = (self.omega, self.alpha, self.beta)
        if not all(math.isfinite(v) for v in values):
            raise ValueError(f"GARCH parameters must be finite, got {values}")
        if self.omega <= 0.0 or self.alpha < 0.0 or self.beta < 0.0:
            raise ValueError(f"GARCH needs omega > 0, alpha >= 0, beta >= 0, got {values}")
        if self.alpha + self.beta >= 1.0:
            raise ValueError(f"GARCH needs alpha + beta < 1 (stationary), got {self.alpha + self.beta}")

    @property
    def persistence(self) -> float:
        """alpha + beta: how slowly a variance shock decays."""
        return self.alpha + self.beta

    @property
    def unconditional_variance(self) -> float:
        """Long-run variance per observation, omega / (1 - alpha - beta)."""
        return self.omega / (1.0 - self.alpha - self.beta)


def _as_series(returns: FloatArray, name: str = "returns") -> FloatArray:
    r = np.asarray(returns, dtype=np.float64)
    if r.ndim != 1:
        raise ValueError(f"{name} must be one-dimensional (T,), got shape {r.shape}")
    return r


def garch_variance(returns: FloatArray, params: GarchParams, backcast: float | None = None) -> FloatArray:
    """GARCH(1,1) conditional variance path (T,), as arch's `GARCH(1, 1)` with `mean="Zero"`.

    sigma2[t] uses returns up to t-1; sigma2[0] = omega + (alpha + beta) * backcast, the backcast
    being arch's (`ewma_backcast`) unless given.
    """
    r = _as_series(returns)
    start = ewma_backcast(r) if backcast is None else np.float64(backcast)
    return _recursion(r**2, params.omega, params.alpha, params.beta, np.asarray(start))


def garch_loglikelihood(returns: FloatArray, params: GarchParams, backcast: float | None = None) -> float:
    """Normal log-likelihood of the returns under the GARCH variance path (arch's `loglikelihood`)."""
    r = _as_series(returns)
    sigma2 = garch_variance(r, params, backcast)
    return float(-0.5 * np.sum(np.log(2.0 * np.pi) + np.log(sigma2) + r**2 / sigma2))


def garch_forecast(returns: FloatArray, params: GarchParams, horizon: int, backcast: float | None = None) -> FloatArray:
    """Variance forecasts for the next 1..horizon observations after the last return, (horizon,).

    f[1] = omega + alpha * r[T-1]**2 + beta * sigma2[T-1]; f[h] = omega + (alpha + beta) * f[h-1]
    (arch's analytic forecast, `res.forecast(horizon=h).variance` at the last observation).
    """
    r = _as_series(returns)
    if horizon < 1:
        raise ValueError(f"horizon must be at least 1, got {horizon}")
    if r.shape[0] == 0:
        raise ValueError("garch_forecast needs at least one return")
    start = ewma_backcast(r) if backcast is None else np.float64(backcast)
    one_step = garch_variance(np.append(r, 0.0), params, float(start))[-1]
    drive = np.full(horizon, params.omega)
    drive[0] = one_step
    from scipy.signal import lfilter  # imported here: scipy.signal costs 0.4 s to import

    out, _ = lfilter(np.ones(1), np.array([1.0, -params.persistence]), drive, zi=np.zeros(1))
    return np.asarray(out, dtype=np.float64)


def _negative_mean_loglik(x: FloatArray, squared: FloatArray, backcast: FloatArray) -> float:
    """Mean negative normal log-likelihood, constants dropped, of unit-scale squared returns."""
    sigma2 = _recursion(squared, float(x[0]), float(x[1]), float(x[2]), backcast)
    if not np.all(sigma2 > 0.0):
        return 1e10
    return float(0.5 * np.mean(np.log(sigma2) + squared / sigma2))


def fit_garch(returns: FloatArray) -> GarchParams:
    """Maximum-(normal-)likelihood zero-mean GARCH(1,1) of a return series (T,), T >= 30.

    The returns are scaled to unit mean square before fitting (the likelihood is scale-equivariant:
    omega scales by the square, alpha and beta do not), started from the best of a small grid (as
    arch's `starting_values`) and polished by SLSQP with alpha + beta <= 1 - 1e-6. Raises
    ModelError if the series cannot be fitted (too short, not finite, all zero, no convergence).
    """
    r = _as_series(returns)
    if r.shape[0] < MIN_CALIBRATION_RETURNS:
        raise ModelError(f"fit_garch needs at least {MIN_CALIBRATION_RETURNS} returns, got {r.shape[0]}")
    if not np.all(np.isfinite(r)):
        raise ModelError("fit_garch: returns must all be finite")
    scale2 = float(np.mean(r**2))
    if not scale2 > 0.0:
        raise ModelError("fit_garch: every return is zero; there is no variance to model")
    z = r / math.sqrt(scale2)
    squared = z**2
    backcast = ewma_backcast(z)
    starts = [
        np.array([1.0 - persistence, alpha, persistence - alpha])
        for alpha in (0.01, 0.05, 0.1, 0.2)
        for persistence in (0.5, 0.7, 0.9, 0.98)
    ]
    x0 = min(starts, key=lambda x: _negative_mean_loglik(x, squared, backcast))
    from scipy.optimize import minimize

    result = minimize(
        _negative_mean_loglik,
        x0,
        args=(squared, backcast),
        method="SLSQP",
        bounds=[(1e-8, 10.0), (0.0, 1.0), (0.0, 1.0)],
        constraints=[{"type": "ineq", "fun": lambda x: MAX_PERSISTENCE - x[1] - x[2]}],
        options={"ftol": 1e-12, "maxiter": 1000},
    )
    if not result.success:
        raise ModelError(f"fit_garch: the optimiser did not converge ({result.message})")
    omega, alpha, beta = (float(v) for v in result.x)
    alpha, beta = max(alpha, 0.0), max(beta, 0.0)
    if alpha + beta > MAX_PERSISTENCE:  # SLSQP may overshoot the constraint by its tolerance
        beta = MAX_PERSISTENCE - alpha
    return GarchParams(omega=omega * scale2, alpha=alpha, beta=beta)


def annualise(daily_variance: FloatArray | float, periods_per_year: float) -> FloatArray:
    """Annualised volatility sqrt(variance * periods_per_year) from a variance per observation.

    Square-root-of-time scaling (returns assumed serially uncorrelated); 365 for crypto daily
    closes (trading never stops), 252 for exchange trading days, 8760 for hourly closes.
    """
    return np.sqrt(np.asarray(daily_variance, dtype=np.float64) * periods_per_year)


@dataclass(frozen=True)
class VolInputs:
    """One asset's calibrated, annualised volatility inputs, as `AssetQuote` takes them.

    vol: the fast estimate (EWMA or GARCH one-step forecast); vol_long: the long-lookback volatility
    of the anti-procyclical floor; vol_stressed: the highest rolling-window volatility in the history.
    """

    vol: float
    vol_long: float
    vol_stressed: float


def _rolling_max_std(returns: FloatArray, window: int) -> float:
    """Largest sample standard deviation (ddof 1) over windows of `window` consecutive returns."""
    if returns.shape[0] <= window:
        return float(np.std(returns, ddof=1))
    windows = np.lib.stride_tricks.sliding_window_view(returns, window)
    return float(np.max(np.std(windows, axis=1, ddof=1)))


def sampling_periods_per_year(history: PriceHistory) -> float:
    """Observations per 365-day year of `history`, from the median step between its timestamps.

    365 for daily closes, 8,760 for hourly ones (crypto trades around the clock, so a calendar year);
    the median ignores the odd missing close. A history of fewer than two timestamps gives 365.
    """
    if history.timestamps.size < 2:
        return CALENDAR_DAYS_PER_YEAR
    steps = np.diff(history.timestamps.astype("datetime64[s]").astype(np.int64)).astype(np.float64)
    return CALENDAR_DAYS_PER_YEAR * SECONDS_PER_DAY / float(np.median(steps))


def calibrate_asset_vols(
    history: PriceHistory, vol_params: VolatilityParams, periods_per_year: float | None = None
) -> dict[str, VolInputs]:
    """Annualised fast, long-lookback and stressed volatility per asset of a price history.

    `periods_per_year`: observations per year; None (default) infers it from the timestamps
    (`sampling_periods_per_year`: 365 for daily closes, 8,760 for hourly), so an hourly history is not
    annualised as a daily one (issue 12 item 13: hourly at 60% vol gave 0.104 with a fixed 365).

    Per asset, from its log returns where both closes exist (missing closes are skipped, so an asset
    listed later simply has a shorter sample):
      - vol: the one-step-ahead variance forecast after the last return, EWMA (`ewma_lambda`) or a
        GARCH(1,1) fitted to the asset's returns (`fit_garch`), by `vol_params.estimator`;
      - vol_long: sample standard deviation of the last `apc_floor_lookback_days` days of returns
        (apc_floor_lookback_days * periods_per_year / 365 observations, all of them if fewer);
        the long-lookback floor of EMIR RTS 153/2013 Art. 28(1)(c);
      - vol_stressed: the largest sample standard deviation over any 250 consecutive returns, or for
        intraday data over the same 250 days (250 x periods_per_year / 365 observations); the whole
        sample if shorter. The stressed period of Art. 28(1)(b).
    An asset with fewer than 30 returns raises InputError naming its column.
    """
    if periods_per_year is None:
        periods_per_year = sampling_periods_per_year(history)
    window = max(STRESSED_WINDOW, round(STRESSED_WINDOW * periods_per_year / CALENDAR_DAYS_PER_YEAR))
    returns = history.log_returns()
    lookback = max(2, round(vol_params.apc_floor_lookback_days * periods_per_year / CALENDAR_DAYS_PER_YEAR))
    out: dict[str, VolInputs] = {}
    for a, asset in enumerate(history.assets):
        column = returns[:, a]
        r = column[np.isfinite(column)]
        if r.shape[0] < MIN_CALIBRATION_RETURNS:
            raise InputError(
                "",
                f"column {asset}",
                f"needs {MIN_CALIBRATION_RETURNS} returns to calibrate a volatility, got {r.shape[0]}",
            )
        if vol_params.estimator == "garch":
            fast = float(garch_forecast(r, fit_garch(r), 1)[0])
        else:
            fast = float(ewma_forecast(r, vol_params.ewma_lambda))
        long_run = float(np.std(r[-lookback:], ddof=1))
        stressed = _rolling_max_std(r, window)
        out[asset] = VolInputs(
            vol=float(annualise(fast, periods_per_year)),
            vol_long=float(annualise(long_run**2, periods_per_year)),
            vol_stressed=float(annualise(stressed**2, periods_per_year)),
        )
    return out


def effective_vol(
    fast: FloatArray,
    implied: FloatArray,
    long_run: FloatArray,
    stressed: FloatArray,
    params: VolatilityParams,
) -> FloatArray:
    """The volatility margin is computed at, per asset (all (A,) arrays; NaN where an input is absent).

    sigma = max(fast, implied if used) then, by `params.apc_mode` (EMIR RTS 153/2013 Art. 28):
    "floor": max(sigma, long-lookback vol); "stressed_weight": sqrt((1-w) sigma^2 + w stressed^2);
    "buffer" and "none": unchanged here (the buffer is an IM term). Finally at least `vol_floor`.
    """
    sigma = np.asarray(fast, dtype=np.float64).copy()
    if params.use_implied:
        sigma = np.fmax(sigma, implied)
    if params.apc_mode == "floor":
        sigma = np.fmax(sigma, long_run)
    elif params.apc_mode == "stressed_weight":
        w = params.apc_stressed_weight
        blended = np.sqrt((1.0 - w) * sigma**2 + w * np.asarray(stressed) ** 2)
        sigma = np.where(np.isnan(blended), sigma, np.fmax(sigma, blended))
    return np.fmax(sigma, params.vol_floor)
