"""Margin assembly through solvent.api.compute_margin, on small books whose numbers are done by hand.

Hand rules used (engine/margin.py, scenarios/grid.py): equity = collateral at market prices +
linear unrealised P&L quantity x contract_size x (forward - entry) + option premium value
quantity x contract_size x Black-76; the SPAN grid's 3/3 moves are each side's lognormal ES at 99% over
the MPOR (issue 12 item 10: e^(s^2/2) Phi(s - z) / (1 - c) - 1 up, e^(s^2/2) Phi(-z - s) / (1 - c) - 1 down,
s = vol sqrt(mpor / 365)), the other rows the same fractions of each side's log move, and, with 16 scenarios
per asset, ES at 99% is the worst loss of each asset (16 x 1% < 1 scenario), summed over assets with no
offset between them.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from statistics import NormalDist

import msgspec
import numpy as np
import pytest

from solvent.api import compute_margin
from solvent.convert.inputs import portfolio_to_book
from solvent.engine.book import Book
from solvent.engine.results import MarginResult
from solvent.formats.outputs import IM_TERMS
from solvent.formats.schemas import Account, AssetQuote, Instrument, MarketSnapshot, Portfolio, Position
from solvent.params import GridParams, MaintenanceParams, MarginParams, ScenarioParams, VolatilityParams

NOW = datetime(2026, 11, 25, tzinfo=UTC)
BTC, ETH = 95_000.0, 3_400.0
BTC_VOL, ETH_VOL = 0.50, 0.70

INSTRUMENTS = [
    Instrument(id="BTC-PERP", kind="perp", underlying="BTC"),
    Instrument(id="BTC-MINI", kind="perp", underlying="BTC", contract_size=0.01),
    Instrument(id="ETH-PERP", kind="perp", underlying="ETH"),
    Instrument(id="BTC-FUT", kind="future", underlying="BTC", expiry=NOW + timedelta(days=90)),
    Instrument(
        id="BTC-C", kind="option", underlying="BTC", expiry=NOW + timedelta(days=30), strike=100_000, option_type="call"
    ),
    Instrument(
        id="ETH-P",
        kind="option",
        underlying="ETH",
        expiry=NOW + timedelta(days=14),
        strike=3_200,
        option_type="put",
        contract_size=10.0,
    ),
]
LINEAR = {"BTC-PERP", "BTC-MINI", "ETH-PERP", "BTC-FUT"}


def market(rate: float = 0.0, **btc: float) -> MarketSnapshot:
    quotes = {"price": BTC, "vol": BTC_VOL, **btc}
    return MarketSnapshot(
        schema="solvent.market/1",
        time=NOW,
        assets={
            "BTC": AssetQuote(**quotes),
            "ETH": AssetQuote(price=ETH, vol=ETH_VOL),
            "USDC": AssetQuote(price=1.0, vol=0.0),
        },
        rate=rate,
    )


def account(name: str, positions: list[tuple[str, float, float | None]], **collateral: float) -> Account:
    return Account(
        id=name,
        collateral=collateral,
        positions=[Position(instrument=i, quantity=q, entry_price=e) for i, q, e in positions],
    )


def book(*accounts: Account) -> Book:
    return portfolio_to_book(
        Portfolio(schema="solvent.portfolio/1", instruments=INSTRUMENTS, accounts=list(accounts)), "<test>"
    )


def run(
    accounts: list[Account], params: MarginParams | None = None, snapshot: MarketSnapshot | None = None
) -> MarginResult:
    return compute_margin(book(*accounts), market() if snapshot is None else snapshot, params)


def edges(vol: float, mpor_days: float = 2.0, confidence: float = 0.99) -> tuple[float, float]:
    """(up, down): the grid's 3/3 price moves, each side's lognormal expected shortfall at `confidence`."""
    s = vol * math.sqrt(mpor_days / 365.0)
    z = NormalDist().inv_cdf(confidence)
    grow = math.exp(0.5 * s * s) / (1.0 - confidence)
    return grow * NormalDist().cdf(s - z) - 1.0, grow * NormalDist().cdf(-z - s) - 1.0


def scan(vol: float, mpor_days: float = 2.0, side: int = 1, confidence: float = 0.99) -> float:
    """Loss per unit of notional at the 3/3 move against a long (side 1: the down move) or a short (-1: up)."""
    up, down = edges(vol, mpor_days, confidence)
    return -down if side > 0 else up


def move_at(vol: float, fraction: float) -> float:
    """The grid's price move at `fraction` of its side's log move (1/3, 2/3, 1, the extreme multiple)."""
    up, down = edges(vol)
    return math.expm1(fraction * math.log1p(up if fraction > 0 else down) * (1 if fraction > 0 else -1))


# ------------------------------------------------------------------------------- the hand oracle


def norm_cdf(x: float) -> float:
    return 0.5 * math.erfc(-x / math.sqrt(2.0))


def norm_pdf(x: float) -> float:
    return math.exp(-0.5 * x * x) / math.sqrt(2.0 * math.pi)


def d1(f: float, k: float, t: float, vol: float) -> float:
    s = vol * math.sqrt(t)
    return math.log(f / k) / s + 0.5 * s


def black76(f: float, k: float, t: float, vol: float, r: float, call: bool) -> float:
    a = d1(f, k, t, vol)
    b = a - vol * math.sqrt(t)
    df = math.exp(-r * t)
    return df * (f * norm_cdf(a) - k * norm_cdf(b)) if call else df * (k * norm_cdf(-b) - f * norm_cdf(-a))


# ------------------------------------------------------------------------------------------ equity

RATE = 0.03
T_FUT, T_CALL, T_PUT = 90 / 365, 30 / 365, 14 / 365


def hand_equity() -> tuple[float, float]:
    """(collateral, unrealised) of account 'eq' below, by hand."""
    collateral = 12_000.0 + 0.5 * BTC
    f_fut = BTC * math.exp(RATE * T_FUT)
    f_call = BTC * math.exp(RATE * T_CALL)
    f_put = ETH * math.exp(RATE * T_PUT)
    unrealised = (
        2 * 1.0 * (BTC - 90_000)
        + 300 * 0.01 * (BTC - 99_000)
        - 1 * 1.0 * (f_fut - 97_000)
        - 4 * 1.0 * (ETH - 3_000)
        + 3 * 1.0 * black76(f_call, 100_000, T_CALL, BTC_VOL, RATE, True)
        - 2 * 10.0 * black76(f_put, 3_200, T_PUT, ETH_VOL, RATE, False)
    )
    return collateral, unrealised


EQ_ACCOUNT = account(
    "eq",
    [
        ("BTC-PERP", 2, 90_000),
        ("BTC-MINI", 300, 99_000),
        ("BTC-FUT", -1, 97_000),
        ("ETH-PERP", -4, 3_000),
        ("BTC-C", 3, None),
        ("ETH-P", -2, None),
    ],
    USDC=12_000,
    BTC=0.5,
)


@pytest.fixture(scope="module")
def equity_result() -> MarginResult:
    return run([account("cash", [], USDC=1_000), EQ_ACCOUNT], snapshot=market(rate=RATE))


@pytest.mark.parametrize("field", ["collateral", "unrealised_pnl", "equity"])
def test_equity_by_hand(equity_result: MarginResult, field: str) -> None:
    collateral, unrealised = hand_equity()
    want = {"collateral": collateral, "unrealised_pnl": unrealised, "equity": collateral + unrealised}[field]
    got = getattr(equity_result, field)
    assert got[1] == pytest.approx(want, rel=1e-12)


def test_cash_only_account(equity_result: MarginResult) -> None:
    assert equity_result.equity[0] == 1_000.0
    assert equity_result.im[0] == 0.0
    assert equity_result.mm[0] == 0.0
    assert equity_result.health[0] == math.inf
    assert not equity_result.liquidatable[0]


def test_negative_equity_with_no_requirement_is_liquidatable() -> None:
    # MM = 0 and equity < 0: health -inf, and the account is below its (zero) maintenance
    res = run([account("owes", [], USDC=-50.0)])
    assert res.health[0] == -math.inf
    assert res.liquidatable[0]


# ------------------------------------------------------------------------------- SPAN grid: one perp


def extreme_loss(vol: float, quantity: float, grid: GridParams) -> float:
    """cover x loss per unit of notional at the extreme move of the position's losing side."""
    side = math.copysign(1.0, quantity)
    return grid.extreme_cover * -side * move_at(vol, -side * grid.extreme_multiple)


