"""The concentration add-on, portfolio concentration (HHI) and the risk-tier scaling.

Pure functions over arrays, vectorised over accounts (the only loop is over assets, to read their
depth curves); every formula, default and source is in docs/model.md ("Concentration add-on and risk
tier"). Exposures are net delta notionals `x[n, a] = delta[n, a] · price[a]` in USD, so a spot leg and
the perpetual that hedges it net to nothing.

Two forms, chosen by `concentration.form`:

- "simm": ISDA SIMM's concentration risk factor `CR = max(1, sqrt(|x| / T))` on the asset's part of
  the market-risk margin: `add_on[n, a] = (CR - 1) · market_risk[n] · r[n, a] / Σ_b r[n, b]`, split by
  each asset's own risk `r[n, a] = |x[n, a]| · σ_a` (its delta notional times its volatility, the
  stand-alone linear market risk up to the common factor z sqrt(h)), with the threshold `T` the
  configured USD notional, or less where the book's open interest or the stressed depth on the
  closing side says so;
- "ramp": dYdX's open-interest ramp of the initial margin fraction (`venue_curves.adjusted_imf`),
  driven by the account's own |x| (or the asset's open interest): `add_on = (IMF - base) · |x|`.

The engine calls the compiled kernels (`open_interest_of`, `simm_and_hhi`: one pass over the accounts, no
(N, A) temporaries); the numpy functions (`open_interest`, `simm_thresholds`, `simm_add_on`, `herfindahl`)
are their slow, obviously correct twins, tied to them by tests/test_concentration.py.
"""

from __future__ import annotations

import math
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from solvent._numba import jit, prange
from solvent.factors.held import HeldAssets, every_asset
from solvent.factors.venue_curves import adjusted_imf
from solvent.market.depth import AssetLiquidity, DepthCurve

FloatArray = NDArray[np.float64]


def exposure(delta: FloatArray, price: FloatArray) -> FloatArray:
    """(N, A) signed net delta notional in USD: delta (N, A, units of the asset) x price (A,)."""
    out: FloatArray = delta * price[np.newaxis, :]
    return out


def open_interest(notional: FloatArray) -> FloatArray:
    """(A,) the book's open interest per asset, USD: the larger of its total net long and net short notional.

    OI_a = max(Σ_n max(x[n, a], 0), Σ_n max(-x[n, a], 0)). For a derivatives-only book, where every
    long faces a short, both sums are equal (the usual open interest); with spot in the book the larger
    side counts, so every account's share |x[n, a]| / OI_a lies in [0, 1].
    """
    longs = np.maximum(notional, 0.0).sum(axis=0)
    shorts = np.maximum(-notional, 0.0).sum(axis=0)
    out: FloatArray = np.maximum(longs, shorts)
    return out


def depth_within(curve: DepthCurve, distance: float) -> float:
    """Cumulative size (units) the curve holds within `distance` of mid: the largest x with δ(x) <= distance.

    0 when the touch is beyond `distance`; +inf when the curve ends flat at or below it.
    """
    if distance < curve.distance[0]:
        return 0.0
    k = int(np.searchsorted(curve.distance, distance, side="right")) - 1
    if k < curve.slope.size:  # inside the knots: d[k] <= distance < d[k + 1], so slope[k] > 0
        return float(curve.size[k] + (distance - curve.distance[k]) / curve.slope[k])
    last = float(curve.slope[-1])
    if last <= 0.0:
        return math.inf
    return float(curve.size[-1] + (distance - curve.distance[-1]) / last)


#: The last `stressed_depth` (its liquidity tuple, the rest of its key, its result): a stream margins many
#: times a cycle on one market state.
_LAST_DEPTH: list[tuple[tuple[AssetLiquidity, ...], tuple[bytes, float, float], tuple[FloatArray, FloatArray]]] = []


