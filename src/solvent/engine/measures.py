"""Risk measures of a scenario P&L vector: ES, VaR and the worst loss, from its k largest losses, exactly.

The fused kernel (engine/kernel.py) and the pre-trade what-if (engine/whatif.py) reduce each scenario group of an
account's P&L with `reduce_group`; `risk_measure_numpy` is its plain twin by a full sort, the reference definition
the tests hold it to.

On n equally weighted losses L(1) >= L(2) >= ... at confidence c, with m = n (1 - c) and j = floor(m), m snapped to
the nearest integer when within 1e-9 of it (`tail_mass`: in floating point 10 x (1 - 0.9) is 0.9999999999999998,
and a bare floor would take L(1) for the 90% VaR of 10 losses):
  ES    = (L(1) + ... + L(j) + (m - j) L(j+1)) / m     (= L(1) when m < 1)
  VaR   = L(j+1)   (the smallest loss exceeded by at most a fraction 1 - c of scenarios)
  worst = L(1)
"""

from __future__ import annotations

import math

import numpy as np
from numpy.typing import NDArray

from solvent._numba import jit

FloatArray = NDArray[np.float64]

ES, VAR, WORST = 0, 1, 2
MEASURE_CODES = {"es": ES, "var": VAR, "worst": WORST}


@jit()
def tail_mass(n: int, confidence: float) -> float:
    """m = n (1 - c), snapped to the nearest integer when within 1e-9 (relative, at least absolute) of it, so
    that floor(m) counts the tail's whole observations whatever the rounding of 1 - c (n = 10, c = 0.9: 1, not
    0.9999999999999998)."""
    m = n * (1.0 - confidence)
    whole = math.floor(m + 0.5)
    if abs(m - whole) <= 1e-9 * max(1.0, m):
        return float(whole)
    return m


@jit()
def tail_count(n: int, confidence: float, measure: int) -> tuple[float, int]:
    """(m, k): tail mass m = n (1 - c) (`tail_mass`) and how many largest losses the measure needs."""
    if measure == WORST:
        return 1.0, 1
    m = tail_mass(n, confidence)
    k = math.floor(m) + 1
    return m, min(k, n)


@jit(inline=True)
def _insert(top: FloatArray, k: int, value: float) -> None:
    """Insert `value` into top[:k], descending, dropping the smallest (the caller has checked it beats top[k - 1])."""
    i = k - 1
    while i > 0 and top[i - 1] < value:
        top[i] = top[i - 1]
        i -= 1
    top[i] = value


@jit()
def insert_losses(pnl: FloatArray, start: int, stop: int, k: int, cut: float, top: FloatArray) -> float:
    """Insert the losses -pnl[start:stop] above `cut` into `top`, the k largest so far (descending); the new cut."""
    for s in range(start, stop):
        loss = -pnl[s]
        if loss <= cut:
            continue
        _insert(top, k, loss)
        cut = top[k - 1]
    return cut


#: The fewest lanes of the first pass of `top_losses` (scenario s falls in lane (s - start) mod lanes); more, a
#: power of two at least 2k, for a deeper tail (k = 41 of 4,096 draws at 99%: 128).
LANES = 32


@jit(inline=True)
def _push(t0: float, t1: float, t2: float, t3: float, loss: float) -> tuple[float, float, float, float]:
    """The four largest of t0 >= t1 >= t2 >= t3 and `loss`, descending, without a branch: `_insert`'s result (a loss
    equal to one kept goes below it; one no larger than t3, or NaN, leaves them as they are)."""
    return max(t0, loss), max(t1, min(loss, t0)), max(t2, min(loss, t1)), max(t3, min(loss, t2))


