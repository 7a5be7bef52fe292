"""The "dirty" backtest: real account books margined on every date of a price history, against their P&L.

The clean backtest (`lab.margin_backtest`) margins reference perpetuals; a CCP also backtests its members'
actual portfolios (EMIR RTS 153/2013 art. 49(1)). Here every account of a portfolio file (the demo venue's,
say), options included, is margined at each date t of the history by each model, and its IM at t is set
against the P&L its positions make over the MPOR that follows.

The book and the market file are held as they are (the constant portfolio of a hypothetical backtest);
the history supplies the state of the market and its moves, scale-free, so that a book priced in 2026 can be
run over 2015 to 2020:

- **the market at t** is the market file with each history asset's volatilities (`vol`, `vol_long`,
  `vol_stressed`) replaced by their causal values at t (`margin_backtest.vol_path`); prices, implied vols,
  surfaces, depth and the time stay the file's (oracle `sources` and `twap` are dropped: the history gives
  one price);
- **the P&L over the MPOR** revalues the positions (linear P&L and options' Black-76 premium,
  `engine.equity.position_value`) at the market moved s = 1..h steps along the history: every history
  asset's price times P_{t+s} / P_t, the time s steps later (options' time value decays), implied vols and
  everything else held (sticky strike). The loss is the fall of the positions' value (collateral moves are
  not counted: IM covers the positions), at the end of the MPOR and at its worst point within it.

Exceptions, windows and tests as in the clean backtest, per account and pooled over all accounts with
positions (the pooled count is not binomial: accounts on the same market breach together, so it is
reported as a rate, untested). An account holding an instrument on an asset the history does not price is
margined but not backtested (`accounts_with_positions` counts the tested ones); a book none of whose
underlyings the history prices is an InputError.

A Python loop over dates, never over accounts: each model margins the whole book at once.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import msgspec
import numpy as np
from numpy.typing import NDArray

from solvent.baselines import BaselineParams
from solvent.baselines.book import option_unit_values
from solvent.engine.book import Book
from solvent.engine.equity import position_value
from solvent.errors import InputError
from solvent.formats.schemas import MarketSnapshot
from solvent.lab.backtest import BacktestResult, Windows, sample_dates, window_backtest
from solvent.lab.margin_backtest import WARMUP_STEPS, VolPath, steps_per_day, vol_path, window_rows
from solvent.lab.models import ModelName, model_margin
from solvent.market.history import PriceHistory
from solvent.market.state import build_market_state
from solvent.params import MarginParams

FloatArray = NDArray[np.float64]


@dataclass(frozen=True, eq=False)
class PortfolioBacktest:
    """Each model's IM (N, T) of every account at every date, the losses (N, T) over the MPOR (end and
    worst point), and the tests per account with positions (`tested_accounts`, indices into `accounts`)."""

    accounts: tuple[str, ...]
    models: tuple[str, ...]
    dates: NDArray[np.datetime64]
    requirement: dict[str, FloatArray]
    loss: FloatArray
    path_loss: FloatArray
    mpor_steps: int
    coverage: float
    windows: Windows
    tested_accounts: NDArray[np.int64]
    results: dict[str, dict[str, BacktestResult]]

    def exceptions(self, model: str, *, path: bool = False) -> NDArray[np.bool_]:
        """(N, T) True where the account's loss exceeded its IM (on every date, tested or not)."""
        hits: NDArray[np.bool_] = (self.path_loss if path else self.loss) > self.requirement[model]
        return hits

    def summary(self) -> dict[str, Any]:
        """JSON-ready: per model, the mean total IM (USD), the pooled exception rates, the accounts rejected
        and in each zone, the largest shortfall (path loss - IM), and the ten accounts with the most exceptions."""
        rows = sample_dates(self.dates.size, self.mpor_steps, self.windows)
        accounts = self.tested_accounts
        models: dict[str, Any] = {}
        for model in self.models:
            per_account = self.results[model]
            hits = self.exceptions(model)[np.ix_(accounts, rows)]
            path_hits = self.exceptions(model, path=True)[np.ix_(accounts, rows)]
            shortfall = (self.path_loss - self.requirement[model])[np.ix_(accounts, rows)]
            worst = np.unravel_index(int(np.argmax(shortfall)), shortfall.shape) if shortfall.size else None
            ranked = sorted(per_account.items(), key=lambda item: -item[1].exceptions)[:10]
            models[model] = {
                "mean_total_im": float(self.requirement[model][accounts].sum(axis=0).mean()),
                "observations": int(hits.size),
                "exceptions": int(hits.sum()),
                "exception_rate": float(hits.mean()) if hits.size else None,
                "path_exceptions": int(path_hits.sum()),
                "path_exception_rate": float(path_hits.mean()) if hits.size else None,
                "accounts_rejected": sum(r.kupiec.reject for r in per_account.values()),
                "zones": {z: sum(r.zone == z for r in per_account.values()) for z in ("green", "yellow", "red")},
                "largest_shortfall": None
                if worst is None
                else {
                    "account": self.accounts[int(accounts[worst[0]])],
                    "date": f"{self.dates[rows[worst[1]]].astype('datetime64[s]')}Z",
                    "usd": float(shortfall[worst]),
                },
                "most_exceptions": {
                    name: {
                        "exceptions": r.exceptions,
                        "observations": r.observations,
                        "kupiec_p_value": r.kupiec.p_value,
                        "zone": r.zone,
                    }
                    for name, r in ranked
                },
            }
        return {
            "schema": "solvent.portfolio-backtest/1",
            "first_date": f"{self.dates[0].astype('datetime64[s]')}Z",
            "last_date": f"{self.dates[-1].astype('datetime64[s]')}Z",
            "observations": int(self.dates.size),
            "windows": self.windows,
            "mpor_steps": self.mpor_steps,
            "coverage": self.coverage,
            "accounts": len(self.accounts),
            "accounts_with_positions": int(accounts.size),
            "models": models,
        }


