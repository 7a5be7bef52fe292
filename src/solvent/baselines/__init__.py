"""The venues' own margin rules, as baselines to compare the multi-factor model against.

Each rule family is one small module of pure, vectorised functions over numpy arrays (no loop over
accounts or positions), with a frozen parameter struct carrying the venue's documented defaults and a
docstring citing its source (REFERENCES.md, "Venue rules"). Every rule margins positions one by one;
`sum_by_account` adds per-position requirements up per account in a `Book`'s CSR order.

The closed set of names (`BaselineName`; `BaselineParams.rule` chooses one):

    "static"     solvent.baselines.static     fixed IMF / MMF per asset (the simplest baseline)
    "dydx"       solvent.baselines.dydx       dYdX v4 liquidity tiers, open-interest ramp of the IMF
    "synthetix"  solvent.baselines.synthetix  Synthetix v3 perps, margin ratios linear in skew impact
    "drift"      solvent.baselines.drift      Drift v2 size premium / size discount (sqrt of size)
    "deribit"    solvent.baselines.deribit    Deribit standard margin for inverse options (BTC)

    from solvent.baselines import dydx, DydxParams
    im, mm = dydx.requirements(notional, tier, oi_notional, DydxParams())

A rule applied to a whole `Book` (netting, units, open interest, fallbacks): `solvent.baselines.book`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Final, Literal

import msgspec

from solvent.baselines import deribit, drift, dydx, static, synthetix
from solvent.baselines._common import sum_by_account
from solvent.baselines.deribit import DeribitStandardParams
from solvent.baselines.drift import DriftParams, DriftPerpParams, DriftSpotParams
from solvent.baselines.dydx import DydxParams, LiquidationLimits, LiquidityTier
from solvent.baselines.static import StaticFractions, StaticParams
from solvent.baselines.synthetix import SynthetixParams
from solvent.choices import BASELINE_NAMES, BaselineName
from solvent.params import _Config

BASELINE_PARAMS_SCHEMA: Final = "solvent.baseline-params/1"


@dataclass(frozen=True)
class BaselineRule:
    """One rule family: its name, parameter struct, what it margins, and where it comes from."""

    name: BaselineName
    params: type[_Config]
    products: str
    summary: str
    source: str


RULES: Mapping[BaselineName, BaselineRule] = MappingProxyType(
    {
        "static": BaselineRule(
            name="static",
            params=StaticParams,
            products="linear (spot, perpetuals, futures)",
            summary="IM = |notional| x IMF, MM = |notional| x MMF, fixed per asset",
            source="solvent default (IMF 10%, MMF 5%)",
        ),
        "dydx": BaselineRule(
            name="dydx",
            params=DydxParams,
            products="perpetuals",
            summary="tier IMF ramped to 1 with the market's open interest between two caps; MM from the base IMF",
            source="dydxprotocol/v4-chain protocol/x/perpetuals/types/liquidity_tier.go, lib/lib.go",
        ),
        "synthetix": BaselineRule(
            name="synthetix",
            params=SynthetixParams,
            products="perpetuals",
            summary="IMR = |size| / skewScale x r + floor, MMR = IMR x scalar, + minimum position margin",
            source="Synthetixio/synthetix-v3 markets/perps-market/contracts/storage/PerpsMarketConfiguration.sol",
        ),
        "drift": BaselineRule(
            name="drift",
            params=DriftParams,
            products="perpetuals, spot deposits and borrows",
            summary="margin ratio / liability weight max(w, 0.8 w + imf sqrt(size)); asset weight size discount",
            source="drift-labs/protocol-v2 programs/drift/src/math/margin.rs",
        ),
        "deribit": BaselineRule(
            name="deribit",
            params=DeribitStandardParams,
            products="inverse options (BTC)",
            summary="short call IM = max(0.15 - OTM / U, 0.10) + mark, MM = 0.075 + mark; puts alike; longs 0",
            source="Deribit's published margin documentation (standard margin, inverse options)",
        ),
    }
)


def rule(name: str) -> BaselineRule:
    """The rule family called `name`; ValueError naming the known names otherwise."""
    if name not in RULES:
        raise ValueError(f"baseline: unknown rule {name!r}; choose one of {', '.join(BASELINE_NAMES)}")
    return RULES[name]  # type: ignore[index]  # narrowed by the membership test


def _dydx_asset_tiers() -> dict[str, str]:
    return {"BTC": "Large-Cap", "ETH": "Large-Cap"}


class BaselineParams(_Config, frozen=True, kw_only=True):
    """Which baseline rule (`rule`), and each rule family's parameters, all with their defaults.

    Per-asset choices for margining a whole book (`solvent.baselines.book`):
    dydx_asset_tiers / dydx_default_tier: the liquidity tier (a name in `dydx.tiers`) of each asset's
    markets; BTC and ETH in Large-Cap, as on dYdX, every other asset in Small-Cap.
    synthetix_markets, drift_perp_markets, drift_spot_markets: per-asset overrides of `synthetix`,
    `drift.perp` and `drift.spot` (which apply to every asset not listed). Static per-asset fractions
    are `static.assets`. As a file (`solvent.baseline-params/1`, `load_baseline_params`, `--baseline-params`)
    it carries `schema`; an omitted field keeps its default.
    """

    schema: Literal["solvent.baseline-params/1"] = "solvent.baseline-params/1"
    rule: BaselineName = "static"
    static: StaticParams = msgspec.field(default_factory=StaticParams)
    dydx: DydxParams = msgspec.field(default_factory=DydxParams)
    synthetix: SynthetixParams = msgspec.field(default_factory=SynthetixParams)
    drift: DriftParams = msgspec.field(default_factory=DriftParams)
    deribit: DeribitStandardParams = msgspec.field(default_factory=DeribitStandardParams)
    dydx_asset_tiers: dict[str, str] = msgspec.field(default_factory=_dydx_asset_tiers)
    dydx_default_tier: str = "Small-Cap"
    synthetix_markets: dict[str, SynthetixParams] = msgspec.field(default_factory=dict)
    drift_perp_markets: dict[str, DriftPerpParams] = msgspec.field(default_factory=dict)
    drift_spot_markets: dict[str, DriftSpotParams] = msgspec.field(default_factory=dict)

    def __post_init__(self) -> None:
        known = {tier.name for tier in self.dydx.tiers}
        choices = [("dydx_default_tier", self.dydx_default_tier)]
        choices += [(f"dydx_asset_tiers.{asset}", tier) for asset, tier in self.dydx_asset_tiers.items()]
        for field, tier in choices:
            if tier not in known:
                raise ValueError(f"{field}: unknown liquidity tier {tier!r}; known: {', '.join(sorted(known))}")

    def selected(self) -> _Config:
        """The parameters of the chosen rule."""
        chosen: _Config = getattr(self, self.rule)
        return chosen


__all__ = [
    "BASELINE_NAMES",
    "BASELINE_PARAMS_SCHEMA",
    "RULES",
    "BaselineName",
    "BaselineParams",
    "BaselineRule",
    "DeribitStandardParams",
    "DriftParams",
    "DriftPerpParams",
    "DriftSpotParams",
    "DydxParams",
    "LiquidationLimits",
    "LiquidityTier",
    "StaticFractions",
    "StaticParams",
    "SynthetixParams",
    "deribit",
    "drift",
    "dydx",
    "rule",
    "static",
    "sum_by_account",
    "synthetix",
]
