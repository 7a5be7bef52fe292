"""Venue curves the factors reuse: dYdX's open-interest ramp of the initial margin fraction, Drift's size discount
of an asset weight and its deposit scaling of the initial weight.

Pure functions over arrays, broadcast over their inputs. The venue rules margin with them too
(baselines/dydx.py, baselines/drift.py: the rules and their sources, REFERENCES.md "Venue rules"); they live
here, below both, so that the concentration factor and the collateral haircuts import no venue rule.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from solvent.arrays import FloatArray, as_float, out


def adjusted_imf(base_imf: ArrayLike, oi_notional: ArrayLike, lower_cap: ArrayLike, upper_cap: ArrayLike) -> FloatArray:
    """The open-interest-adjusted initial margin fraction, broadcast over the inputs.

    base_imf: base IMF in (0, 1]. oi_notional: the market's open notional in USD (>= 0). lower_cap,
    upper_cap: the tier's caps in USD; upper_cap == 0 disables the ramp. The rule (dYdX
    `GetInitialMarginQuoteQuantums`) and its source: baselines/dydx.py's docstring; the result lies in [base_imf, 1].
    """
    base = as_float("base_imf", base_imf, nonnegative=True)
    oi = as_float("oi_notional", oi_notional, nonnegative=True)
    lower = as_float("lower_cap", lower_cap, nonnegative=True)
    upper = as_float("upper_cap", upper_cap, nonnegative=True)
    if np.any(base > 1.0):
        raise ValueError(f"base_imf: must be <= 1, got {float(base[base > 1.0].flat[0])!r}")
    if np.any(lower > upper):
        raise ValueError("lower_cap: must not exceed upper_cap (dYdX's LiquidityTier.Validate)")
    enabled = upper > 0.0
    width = np.where(upper > lower, upper - lower, 1.0)  # placeholder 1 where no ramp is ever evaluated
    ramped = np.minimum(base + (1.0 - base) * np.clip((oi - lower) / width, 0.0, 1.0), 1.0)
    imf = np.where(oi <= lower, base, ramped)
    imf = np.where(oi >= upper, 1.0, imf)  # checked first by dYdX, so lower == upper is a step at the cap
    return out(np.where(enabled, imf, base))


def size_discount(weight: ArrayLike, imf_factor: ArrayLike, size: ArrayLike) -> FloatArray:
    """min(w, 1.1 / (1 + imf x sqrt(|size|))), broadcast: an asset weight shrunk with size.

    Drift `calculate_size_discount_asset_weight` (source: baselines/drift.py's docstring).
    """
    w = as_float("weight", weight, nonnegative=True)
    imf = as_float("imf_factor", imf_factor, nonnegative=True)
    root = np.sqrt(np.abs(as_float("size", size)))
    return out(np.minimum(w, 1.1 / (1.0 + imf * root)))


def scaled_initial_asset_weight(weight: ArrayLike, start: ArrayLike, deposits_value: ArrayLike) -> FloatArray:
    """Drift `get_scaled_initial_asset_weight`: w x start / deposits once deposits >= start > 0, else w.

    deposits_value: the spot market's total deposits in USD (not one account's).
    """
    w = as_float("weight", weight, nonnegative=True)
    threshold = as_float("start", start, nonnegative=True)
    deposits = as_float("deposits_value", deposits_value, nonnegative=True)
    scaled = (threshold > 0.0) & (deposits >= threshold)
    return out(np.where(scaled, w * threshold / np.where(scaled, deposits, 1.0), w))
