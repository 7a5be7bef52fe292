"""Which parameters may be changed by a proposal, by how much per step, within which floor and cap, how often.

Modelled on Aave's risk stewards (REFERENCES.md: bgd-labs/aave-proposals-v3, RiskStewardPhase2): each governed
parameter moves by a bounded step, at least `MIN_DELAY_DAYS` (3) days after its last change; an LTV or
liquidation threshold by at most 0.25% absolute, a supply or borrow cap by at most 100% relative. The analogues
here (docs/model.md, "Adaptive parameters"):

- `concentration.threshold` and `concentration.relative_floor` are sizes in USD, like Aave's caps: 100% relative.
- `volatility.vol_floor` moves a margin rate as an LTV does: at the default ES99 on two days, one unit of
  annualised volatility is ES99 x sqrt(2 / 365) = 2.665 x 0.0740 = 0.197 of notional, so the LTV's 0.25% of
  notional is 0.0127 of volatility: the step is 0.0125 absolute.
- `volatility.apc_buffer` multiplies the margin, (1 + b): at a margin rate of 10% of notional (a 60% vol perp at
  ES99 two days: 0.197 x 0.6 = 0.118), 0.25% of notional is a step of 0.025 in b; floor 0.25, EMIR RTS 153/2013
  art. 28(1)(a)'s minimum buffer; cap 1.
- `liquidity.stress` multiplies the close-out cost: no Aave analogue; 25% relative per step (solvent's choice),
  floor 1 (no stress), cap 10.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Final, Literal

import msgspec
import numpy as np
from numpy.typing import NDArray

from solvent.errors import InputError
from solvent.params import MarginParams, params_from_json

FloatArray = NDArray[np.float64]

#: Aave's risk stewards: at least 3 days between two changes of the same parameter.
MIN_DELAY_DAYS: Final = 3.0
#: Slack for floating-point steps exactly at the bound (a proposal at the bound is within it).
_TOLERANCE: Final = 1e-12


@dataclass(frozen=True)
class Bound:
    """How far one step may move a parameter (absolute: |new - old| <= step; relative: |new - old| <= step x
    |old|), the floor and cap of its value, and the minimum days between two changes."""

    kind: Literal["absolute", "relative"]
    step: float
    floor: float
    cap: float
    min_delay_days: float = MIN_DELAY_DAYS

    def max_step(self, current: float) -> float:
        """The largest move allowed from `current`."""
        return self.step if self.kind == "absolute" else self.step * abs(current)

    def outside(self, value: float) -> float:
        """How far `value` lies outside [floor, cap] (0 inside): a step may leave a value outside only if it
        brings it closer."""
        return max(self.floor - value, value - self.cap, 0.0)

    def clip(self, current: float, target: float) -> float:
        """The value one step from `current` toward `target`, within the floor and cap."""
        limit = self.max_step(current)
        return min(max(target, current - limit, self.floor), current + limit, self.cap)


#: The governed parameters and their bounds (module docstring).
BOUNDS: Final[dict[str, Bound]] = {
    "volatility.vol_floor": Bound("absolute", 0.0125, floor=0.0, cap=2.0),
    "volatility.apc_buffer": Bound("absolute", 0.025, floor=0.25, cap=1.0),
    "concentration.threshold": Bound("relative", 1.0, floor=1_000_000.0, cap=1e12),
    "concentration.relative_floor": Bound("relative", 1.0, floor=10_000.0, cap=1e11),
    "liquidity.stress": Bound("relative", 0.25, floor=1.0, cap=10.0),
}


def bounded_path(targets: FloatArray, start: float, bound: Bound, every: int) -> FloatArray:
    """(T,) a governed value that follows `targets` (T,) one bounded step every `every` observations (its minimum
    delay in observations), from `start`, holding in between: what the bound lets a signal do over time."""
    out = np.empty(len(targets))
    value = start
    for t, target in enumerate(np.asarray(targets, dtype=np.float64)):
        if t % every == 0 and np.isfinite(target):
            value = bound.clip(value, float(target))
        out[t] = value
    return out


def get_value(params: MarginParams, path: str) -> float:
    """The value of a governed dotted field of `params`."""
    section, name = _split(path)
    return float(getattr(getattr(params, section), name))


def with_values(params: MarginParams, values: dict[str, float], source: str = "<proposal>") -> MarginParams:
    """`params` with governed fields replaced, re-validated through its JSON decoder (so every field's own range
    and cross-field check applies)."""
    data = msgspec.to_builtins(params)
    for path, value in values.items():
        section, name = _split(path)
        data[section][name] = value
    return params_from_json(msgspec.json.encode(data), source)


def check_step(
    path: str, current: float, proposed: float, last_change: datetime | None, now: datetime, where: str, source: str
) -> None:
    """Refuse (InputError naming `source` and `where`) a change of `path` beyond its step, floor or cap, or sooner
    than its minimum delay after `last_change`."""
    bound = BOUNDS.get(path)
    if bound is None:
        raise InputError(source, where, f"{path} is not a governed parameter (governed: {', '.join(BOUNDS)})")
    limit = bound.max_step(current)
    if abs(proposed - current) > limit * (1.0 + _TOLERANCE) + _TOLERANCE:
        unit = "" if bound.kind == "absolute" else f" ({bound.step:.0%} of {current!r})"
        raise InputError(
            source,
            where,
            f"{path}: {current!r} -> {proposed!r} moves {abs(proposed - current):.6g}, beyond its bound of "
            f"{limit:.6g}{unit} per step",
        )
    if bound.outside(proposed) > _TOLERANCE and bound.outside(proposed) >= bound.outside(current):
        raise InputError(source, where, f"{path}: {proposed!r} outside its floor {bound.floor!r} and cap {bound.cap!r}")
    if last_change is not None and now - last_change < timedelta(days=bound.min_delay_days):
        raise InputError(
            source,
            where,
            f"{path}: last changed at {last_change.isoformat()}, less than {bound.min_delay_days:g} days before "
            f"{now.isoformat()}",
        )


def _split(path: str) -> tuple[str, str]:
    section, _, name = path.partition(".")
    if path not in BOUNDS:
        raise ValueError(f"{path!r} is not a governed parameter (governed: {', '.join(BOUNDS)})")
    return section, name
