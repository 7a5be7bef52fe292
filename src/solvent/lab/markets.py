"""Synthetic markets for the stress lab: GARCH-t diffusion, compound-Poisson jumps, two correlation regimes
and an order book that thins as volatility rises.

Per asset a, per step t (log returns; every parameter is stated per day and scaled to the step):

    r[t, a] = sqrt(h[t, a]) * e[t, a] + J[t, a]
    h[t+1, a] = omega_s + alpha_s * r[t, a]**2 + beta_s * h[t, a]

- e: standardised Student-t innovations (unit variance, the asset's `dof`), joined by a Gaussian copula whose
  correlation is the current regime's (as `solvent.market.synthetic`, whose `student_t_innovations` draws them);
- J: compound-Poisson jumps in the log price. Idiosyncratic events arrive at `jump_intensity` per day and
  asset, common events (hitting every asset at once) at `common_jump_intensity` per day; each event moves an
  asset by `jump_mean + jump_std * z` (z standard normal, one z shared by all assets at a common event, so a
  common crash moves them together). The recursion is driven by the whole return, jump included: a crash
  lifts the volatility that follows it, and so thins the book;
- regime: a two-state Markov chain (0 calm, 1 stress) with daily switching probabilities
  `p_calm_to_stress` and `p_stress_to_calm`; each regime has its own copula correlation;
- depth: the scale of the order book relative to the snapshot's,
  clip((sigma_ref / sigma_t) ** depth_elasticity, depth_floor, depth_cap), sigma_t the current conditional
  volatility, sigma_ref the asset's unconditional diffusive one (scale 1 there, at most depth_cap below it).

Steps shorter than a day (step = h days, h = step_seconds / 86400 <= 1) scale the daily parameters so that
for h = 1 nothing changes:
  - the unconditional diffusive variance per step is the daily one times h (omega_s = V * h * (1 - phi_s),
    V = omega / (1 - alpha - beta));
  - the variance forecast decays at the same rate per unit time: persistence phi_s = (alpha + beta) ** h;
  - alpha_s = alpha * h and beta_s = phi_s - alpha_s (>= beta): in daily units (n = 1/h steps times the
    per-step variance) a return r lifts the variance by alpha * r**2, exactly as in the daily model, so a
    jump moves the volatility as much whatever the step; over a day the variance responds to the day's
    realised variance (the sum of its squared step returns) as the daily model responds to the day's squared
    return. The price: diffusive volatility-of-volatility within a day is smoothed away (the realised
    variance of many small steps is close to its expectation), and vol moves intraday come from jumps.
    (Nelson's diffusion scaling alpha * sqrt(h) was rejected: a jump of size J would lift the daily variance
    by alpha * J**2 / sqrt(h), 294 times the daily model's response at one-second steps.)
  - jump intensities per step are the daily ones times h; jump sizes are unchanged (a jump is a jump);
  - the regime transition matrix per step is the daily one to the power h:
    p01_s = p01 * (1 - (1 - p01 - p10) ** h) / (p01 + p10), likewise p10_s (hence p01 + p10 < 1).

`simulate` is reproducible bit for bit: `numpy.random.SeedSequence(seed)` spawns four PCG64 streams, one
each for the regime path, the diffusive shocks, the idiosyncratic jumps and the common jumps, so switching
jumps off leaves the diffusive shocks unchanged.

`fit` estimates a model from daily closes by simple, documented rules (docs/model.md, "Synthetic markets").
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Annotated, Final

import msgspec
import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.special import gammaln, stdtr

from solvent.errors import ModelError
from solvent.market.history import PriceHistory
from solvent.market.synthetic import DOF_BOUNDS, normal_scores, student_t_innovations
from solvent.market.volatility import GarchParams, fit_garch, garch_variance
from solvent.stream.feed import DepthChange, FeedRecord, Quote

FloatArray = NDArray[np.float64]

SECONDS_PER_DAY: Final = 86_400.0
DAYS_PER_YEAR: Final = 365.0
#: A return whose size exceeds this many conditional standard deviations is counted as a jump by `fit`.
JUMP_THRESHOLD_SIGMAS: Final = 4.0
#: Quantile of the cross-asset volatility level that separates `fit`'s calm days from its stressed days.
STRESS_QUANTILE: Final = 0.5
#: Depth elasticity to volatility: depth ~ 1 / sigma, Kyle's (1985) price impact proportional to volatility
#: at a fixed order flow. A judgement default, not fitted (the price files hold no depth).
DEPTH_ELASTICITY: Final = 1.0
#: Thinnest book, relative to the snapshot's: a crash can take 90% of the depth away, not all of it.
DEPTH_FLOOR: Final = 0.1
#: Deepest book, relative to the snapshot's: quiet markets do not deepen the book beyond it.
DEPTH_CAP: Final = 1.0
#: Least share of the fitted GARCH omega that `fit` keeps after moving the jumps' variance out of it.
MIN_OMEGA_SHARE: Final = 0.1
#: Fewest joint days `fit` needs in each of the calm and stressed halves to estimate their correlations.
MIN_REGIME_DAYS: Final = 30
#: Largest gap allowed between a correlation matrix and its transpose, and below zero for its eigenvalues.
_MATRIX_TOL: Final = 1e-10

Positive = Annotated[float, msgspec.Meta(gt=0.0)]
NonNegative = Annotated[float, msgspec.Meta(ge=0.0)]
Probability = Annotated[float, msgspec.Meta(ge=0.0, le=1.0)]
Matrix = tuple[tuple[float, ...], ...]


class AssetDynamics(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """One asset's daily dynamics: GARCH(1,1) (omega in squared log-return units per day), Student-t dof,
    idiosyncratic jumps per day and the normal distribution of a jump's log size."""

    name: Annotated[str, msgspec.Meta(min_length=1, max_length=128)]
    omega: Positive
    alpha: NonNegative
    beta: NonNegative
    dof: Annotated[float, msgspec.Meta(gt=2.0)]
    jump_intensity: NonNegative = 0.0
    jump_mean: float = 0.0
    jump_std: NonNegative = 0.0

    def __post_init__(self) -> None:
        values = (self.omega, self.alpha, self.beta, self.dof, self.jump_intensity, self.jump_mean, self.jump_std)
        if not all(math.isfinite(v) for v in values):
            raise ValueError(f"{self.name}: parameters must be finite, got {values}")
        if self.omega <= 0.0 or self.alpha < 0.0 or self.beta < 0.0 or self.dof <= 2.0:
            raise ValueError(f"{self.name}: needs omega > 0, alpha >= 0, beta >= 0, dof > 2, got {values[:4]}")
        if self.jump_intensity < 0.0 or self.jump_std < 0.0:
            raise ValueError(f"{self.name}: jump intensity and std must be >= 0, got {values[4:]}")
        if self.alpha + self.beta >= 1.0:
            raise ValueError(f"{self.name}: alpha + beta must be < 1, got {self.alpha + self.beta}")

    @property
    def garch(self) -> GarchParams:
        """The daily diffusive variance process."""
        return GarchParams(omega=self.omega, alpha=self.alpha, beta=self.beta)