# (case, instrument, quantity, grid params, which scenario decides, expected margin)
ONE_PERP = [
    ("long-perp", "BTC-PERP", 3.0, GridParams(), "3/3 down", 3 * BTC * scan(BTC_VOL)),
    ("short-perp", "BTC-PERP", -3.0, GridParams(), "3/3 up", 3 * BTC * scan(BTC_VOL, side=-1)),
    ("long-mini", "BTC-MINI", 250.0, GridParams(), "3/3 down", 250 * 0.01 * BTC * scan(BTC_VOL)),
    ("long-eth", "ETH-PERP", 40.0, GridParams(), "3/3 down", 40 * ETH * scan(ETH_VOL)),
    # the extreme move (2 scans in log) at a cover of 0.6 loses about 1.15 scans: it beats the 3/3 move
    ("extreme-wins", "BTC-PERP", 3.0, GridParams(extreme_cover=0.6), "extreme",
     3 * BTC * extreme_loss(BTC_VOL, 3.0, GridParams(extreme_cover=0.6))),
    ("extreme-3x-short", "BTC-PERP", -1.0, GridParams(extreme_multiple=3.0), "extreme",
     BTC * extreme_loss(BTC_VOL, -1.0, GridParams(extreme_multiple=3.0))),
]  # fmt: skip


