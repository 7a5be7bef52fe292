"""The margin models the stress lab compares, each asked the same question: the IM and MM of a book now.

A closed set of names (`MODEL_NAMES`): the venue rules of `solvent.baselines` (`static`, `dydx`,
`synthetix`, `drift`, `deribit`), `vol_only` (a parametric normal VaR of each position's notional at the
current fast volatility, summed over positions: what a volatility-scaled leverage limit charges), and `multi`
(the full multi-factor model, `compute_margin` under the given parameters). Every model reads the same
`MarketSnapshot`, so they see the same prices and volatilities.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final, Literal, get_args

import numpy as np
from numpy.typing import NDArray

from solvent.api import compute_margin
from solvent.baselines import BASELINE_NAMES, BaselineParams
from solvent.baselines.book import baseline_margin, option_unit_values
from solvent.engine.book import Book
from solvent.engine.vol_limit import VOL_ONLY, vol_scaled_requirement
from solvent.formats.schemas import MarketSnapshot
from solvent.market.history import PriceHistory
from solvent.market.state import build_market_state
from solvent.params import MarginParams

FloatArray = NDArray[np.float64]

ModelName = Literal["static", "dydx", "synthetix", "drift", "deribit", "vol_only", "multi"]
MODEL_NAMES: Final[tuple[ModelName, ...]] = get_args(ModelName)


@dataclass(frozen=True, eq=False)
class Requirement:
    """IM and MM (N,) of every account of a book under one model."""

    model: str
    im: FloatArray
    mm: FloatArray


def check_models(names: list[str]) -> list[ModelName]:
    """`names`, validated against MODEL_NAMES (ValueError naming the first unknown one)."""
    unknown = [n for n in names if n not in MODEL_NAMES]
    if unknown:
        raise ValueError(f"unknown model {unknown[0]!r}: expected one of {', '.join(MODEL_NAMES)}")
    return [n for n in MODEL_NAMES if n in names]


def model_margin(
    name: str,
    book: Book,
    market: MarketSnapshot,
    params: MarginParams,
    history: PriceHistory | None = None,
    baselines: BaselineParams | None = None,
) -> Requirement:
    """IM and MM of every account of `book` at `market` under model `name`."""
    if name == "multi":
        result = compute_margin(book, market, params, history)
        return Requirement(name, result.im, result.mm)
    state = build_market_state(list(book.instruments), market, params)
    if name == VOL_ONLY:
        im, mm = vol_scaled_requirement(book, state, params)
        return Requirement(name, im, mm)
    if name not in BASELINE_NAMES:
        raise ValueError(f"unknown model {name!r}: expected one of {', '.join(MODEL_NAMES)}")
    time_floor = params.volatility.time_floor_days / params.days_per_year
    rule = baseline_margin(
        book, state, baselines or BaselineParams(), name, unit_value=option_unit_values(state, time_floor)
    )
    return Requirement(name, rule.im, rule.mm)
