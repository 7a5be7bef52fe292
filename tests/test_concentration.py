"""The concentration add-on (SIMM CR and dYdX ramp), HHI and the risk tier: by hand, against the dYdX baseline,
properties, and in the engine."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import norm

from solvent.api import compute_margin
from solvent.baselines.dydx import DydxParams, requirements
from solvent.convert.inputs import portfolio_to_book
from solvent.engine.results import MarginResult
from solvent.errors import InputError
from solvent.factors.concentration import (
    concentration_risk_factor,
    depth_within,
    exposure,
    herfindahl,
    open_interest,
    open_interest_of,
    ramp_add_on,
    side_thresholds,
    simm_add_on,
    simm_and_hhi,
    simm_thresholds,
    stressed_depth,
)
from solvent.formats.outputs import IM_TERMS
from solvent.formats.schemas import Account, AssetQuote, Depth, Instrument, MarketSnapshot, Portfolio, Position
from solvent.market.depth import asset_liquidity, book_side, parametric_side
from solvent.params import (
    ConcentrationParams,
    MaintenanceParams,
    MarginParams,
    ScenarioParams,
    VolatilityParams,
    params_from_json,
)

NOW = datetime(2026, 11, 25, tzinfo=UTC)
EXPIRY = NOW + timedelta(days=30)
BTC, ETH = 95_000.0, 3_400.0
INSTRUMENTS = [
    Instrument(id="BTC-SPOT", kind="spot", underlying="BTC"),
    Instrument(id="BTC-PERP", kind="perp", underlying="BTC"),
    Instrument(id="ETH-PERP", kind="perp", underlying="ETH"),
    Instrument(id="BTC-C", kind="option", underlying="BTC", expiry=EXPIRY, strike=100_000, option_type="call"),
]
LINEAR = {"BTC-SPOT": BTC, "BTC-PERP": BTC, "ETH-PERP": ETH}
PLAIN = MarketSnapshot(
    schema="solvent.market/1",
    time=NOW,
    assets={"BTC": AssetQuote(price=BTC, vol=0.5), "ETH": AssetQuote(price=ETH, vol=0.7)},
)
DEEP = MarketSnapshot(
    schema="solvent.market/1",
    time=NOW,
    assets={
        "BTC": AssetQuote(
            price=BTC, vol=0.5, depth=Depth(spread=0.0002, depth_1pct=300.0, depth_2pct=800.0), vol_spread=0.02
        ),
        "ETH": AssetQuote(price=ETH, vol=0.7, depth=Depth(spread=0.0004, depth_1pct=3_000.0, depth_2pct=7_000.0)),
    },
)


def account(name: str, positions: list[tuple[str, float]], tier: float | None = None) -> Account:
    return Account(
        id=name,
        collateral={"USD": 1e9},
        risk_tier=tier,
        positions=[Position(instrument=i, quantity=q, entry_price=LINEAR.get(i)) for i, q in positions],
    )


def run(accounts: list[Account], params: MarginParams, market: MarketSnapshot = PLAIN) -> MarginResult:
    book = portfolio_to_book(Portfolio(schema="solvent.portfolio/1", instruments=INSTRUMENTS, accounts=accounts))
    return compute_margin(book, market, params)


def conc(**fields: object) -> MarginParams:
    return MarginParams(concentration=ConcentrationParams(**fields))  # type: ignore[arg-type]


def scan(vol: float) -> float:
    """A long's loss per unit of notional at the grid's 3/3 down move at the defaults: the lognormal 99% ES of a
    2-day fall, 1 - e^(s^2 / 2) Phi(-z - s) / 0.01, s = vol sqrt(2 / 365) (issue 12 item 10)."""
    s = vol * math.sqrt(2 / 365)
    return 1.0 - math.exp(0.5 * s * s) * float(norm.cdf(-float(norm.ppf(0.99)) - s)) / 0.01


# ------------------------------------------------------------------------------- SIMM CR by hand


def test_cr_is_simm_formula() -> None:
    cr = concentration_risk_factor(np.array([[40e6, -10e6, 0.0]]), np.full((1, 3), 10e6))
    np.testing.assert_allclose(cr, [[2.0, 1.0, 1.0]], rtol=1e-15)


def test_simm_add_on_by_hand_two_assets() -> None:
    # 40M long BTC (T 10M: CR 2) and 10M short ETH (below T): market risk 1,000 split 4:1 by |notional| at
    # equal vols, and 4 x 0.5 : 1 x 1.0 = 2:1 by own risk when ETH's vol is twice BTC's
    x = np.array([[40e6, -10e6]])
    add_on = simm_add_on(x, np.array([1000.0]), np.full((1, 2), 10e6), np.array([0.5, 0.5]))
    np.testing.assert_allclose(add_on, [[(2.0 - 1.0) * 1000.0 * 0.8, 0.0]], rtol=1e-15)
    add_on = simm_add_on(x, np.array([1000.0]), np.full((1, 2), 10e6), np.array([0.5, 1.0]))
    np.testing.assert_allclose(add_on, [[(2.0 - 1.0) * 1000.0 * 2.0 / 3.0, 0.0]], rtol=1e-15)


def test_simm_in_the_engine_by_hand() -> None:
    # 400 BTC long (38M) against T = 10M: CR = sqrt(3.8); the grid's market risk is the full scan move
    params = conc(threshold=10e6)
    res = run([account("big", [("BTC-PERP", 400.0)])], params)
    market_risk = 400 * BTC * scan(0.5)
    assert res.terms["market_risk"][0] == pytest.approx(market_risk, rel=1e-12)
    assert res.terms["concentration"][0] == pytest.approx((math.sqrt(3.8) - 1.0) * market_risk, rel=1e-12)
    btc = res.assets.index("BTC")
    assert res.term_by_asset["concentration"][0, btc] == res.terms["concentration"][0]


@pytest.mark.parametrize(("btc_vol", "eth_vol"), [(0.5, 0.7), (0.3, 1.5), (1.2, 0.4)])
def test_simm_allocates_market_risk_by_own_risk_in_the_engine(btc_vol: float, eth_vol: float) -> None:
    """issue 12 item 13: the add-on splits market risk over assets by each asset's own risk, here the
    market risk of each leg margined alone (an independent run of the engine), not by |delta notional|.
    BTC 38M long over T = 10M; ETH 1,000 short (3.4M) under it. On main the BTC share was 38 / 41.4
    whatever the vols."""
    market = MarketSnapshot(
        schema="solvent.market/1",
        time=NOW,
        assets={"BTC": AssetQuote(price=BTC, vol=btc_vol), "ETH": AssetQuote(price=ETH, vol=eth_vol)},
    )
    params = conc(threshold=10e6)
    res = run([account("two", [("BTC-PERP", 400.0), ("ETH-PERP", -1000.0)])], params, market)
    alone = run([account("btc", [("BTC-PERP", 400.0)]), account("eth", [("ETH-PERP", -1000.0)])], params, market)
    own_btc, own_eth = alone.terms["market_risk"]
    assert own_btc == pytest.approx(400 * BTC * scan(btc_vol), rel=1e-12)  # |delta| x price x scan
    # The split's own risk is |x| sigma (docs/model.md); since the grid's scan is each side's lognormal ES
    # (issue 12 item 10), a short leg's standalone risk is above a long's of the same |x| sigma: the split
    # follows the legs margined alone to within that asymmetry, up ES / down ES - 1 at the larger vol.
    share = 400 * BTC * btc_vol / (400 * BTC * btc_vol + 1000 * ETH * eth_vol)
    s = max(btc_vol, eth_vol) * math.sqrt(2 / 365)
    up = math.exp(0.5 * s * s) * float(norm.cdf(s - float(norm.ppf(0.99)))) / 0.01 - 1.0
    assert share == pytest.approx(own_btc / (own_btc + own_eth), rel=up / scan(max(btc_vol, eth_vol)) - 1.0)
    want = (math.sqrt(3.8) - 1.0) * res.terms["market_risk"][0] * share
    by_asset = res.term_by_asset["concentration"][0]
    assert by_asset[res.assets.index("BTC")] == pytest.approx(want, rel=1e-12)
    assert by_asset[res.assets.index("ETH")] == 0.0
    by_notional = (math.sqrt(3.8) - 1.0) * res.terms["market_risk"][0] * 400 * BTC / (400 * BTC + 1000 * ETH)
    assert abs(by_asset[res.assets.index("BTC")] - by_notional) > 1e-3 * by_notional  # the old split differs


# -------------------------------------------------------------------- thresholds: OI and depth


def test_open_interest_is_the_larger_side() -> None:
    x = np.array([[10.0, -5.0], [-4.0, 0.0], [-3.0, 2.0]])
    np.testing.assert_array_equal(open_interest(x), [10.0, 5.0])


@pytest.mark.parametrize(
    ("distance", "want"),
    [
        (0.0001, 0.0),  # inside the half-spread: nothing
        (0.0002, 0.0),  # the touch: the first unit
        (0.01, 300.0),
        (0.015, 550.0),  # half way from 300 at 1% to 800 at 2%
        (0.02, 800.0),
        (0.03, 1300.0),  # the last slope (500 units per 1%) continued
    ],
)
def test_depth_within_parametric_curve(distance: float, want: float) -> None:
    curve = parametric_side(0.0004, 300.0, 800.0, bid=False)
    assert depth_within(curve, distance) == pytest.approx(want, rel=1e-12)


def test_depth_within_book_curve_extrapolates_then_caps() -> None:
    bid = book_side([(0.0001, 5.0), (0.001, 40.0), (0.005, 250.0), (0.01, 600.0)], bid=True)
    # beyond 1%, the slope 0.5% / 350 units continues: 2% is reached 700 units later
    assert depth_within(bid, 0.02) == pytest.approx(1300.0, rel=1e-12)
    assert depth_within(bid, 1.0) == math.inf  # the bid is flat at a price of 0: everything fills there


def test_stressed_depth_in_usd() -> None:
    liquidity = tuple(asset_liquidity(q) for q in (DEEP.assets["BTC"], DEEP.assets["ETH"], None))
    bid, ask = stressed_depth(liquidity, np.array([BTC, ETH, 1.0]), 0.02, 2.0)
    np.testing.assert_allclose(bid[:2], [800 * BTC / 2, 7000 * ETH / 2], rtol=1e-12)
    np.testing.assert_allclose(ask[:2], bid[:2], rtol=1e-12)
    assert bid[2] == ask[2] == math.inf


def test_thresholds_take_the_smallest_then_the_floor() -> None:
    x = np.array([[5e6, -5e6]])
    oi = np.array([20e6, 20e6])
    bid, ask = np.array([1e6, 50e6]), np.array([50e6, 3e6])
    t = simm_thresholds(x, 37e6, oi, 0.25, bid, ask, 1.0, 0.0)
    np.testing.assert_array_equal(t, [[1e6, 3e6]])  # long -> bid depth; short -> ask depth
    floored = simm_thresholds(x, 37e6, oi, 0.25, bid, ask, 1.0, 2e6)
    np.testing.assert_array_equal(floored, [[2e6, 3e6]])
    capped = simm_thresholds(x, 0.5e6, oi, 0.25, bid, ask, 1.0, 2e6)  # the absolute threshold always applies
    np.testing.assert_array_equal(capped, [[0.5e6, 0.5e6]])
    off = simm_thresholds(x, 37e6, None, None, None, None, None, 2e6)
    np.testing.assert_array_equal(off, [[37e6, 37e6]])


def test_depth_threshold_in_the_engine() -> None:
    # 2,000 BTC long (190M) against the bid's stressed 2% depth: 800 BTC / stress 2 = 38M -> CR = sqrt(5)
    # (above the default absolute threshold of 37M, so that one is raised out of the way)
    res = run([account("whale", [("BTC-PERP", 2000.0)])], conc(threshold=100e6), DEEP)
    want = (math.sqrt(5.0) - 1.0) * res.terms["market_risk"][0]
    assert res.terms["concentration"][0] == pytest.approx(want, rel=1e-12)


def test_oi_share_in_the_engine() -> None:
    # OI 50M (the short side); a 20M long holds 40%: T = 10% of OI = 5M -> CR = 2
    whale = account("long", [("BTC-PERP", 20e6 / BTC)])
    other = account("short", [("BTC-PERP", -50e6 / BTC)])
    res = run([whale, other], conc(oi_share=0.1, relative_floor=0.0))
    assert res.terms["concentration"][0] == pytest.approx(res.terms["market_risk"][0], rel=1e-12)


# ----------------------------------------------------------------------------- ramp (dYdX)


def test_ramp_small_cap_at_35m_is_the_dydx_number() -> None:
    # REFERENCES.md / issue 3: Small-Cap (IMF 10%, caps $20M / $50M) at $35M open notional: IMF 0.55
    add_on = ramp_add_on(np.array([[35e6, -35e6]]), 0.10, 20e6, 50e6, "account", np.zeros(2))
    np.testing.assert_allclose(add_on, [[(0.55 - 0.10) * 35e6] * 2], rtol=1e-12)
    dydx = DydxParams()
    im, _ = requirements(35e6, dydx.tier_index("Small-Cap"), 35e6, dydx)
    np.testing.assert_allclose(add_on[0, 0], float(im) - 0.10 * 35e6, rtol=1e-12)


def test_ramp_in_the_engine_equals_the_dydx_baseline() -> None:
    qty = 35e6 / BTC
    params = conc(form="ramp", ramp_base_imf=0.10, ramp_lower_cap=20e6, ramp_upper_cap=50e6)
    res = run([account("a", [("BTC-PERP", qty)]), account("b", [("BTC-PERP", -1.0)])], params)
    dydx = DydxParams()
    notional = np.array([qty * BTC, -BTC])
    im, _ = requirements(notional, np.full(2, dydx.tier_index("Small-Cap")), np.abs(notional), dydx)
    np.testing.assert_allclose(res.terms["concentration"], im - 0.10 * np.abs(notional), rtol=1e-12)
    assert res.terms["concentration"][0] == pytest.approx(0.45 * 35e6, rel=1e-12)
    assert res.terms["concentration"][1] == 0.0


def test_ramp_driven_by_open_interest() -> None:
    # the asset's OI is 35M (the long side): every holder pays the ramp on its own |notional|
    params = conc(
        form="ramp", ramp_base_imf=0.10, ramp_lower_cap=20e6, ramp_upper_cap=50e6, ramp_driver="open_interest"
    )
    res = run([account("a", [("BTC-PERP", 25e6 / BTC)]), account("b", [("BTC-PERP", 10e6 / BTC)])], params)
    np.testing.assert_allclose(res.terms["concentration"], [0.45 * 25e6, 0.45 * 10e6], rtol=1e-12)


# ------------------------------------------------------------------ zero below threshold and flat


@pytest.mark.parametrize("form", ["simm", "ramp"])
def test_zero_below_threshold_and_for_a_flat_account(form: str) -> None:
    small = account("small", [("BTC-PERP", 10.0), ("ETH-PERP", -50.0)])
    flat = account("flat", [("BTC-SPOT", 300.0), ("BTC-PERP", -300.0)])
    empty = account("empty", [])
    res = run([small, flat, empty], conc(form=form), DEEP)
    np.testing.assert_array_equal(res.terms["concentration"], [0.0, 0.0, 0.0])
    np.testing.assert_array_equal(res.term_by_asset["concentration"], 0.0)


def test_disabled_zeroes_the_term() -> None:
    """Disabled, the term is still reported at 0 (issue 12 item 18: every declared term always present)."""
    res = run([account("a", [("BTC-PERP", 1.0)])], conc(enabled=False))
    assert not np.any(res.terms["concentration"]) and not np.any(res.term_by_asset["concentration"])
    assert list(res.terms) == list(IM_TERMS)


# ----------------------------------------------------------------------------------- properties

sizes = st.floats(0.0, 1e9, allow_nan=False)


@given(a=sizes, b=sizes, mr_per_usd=st.floats(0.0, 0.5), t=st.floats(1e3, 1e8))
def test_simm_add_on_non_negative_and_non_decreasing_in_size(a: float, b: float, mr_per_usd: float, t: float) -> None:
    lo, hi = sorted((a, b))
    x = np.array([[lo], [hi], [-lo], [-hi]])
    add_on = simm_add_on(x, mr_per_usd * np.abs(x[:, 0]), np.full((4, 1), t), np.array([0.5]))[:, 0]
    assert np.all(add_on >= 0.0)
    assert add_on[1] >= add_on[0] and add_on[3] >= add_on[2]


# widths of 0 (a step at the cap) or at least $1 (a subnormal width overflows inside factors.venue_curves.adjusted_imf)
@given(
    a=sizes,
    b=sizes,
    base=st.floats(0.01, 1.0),
    lower=st.floats(0.0, 1e8),
    width=st.one_of(st.just(0.0), st.floats(1.0, 1e8)),
)
def test_ramp_add_on_non_negative_and_non_decreasing_in_size(
    a: float, b: float, base: float, lower: float, width: float
) -> None:
    lo, hi = sorted((a, b))
    add_on = ramp_add_on(np.array([[lo], [hi]]), base, lower, lower + width, "account", np.zeros(1))[:, 0]
    assert np.all(add_on >= 0.0)
    assert add_on[1] >= add_on[0]


@given(
    x=st.floats(1e3, 1e9),
    oi_low=st.floats(1e3, 1e10),
    oi_high=st.floats(1e3, 1e10),
    share=st.floats(0.01, 1.0),
    floor=st.floats(0.0, 1e7),
)
def test_simm_add_on_non_decreasing_in_oi_share(
    x: float, oi_low: float, oi_high: float, share: float, floor: float
) -> None:
    # a larger share of open interest (the same exposure in a smaller market) never lowers the add-on
    small_oi, large_oi = sorted((max(oi_low, x), max(oi_high, x)))
    notional = np.array([[x, x]])  # the same exposure to two assets, one with the smaller OI
    t = simm_thresholds(notional, 37e6, np.array([small_oi, large_oi]), share, None, None, None, floor)
    add_on = simm_add_on(notional, np.array([0.2 * x]), t, np.array([0.6, 0.6]))[0]
    assert add_on[0] >= add_on[1] >= 0.0


@settings(max_examples=20, deadline=None)
@given(q1=st.floats(1.0, 3000.0), q2=st.floats(1.0, 3000.0), form=st.sampled_from(["simm", "ramp"]))
def test_engine_add_on_non_decreasing_in_size(q1: float, q2: float, form: str) -> None:
    lo, hi = sorted((q1, q2))
    params = conc(form=form, threshold=5e6, ramp_lower_cap=5e6, ramp_upper_cap=200e6)
    res = run([account("lo", [("BTC-PERP", -lo)]), account("hi", [("BTC-PERP", -hi)])], params, DEEP)
    assert 0.0 <= res.terms["concentration"][0] <= res.terms["concentration"][1]


@settings(max_examples=20, deadline=None)
@given(short_a=st.floats(10e6, 500e6), short_b=st.floats(10e6, 500e6))
def test_engine_add_on_non_decreasing_in_oi_share(short_a: float, short_b: float) -> None:
    # the same 10M long; the other side's size sets the OI: a smaller market means a larger share
    small, large = sorted((short_a, short_b))
    params = conc(oi_share=0.1, relative_floor=0.0)
    whale = account("long", [("BTC-PERP", 10e6 / BTC)])
    in_small = run([whale, account("short", [("BTC-PERP", -small / BTC)])], params)
    in_large = run([whale, account("short", [("BTC-PERP", -large / BTC)])], params)
    assert in_small.terms["concentration"][0] >= in_large.terms["concentration"][0] >= 0.0


# ------------------------------------------------- the compiled kernels against their numpy twins


def random_deltas(seed: int, n_accounts: int = 400, n_assets: int = 5) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    delta = rng.normal(0.0, 300.0, (n_accounts, n_assets)) * (rng.random((n_accounts, n_assets)) < 0.5)
    delta[:5] = 0.0  # flat accounts
    price = rng.uniform(1.0, 100_000.0, n_assets)
    return delta, price


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_open_interest_kernel_matches_the_twin(seed: int) -> None:
    delta, price = random_deltas(seed)
    np.testing.assert_allclose(open_interest_of(delta, price), open_interest(exposure(delta, price)), rtol=1e-12)


@pytest.mark.parametrize("seed", [0, 1, 2])
@pytest.mark.parametrize(("oi_share", "depth_share", "floor"), [(None, None, 0.0), (0.05, 1.0, 0.0), (0.2, 0.5, 1e6)])
def test_simm_kernel_matches_the_twin(
    seed: int, oi_share: float | None, depth_share: float | None, floor: float
) -> None:
    delta, price = random_deltas(seed)
    x = exposure(delta, price)
    market_risk = np.asarray(np.random.default_rng(seed).uniform(0.0, 1e5, delta.shape[0]), dtype=np.float64)
    market_risk[5:10] = 0.0
    oi = open_interest(x)
    depth = np.linspace(1e6, 5e7, delta.shape[1])
    depth[0] = 0.0  # no depth within the distance: T = 0 without a floor, CR = +inf where there is exposure
    args = (5e6, oi, oi_share, depth, depth[::-1], depth_share, floor)
    long_t, short_t = side_thresholds(delta.shape[1], *args)
    vol = np.random.default_rng(seed + 10).uniform(0.2, 1.5, delta.shape[1])
    vol[-1] = 0.0  # a zero scan: its exposure takes no share of the market risk
    add_on, hhi = simm_and_hhi(delta, price, market_risk, long_t, short_t, vol)
    want = simm_add_on(x, market_risk, simm_thresholds(x, *args), vol)
    np.testing.assert_allclose(add_on, want, rtol=1e-12, atol=0.0)
    np.testing.assert_allclose(hhi, herfindahl(x), rtol=1e-12, atol=0.0)


# ------------------------------------------------------------------------------------------ HHI


@pytest.mark.parametrize(
    ("x", "want"),
    [
        ([[5.0, 0.0]], 1.0),
        ([[-5.0, 0.0]], 1.0),
        ([[3.0, -3.0]], 0.5),
        ([[3.0, 4.0]], 25.0 / 49.0),
        ([[0.0, 0.0]], 0.0),
    ],
)
def test_hhi_by_hand(x: list[list[float]], want: float) -> None:
    assert herfindahl(np.array(x))[0] == pytest.approx(want, rel=1e-15)


def test_hhi_in_the_engine() -> None:
    single = account("single", [("BTC-PERP", 1.0)])
    pair = account("pair", [("BTC-PERP", 1.0), ("ETH-PERP", -BTC / ETH)])
    flat = account("flat", [("BTC-SPOT", 1.0), ("BTC-PERP", -1.0)])
    res = run([single, pair, flat], MarginParams())
    assert res.hhi is not None
    np.testing.assert_allclose(res.hhi, [1.0, 0.5, 0.0], rtol=1e-12, atol=1e-15)
    np.testing.assert_array_equal(res.to_arrow().column("hhi").to_numpy(), res.hhi)


# ------------------------------------------------------------------------------------ risk tier


@pytest.mark.parametrize("mode", ["fraction", "model"])
def test_risk_tier_scales_im_and_mm(mode: str) -> None:
    params = MarginParams(
        concentration=ConcentrationParams(threshold=10e6),
        maintenance=MaintenanceParams(mode=mode),  # type: ignore[arg-type]
    )
    positions = [("BTC-PERP", 400.0), ("ETH-PERP", -20.0), ("BTC-C", -3.0)]
    res = run([account("plain", positions), account("tiered", positions, tier=1.5)], params, DEEP)
    assert res.terms["concentration"][0] > 0.0 and res.terms["liquidity"][0] > 0.0
    assert res.terms["risk_tier"][0] == 0.0
    rest = sum(values[0] for name, values in res.terms.items() if name != "risk_tier")
    assert res.terms["risk_tier"][1] == 0.5 * rest
    assert res.im[1] == 1.5 * res.im[0]
    assert res.mm[1] == pytest.approx(1.5 * res.mm[0], rel=1e-15)


def test_risk_tier_below_one_lowers_the_requirement() -> None:
    res = run([account("plain", [("BTC-PERP", 2.0)]), account("vip", [("BTC-PERP", 2.0)], tier=0.8)], MarginParams())
    assert res.terms["risk_tier"][1] == pytest.approx(-0.2 * res.im[0], rel=1e-15)
    assert res.im[1] == pytest.approx(0.8 * res.im[0], rel=1e-15)


# ---------------------------------------------------------------------------- terms and hedges

ALL_ON = {
    "simm": MarginParams(
        volatility=VolatilityParams(apc_mode="buffer"),
        concentration=ConcentrationParams(threshold=2e6, oi_share=0.2, relative_floor=0.0),
    ),
    "ramp": MarginParams(
        volatility=VolatilityParams(apc_mode="buffer"),
        concentration=ConcentrationParams(form="ramp", ramp_lower_cap=2e6, ramp_upper_cap=60e6),
    ),
}
books = st.lists(
    st.tuples(
        st.lists(
            st.tuples(
                st.sampled_from([i.id for i in INSTRUMENTS]), st.floats(-500, 500).filter(lambda q: abs(q) > 1e-3)
            ),
            max_size=4,
        ),
        st.one_of(st.none(), st.floats(0.5, 3.0)),
    ),
    min_size=1,
    max_size=6,
)


@settings(max_examples=25, deadline=None)
@given(accounts=books, form=st.sampled_from(["simm", "ramp"]))
def test_terms_sum_exactly_to_im(accounts: list[tuple[list[tuple[str, float]], float | None]], form: str) -> None:
    res = run([account(f"a{n}", p, tier) for n, (p, tier) in enumerate(accounts)], ALL_ON[form], DEEP)
    assert list(res.terms) == list(IM_TERMS)
    total = np.zeros(res.n_accounts)
    for values in res.terms.values():
        total = total + values
    np.testing.assert_array_equal(res.im, total)
    np.testing.assert_allclose(res.terms["concentration"], res.term_by_asset["concentration"].sum(axis=1), rtol=1e-12)
    assert np.all(res.terms["concentration"] >= 0.0)
    assert np.all(res.im >= res.mm) and np.all(res.mm >= 0.0)


@pytest.mark.parametrize("form", ["simm", "ramp"])
@pytest.mark.parametrize("method", ["grid", "deribit", "mc"])
@pytest.mark.parametrize("size", [1.0, 150.0, 2500.0])
@pytest.mark.parametrize("tier", [None, 2.0])
def test_hedge_never_costs_more_than_its_legs(form: str, method: str, size: float, tier: float | None) -> None:
    params = msgspec_replace(ALL_ON[form], method)
    res = run(
        [
            account("hedge", [("BTC-SPOT", size), ("BTC-PERP", -size)], tier),
            account("spot", [("BTC-SPOT", size)], tier),
            account("perp", [("BTC-PERP", -size)], tier),
        ],
        params,
        DEEP,
    )
    hedge, spot, perp = res.im
    assert hedge <= spot and hedge <= perp
    assert res.terms["concentration"][0] == 0.0


def msgspec_replace(params: MarginParams, method: str) -> MarginParams:
    from msgspec import structs

    return structs.replace(params, scenarios=ScenarioParams(method=method))  # type: ignore[arg-type]


# ------------------------------------------------------------------------------------ parameters


def test_caps_out_of_order_are_refused() -> None:
    bad = b'{"schema": "solvent.params/1", "concentration": {"ramp_lower_cap": 2e8}}'
    with pytest.raises(InputError, match="ramp_lower_cap"):
        params_from_json(bad)


def test_params_round_trip() -> None:
    params = conc(form="ramp", oi_share=0.3, depth_share=None, ramp_driver="open_interest")
    assert params_from_json(params.to_json()) == params
