"""dYdX v4: liquidity tiers with the open-interest ramp of the initial margin fraction.

Sources (REFERENCES.md, "Venue rules"), dydxprotocol/v4-chain:
- `protocol/x/perpetuals/types/liquidity_tier.go`, `GetInitialMarginQuoteQuantums`: with the market's
  open notional OI (open interest x oracle price),

      IMF = base                                              if upper_cap == 0 (ramp disabled)
                                                              or OI <= lower_cap
      IMF = 1                                                 if OI >= upper_cap (upper_cap > 0)
      IMF = min(base + (1 - base) (OI - lower) / (upper - lower), 1)   in between

  i.e. the base IMF ramped linearly to 1 between the caps, clamped to [base, 1].
- `protocol/x/perpetuals/lib/lib.go`, `GetMarginRequirementsInQuoteQuantums`: for a position of
  notional n, IM = |n| x IMF(OI) and MM = |n| x base IMF x maintenance fraction. Maintenance comes from
  the *base* IMF: the ramp raises only the initial requirement.
- Tier values as in `protocol/testing/genesis.sh` (the genesis with open-interest caps): Large-Cap IMF 2%,
  maintenance fraction 60% (MMF 1.2%), caps 0 / 0 ("OIMF doesn't apply to Large-Cap", so no ramp);
  Mid-Cap 5% / 60% (MMF 3%), $40M-$100M; Small-Cap 10% / 50% (MMF 5%), $20M-$50M; Long-Tail 20% / 50%
  (MMF 10%), $5M-$10M. That genesis also lists Safety, Isolated and FX tiers; add them to
  `DydxParams.tiers` if needed. Tier k in this module is `DydxParams.tiers[k]`, not dYdX's tier id.
- Per-block liquidation limits (`protocol/x/clob/keeper/liquidations.go`,
  `GetMaxAndMinPositionNotionalLiquidatable` and the subaccount block limits; values of the mainnet
  genesis): at most 10% of a position per block but at least $1,000 (or the whole position if smaller),
  at most $100,000 notional and $1,000,000 of insurance-fund loss per subaccount per block.

Not reproduced: dYdX computes in integer quote quantums and rounds each requirement up to the next
quantum ($1e-6); these kernels work in float64. The maintenance fraction is applied to the base IMF
exactly as dYdX does (MMF = IMF x fraction), so MMFs are those products (0.02 x 0.6 = 0.012).
"""

from __future__ import annotations

from typing import Annotated

import msgspec
import numpy as np
from numpy.typing import ArrayLike

from solvent.baselines._common import FloatArray, as_float, check_range, out
from solvent.factors.venue_curves import adjusted_imf
from solvent.params import Fraction, NonNegative, _Config

MarginFraction = Annotated[float, msgspec.Meta(gt=0.0, le=1.0)]


class LiquidityTier(_Config, frozen=True, kw_only=True):
    """One dYdX liquidity tier.

    initial_margin_fraction: the base IMF (dYdX `initial_margin_ppm` / 1e6). maintenance_fraction:
    MMF as a fraction of the base IMF (`maintenance_fraction_ppm` / 1e6). Open-interest caps in USD;
    upper cap 0 disables the ramp (dYdX's convention); lower <= upper, as dYdX's `Validate` requires.
    """

    name: str
    initial_margin_fraction: MarginFraction
    maintenance_fraction: Fraction
    open_interest_lower_cap: NonNegative = 0.0
    open_interest_upper_cap: NonNegative = 0.0

    def __post_init__(self) -> None:
        check_range("initial_margin_fraction", self.initial_margin_fraction, 0.0, 1.0, low_open=True)
        check_range("maintenance_fraction", self.maintenance_fraction, 0.0, 1.0)
        check_range("open_interest_lower_cap", self.open_interest_lower_cap, 0.0, np.inf)
        check_range("open_interest_upper_cap", self.open_interest_upper_cap, 0.0, np.inf)
        if self.open_interest_lower_cap > self.open_interest_upper_cap:
            raise ValueError(
                f"open_interest_lower_cap: must not exceed open_interest_upper_cap "
                f"{self.open_interest_upper_cap!r}, got {self.open_interest_lower_cap!r}"
            )

    @property
    def maintenance_margin_fraction(self) -> float:
        """MMF = base IMF x maintenance fraction."""
        return self.initial_margin_fraction * self.maintenance_fraction


def genesis_tiers() -> tuple[LiquidityTier, ...]:
    """The four tiers of REFERENCES.md, from dYdX's `protocol/testing/genesis.sh`, in order of risk."""
    return (
        LiquidityTier(name="Large-Cap", initial_margin_fraction=0.02, maintenance_fraction=0.6),
        LiquidityTier(
            name="Mid-Cap",
            initial_margin_fraction=0.05,
            maintenance_fraction=0.6,
            open_interest_lower_cap=40e6,
            open_interest_upper_cap=100e6,
        ),
        LiquidityTier(
            name="Small-Cap",
            initial_margin_fraction=0.10,
            maintenance_fraction=0.5,
            open_interest_lower_cap=20e6,
            open_interest_upper_cap=50e6,
        ),
        LiquidityTier(
            name="Long-Tail",
            initial_margin_fraction=0.20,
            maintenance_fraction=0.5,
            open_interest_lower_cap=5e6,
            open_interest_upper_cap=10e6,
        ),
    )


