"""Stressed-correlation Monte Carlo: joint draws of every traded asset's price and vol move.

Conventions:
- Traded assets are the sorted unique `state.instruments.asset` columns; other columns move 0.
- Correlation C: with a history, the sample correlation of the assets' devolatilised returns
  (r_t / sigma_t, EWMA as in FHS; see `fhs.filter_history`) over the last `fhs.lookback_days` (the
  FHS lookback is reused); without one, DEFAULT_CORRELATION (0.7) between every pair of traded
  assets, all treated as crypto assets that move together; repaired to the nearest positive
  semi-definite correlation matrix (eigenvalues clipped at 0, diagonal re-normalised) if rounding left a
  negative eigenvalue.
- Stress (`mc.stress_weight` w), adverse for every book: the diversification the joint draws credit is
  capped as SPAN caps inter-commodity credits (CME SPAN: a credit rate below 1 on the offset). The set holds
  the joint draws (group 0, every asset moving, pnl_weight 1 - w) and, for each traded asset a, the same
  draws with a alone moving (group 1 + k, pnl_weight w; `ScenarioSet.repeats` of group 0, not stored): as groups
  are summed, market risk is
  (1 - w) ES(joint) + w sum_a ES(asset a alone) = sum_a ES_a - (1 - w) (sum_a ES_a - ES(joint)), the
  undiversified requirement less a credit of (1 - w) of the offset. ES (and worst) being subadditive,
  sum_a ES_a >= ES(joint), so raising w never lowers any book's margin: a spread pays more, and a book long
  both assets moves toward its requirement under perfect correlation. (Blending C toward all-ones instead
  lowered the margin of a spread: long 1 BTC / short 20 ETH, 7,324 -> 6,361 at w = 0.25 and 0 at w = 1.)
  w = 0: the joint draws alone; w = 1: no offset between assets.
- Draws: z ~ N(0, C) (Cholesky factor; an eigen factor when C is singular, e.g. w = 1), or for
  `distribution = "t"` a multivariate Student-t with `dof` degrees of freedom (one chi-square mixing
  draw per scenario shared by all assets, so joint crashes are fat-tailed together) scaled to unit
  variance by sqrt((dof - 2) / dof). Log price move = sigma_a sqrt(h) z_a (sigma_a the state's
  effective annualised vol, h = mpor_days / days_per_year); price_move = expm1 of it.
- Vol moves: log vol move = vol_of_vol sqrt(h) eps, eps standard normal independent across assets
  and of the price draws (the simplest choice: every option book meets vol up and vol down with
  every price move; no skew dynamics are assumed). vol_move = expm1 of it, so always > -1.
- Stratified marginals (`mc.stratified`, default on): each column of the price shocks z and of the vol
  shocks eps is replaced by a Latin-hypercube sample of its own marginal (standard normal, or the unit-variance
  Student-t), placed in the rank order of the draws: u_(i) = (i + U_i) / N for a random permutation of the
  strata, value = F^-1(u), the k-th smallest draw taking the k-th smallest value (Iman and Conover's rank
  reordering). The joint ranks, hence the dependence (the t's joint crashes included), are those of the
  draws; each asset's marginal is stratified, so a single position's ES varies little from seed to seed
  (issue 12: a long BTC perp's ES99 over 40 seeds, relative standard deviation 24% with 256 plain draws,
  about 1% with 4,096 stratified ones; docs/benchmarks.md).
- numpy.random.default_rng(seed); the draw order is fixed (price normals, then the chi-square
  mixing draws for t, then vol normals, then the strata's permutations and offsets column by column, price
  then vol), so the same parameters give bit-identical scenarios.
- Labels "mc 0001" ... for the joint draws, "mc BTC 0001" ... for asset BTC's group.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable

import numpy as np
from numpy.typing import NDArray
from scipy.special import ndtri, stdtrit

from solvent.errors import InputError
from solvent.market.history import PriceHistory
from solvent.market.state import MarketState
from solvent.params import MarginParams
from solvent.scenarios.base import ALL_ASSETS, ScenarioSet, traded_assets
from solvent.scenarios.fhs import filter_history, lookback_periods

FloatArray = NDArray[np.float64]

#: Correlation between traded assets when no history is given.
DEFAULT_CORRELATION = 0.7


def _eigen_tolerance(values: FloatArray) -> float:
    """Eigenvalues within rounding of 0: n * machine epsilon * the largest magnitude, times 10."""
    return 10.0 * values.size * float(np.finfo(np.float64).eps) * float(np.abs(values).max(initial=0.0))


def nearest_psd_correlation(c: FloatArray) -> FloatArray:
    """(n, n) `c` (symmetrised) when positive semi-definite up to rounding; else its eigenvalues
    clipped at 0 and the diagonal re-normalised to 1."""
    sym = np.asarray((c + c.T) / 2.0, dtype=np.float64)
    try:  # positive definite: no repair (a Cholesky factor is several times cheaper than the eigenvalues)
        np.linalg.cholesky(sym)
        return sym
    except np.linalg.LinAlgError:
        pass
    values, vectors = np.linalg.eigh(sym)
    if values.size == 0 or values[0] >= -_eigen_tolerance(values):
        return sym
    repaired = (vectors * np.maximum(values, 0.0)) @ vectors.T
    scale = 1.0 / np.sqrt(np.diag(repaired))
    return np.asarray(repaired * np.outer(scale, scale), dtype=np.float64)


def correlation_factor(c: FloatArray) -> FloatArray:
    """(n, n) L with L L^T = c: Cholesky, or V sqrt(lambda) (rounding-level eigenvalues set to 0)
    when c is singular, e.g. the fully stressed all-ones matrix."""
    try:
        return np.asarray(np.linalg.cholesky(c), dtype=np.float64)
    except np.linalg.LinAlgError:
        values, vectors = np.linalg.eigh(c)
        values = np.where(values > _eigen_tolerance(values), values, 0.0)
        return np.asarray(vectors * np.sqrt(values), dtype=np.float64)


@functools.lru_cache(maxsize=16)
def _default_factor(n: int) -> FloatArray:
    """(n, n) the correlation factor of n traded assets without a history (DEFAULT_CORRELATION between every pair),
    read-only: computed once per n, as every margin run without a history draws on it (a LAPACK call right after a
    parallel kernel waits on its spinning threads: 0.2-0.4 s of CPU at 200 assets on a 2-core machine)."""
    base = np.full((n, n), DEFAULT_CORRELATION)
    np.fill_diagonal(base, 1.0)
    factor = correlation_factor(nearest_psd_correlation(base))
    factor.setflags(write=False)
    return factor


def target_factor(state: MarketState, params: MarginParams, history: PriceHistory | None) -> FloatArray:
    """(n_traded, n_traded) L with L L^T the PSD correlation the joint draws target (`correlation_factor`)."""
    if history is None:
        return _default_factor(int(traded_assets(state.instruments.asset).size))
    return correlation_factor(target_correlation(state, params, history))


def target_correlation(state: MarketState, params: MarginParams, history: PriceHistory | None) -> FloatArray:
    """(n_traded, n_traded) the PSD correlation the joint draws target (the stress is applied by the groups)."""
    traded = traded_assets(state.instruments.asset)
    n = traded.size
    if history is None:
        base = np.full((n, n), DEFAULT_CORRELATION)
        np.fill_diagonal(base, 1.0)
    else:
        names = tuple(state.assets[a] for a in traded.tolist())
        filtered = filter_history(history, names, params.volatility.ewma_lambda)
        residuals = filtered.residuals[-lookback_periods(params, filtered.period_days) :]
        if residuals.shape[0] < 3:
            raise InputError("", "history", "needs at least 3 joint returns to estimate a correlation")
        base = np.atleast_2d(np.corrcoef(residuals, rowvar=False))
        np.fill_diagonal(base, 1.0)  # corrcoef's diagonal can be 1 - 1e-16
        if not np.all(np.isfinite(base)):
            raise InputError("", "history", f"cannot estimate a correlation of {list(names)}")
    return nearest_psd_correlation(base)


def stratify(draws: FloatArray, quantile: Callable[[FloatArray], FloatArray], rng: np.random.Generator) -> FloatArray:
    """(N, k) `draws` with each column replaced by a Latin-hypercube sample of the marginal whose inverse CDF is
    `quantile`, in the column's rank order (Iman-Conover): ranks, hence dependence, kept; marginals stratified."""
    n = draws.shape[0]
    strata = np.empty_like(draws)
    for j in range(draws.shape[1]):  # column by column: the generator's draw order
        strata[:, j] = (rng.permutation(n) + rng.random(n)) / n
    strata.sort(axis=0)
    out = np.empty_like(draws)
    np.put_along_axis(out, np.argsort(draws, axis=0, kind="stable"), quantile(strata), axis=0)
    return out


