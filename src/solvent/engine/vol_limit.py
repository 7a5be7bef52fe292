"""`vol_only`: what a volatility-scaled leverage limit charges, the comparison the stress lab and the streaming
engine run beside the multi-factor model and the venue rules.

IM = z_c x sigma_a x sqrt(MPOR / year) x |quantity x contract size x forward| per position, summed per account
(a parametric normal VaR of each position's notional on its own, no netting and no offsets); MM = the
`maintenance.fraction` of it. z_c is the standard normal quantile at `params.confidence`, sigma_a the asset's
effective volatility (the one the multi-factor model scans with).
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray
from scipy.special import ndtri

from solvent.engine.book import Book
from solvent.market.state import MarketState
from solvent.params import MarginParams

FloatArray = NDArray[np.float64]

#: The model's name where models are chosen by name (`lab.models`, `StreamEngine(model=...)`).
VOL_ONLY = "vol_only"


def vol_scaled_requirement(
    book: Book, state: MarketState, params: MarginParams, vol: FloatArray | None = None
) -> tuple[FloatArray, FloatArray]:
    """(IM, MM) (N,) of every account of `book` under the volatility-scaled limit (module docstring); `vol` (A,)
    overrides the state's effective volatility (the stream's fast volatility)."""
    sigma = state.vol if vol is None else vol
    inst = book.pos_instrument
    size = state.instruments.contract_size[inst]
    notional = np.abs(book.pos_quantity * size * state.forward[inst])
    z = float(ndtri(params.confidence))
    scale = z * sigma[state.instruments.asset[inst]] * math.sqrt(params.mpor_days / params.days_per_year)
    im: FloatArray = np.bincount(book.position_account(), weights=notional * scale, minlength=book.n_accounts).astype(
        np.float64
    )
    return im, np.asarray(params.maintenance.fraction * im, dtype=np.float64)
