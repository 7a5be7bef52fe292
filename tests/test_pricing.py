"""Black-76 prices and Greeks (solvent.pricing), tested in layers.

(a) Against two independent implementations on 10,000 seeded random options: vollib 1.0.11
    (`vollib.black.black` and `vollib.black.greeks.analytical`, built on Jäckel's LetsBeRational) and
    QuantLib 1.44 (`BlackCalculator`). (b) Every analytic Greek against central finite differences of
    the price. (c) Invariants: expiry at intrinsic, put-call parity, no-arbitrage bounds, monotonicity
    in vol, the floors. (e) Inputs are not mutated; arguments broadcast; the vectorised result equals
    scalar calls one by one.

Formula: Black, F. (1976), "The pricing of commodity contracts", Journal of Financial Economics 3,
167-179.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
import pytest
from numpy.typing import NDArray

from solvent.pricing import (
    TIME_FLOOR_YEARS,
    VOL_FLOOR,
    Greeks,
    black76_greeks,
    black76_price,
)

FloatArray = NDArray[np.float64]
GREEKS = ("price", "delta", "gamma", "vega", "theta")
MINUTE = 1.0 / (365.0 * 1440.0)


# ---------------------------------------------------------------------------------------------------
# (a) Reference libraries on random options


class Options(NamedTuple):
    forward: FloatArray
    strike: FloatArray
    years: FloatArray
    vol: FloatArray
    rate: FloatArray
    is_call: NDArray[np.bool_]
    z: FloatArray  # ln(K / F) in standard deviations sigma sqrt(T)


def random_options(n: int, seed: int) -> Options:
    """Calls and puts with forwards 0.01..1e5, expiries 5 minutes..3 years (log-uniform, so about a
    third under a day), vols 5%..300%, rates -2%..10%, and strikes at ln(K/F) = z sigma sqrt(T) with
    z uniform in [-3.5, 3.5] for 80% of them and in [-12, 12] (deep in and out of the money) for the rest.
    """
    rng = np.random.default_rng(seed)
    years = np.exp(rng.uniform(math.log(5 * MINUTE), math.log(3.0), n))
    vol = np.exp(rng.uniform(math.log(0.05), math.log(3.0), n))
    rate = rng.uniform(-0.02, 0.10, n)
    forward = np.exp(rng.uniform(math.log(0.01), math.log(1e5), n))
    z = np.where(rng.random(n) < 0.8, rng.uniform(-3.5, 3.5, n), rng.uniform(-12.0, 12.0, n))
    strike = forward * np.exp(z * vol * np.sqrt(years))
    return Options(forward, strike, years, vol, rate, rng.random(n) < 0.5, z)


N_RANDOM = 10_000
SEED = 20240601


@pytest.fixture(scope="module")
def options() -> Options:
    return random_options(N_RANDOM, SEED)


@pytest.fixture(scope="module")
def ours(options: Options) -> Greeks:
    o = options
    return black76_greeks(o.forward, o.strike, o.years, o.vol, o.rate, o.is_call)


def vollib_greeks(o: Options) -> dict[str, FloatArray]:
    """vollib 1.0.11, one option at a time. Its vega is per vol point (x100 here) and its theta per
    day of 365 (x365 here); its delta is dV/dF including the discount factor, like ours."""
    pytest.importorskip("vollib")
    from vollib.black import black
    from vollib.black.greeks import analytical

    out = np.empty((5, len(o.forward)))
    for i in range(len(o.forward)):
        args = (
            "c" if o.is_call[i] else "p",
            float(o.forward[i]),
            float(o.strike[i]),
            float(o.years[i]),
            float(o.rate[i]),
            float(o.vol[i]),
        )
        out[:, i] = (
            black(*args),
            analytical.delta(*args),
            analytical.gamma(*args),
            analytical.vega(*args) * 100.0,
            analytical.theta(*args) * 365.0,
        )
    return dict(zip(GREEKS, out, strict=True))


def quantlib_greeks(o: Options) -> dict[str, FloatArray]:
    """QuantLib 1.44 BlackCalculator(payoff, forward, stdDev = sigma sqrt(T), discount = e^(-rT)), one
    option at a time: value, deltaForward and gammaForward (discounted, so dV/dF and d2V/dF2), vega(T)
    (per 1.0 of vol) and theta(spot = F, T) (per year; with spot = F the carry is zero, which is the
    option on a forward)."""
    ql = pytest.importorskip("QuantLib")
    out = np.empty((5, len(o.forward)))
    for i in range(len(o.forward)):
        f, t = float(o.forward[i]), float(o.years[i])
        payoff = ql.PlainVanillaPayoff(ql.Option.Call if o.is_call[i] else ql.Option.Put, float(o.strike[i]))
        calc = ql.BlackCalculator(payoff, f, float(o.vol[i]) * math.sqrt(t), math.exp(-float(o.rate[i]) * t))
        out[:, i] = (calc.value(), calc.deltaForward(), calc.gammaForward(), calc.vega(t), calc.theta(f, t))
    return dict(zip(GREEKS, out, strict=True))


@pytest.fixture(scope="module")
def vollib_reference(options: Options) -> dict[str, FloatArray]:
    return vollib_greeks(options)


@pytest.fixture(scope="module")
def quantlib_reference(options: Options) -> dict[str, FloatArray]:
    return quantlib_greeks(options)


# Agreement: |ours - reference| <= RTOL |reference| + ATOL x (the Greek's natural scale: F for price,
# vega and theta, 1 for delta, 1/F for gamma). The absolute floor is needed because QuantLib's
# cumulative normal is 0.5 (1 + erf(x / sqrt 2)) down to 1e-8: accurate to ~1e-17 absolute but not
# relative in the left tail (1.3e-8 relative at x = -6, so about 2e-6 relative on OTM prices near
# 1e-8 F), and QuantLib takes F N(d1) - K N(d2) by subtraction. 1e-10 F is far below any margin.
# Observed with SEED: worst |error| / allowed is 3e-6 against vollib and 3e-3 against QuantLib; relative
# errors above the floor at most 3e-11 (prices: short-dated OTM, where F N(d1) - K N(d2) cancels) and
# 7e-15 (delta, gamma, vega) against vollib.
RTOL = 1e-8
ATOL = 1e-10


def natural_scale(name: str, forward: FloatArray) -> FloatArray:
    return {"delta": np.ones_like(forward), "gamma": 1.0 / forward}.get(name, forward)


def assert_agrees(name: str, actual: FloatArray, expected: FloatArray, o: Options) -> None:
    err = np.abs(actual - expected)
    allowed = RTOL * np.abs(expected) + ATOL * natural_scale(name, o.forward)
    bad = np.flatnonzero(~(err <= allowed))
    if bad.size:
        i = bad[np.argmax((err / allowed)[bad])]
        pytest.fail(
            f"{name}: {bad.size} of {err.size} options disagree; worst #{i}: ours {actual[i]!r}, "
            f"reference {expected[i]!r} (F={o.forward[i]!r}, K={o.strike[i]!r}, T={o.years[i]!r}, "
            f"vol={o.vol[i]!r}, r={o.rate[i]!r}, call={bool(o.is_call[i])}, z={o.z[i]:.3f})"
        )


@pytest.mark.parametrize("name", GREEKS)
def test_agrees_with_vollib(name: str, options: Options, ours: Greeks, vollib_reference: dict[str, FloatArray]) -> None:
    """vollib 1.0.11 (Black 1976 via LetsBeRational): 10,000 random options within 1e-8 relative."""
    assert_agrees(name, getattr(ours, name), vollib_reference[name], options)


@pytest.mark.parametrize("name", GREEKS)
def test_agrees_with_quantlib(
    name: str, options: Options, ours: Greeks, quantlib_reference: dict[str, FloatArray]
) -> None:
    """QuantLib 1.44 BlackCalculator: 10,000 random options within 1e-8 relative."""
    assert_agrees(name, getattr(ours, name), quantlib_reference[name], options)


def test_random_set_spans_the_intended_ranges(options: Options) -> None:
    """The random set really contains sub-day expiries, deep ITM/OTM strikes, both option types."""
    o = options
    assert (o.years < 1.0 / 365.0).sum() > 1000
    assert o.years.min() < 10 * MINUTE and o.years.max() > 2.9
    assert (np.abs(o.z) > 6.0).sum() > 500
    assert o.vol.min() < 0.06 and o.vol.max() > 2.9
    assert 0.45 < o.is_call.mean() < 0.55
    assert (o.rate < 0).any()


# ---------------------------------------------------------------------------------------------------
# (b) Finite differences


class Case(NamedTuple):
    forward: float
    strike: float
    years: float
    vol: float
    rate: float


def at_z(forward: float, z: float, years: float, vol: float, rate: float) -> Case:
    """A case with ln(K/F) = z sigma sqrt(T)."""
    return Case(forward, forward * math.exp(z * vol * math.sqrt(years)), years, vol, rate)


CASES = {
    "atm-1y": Case(100.0, 100.0, 1.0, 0.6, 0.03),
    "k80-3m": Case(100.0, 80.0, 0.25, 0.5, 0.05),
    "k130-30d": Case(100.0, 130.0, 30 / 365, 0.8, 0.05),
    "z+4-7d": at_z(100.0, 4.0, 7 / 365, 0.7, 0.04),
    "z-4-7d": at_z(100.0, -4.0, 7 / 365, 0.7, 0.04),
    "k101-6h": Case(100.0, 101.0, 0.25 / 365, 1.0, 0.05),
    "vol300-2y": Case(100.0, 150.0, 2.0, 3.0, 0.05),
    "negative-rate": Case(100.0, 95.0, 0.5, 0.3, -0.02),
    "vol5-3y": Case(100.0, 105.0, 3.0, 0.05, 0.10),
    "btc-14d": Case(65_000.0, 70_000.0, 14 / 365, 0.55, 0.05),
}
FD_PARAMS = [
    pytest.param(case, call, id=f"{name}-{'call' if call else 'put'}")
    for name, case in CASES.items()
    for call in (True, False)
]
FD_RTOL = 1e-6


def price(case: Case, call: bool, **change: float) -> float:
    c = case._replace(**change)
    return float(black76_price(c.forward, c.strike, c.years, c.vol, c.rate, call))


def greeks(case: Case, call: bool, **change: float) -> Greeks:
    c = case._replace(**change)
    return black76_greeks(c.forward, c.strike, c.years, c.vol, c.rate, call)


def assert_close(analytic: float, numeric: float, atol: float, rtol: float = FD_RTOL) -> None:
    assert abs(analytic - numeric) <= rtol * abs(analytic) + atol, (analytic, numeric)


def forward_step(case: Case) -> float:
    """The price varies on the scale F sigma sqrt(T); step well inside it."""
    return 1e-5 * case.forward * case.vol * math.sqrt(case.years)


@pytest.mark.parametrize(("case", "call"), FD_PARAMS)
def test_delta_is_dprice_dforward(case: Case, call: bool) -> None:
    h = forward_step(case)
    numeric = (price(case, call, forward=case.forward + h) - price(case, call, forward=case.forward - h)) / (2 * h)
    assert_close(float(greeks(case, call).delta), numeric, atol=1e-12)


@pytest.mark.parametrize(("case", "call"), FD_PARAMS)
def test_gamma_is_ddelta_dforward(case: Case, call: bool) -> None:
    h = forward_step(case)
    up, down = greeks(case, call, forward=case.forward + h), greeks(case, call, forward=case.forward - h)
    numeric = float(up.delta - down.delta) / (2 * h)
    assert_close(float(greeks(case, call).gamma), numeric, atol=1e-12 / case.forward)


@pytest.mark.parametrize(("case", "call"), FD_PARAMS)
def test_gamma_is_second_difference_of_price(case: Case, call: bool) -> None:
    """A looser check than the one on delta: the second difference divides the rounding of the price by
    h^2, so the tolerance carries that rounding (8 eps |V| / h^2) besides a 1e-5 relative truncation."""
    h = 100 * forward_step(case)
    f, v = case.forward, price(case, call)
    numeric = (price(case, call, forward=f + h) - 2 * v + price(case, call, forward=f - h)) / h**2
    rounding = 8 * np.finfo(np.float64).eps * abs(v) / h**2
    assert_close(float(greeks(case, call).gamma), numeric, atol=rounding + 1e-12 / f, rtol=1e-5)


@pytest.mark.parametrize(("case", "call"), FD_PARAMS)
def test_vega_is_dprice_dvol(case: Case, call: bool) -> None:
    """Vega per 1.0 of volatility (not per vol point)."""
    h = 1e-5 * case.vol
    numeric = (price(case, call, vol=case.vol + h) - price(case, call, vol=case.vol - h)) / (2 * h)
    assert_close(float(greeks(case, call).vega), numeric, atol=1e-12 * case.forward)


@pytest.mark.parametrize(("case", "call"), FD_PARAMS)
def test_theta_is_minus_dprice_dexpiry(case: Case, call: bool) -> None:
    """Theta per year as calendar time passes: -dV/dT, with the discounting term."""
    h = 1e-5 * case.years
    numeric = -(price(case, call, years=case.years + h) - price(case, call, years=case.years - h)) / (2 * h)
    assert_close(float(greeks(case, call).theta), numeric, atol=1e-12 * case.forward)


# ---------------------------------------------------------------------------------------------------
# (c) Invariants


@pytest.mark.parametrize("years", [0.0, -1.0 / 365.0], ids=["zero", "negative"])
def test_expired_option_is_intrinsic_with_step_delta(years: float) -> None:
    """Expired: exactly max(F - K, 0) / max(K - F, 0) (no discounting, no floor), delta 1/0 (call) or
    -1/0 (put) with +-0.5 at the money, and no gamma, vega or theta."""
    forward = np.array([50.0, 99.0, 100.0, 101.0, 250.0])
    g_call = black76_greeks(forward, 100.0, years, 0.8, 0.05, True)
    g_put = black76_greeks(forward, 100.0, years, 0.8, 0.05, False)
    np.testing.assert_array_equal(g_call.price, [0.0, 0.0, 0.0, 1.0, 150.0])
    np.testing.assert_array_equal(g_put.price, [50.0, 1.0, 0.0, 0.0, 0.0])
    np.testing.assert_array_equal(g_call.delta, [0.0, 0.0, 0.5, 1.0, 1.0])
    np.testing.assert_array_equal(g_put.delta, [-1.0, -1.0, -0.5, 0.0, 0.0])
    for g in (g_call, g_put):
        for name in ("gamma", "vega", "theta"):
            np.testing.assert_array_equal(getattr(g, name), np.zeros(5), err_msg=name)
    np.testing.assert_array_equal(black76_price(forward, 100.0, years, 0.8, 0.05, True), g_call.price)


def test_put_call_parity(options: Options) -> None:
    """C - P = e^(-rT) (F - K) to 1e-12 of e^(-rT) max(F, K) (Black 1976); delta C - delta P = e^(-rT);
    equal gamma and vega; theta C - theta P = r e^(-rT) (F - K)."""
    o = options
    call = black76_greeks(o.forward, o.strike, o.years, o.vol, o.rate, True)
    put = black76_greeks(o.forward, o.strike, o.years, o.vol, o.rate, False)
    discount = np.exp(-o.rate * o.years)
    scale = discount * np.maximum(o.forward, o.strike)
    parity = discount * (o.forward - o.strike)
    assert (np.abs(call.price - put.price - parity) <= 1e-12 * scale).all()
    assert (np.abs(call.delta - put.delta - discount) <= 1e-12).all()
    np.testing.assert_array_equal(call.gamma, put.gamma)
    np.testing.assert_array_equal(call.vega, put.vega)
    theta_scale = np.maximum(np.abs(call.theta), np.abs(put.theta)) + np.abs(o.rate) * scale
    assert (np.abs(call.theta - put.theta - o.rate * parity) <= 1e-12 * theta_scale).all()


def test_no_arbitrage_bounds(options: Options) -> None:
    """D max(F - K, 0) <= C <= D F and D max(K - F, 0) <= P <= D K (up to rounding, 1e-14 of the bound)."""
    o = options
    discount = np.exp(-o.rate * o.years)
    call = black76_price(o.forward, o.strike, o.years, o.vol, o.rate, True)
    put = black76_price(o.forward, o.strike, o.years, o.vol, o.rate, False)
    slack = 1e-14 * discount * np.maximum(o.forward, o.strike)
    assert (call >= discount * np.maximum(o.forward - o.strike, 0.0) - slack).all()
    assert (call <= discount * o.forward + slack).all()
    assert (put >= discount * np.maximum(o.strike - o.forward, 0.0) - slack).all()
    assert (put <= discount * o.strike + slack).all()


@pytest.mark.parametrize("call", [True, False], ids=["call", "put"])
@pytest.mark.parametrize("strike", [40.0, 90.0, 100.0, 110.0, 300.0])
@pytest.mark.parametrize("years", [1 / 365, 0.5], ids=["1d", "6m"])
def test_price_increases_with_vol(call: bool, strike: float, years: float) -> None:
    """Price is nondecreasing in vol from 0 to 500% (strictly increasing once off the intrinsic)."""
    vol = np.linspace(0.0, 5.0, 2001)
    g = black76_greeks(100.0, strike, years, vol, 0.05, call)
    assert (np.diff(g.price) >= -1e-14 * 100.0).all()
    assert (g.vega >= 0.0).all()
    assert g.price[-1] > g.price[0]


@pytest.mark.parametrize("call", [True, False], ids=["call", "put"])
def test_time_value_decays_at_zero_rate(call: bool) -> None:
    """With r = 0 an option never gains value as time passes: theta <= 0, price nondecreasing in T."""
    years = np.geomspace(MINUTE, 3.0, 500)
    g = black76_greeks(100.0, np.array([[60.0], [100.0], [160.0]]), years, 0.7, 0.0, call)
    assert (g.theta <= 0.0).all()
    assert (np.diff(g.price, axis=1) >= -1e-14 * 100.0).all()


@pytest.mark.parametrize("strike", [80.0, 90.0, 110.0, 120.0])
@pytest.mark.parametrize("call", [True, False], ids=["call", "put"])
def test_zero_vol_is_discounted_intrinsic_of_the_forward(strike: float, call: bool) -> None:
    """vol 0 is priced at VOL_FLOOR, which away from the money is the discounted intrinsic."""
    g = black76_greeks(100.0, strike, 1.0, 0.0, 0.05, call)
    discount = math.exp(-0.05)
    intrinsic = max(100.0 - strike, 0.0) if call else max(strike - 100.0, 0.0)
    assert float(g.price) == pytest.approx(discount * intrinsic, rel=1e-15, abs=1e-300)
    in_the_money = intrinsic > 0.0
    assert float(g.delta) == pytest.approx((1.0 if call else -1.0) * discount * in_the_money, abs=1e-300)
    assert float(g.gamma) == 0.0 and float(g.vega) == 0.0


def test_vol_below_floor_is_priced_at_floor() -> None:
    forward = np.array([90.0, 100.0, 100.0, 110.0])
    expected = black76_greeks(forward, 100.0, 0.1, VOL_FLOOR, 0.02, True)
    for vol in (0.0, VOL_FLOOR / 3):
        np.testing.assert_array_equal(
            np.array(black76_greeks(forward, 100.0, 0.1, vol, 0.02, True)), np.array(expected)
        )
    custom = black76_greeks(100.0, 100.0, 0.1, 0.01, 0.02, True, vol_floor=0.2)
    np.testing.assert_array_equal(np.array(custom), np.array(black76_greeks(100.0, 100.0, 0.1, 0.2, 0.02, True)))


def test_expiry_below_floor_is_priced_at_floor() -> None:
    """0 < T < time_floor is priced at time_floor (default one minute); T = 0 stays at intrinsic."""
    assert TIME_FLOOR_YEARS == pytest.approx(1.0 / (365 * 1440), rel=1e-15)
    at_floor = np.array(black76_greeks(100.0, 100.0, TIME_FLOOR_YEARS, 0.8, 0.05, False))
    for years in (1e-12, TIME_FLOOR_YEARS / 2):
        np.testing.assert_array_equal(np.array(black76_greeks(100.0, 100.0, years, 0.8, 0.05, False)), at_floor)
    day = 1.0 / 365.0
    custom = black76_greeks(100.0, 100.0, 1e-6, 0.8, 0.05, False, time_floor=day)
    np.testing.assert_array_equal(np.array(custom), np.array(black76_greeks(100.0, 100.0, day, 0.8, 0.05, False)))
    assert float(black76_price(100.0, 100.0, 0.0, 0.8, 0.05, False, time_floor=day)) == 0.0


@pytest.mark.parametrize("floor", [0.0, -1e-4, math.nan, math.inf])
@pytest.mark.parametrize("which", ["time_floor", "vol_floor"])
def test_bad_floor_is_rejected(which: str, floor: float) -> None:
    with pytest.raises(ValueError, match=which):
        black76_price(100.0, 100.0, 1.0, 0.5, 0.0, True, **{which: floor})


def test_extreme_inputs_give_finite_numbers_and_no_warnings() -> None:
    """No NaN, no inf and no RuntimeWarning (warnings are errors here) for positive F and K over 16
    orders of magnitude each, vol 0..10, expiry 0..100 years, rates -10%..20%."""
    f = np.geomspace(1e-8, 1e8, 17)[:, None, None, None, None]
    k = np.geomspace(1e-8, 1e8, 17)[None, :, None, None, None]
    years = np.array([0.0, 1e-12, MINUTE, 1 / 365, 1.0, 100.0])[None, None, :, None, None]
    vol = np.array([0.0, 1e-6, 0.2, 3.0, 10.0])[None, None, None, :, None]
    call = np.array([True, False])
    for rate in (-0.1, 0.0, 0.2):
        g = black76_greeks(f, k, years, vol, rate, call)
        for name in GREEKS:
            assert np.isfinite(getattr(g, name)).all(), name


@pytest.mark.parametrize("call", [True, False], ids=["call", "put"])
def test_zero_forward_and_zero_strike_are_the_limits(call: bool) -> None:
    """F = 0: a call is worth 0 and a put D K; K = 0: a call is worth D F and a put 0. No gamma or vega."""
    d = math.exp(-0.05)
    g = black76_greeks(np.array([0.0, 100.0]), np.array([100.0, 0.0]), 1.0, 0.5, 0.05, call)
    expected = [0.0, d * 100.0] if call else [d * 100.0, 0.0]
    np.testing.assert_allclose(g.price, expected, rtol=1e-15)
    np.testing.assert_array_equal(g.gamma, [0.0, 0.0])
    np.testing.assert_array_equal(g.vega, [0.0, 0.0])


@pytest.mark.parametrize("argument", ["forward", "strike", "years", "vol", "rate"])
def test_nan_input_gives_nan(argument: str) -> None:
    """A NaN is never turned into a number (fail closed: the caller sees it)."""
    args = {"forward": 100.0, "strike": 100.0, "years": 0.5, "vol": 0.5, "rate": 0.01, argument: math.nan}
    g = black76_greeks(args["forward"], args["strike"], args["years"], args["vol"], args["rate"], True)
    assert np.isnan(np.array(g)).all()


# ---------------------------------------------------------------------------------------------------
# (e) Inputs, shapes, and the scalar twin


def test_inputs_are_not_mutated(options: Options) -> None:
    o = options
    inputs = [o.forward, o.strike, o.years, o.vol, o.rate, o.is_call]
    copies = [x.copy() for x in inputs]
    black76_greeks(*inputs)
    black76_price(*inputs)
    for before, after in zip(copies, inputs, strict=True):
        np.testing.assert_array_equal(before, after)


def test_arguments_broadcast() -> None:
    forward = np.array([[90.0], [100.0], [110.0]])  # (3, 1)
    strike = np.array([80.0, 95.0, 100.0, 120.0])  # (4,)
    call = np.array([[True], [False], [True]])  # (3, 1)
    g = black76_greeks(forward, strike, 0.25, 0.6, 0.03, call)
    for name in GREEKS:
        value = getattr(g, name)
        assert isinstance(value, np.ndarray) and value.dtype == np.float64 and value.shape == (3, 4), name
    np.testing.assert_array_equal(black76_price(forward, strike, 0.25, 0.6, 0.03, call), g.price)
    for i in range(3):
        for j in range(4):
            one = black76_greeks(float(forward[i, 0]), float(strike[j]), 0.25, 0.6, 0.03, bool(call[i, 0]))
            np.testing.assert_array_equal(np.array(one), np.array(g)[:, i, j])


def test_per_option_inputs_give_the_bits_of_broadcast_ones() -> None:
    """(options, 1) expiries, strikes and flags against (options, scenarios) forwards and vols, as the risk arrays
    revalue: the same bits as every input materialised at the full shape (expired, floored and NaN ones included),
    and is_call alone holding a dimension repeats gamma and vega along it."""
    rng = np.random.default_rng(7)
    n_options, n_scenarios = 37, 29
    forward = 100.0 * np.exp(rng.normal(0.0, 0.4, (n_options, n_scenarios)))
    vol = rng.uniform(0.0, 1.5, (n_options, n_scenarios))
    strike = rng.uniform(50.0, 200.0, (n_options, 1))
    years = rng.uniform(-0.1, 2.0, (n_options, 1))
    years[:3, 0] = (0.0, MINUTE / 2.0, np.nan)
    call = rng.random((n_options, 1)) < 0.5
    rate = np.array(0.04)
    shape = (n_options, n_scenarios)
    full = [np.array(np.broadcast_to(x, shape)) for x in (forward, strike, years, vol, rate, call)]
    with np.errstate(invalid="ignore"):
        compact, dense = black76_greeks(forward, strike, years, vol, rate, call), black76_greeks(*full)
        np.testing.assert_array_equal(black76_price(forward, strike, years, vol, rate, call), dense.price)
    for name in GREEKS:
        got, want = getattr(compact, name), getattr(dense, name)
        assert got.shape == shape and got.flags.writeable, name
        assert got.tobytes() == want.tobytes(), name
    flags = np.array([[[True]], [[False]]])  # (2, 1, 1): only is_call spans the first dimension
    both = black76_greeks(forward, strike, years, vol, rate, flags)
    for name in GREEKS:
        value = getattr(both, name)
        assert value.shape == (2, *shape) and value.flags.writeable, name
    for i, flag in enumerate((True, False)):
        one = black76_greeks(forward, strike, years, vol, rate, flag)
        for name in GREEKS:
            assert getattr(both, name)[i].tobytes() == getattr(one, name).tobytes(), name


def test_scalars_give_zero_dimensional_arrays() -> None:
    g = black76_greeks(100, 100, 1, 0.2, 0, True)
    for name in GREEKS:
        value = getattr(g, name)
        assert isinstance(value, np.ndarray) and value.shape == () and value.dtype == np.float64, name
    p = black76_price([100, 110], 100, 1, 0.2, 0, [True, False])
    assert isinstance(p, np.ndarray) and p.shape == (2,)
