"""Liquidation: triggers, predictive breach probability, partial close-out, backstop waterfall (DESIGN.md item 10)."""

from __future__ import annotations

from solvent.liquidation.predictive import (
    SECONDS_PER_YEAR,
    Velocity,
    breach_probability,
    early_trigger,
    equity_drift,
    loss_volatility,
    price_velocity,
    time_to_breach,
    velocity_path,
)

__all__ = [
    "SECONDS_PER_YEAR",
    "Velocity",
    "breach_probability",
    "early_trigger",
    "equity_drift",
    "loss_volatility",
    "price_velocity",
    "time_to_breach",
    "velocity_path",
]
