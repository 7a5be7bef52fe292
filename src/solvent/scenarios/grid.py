"""SPAN-style grid: 16 scenarios per traded asset, one scenario group per asset.

Layout, in SPAN's order (McMillan, *Options as a Strategic Investment*, Part V, p. 670), as fractions
of the asset's scan range and signs of the volatility scan:

     1 price unchanged, vol up        2 price unchanged, vol down
     3 up 1/3, vol up                 4 up 1/3, vol down
     5 down 1/3, vol up               6 down 1/3, vol down
     7 up 2/3, vol up                 8 up 2/3, vol down
     9 down 2/3, vol up              10 down 2/3, vol down
    11 up 3/3, vol up                12 up 3/3, vol down
    13 down 3/3, vol up              14 down 3/3, vol down
    15 up extreme, vol unchanged     16 down extreme, vol unchanged

Conventions:
- Traded assets are the sorted unique `state.instruments.asset` columns (assets with instruments);
  group g (0 .. n_traded - 1) moves only the g-th traded asset, every other column moves 0. Assets
  without instruments (USD, collateral-only assets) get no group.
- Scan range (relative) = z(scan_confidence) * vol * sqrt(h), z the standard normal quantile, vol the
  state's effective annualised vol, h = mpor_days / days_per_year.
- Vol up / down = +/- `vol_scan` (relative to the current implied vol).
- The extreme scenarios move `extreme_multiple` scan ranges with vol unchanged and carry
  pnl_weight = `extreme_cover` (SPAN covers 35% of a 2x move); the others weight 1.
- A move must stay above -100%: a down price move (or a vol-down move) larger than 99% is clipped to
  -0.99 (it happens only with enormous vols or scans; the 1/3, 2/3 ladder is then no longer evenly
  spaced at the bottom).
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray
from scipy.special import ndtri

from solvent.market.state import MarketState
from solvent.params import GridParams, MarginParams
from solvent.scenarios.base import ScenarioSet, per_asset_grid, traded_assets

FloatArray = NDArray[np.float64]

#: Smallest move a scenario may carry (a -100% move is not a price).
MIN_MOVE = -0.99

_FRACTIONS = np.array([0, 0, 1, 1, -1, -1, 2, 2, -2, -2, 3, 3, -3, -3, 0, 0], dtype=np.float64) / 3.0
_VOL_SIGNS = np.array([1, -1] * 7 + [0, 0], dtype=np.float64)
_NAMES = (
    "unchanged", "unchanged", "up 1/3", "up 1/3", "down 1/3", "down 1/3", "up 2/3", "up 2/3",
    "down 2/3", "down 2/3", "up 3/3", "up 3/3", "down 3/3", "down 3/3", "up extreme", "down extreme",
)  # fmt: skip
_VOL_NAMES = {1.0: "vol up", -1.0: "vol down", 0.0: "vol unchanged"}
N_SPAN = 16


def span_price_fractions(grid: GridParams) -> tuple[FloatArray, FloatArray, FloatArray]:
    """The 16 SPAN scenarios as (price fraction of the scan range, vol sign, pnl weight), each (16,).

    The extreme pair moves +/- `extreme_multiple` scans with vol sign 0 and weight `extreme_cover`.
    """
    fraction = _FRACTIONS.copy()
    fraction[14], fraction[15] = grid.extreme_multiple, -grid.extreme_multiple
    weight = np.ones(N_SPAN, dtype=np.float64)
    weight[14:] = grid.extreme_cover
    return fraction, _VOL_SIGNS.copy(), weight


def scan_ranges(state: MarketState, params: MarginParams) -> FloatArray:
    """(A,) relative scan range per asset: z(scan_confidence) * vol * sqrt(mpor_days / days_per_year)."""
    z = float(ndtri(params.scenarios.grid.scan_confidence))
    return np.asarray(z * state.vol * math.sqrt(params.mpor_days / params.days_per_year), dtype=np.float64)


def span_grid(state: MarketState, params: MarginParams) -> ScenarioSet:
    """16 SPAN scenarios per traded asset (16 x n_traded rows, one group per traded asset)."""
    grid = params.scenarios.grid
    traded = traded_assets(state.instruments.asset)
    fraction, vol_sign, weight = span_price_fractions(grid)
    scan = scan_ranges(state, params)[traded]
    labels = tuple(
        f"{state.assets[a]} #{i + 1} {_NAMES[i]}, {_VOL_NAMES[float(vol_sign[i])]}"
        for a in traded.tolist()
        for i in range(N_SPAN)
    )
    return per_asset_grid(
        "grid",
        len(state.assets),
        traded,
        np.maximum(np.outer(scan, fraction), MIN_MOVE),
        np.maximum(np.tile(vol_sign * grid.vol_scan, (traded.size, 1)), MIN_MOVE),
        weight,
        labels,
        params.mpor_days / params.days_per_year,
    )