class LiquidationLimits(_Config, frozen=True, kw_only=True):
    """dYdX's per-block liquidation limits (mainnet genesis; `protocol/x/clob/keeper/liquidations.go`).

    max_position_portion: largest fraction of one position liquidated per block (10%), but never
    less than min_position_notional ($1,000) or the whole position if that is smaller.
    max_notional_per_block: notional liquidated per subaccount per block ($100,000).
    max_insurance_lost_per_block: insurance-fund payout per subaccount per block ($1,000,000).
    """

    max_position_portion: Fraction = 0.10
    min_position_notional: NonNegative = 1_000.0
    max_notional_per_block: NonNegative = 100_000.0
    max_insurance_lost_per_block: NonNegative = 1_000_000.0

    def __post_init__(self) -> None:
        check_range("max_position_portion", self.max_position_portion, 0.0, 1.0)
        check_range("min_position_notional", self.min_position_notional, 0.0, np.inf)
        check_range("max_notional_per_block", self.max_notional_per_block, 0.0, np.inf)
        check_range("max_insurance_lost_per_block", self.max_insurance_lost_per_block, 0.0, np.inf)


class DydxParams(_Config, frozen=True, kw_only=True):
    """dYdX v4 rule: the liquidity tiers (indexed 0..K-1 by position) and the liquidation limits."""

    tiers: tuple[LiquidityTier, ...] = msgspec.field(default_factory=genesis_tiers)
    liquidation: LiquidationLimits = msgspec.field(default_factory=LiquidationLimits)

    def __post_init__(self) -> None:
        if not self.tiers:
            raise ValueError("tiers: at least one liquidity tier is needed")
        names = [tier.name for tier in self.tiers]
        duplicated = sorted({name for name in names if names.count(name) > 1})
        if duplicated:
            raise ValueError(f"tiers: duplicate tier name {duplicated[0]!r}")

    def tier_index(self, name: str) -> int:
        """Position of the tier called `name` in `tiers` (ValueError if there is none)."""
        for k, tier in enumerate(self.tiers):
            if tier.name == name:
                return k
        raise ValueError(f"tier: unknown liquidity tier {name!r}; known: {', '.join(t.name for t in self.tiers)}")


def requirements(
    notional: ArrayLike, tier: ArrayLike, oi_notional: ArrayLike, params: DydxParams
) -> tuple[FloatArray, FloatArray]:
    """(IM, MM) per position, each of the broadcast shape of the inputs.

    notional: position notional in USD (signed; |notional| is margined). tier: integer index into
    `params.tiers` per position. oi_notional: the open notional (USD) of each position's market, the
    whole market's open interest x oracle price (not the position's own size).
    IM = |notional| x adjusted_imf(base, OI, caps); MM = |notional| x base IMF x maintenance fraction.
    """
    size = np.abs(as_float("notional", notional))
    index = np.asarray(tier)
    if not np.issubdtype(index.dtype, np.integer):
        raise ValueError(f"tier: must be integer tier indices, got dtype {index.dtype}")
    n_tiers = len(params.tiers)
    outside = (index < 0) | (index >= n_tiers)
    if np.any(outside):
        raise ValueError(f"tier: must be in [0, {n_tiers - 1}], got {int(index[outside].flat[0])!r}")
    base = np.array([t.initial_margin_fraction for t in params.tiers], dtype=np.float64)
    mmf = np.array([t.maintenance_margin_fraction for t in params.tiers], dtype=np.float64)
    lower = np.array([t.open_interest_lower_cap for t in params.tiers], dtype=np.float64)
    upper = np.array([t.open_interest_upper_cap for t in params.tiers], dtype=np.float64)
    imf = adjusted_imf(base[index], oi_notional, lower[index], upper[index])
    return out(size * imf), out(size * mmf[index])


def position_liquidation_bounds(notional: ArrayLike, limits: LiquidationLimits) -> tuple[FloatArray, FloatArray]:
    """(min, max) notional of one position that may be liquidated in one block, per position.

    dYdX `GetMaxAndMinPositionNotionalLiquidatable`: min = min(min_position_notional, |notional|);
    max = max(|notional| x max_position_portion, min). The subaccount limits (notional and
    insurance-fund loss per block) apply on top, across the subaccount's positions.
    """
    size = np.abs(as_float("notional", notional))
    low = np.minimum(limits.min_position_notional, size)
    return out(low), out(np.maximum(size * limits.max_position_portion, low))
