"""Oracle aggregation: several source quotes per asset -> one price, an uncertainty and an explicit status.

Pure, vectorised functions over arrays of shape (A, S): A assets, S source slots per asset (pad assets
with fewer sources and mark the padding with `present=False`). No I/O, no per-asset Python loops.

The pipeline, per asset (every step a documented parameter of `OracleParams`):

1. **Classify each quote** (`classify`): non-finite or non-positive price, non-finite or negative
   confidence, non-finite timestamp -> INVALID (4); timestamp more than `future_tolerance_s` after `now`
   -> FUTURE (3); older than `staleness_s` -> STALE (1); padding -> ABSENT (5). The rest are *valid*.
2. **Reject outliers** among the valid quotes (a Hampel filter): centre m = median, robust scale
   s = max(D, outlier_floor * m) with D the dispersion of step 5; a quote with |p - m| > outlier_k * s is
   an OUTLIER (2). The floor stops sources that agree to the last digit (D = 0) from rejecting an honest
   quote a few basis points away. With fewer than three valid quotes nothing can be rejected (two quotes
   always sit within their own spread): there the TWAP guard is the defence.
3. **Price** = median of the accepted quotes, kept between the lower and upper median of all valid
   quotes. With a minority of manipulated sources the median of the valid quotes lies within the honest
   quotes' range, and so does the price whatever the outlier test rejected (docs/model.md, "What a
   minority of sources can do"). One pumped source of five moves it by at most one rank (Mango Markets,
   11 October 2022: MNGO $0.038 -> $0.91 on the oracle's sources).
4. **TWAP guard**: if that median is more than `max_twap_deviation` from the asset's TWAP, the price is
   clamped to the band twap * (1 -/+ max_twap_deviation) and the asset is flagged DEVIATES_FROM_TWAP.
   Policy: fail closed, never follow a pump. A genuine move past the band is priced at the band edge
   and flagged (risk-increasing activity refused) until the TWAP catches up; the gap between the
   sources and the clamped price enters the uncertainty, so margin is not understated meanwhile.
5. **Uncertainty** (price units, one standard-deviation-like width per asset)::

       U = min(w_d * D + w_c * C + w_s * S + G,  max_uncertainty * ref)

   over the *basis* quotes: the valid ones (outliers included), or in ALL_STALE the stale ones (the last
   known band). With x_1 <= ... <= x_n the sorted basis quotes:

   - D, dispersion: 1.4826 x the largest MAD of any three or four of the quotes (n >= 3); 1.4826 x
     (x_2 - x_1) / 2 for two; 0 for one.
   - C, confidence: the second largest published +/- band (Pyth's `conf`; 0 for a source that publishes
     none) for n >= 3, the median for one or two.
   - S, staleness: ref * vol * sqrt(age / year), age = now - the *oldest* valid timestamp (in ALL_STALE:
     the newest stale one): the move the asset can make, at its own annualised volatility `vol`, while
     that price has been standing still. 0 when no vol is given.
   - G, TWAP gap: max(x_(n-1) - upper, lower - x_2, 0) for n >= 3 (the median's distance to the band for
     one or two); in ALL_STALE and TOO_FEW_SOURCES at least |median of the basis - TWAP|.
   - ref = the TWAP (the median of the basis quotes when there is no TWAP).

   Each component can only grow when quotes are added to a set of three or more (a maximum over
   subsets, a second largest, an oldest age, a second extreme), so a minority of manipulated sources
   can raise U, never lower it below what the honest sources alone give (docs/model.md). The components
   are *added*, not combined in quadrature: the sum bounds the root sum of squares (fail closed, since
   the components are not independent), and each component's share is exact for attribution.
6. **Status** (highest first): ALL_STALE (no valid quote and at least one stale), TOO_FEW_SOURCES
   (fewer than `min_sources` accepted), NO_TWAP (no finite TWAP: the price cannot be checked),
   DEVIATES_FROM_TWAP, OK. In ALL_STALE and TOO_FEW_SOURCES the price is the TWAP (NaN without one);
   in NO_TWAP the median. U is the formula above in every status (not inflated: a degraded oracle
   pauses liquidation on its price instead, docs/model.md, "A degraded oracle"); only an asset without
   any well-formed quote gets U = max_uncertainty * TWAP. Any status other than OK means: refuse
   risk-increasing activity on that asset and liquidate nobody exposed to it. A NaN price (no valid
   quote and no TWAP) cannot be margined; the caller must fail closed (`ModelError`).

`pessimistic_prices` values assets at price - k * U and liabilities at price + k * U (k = 0 is off).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import IntEnum
from typing import Final

import numpy as np
from numpy.typing import ArrayLike, NDArray

from solvent.errors import InputError
from solvent.params import OracleParams as OracleParams  # defined with the other sections; re-exported

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]
CodeArray = NDArray[np.int8]
BoolArray = NDArray[np.bool_]

MAD_SCALE: Final = 1.4826
"""1 / Phi^-1(3/4): scales the median absolute deviation to a normal standard deviation."""
SECONDS_PER_DAY: Final = 86400.0


class Rejection(IntEnum):
    """Why a source quote was not used (per source, in `OracleResult.rejected`)."""

    OK = 0
    STALE = 1
    OUTLIER = 2
    FUTURE = 3
    INVALID = 4
    ABSENT = 5


class OracleStatus(IntEnum):
    """The state of one asset's price (per asset, in `OracleResult.status`); anything but OK is degraded."""

    OK = 0
    DEVIATES_FROM_TWAP = 1
    ALL_STALE = 2
    TOO_FEW_SOURCES = 3
    NO_TWAP = 4


