"""The liquidity add-on: the cost of closing each account's net delta and vega per asset.

Pure functions over arrays; every formula, default and source is in docs/model.md ("Liquidity
add-on"). Delta is closed against the book (sell into the bid when long, buy from the ask when
short) under a stress multiplier that divides every cumulative size (book thinning); where an asset
has no depth curve but an average daily volume, the square-root impact law prices it instead. Vega is
closed at half the implied-vol bid-ask, widened by the same stress multiplier.
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

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
