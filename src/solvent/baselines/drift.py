"""Drift v2: size premium on perp margin ratios and spot liability weights, size discount on asset weights.

Source (REFERENCES.md, "Venue rules"): drift-labs/protocol-v2 `programs/drift/src/math/margin.rs`.
With s = |size| in units of the asset and imf the market's `imf_factor`:

    calculate_size_premium_liability_weight:  w_size = max(w, 0.8 w + imf x sqrt(s))
    calculate_size_discount_asset_weight:     w_size = min(w, 1.1 / (1 + imf x sqrt(s)))

Where they apply (drift-labs/protocol-v2 `programs/drift/src/state/perp_market.rs`, `get_margin_ratio`,
and `programs/drift/src/state/spot_market.rs`, `get_asset_weight` / `get_liability_weight`):
- a perp position's margin ratio, initial and maintenance alike, is the size premium of the market's
  `margin_ratio_initial` / `margin_ratio_maintenance`; its requirement is |size| x price x ratio
  (MR 10%, imf 0.0005, 10,000 units: max(0.10, 0.08 + 0.0005 x 100) = 13%);
- a spot deposit counts at value x asset weight, the size discount of the initial (or maintenance)
  asset weight; the initial weight is first scaled down to weight x start / deposits once the market's
  total deposits (USD) pass `scale_initial_asset_weight_start` (0 disables the scaling);
- a spot borrow counts at value x liability weight, the size premium of the initial (or maintenance)
  liability weight.

Defaults are Drift's own test markets (`PerpMarket::default_test`: margin ratios 10% / 5%;
`SpotMarket::default_base_market`: asset weights 0.8 / 0.9, liability weights 1.2 / 1.1), with the
imf factors of REFERENCES.md and issue 3 (perp 0.0005, spot 0.003). They are not a live market's
parameters.

Not reproduced: Drift's fixed-point arithmetic. On chain sqrt(s) is an integer square root of the size
in 1e9 precision (times 10, plus 1) and divisions truncate, so e.g. 2,000 SOL at imf 0.003 gives the
weight 9698 / 10^4 on chain where the formula gives 0.969877 (0.9699 to four digits); these kernels are
the formula. Open orders (worst-case size), the high-leverage mode, user custom margin ratios and the
unrealised-P&L asset weight are not modelled.
"""

from __future__ import annotations

import msgspec
import numpy as np
from numpy.typing import ArrayLike

from solvent.baselines._common import FloatArray, as_float, check_range, out
from solvent.factors.venue_curves import scaled_initial_asset_weight, size_discount
from solvent.params import Fraction, NonNegative, _Config


def size_premium(weight: ArrayLike, imf_factor: ArrayLike, size: ArrayLike) -> FloatArray:
    """max(w, 0.8 w + imf x sqrt(|size|)), broadcast: a margin ratio or liability weight grown with size."""
    w = as_float("weight", weight, nonnegative=True)
    imf = as_float("imf_factor", imf_factor, nonnegative=True)
    root = np.sqrt(np.abs(as_float("size", size)))
    return out(np.maximum(w, 0.8 * w + imf * root))


class DriftPerpParams(_Config, frozen=True, kw_only=True):
    """One Drift perp market: margin ratios (fractions of notional) and its imf factor."""

    margin_ratio_initial: Fraction = 0.10
    margin_ratio_maintenance: Fraction = 0.05
    imf_factor: NonNegative = 0.0005

    def __post_init__(self) -> None:
        check_range("margin_ratio_initial", self.margin_ratio_initial, 0.0, 1.0)
        check_range("margin_ratio_maintenance", self.margin_ratio_maintenance, 0.0, 1.0)
        check_range("imf_factor", self.imf_factor, 0.0, np.inf)
        if self.margin_ratio_maintenance > self.margin_ratio_initial:
            raise ValueError(
                f"margin_ratio_maintenance: must not exceed margin_ratio_initial "
                f"{self.margin_ratio_initial!r}, got {self.margin_ratio_maintenance!r}"
            )


