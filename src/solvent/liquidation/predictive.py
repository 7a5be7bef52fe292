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

Applied to a book: `scenario_correlation` (the return correlation C), `account_breach` (loss volatility,
drift, probability, early flag and time to breach of N accounts, one `Breach`), and `VelocityTracker`, the
streaming form of `velocity_path` for every asset at once.

Compiled kernels and their obviously correct twins, held together by the tests: `velocity_path` (a recursion
over ticks) and `price_velocity` (vectorised, the last tick); `_book_kernel` (one parallel pass over the
Greeks) and `book_moments` (`loss_volatility` and `equity_drift`); `_tracker_update` and `velocity_path`.

Over 600 lines because the breach model and the price velocity that drives its drift (`price_velocity`,
`velocity_path`, `VelocityTracker`, each with its twin) are one model; the velocity half (from `Velocity` down)
can move to its own module once the stream core's split has settled its imports.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.special import erfcx, log_ndtr, ndtr

from solvent._numba import jit, prange
from solvent.factors.held import HeldAssets, every_asset
from solvent.params import PredictiveParams
from solvent.scenarios.base import ScenarioSet

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
    return _probability(e - level, sigma, h, mu)


def _probability(d: FloatArray, sigma: FloatArray, h: FloatArray | float, mu: FloatArray) -> FloatArray:
    """`breach_probability` of distances d = equity - MM on validated inputs (finite; sigma, h >= 0; d, sigma and
    mu of one shape, h a scalar or of that shape)."""
    with np.errstate(over="ignore"):  # inf is a value here; every non-finite case is routed below
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
        out[deterministic] = np.where(d[deterministic] + (mu * h)[deterministic] <= 0.0, 1.0, 0.0)
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


# ---------------------------------------------------------------------------------- account breach

#: Scenario sets that are a sample of joint returns (their correlation is estimated from them) and those that
#: are not (per-asset grids: `PredictiveParams.correlation` between every two assets).
JOINT_SCENARIOS: frozenset[str] = frozenset({"fhs", "mc"})
GRID_SCENARIOS: frozenset[str] = frozenset({"grid", "deribit"})


def constant_correlation(n_assets: int, rho: float) -> FloatArray:
    """(A, A): 1 on the diagonal, ρ' = max(ρ, -1/(A-1)) off it.

    The equicorrelation matrix has eigenvalues 1 + (A-1)ρ (once) and 1 - ρ (A-1 times), so it is positive
    semi-definite exactly for ρ in [-1/(A-1), 1]. Below that bound ρ is raised to it, which is the nearest PSD
    correlation matrix (eigenvalues clipped at 0 and the diagonal renormalised, as
    `solvent.scenarios.mc.nearest_psd_correlation`, gives the same matrix).
    """
    if not (math.isfinite(rho) and -1.0 <= rho <= 1.0):
        raise ValueError(f"correlation must be in [-1, 1], got {rho!r}")
    if n_assets < 0:
        raise ValueError(f"n_assets must be >= 0, got {n_assets!r}")
    if n_assets >= 2:
        rho = max(rho, -1.0 / (n_assets - 1))
    out = np.full((n_assets, n_assets), rho)
    np.fill_diagonal(out, 1.0)
    return out


