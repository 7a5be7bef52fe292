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
- The scan (the 3/3 moves) is the price move the margin measure asks for at its confidence, on a lognormal
  price over the MPOR: log return ~ N(0, s^2), s = vol * sqrt(h), vol the state's effective annualised vol,
  h = mpor_days / days_per_year, c = `grid.scan_confidence` or, when null (the default), `confidence`:
    measure "var" or "worst": the c-quantile of each side, up = expm1(z s), down = expm1(-z s), z = Phi^-1(c)
      (a grid's worst scenario is its scan edge: SPAN sets the scan range at a coverage quantile);
    measure "es": each side's lognormal expected shortfall beyond that quantile, the mean move given the move
      is beyond it: up = e^(s^2/2) Phi(s - z) / (1 - c) - 1, down = e^(s^2/2) Phi(-z - s) / (1 - c) - 1.
  A linear position's largest grid loss is then its ES (VaR) at c, exactly. The 1/3, 2/3 and extreme moves are
  the same fractions of each side's log distance: move = expm1(k log(1 + edge)), the log move clipped to
  +/- log(100) (moves within [-99%, +9,900%]: only enormous vols reach it).
- `grid.moves` "normal": the symmetric price-space scan of SPAN's layout, +/- k x z_m s with z_m = z (var,
  worst) or the normal ES quantile phi(z) / (1 - c) (es); kept for SPAN's published examples.
- Vol up / down = +/- `vol_scan` (relative to the current implied vol).
- The extreme scenarios move `extreme_multiple` scans with vol unchanged and carry
  pnl_weight = `extreme_cover` (SPAN covers 35% of a 2x move); the others weight 1.
- A move must stay above -100%: a down price move (or a vol-down move) larger than 99% is clipped to
  -0.99 (it happens only with enormous vols or scans in the "normal" moves; the 1/3, 2/3 ladder is then no
  longer evenly spaced at the bottom).
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray
from scipy.special import log_ndtr, ndtri

from solvent.market.state import MarketState
from solvent.params import GridParams, MarginParams
from solvent.scenarios.base import ScenarioSet, per_asset_grid, traded_assets

FloatArray = NDArray[np.float64]

#: Smallest move a scenario may carry (a -100% move is not a price).
MIN_MOVE = -0.99
#: Largest log move of the lognormal scan, either side: log(100), moves within [-99%, +9,900%] (an enormous vol
#: would otherwise overflow e^(s^2 / 2)).
MAX_LOG_MOVE = math.log(100.0)

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


def scan_quantile(params: MarginParams) -> tuple[float, float]:
    """(c, z): the scan's confidence (`grid.scan_confidence`, else `confidence`) and z = Phi^-1(c)."""
    grid = params.scenarios.grid
    c = params.confidence if grid.scan_confidence is None else grid.scan_confidence
    return c, float(ndtri(c))


def scan_ranges(state: MarketState, params: MarginParams) -> FloatArray:
    """(A,) relative scan range per asset of the "normal" moves: z_m * vol * sqrt(mpor_days / days_per_year), z_m
    the normal quantile (measure var, worst) or the normal ES quantile phi(z) / (1 - c) (es)."""
    c, z = scan_quantile(params)
    if params.measure == "es":
        z = math.exp(-0.5 * z * z) / math.sqrt(2.0 * math.pi) / (1.0 - c)
    return np.asarray(z * state.vol * math.sqrt(params.mpor_days / params.days_per_year), dtype=np.float64)


def scan_log_edges(state: MarketState, params: MarginParams) -> tuple[FloatArray, FloatArray]:
    """((A,) up, (A,) down): each asset's 3/3 log moves log(1 + move) (down < 0 < up), lognormal moves:
    +/- z s (var, worst) or s^2 / 2 + log Phi(s - z) - log(1 - c) and s^2 / 2 + log Phi(-z - s) - log(1 - c) (es),
    computed in logs (scipy's log_ndtr) so that neither overflows."""
    c, z = scan_quantile(params)
    s = np.asarray(state.vol * math.sqrt(params.mpor_days / params.days_per_year), dtype=np.float64)
    if params.measure == "es":
        base = 0.5 * s * s - math.log1p(-c)
        return np.asarray(base + log_ndtr(s - z)), np.asarray(base + log_ndtr(-z - s))
    return np.asarray(z * s), np.asarray(-z * s)


def scan_moves(state: MarketState, params: MarginParams, traded: NDArray[np.int64], fraction: FloatArray) -> FloatArray:
    """(T, L) price moves of the traded assets for the scan fractions `fraction` (L,) (1 = the 3/3 move):
    "lognormal": expm1(k x log edge of its side), the log move clipped to +/- MAX_LOG_MOVE; "normal": k x scan.
    Clipped at MIN_MOVE."""
    k = fraction[np.newaxis, :]
    if params.scenarios.grid.moves == "normal":
        raw = np.outer(scan_ranges(state, params)[traded], fraction)
    else:
        up, down = scan_log_edges(state, params)
        log_move = np.where(k > 0.0, k * up[traded][:, np.newaxis], -k * down[traded][:, np.newaxis])
        raw = np.expm1(np.clip(log_move, -MAX_LOG_MOVE, MAX_LOG_MOVE))
    return np.asarray(np.maximum(raw, MIN_MOVE), dtype=np.float64)


def span_grid(state: MarketState, params: MarginParams) -> ScenarioSet:
    """16 SPAN scenarios per traded asset (16 x n_traded rows, one group per traded asset)."""
    grid = params.scenarios.grid
    traded = traded_assets(state.instruments.asset)
    fraction, vol_sign, weight = span_price_fractions(grid)
    labels = tuple(
        f"{state.assets[a]} #{i + 1} {_NAMES[i]}, {_VOL_NAMES[float(vol_sign[i])]}"
        for a in traded.tolist()
        for i in range(N_SPAN)
    )
    return per_asset_grid(
        "grid",
        len(state.assets),
        traded,
        scan_moves(state, params, traded, fraction),
        np.maximum(np.tile(vol_sign * grid.vol_scan, (traded.size, 1)), MIN_MOVE),
        weight,
        labels,
        params.mpor_days / params.days_per_year,
    )