@functools.lru_cache(maxsize=16)
def _labels(n_scenarios: int, stressed: tuple[str, ...]) -> tuple[str, ...]:
    """The labels of n_scenarios joint draws ("mc 0001" ...) and of their repeat for each asset of `stressed` ("mc BTC
    0001" ...), in that order: built once per venue and draw count (51,456 strings on 200 assets, rebuilt on every
    margin run before)."""
    numbers = [f" {i + 1:04d}" for i in range(n_scenarios)]
    prefixes = ["mc", *(f"mc {asset}" for asset in stressed)]
    return tuple(prefix + number for prefix in prefixes for number in numbers)


def monte_carlo(state: MarketState, params: MarginParams, history: PriceHistory | None = None) -> ScenarioSet:
    """n_scenarios joint draws of the traded assets' price and vol moves (one group)."""
    mc = params.scenarios.mc
    traded = traded_assets(state.instruments.asset)
    n, n_scen = traded.size, mc.n_scenarios
    h = params.mpor_days / params.days_per_year
    factor = target_factor(state, params, history)

    rng = np.random.default_rng(mc.seed)
    z = rng.standard_normal((n_scen, n)) @ factor.T
    if mc.distribution == "t":
        mixing = rng.chisquare(mc.dof, n_scen)
        z = z * np.sqrt((mc.dof - 2.0) / mixing)[:, np.newaxis]
    eps = rng.standard_normal((n_scen, n))
    if mc.stratified:
        t_scale = math.sqrt((mc.dof - 2.0) / mc.dof)
        price_quantile = (lambda u: stdtrit(mc.dof, u) * t_scale) if mc.distribution == "t" else ndtri
        z = stratify(z, price_quantile, rng)
        eps = stratify(eps, ndtri, rng)

    price_move = np.zeros((n_scen, len(state.assets)), dtype=np.float64)
    vol_move = np.zeros((n_scen, len(state.assets)), dtype=np.float64)
    price_move[:, traded] = np.expm1(state.vol[traded] * math.sqrt(h) * z)
    vol_move[:, traded] = np.expm1(mc.vol_of_vol * math.sqrt(h) * eps)
    w = mc.stress_weight
    if w == 0.0:
        return ScenarioSet(
            name="mc",
            price_move=price_move,
            vol_move=vol_move,
            pnl_weight=np.ones(n_scen, dtype=np.float64),
            group=np.zeros(n_scen, dtype=np.int32),
            horizon_years=h,
            labels=_labels(n_scen, ()),
        )
    return ScenarioSet(
        name="mc",
        price_rows=price_move,
        vol_rows=vol_move,
        pnl_weight=np.concatenate([np.full(n_scen, 1.0 - w), np.full(n * n_scen, w)]),
        group=np.repeat(np.arange(n + 1, dtype=np.int32), n_scen),
        horizon_years=h,
        labels=_labels(n_scen, tuple(state.assets[a] for a in traded.tolist())),
        group_asset=np.concatenate([[ALL_ASSETS], traded]).astype(np.int64),
        repeats=np.concatenate([[-1], np.zeros(n, dtype=np.int64)]).astype(np.int64),  # asset a alone: group 0 again
    )
