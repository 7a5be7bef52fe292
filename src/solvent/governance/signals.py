"""An external signal series (timestamp, value) and the multiplier it may put on a calibrated target.

Any numeric series with a timestamp (a sentiment index, a funding-rate z-score, VPIN itself) is read from a
`solvent.signal/1` CSV: a header `timestamp,value`, one row per observation, ISO-8601 timestamps (no zone:
UTC), finite values; rows sorted by time (docs/formats.md, "Signal series"). Its effect is scale-free: the
multiplier at t depends only on the rank of the value at t among the values up to t (causal),

    F_t = #{s <= t : v_s <= v_t} / (t + 1)                   (the empirical CDF of the past at v_t)
    m_t = 1 + (max_scale - 1) x max(0, F_t - q) / (1 - q)     in [1, max_scale]

so only an unusually high reading (above the q-quantile of its own history) raises the target, by at most
`max_scale`; the bounded step of the governed parameter (governance.bounds) still limits what any one change
may do. Fewer than `min_history` observations: 1 (no effect).
"""

from __future__ import annotations

import bisect
import csv
import math
import os
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Final

import numpy as np
from numpy.typing import NDArray

from solvent.errors import InputError

FloatArray = NDArray[np.float64]

SIGNAL_HEADER: Final = ["timestamp", "value"]
#: The quantile of its own history above which a signal starts to raise its target.
SIGNAL_QUANTILE: Final = 0.9
#: The most a signal multiplies its target by (before the parameter's own step bound).
SIGNAL_MAX_SCALE: Final = 2.0
#: Observations before a signal has any effect.
SIGNAL_MIN_HISTORY: Final = 30


@dataclass(frozen=True, eq=False)
class SignalSeries:
    """Timestamps (T,) as datetime64[s] UTC, strictly increasing, and their values (T,)."""

    timestamps: NDArray[np.datetime64]
    values: FloatArray

    def at(self, when: datetime) -> int | None:
        """Index of the last observation at or before `when` (None: none yet)."""
        stamp = np.datetime64(when.astimezone(UTC).replace(tzinfo=None), "s")
        k = int(np.searchsorted(self.timestamps, stamp, side="right")) - 1
        return k if k >= 0 else None


def read_signal(path: str | os.PathLike[str]) -> SignalSeries:
    """Read a `solvent.signal/1` CSV; a bad row raises InputError naming the file, row and field."""
    source = str(path)
    try:
        with open(source, encoding="utf-8", newline="") as handle:
            rows = list(csv.reader(line for line in handle if not line.startswith("#")))
    except OSError as exc:
        raise InputError(source, "", exc.strerror or str(exc)) from None
    if not rows or [c.strip() for c in rows[0]] != SIGNAL_HEADER:
        raise InputError(source, "header", f"expected {','.join(SIGNAL_HEADER)}")
    stamps: list[datetime] = []
    values: list[float] = []
    for i, row in enumerate(rows[1:], start=1):
        if len(row) != 2:
            raise InputError(source, f"row {i}", f"expected 2 fields, got {len(row)}")
        try:
            when = datetime.fromisoformat(row[0].strip().replace("Z", "+00:00"))
        except ValueError:
            raise InputError(source, f"row {i}.timestamp", f"not an ISO-8601 time: {row[0]!r}") from None
        when = when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
        try:
            value = float(row[1])
        except ValueError:
            value = math.nan
        if not math.isfinite(value):
            raise InputError(source, f"row {i}.value", f"not a finite number: {row[1]!r}")
        if stamps and when <= stamps[-1]:
            raise InputError(source, f"row {i}.timestamp", f"{row[0]} is not after the previous row's")
        stamps.append(when)
        values.append(value)
    if not values:
        raise InputError(source, "", "no observations")
    timestamps = np.array([np.datetime64(s.replace(tzinfo=None), "s") for s in stamps])
    return SignalSeries(timestamps=timestamps, values=np.array(values))


def signal_scale(
    values: FloatArray,
    quantile: float = SIGNAL_QUANTILE,
    max_scale: float = SIGNAL_MAX_SCALE,
    min_history: int = SIGNAL_MIN_HISTORY,
) -> FloatArray:
    """(T,) the causal multiplier m_t of each observation (module docstring); NaN values give 1."""
    out = np.ones(len(values))
    seen: list[float] = []
    for t, v in enumerate(np.asarray(values, dtype=np.float64)):
        if not math.isfinite(v):
            continue
        bisect.insort(seen, float(v))
        if len(seen) >= min_history:
            rank = bisect.bisect_right(seen, float(v)) / len(seen)
            out[t] = 1.0 + (max_scale - 1.0) * max(0.0, rank - quantile) / (1.0 - quantile)
    return out
