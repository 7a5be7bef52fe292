"""The anti-procyclicality buffer as state: built in calm periods, drawn while the margin rises.

EMIR RTS 153/2013 art. 28(1)(a) (REFERENCES.md): a buffer of at least 25% of the calculated margin,
"which it allows to be temporarily exhausted in periods where calculated margin requirements are rising
significantly". A fixed x1.25 is no anti-procyclicality tool at all (every relative move of the margin
passes through unchanged: issue 12 item 9). Here the charged margin C is sticky inside the band the
buffer allows, [M, (1 + b) M], M the calculated margin and b = `volatility.apc_buffer`:

    g   = (1 + b) ** (dt / apc_buffer_rebuild_days) - 1       the rebuild rate per step
    C_t = clip(C_{t-1} x (1 + g), M_t, (1 + b) M_t)           C_0 = (1 + b) M_0 (the buffer built)
    level_t = C_t / M_t - 1 in [0, b]                         (b for a zero margin: a new exposure is charged
                                                              the built buffer; so is a first margin)

While M rises, C stays (drifting up at most at g) until M catches it up: the buffer is drawn, the rise
absorbed; once exhausted C follows M. When M falls, C stays until (1 + b) M falls below it: the buffer is
rebuilt from the fall; at a steady M it rebuilds at g, from empty to full in `apc_buffer_rebuild_days`.
Jitter of M inside the band moves nothing. So M <= C <= (1 + b) M always, and one step's relative rise of
C is at most max(M_t / M_{t-1} - 1, g): never more than the fixed buffer's (M's own) or the rebuild rate.

A small immutable state (`ApcBufferState`, arrays (N,) over accounts) and a pure `update_buffer`: the
backtest (`lab.margin_backtest`) folds it along dates; a streaming venue keeps one per margin cycle and
folds it the same way (the engine's one-snapshot margin charges the built buffer, the state's start).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from solvent.params import VolatilityParams

FloatArray = NDArray[np.float64]


@dataclass(frozen=True, eq=False)
class ApcBufferState:
    """Per account (N,): the buffer's level (fraction of the calculated margin, in [0, apc_buffer]), the last
    calculated margin and the last charged margin (1 + level) x calculated."""

    level: FloatArray
    calculated: FloatArray
    charged: FloatArray


def initial_buffer(calculated: FloatArray, params: VolatilityParams) -> ApcBufferState:
    """The built buffer at the first margin: level = apc_buffer, charged = (1 + apc_buffer) x calculated."""
    m = np.asarray(calculated, dtype=np.float64)
    level = np.full(m.shape, params.apc_buffer)
    return ApcBufferState(level=level, calculated=m.copy(), charged=(1.0 + level) * m)


def update_buffer(
    state: ApcBufferState, calculated: FloatArray, dt_days: float, params: VolatilityParams
) -> ApcBufferState:
    """The state after one step of `dt_days` with the new calculated margin (N,) (module docstring)."""
    if not dt_days >= 0.0:
        raise ValueError(f"dt_days: must be >= 0, got {dt_days!r}")
    m = np.asarray(calculated, dtype=np.float64)
    b = params.apc_buffer
    growth = (1.0 + b) ** (dt_days / params.apc_buffer_rebuild_days)
    new = ~(state.calculated > 0.0)  # a first exposure: the built buffer
    sticky = np.minimum(np.maximum(state.charged * growth, m), (1.0 + b) * m)
    charged = np.where(new, (1.0 + b) * m, sticky)
    with np.errstate(divide="ignore", invalid="ignore"):
        level = np.where(m > 0.0, charged / np.where(m > 0.0, m, 1.0) - 1.0, b)
    return ApcBufferState(level=np.clip(level, 0.0, b), calculated=m.copy(), charged=charged)


def buffer_path(calculated: FloatArray, dt_days: float, params: VolatilityParams) -> tuple[FloatArray, FloatArray]:
    """(charged, level), each (N, T), of calculated margins (N, T) along T steps of `dt_days` from the built
    buffer: the fold of `update_buffer` (a loop over steps, never over accounts)."""
    m = np.atleast_2d(np.asarray(calculated, dtype=np.float64))
    charged, level = np.empty_like(m), np.empty_like(m)
    state = initial_buffer(m[:, 0], params)
    for t in range(m.shape[1]):
        if t:
            state = update_buffer(state, m[:, t], dt_days, params)
        charged[:, t], level[:, t] = state.charged, state.level
    return charged, level