def stressed_depth(
    liquidity: tuple[AssetLiquidity, ...], price: FloatArray, distance: float, stress: float
) -> tuple[FloatArray, FloatArray]:
    """(bid, ask): (A,) USD depth within `distance` of mid on each side, divided by the book stress.

    A long closes into the bid, a short into the ask. An asset without a depth curve gets +inf (no
    depth-based threshold): the liquidity add-on prices what depth there is. The arrays of a repeated call
    (the same books, prices, distance and stress) are shared: read them, never write them.
    """
    key = (np.asarray(price, dtype=np.float64).tobytes(), distance, stress)
    if _LAST_DEPTH and _LAST_DEPTH[0][0] is liquidity and _LAST_DEPTH[0][1] == key:
        return _LAST_DEPTH[0][2]
    depth = _stressed_depth(liquidity, price, distance, stress)
    _LAST_DEPTH[:] = [(liquidity, key, depth)]
    return depth


def _stressed_depth(
    liquidity: tuple[AssetLiquidity, ...], price: FloatArray, distance: float, stress: float
) -> tuple[FloatArray, FloatArray]:
    n_assets = price.shape[0]
    bid, ask = np.full(n_assets, math.inf), np.full(n_assets, math.inf)
    for a, asset in enumerate(liquidity):
        if asset.bid is not None:
            bid[a] = depth_within(asset.bid, distance) * float(price[a]) / stress
        if asset.ask is not None:
            ask[a] = depth_within(asset.ask, distance) * float(price[a]) / stress
    return bid, ask


def side_thresholds(
    n_assets: int,
    threshold: float,
    oi: FloatArray | None,
    oi_share: float | None,
    depth_bid: FloatArray | None,
    depth_ask: FloatArray | None,
    depth_share: float | None,
    relative_floor: float,
) -> tuple[FloatArray, FloatArray]:
    """(long, short): (A,) concentration threshold T in USD for a long and for a short exposure.

    T = min(threshold, max(relative_floor, min(oi_share · OI_a, depth_share · depth_a(side)))), the
    relative thresholds taken only where configured (a None share, or None arrays, leave them out); the
    side is the bid for a long and the ask for a short. The arrays of a repeated call (the same scalars and
    open interest, the very depth arrays of a repeated `stressed_depth`) are shared: read them, never write them.
    """
    key = (n_assets, threshold, None if oi is None else oi.tobytes(), oi_share, depth_share, relative_floor)
    if _LAST_THRESHOLDS:
        (bid, ask, last_key), result = _LAST_THRESHOLDS[0]
        if bid is depth_bid and ask is depth_ask and last_key == key:
            return result
    relative_long = np.full(n_assets, math.inf)
    relative_short = np.full(n_assets, math.inf)
    if oi_share is not None and oi is not None:
        relative_long = np.minimum(relative_long, oi_share * oi)
        relative_short = np.minimum(relative_short, oi_share * oi)
    if depth_share is not None and depth_bid is not None and depth_ask is not None:
        relative_long = np.minimum(relative_long, depth_share * depth_bid)
        relative_short = np.minimum(relative_short, depth_share * depth_ask)
    long_t: FloatArray = np.minimum(threshold, np.maximum(relative_floor, relative_long))
    short_t: FloatArray = np.minimum(threshold, np.maximum(relative_floor, relative_short))
    _LAST_THRESHOLDS[:] = [((depth_bid, depth_ask, key), (long_t, short_t))]
    return long_t, short_t


#: The last `side_thresholds` (its depth arrays, the rest of its key, its result), as `_LAST_DEPTH`.
_LAST_THRESHOLDS: list[
    tuple[tuple[FloatArray | None, FloatArray | None, tuple[object, ...]], tuple[FloatArray, FloatArray]]
] = []


def simm_thresholds(
    notional: FloatArray,
    threshold: float,
    oi: FloatArray | None,
    oi_share: float | None,
    depth_bid: FloatArray | None,
    depth_ask: FloatArray | None,
    depth_share: float | None,
    relative_floor: float,
) -> FloatArray:
    """(N, A) the threshold of `side_thresholds` for each account's exposure: long where x >= 0, else short."""
    long_t, short_t = side_thresholds(
        notional.shape[1], threshold, oi, oi_share, depth_bid, depth_ask, depth_share, relative_floor
    )
    out: FloatArray = np.where(notional >= 0.0, long_t[np.newaxis, :], short_t[np.newaxis, :])
    return out


