"""Procyclicality of a margin series for a constant portfolio.

The measures of Murphy, Vasios and Vause, "An investigation into the procyclicality of risk-based initial
margin models", Bank of England Financial Stability Paper 29 (2014):

- peak-to-trough ratio: max(M) / min(M) over the period;
- largest n-day increase, relative: max over t of (M[t+n] - M[t]) / M[t], and absolute: max over t of
  M[t+n] - M[t] (negative when the margin never rises over n days);
- the cost of an anti-procyclicality tool: mean(M with the tool) / mean(M without) - 1, the extra margin
  the tool charges on average over the period.

Margins must be finite and > 0 (a ratio to a zero margin means nothing); a horizon needs T > n.
"""

from __future__ import annotations

import operator
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

#: The n-day horizons reported by default (1, 5 and 30 days).
HORIZONS: tuple[int, ...] = (1, 5, 30)


@dataclass(frozen=True)
class ProcyclicalityResult:
    """Procyclicality measures of one margin series (T,); `apc_cost` is None without a no-tool baseline."""

    observations: int
    peak: float
    trough: float
    peak_to_trough: float
    horizons: tuple[int, ...]
    max_increase: tuple[float, ...]
    max_absolute_increase: tuple[float, ...]
    apc_cost: float | None

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready record; the n-day increases keyed by horizon ("1", "5", "30")."""
        return {
            "observations": self.observations,
            "peak": self.peak,
            "trough": self.trough,
            "peak_to_trough": self.peak_to_trough,
            "max_increase": {str(n): v for n, v in zip(self.horizons, self.max_increase, strict=True)},
            "max_absolute_increase": {
                str(n): v for n, v in zip(self.horizons, self.max_absolute_increase, strict=True)
            },
            "apc_cost": self.apc_cost,
        }


def _margin(name: str, values: ArrayLike) -> NDArray[np.float64]:
    """A (T,) float64 series of finite margins > 0, or ValueError with the first offending value."""
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 1 or array.size == 0:
        raise ValueError(f"{name}: expected a non-empty (T,) series, got shape {array.shape}")
    bad = ~(np.isfinite(array) & (array > 0.0))
    if np.any(bad):
        index = int(np.flatnonzero(bad)[0])
        raise ValueError(f"{name}[{index}]: must be finite and > 0, got {float(array[index])!r}")
    return array


def _steps(margin: NDArray[np.float64], horizon: int) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """(M[t], M[t+n] - M[t]) for t = 0 .. T-n-1, or ValueError when the horizon does not fit."""
    if isinstance(horizon, bool):
        raise ValueError(f"horizon: must be an integer, got {horizon!r}")
    n = operator.index(horizon)
    if not 1 <= n < margin.size:
        raise ValueError(f"horizon: must be in [1, T-1] = [1, {margin.size - 1}], got {n}")
    start = margin[:-n]
    return start, margin[n:] - start


def peak_to_trough(margin: ArrayLike) -> float:
    """max(M) / min(M) over the (T,) margin series (>= 1)."""
    m = _margin("margin", margin)
    return float(m.max() / m.min())


def max_increase(margin: ArrayLike, horizon: int) -> float:
    """Largest relative n-day increase: max over t of (M[t+n] - M[t]) / M[t], for a (T,) series, T > n."""
    start, step = _steps(_margin("margin", margin), horizon)
    return float(np.max(step / start))


def max_absolute_increase(margin: ArrayLike, horizon: int) -> float:
    """Largest absolute n-day increase: max over t of M[t+n] - M[t], in the margin's unit, for T > n."""
    _, step = _steps(_margin("margin", margin), horizon)
    return float(np.max(step))


def apc_cost(with_tool: ArrayLike, without_tool: ArrayLike) -> float:
    """Cost of an anti-procyclicality tool: mean(with) / mean(without) - 1, over the same (T,) days."""
    tool = _margin("with_tool", with_tool)
    base = _margin("without_tool", without_tool)
    if tool.shape != base.shape:
        raise ValueError(f"without_tool: expected shape {tool.shape} like with_tool, got {base.shape}")
    return float(tool.mean() / base.mean() - 1.0)


def procyclicality(
    margin: ArrayLike, *, horizons: tuple[int, ...] = HORIZONS, without_tool: ArrayLike | None = None
) -> ProcyclicalityResult:
    """The measures of a (T,) margin series, T > max(horizons); with `without_tool`, `margin` is the series under
    the anti-procyclicality tool and `apc_cost` compares it with that (T,) baseline."""
    m = _margin("margin", margin)
    if not horizons:
        raise ValueError("horizons: must name at least one horizon, got ()")
    steps = [_steps(m, n) for n in horizons]
    return ProcyclicalityResult(
        observations=int(m.size),
        peak=float(m.max()),
        trough=float(m.min()),
        peak_to_trough=float(m.max() / m.min()),
        horizons=tuple(operator.index(n) for n in horizons),
        max_increase=tuple(float(np.max(step / start)) for start, step in steps),
        max_absolute_increase=tuple(float(np.max(step)) for _, step in steps),
        apc_cost=None if without_tool is None else apc_cost(m, without_tool),
    )
