"""Backtesting margin models on a price history: would each model's requirement have covered the losses?

For every date t after a warm-up, every model margins the same reference portfolios — for each asset a
long and a short perpetual of constant notional N (quantity N / P_t, so the backtest measures margin
*rates*) — at a market snapshot built from the history up to t only: the close P_t, and the asset's
volatilities as `calibrate_asset_vols` would give on the returns up to t with the EWMA estimator (its
one-step forecast, the long-lookback and the stressed volatility; computed causally along the whole history
in one pass; `volatility.estimator` "garch" would refit a GARCH at every date and is not offered here). The
realised loss over the margin period of risk h (`params.mpor_days`, in history steps) is
L_t = -q_t (P_{t+h} - P_t): an exception when L_t > IM_t. MM is backtested the same way over the liquidation
horizon H of the portfolio (`liquidation.horizon`: detection plus the engine's slices; in history steps,
ceil(H / step), at least one step: on daily closes the one-day loss, an upper bound for a close-out of
minutes). Each (model, portfolio) series then gets the
coverage tests of `lab.backtest` and the procyclicality measures of `lab.procyclicality`; for the models
that read the parameters (`multi`, `vol_only`) the cost of the anti-procyclicality tool is measured by
margining once more with `volatility.apc_mode` "none". With the buffer (`apc_mode` "buffer") and
`apc_buffer_release`, `multi`'s requirement is that margin without the tool carried through the buffer's
state along the dates (`engine.apc.buffer_path`: drawn while it rises, rebuilt in calm), not a fixed x1.25,
and its MM follows that charged IM: `maintenance.fraction` x IM, or in mode "liquidation" the floor x the
charged IM or the horizon part of the margin without the tool, whichever is larger, at most the charged IM.

A Python loop over dates (a few thousand), never over accounts; every model margins the date's whole
reference book at once.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import msgspec
import numpy as np
from numpy.typing import NDArray

from solvent.baselines import BaselineParams
from solvent.engine.apc import buffer_path
from solvent.engine.book import CROSS, Book
from solvent.errors import InputError
from solvent.formats.schemas import MARKET_SCHEMA, AssetQuote, Instrument, MarketSnapshot
from solvent.lab.backtest import BacktestResult, backtest
from solvent.lab.models import ModelName, model_margin
from solvent.lab.procyclicality import ProcyclicalityResult, procyclicality
from solvent.liquidation.horizon import SECONDS_PER_DAY, liquidation_horizon_seconds, slices_needed
from solvent.market.history import PriceHistory
from solvent.market.volatility import STRESSED_WINDOW, annualise, ewma_variance
from solvent.params import MarginParams

FloatArray = NDArray[np.float64]

#: USD notional of every reference position.
NOTIONAL = 1_000_000.0
#: Steps of history before the first backtested date (the volatility estimates need them).
WARMUP_STEPS = 250


@dataclass(frozen=True, eq=False)
class VolPath:
    """Causal annualised volatilities (T, A): at row t, what calibration on the closes up to t gives."""

    vol: FloatArray
    vol_long: FloatArray
    vol_stressed: FloatArray


def steps_per_day(history: PriceHistory) -> float:
    """History steps per calendar day (1 for daily closes, 24 for hourly), from the median spacing."""
    if history.timestamps.size < 2:
        raise ValueError("a history of at least two closes is needed")
    seconds = float(np.median(np.diff(history.timestamps).astype("timedelta64[s]").astype(np.float64)))
    return 86400.0 / seconds


def vol_path(history: PriceHistory, params: MarginParams) -> VolPath:
    """EWMA forecast, long-lookback and stressed volatility after every close, per asset (NaN where an asset
    has too few returns yet). The EWMA variance for the step after t is lambda var_t + (1 - lambda) r_t^2 on
    the recursion of `ewma_variance`; the long-lookback vol the sample std of the last
    `apc_floor_lookback_days` of returns; the stressed vol the largest std of 250 consecutive returns so far.
    Exactly what calibration on the history up to each close gives, except within the first 75 returns of an
    asset, whose EWMA starts from the backcast of all of them (arch's convention) — inside the warm-up, never
    backtested.
    """
    per_year = 365.0 * steps_per_day(history)
    lam = params.volatility.ewma_lambda
    lookback = max(2, round(params.volatility.apc_floor_lookback_days * steps_per_day(history)))
    returns = history.log_returns()
    n_steps, n_assets = history.closes.shape
    out = [np.full((n_steps, n_assets), math.nan) for _ in range(3)]
    for a in range(n_assets):
        r_all = returns[:, a]
        valid = np.flatnonzero(np.isfinite(r_all))
        if valid.size < 30:
            continue
        r = r_all[valid]
        rows = valid + 1  # return i ends at close i + 1
        var = ewma_variance(r, lam)
        forecast = lam * var + (1.0 - lam) * r**2
        out[0][rows, a] = annualise(forecast, per_year)
        c1 = np.concatenate(([0.0], np.cumsum(r)))
        c2 = np.concatenate(([0.0], np.cumsum(r * r)))
        end = np.arange(1, r.size + 1)
        start = np.maximum(end - lookback, 0)
        n = end - start
        with np.errstate(invalid="ignore", divide="ignore"):
            mean = (c1[end] - c1[start]) / n
            sample = (c2[end] - c2[start] - n * mean**2) / (n - 1)
        out[1][rows, a] = annualise(np.maximum(sample, 0.0), per_year)
        window = STRESSED_WINDOW
        stressed = np.maximum(_expanding_variance(c1, c2, end), 0.0)  # the whole sample while it is shorter
        if r.size >= window:
            w_end = np.arange(window, r.size + 1)
            w_mean = (c1[w_end] - c1[w_end - window]) / window
            w_var = np.maximum((c2[w_end] - c2[w_end - window] - window * w_mean**2) / (window - 1), 0.0)
            stressed[window - 1 :] = np.maximum.accumulate(w_var)
        out[2][rows, a] = annualise(stressed, per_year)
        for series in out:  # the first valid close has no return yet: forward-fill nothing, leave NaN
            series[: rows[0], a] = math.nan
    return VolPath(*out)


def _expanding_variance(c1: FloatArray, c2: FloatArray, end: NDArray[np.int64]) -> FloatArray:
    """Sample variance (ddof 1) of the first `end` returns, from cumulative sums (NaN for a single return)."""
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = c1[end] / end
        return np.asarray((c2[end] - end * mean**2) / (end - 1), dtype=np.float64)


def reference_book(assets: tuple[str, ...], prices: FloatArray, notional: float = NOTIONAL) -> Book:
    """One account per asset and side, `long <A>` and `short <A>`, each a perpetual of `notional` USD."""
    instruments = tuple(Instrument(id=f"{a}-PERP", kind="perp", underlying=a) for a in assets)
    n = 2 * len(assets)
    quantity = np.repeat(notional / prices, 2) * np.tile([1.0, -1.0], len(assets))
    return Book(
        instruments=instruments,
        account_ids=np.array([f"{side} {a}" for a in assets for side in ("long", "short")], dtype=object),
        pos_offsets=np.arange(n + 1, dtype=np.int64),
        pos_instrument=np.repeat(np.arange(len(assets), dtype=np.int32), 2),
        pos_quantity=quantity,
        pos_entry=np.repeat(prices, 2),
        collateral_assets=(),
        col_offsets=np.zeros(n + 1, dtype=np.int64),
        col_asset=np.zeros(0, dtype=np.int32),
        col_amount=np.zeros(0),
        risk_tier=np.full(n, math.nan),
        mode=np.full(n, CROSS, dtype=np.int8),
        parent=np.full(n, None, dtype=object),
    )


@dataclass(frozen=True, eq=False)
class HistoryBacktest:
    """Every model's requirement on every reference portfolio at every backtested date, the realised losses,
    and the tests on them. requirement[model] is (P, T) IM; loss (P, T); dates (T,) UTC; prices (T, A)."""

    assets: tuple[str, ...]
    portfolios: tuple[str, ...]
    models: tuple[str, ...]
    dates: NDArray[np.datetime64]
    prices: FloatArray
    requirement: dict[str, FloatArray]
    loss: FloatArray
    notional: float
    mpor_steps: int
    coverage: float
    results: dict[str, dict[str, BacktestResult]]
    cyclicality: dict[str, dict[str, ProcyclicalityResult]]
    maintenance: dict[str, FloatArray]
    mm_loss: FloatArray
    mm_steps: NDArray[np.int64]
    mm_coverage: float
    mm_results: dict[str, dict[str, BacktestResult]]

    def summary(self) -> dict[str, Any]:
        """JSON-ready: per model and portfolio, the coverage tests, the procyclicality measures and the
        capital locked (mean IM / notional)."""
        return {
            "schema": "solvent.backtest/1",
            "assets": list(self.assets),
            "first_date": f"{self.dates[0].astype('datetime64[s]')}Z" if self.dates.size else None,
            "last_date": f"{self.dates[-1].astype('datetime64[s]')}Z" if self.dates.size else None,
            "observations": int(self.dates.size),
            "notional": self.notional,
            "mpor_steps": self.mpor_steps,
            "coverage": self.coverage,
            "models": {
                model: {
                    portfolio: {
                        "capital_locked": float(np.mean(self.requirement[model][p]) / self.notional),
                        "backtest": self.results[model][portfolio].to_dict(),
                        "procyclicality": self.cyclicality[model][portfolio].to_dict(),
                        "maintenance": {
                            "capital_locked": float(np.mean(self.maintenance[model][p]) / self.notional),
                            "horizon_steps": int(self.mm_steps[p]),
                            "coverage": self.mm_coverage,
                            "backtest": self.mm_results[model][portfolio].to_dict(),
                        },
                    }
                    for p, portfolio in enumerate(self.portfolios)
                }
                for model in self.models
            },
        }


def run_backtest(
    history: PriceHistory,
    models: list[ModelName],
    params: MarginParams,
    *,
    assets: tuple[str, ...] | None = None,
    notional: float = NOTIONAL,
    warmup: int = WARMUP_STEPS,
    progress: Callable[[int, int], None] | None = None,
    source: str = "<history>",
    baselines: BaselineParams | None = None,
) -> HistoryBacktest:
    """Backtest `models` on `history` (see the module docstring). `assets` (default every asset of the
    history) must be priced on every backtested date: the dates run from the first at which all of them have
    `warmup` returns to the last with a close h steps later. `progress(done, total)` is called per date.
    `baselines`: the venue rules' parameters (default `BaselineParams()`)."""
    assets = history.assets if assets is None else assets
    missing = [a for a in assets if a not in history.assets]
    if missing:
        raise InputError(source, f"column {missing[0]}", "not in the history")
    columns = [history.assets.index(a) for a in assets]
    closes = history.closes[:, columns]
    paths = vol_path(history, params)
    per_day = steps_per_day(history)
    h = max(1, round(params.mpor_days * per_day))
    mm_steps = _liquidation_steps(assets, notional, params, per_day)
    reach = max(h, int(mm_steps.max()))
    priced: NDArray[np.bool_] = np.asarray(
        np.isfinite(closes).all(axis=1) & np.isfinite(paths.vol[:, columns]).all(axis=1)
    )
    first = int(np.argmax(priced)) + warmup if priced.any() else closes.shape[0]
    dates = [
        t
        for t in range(first, closes.shape[0] - reach)
        if priced[t] and np.isfinite(closes[t + h]).all() and np.isfinite(closes[t + mm_steps]).all()
    ]
    if len(dates) < 30:
        raise InputError(source, "closes", f"{len(dates)} dates to backtest after the warm-up; at least 30 needed")
    n_portfolios = 2 * len(assets)
    requirement: dict[str, FloatArray] = {m: np.empty((n_portfolios, len(dates))) for m in models}
    # The models that read the parameters once more without the anti-procyclicality tool: its cost.
    with_tool = [m for m in models if m in ("multi", "vol_only")] if params.volatility.apc_mode != "none" else []
    no_tool = msgspec.structs.replace(params, volatility=msgspec.structs.replace(params.volatility, apc_mode="none"))
    no_tool_paths = vol_path(history, no_tool)
    without: dict[str, FloatArray] = {m: np.empty((n_portfolios, len(dates))) for m in with_tool}
    without_mm: dict[str, FloatArray] = {m: np.empty((n_portfolios, len(dates))) for m in with_tool}
    loss = np.empty((n_portfolios, len(dates)))
    maintenance: dict[str, FloatArray] = {m: np.empty((n_portfolios, len(dates))) for m in models}
    mm_loss = np.empty((n_portfolios, len(dates)))
    sign = np.tile([1.0, -1.0], len(assets))
    column = np.repeat(np.arange(len(assets)), 2)
    for k, t in enumerate(dates):
        market = _snapshot(history, assets, columns, paths, t)
        book = reference_book(assets, closes[t], notional)
        past = PriceHistory(history.timestamps[: t + 1], history.assets, history.closes[: t + 1])
        for m in models:
            required = model_margin(m, book, market, params, past, baselines)
            requirement[m][:, k] = required.im
            maintenance[m][:, k] = required.mm
        if with_tool:
            bare = _snapshot(history, assets, columns, no_tool_paths, t)
            for m in with_tool:
                bare_required = model_margin(m, book, bare, no_tool, past)
                without[m][:, k] = bare_required.im
                without_mm[m][:, k] = bare_required.mm
        moved = closes[t + h] / closes[t] - 1.0
        loss[:, k] = -notional * np.repeat(moved, 2) * sign
        mm_loss[:, k] = -notional * (closes[t + mm_steps, column] / closes[t, column] - 1.0) * sign
        if progress is not None:
            progress(k + 1, len(dates))
    volatility = params.volatility
    if "multi" in without and volatility.apc_mode == "buffer" and volatility.apc_buffer_release:
        requirement["multi"] = buffer_path(without["multi"], 1.0 / per_day, volatility)[0]
        charged, maintenance_params = requirement["multi"], params.maintenance
        if maintenance_params.mode == "fraction":  # MM follows the charged IM
            maintenance["multi"] = maintenance_params.fraction * charged
        elif maintenance_params.mode == "liquidation":
            # The floor follows the charged IM; the horizon part (market risk x sqrt(H / mpor) + close-out) is
            # that of the margin without the tool, whose MM shows it wherever it is above its floor.
            maintenance["multi"] = np.minimum(
                np.maximum(maintenance_params.floor * charged, without_mm["multi"]), charged
            )
    portfolios = tuple(str(name) for name in reference_book(assets, closes[dates[0]], notional).account_ids)
    results: dict[str, dict[str, BacktestResult]] = {
        m: {p: backtest(requirement[m][i], loss[i], params.confidence) for i, p in enumerate(portfolios)}
        for m in models
    }
    cyclicality: dict[str, dict[str, ProcyclicalityResult]] = {
        m: {
            p: procyclicality(requirement[m][i], without_tool=without[m][i] if m in without else None)
            for i, p in enumerate(portfolios)
        }
        for m in models
    }
    mm_coverage = params.maintenance.confidence if params.maintenance.mode == "model" else params.confidence
    mm_results: dict[str, dict[str, BacktestResult]] = {
        m: {p: backtest(maintenance[m][i], mm_loss[i], mm_coverage) for i, p in enumerate(portfolios)} for m in models
    }
    return HistoryBacktest(
        assets=assets,
        portfolios=portfolios,
        models=tuple(models),
        dates=history.timestamps[dates],
        prices=closes[dates],
        requirement=requirement,
        loss=loss,
        notional=notional,
        mpor_steps=h,
        coverage=params.confidence,
        results=results,
        cyclicality=cyclicality,
        maintenance=maintenance,
        mm_loss=mm_loss,
        mm_steps=mm_steps,
        mm_coverage=mm_coverage,
        mm_results=mm_results,
    )


def _liquidation_steps(
    assets: tuple[str, ...], notional: float, params: MarginParams, per_day: float
) -> NDArray[np.int64]:
    """(P,) history steps of each reference portfolio's liquidation horizon: ceil(H / step), at least 1 (the
    snapshots carry no depth, so the slices come from the share and notional caps)."""
    liquidation = params.liquidation
    exposure = np.diag(np.repeat(notional, 2 * len(assets)) * np.tile([1.0, -1.0], len(assets)))
    slices = slices_needed(exposure, liquidation.max_share_per_slice, liquidation.max_notional_per_slice)
    seconds = liquidation_horizon_seconds(slices, params)
    return np.maximum(np.ceil(seconds * per_day / SECONDS_PER_DAY - 1e-9), 1).astype(np.int64)


def _snapshot(
    history: PriceHistory, assets: tuple[str, ...], columns: list[int], paths: VolPath, t: int
) -> MarketSnapshot:
    """The market at close t: prices and the causal volatilities (no implied vol, no depth, no oracle)."""
    time = datetime.fromtimestamp(int(history.timestamps[t].astype("datetime64[s]").astype(np.int64)), tz=UTC)
    quotes = {
        name: AssetQuote(
            price=float(history.closes[t, c]),
            vol=float(paths.vol[t, c]),
            vol_long=_finite_or_none(paths.vol_long[t, c]),
            vol_stressed=_finite_or_none(paths.vol_stressed[t, c]),
        )
        for name, c in zip(assets, columns, strict=True)
    }
    return MarketSnapshot(schema=MARKET_SCHEMA, time=time, assets=quotes)


def _finite_or_none(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None
