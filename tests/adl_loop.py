"""The obviously correct twin of `waterfall.adl_fills`, shared by the ADL tests: a plain loop over the ranking."""

from __future__ import annotations

import math

import numpy as np


def slow_adl_fills(
    demand: float,
    price: float,
    mark: float,
    size: float,
    rows: np.ndarray,
    account: np.ndarray,
    quantity: np.ndarray,
    entry: np.ndarray,
    equity: np.ndarray,
    gross: np.ndarray,
) -> list[tuple[int, float]]:
    """Obviously correct: score each candidate, sort, walk the ranking filling up to |q| and the account's
    remaining equity."""
    scored = []
    for i in range(len(rows)):
        score = math.copysign(1.0, quantity[i]) * (price - entry[i]) / entry[i] * (gross[i] / equity[i])
        if score > 0.0:
            scored.append((-score, int(account[i]), int(rows[i]), i))
    left, room, fills = demand, {}, []
    for _, acc, _, i in sorted(scored):
        room.setdefault(acc, equity[i] / (size * abs(price - mark)) if price != mark else math.inf)
        fill = min(abs(quantity[i]), room[acc], left)
        if fill > 0.0:
            fills.append((i, fill))
            room[acc] -= fill
            left -= fill
    return fills
