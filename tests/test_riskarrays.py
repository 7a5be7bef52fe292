"""Risk arrays: every number recomputed in the test from the scenario set, by hand.

The oracle is a scalar Black-76 written here from the error function (`math.erfc`, so that the
normal tails keep their relative accuracy), not solvent.pricing. Conventions checked
(riskarrays.py module doc): linear products move with their forward, P&L = contract_size x F x move
x pnl_weight; options are revalued at F (1 + move), T - h (intrinsic once T <= h) and
vol (1 + vol_move x term scale), the term scale (pivot / T) ** exponent of Deribit's grid.
Unit Greeks are held to central finite differences of the option value in spot (F = S e^{rT}) and
in vol (vega per vol point, 0.01).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from solvent.engine.riskarrays import DELTA, GAMMA, VEGA, RiskArrays, _block, _span, build_risk_arrays
from solvent.formats.schemas import AssetQuote, Instrument, MarketSnapshot, VolSurface
from solvent.market.state import MarketState, build_market_state
from solvent.params import MarginParams, ScenarioParams, VolatilityParams
from solvent.scenarios import deribit_grid, generate_scenarios, span_grid
from solvent.scenarios.base import ScenarioSet

NOW = datetime(2026, 11, 25, tzinfo=UTC)
RATE = 0.05
YEAR_SECONDS = 365.0 * 86400.0
TIME_FLOOR = (1.0 / 1440.0) / 365.0  # VolatilityParams.time_floor_days / days_per_year
VOL_FLOOR = 0.05  # VolatilityParams.vol_floor: shocked vols are floored at it
PRICE = {"BTC": 95_000.0, "ETH": 3_400.0}
BTC_VOL, BTC_IMPLIED, ETH_VOL = 0.50, 0.55, 0.70
SURFACE_ATM, SURFACE_SKEW = 0.60, -0.15


def at(days: float) -> datetime:
    return NOW + timedelta(days=days)


def years(expiry: datetime) -> float:
    return (expiry - NOW).total_seconds() / YEAR_SECONDS


# ------------------------------------------------------------------------------------- the oracle


def norm_cdf(x: float) -> float:
    return 0.5 * math.erfc(-x / math.sqrt(2.0))


def black76(f: float, k: float, t: float, vol: float, r: float, call: bool) -> float:
    """Discounted Black-76 price; t <= 0 is intrinsic (undiscounted); vol floored at 1e-4 as pricing.py."""
    if t <= 0.0:
        return max(f - k, 0.0) if call else max(k - f, 0.0)
    vol = max(vol, 1e-4)
    s = vol * math.sqrt(t)
    d1 = math.log(f / k) / s + 0.5 * s
    d2 = d1 - s
    df = math.exp(-r * t)
    if call:
        return df * (f * norm_cdf(d1) - k * norm_cdf(d2))
    return df * (k * norm_cdf(-d2) - f * norm_cdf(-d1))


# --------------------------------------------------------------------------------- the test market


@dataclass(frozen=True)
class Case:
    """An instrument and its expected implied vol (a function of its forward), None for linear kinds."""

    instrument: Instrument
    vol: Callable[[float], float] | None = None


def surface_vol(strike: float) -> Callable[[float], float]:
    return lambda f: SURFACE_ATM + SURFACE_SKEW * math.log(strike / f)


def option(name: str, underlying: str, days: float, strike: float, kind: str, size: float = 1.0) -> Instrument:
    return Instrument(
        id=name,
        kind="option",
        underlying=underlying,
        expiry=at(days),
        strike=strike,
        option_type=kind,  # type: ignore[arg-type]
        contract_size=size,
    )


CASES = [
    Case(Instrument(id="BTC-SPOT", kind="spot", underlying="BTC")),
    Case(Instrument(id="BTC-PERP", kind="perp", underlying="BTC", contract_size=0.01)),
    Case(Instrument(id="BTC-FUT90", kind="future", underlying="BTC", expiry=at(90))),
    Case(Instrument(id="ETH-FUT30", kind="future", underlying="ETH", expiry=at(30), contract_size=10.0)),
    # on the 30-day BTC surface: atm + skew ln(K / F)
    Case(option("BTC-C100-30", "BTC", 30, 100_000, "call"), surface_vol(100_000)),
    # quoted: the quote beats the surface of its expiry
    Case(option("BTC-P90-30", "BTC", 30, 90_000, "put", size=0.1), lambda f: 0.70),
    # no surface for 90 days: the asset's vol, max(vol, implied)
    Case(option("BTC-C95-90", "BTC", 90, 95_000, "call"), lambda f: BTC_IMPLIED),
    Case(option("BTC-P200-365", "BTC", 365, 200_000, "put", size=0.5), lambda f: BTC_IMPLIED),
    Case(option("ETH-C3500-7", "ETH", 7, 3_500, "call"), lambda f: ETH_VOL),
    # expire inside a 2- or 3-day MPOR: intrinsic at the shocked forward
    Case(option("BTC-C94-1D", "BTC", 1, 94_000, "call"), lambda f: BTC_IMPLIED),
    Case(option("ETH-P3600-12H", "ETH", 0.5, 3_600, "put", size=5.0), lambda f: 0.90),
]
IDS = [case.instrument.id for case in CASES]
CASE = {case.instrument.id: case for case in CASES}
OPTION_IDS = [case.instrument.id for case in CASES if case.vol is not None]
LINEAR_IDS = [case.instrument.id for case in CASES if case.vol is None]

SNAPSHOT = MarketSnapshot(
    schema="solvent.market/1",
    time=NOW,
    assets={
        "BTC": AssetQuote(price=PRICE["BTC"], vol=BTC_VOL, implied_vol=BTC_IMPLIED),
        "ETH": AssetQuote(price=PRICE["ETH"], vol=ETH_VOL),
    },
    option_vols={"BTC-P90-30": 0.70, "ETH-P3600-12H": 0.90},
    surfaces=[VolSurface(underlying="BTC", expiry=at(30), atm_vol=SURFACE_ATM, skew=SURFACE_SKEW)],
    rate=RATE,
)


def forward_of(inst: Instrument) -> float:
    s = PRICE[inst.underlying]
    return s * math.exp(RATE * years(inst.expiry)) if inst.expiry is not None else s


def vol_of(inst_id: str) -> float:
    """The option's expected implied vol (its table entry at its forward)."""
    case = CASE[inst_id]
    assert case.vol is not None
    return case.vol(forward_of(case.instrument))


