"""Black-76 on the forward: prices and analytic Greeks of European options, vectorised.

Black, F. (1976), "The pricing of commodity contracts", Journal of Financial Economics 3, 167-179.
With D = exp(-r T), s = sigma sqrt(T), d1 = ln(F / K) / s + s / 2 and d2 = d1 - s:

    call = D [F N(d1) - K N(d2)]          put = D [K N(-d2) - F N(-d1)]

Conventions (every output is per one unit of the option):
  price  in the currency of F and K, discounted to today at the continuous rate r;
  delta  dV/dF (the forward delta, discounting included: D N(d1) for a call);
  gamma  d2V/dF2;
  vega   dV/dsigma per 1.0 of volatility (multiply by 0.01 for a vol point);
  theta  dV/dt per year as calendar time passes with F, sigma and r held: -dV/dT, which includes
         the r V term from discounting.

Expiry: years <= 0 is expired. The value is then exactly the intrinsic max(F - K, 0) (call) or
max(K - F, 0) (put), delta is the step (1 or 0 for a call, -1 or 0 for a put, +-0.5 at F == K) and
gamma, vega and theta are 0.

Floors, both explicit keyword parameters: a time to expiry in (0, time_floor) is priced at time_floor
and a volatility below vol_floor (0 included) at vol_floor, so that d1 and d2 stay finite. The
Greeks are those of the floored inputs.

Normal tails use scipy.special.ndtr on +-d (never 1 - N(d)), so deep in- and out-of-the-money prices
keep their relative accuracy. F = 0 and K = 0 give the limits (a call on F = 0 is worth 0, a put D K);
NaN inputs give NaN outputs. The functions never mutate their inputs.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.special import ndtr

FloatArray = NDArray[np.float64]

#: Default time floor: one minute, in years of 365 days.
TIME_FLOOR_YEARS: float = 1.0 / (365.0 * 1440.0)
#: Default volatility floor (per 1.0 of vol, i.e. 0.01%).
VOL_FLOOR: float = 1e-4

_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


class Greeks(NamedTuple):
    """Black-76 price and Greeks, each a float64 array of the broadcast input shape (see module doc)."""

    price: FloatArray
    delta: FloatArray
    gamma: FloatArray
    vega: FloatArray
    theta: FloatArray


class _Inputs(NamedTuple):
    """The converted, floored inputs and d1, d2, each of the broadcast shape of what it depends on alone."""

    forward: FloatArray
    strike: FloatArray
    rate: FloatArray
    sign: FloatArray  # +1 call, -1 put
    expired: NDArray[np.bool_]
    years: FloatArray  # floored
    vol: FloatArray  # floored
    sqrt_years: FloatArray
    discount: FloatArray
    d1: FloatArray
    d2: FloatArray


def _check_floor(name: str, value: float) -> None:
    if not (math.isfinite(value) and value > 0.0):
        raise ValueError(f"{name} must be a finite positive number, got {value!r}")


def _prepare(
    forward: ArrayLike,
    strike: ArrayLike,
    years: ArrayLike,
    vol: ArrayLike,
    rate: ArrayLike,
    is_call: ArrayLike,
    time_floor: float,
    vol_floor: float,
) -> _Inputs:
    """Convert once; apply the floors; compute d1 and d2.

    Each quantity is computed on the broadcast shape of its own inputs only (the sign on is_call's, the discount on
    rate's and years'), and broadcast where it meets the others: an (options, 1) expiry against (options, scenarios)
    forwards is floored, rooted and discounted once per option. Every element goes through the same operations in
    the same order as on fully broadcast inputs, so the figures are the same to the bit.
    """
    _check_floor("time_floor", time_floor)
    _check_floor("vol_floor", vol_floor)
    f, k, t, v, r = (np.asarray(x, dtype=np.float64) for x in (forward, strike, years, vol, rate))
    call = np.asarray(is_call, dtype=np.bool_)
    np.broadcast(f, k, t, v, r, call)  # ValueError where the shapes do not broadcast together
    sign = np.where(call, 1.0, -1.0)
    t_eff = np.maximum(t, time_floor)  # NaN stays NaN
    v_eff = np.maximum(v, vol_floor)
    sqrt_t = np.sqrt(t_eff)
    s = v_eff * sqrt_t
    with np.errstate(divide="ignore", over="ignore", invalid="ignore"):
        # F = 0 or K = 0 (or F / K out of range): ln(F / K) = -inf or +inf, and then d1 = d2 = -inf
        # or +inf, which the formulas below take to the correct limits.
        log_moneyness = np.log(f / k)
        d1 = log_moneyness / s + 0.5 * s
    d2 = d1 - s
    discount = np.exp(-r * t_eff)
    return _Inputs(f, k, r, sign, t <= 0.0, t_eff, v_eff, sqrt_t, discount, d1, d2)


def _as_float(x: ArrayLike) -> FloatArray:
    """A float64 ndarray (0-d for scalar inputs: numpy arithmetic on 0-d arrays returns scalars)."""
    return np.asarray(x, dtype=np.float64)


def _full(x: FloatArray, shape: tuple[int, ...]) -> FloatArray:
    """x as a float64 array of the broadcast `shape` (gamma and vega do not depend on is_call: where only is_call
    has some of the dimensions, they are repeated along them)."""
    if x.shape == shape:
        return _as_float(x)
    return np.array(np.broadcast_to(x, shape), dtype=np.float64)


def _price(p: _Inputs) -> FloatArray:
    # Each tail through ndtr(+-d), never 1 - ndtr(d): deep in and out of the money stay accurate.
    signed_discount = p.sign * p.discount  # its own shape (per option), broadcast in the product below
    live = signed_discount * (p.forward * ndtr(p.sign * p.d1) - p.strike * ndtr(p.sign * p.d2))
    if p.expired.any():  # else np.where would pick every element of live, as it is
        live = np.where(p.expired, np.maximum(p.sign * (p.forward - p.strike), 0.0), live)
    return _as_float(live + 0.0)  # + 0.0: no -0.0 for puts


def black76_price(
    forward: ArrayLike,
    strike: ArrayLike,
    years: ArrayLike,
    vol: ArrayLike,
    rate: ArrayLike,
    is_call: ArrayLike,
    *,
    time_floor: float = TIME_FLOOR_YEARS,
    vol_floor: float = VOL_FLOOR,
) -> FloatArray:
    """Black-76 price of European options on a forward; all arguments broadcast together.

    forward, strike: F > 0 and K > 0, in the same currency. years: time to expiry in years
    (<= 0: expired, valued at intrinsic). vol: Black volatility per 1.0 (0.8 = 80%). rate: continuously
    compounded discount rate per year. is_call: True for calls, False for puts.
    time_floor: years in (0, time_floor) are priced at time_floor (default TIME_FLOOR_YEARS, one
    minute of a 365-day year). vol_floor: vols below it are priced at it (default VOL_FLOOR, 1e-4).
    Both floors must be finite and positive (ValueError otherwise).

    Returns a float64 array of the broadcast shape (0-d for scalar inputs).
    """
    return _price(_prepare(forward, strike, years, vol, rate, is_call, time_floor, vol_floor))


def black76_greeks(
    forward: ArrayLike,
    strike: ArrayLike,
    years: ArrayLike,
    vol: ArrayLike,
    rate: ArrayLike,
    is_call: ArrayLike,
    *,
    time_floor: float = TIME_FLOOR_YEARS,
    vol_floor: float = VOL_FLOOR,
) -> Greeks:
    """Black-76 price, delta, gamma, vega (per 1.0 of vol) and theta (per year) of European options.

    Arguments, floors and shapes as in `black76_price`; the Greeks are taken at the floored time and
    vol. delta = dV/dF, gamma = d2V/dF2, vega = dV/dsigma, theta = -dV/dT (rate term included).
    Expired options (years <= 0): delta is the step 1/0 (call) or -1/0 (put), +-0.5 at F == K, and
    gamma = vega = theta = 0.
    """
    p = _prepare(forward, strike, years, vol, rate, is_call, time_floor, vol_floor)
    price = _price(p)
    with np.errstate(over="ignore"):  # d1 * d1 = inf only where the density is 0 anyway
        discounted_pdf = p.discount * _INV_SQRT_2PI * np.exp(-0.5 * p.d1 * p.d1)
    delta = p.sign * p.discount * ndtr(p.sign * p.d1)
    with np.errstate(divide="ignore", invalid="ignore"):  # F = 0: a density of 0 over 0
        gamma = np.where(p.forward == 0.0, 0.0, discounted_pdf / (p.forward * p.vol * p.sqrt_years))
    vega = discounted_pdf * p.forward * p.sqrt_years
    theta = p.rate * price - 0.5 * discounted_pdf * p.forward * p.vol / p.sqrt_years

    moneyness = p.sign * (p.forward - p.strike)
    step = np.where(moneyness > 0.0, 1.0, np.where(moneyness == 0.0, 0.5, 0.0))
    step = np.where(np.isnan(moneyness), np.nan, step)
    return Greeks(
        price=price,
        delta=_as_float(np.where(p.expired, p.sign * step, delta) + 0.0),
        gamma=_full(np.where(p.expired, 0.0, gamma), price.shape),
        vega=_full(np.where(p.expired, 0.0, vega), price.shape),
        theta=_as_float(np.where(p.expired, 0.0, theta)),
    )
