"""Risk arrays: the P&L of one unit of every instrument under every scenario, and unit Greeks.

Linear products (spot, perpetual, future) move with their forward; an account's linear book on one
asset therefore nets to a single delta, and the kernel multiplies that delta by the asset's own
risk array. Options are fully revalued with Black-76 at the shocked forward and vol, after the MPOR's
time decay.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from solvent.market.history import PriceHistory
from solvent.market.state import OPTION, MarketState
from solvent.params import MarginParams
from solvent.pricing import black76_greeks, black76_price
from solvent.scenarios import generate_scenarios
from solvent.scenarios.base import ScenarioSet
from solvent.scenarios.deribit import vol_term_scale

FloatArray = NDArray[np.float64]

#: Columns of the unit-Greeks array.
DELTA, GAMMA, VEGA = 0, 1, 2
GREEK_NAMES = ("delta", "gamma", "vega")
VOL_POINT = 0.01


@dataclass(frozen=True, eq=False)
class RiskArrays:
    """Everything the aggregation kernel needs about instruments and scenarios.

    instrument_pnl (I, S): P&L of one unit of each instrument per scenario, pnl_weight applied.
    asset_pnl (A, S): P&L of one unit of each asset (price x move x weight).
    linear_weight (I,): units of the asset one unit of a linear instrument is worth in the
        scenarios (contract_size x forward / spot); 0 for options, which use instrument_pnl.
    unit_greeks (I, 3): per unit of instrument: delta (units of the underlying asset), gamma
        (delta change per 1 USD move of the asset) and vega (USD per vol point, 0.01).
    value (I,): present value of one unit (options: premium; linear products: 0).
    group_offsets (G + 1,): scenario groups (see ScenarioSet.group).
    """

    instrument_asset: NDArray[np.int32]
    instrument_pnl: FloatArray
    asset_pnl: FloatArray
    linear_weight: FloatArray
    unit_greeks: FloatArray
    value: FloatArray
    group_offsets: NDArray[np.int64]
    n_assets: int

    @property
    def n_scenarios(self) -> int:
        """S."""
        return int(self.asset_pnl.shape[1])


def build_risk_arrays(state: MarketState, scenarios: ScenarioSet, time_floor_years: float) -> RiskArrays:
    """Revalue every instrument under every scenario (vectorised over instruments x scenarios)."""
    table = state.instruments
    asset = table.asset
    spot = state.price[asset]
    forward = state.forward
    size = table.contract_size
    moves = scenarios.price_move[:, asset].T  # (I, S)
    weight = scenarios.pnl_weight[np.newaxis, :]
    is_option = table.kind == OPTION

    pnl = (size * forward)[:, np.newaxis] * moves
    greeks = np.zeros((len(table), 3), dtype=np.float64)
    value = np.zeros(len(table), dtype=np.float64)
    greeks[:, DELTA] = np.where(is_option, 0.0, size * forward / spot)
    if is_option.any():
        o = np.flatnonzero(is_option)
        f0, k, t0, v0 = forward[o], table.strike[o], state.expiry_years[o], state.option_vol[o]
        calls = table.is_call[o]
        now = black76_greeks(f0, k, t0, v0, state.rate, calls, time_floor=time_floor_years)
        dfds = forward[o] / spot[o]
        value[o] = size[o] * now.price
        greeks[o, DELTA] = size[o] * now.delta * dfds
        greeks[o, GAMMA] = size[o] * now.gamma * dfds**2
        greeks[o, VEGA] = size[o] * now.vega * VOL_POINT
        vol_moves = scenarios.vol_move[:, asset[o]].T  # (O, S)
        if scenarios.vol_term is not None:
            vol_moves = vol_moves * vol_term_scale(t0, scenarios.vol_term)[:, np.newaxis]
        t1 = np.maximum(t0 - scenarios.horizon_years, 0.0)[:, np.newaxis]
        shocked = black76_price(
            f0[:, np.newaxis] * (1.0 + moves[o]),
            k[:, np.newaxis],
            t1,
            v0[:, np.newaxis] * np.maximum(1.0 + vol_moves, 0.0),
            state.rate,
            calls[:, np.newaxis],
            time_floor=time_floor_years,
        )
        pnl[o] = size[o, np.newaxis] * (shocked - now.price[:, np.newaxis])
    if scenarios.group_asset is not None:
        # Per-asset grid: an instrument moves only in its own asset's group.
        pnl *= scenarios.group_asset[scenarios.group][np.newaxis, :] == asset[:, np.newaxis]
    asset_pnl = (state.price[:, np.newaxis] * scenarios.price_move.T) * weight
    return RiskArrays(
        instrument_asset=asset,
        instrument_pnl=np.ascontiguousarray(pnl * weight),
        asset_pnl=np.ascontiguousarray(asset_pnl),
        linear_weight=np.where(is_option, 0.0, size * forward / spot),
        unit_greeks=greeks,
        value=value,
        group_offsets=scenarios.group_offsets,
        n_assets=len(state.assets),
    )


def scenario_risk_arrays(
    state: MarketState, params: MarginParams, history: PriceHistory | None = None
) -> tuple[ScenarioSet, RiskArrays]:
    """The scenarios `params` call for and the risk arrays on them: the one path margin and attribution share."""
    scenarios = generate_scenarios(state, params, history)
    time_floor = params.volatility.time_floor_days / params.days_per_year
    return scenarios, build_risk_arrays(state, scenarios, time_floor)
