"""Liquidation: triggers, predictive breach probability, partial close-out, backstop waterfall (DESIGN.md item 10)."""

from __future__ import annotations

from solvent.liquidation.closeout import CloseOutBook, CloseOutMarket, CloseOutPlan, closeout_cost, plan_closeout
from solvent.liquidation.predictive import (
    SECONDS_PER_YEAR,
    Breach,
    Velocity,
    VelocityTracker,
    account_breach,
    breach_probability,
    early_trigger,
    equity_drift,
    loss_volatility,
    price_velocity,
    scenario_correlation,
    time_to_breach,
    velocity_path,
)
from solvent.liquidation.waterfall import WaterfallResult, run_waterfall

__all__ = [
    "SECONDS_PER_YEAR",
    "Breach",
    "CloseOutBook",
    "CloseOutMarket",
    "CloseOutPlan",
    "Velocity",
    "VelocityTracker",
    "WaterfallResult",
    "account_breach",
    "breach_probability",
    "closeout_cost",
    "early_trigger",
    "equity_drift",
    "loss_volatility",
    "plan_closeout",
    "price_velocity",
    "run_waterfall",
    "scenario_correlation",
    "time_to_breach",
    "velocity_path",
]