@pytest.mark.parametrize(
    ("inst", "qty", "grid", "decider", "want"), [row[1:] for row in ONE_PERP], ids=[row[0] for row in ONE_PERP]
)
def test_single_perp_grid_margin(inst: str, qty: float, grid: GridParams, decider: str, want: float) -> None:
    # Which scenario decides, by hand: the 3/3 move against the extreme one at its cover.
    vol = BTC_VOL if inst.startswith("BTC") else ETH_VOL
    assert (extreme_loss(vol, qty, grid) > scan(vol, side=int(math.copysign(1, qty)))) == (decider == "extreme")
    params = MarginParams(scenarios=ScenarioParams(grid=grid))
    res = run([account("a", [(inst, qty, BTC if inst.startswith("BTC") else ETH)], USDC=1e6)], params)
    assert res.terms["market_risk"][0] == pytest.approx(want, rel=1e-12)
    assert list(res.terms) == list(IM_TERMS)  # every declared term, 0 where it does not apply
    assert res.terms["liquidity"][0] == 0.0  # the market carries no depth, ADV or vol bid-ask
    assert res.im[0] == res.terms["market_risk"][0]
    assert res.scenario_method == "grid"
    # 16 scenarios per asset with listed instruments, whether the account trades it or not
    assert res.traded_assets == ("BTC", "ETH")
    assert res.n_scenarios == 32


def test_two_assets_margin_is_the_sum_of_per_asset_worst_losses() -> None:
    # a long BTC perp and a short ETH perp: no offset between them however correlated the assets are
    res = run([account("a", [("BTC-PERP", 2, BTC), ("ETH-PERP", -30, ETH)], USDC=1e6)])
    want = 2 * BTC * scan(BTC_VOL) + 30 * ETH * scan(ETH_VOL, side=-1)
    assert res.im[0] == pytest.approx(want, rel=1e-12)


def test_same_asset_linear_positions_net() -> None:
    # 2 BTC-PERP long and 200 BTC-MINI short (2 BTC): one net delta of zero, no margin
    res = run([account("a", [("BTC-PERP", 2, BTC), ("BTC-MINI", -200, BTC)], USDC=1e3)])
    assert res.im[0] == pytest.approx(0.0, abs=1e-9)


# SPAN's 16 scenarios (McMillan, Options as a Strategic Investment, Part V, p. 670): price as a
# fraction of the scan (of each side's log move: `move_at`), vol up (+1) / down (-1) by 25%, the extremes
# (2 scans, vol unchanged) at 35%.
# fmt: off
SPAN = [
    (0, 1, 1.0), (0, -1, 1.0), (1 / 3, 1, 1.0), (1 / 3, -1, 1.0), (-1 / 3, 1, 1.0), (-1 / 3, -1, 1.0),
    (2 / 3, 1, 1.0), (2 / 3, -1, 1.0), (-2 / 3, 1, 1.0), (-2 / 3, -1, 1.0), (1, 1, 1.0), (1, -1, 1.0),
    (-1, 1, 1.0), (-1, -1, 1.0), (2, 0, 0.35), (-2, 0, 0.35),
]
# fmt: on