@jit()
def top_losses(pnl: FloatArray, start: int, stop: int, k: int, lanes: int, top: FloatArray) -> None:
    """top[:k] = the k largest losses -pnl[start:stop], descending (k <= lanes <= (stop - start) / 2; top holds at
    least k + lanes values).

    Exact, and cheap on the branch predictor: a first pass takes each lane's largest loss (top[k:k + lanes],
    branch-free, vectorised); the k-th largest of those, T, is at most the k-th largest loss (it and the k - 1
    lane maxima above it are k distinct losses), so the k largest losses all lie at or above T, in the lanes
    whose maximum reaches T (about k of them), and a second pass inserts only those. Up to 4 (the 99% tail of up to
    400 draws) the k largest are kept in registers and inserted without a branch (`_push`), in the same order."""
    lane = top[k : k + lanes]
    first = pnl[start : start + lanes]  # views: a range index needs no negative-index check, so the loops vectorise
    second = pnl[start + lanes : start + 2 * lanes]
    for j in range(lanes):
        lane[j] = max(-first[j], -second[j])
    s = start + 2 * lanes
    while s + 2 * lanes <= stop:  # two blocks a pass: a lane is not a bare max(lane, x), which compiles to masked
        block = pnl[s : s + lanes]  # stores that the next pass's loads must wait for
        after = pnl[s + lanes : s + 2 * lanes]
        for j in range(lanes):
            lane[j] = max(max(lane[j], -block[j]), -after[j])
        s += 2 * lanes
    if s + lanes <= stop:
        block = pnl[s : s + lanes]
        for j in range(lanes):
            lane[j] = max(lane[j], -block[j])
        s += lanes
    rest = pnl[s:stop]
    for j in range(rest.shape[0]):
        lane[j] = max(lane[j], -rest[j])
    if k <= 4:
        t0 = t1 = t2 = t3 = -np.inf
        for j in range(lanes):
            t0, t1, t2, t3 = _push(t0, t1, t2, t3, lane[j])
        threshold = (t0, t1, t2, t3)[k - 1]
        t0 = t1 = t2 = t3 = -np.inf
        for j in range(lanes):
            if lane[j] < threshold:
                continue
            t = start + j  # a while loop: a range with a variable step divides for its length
            while t < stop:
                loss = -pnl[t]
                if loss >= threshold:  # few do (the k largest and about as many more): the branch predicts well
                    t0, t1, t2, t3 = _push(t0, t1, t2, t3, loss)
                t += lanes
        largest = (t0, t1, t2, t3)
        for j in range(k):
            top[j] = largest[j]
        return
    for j in range(k):  # T: the k-th largest lane maximum, by insertion into top[:k]
        top[j] = -np.inf
    for j in range(lanes):
        if lane[j] > top[k - 1]:
            _insert(top, k, lane[j])
    threshold = top[k - 1]
    for j in range(k):
        top[j] = -np.inf
    for j in range(lanes):
        if lane[j] < threshold:
            continue
        t = start + j
        while t < stop:
            loss = -pnl[t]
            if loss >= threshold and loss > top[k - 1]:
                _insert(top, k, loss)
            t += lanes


@jit()
def reduce_group(pnl: FloatArray, start: int, stop: int, confidence: float, measure: int, top: FloatArray) -> float:
    """Risk measure of losses -pnl[start:stop], keeping the k largest losses in `top` (descending; top holds at
    least stop - start + 1 values)."""
    n = stop - start
    if n == 0:
        return 0.0
    m, k = tail_count(n, confidence, measure)
    lanes = LANES
    while lanes < 2 * k:
        lanes *= 2
    if n >= 2 * lanes:
        top_losses(pnl, start, stop, k, lanes, top)
    else:
        for j in range(k):
            top[j] = -np.inf
        cut = -np.inf  # the k-th largest loss so far: most blocks of 8 scenarios fail this one comparison
        s = start
        while s + 8 <= stop:
            low = min(
                min(min(pnl[s], pnl[s + 1]), min(pnl[s + 2], pnl[s + 3])),
                min(min(pnl[s + 4], pnl[s + 5]), min(pnl[s + 6], pnl[s + 7])),
            )
            if -low > cut:
                cut = insert_losses(pnl, s, s + 8, k, cut, top)
            s += 8
        insert_losses(pnl, s, stop, k, cut, top)
    if measure == WORST:
        return float(top[0])
    whole = math.floor(m)
    if measure == VAR:
        return float(top[min(whole, n - 1)])
    if m < 1.0:
        return float(top[0])
    total = 0.0
    for i in range(whole):
        total += top[i]
    if whole < n:
        total += (m - whole) * top[whole]
    return total / m


def risk_measure_numpy(losses: FloatArray, confidence: float, measure: str) -> FloatArray:
    """The measure of each row of `losses` (rows x n), by a full sort: the reference definition."""
    n = losses.shape[1]
    if n == 0:
        return np.zeros(losses.shape[0])
    ordered = -np.sort(-losses, axis=1)
    if measure == "worst":
        return np.asarray(ordered[:, 0], dtype=np.float64)
    m = tail_mass(n, confidence)
    whole = math.floor(m)
    if measure == "var":
        return np.asarray(ordered[:, min(whole, n - 1)], dtype=np.float64)
    if m < 1.0:
        return np.asarray(ordered[:, 0], dtype=np.float64)
    tail = ordered[:, :whole].sum(axis=1)
    if whole < n:
        tail = tail + (m - whole) * ordered[:, whole]
    return np.asarray(tail / m, dtype=np.float64)
