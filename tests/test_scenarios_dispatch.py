"""generate_scenarios: one entry point over the four generators."""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pytest
from msgspec import structs

import solvent.scenarios as scenarios_module
from solvent.formats.schemas import AssetQuote, Instrument, MarketSnapshot
from solvent.market.history import PriceHistory
from solvent.market.state import MarketState, build_market_state
from solvent.params import MarginParams
from solvent.scenarios import ScenarioSet, generate_scenarios

METHODS = ["grid", "deribit", "fhs", "mc"]


def with_method(method: str) -> MarginParams:
    params = MarginParams()
    return structs.replace(params, scenarios=structs.replace(params.scenarios, method=method))


def market(params: MarginParams, instruments: list[Instrument]) -> MarketState:
    snapshot = MarketSnapshot(
        schema="solvent.market/1",
        time=datetime(2026, 1, 2, tzinfo=UTC),
        assets={"BTC": AssetQuote(price=50_000.0, vol=0.6), "ETH": AssetQuote(price=3000.0, vol=0.8)},
    )
    return build_market_state(instruments, snapshot, params)


def history() -> PriceHistory:
    rng = np.random.default_rng(0)
    closes = 100.0 * np.exp(np.cumsum(rng.normal(0.0, 0.03, (120, 2)), axis=0))
    timestamps = (np.datetime64("2025-06-01") + np.arange(120) * np.timedelta64(1, "D")).astype("datetime64[s]")
    return PriceHistory(timestamps, ("BTC", "ETH"), closes)


def test_public_surface() -> None:
    assert sorted(scenarios_module.__all__) == [
        "ScenarioSet",
        "deribit_grid",
        "filtered_historical",
        "generate_scenarios",
        "monte_carlo",
        "span_grid",
        "span_price_fractions",
        "vol_term_scale",
    ]


@pytest.mark.parametrize("method", METHODS)
def test_dispatches_on_method(method: str) -> None:
    params = with_method(method)
    state = market(params, [Instrument(id="BTC-PERP", kind="perp", underlying="BTC")])
    result = generate_scenarios(state, params, history())
    assert isinstance(result, ScenarioSet)
    assert result.name == method
    assert result.price_move.shape[1] == len(state.assets)
    eth = state.asset_index["ETH"]
    assert not result.price_move[:, eth].any()  # ETH has no instruments: it never moves


@pytest.mark.parametrize("method", METHODS)
def test_no_traded_assets_no_moves(method: str) -> None:
    params = with_method(method)
    result = generate_scenarios(market(params, []), params, history())
    assert not result.price_move.any() and not result.vol_move.any()
