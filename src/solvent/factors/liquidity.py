"""The liquidity add-on: the cost of closing each account's net delta and vega per asset.

Pure functions over arrays; every formula, default and source is in docs/model.md ("Liquidity
add-on"). Delta is closed against the book (sell into the bid when long, buy from the ask when
short) under a stress multiplier that divides every cumulative size (book thinning); where an asset
has no depth curve but an average daily volume, the square-root impact law prices it instead. Vega is
closed at half the implied-vol bid-ask, widened by the same stress multiplier.

`liquidity_kernel` is the fused form the engine runs (one pass over accounts x assets); the numpy
functions above it are its slow, obviously correct twin, and the tests hold the two together.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from solvent._numba import jit, prange
from solvent.factors.held import every_asset
from solvent.market.depth import AssetLiquidity, DepthCurve

FloatArray = NDArray[np.float64]

#: Vega is reported in USD per vol point; a vol point is 0.01 of annualised vol.
VOL_POINT = 0.01


def walk_cost(quantity: FloatArray, curve: DepthCurve, price: float, stress: float) -> FloatArray:
    """(N,) USD cost against mid of filling |quantity| units on one side of the book.

    With the book thinned by `stress` (every cumulative size divided by it), the u-th unit fills at
    distance `δ(u · stress)` from mid, so cost = price · ∫₀^|q| δ(u · stress) du
    = price / stress · D(|q| · stress), D the integral of the curve (exact on each linear segment).
    """
    u = np.abs(quantity) * stress
    segment = np.clip(np.searchsorted(curve.size, u, side="right") - 1, 0, curve.slope.size - 1)
    x = u - curve.size[segment]
    area = curve.integral[segment] + curve.distance[segment] * x + 0.5 * curve.slope[segment] * x * x
    cost: FloatArray = price * area / stress
    return cost


def sqrt_impact_cost(
    quantity: FloatArray,
    price: float,
    daily_vol: float,
    adv: float,
    half_spread: float,
    coefficient: float,
    stress: float,
) -> FloatArray:
    """(N,) USD cost of |q| units by the square-root law on a book thinned by `stress`.

    cost = price · |q| · (half_spread + coefficient · daily_vol · sqrt(|q| · stress / adv)).
    """
    size = np.abs(quantity)
    cost: FloatArray = price * size * (half_spread + coefficient * daily_vol * np.sqrt(size * stress / adv))
    return cost


def vega_cost(vega: FloatArray, vol_spread: float, stress: float) -> FloatArray:
    """(N,) USD cost of closing net vega (USD per vol point) at half the vol bid-ask, widened by `stress`.

    cost = |vega| · (vol_spread / 2) / 0.01 · stress.
    """
    cost: FloatArray = np.abs(vega) * (vol_spread / 2.0 / VOL_POINT) * stress
    return cost


def delta_cost(
    delta: FloatArray,
    liquidity: AssetLiquidity,
    price: float,
    daily_vol: float,
    stress: float,
    half_spread: float,
    coefficient: float,
) -> FloatArray:
    """(N,) close-out cost of net delta: book walk (bid when long, ask when short), else square-root, else 0."""
    if liquidity.bid is not None and liquidity.ask is not None:
        sell = walk_cost(np.maximum(delta, 0.0), liquidity.bid, price, stress)
        buy = walk_cost(np.minimum(delta, 0.0), liquidity.ask, price, stress)
        return sell + buy
    if math.isfinite(liquidity.adv):
        return sqrt_impact_cost(delta, price, daily_vol, liquidity.adv, half_spread, coefficient, stress)
    return np.zeros_like(delta)


def liquidity_by_asset(
    delta: FloatArray,
    vega: FloatArray,
    liquidity: tuple[AssetLiquidity, ...],
    price: FloatArray,
    daily_vol: FloatArray,
    stress: float,
    half_spread: float,
    coefficient: float,
) -> FloatArray:
    """(N, A) liquidity add-on per account and asset from net delta (N, A, units) and vega (N, A, USD/vol pt).

    `liquidity`, `price` and `daily_vol` are per asset (A). An asset without depth, ADV or vol bid-ask
    contributes 0 for the missing part (`liquidity.require_depth` refuses such markets at load time).
    """
    out = np.zeros_like(delta)
    for a, asset in enumerate(liquidity):
        out[:, a] = delta_cost(
            delta[:, a], asset, float(price[a]), float(daily_vol[a]), stress, half_spread, coefficient
        )
        if math.isfinite(asset.vol_spread):
            out[:, a] += vega_cost(vega[:, a], asset.vol_spread, stress)
    return out


# ----------------------------------------------------------------------------------- fused kernel

NO_DEPTH, BOOK, SQRT_LAW = 0, 1, 2


@dataclass(frozen=True, eq=False)
class PackedLiquidity:
    """Every asset's liquidity inputs as padded arrays, for the kernel (K = most knots of any curve).

    kind (A,): NO_DEPTH, BOOK or SQRT_LAW. curves (2, A, 4, K): side (0 bid, 1 ask) x asset x
    (size, distance, slope, integral); knots (2, A): knots per curve. adv, vol_spread (A,): NaN absent.
    """

    kind: NDArray[np.int8]
    curves: FloatArray
    knots: NDArray[np.int64]
    adv: FloatArray
    vol_spread: FloatArray


#: The packings of the last few liquidity tuples, by identity (`packed_liquidity`).
_PACKED: dict[int, tuple[tuple[AssetLiquidity, ...], PackedLiquidity]] = {}


def packed_liquidity(liquidity: tuple[AssetLiquidity, ...]) -> PackedLiquidity:
    """`pack_liquidity`, packed once per tuple: a stream margins many times on the same market state's books.
    The result is shared: read it, never write it."""
    hit = _PACKED.get(id(liquidity))
    if hit is not None and hit[0] is liquidity:
        return hit[1]
    packed = pack_liquidity(liquidity)
    if len(_PACKED) >= 8:
        _PACKED.clear()
    _PACKED[id(liquidity)] = (liquidity, packed)
    return packed


def pack_liquidity(liquidity: tuple[AssetLiquidity, ...]) -> PackedLiquidity:
    """Pad every asset's curves into fixed-size arrays (done once per market state)."""
    n = len(liquidity)
    curves_of = [(asset.bid, asset.ask) for asset in liquidity]
    width = max([c.size.size for pair in curves_of for c in pair if c is not None], default=2)
    curves = np.zeros((2, n, 4, width))
    knots = np.zeros((2, n), dtype=np.int64)
    kind = np.zeros(n, dtype=np.int8)
    for a, asset in enumerate(liquidity):
        if asset.bid is not None and asset.ask is not None:
            kind[a] = BOOK
            for side, curve in enumerate((asset.bid, asset.ask)):
                k = curve.size.size
                knots[side, a] = k
                curves[side, a, 0, :k] = curve.size
                curves[side, a, 1, :k] = curve.distance
                curves[side, a, 2, : k - 1] = curve.slope
                curves[side, a, 3, :k] = curve.integral
        elif math.isfinite(asset.adv):
            kind[a] = SQRT_LAW
    return PackedLiquidity(
        kind=kind,
        curves=curves,
        knots=knots,
        adv=np.array([asset.adv for asset in liquidity]),
        vol_spread=np.array([asset.vol_spread for asset in liquidity]),
    )