def hand_grid_margin(calls: float, perps: float) -> float:
    """Worst loss over the 16 BTC scenarios of `calls` BTC-C and `perps` BTC-PERP (rate 0: F = S)."""
    mpor = 2.0 / 365.0
    now = black76(BTC, 100_000, T_CALL, BTC_VOL, 0.0, True)
    losses = []
    for fraction, vol_sign, weight in SPAN:
        move = move_at(BTC_VOL, fraction) if fraction else 0.0
        after = black76(BTC * (1 + move), 100_000, T_CALL - mpor, BTC_VOL * (1 + 0.25 * vol_sign), 0.0, True)
        losses.append(-weight * (calls * (after - now) + perps * BTC * move))
    return max(losses)


BTC_ONLY = [inst for inst in INSTRUMENTS if inst.underlying == "BTC"]


def option_book(calls: float, perps: float, instruments: list[Instrument]) -> MarginResult:
    positions = [Position(instrument="BTC-C", quantity=calls)]
    if perps:
        positions.append(Position(instrument="BTC-PERP", quantity=perps, entry_price=BTC))
    accounts = [Account(id="a", collateral={"USDC": 1e6}, positions=positions)]
    b = portfolio_to_book(Portfolio(schema="solvent.portfolio/1", instruments=instruments, accounts=accounts))
    return compute_margin(b, market())


# (case, calls, perps): short options gain their theta, long ones lose it
OPTION_BOOKS = [("short-call", -3.0, 0.0), ("long-call", 5.0, 0.0), ("covered", -3.0, 1.0), ("hedged", 4.0, -2.0)]


@pytest.mark.parametrize(("calls", "perps"), [row[1:] for row in OPTION_BOOKS], ids=[row[0] for row in OPTION_BOOKS])
def test_option_book_grid_margin_by_hand_one_asset_listed(calls: float, perps: float) -> None:
    res = option_book(calls, perps, BTC_ONLY)
    # the option's delta (its expiry's book) against the perpetual adds the basis contingency (tests/test_basis.py)
    assert res.im[0] - res.terms["basis"][0] == pytest.approx(hand_grid_margin(calls, perps), rel=1e-10)


@pytest.mark.parametrize(
    ("calls", "perps"),
    [row[1:] for row in OPTION_BOOKS],
    ids=[row[0] for row in OPTION_BOOKS],
)
def test_option_book_grid_margin_by_hand_two_assets_listed(calls: float, perps: float) -> None:
    # ETH instruments are listed (the account holds none): BTC's worst loss must not change
    res = option_book(calls, perps, INSTRUMENTS)
    assert res.im[0] - res.terms["basis"][0] == pytest.approx(hand_grid_margin(calls, perps), rel=1e-10)


@pytest.mark.parametrize("method", ["grid", "deribit"])
def test_listing_another_asset_does_not_change_a_long_option_margin(method: str) -> None:
    params = MarginParams(scenarios=ScenarioParams(method=method))  # type: ignore[arg-type]
    accounts = [Account(id="a", collateral={"USDC": 1e6}, positions=[Position(instrument="BTC-C", quantity=1.0)])]

    def im(instruments: list[Instrument]) -> float:
        b = portfolio_to_book(Portfolio(schema="solvent.portfolio/1", instruments=instruments, accounts=accounts))
        return float(compute_margin(b, market(), params).im[0])

    assert im(INSTRUMENTS) == pytest.approx(im(BTC_ONLY), rel=1e-12)


# ----------------------------------------------------------------------------------- maintenance


LONG = account("long", [("BTC-PERP", 1, 92_000)], USDC=10_000)
FRACTION = MarginParams(maintenance=MaintenanceParams(mode="fraction"))


def test_fraction_mm_is_80_percent_of_im() -> None:
    # mode "fraction" pinned: the default is "liquidation" since issue 12 item 8 (tests/test_horizon.py)
    res = run([LONG, account("eth", [("ETH-PERP", -5, 3_000)], USDC=500)], FRACTION)
    np.testing.assert_array_equal(res.mm, 0.8 * res.im)
    assert res.im[0] == pytest.approx(BTC * scan(BTC_VOL), rel=1e-12)


