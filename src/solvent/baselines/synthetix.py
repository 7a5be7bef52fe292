"""Synthetix v3 perps: margin ratios that grow linearly with a position's impact on the market skew.

Source (REFERENCES.md, "Venue rules"): Synthetixio/synthetix-v3
`markets/perps-market/contracts/storage/PerpsMarketConfiguration.sol`, `calculateRequiredMargins`:

    impactOnSkew = |size| / skewScale                  (0 when skewScale == 0)
    IMR = impactOnSkew x initialMarginRatio + minimumInitialMarginRatio
    MMR = IMR x maintenanceMarginScalar
    notional = |size| x price
    initial margin     = notional x IMR + minimumPositionMargin
    maintenance margin = notional x MMR + minimumPositionMargin

and all four are 0 for a zero size. Note that the contract adds `minimumPositionMargin` to *both*
requirements, not only to the maintenance margin.

BTC defaults from Synthetixio/synthetix-deployments
`tomls/omnibus-base-mainnet-andromeda/perps/btc.toml`: skewScale 50,000 BTC, initialMarginRatio 13.35,
maintenanceMarginScalar 0.28, minimumInitialMarginRatio 0.02, minimumPositionMargin $50. Sizes are in
units of the market's asset (BTC), prices in USD.

Not reproduced: the account-level additions of `PerpsAccount.getAccountRequiredMargins` (liquidation
and flag rewards, keeper costs added to the account's maintenance margin) and the D18 fixed-point
rounding of the contract; these kernels are the per-position rule in float64.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike

from solvent.baselines._common import FloatArray, as_float, check_range, out
from solvent.params import Fraction, NonNegative, _Config


class SynthetixParams(_Config, frozen=True, kw_only=True):
    """One Synthetix v3 perps market's margin parameters (defaults: BTC on Base, Andromeda).

    maintenance_margin_scalar is kept in [0, 1] so that the maintenance margin never exceeds the
    initial margin (the contract does not require it; every deployed market satisfies it).
    """

    skew_scale: NonNegative = 50_000.0
    initial_margin_ratio: NonNegative = 13.35
    maintenance_margin_scalar: Fraction = 0.28
    minimum_initial_margin_ratio: NonNegative = 0.02
    minimum_position_margin: NonNegative = 50.0

    def __post_init__(self) -> None:
        check_range("skew_scale", self.skew_scale, 0.0, np.inf)
        check_range("initial_margin_ratio", self.initial_margin_ratio, 0.0, np.inf)
        check_range("maintenance_margin_scalar", self.maintenance_margin_scalar, 0.0, 1.0)
        check_range("minimum_initial_margin_ratio", self.minimum_initial_margin_ratio, 0.0, np.inf)
        check_range("minimum_position_margin", self.minimum_position_margin, 0.0, np.inf)


def margin_ratios(size: ArrayLike, params: SynthetixParams) -> tuple[FloatArray, FloatArray]:
    """(IMR, MMR) per position for `size` in asset units (signed; |size| counts); both 0 for size 0."""
    magnitude = np.abs(as_float("size", size))
    impact = magnitude / params.skew_scale if params.skew_scale > 0.0 else np.zeros_like(magnitude)
    imr = np.where(magnitude > 0.0, impact * params.initial_margin_ratio + params.minimum_initial_margin_ratio, 0.0)
    return out(imr), out(imr * params.maintenance_margin_scalar)


def requirements(size: ArrayLike, price: ArrayLike, params: SynthetixParams) -> tuple[FloatArray, FloatArray]:
    """(initial margin, maintenance margin) in USD per position, broadcast over size and price.

    size: position size in asset units (signed). price: the market's price in USD (>= 0).
    Each is notional x ratio + minimum_position_margin, and both are 0 for a zero size.
    """
    magnitude = np.abs(as_float("size", size))
    mark = as_float("price", price, nonnegative=True)
    imr, mmr = margin_ratios(magnitude, params)
    notional = magnitude * mark
    floor = np.where(magnitude > 0.0, params.minimum_position_margin, 0.0)
    return out(notional * imr + floor), out(notional * mmr + floor)
