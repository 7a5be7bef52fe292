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

As a CCP runs it (EMIR RTS 153/2013 art. 49): `start`/`end` restrict the backtested dates to a window while the
history before it still warms up the estimators (the volatility path is causal, so a window's numbers are
those of the whole run on its dates); the h-step windows are tested without overlap by default
(`lab.backtest.window_backtest`); beside the end-of-window loss, the *path* loss is the worst point within
the MPOR, max over s = 1..h of -q_t (P_{t+s} - P_t), backtested the same way; the Basel zone is also rolled
over the last 250 observations; `date_rows` lays every date out (price, IM and MM per model and side, both
losses, exceptions, whether the date is tested, the rolling zone) for `write_dates` (CSV and Parquet).

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
from solvent.lab.backtest import BacktestResult, Windows, rolling_zones, sample_dates, window_backtest
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
    windows: Windows
    window: tuple[str | None, str | None]
    path_loss: FloatArray
    path_results: dict[str, dict[str, BacktestResult]]

    @property
    def tested(self) -> NDArray[np.int64]:
        """Indices of the dates the IM backtest tests (`lab.backtest.sample_dates`)."""
        return sample_dates(self.dates.size, self.mpor_steps, self.windows)

    def exception_dates(self, model: str, portfolio: int, *, path: bool = False) -> list[str]:
        """The tested dates on which `portfolio`'s end-of-window (or, `path`, worst-point) loss exceeded IM."""
        rows = self.tested
        loss = (self.path_loss if path else self.loss)[portfolio, rows]
        hit = rows[loss > self.requirement[model][portfolio, rows]]
        return [_iso(d) for d in self.dates[hit]]

    def rolling_zone(self, model: str, portfolio: int, *, path: bool = False) -> list[str | None]:
        """(tested dates,) the Basel zone of the last 250 tested dates after each (None before 250)."""
        rows = self.tested
        loss = (self.path_loss if path else self.loss)[portfolio, rows]
        hits = loss > self.requirement[model][portfolio, rows]
        return list(rolling_zones(hits, self.coverage, self.mpor_steps, self.windows))

    def summary(self) -> dict[str, Any]:
        """JSON-ready: per model and portfolio, the coverage tests (end-of-window and path loss), the exception
        dates, the zone of the last 250 tested dates, the procyclicality measures and the capital locked
        (mean IM / notional)."""
        return {
            "schema": "solvent.backtest/1",
            "assets": list(self.assets),
            "first_date": _iso(self.dates[0]) if self.dates.size else None,
            "last_date": _iso(self.dates[-1]) if self.dates.size else None,
            "window": {"from": self.window[0], "to": self.window[1]},
            "observations": int(self.dates.size),
            "windows": self.windows,
            "tested_observations": int(self.tested.size),
            "notional": self.notional,
            "mpor_steps": self.mpor_steps,
            "coverage": self.coverage,
            "models": {
                model: {
                    portfolio: {
                        "capital_locked": float(np.mean(self.requirement[model][p]) / self.notional),
                        "backtest": self.results[model][portfolio].to_dict(),
                        "exception_dates": self.exception_dates(model, p),
                        "zone_last_250": self.rolling_zone(model, p)[-1],
                        "path": {
                            "backtest": self.path_results[model][portfolio].to_dict(),
                            "exception_dates": self.exception_dates(model, p, path=True),
                            "zone_last_250": self.rolling_zone(model, p, path=True)[-1],
                        },
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
    start: np.datetime64 | None = None,
    end: np.datetime64 | None = None,
    windows: Windows = "independent",
    vol_scale: FloatArray | None = None,
) -> HistoryBacktest:
    """Backtest `models` on `history` (see the module docstring). `assets` (default every asset of the
    history) must be priced on every backtested date: the dates run from the first at which all of them have
    `warmup` returns (and not before `start`) to the last with a close h steps later (and that close not after
    `end`). `windows`: how the h-step losses are sampled (`lab.backtest.sample_dates`). `progress(done,
    total)` is called per date. `baselines`: the venue rules' parameters (default `BaselineParams()`).
    `vol_scale` (T,): a multiplier on every asset's fast volatility at each close of `history` (an external
    signal's, lab.toxicity_backtest); None: 1."""
    assets = history.assets if assets is None else assets
    missing = [a for a in assets if a not in history.assets]
    if missing:
        raise InputError(source, f"column {missing[0]}", "not in the history")
    columns = [history.assets.index(a) for a in assets]
    closes = history.closes[:, columns]
    paths = _scaled(vol_path(history, params), vol_scale)
    per_day = steps_per_day(history)
    h = max(1, round(params.mpor_days * per_day))
    mm_steps = _liquidation_steps(assets, notional, params, per_day)
    reach = max(h, int(mm_steps.max()))
    priced: NDArray[np.bool_] = np.asarray(
        np.isfinite(closes).all(axis=1) & np.isfinite(paths.vol[:, columns]).all(axis=1)
    )
    dates = window_rows(history.timestamps, priced, closes, reach, warmup, start, end, source)
    n_portfolios = 2 * len(assets)
    requirement: dict[str, FloatArray] = {m: np.empty((n_portfolios, len(dates))) for m in models}
    # The models that read the parameters once more without the anti-procyclicality tool: its cost.
    with_tool = [m for m in models if m in ("multi", "vol_only")] if params.volatility.apc_mode != "none" else []
    no_tool = msgspec.structs.replace(params, volatility=msgspec.structs.replace(params.volatility, apc_mode="none"))
    no_tool_paths = _scaled(vol_path(history, no_tool), vol_scale)
    without: dict[str, FloatArray] = {m: np.empty((n_portfolios, len(dates))) for m in with_tool}
    without_mm: dict[str, FloatArray] = {m: np.empty((n_portfolios, len(dates))) for m in with_tool}
    maintenance: dict[str, FloatArray] = {m: np.empty((n_portfolios, len(dates))) for m in models}
    rows = np.asarray(dates, dtype=np.int64)
    column = np.repeat(np.arange(len(assets)), 2)
    exposure = notional * np.tile([1.0, -1.0], len(assets))[:, np.newaxis]  # (P, 1) signed notional
    # (h, P, T) the loss of each portfolio s = 1..h steps after each date: its last is the end-of-window loss.
    moves = np.stack([closes[rows + s][:, column].T / closes[rows][:, column].T - 1.0 for s in range(1, h + 1)])
    loss = -exposure * moves[-1]
    path_loss = np.max(-exposure * moves, axis=0)
    mm_close = closes[rows[np.newaxis, :] + mm_steps[:, np.newaxis], column[:, np.newaxis]]
    mm_loss = -exposure * (mm_close / closes[rows][:, column].T - 1.0)
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

    def tests(
        required: dict[str, FloatArray], losses: FloatArray, coverage: float, steps: NDArray[np.int64]
    ) -> dict[str, dict[str, BacktestResult]]:
        return {
            m: {
                p: window_backtest(required[m][i], losses[i], coverage, int(steps[i]), windows=windows)
                for i, p in enumerate(portfolios)
            }
            for m in models
        }

    im_steps = np.full(n_portfolios, h, dtype=np.int64)
    results = tests(requirement, loss, params.confidence, im_steps)
    path_results = tests(requirement, path_loss, params.confidence, im_steps)
    cyclicality: dict[str, dict[str, ProcyclicalityResult]] = {
        m: {
            p: procyclicality(requirement[m][i], without_tool=without[m][i] if m in without else None)
            for i, p in enumerate(portfolios)
        }
        for m in models
    }
    mm_coverage = params.maintenance.confidence if params.maintenance.mode == "model" else params.confidence
    mm_results = tests(maintenance, mm_loss, mm_coverage, mm_steps)
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
        windows=windows,
        window=(None if start is None else _iso(start), None if end is None else _iso(end)),
        path_loss=path_loss,
        path_results=path_results,
    )


def _scaled(paths: VolPath, scale: FloatArray | None) -> VolPath:
    """The paths with the fast volatility multiplied by `scale` (T,) (None: unchanged)."""
    if scale is None:
        return paths
    return VolPath(
        vol=paths.vol * np.asarray(scale, dtype=np.float64)[:, np.newaxis],
        vol_long=paths.vol_long,
        vol_stressed=paths.vol_stressed,
    )


def window_rows(
    timestamps: NDArray[np.datetime64],
    priced: NDArray[np.bool_],
    closes: FloatArray,
    reach: int,
    warmup: int,
    start: np.datetime64 | None,
    end: np.datetime64 | None,
    source: str,
) -> list[int]:
    """The rows t a backtest tests: `priced` (T,) at t, at least `warmup` rows after the first priced one and
    not before `start`, every close (T, A) of the `reach` steps after t finite and the last of them not after
    `end`. Fewer than 30 is an InputError."""
    first = int(np.argmax(priced)) + warmup if priced.any() else closes.shape[0]
    if start is not None:
        first = max(first, int(np.searchsorted(timestamps, start, side="left")))
    stop = closes.shape[0] if end is None else int(np.searchsorted(timestamps, end, side="right"))
    rows = [t for t in range(first, stop - reach) if priced[t] and np.isfinite(closes[t + 1 : t + reach + 1]).all()]
    if len(rows) < 30:
        window = "" if start is None and end is None else f" in the window {_iso(start)} to {_iso(end)}"
        message = f"{len(rows)} dates to backtest after the warm-up{window}; at least 30 needed"
        raise InputError(source, "closes", message)
    return rows


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


def _iso(date: np.datetime64 | None) -> str:
    """`date` as ISO-8601 UTC in whole seconds (``...Z``); "" for None."""
    return "" if date is None else f"{np.asarray(date).astype('datetime64[s]')}Z"


def _finite_or_none(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None