def scenario_correlation(scenarios: ScenarioSet, params: PredictiveParams) -> FloatArray:
    """(A, A) the return correlation `account_breach` uses, over every column of `scenarios`.

    - "fhs", "mc" (a sample of joint returns): the correlation of the scenarios' log price moves
      r = ln(1 + price_move), the returns of `loss_volatility`, over group 0 (the joint sample; later
      groups, the Monte Carlo's per-asset stress groups or the stablecoin de-peg, are not joint draws).
      Weighted by `pnl_weight` when it is not uniform (weighted means and covariances; scenarios of weight 0
      are left out); a group of one weight (0 included) is an unweighted sample. An asset whose
      moves are all equal (USD, untraded assets: all 0) has no variance: 0 off the diagonal, 1 on it.
      PSD by construction (a normalised Gram matrix), up to rounding; clipped to [-1, 1], diagonal exactly 1.
    - "grid", "deribit" (per-asset ladders, no joint sample): `constant_correlation(A, params.correlation)`.

    ValueError for any other name (a closed set), for fewer than 2 joint scenarios of positive weight, or for
    weights that are negative or not finite.
    """
    n_assets = scenarios.n_assets
    if scenarios.name in GRID_SCENARIOS:
        return constant_correlation(n_assets, params.correlation)
    if scenarios.name not in JOINT_SCENARIOS:
        raise ValueError(
            f"unknown scenario set {scenarios.name!r}: expected one of {sorted(JOINT_SCENARIOS | GRID_SCENARIOS)}"
        )
    weight = _floats("pnl_weight", scenarios.pnl_weight)
    _non_negative("pnl_weight", weight)
    joint = scenarios.group == 0
    joint_weight = weight[joint]
    # a group of one weight is an unweighted sample, whatever that weight (the Monte Carlo's joint draws weigh
    # 1 - stress_weight, 0 at full stress)
    uniform_group = bool(joint_weight.size) and bool((joint_weight == joint_weight[0]).all())
    rows = joint if uniform_group else joint & (weight > 0.0)
    if int(rows.sum()) < 2:
        raise ValueError(f"a correlation needs at least 2 joint scenarios of positive weight, got {int(rows.sum())}")
    r = np.log1p(scenarios.price_move_at(np.flatnonzero(rows)))
    w = weight[rows]
    moving = np.flatnonzero(np.ptp(r, axis=0) > 0.0)
    out = np.eye(n_assets)
    if moving.size:
        uniform = bool((w == w[0]).all())
        cov = np.atleast_2d(np.cov(r[:, moving], rowvar=False, aweights=None if uniform else w))
        sd = np.sqrt(np.diag(cov))
        corr = np.clip(cov / np.outer(sd, sd), -1.0, 1.0)
        np.fill_diagonal(corr, 1.0)
        out[np.ix_(moving, moving)] = corr
    return out


@dataclass(frozen=True, eq=False)
class Breach:
    """Per account (each (N,)), within the horizon h of `PredictiveParams` (see `account_breach`).

    loss_vol: USD per sqrt(year), delta-gamma; drift: USD per year (0 without velocity or `use_drift`);
    probability: of touching MM within h; flagged: early-liquidation flag (probability > threshold while
    equity >= MM; accounts below MM are liquidatable, not early); time_to_breach_seconds: expected seconds
    until equity reaches MM at the drift (0 if below or at MM, inf without adverse drift).
    """

    loss_vol: FloatArray
    drift: FloatArray
    probability: FloatArray
    flagged: BoolArray
    time_to_breach_seconds: FloatArray


def book_moments(
    greeks: FloatArray,
    price: FloatArray,
    vol: FloatArray,
    correlation: FloatArray,
    horizon: float,
    velocity: FloatArray,
) -> tuple[FloatArray, FloatArray]:
    """(N,) loss volatility and (N,) drift of each book, the obviously correct numpy twin of `_book_kernel`.

    greeks (N, A, 3) (delta in units, gamma per USD); price, vol, velocity (A,); correlation (A, A); horizon
    years > 0. delta_notional = Δ·S, gamma_dollar = Γ·S², then `loss_volatility` (delta-gamma) and
    `equity_drift`.
    """
    delta_notional = greeks[:, :, 0] * price
    gamma_dollar = greeks[:, :, 1] * price**2
    loss_vol = loss_volatility(delta_notional, vol, correlation, gamma_dollar, horizon=horizon)
    return loss_vol, equity_drift(delta_notional, velocity)


