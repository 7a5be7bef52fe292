"""Scenario generators: joint moves of every asset's price and implied vol over the MPOR.

`generate_scenarios` picks the generator named by `params.scenarios.method`:

- "grid": SPAN-style 16 scenarios per traded asset, one group per asset (`span_grid`).
- "deribit": Deribit-style +/-16% ladder with vol up / down and damped extended moves (`deribit_grid`).
- "fhs": filtered historical simulation from a price history (`filtered_historical`).
- "mc": stressed-correlation Monte Carlo (`monte_carlo`; the history, if given, sets the correlation).

Every generator returns a `ScenarioSet` over all `state.assets` columns; only traded assets (those
with instruments) move. Where the market carries oracle sources and `oracle.uncertainty_charge` is "scan",
every price move of asset a is then widened away from 0 by `oracle.scan_widening` * U_a / P_a
(`widen_price_moves`; docs/model.md, "Oracle uncertainty"); under the default "buffer" the uncertainty is
charged by the `oracle` IM term instead, never both. In the integrated collateral mode with
`collateral.depeg_scenario`, one stablecoin de-peg scenario is appended in a group of its own (`with_depeg_scenario`).
"""

from __future__ import annotations

import numpy as np

from solvent.errors import InputError
from solvent.market.history import PriceHistory
from solvent.market.state import MarketState
from solvent.params import MarginParams
from solvent.scenarios.base import ScenarioSet, widen_price_moves, with_depeg_scenario
from solvent.scenarios.deribit import deribit_grid, vol_term_scale
from solvent.scenarios.fhs import filtered_historical
from solvent.scenarios.grid import span_grid, span_price_fractions
from solvent.scenarios.mc import monte_carlo

__all__ = [
    "ScenarioSet",
    "deribit_grid",
    "filtered_historical",
    "generate_scenarios",
    "monte_carlo",
    "span_grid",
    "span_price_fractions",
    "vol_term_scale",
]


def generate_scenarios(state: MarketState, params: MarginParams, history: PriceHistory | None = None) -> ScenarioSet:
    """The scenario set of `params.scenarios.method` for `state` (and `history` where it is used),
    widened by the oracle uncertainty under `oracle.uncertainty_charge` "scan"."""
    scenarios = _generate(state, params, history)
    widening = params.oracle.scan_factor
    if state.has_oracle and widening > 0.0:
        scenarios = widen_price_moves(scenarios, widening * state.relative_uncertainty)
    collateral = params.collateral
    if collateral.mode == "integrated" and collateral.depeg_scenario:
        stable = [a for a, name in enumerate(state.assets) if name in collateral.stablecoins]
        scenarios = with_depeg_scenario(scenarios, np.array(stable, dtype=np.int64), collateral.depeg)
    return scenarios


def _generate(state: MarketState, params: MarginParams, history: PriceHistory | None) -> ScenarioSet:
    method = params.scenarios.method
    if method == "grid":
        return span_grid(state, params)
    if method == "deribit":
        return deribit_grid(state, params)
    if method == "fhs":
        if history is None:
            raise InputError(source="", where="scenarios.method", message="fhs needs a price history (--history)")
        return filtered_historical(state, params, history)
    if method == "mc":
        return monte_carlo(state, params, history)
    raise InputError(source="", where="scenarios.method", message=f"unknown scenario method {method!r}")