@functools.cache
def state() -> MarketState:
    return build_market_state([case.instrument for case in CASES], SNAPSHOT, MarginParams())


# ------------------------------------------------------------------------------ the scenario sets


def hand_set(st: MarketState, vol_term: tuple[float, float, float] | None, horizon_days: float) -> ScenarioSet:
    """Four joint scenarios in two groups, moving BTC and ETH together; USD never moves."""
    a = st.asset_index
    price = np.zeros((4, len(st.assets)))
    vol = np.zeros((4, len(st.assets)))
    price[:, a["BTC"]] = [0.0, -0.20, 0.15, 0.05]
    price[:, a["ETH"]] = [0.10, -0.30, 0.0, -0.05]
    vol[:, a["BTC"]] = [0.0, 0.50, -0.30, 0.10]
    vol[:, a["ETH"]] = [0.20, 0.80, -0.50, 0.0]
    return ScenarioSet(
        name="hand",
        price_move=price,
        vol_move=vol,
        pnl_weight=np.array([1.0, 0.35, 1.0, 0.5]),
        group=np.array([0, 0, 1, 1], dtype=np.int32),
        horizon_years=horizon_days / 365.0,
        labels=("a", "b", "c", "d"),
        vol_term=vol_term,
    )


SETS: dict[str, Callable[[MarketState], ScenarioSet]] = {
    "grid": lambda st: span_grid(st, MarginParams()),
    "deribit": lambda st: deribit_grid(st, MarginParams()),
    "mc": lambda st: generate_scenarios(st, MarginParams(scenarios=ScenarioParams(method="mc"))),
    "hand-3d": lambda st: hand_set(st, None, 3.0),
    # instant revaluation with a Deribit-style term scaling; the 12-hour ETH put's scaled vol-down
    # move passes -100% there and is clipped to a zero vol, then floored at VOL_FLOOR
    "hand-term": lambda st: hand_set(st, (0.30, 0.13, 30.0 / 365.0), 0.0),
}