class DriftSpotParams(_Config, frozen=True, kw_only=True):
    """One Drift spot market: asset and liability weights, imf factor, initial-weight scaling start (USD)."""

    initial_asset_weight: Fraction = 0.80
    maintenance_asset_weight: Fraction = 0.90
    initial_liability_weight: NonNegative = 1.20
    maintenance_liability_weight: NonNegative = 1.10
    imf_factor: NonNegative = 0.003
    scale_initial_asset_weight_start: NonNegative = 0.0

    def __post_init__(self) -> None:
        check_range("initial_asset_weight", self.initial_asset_weight, 0.0, 1.0)
        check_range("maintenance_asset_weight", self.maintenance_asset_weight, 0.0, 1.0)
        check_range("initial_liability_weight", self.initial_liability_weight, 1.0, np.inf)
        check_range("maintenance_liability_weight", self.maintenance_liability_weight, 1.0, np.inf)
        check_range("imf_factor", self.imf_factor, 0.0, np.inf)
        check_range("scale_initial_asset_weight_start", self.scale_initial_asset_weight_start, 0.0, np.inf)
        if self.initial_asset_weight > self.maintenance_asset_weight:
            raise ValueError(
                f"initial_asset_weight: must not exceed maintenance_asset_weight "
                f"{self.maintenance_asset_weight!r}, got {self.initial_asset_weight!r}"
            )
        if self.maintenance_liability_weight > self.initial_liability_weight:
            raise ValueError(
                f"maintenance_liability_weight: must not exceed initial_liability_weight "
                f"{self.initial_liability_weight!r}, got {self.maintenance_liability_weight!r}"
            )


class DriftParams(_Config, frozen=True, kw_only=True):
    """Drift v2 rule: the parameters of a perp market and of a spot market."""

    perp: DriftPerpParams = msgspec.field(default_factory=DriftPerpParams)
    spot: DriftSpotParams = msgspec.field(default_factory=DriftSpotParams)


def perp_margin_ratios(size: ArrayLike, params: DriftPerpParams) -> tuple[FloatArray, FloatArray]:
    """(initial, maintenance) margin ratio per position of `size` units (signed), size premium included."""
    return (
        size_premium(params.margin_ratio_initial, params.imf_factor, size),
        size_premium(params.margin_ratio_maintenance, params.imf_factor, size),
    )


def perp_requirements(size: ArrayLike, price: ArrayLike, params: DriftPerpParams) -> tuple[FloatArray, FloatArray]:
    """(IM, MM) in USD per perp position: |size| x price x the size-premium margin ratio, broadcast."""
    magnitude = np.abs(as_float("size", size))
    notional = magnitude * as_float("price", price, nonnegative=True)
    initial, maintenance = perp_margin_ratios(magnitude, params)
    return out(notional * initial), out(notional * maintenance)


def spot_asset_weights(
    size: ArrayLike, params: DriftSpotParams, market_deposits_value: ArrayLike
) -> tuple[FloatArray, FloatArray]:
    """(initial, maintenance) asset weight per deposit of `size` tokens, in [0, 1], non-increasing in size.

    market_deposits_value: the market's total deposits in USD, for the initial-weight scaling (ignored
    when `scale_initial_asset_weight_start` is 0).
    """
    initial = scaled_initial_asset_weight(
        params.initial_asset_weight, params.scale_initial_asset_weight_start, market_deposits_value
    )
    return (
        size_discount(initial, params.imf_factor, size),
        size_discount(params.maintenance_asset_weight, params.imf_factor, size),
    )


def spot_liability_weights(size: ArrayLike, params: DriftSpotParams) -> tuple[FloatArray, FloatArray]:
    """(initial, maintenance) liability weight per borrow of `size` tokens, >= 1, non-decreasing in size."""
    return (
        size_premium(params.initial_liability_weight, params.imf_factor, size),
        size_premium(params.maintenance_liability_weight, params.imf_factor, size),
    )