def concentration_risk_factor(notional: FloatArray, threshold: FloatArray) -> FloatArray:
    """SIMM's CR = max(1, sqrt(|x| / T)) elementwise: 1 where x = 0; +inf where x != 0 and T = 0 (fail closed)."""
    size = np.abs(notional)
    ratio = np.divide(size, threshold, out=np.full(size.shape, np.inf), where=threshold > 0.0)
    out: FloatArray = np.where(size > 0.0, np.maximum(1.0, np.sqrt(ratio)), 1.0)
    return out


def allocate_by_risk(total: FloatArray, notional: FloatArray, scan: FloatArray) -> FloatArray:
    """(N, A) `total` (N,) split over assets in proportion to each asset's own risk |x[n, a]| x scan[a].

    scan (A,): the asset's risk per USD of delta notional (its volatility: the common z sqrt(h) cancels in
    the split). An account whose exposures all have a zero scan is split by |x| alone; 0 for an account
    with no exposure (issue 12 item 13: the split by |x| alone gave a low-vol asset the risk of a high-vol one).
    """
    size = np.abs(notional)
    risk = size * np.asarray(scan, dtype=np.float64)[np.newaxis, :]
    gross_risk = risk.sum(axis=1)
    gross = size.sum(axis=1)
    by_risk = risk / np.where(gross_risk > 0.0, gross_risk, 1.0)[:, np.newaxis]
    by_size = size / np.where(gross > 0.0, gross, 1.0)[:, np.newaxis]
    weight = np.where((gross_risk > 0.0)[:, np.newaxis], by_risk, by_size)
    out: FloatArray = total[:, np.newaxis] * weight
    return out


def simm_add_on(notional: FloatArray, market_risk: FloatArray, threshold: FloatArray, scan: FloatArray) -> FloatArray:
    """(N, A) (CR - 1) x the account's market risk allocated to the asset by its own risk |x| x scan
    (`allocate_by_risk`; 0 where that part is 0)."""
    cr = concentration_risk_factor(notional, threshold)
    part = allocate_by_risk(market_risk, notional, scan)
    with np.errstate(invalid="ignore"):  # an infinite CR on a zero part is 0: nothing to scale
        out: FloatArray = np.where(part > 0.0, (cr - 1.0) * part, 0.0)
    return out


def ramp_add_on(
    notional: FloatArray,
    base_imf: float,
    lower_cap: float,
    upper_cap: float,
    driver: Literal["account", "open_interest"],
    oi: FloatArray,
    asset: NDArray[np.int64] | None = None,
) -> FloatArray:
    """(N, A) (adjusted IMF - base IMF) x |x|, the IMF ramped between the caps (dYdX `adjusted_imf`); or (H,)
    from notionals (H,) on held rows whose assets are `asset` (H,).

    driver "account": the ramp reads the account's own |x[n, a]|; "open_interest": the asset's OI_a.
    """
    size = np.abs(notional)
    if driver == "open_interest":
        excess = np.maximum(adjusted_imf(base_imf, oi, lower_cap, upper_cap) - base_imf, 0.0)  # (A,): one per asset
        by_asset: FloatArray = (excess[np.newaxis, :] if asset is None else excess[asset]) * size
        return by_asset
    out = np.zeros_like(size)
    ramped = size > lower_cap  # at or below the lower cap the IMF is the base: no add-on
    driven = size[ramped]
    out[ramped] = np.maximum(adjusted_imf(base_imf, driven, lower_cap, upper_cap) - base_imf, 0.0) * driven
    return out


def herfindahl(notional: FloatArray) -> FloatArray:
    """(N,) HHI of each account's |x| across assets: Σ_a x² / (Σ_a |x|)², in [1/A, 1]; 0 for a flat account."""
    size = np.abs(notional)
    gross = size.sum(axis=1)
    safe = np.where(gross > 0.0, gross, 1.0)
    out: FloatArray = np.where(gross > 0.0, ((size / safe[:, np.newaxis]) ** 2).sum(axis=1), 0.0)
    return out


def tier_multiplier(risk_tier: FloatArray) -> FloatArray:
    """(N,) the account's risk tier, 1.0 where absent (NaN)."""
    out: FloatArray = np.where(np.isnan(risk_tier), 1.0, risk_tier)
    return out