@functools.cache
def scenarios(name: str) -> ScenarioSet:
    return SETS[name](state())


@functools.cache
def arrays(name: str) -> RiskArrays:
    return build_risk_arrays(state(), scenarios(name), TIME_FLOOR, VOL_FLOOR)


def term_scale(t: float, vol_term: tuple[float, float, float] | None) -> float:
    if vol_term is None:
        return 1.0
    short, long, pivot = vol_term
    return (pivot / t) ** (short if t <= pivot else long)


def expected_pnl(name: str, inst: Instrument) -> np.ndarray:
    """The instrument's unit P&L per scenario, recomputed scalar by scalar."""
    sc = scenarios(name)
    a = state().asset_index[inst.underlying]
    f = forward_of(inst)
    size = inst.contract_size
    out = np.empty(sc.n_scenarios)
    case = CASE[inst.id]
    for s in range(sc.n_scenarios):
        move, weight = float(sc.price_move[s, a]), float(sc.pnl_weight[s])
        if case.vol is None:
            out[s] = size * f * move * weight
            continue
        assert inst.expiry is not None and inst.strike is not None
        t, k, call = years(inst.expiry), inst.strike, inst.option_type == "call"
        vol = case.vol(f)
        shocked_vol = max(vol * max(1.0 + float(sc.vol_move[s, a]) * term_scale(t, sc.vol_term), 0.0), VOL_FLOOR)
        after = black76(f * (1.0 + move), k, max(t - sc.horizon_years, 0.0), shocked_vol, RATE, call)
        out[s] = size * (after - black76(f, k, t, vol, RATE, call)) * weight
    return out


# ------------------------------------------------------------------------------------------ tests


def own_groups(name: str, asset: str) -> np.ndarray:
    """Scenarios of the groups in which `asset` moves (all of them for joint sets).

    In the per-asset grids (grid, deribit) an instrument's P&L is zero outside its own asset's
    groups (test_pnl_is_zero_outside_own_group); the revaluation check covers its own groups.
    """
    sc = scenarios(name)
    a = state().asset_index[asset]
    moving = (sc.price_move[:, a] != 0.0) | (sc.vol_move[:, a] != 0.0)
    return np.isin(sc.group, np.unique(sc.group[moving]))


@pytest.mark.parametrize("inst_id", IDS)
@pytest.mark.parametrize("set_name", list(SETS))
def test_unit_pnl_matches_hand_revaluation(set_name: str, inst_id: str) -> None:
    inst = CASE[inst_id].instrument
    i = state().instruments.index[inst_id]
    f = forward_of(inst)
    mask = own_groups(set_name, inst.underlying)
    got = arrays(set_name).instrument_pnl[i][mask]
    want = expected_pnl(set_name, inst)[mask]
    np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-10 * inst.contract_size * f)


@pytest.mark.parametrize("set_name", ["grid", "deribit"])
def test_per_asset_sets_have_one_group_per_traded_asset(set_name: str) -> None:
    sc = scenarios(set_name)
    assert sc.group.max() == 1
    assert own_groups(set_name, "BTC").sum() == own_groups(set_name, "ETH").sum() == sc.n_scenarios // 2
    assert not np.any(own_groups(set_name, "BTC") & own_groups(set_name, "ETH"))


@pytest.mark.parametrize("inst_id", ["BTC-C94-1D", "ETH-P3600-12H"])
@pytest.mark.parametrize("set_name", ["grid", "hand-3d"])
def test_option_expiring_inside_the_mpor_is_intrinsic_at_the_shocked_forward(set_name: str, inst_id: str) -> None:
    inst = CASE[inst_id].instrument
    assert inst.expiry is not None and inst.strike is not None
    sc = scenarios(set_name)
    assert years(inst.expiry) < sc.horizon_years
    f = forward_of(inst)
    a = state().asset_index[inst.underlying]
    sign = 1.0 if inst.option_type == "call" else -1.0
    now = black76(f, inst.strike, years(inst.expiry), vol_of(inst_id), RATE, sign > 0)
    intrinsic = np.maximum(sign * (f * (1.0 + sc.price_move[:, a]) - inst.strike), 0.0)
    want = inst.contract_size * (intrinsic - now) * sc.pnl_weight
    got = arrays(set_name).instrument_pnl[state().instruments.index[inst_id]]
    mask = own_groups(set_name, inst.underlying)
    np.testing.assert_allclose(got[mask], want[mask], rtol=1e-9, atol=1e-9 * f)


