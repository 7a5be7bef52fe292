"""Filtered historical simulation (FHS): past joint returns, re-scaled to today's volatility.

Steps, for the traded assets (sorted unique `state.instruments.asset`; other columns move 0):

1. Log returns of the history's closes for those assets (a traded asset absent from the history is
   an InputError naming it). Rows (returns) where any traded asset is NaN or infinite are dropped, so
   the joint sample keeps only dates on which every traded asset has a price; a gap therefore joins
   the returns on either side of it into consecutive observations.
2. The sampling period is the median spacing of the history's timestamps, in days (1 for daily
   closes, 1/24 for hourly); annualised vols convert to per-period vols by
   sqrt(period_days / days_per_year).
3. EWMA variance per asset over the whole (cleaned) history (lambda `volatility.ewma_lambda`, the
   RiskMetrics recursion of `ewma_variance`, started from arch's backcast); sigma_t uses returns up
   to t - 1 only, and sigma after the last return is the one-step forecast. The whole history is
   used to warm the filter up; only the last round(lookback_days / period_days) returns (counted in
   observations, not calendar days) feed the filtered scenarios. An EWMA vol is
   floored at 10% of its asset's median EWMA vol so that a return after a stale, flat stretch is not
   blown up without bound (a history with no price moves at all is an InputError).
4. Filtered return r~_t = r_t / sigma_t * sigma_today, sigma_today the state's effective vol
   (`state.vol`, annualised) in per-period units.
5. MPOR windows: sums of k consecutive filtered returns, k = max(1, round(mpor_days / period_days)),
   overlapping (one window starting at every return whose window fits in the lookback);
   price_move = expm1(window sum). vol_move = sigma_{t+k} / sigma_t - 1 (the EWMA vol's own change
   over the window, raw), floored at -0.9.
6. With `fhs.stressed_start` and `fhs.stressed_end` (ISO dates or date-times, both or neither; a
   date-only end includes that whole day), the raw (unfiltered) overlapping MPOR windows whose
   returns all fall in that period (anywhere in the history, not only the lookback) are appended,
   with the same vol_move rule. A period holding no window is an InputError.

A single scenario group 0, pnl_weight 1. Labels "fhs 2019-06-26" (filtered) and
"stressed 2020-03-12" name the date of the first return in the window (returns are dated by their
closing timestamp); with intraday data the time is shown to the minute.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, date, datetime

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view
from numpy.typing import NDArray

from solvent.errors import InputError
from solvent.market.history import PriceHistory
from solvent.market.state import MarketState
from solvent.market.volatility import ewma_backcast, ewma_variance
from solvent.params import MarginParams
from solvent.scenarios.base import ScenarioSet, traded_assets

FloatArray = NDArray[np.float64]

#: An EWMA vol is floored at this fraction of its asset's median EWMA vol.
SIGMA_FLOOR_FRACTION = 0.1
#: vol_move floor: the EWMA vol may fall by at most 90% over one window.
MIN_VOL_MOVE = -0.9
SECONDS_PER_DAY = 86400.0


@dataclass(frozen=True, eq=False)
class FilteredHistory:
    """Cleaned joint log returns (n, m) of m assets and their EWMA vol path.

    dates (n,): closing timestamp of each return. sigma (n + 1, m): per-period EWMA vol, sigma[t]
    from returns before t (sigma[n] is the forecast after the last return), floored as documented.
    period_days: the history's sampling period (median timestamp spacing) in days.
    """

    assets: tuple[str, ...]
    dates: NDArray[np.datetime64]
    returns: FloatArray
    sigma: FloatArray
    period_days: float

    @property
    def residuals(self) -> FloatArray:
        """(n, m) devolatilised returns r_t / sigma_t."""
        return np.asarray(self.returns / self.sigma[:-1], dtype=np.float64)


def filter_history(history: PriceHistory, assets: tuple[str, ...], lam: float) -> FilteredHistory:
    """Joint returns of `assets` from `history` with their EWMA vol path (steps 1-3 above)."""
    missing = [a for a in assets if a not in history.assets]
    if missing:
        raise InputError("", "history", f"asset {missing[0]!r} has instruments but no price history")
    if history.timestamps.size < 3:
        raise InputError("", "history", f"needs at least 3 closes, got {history.timestamps.size}")
    sub = history.select(assets)
    spacing = np.diff(sub.timestamps).astype("timedelta64[s]").astype(np.float64)
    period_days = float(np.median(spacing)) / SECONDS_PER_DAY
    raw = sub.log_returns()
    keep = np.all(np.isfinite(raw), axis=1)
    returns = raw[keep]
    if returns.shape[0] < 2:
        raise InputError("", "history", f"fewer than 2 returns on which every one of {list(assets)} is priced")
    variance = ewma_variance(np.vstack([returns, np.zeros((1, len(assets)))]), lam, ewma_backcast(returns))
    sigma = np.sqrt(variance)
    median = np.median(sigma, axis=0)
    flat = [a for a, m in zip(assets, median.tolist(), strict=True) if not m > 0.0]
    if flat:
        raise InputError("", "history", f"the price of {flat[0]!r} never moves; it cannot be filtered")
    sigma = np.maximum(sigma, SIGMA_FLOOR_FRACTION * median)
    return FilteredHistory(
        assets=assets,
        dates=sub.timestamps[1:][keep],
        returns=returns,
        sigma=sigma,
        period_days=period_days,
    )


def window_sums(x: FloatArray, k: int) -> FloatArray:
    """(n - k + 1, m) sums of k consecutive rows of x (n, m), overlapping."""
    return np.asarray(sliding_window_view(x, k, axis=0).sum(axis=-1), dtype=np.float64)


def mpor_periods(params: MarginParams, period_days: float) -> int:
    """Observations per MPOR window: max(1, round(mpor_days / period_days))."""
    return max(1, round(params.mpor_days / period_days))


def lookback_periods(params: MarginParams, period_days: float) -> int:
    """Observations in the FHS lookback: round(lookback_days / period_days)."""
    return max(1, round(params.scenarios.fhs.lookback_days / period_days))


def _parse_date(text: str, field: str) -> tuple[np.datetime64, bool]:
    """An ISO date or date-time (a zone is converted to UTC) and whether it was a date only."""
    try:
        return np.datetime64(date.fromisoformat(text), "s"), True
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise InputError("", field, f"not an ISO date or date-time: {text!r}") from None
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return np.datetime64(moment, "s"), False


def _stressed_mask(params: MarginParams, dates: NDArray[np.datetime64], k: int) -> NDArray[np.bool_]:
    """(n - k + 1,) windows whose returns all lie in [stressed_start, stressed_end]."""
    fhs = params.scenarios.fhs
    start_text, end_text = fhs.stressed_start, fhs.stressed_end
    if start_text is None or end_text is None:
        if start_text is not None or end_text is not None:
            where = "scenarios.fhs.stressed_end" if end_text is None else "scenarios.fhs.stressed_start"
            raise InputError("", where, "set both stressed_start and stressed_end, or neither")
        return np.zeros(max(dates.size - k + 1, 0), dtype=np.bool_)
    start, _ = _parse_date(start_text, "scenarios.fhs.stressed_start")
    end, date_only = _parse_date(end_text, "scenarios.fhs.stressed_end")
    first, last = dates[: dates.size - k + 1], dates[k - 1 :]
    in_end = last < end + np.timedelta64(1, "D") if date_only else last <= end
    mask = (first >= start) & in_end
    if not mask.any():
        raise InputError(
            "",
            "scenarios.fhs.stressed_start",
            f"no {k}-return window of the history lies in {start_text} .. {end_text}",
        )
    return np.asarray(mask, dtype=np.bool_)


def _labels(prefix: str, dates: NDArray[np.datetime64], period_days: float) -> tuple[str, ...]:
    text = np.datetime_as_string(dates, unit="D" if period_days >= 1.0 else "m")
    return tuple(f"{prefix} {d}" for d in text.tolist())


def filtered_historical(state: MarketState, params: MarginParams, history: PriceHistory) -> ScenarioSet:
    """FHS scenarios for the traded assets of `state` from `history` (one group)."""
    traded = traded_assets(state.instruments.asset)
    names = tuple(state.assets[a] for a in traded.tolist())
    filtered = filter_history(history, names, params.volatility.ewma_lambda)
    n = filtered.returns.shape[0]
    k = mpor_periods(params, filtered.period_days)
    n_look = min(n, lookback_periods(params, filtered.period_days))
    if n_look < k:
        raise InputError(
            "", "history", f"{n_look} usable returns in the lookback, fewer than one {k}-return MPOR window"
        )
    today = state.vol[traded] * math.sqrt(filtered.period_days / params.days_per_year)
    first = n - n_look
    starts = np.arange(first, n - k + 1)
    log_moves = window_sums(filtered.residuals[first:] * today, k)
    vol_ratio = filtered.sigma[starts + k] / filtered.sigma[starts]
    labels = _labels("fhs", filtered.dates[starts], filtered.period_days)

    stressed = np.flatnonzero(_stressed_mask(params, filtered.dates, k))
    if stressed.size:
        log_moves = np.vstack([log_moves, window_sums(filtered.returns, k)[stressed]])
        vol_ratio = np.vstack([vol_ratio, filtered.sigma[stressed + k] / filtered.sigma[stressed]])
        labels += _labels("stressed", filtered.dates[stressed], filtered.period_days)

    n_scen = log_moves.shape[0]
    price_move = np.zeros((n_scen, len(state.assets)), dtype=np.float64)
    vol_move = np.zeros((n_scen, len(state.assets)), dtype=np.float64)
    price_move[:, traded] = np.expm1(log_moves)
    vol_move[:, traded] = np.maximum(vol_ratio - 1.0, MIN_VOL_MOVE)
    return ScenarioSet(
        name="fhs",
        price_move=price_move,
        vol_move=vol_move,
        pnl_weight=np.ones(n_scen, dtype=np.float64),
        group=np.zeros(n_scen, dtype=np.int32),
        horizon_years=params.mpor_days / params.days_per_year,
        labels=labels,
    )