@jit(parallel=True)
def _book_kernel(
    offsets: NDArray[np.int64],
    asset: NDArray[np.int64],
    greeks: FloatArray,
    price: FloatArray,
    vol: FloatArray,
    correlation: FloatArray,
    horizon: float,
    velocity: FloatArray,
    loss_vol: FloatArray,
    drift: FloatArray,
) -> None:
    """`book_moments` in one pass over the Greeks on the held rows (greeks (H, 3), rows offsets[n]..offsets[n+1]
    of account n on assets `asset`, ascending), accounts in parallel, skipping the rows that are flat.

    With y_a = Δ_a S_a σ_a and q_a = Γ_a S_a² σ_a² over the held assets, variance =
    Σ_i y_i (y_i + 2 Σ_{j<i} C_ij y_j) + ½ h Σ_i q_i (q_i + 2 Σ_{j<i} C_ij² q_j) (C symmetric, unit diagonal);
    loss_vol = sqrt(max(variance, 0)); drift = Σ_a Δ_a S_a v_a. A non-finite Greek gives a non-finite result.
    """
    n_accounts = offsets.shape[0] - 1
    longest = 0
    for n in range(n_accounts):
        longest = max(longest, offsets[n + 1] - offsets[n])
    chunk = 2048
    n_chunks = (n_accounts + chunk - 1) // chunk
    half_h = 0.5 * horizon
    for c in prange(n_chunks):
        held = np.empty(longest, dtype=np.int64)
        y = np.empty(longest)
        q = np.empty(longest)
        for n in range(c * chunk, min((c + 1) * chunk, n_accounts)):
            k = 0
            mu = 0.0
            for h in range(offsets[n], offsets[n + 1]):
                a = asset[h]
                delta = greeks[h, 0]
                gamma = greeks[h, 1]
                if delta != 0.0 or gamma != 0.0:  # NaN != 0: kept, and poisons the result
                    x = delta * price[a]
                    mu += x * velocity[a]
                    held[k] = a
                    y[k] = x * vol[a]
                    q[k] = gamma * price[a] * price[a] * vol[a] * vol[a]
                    k += 1
            linear = 0.0
            quadratic = 0.0
            for i in range(k):
                row = held[i]
                cross_y = 0.0
                cross_q = 0.0
                for j in range(i):
                    rho = correlation[row, held[j]]
                    cross_y += rho * y[j]
                    cross_q += rho * rho * q[j]
                linear += y[i] * (y[i] + 2.0 * cross_y)
                quadratic += q[i] * (q[i] + 2.0 * cross_q)
            variance = linear + half_h * quadratic
            if variance > 0.0:
                loss_vol[n] = math.sqrt(variance)
            elif variance <= 0.0:
                loss_vol[n] = 0.0  # a flat book, or negative round-off
            else:
                loss_vol[n] = variance  # NaN from a NaN Greek: passed on, refused by the caller
            drift[n] = mu


def _check_correlation(correlation: FloatArray, n_assets: int) -> None:
    if correlation.shape != (n_assets, n_assets):
        raise ValueError(f"correlation must be ({n_assets}, {n_assets}), got {correlation.shape}")
    if not np.array_equal(correlation, correlation.T):
        raise ValueError("correlation must be symmetric")
    if (np.diag(correlation) != 1.0).any() or (np.abs(correlation) > 1.0).any():
        raise ValueError("correlation must have a unit diagonal and entries in [-1, 1]")


def account_breach(
    greeks: ArrayLike,
    price: ArrayLike,
    vol: ArrayLike,
    correlation: ArrayLike,
    equity: ArrayLike,
    mm: ArrayLike,
    params: PredictiveParams,
    velocity: ArrayLike | None = None,
) -> Breach:
    """Breach probability and early flag of N accounts within h = `params.horizon_seconds` / SECONDS_PER_YEAR.

    greeks (N, A, 3): `MarginResult.greeks` (delta in units of the asset, gamma per USD; vega unused);
    price (A,) USD and vol (A,) annualised: `MarketState.price`, `.vol`; correlation (A, A): symmetric, unit
    diagonal (`scenario_correlation`); equity, mm (N,) USD; velocity (A,) log return per year
    (`VelocityTracker.velocity`, NaN read as 0) or None.

    loss_vol = `loss_volatility`(Δ·S, vol, C, Γ·S², h) (delta-gamma); drift = `equity_drift`(Δ·S, velocity)
    when a velocity is given and `params.use_drift`, else 0; probability = `breach_probability`(equity, mm,
    loss_vol, h, drift); flagged = `early_trigger`(probability, params.threshold) where equity >= MM (below MM
    an account is liquidatable, not early); time_to_breach_seconds = `time_to_breach` x SECONDS_PER_YEAR.
    The loss volatility and drift come from one compiled pass (`_book_kernel`, twin `book_moments`).
    Inputs must be finite (velocity: finite or NaN); ValueError names the first bad value.
    """
    g = np.ascontiguousarray(greeks, dtype=np.float64)
    if g.ndim != 3 or g.shape[2] != 3:
        raise ValueError(f"greeks must be (N, A, 3), got {g.shape}")
    n_accounts, n_assets = g.shape[0], g.shape[1]
    s = _floats("price", price)
    sigma = _floats("vol", vol)
    _non_negative("vol", sigma)
    corr = np.ascontiguousarray(_floats("correlation", correlation))
    e = _floats("equity", equity)
    level = _floats("mm", mm)
    if s.shape != (n_assets,) or sigma.shape != (n_assets,) or e.shape != (n_accounts,) or level.shape != e.shape:
        raise ValueError(
            f"shapes must be price, vol ({n_assets},) and equity, mm ({n_accounts},); "
            f"got {s.shape}, {sigma.shape}, {e.shape}, {level.shape}"
        )
    _check_correlation(corr, n_assets)
    v = None
    if velocity is not None and params.use_drift:
        v = np.asarray(velocity, dtype=np.float64)
        if v.shape != (n_assets,):
            raise ValueError(f"velocity must be ({n_assets},), got {v.shape}")
    loss_vol, drift, probability, flagged = book_breach(g, s, sigma, corr, e, level, params, v)
    seconds = time_to_breach(e, level, drift) * SECONDS_PER_YEAR
    return Breach(loss_vol, drift, probability, flagged, seconds)