def test_deribit_set_carries_the_term_scaling() -> None:
    # (pivot / T) ** 0.3 up to 30 days, ** 0.13 beyond; 1 at the pivot
    sc = scenarios("deribit")
    assert sc.vol_term == pytest.approx((0.30, 0.13, 30.0 / 365.0), rel=1e-15)
    assert term_scale(7 / 365, sc.vol_term) == pytest.approx((30 / 7) ** 0.3, rel=1e-12)
    assert term_scale(365 / 365, sc.vol_term) == pytest.approx((30 / 365) ** 0.13, rel=1e-12)


@pytest.mark.parametrize("inst_id", ["BTC-C95-90", "ETH-C3500-7"])
def test_deribit_vol_up_scenario_uses_scaled_vol(inst_id: str) -> None:
    # Unchanged price, vol up 50% x (30 / DTE) ** exponent: the P&L is a pure vol revaluation.
    inst = CASE[inst_id].instrument
    assert inst.expiry is not None and inst.strike is not None
    sc = scenarios("deribit")
    a = state().asset_index[inst.underlying]
    s = int(np.flatnonzero((sc.price_move[:, a] == 0.0) & (sc.vol_move[:, a] == 0.5))[0])
    t, f, vol = years(inst.expiry), forward_of(inst), vol_of(inst_id)
    exponent = 0.3 if t <= 30 / 365 else 0.13
    up = vol * (1.0 + 0.5 * ((30 / 365) / t) ** exponent)
    h = 2.0 / 365.0
    want = black76(f, inst.strike, t - h, up, RATE, True) - black76(f, inst.strike, t, vol, RATE, True)
    assert arrays("deribit").instrument_pnl[state().instruments.index[inst_id], s] == pytest.approx(want, rel=1e-9)


@pytest.mark.parametrize("set_name", list(SETS))
def test_asset_pnl_is_price_times_move_times_weight(set_name: str) -> None:
    sc = scenarios(set_name)
    st = state()
    want = np.stack([st.price[a] * sc.price_move[:, a] * sc.pnl_weight for a in range(len(st.assets))])
    np.testing.assert_allclose(arrays(set_name).asset_pnl, want, rtol=1e-14, atol=0.0)
    assert np.all(arrays(set_name).asset_pnl[st.asset_index["USD"]] == 0.0)


def test_stress_groups_held_as_repeats_give_the_dense_sets_risk_arrays_to_the_bit() -> None:
    """issue 14 item 4: the Monte Carlo's stress groups are repeats of its joint draws (`ScenarioSet.repeats`);
    risk arrays built on them equal those built on the same set held dense, to the bit; asset_pnl is written only
    where an asset moves, so an in-place refresh over arrays whose every entry was non-zero leaves 0 elsewhere."""
    from dataclasses import fields, replace

    from solvent.engine.riskarrays import refresh_risk_arrays

    st, implicit = state(), scenarios("mc")
    assert implicit.repeats is not None
    dense = replace(implicit, price_move=implicit.price_move.copy())
    want = build_risk_arrays(st, dense, TIME_FLOOR, VOL_FLOOR)
    got = arrays("mc")
    for f in fields(RiskArrays):
        a, b = getattr(got, f.name), getattr(want, f.name)
        if isinstance(a, np.ndarray) and f.name != "group_repeats":  # how the set is held, not a figure
            np.testing.assert_array_equal(a.view(np.uint8), b.view(np.uint8), err_msg=f.name)
    assert got.group_repeats is implicit.repeats and want.group_repeats is None
    everywhere = replace(dense, price_move=np.full(dense.price_move.shape, 0.01))
    refreshed = build_risk_arrays(st, everywhere, TIME_FLOOR, VOL_FLOOR)
    assert np.all(refreshed.asset_pnl[st.asset_index["BTC"]] != 0.0)
    refresh_risk_arrays(refreshed, st, implicit, TIME_FLOOR, np.arange(len(st.assets)), VOL_FLOOR)
    np.testing.assert_array_equal(refreshed.asset_pnl.view(np.int64), want.asset_pnl.view(np.int64))