def test_model_mm_uses_its_own_mpor() -> None:
    # MM at 97.5%, 1 day: the grid's scan at the maintenance confidence (issue 12 item 10: scan_confidence
    # null follows `confidence`) over 1 day; ES over 16 scenarios at 97.5% is still the worst loss (16 x 2.5% < 1)
    params = MarginParams(maintenance=MaintenanceParams(mode="model", confidence=0.975, mpor_days=1.0))
    res = run([LONG], params)
    assert res.im[0] == pytest.approx(BTC * scan(BTC_VOL, 2.0), rel=1e-12)
    assert res.mm[0] == pytest.approx(BTC * scan(BTC_VOL, 1.0, confidence=0.975), rel=1e-12)


def test_model_mm_is_capped_at_im() -> None:
    # a 10-day maintenance MPOR would ask for more than the 2-day IM: MM stops at IM
    params = MarginParams(maintenance=MaintenanceParams(mode="model", mpor_days=10.0))
    res = run([LONG], params)
    assert BTC * scan(BTC_VOL, 10.0) > res.im[0]
    assert res.mm[0] == res.im[0]


# (case, USDC collateral, liquidatable?) for one long perp bought at 92,000 (unrealised +3,000)
# MM on the liquidation horizon (the default, issue 12 item 8): 5 slices of 20%, H = 60 + 4 x 30 = 180 s, market
# risk x sqrt(180 s / 2 d) = 3.2% of it, below the floor: MM = 0.5 x 95,000 x 9.3875% (the lognormal 99% ES of a
# 2-day fall at 50% vol) = 4,459.06 (7,134.50 at 0.8 IM before)
HEALTH = [
    ("healthy", 10_000.0, False),
    ("just-above", 1_500.0, False),
    ("just-below", 1_400.0, True),
    ("negative-collateral", -2_000.0, True),
]


@pytest.mark.parametrize(("usdc", "liquidatable"), [row[1:] for row in HEALTH], ids=[row[0] for row in HEALTH])
def test_health_and_liquidation(usdc: float, liquidatable: bool) -> None:
    res = run([account("a", [("BTC-PERP", 1, 92_000)], USDC=usdc)])
    equity = usdc + (BTC - 92_000)
    mm = 0.5 * BTC * scan(BTC_VOL)
    assert BTC * scan(BTC_VOL) * math.sqrt(180.0 / (2 * 86_400.0)) < mm  # the floor binds
    assert res.equity[0] == pytest.approx(equity, rel=1e-12)
    assert res.mm[0] == pytest.approx(mm, rel=1e-12)
    assert res.health[0] == pytest.approx(equity / mm, rel=1e-12)
    assert bool(res.liquidatable[0]) is liquidatable
    assert (equity < mm) is liquidatable


# ---------------------------------------------------------------------------- anti-procyclicality


def test_apc_buffer_adds_a_quarter_of_market_risk() -> None:
    params = MarginParams(volatility=VolatilityParams(apc_mode="buffer"))
    res = run([LONG, account("eth", [("ETH-PERP", -5, 3_000)], USDC=500)], params)
    assert list(res.terms) == list(IM_TERMS)
    np.testing.assert_array_equal(res.terms["apc_buffer"], 0.25 * res.terms["market_risk"])
    np.testing.assert_array_equal(res.terms["concentration"], 0.0)  # small accounts, below every threshold
    np.testing.assert_array_equal(res.terms["risk_tier"], 0.0)  # no tier
    np.testing.assert_array_equal(res.im, res.terms["market_risk"] + res.terms["apc_buffer"] + res.terms["liquidity"])
    assert res.im[0] == pytest.approx(1.25 * BTC * scan(BTC_VOL), rel=1e-12)


def test_apc_buffer_ignores_the_long_vol() -> None:
    # the buffer replaces the floor: a higher vol_long changes nothing in buffer mode
    params = MarginParams(volatility=VolatilityParams(apc_mode="buffer"))
    res = run([LONG], params, market(vol_long=0.9))
    assert res.terms["market_risk"][0] == pytest.approx(BTC * scan(BTC_VOL), rel=1e-12)


# (case, BTC quote fields, apc mode, effective vol by hand)
APC = [
    ("floor-raises", {"vol_long": 0.62}, "floor", 0.62),
    ("floor-below-changes-nothing", {"vol_long": 0.40}, "floor", BTC_VOL),
    ("none-ignores-long", {"vol_long": 0.62}, "none", BTC_VOL),
    ("implied-above", {"implied_vol": 0.58, "vol_long": 0.55}, "floor", 0.58),
    ("stressed-blend", {"vol_stressed": 1.2}, "stressed_weight", math.sqrt(0.75 * BTC_VOL**2 + 0.25 * 1.2**2)),
    ("stressed-below", {"vol_stressed": 0.3}, "stressed_weight", BTC_VOL),
]