def book_breach(
    greeks: FloatArray,
    price: FloatArray,
    vol: FloatArray,
    correlation: FloatArray,
    equity: FloatArray,
    mm: FloatArray,
    params: PredictiveParams,
    velocity: FloatArray | None = None,
    held: HeldAssets | None = None,
) -> tuple[FloatArray, FloatArray, FloatArray, BoolArray]:
    """(loss_vol, drift, probability, flagged) of `account_breach` for the margin engine's own arrays, whose
    shapes and correlation it built (`MarginResult.greeks` (N, A, 3), or with `held` the Greeks on its rows
    (H, 3), `MarginResult.held_greeks`, a `MarketState`'s prices and vols, a `RiskContext`'s
    correlation): the same figures to the bit without the shape and correlation checks and the time to breach,
    which cost more than the figures on the small books of a streaming cycle (`account_breach` checks, then
    calls this). Equity, MM, the velocity (NaN read as 0) and the resulting moments are still checked for NaN
    and infinities (ValueError, as `account_breach`)."""
    e = _floats("equity", equity)
    level = _floats("mm", mm)
    v = np.zeros(price.shape[0])
    if velocity is not None and params.use_drift:
        v = _floats("velocity", np.where(np.isnan(velocity), 0.0, velocity))
    g = np.ascontiguousarray(greeks, dtype=np.float64)
    if held is None:
        held = every_asset(g.shape[0], price.shape[0])
        g = g.reshape(-1, 3)
    h = params.horizon_seconds / SECONDS_PER_YEAR
    loss_vol = np.empty(held.n_accounts)
    drift = np.empty(held.n_accounts)
    _book_kernel(held.offsets, held.asset, g, price, vol, np.ascontiguousarray(correlation), h, v, loss_vol, drift)
    bad = ~(np.isfinite(loss_vol) & np.isfinite(drift))
    if bad.any():
        n = int(np.argmax(bad))
        rows = g[held.offsets[n] : held.offsets[n + 1], :2].tolist()
        raise ValueError(f"account {n}: greeks {rows} give a non-finite loss volatility or drift")
    probability = _probability(e - level, loss_vol, h, drift)
    flagged = early_trigger(probability, params.threshold) & (e >= level)
    return loss_vol, drift, probability, flagged


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


