"""Mango v4's stable price: a price that follows the oracle with a limited rate of change.

Reimplemented from Mango's description (blockworks-foundation/mango-docs, `mango-markets/stable-price.md`) and
the behaviour of its program (`stable_price.rs`); ../shared/REFERENCES.md. Pure functions over arrays of shape
(A,): `StablePriceState` is immutable and `update` returns a new one.

Two prices per asset, both updated from the oracle price P at time t (seconds), at most once every
`min_update_s` (a call sooner is ignored; dt = t - last update, and at most `max_update_s` of it counts):

- The **delay price** D: the oracle averaged over each `delay_interval_s` (time-weighted by the counted dt),
  kept in a ring of `delay_intervals` slots; when an interval ends, its average is clamped to within
  `delay_growth_limit` of the previous interval's delay price and written into the slot(s) the clock has
  passed (every slot after a gap longer than the whole ring). D is the slot of the current interval: the
  price `delay_intervals` intervals ago, itself limited to 6% an hour (Mango's defaults: 24 x 1 h).
- The **stable price** S: S <- clamp(P, S (1 - g), S (1 + g)) with g = stable_growth_limit x f^2 x dt and
  f = min(S, D) / max(S, D). Near its delay price S follows a jump at about 0.03% a second (a 5% jump in
  about three minutes, 20% in about 13); far from it (an extreme jump, likely an attack) it slows with f^2
  (a tenfold jump reaches 178% of the start in an hour, 727% in a day).

Mango differs in one detail: its average divides the price-time sum of the counted dt by the *uncounted*
elapsed time (a gap longer than `max_update_s` biases it down); here both use the counted dt.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from solvent.params import StablePriceParams as StablePriceParams

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]


@dataclass(frozen=True, eq=False)
class StablePriceState:
    """Per asset (A,): the stable price, the time of its last update (seconds), the delay-price ring
    (A, delay_intervals), the running price-time sum and time of the current interval, and its index."""

    stable: FloatArray
    last_update: FloatArray
    delay: FloatArray
    accumulated_price: FloatArray
    accumulated_time: FloatArray
    interval: IntArray

    def delay_price(self) -> FloatArray:
        """D per asset: the ring's slot of the current interval."""
        return np.asarray(np.take_along_axis(self.delay, self.interval[:, None], axis=1)[:, 0], dtype=np.float64)


def _interval(now: FloatArray, params: StablePriceParams) -> IntArray:
    return np.asarray(np.floor(now / params.delay_interval_s), dtype=np.int64) % params.delay_intervals


def reset(price: ArrayLike, now: ArrayLike, params: StablePriceParams) -> StablePriceState:
    """A new state at `price` (A,) and time `now` (seconds; scalar or (A,)): stable and every delay price equal
    the price. Prices must be finite and positive."""
    p = np.array(price, dtype=np.float64, ndmin=1)
    if not np.all(np.isfinite(p) & (p > 0.0)):
        raise ValueError(f"stable price reset needs finite positive prices, got {p}")
    t = np.broadcast_to(np.asarray(now, dtype=np.float64), p.shape).copy()
    return StablePriceState(
        stable=p.copy(),
        last_update=t,
        delay=np.repeat(p[:, None], params.delay_intervals, axis=1),
        accumulated_price=np.zeros_like(p),
        accumulated_time=np.zeros_like(p),
        interval=_interval(t, params),
    )


def _clamp(target: FloatArray, previous: FloatArray, limit: FloatArray) -> FloatArray:
    return np.asarray(np.clip(target, previous * (1.0 - limit), previous * (1.0 + limit)), dtype=np.float64)


