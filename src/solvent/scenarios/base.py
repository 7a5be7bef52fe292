"""The scenario set every generator returns and every risk array is built on."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]


@dataclass(frozen=True, eq=False)
class ScenarioSet:
    """S joint scenarios over A assets (columns in `MarketState.assets` order).

    price_move (S, A): relative price move, new price = price * (1 + move), move > -1.
    vol_move (S, A): relative implied-vol move, new vol = vol * (1 + move), move > -1.
    pnl_weight (S,): factor applied to every P&L in the scenario (SPAN's extreme-move cover
        fraction, Deribit's extended-move damping); 1 elsewhere.
    group (S,): non-decreasing group index. The margin measure is taken within each group and the
        group results are summed: per-asset grids have one group per asset (no offsets between
        assets, as in SPAN); joint generators (fhs, mc) have a single group 0.
    horizon_years: the margin period of risk the moves span; options decay by it.
    group_asset: for per-asset grids, the asset column each group shocks (G,); an instrument's
        P&L counts only in its own asset's group (elsewhere its asset is unchanged, and charging
        its time decay once per other asset would double count it). None for joint generators.
    vol_term: (exponent up to pivot, exponent beyond, pivot in years) when vol moves scale with
        each option's time to expiry as (pivot / T) ** exponent (Deribit); None for no scaling.
    labels: a short human label per scenario.
    """

    name: str
    price_move: FloatArray
    vol_move: FloatArray
    pnl_weight: FloatArray
    group: NDArray[np.int32]
    horizon_years: float
    labels: tuple[str, ...]
    vol_term: tuple[float, float, float] | None = None
    group_asset: NDArray[np.int64] | None = None

    def __post_init__(self) -> None:
        s, a = self.price_move.shape
        if self.vol_move.shape != (s, a) or self.pnl_weight.shape != (s,) or self.group.shape != (s,):
            raise ValueError("scenario arrays disagree in shape")
        if len(self.labels) != s:
            raise ValueError("one label per scenario")
        if s and np.any(np.diff(self.group) < 0):
            raise ValueError("group must be non-decreasing")
        if np.any(self.price_move <= -1.0) or np.any(self.vol_move <= -1.0):
            raise ValueError("price and vol moves must be greater than -100%")

    @property
    def n_scenarios(self) -> int:
        """S."""
        return int(self.price_move.shape[0])

    @property
    def group_offsets(self) -> NDArray[np.int64]:
        """(G + 1,) CSR offsets of each group's scenarios."""
        counts = np.bincount(self.group) if self.group.size else np.zeros(0, dtype=np.int64)
        return np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