class VelocityTracker:
    """The streaming form of `velocity_path` for A assets at once (the deterministic streaming engine's state).

    Per asset a (arrays (A,)): the EWMA accumulators R_a (decayed log returns), D_a (decayed elapsed time,
    years) and Q_a (decayed squared log returns), the last price and the last tick time (years); NaN last
    price and time until the asset's first tick. `update` folds ticks in with the recursion of
    `velocity_path` (the first tick of an asset only records its price; a tick with no elapsed time still adds
    its return and its square), so after the same ticks `velocity` and `volatility` equal `velocity_path`'s
    last values. `halflife` is in years (`PredictiveParams.halflife_seconds / SECONDS_PER_YEAR`, see
    `for_params`).

    `velocity` and `volatility` are NaN for an asset with no elapsed time yet (no tick, one tick, or ticks all
    at one time): velocity undefined. Consumers read NaN as 0 velocity (no drift) and 0 fast volatility
    (`account_breach` does so for `velocity`). `state()` and `from_state` save and reload the tracker bit for
    bit. Mutable on purpose (it is the engine's state); every `update` validates the whole batch first and
    changes nothing if a tick is bad.
    """

    _KEYS = ("halflife", "returns", "elapsed", "squares", "last_price", "last_time")

    def __init__(self, n_assets: int, halflife: float) -> None:
        if n_assets < 0:
            raise ValueError(f"n_assets must be >= 0, got {n_assets!r}")
        if not (math.isfinite(halflife) and halflife > 0.0):
            raise ValueError(f"halflife must be finite and > 0 (years), got {halflife!r}")
        self._halflife = float(halflife)
        self._lam = math.log(2.0) / self._halflife
        self._returns = np.zeros(n_assets)
        self._elapsed = np.zeros(n_assets)
        self._squares = np.zeros(n_assets)
        self._last_price = np.full(n_assets, np.nan)
        self._last_time = np.full(n_assets, np.nan)

    @classmethod
    def for_params(cls, n_assets: int, params: PredictiveParams) -> VelocityTracker:
        """An empty tracker with the half-life of `params` (seconds, converted to years)."""
        return cls(n_assets, params.halflife_seconds / SECONDS_PER_YEAR)

    @property
    def n_assets(self) -> int:
        """A."""
        return int(self._returns.size)

    @property
    def halflife(self) -> float:
        """The EWMA half-life, years."""
        return self._halflife

    def update(self, asset_indices: ArrayLike, times_years: ArrayLike, prices: ArrayLike) -> None:
        """Fold in K ticks, in the order given: asset_indices (K,) in [0, A), times_years (K,), prices (K,) > 0.

        Ticks of one asset must come in time order, at or after that asset's last tick (ticks of different
        assets may interleave in any order). ValueError, naming the first bad tick, leaves the state unchanged.
        """
        asset = np.asarray(asset_indices)
        if asset.size == 0:
            asset = asset.astype(np.int64)
        if asset.dtype.kind not in "iu":
            raise ValueError(f"asset_indices must be integers, got {asset.dtype}")
        asset = asset.astype(np.int64)
        t = _floats("times_years", times_years)
        p = _floats("prices", prices)
        if asset.ndim != 1 or t.shape != asset.shape or p.shape != asset.shape:
            raise ValueError(
                f"asset_indices, times_years and prices must be (K,), got {asset.shape}, {t.shape}, {p.shape}"
            )
        if (p <= 0.0).any():
            raise ValueError(f"prices must be > 0, got {p[p <= 0.0][0]!r}")
        self.fold(asset, t, p)

    def fold(self, asset_indices: NDArray[np.int64], times_years: FloatArray, prices: FloatArray) -> None:
        """`update` for (K,) int64 assets, float64 times and prices known finite and > 0 (the streaming engine's
        own prices, once per batch): only the assets' range and the times' order are checked (ValueError, as
        `update`)."""
        bad = int(_first_bad_tick(asset_indices, times_years, self._last_time))
        if bad >= 0:
            a = int(asset_indices[bad])
            if not 0 <= a < self.n_assets:
                raise ValueError(f"tick {bad}: asset index {a} is not in [0, {self.n_assets})")
            t = float(times_years[bad])
            raise ValueError(f"tick {bad}: time {t!r} of asset {a} is before that asset's previous tick")
        _tracker_update(
            asset_indices,
            times_years,
            prices,
            self._lam,
            self._returns,
            self._elapsed,
            self._squares,
            self._last_price,
            self._last_time,
        )

    @property
    def velocity(self) -> FloatArray:
        """(A,) log return per year, signed: R / D; NaN where D = 0 (read as 0 by consumers)."""
        return self.rates()[0]

    @property
    def volatility(self) -> FloatArray:
        """(A,) fast volatility per sqrt(year): sqrt(Q / D); NaN where D = 0 (read as 0 by consumers)."""
        return self.rates()[1]

    def rates(self) -> tuple[FloatArray, FloatArray]:
        """(velocity, volatility), both in one pass."""
        velocity, volatility = np.empty(self.n_assets), np.empty(self.n_assets)
        _rates(self._returns, self._elapsed, self._squares, velocity, volatility)
        return velocity, volatility

    def state(self) -> dict[str, FloatArray]:
        """Copies of the state as plain float64 arrays: halflife (0-d, years), returns, elapsed, squares,
        last_price, last_time (each (A,)). `from_state` of it is the same tracker, bit for bit."""
        return {
            "halflife": np.array(self._halflife),
            "returns": self._returns.copy(),
            "elapsed": self._elapsed.copy(),
            "squares": self._squares.copy(),
            "last_price": self._last_price.copy(),
            "last_time": self._last_time.copy(),
        }

    @classmethod
    def from_state(cls, state: Mapping[str, ArrayLike]) -> VelocityTracker:
        """The tracker `state()` described (exactly its keys; values copied, bits kept). ValueError on a state
        no sequence of updates can produce: wrong keys or shapes, R, D, Q not finite or D, Q < 0, a last price
        that is neither NaN (no tick yet, with NaN time and zero accumulators) nor finite and > 0."""
        if set(state) != set(cls._KEYS):
            raise ValueError(f"state must have exactly the keys {sorted(cls._KEYS)}, got {sorted(state)}")
        halflife = np.asarray(state["halflife"], dtype=np.float64)
        if halflife.shape != ():
            raise ValueError(f"state halflife must be a scalar, got shape {halflife.shape}")
        arrays = {key: np.array(state[key], dtype=np.float64) for key in cls._KEYS[1:]}
        shape = arrays["returns"].shape
        if len(shape) != 1 or any(a.shape != shape for a in arrays.values()):
            raise ValueError(f"state arrays must all be (A,), got {[a.shape for a in arrays.values()]}")
        for key in ("returns", "elapsed", "squares"):
            _floats(f"state {key}", arrays[key])
        _non_negative("state elapsed", arrays["elapsed"])
        _non_negative("state squares", arrays["squares"])
        unseen = np.isnan(arrays["last_price"])
        if not np.array_equal(unseen, np.isnan(arrays["last_time"])):
            raise ValueError("state last_price and last_time must be NaN for the same assets (no tick yet)")
        _floats("state last_price", arrays["last_price"][~unseen])
        _floats("state last_time", arrays["last_time"][~unseen])
        if (arrays["last_price"][~unseen] <= 0.0).any():
            raise ValueError(f"state last_price must be > 0, got {arrays['last_price'][~unseen].min()!r}")
        if any((arrays[key][unseen] != 0.0).any() for key in ("returns", "elapsed", "squares")):
            raise ValueError("state accumulators must be 0 for an asset with no tick yet")
        tracker = cls(shape[0], float(halflife))
        tracker._returns = arrays["returns"]
        tracker._elapsed = arrays["elapsed"]
        tracker._squares = arrays["squares"]
        tracker._last_price = arrays["last_price"]
        tracker._last_time = arrays["last_time"]
        return tracker


