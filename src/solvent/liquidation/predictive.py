"""Predictive, velocity-aware liquidation: the probability that an account breaches MM within a horizon.

Pure functions over arrays (DESIGN.md item 10; issue 4 items 2 and 3). One unit of time throughout:
**years** (365-day years, as `solvent.pricing`), so that annualised asset vols give a loss volatility in
USD per sqrt(year) and a drift in USD per year; configuration speaks seconds (`solvent.params.PredictiveParams`) and is
converted once with `SECONDS_PER_YEAR`.

The model. Over a short horizon an account's equity minus its maintenance margin, X_t = d + μ t + σ W_t with
d = equity - MM, is an arithmetic Brownian motion: σ is the delta-normal loss volatility of the book
(`loss_volatility`) and μ the drift implied by recent price velocity (`price_velocity`, `equity_drift`),
or 0. MM is held fixed over the horizon (it moves with the book; a first-order approximation).
The probability that X touches 0 before h is the first-passage law of Brownian motion with drift,
obtained by the reflection principle and a Girsanov change of measure:

    P(min_{t<=h} X_t <= 0) = Φ((-d - μh)/(σ√h)) + exp(-2μd/σ²) Φ((-d + μh)/(σ√h)),   d > 0,

which for μ = 0 is 2 Φ(-d/(σ√h)). Sources: J. M. Harrison, *Brownian Motion and Stochastic Flow Systems*
(Wiley, 1985), ch. 1 (the running maximum of Brownian motion with drift); I. Karatzas and S. E. Shreve,
*Brownian Motion and Stochastic Calculus*, 2nd ed. (Springer, 1991), §3.5.C (first-passage times of
Brownian motion with drift).

`velocity_path` is the one compiled kernel (a recursion over ticks); `price_velocity` is its vectorised,
obviously correct twin for the last tick, and the tests hold the two together.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.special import erfcx, log_ndtr, ndtr

from solvent._numba import jit

FloatArray = NDArray[np.float64]
BoolArray = NDArray[np.bool_]

#: Seconds in a 365-day year (the year of `solvent.pricing`; crypto trades every day).
SECONDS_PER_YEAR: float = 365.0 * 86400.0

_SQRT2 = math.sqrt(2.0)


def _floats(name: str, value: ArrayLike) -> FloatArray:
    """`value` as a float64 array, refusing NaN and infinities (fail fast, with the offending value)."""
    array = np.asarray(value, dtype=np.float64)
    bad = ~np.isfinite(array)
    if bad.any():
        raise ValueError(f"{name} must be finite, got {array[bad].flat[0]!r}")
    return array


def _non_negative(name: str, array: FloatArray) -> None:
    if (array < 0.0).any():
        raise ValueError(f"{name} must be >= 0, got {array[array < 0.0].flat[0]!r}")


# ------------------------------------------------------------------------------- breach probability


def _first_passage(z: FloatArray, m: FloatArray) -> FloatArray:
    """P(min_{t<=1} (z + m t + W_t) <= 0) for z > 0: Φ(-z - m) + exp(-2zm) Φ(m - z).

    z = d/(σ√h) is the distance in horizon standard deviations, m = μ√h/σ the drift over the horizon in the
    same units (2μd/σ² = 2zm). The second term is evaluated in log space. Where m - z < 0 the exponent -2zm
    may be huge and Φ(m - z) tiny; writing Φ(x) = ½ exp(-x²/2) erfcx(-x/√2) the two cancel exactly:
    exp(-2zm) Φ(m - z) = ½ exp(-(z + m)²/2) erfcx((z - m)/√2), every factor bounded. Where m - z >= 0 both
    -2zm and log Φ(m - z) are <= 0 and log_ndtr is stable.
    """
    x = m - z
    log_second = np.empty_like(z)
    below = x < 0.0
    with np.errstate(over="ignore", divide="ignore"):  # overflow -> log_second = -inf -> exp = 0, the right limit
        log_second[below] = -0.5 * (z[below] + m[below]) ** 2 + np.log(0.5 * erfcx(-x[below] / _SQRT2))
        log_second[~below] = -2.0 * z[~below] * m[~below] + log_ndtr(x[~below])
    probability: FloatArray = ndtr(-(z + m)) + np.exp(np.minimum(log_second, 0.0))
    return np.clip(probability, 0.0, 1.0)


def breach_probability(
    equity: ArrayLike,
    mm: ArrayLike,
    loss_vol: ArrayLike,
    horizon: ArrayLike,
    drift: ArrayLike = 0.0,
) -> FloatArray:
    """Probability that equity falls to MM at some time within `horizon` (first passage, see the module).

    equity, mm: USD; loss_vol: USD per sqrt(year), >= 0; horizon: years, >= 0; drift: USD per year (negative
    = equity falling). All broadcast together (typically (N,) accounts against scalars) -> probability in
    [0, 1] of the broadcast shape. Every input must be finite (ValueError names the first bad value).

    Edge cases: d = equity - MM <= 0 gives 1 (at or below MM already; with σ > 0 the path crosses at once).
    With no diffusion over the horizon (σ√h = 0), or σ so small that d/(σ√h) or μ√h/σ overflow, equity
    follows its drift deterministically: 1 if d + μh <= 0, else 0 (σ = 0 with μ >= 0 and d > 0 gives 0).
    No overflow for extreme inputs: exp(-2μd/σ²) is never formed on its own (see `_first_passage`).
    """
    e, level, sigma, h, mu = np.broadcast_arrays(
        _floats("equity", equity),
        _floats("mm", mm),
        _floats("loss_vol", loss_vol),
        _floats("horizon", horizon),
        _floats("drift", drift),
    )
    _non_negative("loss_vol", sigma)
    _non_negative("horizon", h)
    with np.errstate(over="ignore"):  # inf is a value here; every non-finite case is routed below
        d = e - level
        root_h = np.sqrt(h)
        scale = sigma * root_h
        out = np.ones(d.shape, dtype=np.float64)
        live = d > 0.0
        diffusive = live & (scale > 0.0)
        z = np.divide(d, scale, out=np.full(d.shape, np.inf), where=diffusive)
        m = np.divide(mu * root_h, sigma, out=np.zeros(d.shape), where=diffusive)
        ok = diffusive & np.isfinite(z) & np.isfinite(m)
        out[ok] = _first_passage(z[ok], m[ok])
        deterministic = live & ~ok
        out[deterministic] = np.where(d[deterministic] + mu[deterministic] * h[deterministic] <= 0.0, 1.0, 0.0)
    return out


def early_trigger(probability: ArrayLike, threshold: float) -> BoolArray:
    """Flags (N,) where the breach probability exceeds `threshold`; NaN flags too (fail closed)."""
    if not 0.0 <= threshold < 1.0:
        raise ValueError(f"threshold must be in [0, 1), got {threshold!r}")
    p = np.asarray(probability, dtype=np.float64)
    flags: BoolArray = ~(p <= threshold)
    return flags


# ---------------------------------------------------------------------------------- loss volatility


def loss_volatility(
    delta_notional: ArrayLike,
    asset_vol: ArrayLike,
    correlation: ArrayLike,
    gamma_dollar: ArrayLike | None = None,
    horizon: float | None = None,
) -> FloatArray:
    """(N,) delta-normal equity volatility per account, USD per sqrt(year).

    delta_notional (N, A): Δ·S per account and asset, USD (equity change ≈ Σ_a x_a r_a for log returns r).
    asset_vol (A,): annualised vols; correlation (A, A): return correlations C.
    σ_n² = x_n Σ x_nᵀ with Σ = diag(vol) C diag(vol) (negative round-off clipped to 0).

    Optional delta-gamma term: gamma_dollar (N, A) = Γ·S² in USD per unit return squared, with `horizon`
    (years, > 0). For r ~ N(0, Σh) and diagonal Γ, Var(x·r + ½ Σ_a g_a r_a²) = xΣxᵀ h + ½ tr((GΣ)²) h²
    (the cross moment is 0); divided by h this adds ½ h Σ_ab (g_a s_a²) C_ab² (g_b s_b²). It is a variance
    match over that horizon only: the gamma mean ½ Σ_a g_a s_a² h and the skew are left out, and cross-gammas
    are not modelled.
    """
    x = _floats("delta_notional", delta_notional)
    vol = _floats("asset_vol", asset_vol)
    corr = _floats("correlation", correlation)
    _non_negative("asset_vol", vol)
    if x.ndim != 2 or vol.shape != (x.shape[1],) or corr.shape != (vol.size, vol.size):
        raise ValueError(
            f"shapes must be delta_notional (N, A), asset_vol (A,), correlation (A, A); "
            f"got {x.shape}, {vol.shape}, {corr.shape}"
        )
    y = x * vol
    variance = np.einsum("na,na->n", y @ corr, y)
    if gamma_dollar is not None:
        g = _floats("gamma_dollar", gamma_dollar)
        if g.shape != x.shape:
            raise ValueError(f"gamma_dollar must have the shape of delta_notional {x.shape}, got {g.shape}")
        if horizon is None or not math.isfinite(horizon) or horizon <= 0.0:
            raise ValueError(f"the gamma term needs a finite horizon > 0 (years), got {horizon!r}")
        q = g * vol**2
        variance = variance + 0.5 * horizon * np.einsum("na,na->n", q @ (corr * corr), q)
    result: FloatArray = np.sqrt(np.maximum(variance, 0.0))
    return result


def equity_drift(delta_notional: ArrayLike, velocity: ArrayLike) -> FloatArray:
    """(N,) USD per year: the first-order equity drift x_n · v if log prices keep their velocity v (A,)."""
    drift: FloatArray = np.asarray(delta_notional, dtype=np.float64) @ np.asarray(velocity, dtype=np.float64)
    return drift


def time_to_breach(equity: ArrayLike, mm: ArrayLike, drift: ArrayLike) -> FloatArray:
    """Expected time (years) until equity reaches MM, under X_t = d + μ t + σ W_t; broadcast shapes.

    d / |μ| when μ < 0 (Wald's identity: the mean first-passage time of Brownian motion with drift does not
    depend on σ, which is why no volatility is taken); inf when μ >= 0 (μ = 0: reached almost surely, but
    with infinite mean; μ > 0: possibly never); 0 when d <= 0 (in breach already).
    """
    d = _floats("equity", equity) - _floats("mm", mm)
    mu = _floats("drift", drift)
    d, mu = np.broadcast_arrays(d, mu)
    out = np.full(d.shape, np.inf)
    falling = (d > 0.0) & (mu < 0.0)
    out[falling] = d[falling] / -mu[falling]
    out[d <= 0.0] = 0.0
    return out


# --------------------------------------------------------------------------------------- velocity


@dataclass(frozen=True)
class Velocity:
    """An asset's price velocity (log return per year, signed) and fast volatility (per sqrt(year))."""

    velocity: float
    volatility: float