@pytest.mark.parametrize(("quote", "mode", "vol"), [row[1:] for row in APC], ids=[row[0] for row in APC])
def test_apc_vol(quote: dict[str, float], mode: str, vol: float) -> None:
    params = MarginParams(volatility=VolatilityParams(apc_mode=mode))  # type: ignore[arg-type]
    res = run([LONG], params, market(**quote))
    assert res.im[0] == pytest.approx(BTC * scan(vol), rel=1e-12)


def test_floor_below_vol_is_bit_identical_to_no_long_vol() -> None:
    with_long = run([LONG], None, market(vol_long=0.40))
    without = run([LONG], None, market())
    np.testing.assert_array_equal(with_long.im, without.im)
    np.testing.assert_array_equal(with_long.mm, without.mm)


# ---------------------------------------------------------------------------------------- greeks


GREEK_ACCOUNT = account("g", [("BTC-PERP", 2, 94_000), ("BTC-C", -3, None), ("BTC-FUT", 1, 96_000)], USDC=50_000)


def test_net_greeks_by_hand() -> None:
    res = run([account("cash", [], USDC=1.0), GREEK_ACCOUNT], snapshot=market(rate=RATE))
    f = BTC * math.exp(RATE * T_CALL)
    a = d1(f, 100_000, T_CALL, BTC_VOL)
    df = math.exp(-RATE * T_CALL)
    # call delta in the spot: d(D F N(d1) ...)/dS = D N(d1) dF/dS = N(d1) as D dF/dS = 1
    delta = 2 * 1.0 - 3 * norm_cdf(a) + 1 * math.exp(RATE * T_FUT)
    gamma = -3 * df * norm_pdf(a) / (f * BTC_VOL * math.sqrt(T_CALL)) * (f / BTC) ** 2
    vega = -3 * df * norm_pdf(a) * f * math.sqrt(T_CALL) * 0.01
    g = res.greeks[1, res.assets.index("BTC")]
    assert g[0] == pytest.approx(delta, rel=1e-11)
    assert g[1] == pytest.approx(gamma, rel=1e-11)
    assert g[2] == pytest.approx(vega, rel=1e-11)
    others = [a for a in range(len(res.assets)) if res.assets[a] != "BTC"]
    assert np.all(res.greeks[:, others] == 0.0)
    assert np.all(res.greeks[0] == 0.0)


def test_greeks_columns_of_the_table() -> None:
    res = run([GREEK_ACCOUNT, account("e", [("ETH-PERP", 7, ETH)], USDC=1e4)], snapshot=market(rate=RATE))
    table = res.to_arrow()
    btc = res.assets.index("BTC")
    assert table.column("delta_BTC").to_pylist() == res.greeks[:, btc, 0].tolist()
    assert table.column("delta_ETH").to_pylist() == [0.0, 7.0]
    assert "delta_USDC" not in table.column_names  # collateral-only assets are not traded


# ------------------------------------------------------------------------------------ no mutation


def test_compute_margin_does_not_mutate_the_book() -> None:
    b = book(EQ_ACCOUNT, GREEK_ACCOUNT, LONG)
    fields = [
        "pos_offsets",
        "pos_instrument",
        "pos_quantity",
        "pos_entry",
        "col_offsets",
        "col_asset",
        "col_amount",
        "risk_tier",
        "mode",
    ]
    before = {name: getattr(b, name).copy() for name in fields}
    ids_before = b.account_ids.copy()
    snapshot = market(rate=RATE, vol_long=0.6)
    snapshot_before = msgspec.json.encode(snapshot)
    first = compute_margin(b, snapshot, MarginParams(maintenance=MaintenanceParams(mode="model")))
    for name in fields:
        np.testing.assert_array_equal(getattr(b, name), before[name], err_msg=name)
    assert list(b.account_ids) == list(ids_before)
    assert msgspec.json.encode(snapshot) == snapshot_before
    second = compute_margin(b, snapshot, MarginParams(maintenance=MaintenanceParams(mode="model")))
    np.testing.assert_array_equal(first.im, second.im)
    np.testing.assert_array_equal(first.mm, second.mm)
