"""Deribit-style portfolio-margin grid, one scenario group per traded asset.

Deribit's portfolio margin (values returned by its `private/pme/simulate`, June 2024; see
REFERENCES.md; Derive's open `PMRMLib_2.sol` in derivexyz/v2-core is the closest open analogue)
revalues the book on a price ladder from -max_move to +max_move in `step` steps (+/-16% by 4%: 9
points), each with the implied vol shocked up by `vol_up` and down by `vol_down` (relative: +50%,
-25%), and on a few extended moves with vol unchanged, whose losses count at `extended_damping`. Deribit
publishes neither its extended moves nor its dampener, so these two are illustrative: by default SPAN's
extreme move, twice the ladder's edge (+/-32%) at 35% (McMillan p. 670), which never dominates a linear
position or a naked short ATM option (the earlier -66% / +500% at 10% charged a naked short 30-day ATM
call 49% of notional against 14% on the ladder alone). The vol shock of each option scales with its time to expiry T as
(pivot / T) ** exponent, exponent `short_dte_exponent` (0.3) when T <= pivot (30 days) and
`long_dte_exponent` (0.13) beyond: the set carries `vol_term` and the risk-array builder applies
`vol_term_scale` per option.

Conventions:
- Traded assets are the sorted unique `state.instruments.asset` columns; group g moves only the g-th
  traded asset. Within a group: the 2 x n_ladder ladder scenarios in ascending price, vol up then
  vol down at each price, then the extended moves in the configured order.
- The ladder is step * k for k = -n .. n, n = floor(max_move / step) (a max_move that is not a
  multiple of step stops at the last full step inside it).
- An extended move <= -100% is rejected (InputError); it is not a price.
- horizon_years = mpor_days / days_per_year (options decay by it; Deribit revalues instantly).
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

from solvent.errors import InputError
from solvent.market.state import MarketState
from solvent.params import DeribitParams, MarginParams
from solvent.scenarios.base import ScenarioSet, per_asset_grid, traded_assets

FloatArray = NDArray[np.float64]


def vol_term_scale(years: FloatArray, vol_term: tuple[float, float, float]) -> FloatArray:
    """(O,) multiplier of each option's vol shock: (pivot / T) ** exponent.

    years: (O,) times to expiry in years, all > 0. vol_term: (exponent for T <= pivot, exponent for
    T > pivot, pivot in years). Short-dated options (T < pivot) get a larger shock, long-dated a
    smaller one; the multiplier is 1 at the pivot.
    """
    t = np.asarray(years, dtype=np.float64)
    if np.any(~(t > 0.0)):
        raise ValueError(f"vol_term_scale needs times to expiry > 0, got {t[~(t > 0.0)][0]!r}")
    short_exponent, long_exponent, pivot = vol_term
    exponent = np.where(t <= pivot, short_exponent, long_exponent)
    return np.asarray((pivot / t) ** exponent, dtype=np.float64)


def deribit_ladder(deribit: DeribitParams) -> tuple[FloatArray, FloatArray, FloatArray]:
    """One asset's scenarios as (price move, vol move, pnl weight), each (2 * n_ladder + n_extended,)."""
    n = math.floor(deribit.max_move / deribit.step + 1e-9)
    ladder = deribit.step * np.arange(-n, n + 1, dtype=np.float64)
    extended = np.array(deribit.extended_moves, dtype=np.float64)
    bad = extended[extended <= -1.0]
    if bad.size:
        raise InputError("", "scenarios.deribit.extended_moves", f"a move must be > -1 (-100%), got {bad[0]!r}")
    price = np.concatenate([np.repeat(ladder, 2), extended])
    vol = np.concatenate([np.tile([deribit.vol_up, -deribit.vol_down], ladder.size), np.zeros(extended.size)])
    weight = np.concatenate([np.ones(2 * ladder.size), np.full(extended.size, deribit.extended_damping)])
    return price, vol, weight


def deribit_grid(state: MarketState, params: MarginParams) -> ScenarioSet:
    """The Deribit-style grid for every traded asset (one group per traded asset)."""
    deribit = params.scenarios.deribit
    traded = traded_assets(state.instruments.asset)
    price, vol, weight = deribit_ladder(deribit)
    vol_names = {deribit.vol_up: "vol up", -deribit.vol_down: "vol down", 0.0: "vol unchanged"}
    labels = tuple(
        f"{state.assets[a]} {p:+.0%} {vol_names[v]}"
        for a in traded.tolist()
        for p, v in zip(price.tolist(), vol.tolist(), strict=True)
    )
    return per_asset_grid(
        "deribit",
        len(state.assets),
        traded,
        np.tile(price, (traded.size, 1)),
        np.tile(vol, (traded.size, 1)),
        weight,
        labels,
        params.mpor_days / params.days_per_year,
        vol_term=(deribit.short_dte_exponent, deribit.long_dte_exponent, deribit.pivot_days / params.days_per_year),
    )