@pytest.mark.parametrize("inst_id", LINEAR_IDS)
@pytest.mark.parametrize("set_name", list(SETS))
def test_linear_weight_nets_to_the_instruments_own_pnl(set_name: str, inst_id: str) -> None:
    ra = arrays(set_name)
    i = state().instruments.index[inst_id]
    a = int(ra.instrument_asset[i])
    np.testing.assert_allclose(ra.linear_weight[i] * ra.asset_pnl[a], ra.instrument_pnl[i], rtol=1e-13, atol=1e-9)


@pytest.mark.parametrize("inst_id", OPTION_IDS)
def test_options_carry_no_linear_weight(inst_id: str) -> None:
    assert arrays("grid").linear_weight[state().instruments.index[inst_id]] == 0.0


# ------------------------------------------------------------------------------- vol resolution


@pytest.mark.parametrize("inst_id", OPTION_IDS)
def test_option_vol_resolution(inst_id: str) -> None:
    want = vol_of(inst_id)
    assert state().option_vol[state().instruments.index[inst_id]] == pytest.approx(want, rel=1e-14)


def test_linear_instruments_have_no_option_vol() -> None:
    idx = [state().instruments.index[name] for name in LINEAR_IDS]
    assert np.all(np.isnan(state().option_vol[idx]))


FLOOR_EXPIRY = at(60)
# (case, instrument, quotes, surfaces, vol floor, expected vol as a function of the forward)
VOL_RULES = [
    (
        "quote-beats-surface",
        option("X", "BTC", 60, 120_000, "call"),
        {"X": 0.81},
        [VolSurface(underlying="BTC", expiry=FLOOR_EXPIRY, atm_vol=0.6, skew=-0.2)],
        0.05,
        lambda f: 0.81,
    ),
    (
        "surface-beats-asset-vol",
        option("X", "BTC", 60, 120_000, "call"),
        {},
        [VolSurface(underlying="BTC", expiry=FLOOR_EXPIRY, atm_vol=0.6, skew=-0.2)],
        0.05,
        lambda f: 0.6 - 0.2 * math.log(120_000 / f),
    ),
    (
        "surface-put-wing",
        option("X", "BTC", 60, 70_000, "put"),
        {},
        [VolSurface(underlying="BTC", expiry=FLOOR_EXPIRY, atm_vol=0.6, skew=-0.2)],
        0.05,
        lambda f: 0.6 - 0.2 * math.log(70_000 / f),
    ),
    (
        "surface-floored",
        option("X", "BTC", 60, 300_000, "call"),
        {},
        [VolSurface(underlying="BTC", expiry=FLOOR_EXPIRY, atm_vol=0.2, skew=-0.5)],
        0.12,
        lambda f: 0.12,
    ),
    (
        "other-expiry-uses-asset-vol",
        option("X", "BTC", 60, 120_000, "call"),
        {},
        [VolSurface(underlying="BTC", expiry=at(61), atm_vol=0.9, skew=0.0)],
        0.05,
        lambda f: BTC_IMPLIED,
    ),
    (
        "other-underlying-uses-asset-vol",
        option("X", "BTC", 60, 120_000, "call"),
        {},
        [VolSurface(underlying="ETH", expiry=FLOOR_EXPIRY, atm_vol=0.9, skew=0.0)],
        0.05,
        lambda f: BTC_IMPLIED,
    ),
]


@pytest.mark.parametrize(
    ("inst", "quotes", "surfaces", "floor", "want"),
    [row[1:] for row in VOL_RULES],
    ids=[row[0] for row in VOL_RULES],
)
def test_option_vol_rules(
    inst: Instrument,
    quotes: dict[str, float],
    surfaces: list[VolSurface],
    floor: float,
    want: Callable[[float], float],
) -> None:
    snapshot = MarketSnapshot(
        schema="solvent.market/1",
        time=NOW,
        assets=SNAPSHOT.assets,
        option_vols=quotes,
        surfaces=surfaces,
        rate=RATE,
    )
    params = MarginParams(volatility=VolatilityParams(vol_floor=floor))
    st = build_market_state([inst], snapshot, params)
    assert st.option_vol[0] == pytest.approx(want(forward_of(inst)), rel=1e-14)


