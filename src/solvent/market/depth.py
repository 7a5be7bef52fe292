"""Order-book depth curves as arrays: what the liquidity add-on walks.

Built once at the boundary from a validated `Depth` record. A side of the book is the marginal fill
distance from mid as a piecewise-linear function of cumulative size, through knots
`(size[0] = 0, distance[0]), (size[1], distance[1]), ...`; beyond the last knot it continues with the
last segment's slope. See docs/model.md, "Liquidity add-on".
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from solvent.formats.schemas import AssetQuote, Depth

FloatArray = NDArray[np.float64]

#: Knots of the parametric form: the distances (fractions of mid) at which depth_1pct / depth_2pct are quoted.
PARAMETRIC_DISTANCES = (0.01, 0.02)


@dataclass(frozen=True, eq=False)
class DepthCurve:
    """One side of a book: K >= 2 knots of (cumulative size, fill distance), with the integral at each knot.

    size: (K,) strictly increasing, size[0] = 0. distance: (K,) non-decreasing, >= 0. slope: (K - 1,)
    d distance / d size on each segment (the last also extrapolates). integral: (K,) the integral of
    distance over size from 0 to each knot (units x fraction).
    """

    size: FloatArray
    distance: FloatArray
    slope: FloatArray
    integral: FloatArray

    @classmethod
    def from_knots(cls, size: FloatArray, distance: FloatArray) -> DepthCurve:
        """Precompute slopes and the running integral of a piecewise-linear curve."""
        widths = np.diff(size)
        slope = np.diff(distance) / widths
        areas = widths * (distance[:-1] + distance[1:]) / 2.0
        integral = np.concatenate(([0.0], np.cumsum(areas)))
        return cls(size=size, distance=distance, slope=slope, integral=integral)


@dataclass(frozen=True, eq=False)
class AssetLiquidity:
    """One asset's liquidity inputs: a curve per side (or None), ADV and vol bid-ask (NaN when absent)."""

    bid: DepthCurve | None = None
    ask: DepthCurve | None = None
    adv: float = math.nan
    vol_spread: float = math.nan

    def scaled(self, factor: float) -> AssetLiquidity:
        """The same book holding `factor` times the size at every distance (and `factor` x the ADV)."""
        if factor == 1.0:
            return self
        return AssetLiquidity(
            bid=None if self.bid is None else DepthCurve.from_knots(self.bid.size * factor, self.bid.distance),
            ask=None if self.ask is None else DepthCurve.from_knots(self.ask.size * factor, self.ask.distance),
            adv=self.adv * factor,
            vol_spread=self.vol_spread,
        )

    @property
    def has_depth(self) -> bool:
        """True when close-out cost of a delta can be computed (a curve, or ADV for square-root impact)."""
        return self.bid is not None or math.isfinite(self.adv)


def _cap_bid(size: FloatArray, distance: FloatArray) -> tuple[FloatArray, FloatArray]:
    """A bid distance cannot pass 1 (a price of 0): add the knot where the last segment reaches 1, then flat."""
    slope = (distance[-1] - distance[-2]) / (size[-1] - size[-2])
    with np.errstate(divide="ignore", over="ignore"):
        reach = max(float(size[-1] + (1.0 - distance[-1]) / slope), float(np.nextafter(size[-1], np.inf)))
        end = reach * 2.0
    if not math.isfinite(end):  # the last segment never reaches 1 in floating point: nothing to cap
        return size, distance
    return np.append(size, [reach, end]), np.append(distance, [1.0, 1.0])


def book_side(points: list[tuple[float, float]], bid: bool) -> DepthCurve:
    """A book curve side: the first level's distance holds from size 0 to its cumulative size."""
    distance = np.array([d for d, _ in points], dtype=np.float64)
    size = np.array([q for _, q in points], dtype=np.float64)
    size, distance = np.concatenate(([0.0], size)), np.concatenate(([distance[0]], distance))
    if bid:
        size, distance = _cap_bid(size, distance)
    return DepthCurve.from_knots(size, distance)


def parametric_side(spread: float, depth_1pct: float, depth_2pct: float, bid: bool) -> DepthCurve:
    """The parametric form as three knots: (0, spread / 2), (depth_1pct, 1%), (depth_2pct, 2%)."""
    size = np.array([0.0, depth_1pct, depth_2pct], dtype=np.float64)
    distance = np.array([spread / 2.0, *PARAMETRIC_DISTANCES], dtype=np.float64)
    if bid:
        size, distance = _cap_bid(size, distance)
    return DepthCurve.from_knots(size, distance)


def depth_curves(depth: Depth) -> tuple[DepthCurve, DepthCurve]:
    """(bid, ask) curves of a validated Depth record."""
    if depth.bid is not None and depth.ask is not None:
        return book_side(depth.bid, bid=True), book_side(depth.ask, bid=False)
    assert depth.spread is not None and depth.depth_1pct is not None and depth.depth_2pct is not None
    args = (depth.spread, depth.depth_1pct, depth.depth_2pct)
    return parametric_side(*args, bid=True), parametric_side(*args, bid=False)


def asset_liquidity(quote: AssetQuote | None) -> AssetLiquidity:
    """An asset's liquidity inputs from its quote (everything absent for an unquoted asset such as USD)."""
    if quote is None:
        return AssetLiquidity()
    bid, ask = depth_curves(quote.depth) if quote.depth is not None else (None, None)
    return AssetLiquidity(
        bid=bid,
        ask=ask,
        adv=math.nan if quote.adv is None else quote.adv,
        vol_spread=math.nan if quote.vol_spread is None else quote.vol_spread,
    )
