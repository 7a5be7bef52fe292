"""Deribit standard (non-portfolio) margin for inverse options, in BTC per contract.

Source (REFERENCES.md, "Venue rules"): Deribit's published margin documentation for inverse options
(Knowledge Base, "Inverse options margin"); the short-put rule was checked against restatements of
that page (TSLab's "Deribit margin requirements calculation", Dopp Finance's margin-system page), as
Deribit's own page is not in the stored sources. With U the underlying's mark price (USD), K the strike
(USD) and m the option's mark price (BTC per contract, i.e. per 1 BTC of underlying):

    short call:  OTM = max(K - U, 0)
                 IM = max(0.15 - OTM / U, 0.10) + m
                 MM = 0.075 + m
    short put:   OTM = max(U - K, 0)
                 MM = max(0.075, 0.075 x m) + m
                 IM = max(max(0.15 - OTM / U, 0.10) + m, MM)
    long call or put: no margin (IM = MM = 0): the premium is paid in full when the option is bought.

E.g. U 100,000, K 110,000, m 0.01: a short call needs IM = max(0.15 - 0.10, 0.10) + 0.01 = 0.11 and
MM = 0.085 BTC per contract. The 0.15 / 0.10 / 0.075 constants are the parameters below.

Not implemented: Deribit's standard margin for futures and perpetuals (an IM that grows with position
size), linear (USDC-settled) options, the portfolio-margin grid (see solvent.scenarios.deribit), and
any offset between positions: standard margin adds up positions one by one.
"""

from __future__ import annotations

from typing import Annotated

import msgspec
import numpy as np
from numpy.typing import ArrayLike

from solvent.baselines._common import FloatArray, as_float, check_range, out
from solvent.params import _Config

MarginFraction = Annotated[float, msgspec.Meta(gt=0.0, le=1.0)]


class DeribitStandardParams(_Config, frozen=True, kw_only=True):
    """Deribit standard margin constants for inverse options (fractions of the underlying, in BTC).

    initial_base: 0.15, reduced by the out-of-the-money share of the underlying, down to initial_floor
    (0.10). maintenance: 0.075. maintenance <= initial_floor <= initial_base.
    """

    initial_base: MarginFraction = 0.15
    initial_floor: MarginFraction = 0.10
    maintenance: MarginFraction = 0.075

    def __post_init__(self) -> None:
        check_range("initial_base", self.initial_base, 0.0, 1.0, low_open=True)
        check_range("initial_floor", self.initial_floor, 0.0, self.initial_base, low_open=True)
        check_range("maintenance", self.maintenance, 0.0, self.initial_floor, low_open=True)


def _inputs(strike: ArrayLike, underlying: ArrayLike, mark: ArrayLike) -> tuple[FloatArray, FloatArray, FloatArray]:
    k = as_float("strike", strike, nonnegative=True)
    u = as_float("underlying", underlying, nonnegative=True)
    if np.any(u <= 0.0):
        raise ValueError(f"underlying: must be > 0, got {float(u[u <= 0.0].flat[0])!r}")
    return k, u, as_float("mark", mark, nonnegative=True)


def short_call_margin(
    strike: ArrayLike, underlying: ArrayLike, mark: ArrayLike, params: DeribitStandardParams
) -> tuple[FloatArray, FloatArray]:
    """(IM, MM) in BTC per short call contract, broadcast over strike and underlying (USD), mark (BTC)."""
    k, u, m = _inputs(strike, underlying, mark)
    otm = np.maximum(k - u, 0.0)
    initial = np.maximum(params.initial_base - otm / u, params.initial_floor) + m
    return out(initial), out(params.maintenance + m)


def short_put_margin(
    strike: ArrayLike, underlying: ArrayLike, mark: ArrayLike, params: DeribitStandardParams
) -> tuple[FloatArray, FloatArray]:
    """(IM, MM) in BTC per short put contract, broadcast over strike and underlying (USD), mark (BTC)."""
    k, u, m = _inputs(strike, underlying, mark)
    otm = np.maximum(u - k, 0.0)
    maintenance = np.maximum(params.maintenance, params.maintenance * m) + m
    initial = np.maximum(np.maximum(params.initial_base - otm / u, params.initial_floor) + m, maintenance)
    return out(initial), out(maintenance)


def option_requirements(
    quantity: ArrayLike,
    is_call: ArrayLike,
    strike: ArrayLike,
    underlying: ArrayLike,
    mark: ArrayLike,
    params: DeribitStandardParams,
) -> tuple[FloatArray, FloatArray]:
    """(IM, MM) in BTC per option position, broadcast over the inputs.

    quantity: contracts (1 contract = 1 BTC of underlying), negative for a short position. is_call:
    True for calls, False for puts. strike, underlying: USD. mark: the option's mark price in BTC.
    Short positions pay |quantity| x the per-contract margin; long positions pay nothing.
    """
    q = as_float("quantity", quantity)
    call = np.asarray(is_call, dtype=np.bool_)
    call_im, call_mm = short_call_margin(strike, underlying, mark, params)
    put_im, put_mm = short_put_margin(strike, underlying, mark, params)
    short = np.maximum(-q, 0.0)
    return out(short * np.where(call, call_im, put_im)), out(short * np.where(call, call_mm, put_mm))