# ----------------------------------------------------------------------------------- unit Greeks


@pytest.mark.parametrize("inst_id", LINEAR_IDS)
def test_linear_unit_greeks(inst_id: str) -> None:
    inst = CASE[inst_id].instrument
    i = state().instruments.index[inst_id]
    growth = math.exp(RATE * years(inst.expiry)) if inst.expiry is not None else 1.0
    greeks = arrays("grid").unit_greeks[i]
    assert greeks[DELTA] == pytest.approx(inst.contract_size * growth, rel=1e-14)
    assert greeks[GAMMA] == 0.0
    assert greeks[VEGA] == 0.0
    assert arrays("grid").value[i] == 0.0


def unit_value(inst: Instrument, spot: float, vol: float) -> float:
    assert inst.expiry is not None and inst.strike is not None
    t = years(inst.expiry)
    return inst.contract_size * black76(
        spot * math.exp(RATE * t), inst.strike, t, vol, RATE, inst.option_type == "call"
    )


@pytest.mark.parametrize("inst_id", OPTION_IDS)
def test_option_unit_value(inst_id: str) -> None:
    inst = CASE[inst_id].instrument
    vol = vol_of(inst_id)
    want = unit_value(inst, PRICE[inst.underlying], vol)
    assert arrays("grid").value[state().instruments.index[inst_id]] == pytest.approx(want, rel=1e-11)


@pytest.mark.parametrize("inst_id", OPTION_IDS)
def test_option_unit_greeks_match_finite_differences(inst_id: str) -> None:
    inst = CASE[inst_id].instrument
    assert inst.expiry is not None
    s0 = PRICE[inst.underlying]
    vol = vol_of(inst_id)
    # steps scaled to one standard deviation of the forward over the option's life: small enough for
    # the truncation error, large enough for rounding (a second difference needs the larger step)
    sd = s0 * vol * math.sqrt(years(inst.expiry))
    dv = 1e-5
    fd_delta = (unit_value(inst, s0 + 1e-4 * sd, vol) - unit_value(inst, s0 - 1e-4 * sd, vol)) / (2e-4 * sd)
    up, mid, down = (unit_value(inst, s, vol) for s in (s0 + 1e-3 * sd, s0, s0 - 1e-3 * sd))
    fd_gamma = (up - 2.0 * mid + down) / (1e-3 * sd) ** 2
    fd_vega = (unit_value(inst, s0, vol + dv) - unit_value(inst, s0, vol - dv)) / (2.0 * dv) * 0.01
    greeks = arrays("grid").unit_greeks[state().instruments.index[inst_id]]
    scale = inst.contract_size  # |delta| <= size: an absolute floor for deep OTM options
    assert greeks[DELTA] == pytest.approx(fd_delta, rel=1e-7, abs=1e-9 * scale)
    assert greeks[GAMMA] == pytest.approx(fd_gamma, rel=1e-5, abs=1e-9 * scale / s0)
    assert greeks[VEGA] == pytest.approx(fd_vega, rel=1e-7, abs=1e-9 * scale * s0)


def test_build_does_not_mutate_its_inputs() -> None:
    st, sc = state(), scenarios("hand-term")
    before = {
        "price": st.price.copy(),
        "forward": st.forward.copy(),
        "option_vol": st.option_vol.copy(),
        "price_move": sc.price_move.copy(),
        "vol_move": sc.vol_move.copy(),
        "pnl_weight": sc.pnl_weight.copy(),
    }
    build_risk_arrays(st, sc, TIME_FLOOR)
    after = {
        "price": st.price,
        "forward": st.forward,
        "option_vol": st.option_vol,
        "price_move": sc.price_move,
        "vol_move": sc.vol_move,
        "pnl_weight": sc.pnl_weight,
    }
    for name, values in before.items():
        np.testing.assert_array_equal(after[name], values, err_msg=name)


@pytest.mark.parametrize("name", ["grid", "deribit"])
def test_pnl_is_zero_outside_own_group(name: str) -> None:
    """Per-asset grids: no instrument gains or loses (not even its time decay) in another asset's group."""
    sc = scenarios(name)
    arrays = build_risk_arrays(state(), sc, TIME_FLOOR)
    own = sc.group_asset[sc.group]
    other = own[np.newaxis, :] != state().instruments.asset[:, np.newaxis]
    assert other.any()
    assert np.all(arrays.instrument_pnl[other] == 0.0)