@jit()
def _rates(
    returns: FloatArray, elapsed: FloatArray, squares: FloatArray, velocity: FloatArray, volatility: FloatArray
) -> None:  # pragma: no cover - compiled
    """R / D and sqrt(Q / D) per asset, NaN where D = 0."""
    for a in range(returns.shape[0]):
        if elapsed[a] > 0.0:
            velocity[a] = returns[a] / elapsed[a]
            volatility[a] = math.sqrt(squares[a] / elapsed[a])
        else:
            velocity[a] = volatility[a] = math.nan


@jit()
def _first_bad_tick(asset: NDArray[np.int64], times: FloatArray, last_time: FloatArray) -> int:
    """Index of the first tick with an asset outside [0, A) or a time before its asset's previous tick; -1."""
    seen = last_time.copy()
    for i in range(asset.size):
        a = asset[i]
        if a < 0 or a >= seen.size or times[i] < seen[a]:  # NaN (no tick yet) compares False
            return i
        seen[a] = times[i]
    return -1


@jit()
def _tracker_update(
    asset: NDArray[np.int64],
    times: FloatArray,
    prices: FloatArray,
    lam: float,
    returns: FloatArray,
    elapsed: FloatArray,
    squares: FloatArray,
    last_price: FloatArray,
    last_time: FloatArray,
) -> None:
    """In place, tick by tick: the recursion of `_velocity_recursion` per asset (same operations, same order)."""
    for i in range(asset.size):
        a = asset[i]
        if last_price[a] > 0.0:  # NaN before the asset's first tick
            dt = times[i] - last_time[a]
            r = math.log(prices[i] / last_price[a])
            decay = math.exp(-lam * dt)
            returns[a] = decay * returns[a] + r
            elapsed[a] = decay * elapsed[a] + dt
            squares[a] = decay * squares[a] + r * r
        last_price[a] = prices[i]
        last_time[a] = times[i]
