"""Fair populations: each model's venue opens the same traders' intents within that model's own IM.

A trader brings collateral and wants a notional (`lab.cascade.population`: the leverage a placeholder
distribution, `PopulationSpec`); a venue refuses an order that would leave the account below its IM. So under
each model the stress lab opens every intent as far as that model allows: the account keeps its collateral and
the mix of its positions, and every position is scaled by the same factor s in (0, 1] until IM <= equity
(s = 1 where the intent already fits: its leverage is capped by the model, never raised). IM is not linear in
size (the liquidity and concentration add-ons grow faster), so the factor is found by repeated rescaling,
s <- s x min(1, equity / IM) x (1 - `SLACK`), until every account fits (at most `ROUNDS` times; ValueError
after that). Nobody starts below IM, hence none below MM, under its own model, so no model's results carry
accounts it would never have let in; the unfitted intents (`fair=False` in `lab.stress.run_episode`) remain a
choice, and the accounts they start below MM are then counted apart (`liquidatable_at_start`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from solvent.api import compute_margin
from solvent.baselines import BaselineParams
from solvent.engine.book import Book
from solvent.formats.schemas import MarketSnapshot
from solvent.lab.models import model_margin
from solvent.params import MarginParams

FloatArray = NDArray[np.float64]

#: Rescaling rounds before giving up (each margins the whole book once).
ROUNDS = 60
#: Each rescaling aims this fraction below the IM, so that rounding never leaves an account a hair above it.
SLACK = 1e-6


@dataclass(frozen=True, eq=False)
class FittedPopulation:
    """The book each account opens under `model` and its scale factor (N,) on the intents."""

    model: str
    book: Book
    scale: FloatArray

    def summary(self) -> dict[str, float | int]:
        """JSON-ready: how many accounts the model capped and the share of the intended perpetual notional (at
        entry prices) it opened."""
        per_position = np.repeat(self.scale, np.diff(self.book.pos_offsets))
        opened = np.abs(self.book.pos_quantity) * np.nan_to_num(self.book.pos_entry)  # an option has no entry
        intended = float((opened / per_position).sum())
        return {
            "capped_accounts": int(np.count_nonzero(self.scale < 1.0)),
            "opened_notional_share": float(opened.sum()) / intended if intended > 0.0 else 1.0,
        }


def scaled(book: Book, scale: FloatArray) -> Book:
    """`book` with every position of account i times scale[i] (collateral and entries unchanged)."""
    per_position = np.repeat(scale, np.diff(book.pos_offsets))
    return dataclasses.replace(book, pos_quantity=book.pos_quantity * per_position)


def fit_to_margin(
    book: Book,
    market: MarketSnapshot,
    params: MarginParams,
    model: str,
    baselines: BaselineParams | None = None,
) -> FittedPopulation:
    """Every account of `book` (perpetuals entered at the snapshot's prices) opened within `model`'s IM (module
    docstring). Equity as the engine values it (collateral, and the options' premium: a short option's lowers it,
    so it too scales with the positions)."""
    scale = np.ones(book.n_accounts)
    for _ in range(ROUNDS):
        trial = scaled(book, scale)
        engine = compute_margin(trial, market, params)
        equity = engine.equity
        im = engine.im if model == "multi" else model_margin(model, trial, market, params, baselines=baselines).im
        over = im > equity
        if not over.any():
            return FittedPopulation(model=model, book=scaled(book, scale), scale=scale)
        ratio = np.where(over, equity / np.where(over, im, 1.0) * (1.0 - SLACK), 1.0)
        scale = scale * ratio
    raise ValueError(f"{model}: {int(over.sum())} accounts still above their IM after {ROUNDS} rescalings")