def risk_tier_term(tier: FloatArray, subtotal: FloatArray) -> FloatArray:
    """(N,) the `risk_tier` IM term: (tier - 1) x the sum of the other terms, so that IM = tier x that sum."""
    out: FloatArray = (tier - 1.0) * subtotal
    return out


# ------------------------------------------------------------------------------ compiled kernels


@jit()
def _open_interest_kernel(
    asset: NDArray[np.int64], delta: FloatArray, price: FloatArray, longs: FloatArray, shorts: FloatArray
) -> None:
    for h in range(delta.shape[0]):  # serial: the sums are the same, bit for bit, on every run
        a = asset[h]
        x = delta[h] * price[a]
        if x > 0.0:
            longs[a] += x
        elif x < 0.0:
            shorts[a] -= x


def open_interest_of(delta: FloatArray, price: FloatArray, held: HeldAssets | None = None) -> FloatArray:
    """(A,) `open_interest(exposure(delta, price))` in one pass over the net deltas: (N, A), or (H,) on the rows
    of `held` (the same sums to the bit: accounts in order, the rows skipped add 0)."""
    n_assets = price.shape[0]
    if held is None:
        held = every_asset(delta.shape[0], n_assets)
        delta = np.ascontiguousarray(delta).reshape(-1)
    longs, shorts = np.zeros(n_assets), np.zeros(n_assets)
    _open_interest_kernel(held.asset, delta, price, longs, shorts)
    out: FloatArray = np.maximum(longs, shorts)
    return out


@jit(parallel=True)
def _simm_hhi_kernel(
    offsets: NDArray[np.int64],
    asset: NDArray[np.int64],
    delta: FloatArray,
    price: FloatArray,
    market_risk: FloatArray,
    long_t: FloatArray,
    short_t: FloatArray,
    scan: FloatArray,
    add_on: FloatArray,
    hhi: FloatArray,
) -> None:
    for n in prange(offsets.shape[0] - 1):
        gross = 0.0
        gross_risk = 0.0
        for h in range(offsets[n], offsets[n + 1]):
            a = asset[h]
            size = abs(delta[h] * price[a])
            gross += size
            gross_risk += size * scan[a]
        safe = gross if gross > 0.0 else 1.0
        squares = 0.0
        for h in range(offsets[n], offsets[n + 1]):
            a = asset[h]
            x = delta[h] * price[a]
            size = abs(x)
            weight = size / safe
            squares += weight * weight
            share = size * scan[a] / gross_risk if gross_risk > 0.0 else weight
            part = market_risk[n] * share
            value = 0.0
            if size > 0.0 and part > 0.0:
                t = long_t[a] if x >= 0.0 else short_t[a]
                cr = max(1.0, math.sqrt(size / t)) if t > 0.0 else math.inf
                value = (cr - 1.0) * part
            add_on[h] = value
        hhi[n] = squares if gross > 0.0 else 0.0


def simm_and_hhi(
    delta: FloatArray,
    price: FloatArray,
    market_risk: FloatArray,
    long_t: FloatArray,
    short_t: FloatArray,
    scan: FloatArray,
    held: HeldAssets | None = None,
) -> tuple[FloatArray, FloatArray]:
    """(SIMM add-on, (N,) HHI) from net deltas (N, A, units; or (H,) on the rows of `held`, the add-on then
    (H,)), prices (A,), per-side thresholds (A,) and each asset's risk per USD of notional (A,, its volatility:
    `allocate_by_risk`).

    The compiled twin of `simm_add_on(x, market_risk, simm_thresholds(...), scan)` and `herfindahl(x)`,
    x = delta x price; infinite thresholds give a zero add-on (HHI only).
    """
    shape = delta.shape
    if held is None:
        held = every_asset(shape[0], price.shape[0])
        delta = np.ascontiguousarray(delta).reshape(-1)
    add_on = np.empty(delta.shape[0], dtype=np.float64)
    hhi = np.empty(held.n_accounts, dtype=np.float64)
    scan_rate = np.asarray(scan, dtype=np.float64)
    _simm_hhi_kernel(held.offsets, held.asset, delta, price, market_risk, long_t, short_t, scan_rate, add_on, hhi)
    return add_on.reshape(shape), hhi