def update(
    state: StablePriceState, now: ArrayLike, price: ArrayLike, params: StablePriceParams
) -> StablePriceState:
    """The state after observing `price` (A,) at `now` (seconds; scalar or (A,)). Assets whose price is NaN, or
    whose last update is less than `min_update_s` ago, are left exactly as they were."""
    p = np.array(price, dtype=np.float64, ndmin=1)
    if p.shape != state.stable.shape:
        raise ValueError(f"price has shape {p.shape}, expected {state.stable.shape}")
    t = np.broadcast_to(np.asarray(now, dtype=np.float64), p.shape)
    elapsed = np.maximum(t - state.last_update, 0.0)
    live = np.isfinite(p) & (p > 0.0) & (elapsed >= params.min_update_s)
    if not live.any():
        return state
    p_safe = np.where(live, p, 1.0)
    counted = np.where(live, np.minimum(elapsed, params.max_update_s), 0.0)
    acc_price = state.accumulated_price + p_safe * counted
    acc_time = state.accumulated_time + counted

    # Delay price: close the interval(s) the clock has left.
    k = params.delay_intervals
    index = np.where(live, _interval(t, params), state.interval)
    moved = live & (index != state.interval)
    previous = np.take_along_axis(state.delay, ((state.interval - 1) % k)[:, None], axis=1)[:, 0]
    average = np.where(acc_time > 0.0, acc_price / np.where(acc_time > 0.0, acc_time, 1.0), previous)
    closed = _clamp(average, previous, np.full_like(previous, params.delay_growth_limit))
    whole_ring = elapsed > k * params.delay_interval_s
    slots = np.arange(k)[None, :]
    passed = ((slots - state.interval[:, None]) % k) < ((index - state.interval) % k)[:, None]
    fill = moved[:, None] & (passed | whole_ring[:, None])
    delay = np.where(fill, closed[:, None], state.delay)
    acc_price = np.where(moved, 0.0, acc_price)
    acc_time = np.where(moved, 0.0, acc_time)
    delay_now = np.take_along_axis(delay, index[:, None], axis=1)[:, 0]

    # Stable price: follow the oracle within the growth limit, slowed by its distance to the delay price.
    s = state.stable
    fraction = np.minimum(s, delay_now) / np.maximum(s, delay_now)
    limit = params.stable_growth_limit * fraction * fraction * counted
    stable = np.where(live, _clamp(p_safe, s, limit), s)
    return StablePriceState(
        stable=stable,
        last_update=np.where(live, t, state.last_update),
        delay=delay,
        accumulated_price=acc_price,
        accumulated_time=acc_time,
        interval=index,
    )


def simulate(
    start: float, prices: ArrayLike, times: ArrayLike, params: StablePriceParams, start_time: float = 0.0
) -> FloatArray:
    """The stable price of one asset after each of `prices` observed at `times` (seconds), from a reset at
    `start` at `start_time`: a convenience for tests and reports (one `update` per observation)."""
    state = reset([start], start_time, params)
    out = []
    observed = np.asarray(prices, dtype=np.float64).tolist()
    for p, t in zip(observed, np.asarray(times, dtype=np.float64).tolist(), strict=True):
        state = update(state, t, [p], params)
        out.append(float(state.stable[0]))
    return np.asarray(out)


def stable_price_charge(delta: ArrayLike, price: ArrayLike, stable: ArrayLike) -> FloatArray:
    """(N, A) the `stable_price` IM term: max(delta, 0) x max(P - S, 0) + max(-delta, 0) x max(S - P, 0).

    delta (N, A): net units of each asset (positions' delta plus collateral balances, debts negative); price P
    and stable price S (A,). Equity stays at the oracle; equity - IM then values a long at min(P, S) and a short
    (a liability) at max(P, S), Mango v4's initial health (docs/model.md, "Stable price").
    """
    d = np.asarray(delta, dtype=np.float64)
    gap = np.asarray(price, dtype=np.float64) - np.asarray(stable, dtype=np.float64)
    return np.asarray(np.maximum(d, 0.0) * np.maximum(gap, 0.0) + np.maximum(-d, 0.0) * np.maximum(-gap, 0.0))
