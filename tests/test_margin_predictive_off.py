"""`margin_accounts(..., predictive=False)`: the breach probability skipped, every other figure the same to the bit.

The liquidation sizer only needs IM, and calls the engine many times per slice; the predictive figures
(breach probability, early flag, loss volatility) are then None rather than computed and dropped.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import numpy as np
import pytest
from small_venue import INSTRUMENTS, LINEAR, NOW

from solvent.convert.inputs import portfolio_to_book
from solvent.engine.margin import account_equity, margin_accounts, risk_context
from solvent.engine.results import MarginResult
from solvent.factors.held import HeldAssets
from solvent.formats.schemas import Account, AssetQuote, Depth, MarketSnapshot, Portfolio, Position
from solvent.market.state import build_market_state
from solvent.params import CollateralParams, ConcentrationParams, MaintenanceParams, MarginParams

BTC, ETH = 95_000.0, 3_400.0
PREDICTIVE = ("breach_probability", "early_flag", "loss_vol")

SNAPSHOT = MarketSnapshot(
    schema="solvent.market/1",
    time=NOW,
    assets={
        "BTC": AssetQuote(
            price=BTC,
            vol=0.5,
            depth=Depth(bid=[(0.0005, 2.0), (0.01, 40.0)], ask=[(0.0005, 2.0), (0.01, 40.0)]),
            vol_spread=0.02,
        ),
        "ETH": AssetQuote(price=ETH, vol=0.7, adv=200_000.0, vol_spread=0.03),
    },
    rate=0.0,
)


def account(name: str, collateral: dict[str, float], *positions: tuple[str, float]) -> Account:
    entry = {"BTC": BTC, "ETH": ETH}
    return Account(
        id=name,
        collateral=collateral,
        positions=[
            Position(instrument=i, quantity=q, entry_price=entry[i[:3]] if i in LINEAR else None) for i, q in positions
        ],
    )


#: Linear and option positions on two assets, an account near MM, a healthy one and a flat one.
PORTFOLIO = Portfolio(
    schema="solvent.portfolio/1",
    instruments=INSTRUMENTS,
    accounts=[
        account("mixed", {"USD": 30_000.0}, ("BTC-PERP", 4.0), ("ETH-PERP", -30.0)),
        account("option", {"USD": 5_000.0, "BTC": 0.5}, ("BTC-PERP", -2.0), ("BTC-C", 1.0), ("BTC-P", -3.0)),
        account("healthy", {"USD": 1_000_000.0}, ("BTC-PERP", 1.0), ("ETH-C", 10.0)),
        account("hedged", {"USD": 100_000.0}, ("BTC-PERP", 10.0), ("ETH-PERP", 100.0), ("BTC-FUT", -2.0)),
        account("flat", {"USD": 1_000.0}),
    ],
)

PARAMS = [
    pytest.param(MarginParams(), id="default"),
    pytest.param(
        MarginParams(
            concentration=ConcentrationParams(threshold=1e6),
            maintenance=MaintenanceParams(mode="model"),
            collateral=CollateralParams(mode="haircut"),
        ),
        id="concentration+model-mm+haircut",
    ),
]


def same_bits(a: object, b: object) -> bool:
    """Equal arrays to the bit (floats compared by their bytes: -0.0 is not 0.0), mappings key by key."""
    if isinstance(a, np.ndarray) and isinstance(b, np.ndarray):
        if a.dtype != b.dtype or a.shape != b.shape:
            return False
        return bool(np.array_equal(a, b)) if a.dtype == object else a.tobytes() == b.tobytes()
    if isinstance(a, Mapping) and isinstance(b, Mapping):
        return list(a) == list(b) and all(same_bits(a[k], b[k]) for k in a)
    if isinstance(a, HeldAssets) and isinstance(b, HeldAssets):
        return all(same_bits(getattr(a, f.name), getattr(b, f.name)) for f in dataclasses.fields(HeldAssets))
    return a == b


def run(params: MarginParams, predictive: bool | None) -> MarginResult:
    book = portfolio_to_book(PORTFOLIO)
    state = build_market_state(list(book.instruments), SNAPSHOT, params)
    context = risk_context(state, params)
    if predictive is None:
        return margin_accounts(book, state, params, context)
    return margin_accounts(book, state, params, context, predictive=predictive)


@pytest.mark.parametrize("params", PARAMS)
def test_everything_but_the_predictive_figures_is_bit_for_bit_the_same(params: MarginParams) -> None:
    full, explicit, lean = run(params, None), run(params, True), run(params, False)
    for field in dataclasses.fields(MarginResult):
        if field.name in PREDICTIVE or field.name == "market":  # the input state each run built: compared by marks
            continue
        assert same_bits(getattr(lean, field.name), getattr(full, field.name)), field.name
        assert same_bits(getattr(explicit, field.name), getattr(full, field.name)), field.name
    assert lean.marks == full.marks == explicit.marks
    assert len(lean.terms) > 2 and lean.greeks.shape[0] == 5 and (lean.im > 0.0).sum() == 4  # real figures compared


@pytest.mark.parametrize("params", PARAMS)
def test_predictive_figures_are_none_when_off_and_present_by_default(params: MarginParams) -> None:
    full, lean = run(params, None), run(params, False)
    for name in PREDICTIVE:
        assert getattr(lean, name) is None
        value = getattr(full, name)
        assert isinstance(value, np.ndarray) and value.shape == (5,)
    columns = lean.to_arrow().column_names
    assert not set(PREDICTIVE) & set(columns)
    assert set(PREDICTIVE) <= set(full.to_arrow().column_names)
    assert lean.to_arrow().equals(full.to_arrow().drop_columns(list(PREDICTIVE)))  # the table less three columns


def test_predictive_is_keyword_only() -> None:
    params = MarginParams()
    book = portfolio_to_book(PORTFOLIO)
    state = build_market_state(list(book.instruments), SNAPSHOT, params)
    with pytest.raises(TypeError):
        margin_accounts(book, state, params, risk_context(state, params), "<portfolio>", None, None, False)  # type: ignore[call-arg]


@pytest.mark.parametrize(
    "params", [*PARAMS, pytest.param(MarginParams(collateral=CollateralParams(mode="integrated")))]
)
def test_account_equity_is_margin_accounts_equity_to_the_bit(params: MarginParams) -> None:
    """`account_equity` (what the liquidation sizer reads): the same bits as `margin_accounts`' equity, with and
    without collateral haircuts (a BTC balance is haircut in the haircut modes)."""
    book = portfolio_to_book(PORTFOLIO)
    state = build_market_state(list(book.instruments), SNAPSHOT, params)
    context = risk_context(state, params)
    equity = account_equity(book, state, params, context)
    assert same_bits(equity, margin_accounts(book, state, params, context).equity)
    assert (equity != 0.0).all()
