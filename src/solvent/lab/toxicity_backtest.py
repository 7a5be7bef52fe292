"""Does a toxicity-scaled requirement lower exceptions or procyclicality? The margin backtest with and without
the VPIN signal, on an hourly history of closes and volumes (docs/model.md, "Order-flow toxicity").

VPIN per hour (market.toxicity: buckets of `bucket_days` of the history's mean daily volume divided by 50, the
paper's n = 50 buckets, a causal sigma over the last `sigma_days`), read at each day's last hour, becomes the
signal multiplier m_t of governance.signals (1 below its own past 90th percentile, up to x2 at its maximum).
The backtest (lab.margin_backtest, daily closes: the last hour of each UTC day) then runs twice on the same
reference portfolios: as configured, with each day's fast volatility times m_t (`scaled`), and times m_t as the
step bound lets it through (`bounded`: a 25% relative step at most every 3 days, `liquidity.stress`'s bound and
Aave's delay; governance.bounds.bounded_path). Three readings:

- the governed form, the vol floor x m_t: `floor_binding` counts the days on which the floor so scaled would be
  above the fast volatility at all (where it is 0 the signal changes no requirement);
- the scaled volatility, the most such a signal could do to the requirement, and the bounded one: their
  exceptions, procyclicality and capital locked against the plain run.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray

from solvent.governance.bounds import BOUNDS, MIN_DELAY_DAYS, Bound, bounded_path
from solvent.governance.signals import SIGNAL_MAX_SCALE, signal_scale
from solvent.lab.margin_backtest import HistoryBacktest, run_backtest, vol_path
from solvent.lab.models import ModelName
from solvent.market.history import PriceHistory
from solvent.market.toxicity import PAPER_WINDOW, vpin
from solvent.params import MarginParams

FloatArray = NDArray[np.float64]


@dataclass(frozen=True, eq=False)
class ToxicityBacktest:
    """The daily history, the VPIN and multiplier at each of its closes, and the two backtests."""

    daily: PriceHistory
    vpin: FloatArray
    multiplier: FloatArray
    bounded_multiplier: FloatArray
    plain: HistoryBacktest
    scaled: HistoryBacktest
    bounded: HistoryBacktest
    floor_binding: int

    def summary(self) -> dict[str, Any]:
        """JSON-ready: per model and portfolio, exceptions, zone, capital locked and the largest 1- and 5-day rise
        of the requirement, plain, scaled and bounded; the days the signal raised and the mean absolute move over the
        margin period after them and after the others; the floor's binding days."""

        def figures(run: HistoryBacktest) -> dict[str, Any]:
            out: dict[str, Any] = {}
            for model in run.models:
                for p, portfolio in enumerate(run.portfolios):
                    test, cycle = run.results[model][portfolio], run.cyclicality[model][portfolio]
                    out[f"{model} {portfolio}"] = {
                        "exceptions": test.exceptions,
                        "observations": test.observations,
                        "zone": test.zone,
                        "capital_locked": float(np.mean(run.requirement[model][p]) / run.notional),
                        "max_increase_1d": cycle.max_increase[0],
                        "max_increase_5d": cycle.max_increase[1],
                        "peak_to_trough": cycle.peak_to_trough,
                    }
            return out

        moves = np.abs(self.plain.loss[0]) / self.plain.notional  # the MPOR move after each backtested day
        raised = self.multiplier[np.searchsorted(self.daily.timestamps, self.plain.dates)] > 1.0
        return {
            "days": int(self.daily.timestamps.size),
            "mean_abs_move_raised": float(moves[raised].mean()) if raised.any() else None,
            "mean_abs_move_not_raised": float(moves[~raised].mean()) if (~raised).any() else None,
            "days_raised": int((self.multiplier > 1.0).sum()),
            "floor_binding_days": self.floor_binding,
            "plain": figures(self.plain),
            "scaled": figures(self.scaled),
            "bounded": figures(self.bounded),
        }


def daily_closes(history: PriceHistory, volume: FloatArray) -> tuple[PriceHistory, NDArray[np.int64]]:
    """The last hour of each UTC day as a daily history, and the hourly rows (D,) it was taken from."""
    days = history.timestamps.astype("datetime64[D]")
    last = np.flatnonzero(np.concatenate((days[1:] != days[:-1], [True])))
    daily = PriceHistory(days[last].astype("datetime64[s]"), history.assets, history.closes[last])
    return daily, last.astype(np.int64)


def toxicity_backtest(
    history: PriceHistory,
    volume: FloatArray,
    params: MarginParams,
    models: list[ModelName],
    *,
    bucket_days: float = 1.0,
    sigma_days: float = 30.0,
) -> ToxicityBacktest:
    """VPIN on the hourly `history` (one asset) and `volume` (T,), then the daily backtest plain and scaled."""
    per_day = volume.size / max(1.0, float((history.timestamps[-1] - history.timestamps[0]).astype(np.int64)) / 86400.0)
    bucket = bucket_days * float(volume.sum()) / (volume.size / per_day) / PAPER_WINDOW
    hourly = vpin(history.closes[:, 0], volume, bucket, sigma_window=round(sigma_days * per_day))
    daily, rows = daily_closes(history, volume)
    daily_vpin = hourly[rows]
    multiplier = signal_scale(daily_vpin)
    plain = run_backtest(daily, models, params)
    scaled = run_backtest(daily, models, params, vol_scale=multiplier)
    bound = BOUNDS["liquidity.stress"]
    steady = bounded_path(multiplier, 1.0, Bound(bound.kind, bound.step, 1.0, SIGNAL_MAX_SCALE), round(MIN_DELAY_DAYS))
    bounded = run_backtest(daily, models, params, vol_scale=steady)
    fast = vol_path(daily, params).vol[:, 0]
    floor_binding = int(np.sum(params.volatility.vol_floor * multiplier > fast))
    return ToxicityBacktest(daily, daily_vpin, multiplier, steady, plain, scaled, bounded, floor_binding)