@dataclass(frozen=True, eq=False)
class OracleResult:
    """Aggregated oracle state; per asset (A,) unless noted.

    - `price`: the price margin is computed at (median, clamped, or the TWAP in a degraded state).
    - `uncertainty`: U in price units (see the module docstring), in every status.
    - `status`: `OracleStatus` codes (int8).
    - `n_used`: quotes that passed every check (Rejection.OK).
    - `rejected`: (A, S) `Rejection` codes (int8).
    - `median`: median of the accepted quotes, kept between the valid quotes' lower and upper median,
      before the TWAP clamp (NaN when no quote is valid).
    - `dispersion`, `confidence`, `staleness`, `clamp`: the components D, C, S, G (0 without basis quotes).
    - `age`: seconds since the oldest valid quote (in ALL_STALE the newest stale one; inf without any).
    """

    price: FloatArray
    uncertainty: FloatArray
    status: CodeArray
    n_used: IntArray
    rejected: CodeArray
    median: FloatArray
    dispersion: FloatArray
    confidence: FloatArray
    staleness: FloatArray
    clamp: FloatArray
    age: FloatArray

    @property
    def degraded(self) -> BoolArray:
        """Assets whose status is not OK: risk-increasing activity on them must be refused."""
        return np.asarray(self.status != OracleStatus.OK)

    @property
    def relative_uncertainty(self) -> FloatArray:
        """U / price (NaN where the price is NaN)."""
        return np.asarray(self.uncertainty / self.price, dtype=np.float64)


def _quotes(
    prices: ArrayLike, confidences: ArrayLike, timestamps: ArrayLike, present: ArrayLike | None
) -> tuple[FloatArray, FloatArray, FloatArray, BoolArray]:
    p = np.asarray(prices, dtype=np.float64)
    c = np.asarray(confidences, dtype=np.float64)
    t = np.asarray(timestamps, dtype=np.float64)
    if p.ndim != 2 or p.shape[1] == 0:
        raise ValueError(f"prices must have shape (assets, sources) with at least one source, got {p.shape}")
    if c.shape != p.shape or t.shape != p.shape:
        raise ValueError(f"prices {p.shape}, confidences {c.shape} and timestamps {t.shape} must share one shape")
    mask = np.ones(p.shape, dtype=np.bool_) if present is None else np.asarray(present, dtype=np.bool_)
    if mask.shape != p.shape:
        raise ValueError(f"present has shape {mask.shape}, expected {p.shape}")
    return p, c, t, mask