def run_portfolio_backtest(
    book: Book,
    market: MarketSnapshot,
    history: PriceHistory,
    models: list[ModelName],
    params: MarginParams,
    *,
    baselines: BaselineParams | None = None,
    start: np.datetime64 | None = None,
    end: np.datetime64 | None = None,
    windows: Windows = "independent",
    warmup: int = WARMUP_STEPS,
    source: str = "<portfolio>",
    market_source: str = "<market>",
    progress: Callable[[int, int], None] | None = None,
) -> PortfolioBacktest:
    """Backtest `models` on every account of `book` along `history` (module docstring). The dates are those
    at which every history asset the book trades has `warmup` returns, within [start, end] as in
    `margin_backtest.run_backtest`."""
    underlying = [i.underlying for i in book.instruments]
    traded = sorted({a for a in underlying if a in history.assets})
    if not traded:
        raise InputError(source, "instruments", f"no underlying is in the price history ({', '.join(history.assets)})")
    unpriced = np.array([a not in history.assets for a in underlying], dtype=np.bool_)
    holds_unpriced = np.bincount(
        book.position_account(), weights=unpriced[book.pos_instrument], minlength=book.n_accounts
    )
    columns = [history.assets.index(a) for a in traded]
    closes = history.closes[:, columns]
    paths = vol_path(history, params)
    per_day = steps_per_day(history)
    h = max(1, round(params.mpor_days * per_day))
    priced: NDArray[np.bool_] = np.asarray(
        np.isfinite(closes).all(axis=1) & np.isfinite(paths.vol[:, columns]).all(axis=1)
    )
    dates = window_rows(history.timestamps, priced, closes, h, warmup, start, end, source)
    n, n_dates = book.n_accounts, len(dates)
    requirement: dict[str, FloatArray] = {m: np.empty((n, n_dates)) for m in models}
    moves = np.empty((h, n, n_dates))
    time_floor = params.volatility.time_floor_days / params.days_per_year
    instruments = list(book.instruments)
    for k, t in enumerate(dates):
        now = _market_at(market, traded, columns, paths, t, market_source)
        past = PriceHistory(history.timestamps[: t + 1], history.assets, history.closes[: t + 1])
        for m in models:
            requirement[m][:, k] = model_margin(m, book, now, params, past, baselines).im
        state = build_market_state(instruments, now, params)
        value = position_value(book, state, option_unit_values(state, time_floor))
        for s in range(1, h + 1):
            moved = _moved(now, traded, closes[t + s] / closes[t], timedelta(days=s / per_day))
            later = build_market_state(instruments, moved, params)
            moves[s - 1, :, k] = value - position_value(book, later, option_unit_values(later, time_floor))
        if progress is not None:
            progress(k + 1, n_dates)
    loss, path_loss = moves[-1], moves.max(axis=0)
    with_positions = np.flatnonzero((np.diff(book.pos_offsets) > 0) & (holds_unpriced == 0))
    names = tuple(str(a) for a in book.account_ids)
    results: dict[str, dict[str, BacktestResult]] = {
        m: {
            names[i]: window_backtest(requirement[m][i], loss[i], params.confidence, h, windows=windows)
            for i in with_positions
        }
        for m in models
    }
    return PortfolioBacktest(
        accounts=names,
        models=tuple(models),
        dates=history.timestamps[dates],
        requirement=requirement,
        loss=loss,
        path_loss=path_loss,
        mpor_steps=h,
        coverage=params.confidence,
        windows=windows,
        tested_accounts=with_positions.astype(np.int64),
        results=results,
    )


def _market_at(
    market: MarketSnapshot, traded: list[str], columns: list[int], paths: VolPath, t: int, source: str
) -> MarketSnapshot:
    """The market file with the traded assets' volatilities at close t of the history."""
    assets = dict(market.assets)
    for name, c in zip(traded, columns, strict=True):
        quote = assets.get(name)
        if quote is None:
            raise InputError(source, f"assets.{name}", "the portfolio trades it but the market does not quote it")
        assets[name] = msgspec.structs.replace(
            quote,
            vol=float(paths.vol[t, c]),
            vol_long=_finite_or_none(paths.vol_long[t, c]),
            vol_stressed=_finite_or_none(paths.vol_stressed[t, c]),
            sources=[],
            twap=None,
        )
    return msgspec.structs.replace(market, assets=assets)


def _moved(market: MarketSnapshot, traded: list[str], ratio: FloatArray, later: timedelta) -> MarketSnapshot:
    """`market` with each traded asset's price times its `ratio` and the time `later`."""
    assets = dict(market.assets)
    for name, r in zip(traded, ratio, strict=True):
        assets[name] = msgspec.structs.replace(assets[name], price=assets[name].price * float(r))
    return msgspec.structs.replace(market, assets=assets, time=market.time + later)


def _finite_or_none(value: float) -> float | None:
    return float(value) if math.isfinite(value) else None
