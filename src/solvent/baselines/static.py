"""The static leverage rule: a fixed initial and maintenance margin fraction per asset.

The simplest baseline, and what most centralised venues' "max leverage" setting amounts to:

    IM = |notional| x IMF        MM = |notional| x MMF        (MMF <= IMF)

No size, open-interest or volatility dependence. The defaults (IMF 10%, MMF 5%: 10x leverage,
liquidation at half the initial margin) are solvent's own choice, not a venue's; per-asset overrides
go in `StaticParams.assets`. Hyperliquid's published rule is of this form (maintenance = half the
initial margin at maximum leverage; REFERENCES.md, "Venue rules").
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

import msgspec
import numpy as np
from numpy.typing import ArrayLike

from solvent.baselines._common import FloatArray, as_float, check_range, out
from solvent.params import _Config

MarginFraction = Annotated[float, msgspec.Meta(gt=0.0, le=1.0)]


class StaticFractions(_Config, frozen=True, kw_only=True):
    """One asset's fixed fractions of notional: initial (IMF) and maintenance (MMF <= IMF)."""

    initial_margin_fraction: MarginFraction = 0.10
    maintenance_margin_fraction: MarginFraction = 0.05

    def __post_init__(self) -> None:
        check_range("initial_margin_fraction", self.initial_margin_fraction, 0.0, 1.0, low_open=True)
        check_range("maintenance_margin_fraction", self.maintenance_margin_fraction, 0.0, 1.0, low_open=True)
        if self.maintenance_margin_fraction > self.initial_margin_fraction:
            raise ValueError(
                f"maintenance_margin_fraction: must not exceed initial_margin_fraction "
                f"{self.initial_margin_fraction!r}, got {self.maintenance_margin_fraction!r}"
            )


class StaticParams(_Config, frozen=True, kw_only=True):
    """Static leverage: `default` fractions for every asset, overridden per asset name in `assets`."""

    default: StaticFractions = msgspec.field(default_factory=StaticFractions)
    assets: dict[str, StaticFractions] = msgspec.field(default_factory=dict)

    def fractions(self, assets: Sequence[str]) -> tuple[FloatArray, FloatArray]:
        """(IMF, MMF), each (len(assets),), for a list of asset names (unlisted names get `default`)."""
        chosen = [self.assets.get(name, self.default) for name in assets]
        imf = np.array([f.initial_margin_fraction for f in chosen], dtype=np.float64)
        mmf = np.array([f.maintenance_margin_fraction for f in chosen], dtype=np.float64)
        return imf, mmf


def requirements(notional: ArrayLike, imf: ArrayLike, mmf: ArrayLike) -> tuple[FloatArray, FloatArray]:
    """(IM, MM) per position: |notional| x IMF and |notional| x MMF, broadcast over the inputs.

    notional: position notional in USD (signed; the sign is ignored). imf, mmf: fractions in (0, 1]
    per position (e.g. `StaticParams.fractions(assets)[k][asset_of_position]`), mmf <= imf.
    """
    size = np.abs(as_float("notional", notional))
    initial = as_float("imf", imf, nonnegative=True)
    maintenance = as_float("mmf", mmf, nonnegative=True)
    if np.any(initial > 1.0) or np.any(maintenance > initial):
        raise ValueError("imf, mmf: need 0 <= mmf <= imf <= 1")
    return out(size * initial), out(size * maintenance)