def _check_correlation(name: str, matrix: Matrix, n: int) -> None:
    c = np.array(matrix, dtype=np.float64)
    if c.shape != (n, n):
        raise ValueError(f"{name}: must be {n} x {n}, got {c.shape}")
    if not np.all(np.isfinite(c)) or not np.allclose(c, c.T, rtol=0.0, atol=_MATRIX_TOL):
        raise ValueError(f"{name}: must be finite and symmetric, got {matrix}")
    if not np.all(np.diag(c) == 1.0) or np.any(np.abs(c) > 1.0):
        raise ValueError(f"{name}: needs a unit diagonal and entries in [-1, 1], got {matrix}")
    smallest = float(np.linalg.eigvalsh(c)[0])
    if smallest < -_MATRIX_TOL:
        raise ValueError(f"{name}: must be positive semi-definite, smallest eigenvalue {smallest}")


class MarketModel(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Frozen parameters of a synthetic market (module docstring). Probabilities and intensities are per day."""

    assets: tuple[AssetDynamics, ...]
    calm_correlation: Matrix
    stress_correlation: Matrix
    p_calm_to_stress: Probability = 0.0
    p_stress_to_calm: Probability = 1.0
    common_jump_intensity: NonNegative = 0.0
    depth_elasticity: NonNegative = DEPTH_ELASTICITY
    depth_floor: Annotated[float, msgspec.Meta(gt=0.0, le=1.0)] = DEPTH_FLOOR
    depth_cap: Positive = DEPTH_CAP

    def __post_init__(self) -> None:
        names = [a.name for a in self.assets]
        if not names or len(set(names)) != len(names):
            raise ValueError(f"assets: names must be present and unique, got {names}")
        _check_correlation("calm_correlation", self.calm_correlation, len(names))
        _check_correlation("stress_correlation", self.stress_correlation, len(names))
        p01, p10 = self.p_calm_to_stress, self.p_stress_to_calm
        if not (0.0 <= p01 <= 1.0 and 0.0 <= p10 <= 1.0):
            raise ValueError(f"switching probabilities must be in [0, 1], got {p01}, {p10}")
        if p01 + p10 >= 1.0 and p01 > 0.0:
            raise ValueError(f"p_calm_to_stress + p_stress_to_calm must be < 1 (regimes that persist), got {p01 + p10}")
        if not (math.isfinite(self.common_jump_intensity) and self.common_jump_intensity >= 0.0):
            raise ValueError(f"common_jump_intensity must be >= 0, got {self.common_jump_intensity}")
        if not (math.isfinite(self.depth_elasticity) and self.depth_elasticity >= 0.0):
            raise ValueError(f"depth_elasticity must be >= 0, got {self.depth_elasticity}")
        if not (0.0 < self.depth_floor <= 1.0 and self.depth_floor <= self.depth_cap < math.inf):
            raise ValueError(
                f"needs 0 < depth_floor <= 1 and depth_floor <= depth_cap, got {self.depth_floor}, {self.depth_cap}"
            )

    @property
    def names(self) -> tuple[str, ...]:
        """Asset names, in column order."""
        return tuple(a.name for a in self.assets)

    def transition_matrix(self, step_seconds: float = SECONDS_PER_DAY) -> FloatArray:
        """The regime transition matrix per step, (2, 2): rows from (calm, stress), columns to.

        The daily matrix to the power h = step_seconds / 86400 (see the module docstring). With
        p_calm_to_stress = 0 the chain never leaves calm (and a stress start moves to calm at p_stress_to_calm).
        """
        h = _step_days(step_seconds)
        p01, p10 = self.p_calm_to_stress, self.p_stress_to_calm
        total = p01 + p10
        if total == 0.0:
            a = b = 0.0
        elif p01 == 0.0:
            a, b = 0.0, 1.0 - (1.0 - p10) ** h
        else:
            decay = 1.0 - (1.0 - total) ** h
            a, b = p01 * decay / total, p10 * decay / total
        return np.array([[1.0 - a, a], [b, 1.0 - b]])

    def stationary_stress_probability(self) -> float:
        """Long-run share of time in stress, p01 / (p01 + p10) (0 when the chain never enters stress)."""
        total = self.p_calm_to_stress + self.p_stress_to_calm
        return 0.0 if self.p_calm_to_stress == 0.0 else self.p_calm_to_stress / total


@dataclass(frozen=True)
class StepDynamics:
    """The daily parameters scaled to one step of h days, as arrays over assets (A,)."""

    omega: FloatArray
    alpha: FloatArray
    beta: FloatArray
    jump_rate: FloatArray
    common_jump_rate: float
    unconditional: FloatArray


def _step_days(step_seconds: float) -> float:
    if not (math.isfinite(step_seconds) and 0.0 < step_seconds <= SECONDS_PER_DAY):
        raise ValueError(f"step_seconds must be in (0, 86400], got {step_seconds}")
    return step_seconds / SECONDS_PER_DAY


def step_dynamics(model: MarketModel, step_seconds: float) -> StepDynamics:
    """The GARCH and jump parameters per step of `step_seconds` (module docstring: identical for a day)."""
    h = _step_days(step_seconds)
    alpha = np.array([a.alpha for a in model.assets])
    beta = np.array([a.beta for a in model.assets])
    omega = np.array([a.omega for a in model.assets])
    persistence = alpha + beta
    daily = omega / (1.0 - persistence)
    if h == 1.0:
        return StepDynamics(
            omega=omega,
            alpha=alpha,
            beta=beta,
            jump_rate=np.array([a.jump_intensity for a in model.assets]),
            common_jump_rate=model.common_jump_intensity,
            unconditional=daily,
        )
    phi = persistence**h
    alpha_s = alpha * h
    beta_s = phi - alpha_s  # >= beta >= 0, as phi**h >= phi and alpha * h <= alpha
    unconditional = daily * h
    return StepDynamics(
        omega=unconditional * (1.0 - phi),
        alpha=alpha_s,
        beta=beta_s,
        jump_rate=np.array([a.jump_intensity for a in model.assets]) * h,
        common_jump_rate=model.common_jump_intensity * h,
        unconditional=unconditional,
    )


def depth_scale(sigma: FloatArray, sigma_ref: FloatArray, elasticity: float, floor: float, cap: float) -> FloatArray:
    """clip((sigma_ref / sigma) ** elasticity, floor, cap): the book's scale, non-increasing in sigma.

    sigma: (..., A) current volatilities, sigma_ref: (A,) reference ones, in the same units (any).
    """
    ratio = np.asarray(sigma_ref, dtype=np.float64) / np.asarray(sigma, dtype=np.float64)
    return np.asarray(np.clip(ratio**elasticity, floor, cap), dtype=np.float64)


@dataclass(frozen=True, eq=False)
class SimulatedMarket:
    """A simulated path: T = n_steps + 1 rows, row 0 the start; everything in row t is known at time t.

    times (T,): seconds from the start; prices (T, A); vol (T, A): the annualised conditional volatility of
    the *next* step's diffusive return (so a jump at step t lifts vol[t]); depth_scale (T, A): the book's
    scale relative to the snapshot's at vol[t]; regime (T,): 0 calm, 1 stress, the regime of the next step;
    jumps (T, A): the jump part of the log return of the step ending at row t (row 0 zero).
    """

    assets: tuple[str, ...]
    step_seconds: float
    times: FloatArray
    prices: FloatArray
    vol: FloatArray
    depth_scale: FloatArray
    regime: NDArray[np.int8]
    jumps: FloatArray

    @property
    def periods_per_year(self) -> float:
        """Steps per (365-day) year, the annualisation factor of `vol`."""
        return DAYS_PER_YEAR * SECONDS_PER_DAY / self.step_seconds

    def log_returns(self) -> FloatArray:
        """(T - 1, A) log returns of the steps."""
        return np.asarray(np.diff(np.log(self.prices), axis=0), dtype=np.float64)


def _factor(matrix: Matrix) -> FloatArray:
    """A square root L of a PSD correlation matrix, L @ L.T = C (Cholesky; eigen-decomposition if singular)."""
    c = np.array(matrix, dtype=np.float64)
    try:
        return np.asarray(np.linalg.cholesky(c), dtype=np.float64)
    except np.linalg.LinAlgError:
        values, vectors = np.linalg.eigh(c)
        return np.asarray(vectors * np.sqrt(np.maximum(values, 0.0)), dtype=np.float64)


def regime_path(transition: FloatArray, start: int, uniforms: FloatArray) -> NDArray[np.int8]:
    """(len(uniforms) + 1,) regimes: path[0] = start, path[t+1] switches when uniforms[t] < P[path[t], 1-path[t]]."""
    switch = (float(transition[0, 1]), float(transition[1, 0]))
    path = np.empty(uniforms.shape[0] + 1, dtype=np.int8)
    state = int(start)
    path[0] = state
    for t, u in enumerate(uniforms.tolist()):
        if u < switch[state]:
            state = 1 - state
        path[t + 1] = state
    return path


def simulate(
    model: MarketModel,
    n_steps: int,
    step_seconds: float,
    seed: int,
    start_prices: ArrayLike,
    *,
    start_regime: int | None = None,
) -> SimulatedMarket:
    """Simulate `n_steps` steps of `step_seconds` from `start_prices` (A,), in the model's asset order.

    The variance starts at its unconditional diffusive level per step; the regime starts at `start_regime`
    (0 calm, 1 stress) or, by default, is drawn from the chain's stationary distribution. Same arguments,
    same path, bit for bit.
    """
    if n_steps < 0:
        raise ValueError(f"n_steps must be >= 0, got {n_steps}")
    if start_regime not in (None, 0, 1):
        raise ValueError(f"start_regime must be 0, 1 or None, got {start_regime}")
    n_assets = len(model.assets)
    p0 = np.asarray(start_prices, dtype=np.float64)
    if p0.shape != (n_assets,) or not np.all(np.isfinite(p0) & (p0 > 0.0)):
        raise ValueError(f"start_prices must be {n_assets} positive finite prices, got {p0}")
    dyn = step_dynamics(model, step_seconds)
    regime_rng, shock_rng, jump_rng, common_rng = (
        np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(4)
    )

    first = regime_rng.random()
    start = (int(first < model.stationary_stress_probability())) if start_regime is None else start_regime
    regime = regime_path(model.transition_matrix(step_seconds), start, regime_rng.random(n_steps))

    z = shock_rng.standard_normal((n_steps, n_assets))
    step_regime = regime[:-1, np.newaxis]
    normals = np.where(step_regime == 0, z @ _factor(model.calm_correlation).T, z @ _factor(model.stress_correlation).T)
    shocks = student_t_innovations(normals, np.array([a.dof for a in model.assets]))

    mean = np.array([a.jump_mean for a in model.assets])
    std = np.array([a.jump_std for a in model.assets])
    count = jump_rng.poisson(dyn.jump_rate, (n_steps, n_assets))
    jumps = count * mean + np.sqrt(count) * std * jump_rng.standard_normal((n_steps, n_assets))
    common = common_rng.poisson(dyn.common_jump_rate, n_steps)[:, np.newaxis]
    jumps += common * mean + np.sqrt(common) * std * common_rng.standard_normal(n_steps)[:, np.newaxis]

    returns, variance = garch_jump_path(shocks, jumps, dyn.omega, dyn.alpha, dyn.beta, dyn.unconditional)
    log_path = np.vstack([np.zeros((1, n_assets)), np.cumsum(returns, axis=0)])
    sigma = np.sqrt(variance)
    return SimulatedMarket(
        assets=model.names,
        step_seconds=float(step_seconds),
        times=np.arange(n_steps + 1, dtype=np.float64) * float(step_seconds),
        prices=p0 * np.exp(log_path),
        vol=sigma * math.sqrt(DAYS_PER_YEAR * SECONDS_PER_DAY / step_seconds),
        depth_scale=depth_scale(
            sigma, np.sqrt(dyn.unconditional), model.depth_elasticity, model.depth_floor, model.depth_cap
        ),
        regime=regime,
        jumps=np.vstack([np.zeros((1, n_assets)), jumps]),
    )


def garch_jump_path(
    shocks: FloatArray,
    jumps: FloatArray,
    omega: FloatArray,
    alpha: FloatArray,
    beta: FloatArray,
    start_variance: FloatArray,
) -> tuple[FloatArray, FloatArray]:
    """Returns (n, A) and variances (n + 1, A) of the GARCH-with-jumps recursion, variances[0] = start.

    r[t] = sqrt(v[t]) * shocks[t] + jumps[t]; v[t+1] = omega + alpha * r[t]**2 + beta * v[t]. The recursion
    is sequential in t; each step is vectorised over the A assets.
    """
    n, n_assets = shocks.shape
    returns = np.empty((n, n_assets))
    variance = np.empty((n + 1, n_assets))
    v = np.array(start_variance, dtype=np.float64)
    variance[0] = v
    for t in range(n):
        r = np.sqrt(v) * shocks[t] + jumps[t]
        returns[t] = r
        v = omega + alpha * (r * r) + beta * v
        variance[t + 1] = v
    return returns, variance


# ----------------------------------------------------------------------------------------------- feed


def to_feed(
    market: SimulatedMarket,
    start_time: datetime,
    asset_names: Sequence[str],
    *,
    first_seq: int = 0,
    depth_step: float = 0.01,
) -> list[FeedRecord]:
    """Feed records replaying `market` from `start_time` (the time of row 0, the snapshot's).

    For every step t >= 1, at start_time + times[t]: a `Quote` per asset (its price, no source), then a
    `DepthChange` for each asset whose depth scale has moved by at least `depth_step` from the last one
    sent (initially 1.0, the snapshot's book). `asset_names` renames the market's columns in order (the
    venue's assets). Sequence numbers run from `first_seq`.
    """
    names = tuple(asset_names)
    if len(names) != len(market.assets):
        raise ValueError(f"asset_names: need {len(market.assets)} names, got {names}")
    if start_time.tzinfo is None:
        raise ValueError("start_time must carry a time zone")
    if not depth_step >= 0.0:
        raise ValueError(f"depth_step must be >= 0, got {depth_step}")
    records: list[FeedRecord] = []
    sent = np.ones(len(names))
    prices = market.prices.tolist()
    depth = market.depth_scale.tolist()
    seq = first_seq
    for t in range(1, market.times.shape[0]):
        when = start_time + timedelta(seconds=float(market.times[t]))
        for name, price in zip(names, prices[t], strict=True):
            records.append(Quote(seq=seq, time=when, asset=name, price=price))
            seq += 1
        row = depth[t]
        for j, name in enumerate(names):
            if abs(row[j] - sent[j]) >= depth_step and row[j] != sent[j]:
                records.append(DepthChange(seq=seq, time=when, asset=name, scale=row[j]))
                sent[j] = row[j]
                seq += 1
    return records


# -------------------------------------------------------------------------------------------- fitting


@dataclass(frozen=True)
class _AssetFit:
    """One column's fit: its dynamics and, on its return dates, conditional variances and residual scores."""

    dynamics: AssetDynamics
    variance: FloatArray
    scores: FloatArray
    jump_days: NDArray[np.bool_]


def _truncated_t_negative_loglik(dof: float, z: FloatArray, bound: float) -> float:
    """Negative log-likelihood of a unit-variance Student-t restricted to |z| <= bound, at residuals z."""
    scale2 = dof - 2.0
    log_density = (
        gammaln((dof + 1.0) / 2.0)
        - gammaln(dof / 2.0)
        - 0.5 * np.log(np.pi * scale2)
        - (dof + 1.0) / 2.0 * np.log1p(z**2 / scale2)
    )
    inside = 1.0 - 2.0 * stdtr(dof, -bound * math.sqrt(dof / scale2))
    return float(-np.sum(log_density) + z.shape[0] * math.log(inside))


def fit_truncated_t_dof(standardised: FloatArray, bound: float) -> float:
    """Maximum-likelihood dof of a unit-variance Student-t from the residuals within +-bound (the others are
    jumps): the body's likelihood, renormalised by P(|z| <= bound). In [2.05, 200]."""
    z = np.asarray(standardised, dtype=np.float64)
    from scipy.optimize import minimize_scalar  # fitting only: keep it off import

    result = minimize_scalar(_truncated_t_negative_loglik, bounds=DOF_BOUNDS, args=(z, bound), method="bounded")
    return float(result.x)


def _fit_asset(name: str, returns: FloatArray, threshold: float) -> _AssetFit:
    """GARCH(1,1) on all returns (jumps feed the variance, in the model as in the data); days with
    |r| > threshold * sigma are jumps; dof from the other days' residuals (`fit_truncated_t_dof`); jump
    sizes the mean and std of the flagged returns."""
    params = fit_garch(returns)
    variance = garch_variance(returns, params)
    z = returns / np.sqrt(variance)
    flagged = np.abs(z) > threshold
    dof = fit_truncated_t_dof(z[~flagged], threshold)
    sizes = returns[flagged]
    intensity = float(flagged.sum()) / returns.shape[0]
    second_moment = float(np.mean(sizes**2)) if sizes.size else 0.0
    # The QMLE variance is that of all returns, jumps included; the model adds jumps on top (and feeds them
    # to the variance), so omega is lowered until the model's total unconditional variance,
    # (omega + alpha L m2) / (1 - alpha - beta) + L m2, equals the fitted omega / (1 - alpha - beta).
    omega = params.omega - intensity * second_moment * (1.0 - params.beta)
    omega = max(omega, MIN_OMEGA_SHARE * params.omega)
    dynamics = AssetDynamics(
        name=name,
        omega=omega,
        alpha=params.alpha,
        beta=params.beta,
        dof=dof,
        jump_intensity=intensity,
        jump_mean=float(sizes.mean()) if sizes.size else 0.0,
        jump_std=float(sizes.std(ddof=1)) if sizes.size > 1 else 0.0,
    )
    scores = normal_scores(z, dof)
    scores[flagged] = np.nan  # a jump day says nothing about the diffusive copula
    return _AssetFit(dynamics, variance, scores, flagged)


def _correlation(scores: FloatArray) -> Matrix:
    """Sample correlation of the rows of `scores` (days x assets) with no jump (NaN) in them."""
    c = np.atleast_2d(np.corrcoef(scores[np.all(np.isfinite(scores), axis=1)], rowvar=False))
    c = (c + c.T) / 2.0
    np.fill_diagonal(c, 1.0)
    return tuple(tuple(float(v) for v in row) for row in c)


def fit(
    history: PriceHistory,
    assets: Sequence[str] | None = None,
    *,
    jump_threshold: float = JUMP_THRESHOLD_SIGMAS,
    stress_quantile: float = STRESS_QUANTILE,
    depth_elasticity: float = DEPTH_ELASTICITY,
    depth_floor: float = DEPTH_FLOOR,
    depth_cap: float = DEPTH_CAP,
) -> MarketModel:
    """Fit a `MarketModel` to daily closes (docs/model.md, "Synthetic markets"): `assets` columns, default all.

    Per asset (its own return dates): `fit_garch` on all returns (jumps feed the variance, in the model as
    in the data); days beyond `jump_threshold` conditional sigmas are jumps, their returns give the jump
    mean and std, their count over the days the intensity L; omega is lowered by L m2 (1 - beta), m2 the
    jumps' mean square, so that the model's total unconditional variance (diffusion, jumps and their feedback)
    equals the fitted GARCH's (at least 10% of omega is kept); dof by `fit_truncated_t_dof` on the other
    days' residuals. On the dates where every asset has a return: a day when every asset jumps is a common
    jump (common intensity = their count / joint days; each asset's own intensity then counts only its other
    jumps); days whose mean log variance ratio log(h / h_unconditional) over assets lies above its
    `stress_quantile` quantile are stressed, the rest calm; each regime's correlation is that of the
    residuals' normal scores on its days without a jump; the switching probabilities are the observed
    day-to-day frequencies.
    Depth parameters are not fitted (the defaults are documented judgements).
    """
    names = tuple(history.assets) if assets is None else tuple(assets)
    if not (jump_threshold > 0.0 and 0.0 < stress_quantile < 1.0):
        raise ValueError(
            f"needs jump_threshold > 0 and 0 < stress_quantile < 1, got {jump_threshold}, {stress_quantile}"
        )
    data = history.select(names).log_returns()
    n_rows, n_assets = data.shape
    fits: list[_AssetFit] = []
    variance_ratio = np.full(data.shape, np.nan)
    scores = np.full(data.shape, np.nan)
    jumped = np.zeros(data.shape, dtype=np.bool_)
    for j, name in enumerate(names):
        ok = np.isfinite(data[:, j])
        one = _fit_asset(name, data[ok, j], jump_threshold)
        fits.append(one)
        variance_ratio[ok, j] = one.variance / one.dynamics.garch.unconditional_variance
        scores[ok, j] = one.scores
        jumped[ok, j] = one.jump_days
    joint = np.all(np.isfinite(data), axis=1)
    n_joint = int(joint.sum())
    if n_joint < 2 * MIN_REGIME_DAYS:
        raise ModelError(f"only {n_joint} dates on which every asset has a return; need {2 * MIN_REGIME_DAYS}")

    common_days = np.all(jumped, axis=1) & joint if n_assets > 1 else np.zeros(n_rows, dtype=np.bool_)
    common_intensity = float(common_days.sum()) / n_joint
    dynamics = []
    for j, one in enumerate(fits):
        own = int((jumped[:, j] & ~common_days).sum())
        days = int(np.isfinite(data[:, j]).sum())
        dynamics.append(msgspec.structs.replace(one.dynamics, jump_intensity=own / days))

    level = np.mean(np.log(variance_ratio[joint]), axis=1)
    stressed = level > np.quantile(level, stress_quantile)
    joint_scores = scores[joint]
    if min(int(stressed.sum()), int((~stressed).sum())) < MIN_REGIME_DAYS:
        raise ModelError(f"fewer than {MIN_REGIME_DAYS} calm or stressed days to estimate their correlations")
    rows = np.flatnonzero(joint)
    adjacent = np.diff(rows) == 1  # pairs of consecutive days both in the joint sample
    before, after = stressed[:-1][adjacent], stressed[1:][adjacent]
    n_calm, n_stress = int((~before).sum()), int(before.sum())
    p01 = float((~before & after).sum()) / n_calm if n_calm else 0.0
    p10 = float((before & ~after).sum()) / n_stress if n_stress else 1.0
    if p01 + p10 >= 1.0:
        raise ModelError(f"the volatility regimes do not persist: p_calm_to_stress + p_stress_to_calm = {p01 + p10}")
    return MarketModel(
        assets=tuple(dynamics),
        calm_correlation=_correlation(joint_scores[~stressed]),
        stress_correlation=_correlation(joint_scores[stressed]),
        p_calm_to_stress=p01,
        p_stress_to_calm=p10,
        common_jump_intensity=common_intensity,
        depth_elasticity=depth_elasticity,
        depth_floor=depth_floor,
        depth_cap=depth_cap,
    )