@pytest.mark.parametrize("set_name", list(SETS))
def test_linear_rows_compiled_equal_the_general_revaluation_to_the_bit(set_name: str) -> None:
    """An asset listing only linear instruments takes a compiled pass (`_linear_rows`); it writes what the
    general revaluation (`_asset_rows`, weighted as `refresh_risk_arrays` weights it) gives, bit for bit."""
    from solvent.engine.riskarrays import _asset_rows, _options_now

    st = build_market_state([CASE[i].instrument for i in LINEAR_IDS], SNAPSHOT, MarginParams())
    sc = SETS[set_name](st)
    built = build_risk_arrays(st, sc, TIME_FLOOR)
    for a in range(len(st.assets)):
        rows = np.flatnonzero(st.instruments.asset == a)
        if not rows.size:
            continue
        now = _options_now(st, np.array([a]), TIME_FLOOR)
        pnl, greeks, value, linear = _asset_rows(st, sc, TIME_FLOOR, rows, a, now)
        assert (pnl != 0.0).any()
        for got, want in (
            (built.instrument_pnl[rows], pnl * sc.pnl_weight),
            (built.unit_greeks[rows], greeks),
            (built.value[rows], value),
            (built.linear_weight[rows], linear),
        ):
            np.testing.assert_array_equal(got.view(np.int64), want.view(np.int64))


@pytest.mark.parametrize("set_name", list(SETS))
def test_compact_rows_hold_the_every_scenario_revaluation_to_the_bit(set_name: str) -> None:
    """`RiskArrays.pnl_rows` keeps each instrument's P&L on its asset's columns only (the shared scenarios, then its
    own groups; the Monte Carlo's mirrored stress group copied from the joint draws); its dense view equals the
    revaluation of every instrument in every scenario (`_asset_rows` on all S, nothing copied), bit for bit, and the
    padding past an asset's columns is 0."""
    from solvent.engine.riskarrays import _asset_rows, _options_now

    st, built = state(), arrays(set_name)
    sc = scenarios(set_name)
    assert built.pnl_rows.shape[1] <= sc.n_scenarios
    dense = built.instrument_pnl
    for a in range(len(st.assets)):
        rows = np.flatnonzero(st.instruments.asset == a)
        if not rows.size:
            continue
        now = _options_now(st, np.array([a]), TIME_FLOOR)  # this asset's options alone: the bits of the whole batch
        pnl, _, _, _ = _asset_rows(st, sc, TIME_FLOOR, rows, a, now, VOL_FLOOR)
        np.testing.assert_array_equal(dense[rows], pnl * sc.pnl_weight)
        np.testing.assert_array_equal(built.dense_rows(rows[::-1]), dense[rows[::-1]])
        assert np.all(built.pnl_rows[rows, built.scenarios_by_asset[a].size :] == 0.0)
    if set_name in ("grid", "deribit", "mc"):  # per-asset groups: the compact rows are narrower than S
        assert built.pnl_rows.shape[1] < sc.n_scenarios


