"""Model parameters: one frozen, keyword-only configuration that rejects unknown fields.

Every field is documented, with its default and its source, in docs/model.md. `MarginParams`
round-trips to JSON (`to_json` / `params_from_json`); the CLI, the demo and the Python API all load
this same class.
"""

from __future__ import annotations

from typing import Annotated, Final, Literal

import msgspec

PARAMS_SCHEMA: Final = "solvent.params/1"

Probability = Annotated[float, msgspec.Meta(gt=0.5, lt=1.0)]
Positive = Annotated[float, msgspec.Meta(gt=0.0)]
NonNegative = Annotated[float, msgspec.Meta(ge=0.0)]
Fraction = Annotated[float, msgspec.Meta(ge=0.0, le=1.0)]


class _Config(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Base for every configuration section."""


class VolatilityParams(_Config, frozen=True, kw_only=True):
    """How each asset's volatility is estimated and floored."""

    estimator: Literal["ewma", "garch"] = "ewma"
    ewma_lambda: Annotated[float, msgspec.Meta(gt=0.0, lt=1.0)] = 0.94
    use_implied: bool = True
    apc_mode: Literal["none", "buffer", "stressed_weight", "floor"] = "floor"
    apc_buffer: NonNegative = 0.25
    apc_stressed_weight: Fraction = 0.25
    apc_floor_lookback_days: Annotated[int, msgspec.Meta(ge=30)] = 3650
    vol_floor: NonNegative = 0.05
    time_floor_days: Positive = 1.0 / 1440.0


class GridParams(_Config, frozen=True, kw_only=True):
    """SPAN-style 16-scenario grid per asset."""

    scan_confidence: Probability = 0.99
    vol_scan: Positive = 0.25
    extreme_multiple: Positive = 2.0
    extreme_cover: Fraction = 0.35


class DeribitParams(_Config, frozen=True, kw_only=True):
    """Deribit-style portfolio-margin grid per asset."""

    max_move: Positive = 0.16
    step: Positive = 0.04
    vol_up: Positive = 0.50
    vol_down: Annotated[float, msgspec.Meta(gt=0.0, lt=1.0)] = 0.25
    short_dte_exponent: NonNegative = 0.30
    long_dte_exponent: NonNegative = 0.13
    pivot_days: Positive = 30.0
    extended_moves: tuple[float, ...] = (-0.66, 5.0)
    extended_damping: Fraction = 0.10


class FhsParams(_Config, frozen=True, kw_only=True):
    """Filtered historical simulation."""

    lookback_days: Annotated[int, msgspec.Meta(ge=10)] = 1000
    stressed_start: str | None = None
    stressed_end: str | None = None


class McParams(_Config, frozen=True, kw_only=True):
    """Stressed-correlation Monte Carlo."""

    n_scenarios: Annotated[int, msgspec.Meta(ge=16)] = 256
    distribution: Literal["t", "normal"] = "t"
    dof: Annotated[float, msgspec.Meta(gt=2.0)] = 4.0
    stress_weight: Fraction = 0.25
    vol_of_vol: NonNegative = 0.5
    seed: int = 7


class ScenarioParams(_Config, frozen=True, kw_only=True):
    """Which scenario generator, and each generator's settings."""

    method: Literal["grid", "deribit", "fhs", "mc"] = "grid"
    grid: GridParams = msgspec.field(default_factory=GridParams)
    deribit: DeribitParams = msgspec.field(default_factory=DeribitParams)
    fhs: FhsParams = msgspec.field(default_factory=FhsParams)
    mc: McParams = msgspec.field(default_factory=McParams)


class MaintenanceParams(_Config, frozen=True, kw_only=True):
    """Maintenance margin: a fraction of IM, or the same machinery at its own confidence and MPOR."""

    mode: Literal["fraction", "model"] = "fraction"
    fraction: Annotated[float, msgspec.Meta(gt=0.0, le=1.0)] = 0.8
    confidence: Probability = 0.975
    mpor_days: Positive = 1.0


class LiquidityParams(_Config, frozen=True, kw_only=True):
    """The liquidity add-on: close-out cost of net delta and vega per asset (docs/model.md)."""

    enabled: bool = True
    stress: Annotated[float, msgspec.Meta(ge=1.0)] = 2.0
    impact_coefficient: NonNegative = 1.0
    adv_half_spread: NonNegative = 0.0005
    require_depth: bool = False


class MarginParams(_Config, frozen=True, kw_only=True):
    """The whole model configuration."""

    schema: Literal["solvent.params/1"] = "solvent.params/1"
    measure: Literal["es", "var", "worst"] = "es"
    confidence: Probability = 0.99
    mpor_days: Positive = 2.0
    days_per_year: Positive = 365.0
    volatility: VolatilityParams = msgspec.field(default_factory=VolatilityParams)
    scenarios: ScenarioParams = msgspec.field(default_factory=ScenarioParams)
    maintenance: MaintenanceParams = msgspec.field(default_factory=MaintenanceParams)
    liquidity: LiquidityParams = msgspec.field(default_factory=LiquidityParams)

    def to_json(self) -> bytes:
        """Serialise every field, defaults included, so the file documents the run."""
        return msgspec.json.format(msgspec.json.encode(self), indent=2)


def params_from_json(data: bytes | str, source: str = "<params>") -> MarginParams:
    """Decode parameters; unknown fields, wrong types and out-of-range values raise InputError."""
    from solvent.formats.errors import decode_json

    return decode_json(data, MarginParams, source)