def _ticks(times: ArrayLike, prices: ArrayLike, halflife: float) -> tuple[FloatArray, FloatArray, float]:
    t = _floats("times", times)
    p = _floats("prices", prices)
    if t.ndim != 1 or p.shape != t.shape or t.size < 2:
        raise ValueError(f"times and prices must be (T,) with T >= 2, got {t.shape} and {p.shape}")
    if (p <= 0.0).any():
        raise ValueError(f"prices must be > 0, got {p[p <= 0.0][0]!r}")
    if (np.diff(t) < 0.0).any():
        i = int(np.argmax(np.diff(t) < 0.0))
        raise ValueError(f"times must be non-decreasing, got {t[i]!r} then {t[i + 1]!r}")
    if not (math.isfinite(halflife) and halflife > 0.0):
        raise ValueError(f"halflife must be finite and > 0, got {halflife!r}")
    return t, p, math.log(2.0) / halflife


def price_velocity(times: ArrayLike, prices: ArrayLike, halflife: float) -> Velocity:
    """Velocity and fast volatility after the last of T irregular ticks (the twin of `velocity_path`).

    times (T,): years, non-decreasing; prices (T,) > 0; halflife: years. With r_i = ln(p_i / p_{i-1}),
    Δ_i = t_i - t_{i-1} and weights decaying by elapsed time, w_i = exp(-ln2 (t_{T-1} - t_i) / halflife):
    velocity = Σ w_i r_i / Σ w_i Δ_i and volatility² = Σ w_i r_i² / Σ w_i Δ_i (zero-mean, as RiskMetrics).
    Returns and time are decayed alike, so irregular spacing and same-time ticks need no resampling, and a
    path growing as exp(g t) has velocity g exactly. ValueError if no time has elapsed.
    """
    t, p, lam = _ticks(times, prices, halflife)
    r = np.log(p[1:] / p[:-1])
    w = np.exp(-lam * (t[-1] - t[1:]))
    elapsed = float(w @ np.diff(t))
    if elapsed <= 0.0:
        raise ValueError(f"no time elapsed between the ticks (all at {t[0]!r}): velocity is undefined")
    return Velocity(velocity=float(w @ r) / elapsed, volatility=math.sqrt(float(w @ r**2) / elapsed))