@jit()
def _walk(u: float, curve: FloatArray, k: int) -> float:
    """D(u): the integral of fill distance over the first u units of one curve (see `walk_cost`)."""
    j = 0
    while j < k - 2 and curve[0, j + 1] <= u:
        j += 1
    x = u - curve[0, j]
    return float(curve[3, j] + curve[1, j] * x + 0.5 * curve[2, j] * x * x)


@jit(parallel=True)
def _liquidity_kernel(
    greeks: FloatArray,
    asset: NDArray[np.int64],
    kind: NDArray[np.int8],
    curves: FloatArray,
    knots: NDArray[np.int64],
    adv: FloatArray,
    vol_spread: FloatArray,
    price: FloatArray,
    daily_vol: FloatArray,
    stress: float,
    half_spread: float,
    coefficient: float,
    out: FloatArray,
) -> None:
    """out (H,): the close-out cost of each row's net delta and vega (greeks (H, 3)) on asset asset[h]."""
    for h in prange(greeks.shape[0]):
        a = asset[h]
        q = greeks[h, 0]
        cost = 0.0
        if q != 0.0:
            size = abs(q)
            if kind[a] == BOOK:
                side = 0 if q > 0.0 else 1
                cost = price[a] * _walk(size * stress, curves[side, a], knots[side, a]) / stress
            elif kind[a] == SQRT_LAW:
                impact = coefficient * daily_vol[a] * math.sqrt(size * stress / adv[a])
                cost = price[a] * size * (half_spread + impact)
        spread = vol_spread[a]
        if spread == spread:  # not NaN
            cost += abs(greeks[h, 2]) * (spread / 2.0 / VOL_POINT) * stress
        out[h] = cost


def liquidity_kernel(
    greeks: FloatArray,
    packed: PackedLiquidity,
    price: FloatArray,
    daily_vol: FloatArray,
    stress: float,
    half_spread: float,
    coefficient: float,
    asset: NDArray[np.int64] | None = None,
) -> FloatArray:
    """The same add-on as `liquidity_by_asset`, fused: (N, A) from greeks (N, A, 3), or (H,) from the Greeks on
    the held rows (H, 3) whose assets are `asset` (H,) (`factors.held.HeldAssets`)."""
    if asset is None:
        n, n_assets = greeks.shape[0], greeks.shape[1]
        dense = liquidity_kernel(
            np.ascontiguousarray(greeks).reshape(n * n_assets, 3),
            packed,
            price,
            daily_vol,
            stress,
            half_spread,
            coefficient,
            every_asset(n, n_assets).asset,
        )
        return dense.reshape(n, n_assets)
    out = np.empty(greeks.shape[0])
    _liquidity_kernel(
        greeks,
        asset,
        packed.kind,
        packed.curves,
        packed.knots,
        packed.adv,
        packed.vol_spread,
        price,
        daily_vol,
        stress,
        half_spread,
        coefficient,
        out,
    )
    return out