@pytest.mark.parametrize("method", ["deribit", "grid", "mc"])
def test_shocked_vols_are_floored_at_vol_floor_so_a_long_option_is_not_charged_its_premium(method: str) -> None:
    """issue 12 item 13: every shocked vol is floored at `volatility.vol_floor`. Deribit's vol-down shock, -25%
    scaled by (30 days / 6 hours) ** 0.3 = 4.2, is -105% for a 6-hour option: unfloored, the vol goes to 0, and a
    long 6-hour ATM straddle over a 15-minute MPOR is charged its whole premium (in the unchanged-price, vol-down
    scenario; every price move of the ladder makes one leg's gain). The twin revalues every scenario here with
    the scalar Black-76 above at max(v (1 + u tau), floor) and takes ES99 by sorting, group by group."""
    from solvent.api import compute_margin
    from solvent.convert.inputs import portfolio_to_book
    from solvent.formats.schemas import Account, Portfolio, Position

    legs = [option(f"BTC-{kind}-6H", "BTC", 0.25, 95_000.0, kind) for kind in ("call", "put")]
    params = MarginParams(mpor_days=15.0 / 1440.0, scenarios=ScenarioParams(method=method))  # type: ignore[arg-type]
    snapshot = MarketSnapshot(
        schema="solvent.market/1", time=NOW, assets={"BTC": AssetQuote(price=95_000.0, vol=0.5)}, rate=0.0
    )
    held = Account(id="a", collateral={"USD": 1e6}, positions=[Position(instrument=o.id, quantity=1.0) for o in legs])
    book = portfolio_to_book(Portfolio(schema="solvent.portfolio/1", instruments=legs, accounts=[held]))
    result = compute_margin(book, snapshot, params)
    st = build_market_state(legs, snapshot, params)
    sc = generate_scenarios(st, params)
    a = st.asset_index["BTC"]
    t, h = 0.25 / 365.0, sc.horizon_years
    premium = sum(black76(95_000.0, 95_000.0, t, 0.5, 0.0, o.option_type == "call") for o in legs)
    expected = 0.0
    for start, stop in zip(sc.group_offsets[:-1].tolist(), sc.group_offsets[1:].tolist(), strict=True):
        losses = []
        for s in range(start, stop):
            vol = max(0.5 * max(1.0 + float(sc.vol_move[s, a]) * term_scale(t, sc.vol_term), 0.0), VOL_FLOOR)
            f = 95_000.0 * (1.0 + float(sc.price_move[s, a]))
            after = sum(black76(f, 95_000.0, t - h, vol, 0.0, o.option_type == "call") for o in legs)
            losses.append((premium - after) * float(sc.pnl_weight[s]))
        ordered = sorted(losses, reverse=True)
        tail = len(losses) * (1.0 - params.confidence)
        whole = math.floor(tail)
        measure = ordered[0] if tail < 1.0 else (sum(ordered[:whole]) + (tail - whole) * ordered[whole]) / tail
        expected += max(measure, 0.0)  # group results floored at 0 and summed
    assert result.terms["market_risk"][0] == pytest.approx(expected, rel=1e-9)
    assert result.terms["market_risk"][0] < 0.95 * premium


@pytest.mark.parametrize(
    ("rows", "columns"),
    [
        ([2, 3, 4], [0, 1, 2, 3]),
        ([2, 3, 4], [1, 3, 4]),
        ([0, 2, 3], [5, 6]),
        ([1, 0, 2], [4, 2, 3]),
        ([], [1]),
        ([3], []),
    ],
)
def test_block_indexes_what_ix_indexes(rows: list[int], columns: list[int]) -> None:
    """The (rows x columns) block by slices where they are runs of consecutive positions reads and writes the
    block np.ix_ does (runs out of order, gaps and empty sides included)."""
    r, c = np.array(rows, dtype=np.int64), np.array(columns, dtype=np.int64)
    grid = np.arange(48.0).reshape(6, 8)
    np.testing.assert_array_equal(grid[_block(r, c)], grid[np.ix_(r, c)])
    written, want = grid.copy(), grid.copy()
    written[_block(r, c)] = -np.arange(r.size * c.size).reshape(r.size, c.size)
    want[np.ix_(r, c)] = -np.arange(r.size * c.size).reshape(r.size, c.size)
    np.testing.assert_array_equal(written, want)
    assert isinstance(_span(np.array([4, 5, 6])), slice) and not isinstance(_span(np.array([4, 6, 5])), slice)


def test_group_plan_trusts_the_repeats_as_its_scan_finds() -> None:
    """issue 14 item 4: `group_plan` takes a repeat of the joint draws (`RiskArrays.group_repeats`) as its asset's
    own group without scanning asset_pnl there; the plan is the one the scan of every group gives."""
    from dataclasses import replace

    from solvent.engine.scenario_plan import group_plan

    got = arrays("mc")
    assert got.group_repeats is not None and np.any(got.group_repeats >= 0)
    joint, own = group_plan(got)
    scanned_joint, scanned_own = group_plan(replace(got, group_repeats=None))
    np.testing.assert_array_equal(joint, scanned_joint)
    np.testing.assert_array_equal(own, scanned_own)
    assert joint.tolist() == [0] and np.all(own[got.group_asset[got.group_repeats >= 0]] >= 1)