@jit()
def _velocity_recursion(times: FloatArray, prices: FloatArray, lam: float, out: FloatArray) -> None:
    """out (2, T-1): velocity and volatility after each tick 1..T-1 (NaN while no time has elapsed)."""
    returns = 0.0
    elapsed = 0.0
    squares = 0.0
    for i in range(1, times.size):
        dt = times[i] - times[i - 1]
        r = math.log(prices[i] / prices[i - 1])
        decay = math.exp(-lam * dt)
        returns = decay * returns + r
        elapsed = decay * elapsed + dt
        squares = decay * squares + r * r
        if elapsed > 0.0:
            out[0, i - 1] = returns / elapsed
            out[1, i - 1] = math.sqrt(squares / elapsed)
        else:
            out[0, i - 1] = math.nan
            out[1, i - 1] = math.nan


def velocity_path(
    times: ArrayLike, prices: ArrayLike, halflife: float, out: FloatArray | None = None
) -> tuple[FloatArray, FloatArray]:
    """Velocity and volatility (each (T-1,)) after every tick 1..T-1, by the recursion
    R_i = e^{-λΔ_i} R_{i-1} + r_i, D_i = e^{-λΔ_i} D_{i-1} + Δ_i, Q_i = e^{-λΔ_i} Q_{i-1} + r_i², λ = ln2/halflife,
    velocity_i = R_i / D_i, volatility_i = sqrt(Q_i / D_i); NaN while D_i = 0. Units as `price_velocity`.
    `out` (2, T-1) may be passed as the buffer.
    """
    t, p, lam = _ticks(times, prices, halflife)
    if out is None:
        out = np.empty((2, t.size - 1))
    elif out.shape != (2, t.size - 1) or out.dtype != np.float64:
        raise ValueError(f"out must be float64 (2, {t.size - 1}), got {out.dtype} {out.shape}")
    _velocity_recursion(t, p, lam, out)
    return out[0], out[1]