def _masked_median(values: FloatArray, mask: BoolArray) -> FloatArray:
    """Row-wise median of values[mask] (NaN for an empty row); order-independent, bit for bit."""
    n = mask.sum(axis=1)
    ordered = np.sort(np.where(mask, values, np.inf), axis=1)
    lo = np.take_along_axis(ordered, np.maximum((n - 1) // 2, 0)[:, None], axis=1)[:, 0]
    hi = np.take_along_axis(ordered, (n // 2)[:, None], axis=1)[:, 0]
    return np.where(n > 0, (lo + hi) / 2.0, np.nan)


def _classify(
    p: FloatArray, c: FloatArray, t: FloatArray, mask: BoolArray, now: float, params: OracleParams
) -> CodeArray:
    well_formed = np.isfinite(p) & (p > 0.0) & np.isfinite(c) & (c >= 0.0) & np.isfinite(t)
    age = now - np.where(np.isfinite(t), t, now)
    codes = np.zeros(p.shape, dtype=np.int8)
    codes[age > params.staleness_s] = Rejection.STALE
    codes[age < -params.future_tolerance_s] = Rejection.FUTURE
    codes[~well_formed] = Rejection.INVALID
    codes[~mask] = Rejection.ABSENT
    return codes


def classify(
    prices: ArrayLike,
    confidences: ArrayLike,
    timestamps: ArrayLike,
    now: float,
    params: OracleParams,
    *,
    present: ArrayLike | None = None,
) -> CodeArray:
    """Per-quote codes before the outlier test, shape (A, S): OK, STALE, FUTURE, INVALID or ABSENT.

    Precedence when several apply: ABSENT > INVALID > FUTURE > STALE.
    """
    p, c, t, mask = _quotes(prices, confidences, timestamps, present)
    return _classify(p, c, t, mask, float(now), params)


def _sorted_valid(p: FloatArray, valid: BoolArray) -> tuple[FloatArray, IntArray]:
    """Each row's valid quotes in ascending order (padding 0 after them) and their count."""
    n = valid.sum(axis=1).astype(np.int64)
    ordered = np.sort(np.where(valid, p, np.inf), axis=1)
    return np.where(np.isfinite(ordered), ordered, 0.0), n


def _at(values: FloatArray, index: IntArray) -> FloatArray:
    return np.take_along_axis(values, np.clip(index, 0, values.shape[1] - 1)[:, None], axis=1)[:, 0]


def _dispersion(ordered: FloatArray, n: IntArray) -> FloatArray:
    """D per row: 1.4826 x the largest MAD of any three or four of the row's valid quotes (n >= 3), their
    MAD for two, 0 for one (module docstring, step 5).

    The largest MAD of a subset with middle quote(s) y (or b <= c) takes the row's extremes as its outer
    quotes, so the maximum runs over interior positions only: min(y - x_1, x_n - y) for three, and
    ((c - b) / 2 + min(m - x_1, x_n - m)) / 2 with m = (b + c) / 2 for four.
    """
    width = ordered.shape[1]
    lo = ordered[:, 0]
    hi = _at(ordered, n - 1)
    pos = np.arange(width)
    interior = (pos[None, :] >= 1) & (pos[None, :] <= (n - 2)[:, None])
    three = np.where(interior, np.minimum(ordered - lo[:, None], hi[:, None] - ordered), 0.0).max(axis=1)
    b = ordered[:, :, None]
    c = ordered[:, None, :]
    mid = b + (c - b) / 2.0
    quad = ((c - b) / 2.0 + np.minimum(mid - lo[:, None, None], hi[:, None, None] - mid)) / 2.0
    pairs = interior[:, :, None] & interior[:, None, :] & (pos[:, None] < pos[None, :])[None, :, :]
    four = np.where(pairs, quad, 0.0).max(axis=(1, 2)) if width >= 2 else np.zeros_like(three)
    wide = np.maximum(three, four)
    return np.where(n >= 3, MAD_SCALE * wide, np.where(n == 2, MAD_SCALE * (hi - lo) / 2.0, 0.0))


def _confidence(c: FloatArray, basis: BoolArray, n: IntArray) -> FloatArray:
    """C per row: the second largest published band of the basis quotes (n >= 3), their median otherwise."""
    top = -np.sort(np.where(basis, -c, np.inf), axis=1)  # descending, padding -inf
    second = _at(np.where(np.isfinite(top), top, 0.0), np.ones_like(n))
    return np.where(n >= 3, second, np.where(n > 0, _masked_median(np.where(basis, c, 0.0), basis), 0.0))


def aggregate(
    prices: ArrayLike,
    confidences: ArrayLike,
    timestamps: ArrayLike,
    now: float,
    twap: ArrayLike,
    params: OracleParams,
    *,
    vol: ArrayLike | None = None,
    days_per_year: float = 365.0,
    present: ArrayLike | None = None,
) -> OracleResult:
    """Aggregate source quotes into a price, an uncertainty and a status per asset.

    prices, confidences (+/- band, price units), timestamps (seconds): shape (A, S); `present` (A, S)
    marks real quotes (padding False; default all True). now: seconds, the same clock as the timestamps.
    twap: (A,), NaN where no TWAP is known. vol: (A,) annualised volatility for the staleness term
    (None: no staleness term). Inputs are not modified. See the module docstring for every rule.
    """
    p, c, t, mask = _quotes(prices, confidences, timestamps, present)
    n_assets = p.shape[0]
    ref_twap = np.asarray(twap, dtype=np.float64)
    if ref_twap.shape != (n_assets,):
        raise ValueError(f"twap has shape {ref_twap.shape}, expected ({n_assets},)")
    if np.any(ref_twap <= 0.0):
        raise ValueError(f"twap must be positive or NaN, got {ref_twap[ref_twap <= 0.0][0]}")
    sigma = np.zeros(n_assets) if vol is None else np.asarray(vol, dtype=np.float64)
    if sigma.shape != (n_assets,) or not np.all(np.isfinite(sigma) & (sigma >= 0.0)):
        raise ValueError(f"vol must be {n_assets} finite non-negative values, got {sigma}")
    now = float(now)

    codes = _classify(p, c, t, mask, now, params)
    valid = codes == Rejection.OK
    n_valid = valid.sum(axis=1)
    some_valid = n_valid > 0
    stale = codes == Rejection.STALE
    all_stale = ~some_valid & np.any(stale, axis=1)
    # The basis of the uncertainty: the valid quotes, or in ALL_STALE the stale ones (the last known band).
    basis = np.where(all_stale[:, None], stale, valid)
    p_safe = np.where(basis, p, 1.0)
    ordered, n_basis = _sorted_valid(p_safe, basis)
    has_basis = n_basis > 0

    # Outlier test (Hampel) among the valid quotes: centre = their median, scale = max(D, floor x centre).
    centre = _masked_median(p_safe, basis)
    dispersion = _dispersion(ordered, n_basis)
    abs_dev = np.abs(p_safe - np.where(has_basis, centre, 1.0)[:, None])
    scale = np.maximum(dispersion, params.outlier_floor * np.where(has_basis, centre, 0.0))
    outlier = valid & (abs_dev > params.outlier_k * scale[:, None])
    codes[outlier] = Rejection.OUTLIER
    accepted = valid & ~outlier
    n_used = accepted.sum(axis=1).astype(np.int64)
    # The accepted quotes' median, kept between the lower and upper median of the valid quotes: rejecting
    # outliers never takes the price outside the honest quotes' range (module docstring, step 3).
    lower_median = _at(ordered, (n_basis - 1) // 2)
    upper_median = _at(ordered, n_basis // 2)
    median = np.where(some_valid, np.clip(_masked_median(p_safe, accepted), lower_median, upper_median), np.nan)

    # TWAP guard: clamp to the band, never follow a pump.
    has_twap = np.isfinite(ref_twap)
    lower = ref_twap * (1.0 - params.max_twap_deviation)
    upper = ref_twap * (1.0 + params.max_twap_deviation)
    deviates = has_twap & ((median < lower) | (median > upper))
    price = np.where(deviates, np.clip(median, lower, upper), median)

    # Status, highest precedence last.
    status = np.zeros(n_assets, dtype=np.int8)
    status[deviates] = OracleStatus.DEVIATES_FROM_TWAP
    status[~has_twap] = OracleStatus.NO_TWAP
    status[n_used < params.min_sources] = OracleStatus.TOO_FEW_SOURCES
    status[all_stale] = OracleStatus.ALL_STALE
    fallback = (status == OracleStatus.ALL_STALE) | (status == OracleStatus.TOO_FEW_SOURCES)
    price = np.where(fallback, ref_twap, price)

    # Uncertainty components: none depends on the outlier test (module docstring, step 5).
    ref = np.where(has_twap, ref_twap, centre)
    ages = np.where(basis, now - np.where(basis, t, now), -np.inf)
    age = np.where(
        all_stale, ages.min(axis=1, initial=np.inf, where=basis), ages.max(axis=1, initial=-np.inf, where=basis)
    )
    age = np.where(has_basis, np.maximum(age, 0.0), np.inf)
    year_s = days_per_year * SECONDS_PER_DAY
    confidence = _confidence(np.where(basis, c, 0.0), basis, n_basis)
    staleness = np.where(has_basis, ref * sigma * np.sqrt(np.where(has_basis, age, 0.0) / year_s), 0.0)
    hi2 = np.where(n_basis >= 3, _at(ordered, n_basis - 2), centre)
    lo2 = np.where(n_basis >= 3, _at(ordered, np.ones_like(n_basis)), centre)
    gap = np.maximum(np.maximum(hi2 - upper, lower - lo2), 0.0)
    clamp = np.where(has_basis & has_twap, np.maximum(gap, np.where(fallback, np.abs(centre - ref_twap), 0.0)), 0.0)
    cap = params.max_uncertainty * ref
    total = (
        params.weight_dispersion * dispersion
        + params.weight_confidence * confidence
        + params.weight_staleness * staleness
        + clamp
    )
    uncertainty = np.where(has_basis, np.minimum(total, cap), params.max_uncertainty * ref_twap)

    return OracleResult(
        price=price,
        uncertainty=uncertainty,
        status=status,
        n_used=n_used,
        rejected=codes,
        median=median,
        dispersion=np.where(has_basis, dispersion, 0.0),
        confidence=np.where(has_basis, confidence, 0.0),
        staleness=staleness,
        clamp=clamp,
        age=age,
    )


def twap(times: ArrayLike, prices: ArrayLike, window: float, now: float) -> FloatArray:
    """Time-weighted average price over [now - window, now] of a step-function price history.

    times: (N,) seconds, non-decreasing; prices: (N,) or (A, N), each price holding from its time until
    the next observation (the last until `now`); the observation in force at the window's start counts
    from the start. Observations after `now` are ignored. Returns shape prices.shape[:-1] (a 0-d array
    for one series): NaN when nothing was observed at or before `now`; the last price when every
    observation sits exactly at `now`.
    """
    tt = np.asarray(times, dtype=np.float64)
    pp = np.asarray(prices, dtype=np.float64)
    if tt.ndim != 1 or pp.shape[-1:] != tt.shape:
        raise ValueError(f"times must be (N,) and prices (..., N); got {tt.shape} and {pp.shape}")
    if not np.all(np.diff(tt) >= 0.0):
        raise ValueError("times must be non-decreasing")
    if not window > 0.0:
        raise ValueError(f"window must be positive, got {window}")
    seen = tt <= now
    if not np.any(seen):
        return np.full(pp.shape[:-1], np.nan)
    t_in = tt[seen]
    p_in = pp[..., seen]
    start = now - window
    ends = np.append(t_in[1:], now)
    held = np.clip(ends, start, now) - np.clip(t_in, start, now)
    total = float(held.sum())
    if total == 0.0:
        return np.asarray(p_in[..., -1], dtype=np.float64)
    return np.asarray((p_in * held).sum(axis=-1) / total, dtype=np.float64)


def pessimistic_prices(price: ArrayLike, uncertainty: ArrayLike, k: float) -> tuple[FloatArray, FloatArray]:
    """(asset_price, liability_price) = (max(price - k U, 0), price + k U); k = 0 returns the price twice."""
    if not k >= 0.0:
        raise ValueError(f"pessimistic k must be non-negative, got {k}")
    mu = np.asarray(price, dtype=np.float64)
    width = k * np.asarray(uncertainty, dtype=np.float64)
    return np.maximum(mu - width, 0.0), mu + width


def validate_quotes(
    assets: Sequence[str],
    prices: ArrayLike,
    confidences: ArrayLike,
    timestamps: ArrayLike,
    now: float,
    params: OracleParams,
    *,
    source: str = "",
    present: ArrayLike | None = None,
    section: str = "oracle",
) -> None:
    """Input-file check: raise InputError at the first malformed or future-dated quote.

    Fields are named ``<section>.<asset>.sources[i].price|confidence|timestamp`` (section "oracle"
    by default; the market file's loader passes "assets"). Stale quotes are not an
    input error (an old snapshot is legitimate); `aggregate` flags them.
    """
    p, c, t, mask = _quotes(prices, confidences, timestamps, present)
    if len(assets) != p.shape[0]:
        raise ValueError(f"{len(assets)} asset names for {p.shape[0]} rows of quotes")
    codes = _classify(p, c, t, mask, float(now), params)
    bad = np.argwhere((codes == Rejection.INVALID) | (codes == Rejection.FUTURE))
    if bad.size == 0:
        return
    a, s = (int(x) for x in bad[0])
    field = f"{section}.{assets[a]}.sources[{s}]"
    if not (np.isfinite(p[a, s]) and p[a, s] > 0.0):
        raise InputError(source, f"{field}.price", f"price must be finite and positive, got {p[a, s]}")
    if not (np.isfinite(c[a, s]) and c[a, s] >= 0.0):
        raise InputError(source, f"{field}.confidence", f"confidence must be finite and >= 0, got {c[a, s]}")
    if not np.isfinite(t[a, s]):
        raise InputError(source, f"{field}.timestamp", f"timestamp must be finite, got {t[a, s]}")
    ahead = t[a, s] - float(now)
    raise InputError(
        source,
        f"{field}.timestamp",
        f"timestamp {t[a, s]} is {ahead:g} s in the future of the snapshot time {now} "
        f"(tolerance {params.future_tolerance_s:g} s)",
    )
