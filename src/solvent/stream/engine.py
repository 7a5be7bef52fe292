"""The deterministic streaming core: feed records in, account state and events out.

Single-threaded and deterministic (STYLE.md 9): the feed's own times are the clock, the sink is passed in,
and the state is written before a batch's events are published. Records are applied in batches — one per
record, or every record whose time falls in the same `block_ms` window — and after each batch only the
accounts it can have changed are re-margined: those exposed to an asset whose price, depth or oracle moved
(`AccountStore.exposed`) and those that traded or moved collateral. Risk arrays
are refreshed only for the assets that moved (`refresh_risk_arrays`). A volatility or parameter change
starts a new epoch: scenarios are regenerated, time to expiry advances, every account is re-margined.

After re-margining, each account's status (healthy / margin call / liquidatable) and predictive flag are
compared with the last ones and every change becomes an event. Then the liquidation pass: accounts in
liquidation whose cooldown has passed get one partial slice each (`liquidation.closeout`), bankrupt ones go
through the backstop waterfall (`liquidation.waterfall`), and every account it changed is re-margined.
docs/model.md ("Streaming engine") describes the rules; docs/formats.md the feed, event and state files.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import os
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import msgspec
import numpy as np
from numpy.typing import NDArray

from solvent.baselines import BASELINE_NAMES, BaselineParams
from solvent.baselines.book import baseline_margin, option_unit_values
from solvent.engine.attribution import position_contributions
from solvent.engine.book import Book
from solvent.engine.margin import RiskContext, account_equity, maintenance_params, margin_accounts
from solvent.engine.results import MarginResult
from solvent.engine.riskarrays import build_risk_arrays, refresh_risk_arrays
from solvent.engine.whatif import (
    Decision,
    PreTradeChecker,
    account_greeks,
    account_scenario_pnl,
    concentration_thresholds,
    off_market,
)
from solvent.errors import InputError, ModelError
from solvent.factors.basis import account_books
from solvent.factors.concentration import tier_multiplier
from solvent.factors.haircuts import require_collateral_vols
from solvent.formats.schemas import MarketSnapshot
from solvent.liquidation.closeout import CloseOutBook, CloseOutMarket, CloseOutPlan, closeout_cost, plan_closeout
from solvent.liquidation.predictive import SECONDS_PER_YEAR, VelocityTracker, book_breach, scenario_correlation
from solvent.liquidation.waterfall import WaterfallResult, run_waterfall
from solvent.market.history import PriceHistory
from solvent.market.oracle import OracleStatus
from solvent.market.state import OPTION, MarketState, build_market_state
from solvent.params import MarginParams
from solvent.scenarios import generate_scenarios
from solvent.scenarios.base import ScenarioSet
from solvent.stream import events as ev
from solvent.stream.feed import Deposit, DepthChange, FeedRecord, Fill, Quote, VolChange, Withdrawal
from solvent.stream.market import LiveMarket
from solvent.stream.screen import HealthScreen, Holdings, Reach, Standing, diffusion_reach, flag_reach
from solvent.stream.store import CASH, AccountStore

FloatArray = NDArray[np.float64]
IndexArray = NDArray[np.int64]
BoolArray = NDArray[np.bool_]

HEALTHY, MARGIN_CALL, LIQUIDATABLE = 0, 1, 2
#: Rounding, USD: a settled bankrupt account's residue is booked against the insurance fund, and a shortfall
#: against IM or MM this small raises no call.
DUST_USD = 1e-6

Sink = Callable[[Sequence[ev.Event]], None]


def _seconds(time: datetime) -> float:
    return time.timestamp()


def params_digest(params: MarginParams) -> str:
    """SHA-256 of the parameters' canonical JSON: what `ParametersChanged` reports."""
    return hashlib.sha256(msgspec.json.encode(params)).hexdigest()


def _supported(params: MarginParams, where: str) -> None:
    """Refuse settings the streaming engine cannot yet honour (they need the whole venue's open interest)."""
    conc = params.concentration
    if conc.enabled and (conc.oi_share is not None or (conc.form == "ramp" and conc.ramp_driver != "account")):
        raise ModelError(
            f"{where}: concentration driven by the venue's open interest (oi_share, or a ramp on open_interest) "
            "is not supported by the streaming engine yet"
        )


@dataclass
class Figures:
    """The last margin figures of every account (N,), and its liquidation bookkeeping."""

    im: FloatArray
    mm: FloatArray
    equity: FloatArray
    status: NDArray[np.int8]
    flagged: NDArray[np.bool_]
    breach: FloatArray
    loss_vol: FloatArray
    in_liquidation: NDArray[np.bool_]
    cooldown_until: FloatArray
    first_flag: FloatArray
    first_liquidatable: FloatArray

    @classmethod
    def empty(cls, n: int) -> Figures:
        """Zero figures for n accounts (first_* are NaN: never)."""
        return cls(
            im=np.zeros(n),
            mm=np.zeros(n),
            equity=np.zeros(n),
            status=np.zeros(n, dtype=np.int8),
            flagged=np.zeros(n, dtype=np.bool_),
            breach=np.zeros(n),
            loss_vol=np.zeros(n),
            in_liquidation=np.zeros(n, dtype=np.bool_),
            cooldown_until=np.full(n, -math.inf),
            first_flag=np.full(n, math.nan),
            first_liquidatable=np.full(n, math.nan),
        )


@dataclass
class Totals:
    """Running totals of a stream (the summary's figures)."""

    records: int = 0
    batches: int = 0
    rejected: int = 0
    liquidations: int = 0
    liquidated_notional: float = 0.0
    fees_to_fund: float = 0.0
    fund_paid: float = 0.0
    adl_fills: int = 0
    socialised: float = 0.0
    unresolved: float = 0.0
    remargined: int = 0  # account re-margins, all batches together (what the health screen saves)
    batch_ms: list[float] = field(default_factory=list)


class StreamEngine:
    """Account state and margin figures kept current by a feed. Build with `start` or `load`.

    `margin_calls=False`: the status has no margin call (an account is healthy down to MM, then liquidatable:
    IM gates new risk only, as on a perpetual DEX); no `MarginCallIssued`. `reflag=False`: each account's early
    flag is published once, the first time it is raised; after that the health screen stops watching it and its
    stored flag dates from the account's last re-margin (`what_if` margins a screened account afresh). Not with
    `predictive.action` "deleverage", whose flag sizes liquidations. Both are saved with the stream.
    """

    def __init__(
        self,
        book: Book,
        snapshot: MarketSnapshot,
        params: MarginParams,
        *,
        history: PriceHistory | None = None,
        insurance_fund: float = 0.0,
        sink: Sink | None = None,
        portfolio_source: str = "<portfolio>",
        market_source: str = "<market>",
        model: str = "multi",
        screen: bool = False,
        baselines: BaselineParams | None = None,
        margin_calls: bool = True,
        reflag: bool = True,
    ) -> None:
        _supported(params, "params")
        if model != "multi" and model not in BASELINE_NAMES:
            raise ValueError(f"unknown margin model {model!r}: multi or one of {', '.join(BASELINE_NAMES)}")
        problem = _unwatched_deleverage(params, reflag)
        if problem is not None:
            raise ValueError(problem)
        self.model = model
        # What the stream watches: margin calls (False: healthy or liquidatable, as on a perpetual DEX) and every
        # early flag (False: each account's first only); see the class docstring.
        self.margin_calls = margin_calls
        self.reflag = reflag
        self.baselines = BaselineParams() if baselines is None else baselines  # the venue rules' parameters
        self.params = params
        self.history = history
        self.portfolio_source = portfolio_source
        self.market = LiveMarket(book.instruments, snapshot, params, market_source, portfolio_source)
        require_collateral_vols(book, self.market.state, params, market_source)
        self.store = AccountStore(book, self.market.state.asset_index, len(self.market.assets))
        self.figures = Figures.empty(book.n_accounts)
        self.totals = Totals()
        self.fund = float(insurance_fund)
        self.fund_start = self.fund
        self.sink: Sink = sink if sink is not None else (lambda events: None)
        self.next_seq = 0
        self.last_input_seq = -1
        self.last_time = snapshot.time
        self.velocity = VelocityTracker.for_params(len(self.market.assets), params.predictive)
        self.context = self._context(generate=True)
        self._checker: PreTradeChecker | None = None
        self._checker_version = -1
        self._pnl_cache: dict[int, tuple[int, FloatArray, FloatArray, FloatArray]] = {}
        self._version = 0
        self._open: list[FeedRecord] = []
        self._book_cache: tuple[tuple[int, bytes], Book] | None = None
        self._open_window = -1
        self.screen = HealthScreen(book.n_accounts, len(self.market.assets)) if screen else None
        self._cash_asset = self.market.state.asset_index.get(CASH, -1)
        self._ticks = 0  # velocity updates so far: the key of `_speed`
        self._speed_cache: tuple[int, MarketState, MarginParams, tuple[FloatArray, FloatArray, FloatArray]] | None = (
            None
        )

    # ------------------------------------------------------------------------------- construction

    @classmethod
    def start(
        cls,
        book: Book,
        snapshot: MarketSnapshot,
        params: MarginParams | None = None,
        **kwargs: Any,
    ) -> StreamEngine:
        """A new stream at the snapshot: every account margined, its opening status published as events."""
        engine = cls(book, snapshot, MarginParams() if params is None else params, **kwargs)
        everyone = np.arange(book.n_accounts, dtype=np.int64)
        events: list[ev.Event] = []
        engine._publish_oracle(np.zeros(len(engine.market.assets), dtype=np.bool_), snapshot.time, -1, events)
        engine._remargin(everyone, snapshot.time, -1, events)
        events += engine.settle(snapshot.time, -1)
        engine.sink(events)
        return engine

    def _context(
        self, generate: bool, scenarios: ScenarioSet | None = None, mm: ScenarioSet | None = None
    ) -> RiskContext:
        """Scenarios (generated at the current state, or given) and risk arrays built on them."""
        state = self.market.state
        params = self.params
        time_floor = params.volatility.time_floor_days / params.days_per_year
        if generate:
            scenarios = generate_scenarios(state, params, self.history)
            if params.maintenance.mode == "model":
                mm = generate_scenarios(state, maintenance_params(params), self.history)
        assert scenarios is not None
        floor = params.volatility.vol_floor
        arrays = build_risk_arrays(state, scenarios, time_floor, floor)
        mm_arrays = None if mm is None else build_risk_arrays(state, mm, time_floor, floor)
        return RiskContext(scenarios, arrays, scenario_correlation(scenarios, params.predictive), mm, mm_arrays)

    # --------------------------------------------------------------------------------- the loop

    def process(self, records: Iterable[FeedRecord], block_ms: int | None = None, source: str = "<feed>") -> None:
        """Apply `records` and close the last batch (`feed`, then `flush`)."""
        self.feed(records, block_ms, source)
        self.flush()

    def feed(
        self, records: Iterable[FeedRecord], block_ms: int | None = None, source: str = "<feed>", first_index: int = 0
    ) -> None:
        """Apply `records` in batches, one per record or one per `block_ms` window of their times; the last
        batch stays open for the records of a later call until `flush`. A record out of order (its `seq` not
        above the last one seen, or its `time` before it) is an InputError naming it (`records[first_index + i]`),
        before anything of it is applied."""
        for i, record in enumerate(records, start=first_index):
            if record.seq <= self.last_input_seq:
                raise InputError(
                    source, f"records[{i}].seq", f"{record.seq} does not follow sequence number {self.last_input_seq}"
                )
            if record.time < self.last_time:
                raise InputError(
                    source, f"records[{i}].time", f"{record.time.isoformat()} is before {self.last_time.isoformat()}"
                )
            self.last_input_seq = record.seq
            self.last_time = record.time
            window = record.seq if not block_ms else int(_seconds(record.time) * 1000.0) // block_ms
            if self._open and window != self._open_window:
                self.flush()
            self._open_window = window
            self._open.append(record)

    def flush(self) -> None:
        """Run the open batch, if any."""
        if self._open:
            batch, self._open = self._open, []
            self.run_batch(batch)

    def run_batch(self, records: Sequence[FeedRecord]) -> list[ev.Event]:
        """Apply one batch, re-margin what it touched, liquidate, then publish (and return) its events."""
        begin = time.perf_counter()
        events = self.apply_batch(records)
        events += self.settle(records[-1].time, records[-1].seq)
        self.totals.records += len(records)
        self.totals.batches += 1
        self.totals.batch_ms.append((time.perf_counter() - begin) * 1000.0)
        self.sink(events)
        return events

    def apply_batch(self, records: Sequence[FeedRecord]) -> list[ev.Event]:
        """The first half of a batch: apply its records, re-margin what they touched; returns the events
        (not yet published). `settle` is the second half."""
        now = records[-1].time
        cause = records[-1].seq
        events: list[ev.Event] = []
        batch = _Batch()
        was_paused = self._paused()
        for record in records:
            self._apply(record, batch, events)
        if batch.new_epoch:
            self._settle_prices(batch)
            self.market.rebuild(self.params, now)
            self.context = self._context(generate=True)
            rows = np.arange(self.store.n_accounts, dtype=np.int64)
            self._version += 1
        else:
            self._refresh(batch)
            rows = self._due(batch)
        self._publish_oracle(was_paused, now, cause, events)
        self._remargin(rows, now, cause, events)
        return events

    # --------------------------------------------------------------------------- degraded oracles

    def _paused(self) -> NDArray[np.bool_]:
        """Assets whose oracle is degraded (any status but OK): no liquidation on their price, no new risk."""
        return np.asarray(self.market.status != OracleStatus.OK)

    def _publish_oracle(self, was: NDArray[np.bool_], now: datetime, cause: int, events: list[ev.Event]) -> None:
        """`LiquidationsPaused` / `LiquidationsResumed` for every asset whose oracle left or regained OK since `was`."""
        now_paused = self._paused()
        for a in np.flatnonzero(now_paused != was).tolist():
            name = self.market.assets[a]
            if now_paused[a]:
                reason = OracleStatus(int(self.market.status[a])).name
                events.append(self._event(ev.LiquidationsPaused, now, cause, asset=name, reason=reason))
            else:
                events.append(self._event(ev.LiquidationsResumed, now, cause, asset=name, reason="OK"))

    def _exposed_to(self, row: int, assets: IndexArray) -> list[str]:
        """The assets of `assets` the account holds now: a non-zero position on one of their instruments or a
        non-zero balance of the asset itself."""
        slots = self.store.used_slots(np.array([row], dtype=np.int64))
        held = self.store.pos_quantity[slots] != 0.0
        on = set(self.store.instrument_asset[self.store.pos_instrument[slots][held]].tolist())
        for c, asset in enumerate(self.store.collateral_assets):
            if asset in self.store.asset_of and self.store.balance[row, c] != 0.0:
                on.add(self.store.asset_of[asset])
        return [self.market.assets[a] for a in assets.tolist() if a in on]

    def _due(self, batch: _Batch) -> IndexArray:
        """The accounts a batch can have changed, ascending: those exposed to an asset that moved and those that
        traded or moved collateral; with the screen, of the first only the hot ones and the screened ones whose
        band the move left (every exposed account where depth changed or sources price the asset)."""
        moved = np.fromiter(sorted(batch.moved), dtype=np.int64)
        touched = np.fromiter(sorted(batch.touched), dtype=np.int64)
        if self.screen is None:
            exposed = np.zeros(self.store.n_accounts, dtype=np.bool_)
            if moved.size:
                exposed |= self.store.exposed[moved].any(axis=0)
            exposed[touched] = True
            return np.flatnonzero(exposed).astype(np.int64)
        whole = np.array([a for a in moved.tolist() if self._moves_all(a, batch)], dtype=np.int64)
        parts = [touched]
        if whole.size:
            parts.append(np.flatnonzero(self.store.exposed[whole].any(axis=0)).astype(np.int64))
        if moved.size:
            hot = self.screen.hot_rows()
            parts.append(hot[self.store.exposed[moved[:, np.newaxis], hot].any(axis=0)])
            mask = np.zeros(len(self.market.assets), dtype=np.bool_)
            mask[moved] = True
            mask[whole] = False
            parts.append(self.screen.due(mask, self.market.state.price, self._reach()))
        parts = [part for part in parts if part.size]
        if len(parts) == 1:  # each part is ascending and unique
            return parts[0]
        return np.unique(np.concatenate(parts)) if parts else touched

    def _moves_all(self, asset: int, batch: _Batch) -> bool:
        """Whether a move of `asset` re-margins every account exposed to it even under the screen: its depth changed,
        oracle sources price it (IM moves with their uncertainty), or it is the settlement currency (its price
        moves every account's cash)."""
        return asset in batch.rescaled or asset in self.market.sources or asset == self._cash_asset

    def _speed(self) -> tuple[FloatArray, FloatArray, FloatArray]:
        """(vol, velocity, reach) (A,), (A,), (A, 4) now: the volatility the breach probability sees (the larger of
        the state's and the fast one), the price velocity, and each asset's reach (`screen.flag_reach`); kept until
        a tick, a new market state or new parameters."""
        cached = self._speed_cache
        if (
            cached is None
            or cached[0] != self._ticks
            or cached[1] is not self.market.state
            or cached[2] is not self.params
        ):
            state = self.market.state
            velocity, fast = self.velocity.rates()
            vol = np.maximum(state.vol, np.where(np.isnan(fast), 0.0, fast))
            reach = flag_reach(vol, velocity, self.params.predictive)
            cached = self._speed_cache = (self._ticks, state, self.params, (vol, velocity, reach))
        return cached[3]

    def _reach(self) -> FloatArray:
        """Each asset's reach now (`_speed`)."""
        return self._speed()[2]

    def settle(self, now: datetime, cause: int) -> list[ev.Event]:
        """The second half of a batch, at unchanged prices: one liquidation slice for every account due one,
        the backstop waterfall for the bankrupt; returns the events (not yet published)."""
        events: list[ev.Event] = []
        self._liquidate(now, cause, events)
        return events

    def _settle_prices(self, batch: _Batch) -> None:
        """Price each asset quoted since the last call once: aggregate its sources (if it has any) at the time of
        its last quote, and fold that price into its velocity."""
        if not batch.priced:
            return
        columns = sorted(batch.priced)
        for column in columns:
            if column in self.market.sources:
                self.market.aggregate_sources(column, batch.priced[column], self.params)
            self.market.follow(column, batch.priced[column], self.params)
        times = np.array([batch.priced[column] / SECONDS_PER_YEAR for column in columns])
        # One tick per asset, in column order, at the market's prices (finite and > 0: `_quote` and the source
        # aggregation see to it).
        self.velocity.fold(np.array(columns, dtype=np.int64), times, self.market.price[columns])
        self._ticks += 1
        batch.priced.clear()

    def _refresh(self, batch: _Batch) -> None:
        """Publish the market overlays and recompute the risk-array rows of the assets that moved."""
        self._settle_prices(batch)
        if not batch.dirty:
            return
        self.market.refresh()
        assets = np.fromiter(sorted(batch.dirty), dtype=np.int64)
        time_floor = self.params.volatility.time_floor_days / self.params.days_per_year
        floor = self.params.volatility.vol_floor
        refresh_risk_arrays(self.context.arrays, self.market.state, self.context.scenarios, time_floor, assets, floor)
        if self.context.mm_arrays is not None and self.context.mm_scenarios is not None:
            refresh_risk_arrays(
                self.context.mm_arrays, self.market.state, self.context.mm_scenarios, time_floor, assets, floor
            )
        batch.dirty.clear()
        self._version += 1

    # ------------------------------------------------------------------------------ feed records

    def _event(self, kind: type[ev.Event], time: datetime, cause: int, **fields: Any) -> ev.Event:
        event = kind(seq=self.next_seq, time=time, cause=cause, **fields)
        self.next_seq += 1
        return event

    def _reject(self, events: list[ev.Event], record: FeedRecord, field_name: str, reason: str) -> None:
        self.totals.rejected += 1
        record_type = type(record).__struct_config__.tag
        events.append(
            self._event(
                ev.InputRejected, record.time, record.seq, record=str(record_type), field=field_name, reason=reason
            )
        )

    def _account(self, record: Fill | Deposit | Withdrawal, events: list[ev.Event]) -> int | None:
        row = self.store.row_of.get(record.account)
        if row is None:
            self._reject(events, record, "account", f"unknown account {record.account!r}")
        return row

    def _asset(self, record: Quote | DepthChange | VolChange, events: list[ev.Event]) -> int | None:
        column = self.market.base.asset_index.get(record.asset)  # the epoch's state: the same columns
        if column is None or record.asset == CASH:
            self._reject(events, record, "asset", f"unknown asset {record.asset!r}")
            return None
        return column

    def _apply(self, record: FeedRecord, batch: _Batch, events: list[ev.Event]) -> None:
        if isinstance(record, Quote):
            self._quote(record, batch, events)
        elif isinstance(record, Fill):
            row = self._account(record, events)
            instrument = self.store.instrument_row.get(record.instrument)
            if row is None:
                return
            if instrument is None:
                self._reject(events, record, "instrument", f"unknown instrument {record.instrument!r}")
                return
            if self._off_market(record, instrument, batch, events):
                return
            self.store.trade(row, instrument, record.quantity, record.price, record.fee)
            self._pnl_cache.pop(row, None)
            batch.touched.add(row)
        elif isinstance(record, Deposit):
            row = self._account(record, events)
            if row is not None:
                if record.asset != CASH and record.asset not in self.market.state.asset_index:
                    self._reject(events, record, "asset", f"unknown asset {record.asset!r}")
                    return
                self.store.credit(row, record.asset, record.amount)
                batch.touched.add(row)
        elif isinstance(record, Withdrawal):
            self._withdraw(record, batch, events)
        elif isinstance(record, DepthChange):
            column = self._asset(record, events)
            if column is not None:
                self.market.depth_scale[column] = record.scale
                batch.rescaled.add(column)
                batch.moved.add(column)
                batch.dirty.add(column)
        elif isinstance(record, VolChange):
            column = self._asset(record, events)
            if column is not None:
                self.market.vol_override[column] = record.vol
                batch.new_epoch = True
        else:
            problem = self._params_problem(record.params)
            if problem is not None:
                self._reject(events, record, "params", problem)
                return
            if record.params.predictive.halflife_seconds != self.params.predictive.halflife_seconds:
                kept = dict(self.velocity.state())
                kept["halflife"] = np.asarray(record.params.predictive.halflife_seconds / SECONDS_PER_YEAR)
                self.velocity = VelocityTracker.from_state(kept)
                self._ticks += 1
            self.params = record.params
            batch.new_epoch = True
            events.append(
                self._event(ev.ParametersChanged, record.time, record.seq, digest=params_digest(record.params))
            )

    def _off_market(self, record: Fill, instrument: int, batch: _Batch, events: list[ev.Event]) -> bool:
        """Reject a fill priced outside `pretrade.price_band` around the instrument's mark, the pre-trade check's
        rule (`whatif.off_market`): published as `FillRejected`, never booked. The mark is this moment's: an asset
        quoted earlier in the batch is published first."""
        state = self.market.state
        if int(state.instruments.asset[instrument]) in batch.dirty:
            self._refresh(batch)
            state = self.market.state
        forward = float(state.forward[instrument])
        mark = forward
        if int(state.instruments.kind[instrument]) == OPTION:
            mark = float(self.context.arrays.value[instrument]) / float(state.instruments.contract_size[instrument])
        band = self.params.pretrade.price_band
        if not off_market(record.price, mark, forward, band):
            return False
        self.totals.rejected += 1
        reason = (
            f"price {record.price!r} is {abs(record.price - mark) / forward:.2%} of the forward from the mark "
            f"{mark!r}, outside the band of {band:.2%}"
        )
        events.append(
            self._event(
                ev.FillRejected,
                record.time,
                record.seq,
                account=record.account,
                instrument=record.instrument,
                quantity=record.quantity,
                price=record.price,
                mark=mark,
                band=band,
                reason=reason,
            )
        )
        return True

    def _params_problem(self, params: MarginParams) -> str | None:
        """Why `params` cannot take over this stream (None if they can): a setting the engine does not support,
        or a market or scenario set they cannot build here (fhs without a history, depth they require)."""
        problem = _unwatched_deleverage(params, self.reflag)
        if problem is not None:
            return problem
        try:
            _supported(params, "params")
            state = build_market_state(
                list(self.store.instruments), self.market.snapshot, params, self.portfolio_source, self.market.source
            )
            generate_scenarios(state, params, self.history)
        except (ModelError, InputError) as error:
            return str(error)
        return None

    def _quote(self, record: Quote, batch: _Batch, events: list[ev.Event]) -> None:
        column = self._asset(record, events)
        if column is None:
            return
        if not (math.isfinite(record.price) and record.price > 0.0):  # decoded feeds are checked already
            self._reject(events, record, "price", f"must be finite and > 0, got {record.price!r}")
            return
        now = _seconds(record.time)
        stamp = now if record.timestamp is None else _seconds(record.timestamp)
        if stamp > now + self.params.oracle.future_tolerance_s:
            self._reject(events, record, "timestamp", "published after it was received (a future timestamp)")
            return
        if record.source is None:
            if column in self.market.sources:
                self._reject(events, record, "source", f"{record.asset} is priced from oracle sources: name the source")
                return
            self.market.set_price(column, record.price)
        else:
            self.market.store_source(column, record.source, record.price, record.confidence, stamp)
        batch.priced[column] = now
        batch.moved.add(column)
        batch.dirty.add(column)

    def _withdraw(self, record: Withdrawal, batch: _Batch, events: list[ev.Event]) -> None:
        """Pay out only if equity stays at or above IM afterwards (at this moment's prices)."""
        row = self._account(record, events)
        if row is None:
            return
        if record.asset not in self.store.collateral_assets:
            self._reject(events, record, "asset", f"the account holds no {record.asset}")
            return
        column = self.store.column(record.asset)
        if self.store.balance[row, column] < record.amount:
            self._reject(events, record, "amount", f"exceeds the balance of {float(self.store.balance[row, column])!r}")
            return
        self._refresh(batch)
        held = float(self.store.balance[row, column])
        self.store.credit(row, record.asset, -record.amount)
        paused = np.flatnonzero(self._paused())
        still = self._exposed_to(row, paused) if paused.size else []
        if still:  # while an oracle is degraded only a withdrawal that ends the exposure to it lowers risk
            self.store.set_balance(row, record.asset, held)
            self._reject(events, record, "amount", f"oracle degraded on {', '.join(still)}: the account stays exposed")
            return
        result = margin_accounts(
            self.store.book_of(np.array([row])), self.market.state, self.params, self.context, self.portfolio_source
        )
        if not result.equity[0] >= result.im[0]:
            self.store.set_balance(row, record.asset, held)
            self._reject(
                events, record, "amount", f"equity {result.equity[0]:.2f} would fall below IM {result.im[0]:.2f}"
            )
            return
        batch.touched.add(row)

    # ------------------------------------------------------------------------------ re-margining

    def margin_now(self, rows: IndexArray | None = None) -> MarginResult:
        """Margin figures of `rows` (default every account) at this moment under the stream's model, with every
        IM term: a read-only look (nothing stored, nothing published)."""
        everyone = np.arange(self.store.n_accounts, dtype=np.int64)
        return self._margin(everyone if rows is None else rows)[1]

    def im_now(self) -> FloatArray:
        """(N,) IM of every account at this moment under the stream's model (nothing stored or published)."""
        return self._requirement(self._book(np.arange(self.store.n_accounts, dtype=np.int64)))

    def _book(self, rows: IndexArray) -> Book:
        """`store.book_of(rows)`, reused while neither the rows nor the store change (a run of ticks on one
        asset re-margins the same accounts on the same positions)."""
        key = (self.store.version, rows.tobytes())
        if self._book_cache is None or self._book_cache[0] != key:
            self._book_cache = (key, self.store.book_of(rows))
        return self._book_cache[1]

    def _margin(self, rows: IndexArray) -> tuple[Book, MarginResult]:
        """Margin `rows` now; the breach probability sees the fast volatility and the price velocity."""
        book = self._book(rows)
        vol, velocity, _ = self._speed()
        result = margin_accounts(
            book, self.market.state, self.params, self.context, self.portfolio_source, vol=vol, velocity=velocity
        )
        if self.model != "multi":
            result = self._under_baseline(book, result, vol)
        return book, result

    def _under_baseline(self, book: Book, result: MarginResult, vol: FloatArray) -> MarginResult:
        """The same accounts with IM and MM of the venue rule `self.model` (equity, Greeks as margined): what a
        venue running that rule would see. The breach probability is taken against the rule's MM."""
        state = self.market.state
        time_floor = self.params.volatility.time_floor_days / self.params.days_per_year
        rule = baseline_margin(
            book, state, self.baselines, self.model, unit_value=option_unit_values(state, time_floor)
        )
        loss_vol, _, probability, flagged = book_breach(
            result.greeks,
            state.price,
            vol,
            self.context.correlation,
            result.equity,
            rule.mm,
            self.params.predictive,
            velocity=self._speed()[1],
        )
        with np.errstate(divide="ignore", invalid="ignore"):
            health = np.where(rule.mm > 0.0, result.equity / np.where(rule.mm > 0.0, rule.mm, 1.0), np.inf)
        return dataclasses.replace(
            result,
            terms={self.model: rule.im},
            term_by_asset={},
            im=rule.im,
            mm=rule.mm,
            health=health,
            liquidatable=result.equity < rule.mm,
            breach_probability=probability,
            early_flag=flagged & (rule.mm > 0.0),
            loss_vol=loss_vol,
        )

    def _requirement(self, book: Book) -> FloatArray:
        """IM of `book` (accounts at trial quantities) under this stream's model."""
        state = self.market.state
        if self.model == "multi":
            return margin_accounts(book, state, self.params, self.context, self.portfolio_source, predictive=False).im
        time_floor = self.params.volatility.time_floor_days / self.params.days_per_year
        unit_value = option_unit_values(state, time_floor)
        return baseline_margin(book, state, self.baselines, self.model, unit_value=unit_value).im

    def _remargin(self, rows: IndexArray, now: datetime, cause: int, events: list[ev.Event]) -> None:
        """Recompute `rows` (ascending), store their figures and publish every change of status or flag."""
        if rows.size == 0:
            return
        _, result = self._margin(rows)
        self.totals.remargined += int(rows.size)
        assert result.breach_probability is not None and result.early_flag is not None and result.loss_vol is not None
        f = self.figures
        if rows.size == self.store.n_accounts:  # every account (rows are ascending and unique): slices, not gathers
            rows_or_all: IndexArray | slice = slice(None)
        else:
            rows_or_all = rows
        old_status = f.status[rows_or_all].copy()
        old_flag = f.flagged[rows_or_all].copy()
        # A shortfall of DUST_USD or less is rounding, not a call on the account.
        called = result.equity < result.im - DUST_USD if self.margin_calls else False
        status = np.where(
            result.equity < result.mm - DUST_USD, LIQUIDATABLE, np.where(called, MARGIN_CALL, HEALTHY)
        ).astype(np.int8)
        f.im[rows_or_all] = result.im
        f.mm[rows_or_all] = result.mm
        f.equity[rows_or_all] = result.equity
        f.status[rows_or_all] = status
        flagged = result.early_flag & ~f.in_liquidation[rows_or_all]  # an account being liquidated is past early
        f.flagged[rows_or_all] = flagged
        f.breach[rows_or_all] = result.breach_probability
        f.loss_vol[rows_or_all] = result.loss_vol
        target = self.params.liquidation.target * result.im
        f.in_liquidation[rows_or_all] &= ~(result.equity >= target - DUST_USD)  # liquidation stops at target x IM
        raised = flagged & ~old_flag
        if not self.reflag:  # only first flags
            raised &= np.isnan(f.first_flag[rows_or_all])
        changed = np.flatnonzero((status != old_status) | raised)
        if changed.size:
            self._publish_changes(
                rows[changed],
                status[changed],
                old_status[changed],
                raised[changed],
                result,
                changed,
                now,
                cause,
                events,
            )
        if self.screen is not None:
            self._update_screen(rows, result)

    def _publish_changes(
        self,
        rows: IndexArray,
        status: NDArray[np.int8],
        old_status: NDArray[np.int8],
        raised: BoolArray,
        result: MarginResult,
        at: IndexArray,
        now: datetime,
        cause: int,
        events: list[ev.Event],
    ) -> None:
        """The events of `rows` whose status changed or whose early flag was `raised` (their figures at `at` in
        `result`), in row order; marks the first liquidatable and first flagged times."""
        assert result.breach_probability is not None and result.loss_vol is not None
        f = self.figures
        seconds = _seconds(now)
        names = self.store.account_ids[rows].tolist()
        equity, im, mm = result.equity[at].tolist(), result.im[at].tolist(), result.mm[at].tolist()
        breach, loss_vol = result.breach_probability[at].tolist(), result.loss_vol[at].tolist()
        changes = zip(rows.tolist(), status.tolist(), old_status.tolist(), raised.tolist(), strict=True)
        seq = self.next_seq  # the events are built here directly: a crash publishes millions of them
        for k, (row, new, old, flag) in enumerate(changes):
            name = str(names[k])
            if new == LIQUIDATABLE and old != LIQUIDATABLE:
                f.in_liquidation[row] = True
                if math.isnan(f.first_liquidatable[row]):
                    f.first_liquidatable[row] = seconds
                events.append(
                    ev.AccountBecameLiquidatable(
                        seq=seq, time=now, cause=cause, account=name, equity=equity[k], mm=mm[k]
                    )
                )
                seq += 1
            elif new == MARGIN_CALL and old == HEALTHY:
                events.append(
                    ev.MarginCallIssued(
                        seq=seq, time=now, cause=cause, account=name, equity=equity[k], im=im[k], mm=mm[k]
                    )
                )
                seq += 1
            elif new == HEALTHY and old != HEALTHY:
                events.append(
                    ev.AccountRecovered(seq=seq, time=now, cause=cause, account=name, equity=equity[k], im=im[k])
                )
                seq += 1
            if flag:
                if math.isnan(f.first_flag[row]):
                    f.first_flag[row] = seconds
                events.append(
                    ev.AccountFlaggedEarly(
                        seq=seq,
                        time=now,
                        cause=cause,
                        account=name,
                        breach_probability=breach[k],
                        equity=equity[k],
                        mm=mm[k],
                        loss_vol=loss_vol[k],
                    )
                )
                seq += 1
        self.next_seq = seq

    def _update_screen(self, rows: IndexArray, result: MarginResult) -> None:
        """New bands for `rows` just re-margined (`result`): which of them the screen can watch (`stream.screen`)."""
        assert self.screen is not None
        store, state, f = self.store, self.market.state, self.figures
        cash = store.collateral_assets.index(CASH)
        balances = store.balance[rows]
        excluded = (balances != 0.0).sum(axis=1) > (balances[:, cash] != 0.0)  # collateral other than USD
        concentration = self.params.concentration
        if self.model == "multi" and concentration.enabled and concentration.form == "ramp":
            excluded[:] = True  # an IMF ramping with notional may grow faster than the screen's bound
        sourced = np.zeros(len(self.market.assets), dtype=np.bool_)
        sourced[list(self.market.sources)] = True
        holdings = Holdings(
            store.start,
            store.count,
            store.pos_instrument,
            store.pos_quantity,
            store.pos_venue,
            store.instrument_asset,
            store.linear,
            excluded,
        )
        standing = Standing(
            delta=np.ascontiguousarray(result.greeks[:, :, 0]),
            equity=result.equity,
            im=result.im,
            mm=result.mm,
            status=f.status[rows],
            flagged=f.flagged[rows],
            in_liquidation=f.in_liquidation[rows],
            watched=np.ones(rows.size, dtype=np.bool_) if self.reflag else np.isnan(f.first_flag[rows]),
            dust=DUST_USD,
            target=self.params.liquidation.target,
            deleverage=self.params.predictive.action == "deleverage",
            calls=self.margin_calls,
        )
        reach = Reach(state.price, self._reach(), diffusion_reach(state.vol, self.params.predictive), sourced)
        self.screen.update(rows, holdings, standing, reach)

    def _freshen(self, now: datetime, cause: int, events: list[ev.Event]) -> None:
        """Re-margin the screened accounts (their figures date from their last re-margin) before something reads
        every account's figures; by the screen's bounds no status or flag changes."""
        if self.screen is not None:
            self._remargin(self.screen.screened_rows(), now, cause, events)

    # ------------------------------------------------------------------------------- liquidation

    def _candidates(self, now: datetime) -> IndexArray:
        """Accounts due a slice: in liquidation (or flagged, under `deleverage`) and out of their cooldown."""
        f = self.figures
        rows = np.flatnonzero(f.in_liquidation)
        if self.params.predictive.action == "deleverage":  # flagged accounts are hot: their figures are current
            eager = f.flagged & (f.equity < self.params.liquidation.target * f.im)
            rows = np.union1d(rows, np.flatnonzero(eager))
        paused = self._paused()
        if paused.any() and rows.size:  # nobody exposed to a degraded oracle is liquidated on its price
            rows = rows[~self.store.exposed[np.flatnonzero(paused)][:, rows].any(axis=0)]
        return rows[f.cooldown_until[rows] <= _seconds(now)].astype(np.int64)

    def _closeout_inputs(self, book: Book) -> tuple[CloseOutBook, CloseOutMarket]:
        state = self.market.state
        arrays = self.context.arrays
        inst = book.pos_instrument
        is_option = state.instruments.kind[inst] == OPTION
        size = state.instruments.contract_size[inst]
        asset = state.instruments.asset[inst]
        mark = np.where(is_option, arrays.value[inst], size * state.forward[inst])
        notional = np.where(is_option, size * state.price[asset], np.abs(size * state.forward[inst]))
        closeout_book = CloseOutBook(
            offsets=book.pos_offsets,
            instrument=inst,
            quantity=book.pos_quantity,
            asset=asset,
            units=np.where(is_option, 0.0, arrays.unit_greeks[inst, 0]),
            vega=np.where(is_option, arrays.unit_greeks[inst, 2], 0.0),
            notional=notional,
            mark=mark,
        )
        market = CloseOutMarket(
            liquidity=state.liquidity,
            price=state.price,
            daily_vol=state.vol / math.sqrt(self.params.days_per_year),
            stress=np.ones(len(state.assets)),
            half_spread=self.params.liquidity.adv_half_spread,
            coefficient=self.params.liquidity.impact_coefficient,
        )
        return closeout_book, market

    def _liquidate(self, now: datetime, cause: int, events: list[ev.Event]) -> None:
        """One slice for every account in liquidation whose cooldown has passed; the waterfall for the bankrupt."""
        rows = self._candidates(now)
        if rows.size == 0:
            return
        book = self._book(rows)
        # Under the screen the stored equity may date from an earlier cycle; the sizer needs only equity, the
        # same under every model.
        equity = account_equity(book, self.market.state, self.params, self.context, self.portfolio_source)
        closeout_book, market = self._closeout_inputs(book)

        def requirement(quantity: FloatArray) -> FloatArray:
            return self._requirement(_with_quantity(book, quantity))

        priority = None
        if self.params.liquidation.method == "greedy":  # each position's Euler contribution to market risk
            priority = position_contributions(
                book.pos_offsets,
                book.pos_instrument,
                book.pos_quantity,
                self.context.arrays,
                self.params.confidence,
                self.params.measure,
            )
        plan = plan_closeout(closeout_book, equity, requirement, market, self.params.liquidation, priority)
        touched = set(rows.tolist())
        self._execute(rows, closeout_book, plan, now, cause, events)
        bankrupt = rows[plan.bankrupt]
        if bankrupt.size:
            self._remargin(rows, now, cause, events)  # the waterfall reads every account's equity after the slices
            touched |= self._backstop(bankrupt, now, cause, events)
        self.figures.cooldown_until[rows] = _seconds(now) + self.params.liquidation.cooldown_seconds
        for row in touched:
            self._pnl_cache.pop(row, None)
        self._remargin(np.array(sorted(touched), dtype=np.int64), now, cause, events)

    def _execute(
        self,
        rows: IndexArray,
        book: CloseOutBook,
        plan: CloseOutPlan,
        now: datetime,
        cause: int,
        events: list[ev.Event],
    ) -> None:
        """Trade every non-bankrupt slice at its fill prices; the fee goes to the insurance fund, split across
        the account's closes pro rata to notional."""
        account = book.position_account()
        slots = self.store.used_slots(rows)  # the store slot of each position of `book` (gathered in that order)
        closing = np.flatnonzero((plan.close != 0.0) & ~plan.bankrupt[account])
        notional = np.abs(plan.close) * book.notional
        with np.errstate(divide="ignore", invalid="ignore"):
            share = np.where(plan.notional[account] > 0.0, notional / plan.notional[account], 0.0)
        fees = plan.fee[account] * share
        prices = plan.fill_price / self.store.contract_size[book.instrument]
        closed = rows[account[closing]]
        self.store.reduce(closed, slots[closing], plan.close[closing], prices[closing], fees[closing])
        instrument_ids = self.store.instrument_ids
        trades = zip(
            self.store.account_ids[closed].tolist(),
            book.instrument[closing].tolist(),
            (-plan.close[closing]).tolist(),
            prices[closing].tolist(),
            fees[closing].tolist(),
            notional[closing].tolist(),
            self.figures.in_liquidation[closed].tolist(),
            strict=True,
        )
        seq = self.next_seq  # built here directly: a crash executes hundreds of thousands of slices
        for name, instrument, quantity, price, fee, traded, maintenance in trades:
            self.fund += fee
            self.totals.fees_to_fund += fee
            self.totals.liquidations += 1
            self.totals.liquidated_notional += traded
            events.append(
                ev.LiquidationExecuted(
                    seq=seq,
                    time=now,
                    cause=cause,
                    account=str(name),
                    instrument=instrument_ids[instrument],
                    quantity=quantity,
                    price=price,
                    fee=fee,
                    reason="maintenance" if maintenance else "predictive",
                )
            )
            seq += 1
        self.next_seq = seq

    def _backstop(self, bankrupt: IndexArray, now: datetime, cause: int, events: list[ev.Event]) -> set[int]:
        """Run the waterfall for `bankrupt` rows and apply its transfers; returns every account it changed."""
        book = self.store.whole_book()  # position row p is store slot p
        state = self.market.state
        account = book.position_account()
        inst = book.pos_instrument
        linear = self.store.linear[inst]
        mark = np.where(linear, state.forward[inst], self.context.arrays.value[inst])
        size = self.store.contract_size[inst]
        gross = np.bincount(
            account,
            weights=np.where(linear, np.abs(book.pos_quantity) * size * mark, 0.0),
            minlength=self.store.n_accounts,
        )
        # Only the positions the waterfall can touch: the bankrupt accounts' and, on their linear instruments,
        # everyone else's (the ADL candidates); store slots, so the result's rows map back to slots.
        theirs_slots = self.store.used_slots(bankrupt)
        exposed_to = np.zeros(len(self.store.instruments), dtype=np.bool_)
        exposed_to[inst[theirs_slots][linear[theirs_slots]]] = True
        keep = np.flatnonzero((book.pos_quantity != 0.0) & exposed_to[inst] & linear)
        keep = np.union1d(keep, theirs_slots)
        # Each position's share of closing the bankrupt accounts' whole books at once (the sizer's netted cost,
        # split by `closeout_cost`'s fill prices), so the waterfall sees the deficit the sizer found.
        theirs, market = self._closeout_inputs(self.store.book_of(bankrupt))
        _, fill = closeout_cost(theirs, theirs.quantity, market)
        per_position = np.zeros(book.pos_quantity.size)
        per_position[theirs_slots] = np.abs(theirs.quantity) * np.abs(fill - theirs.mark)
        entry = np.where(linear & np.isnan(book.pos_entry), mark, book.pos_entry)  # a flat slot: any entry
        # ADL ranks, and socialisation charges, every account by its equity; the fund alone reads only the
        # bankrupt accounts' (just re-margined). A fund above what closing them could cost beyond their equity
        # pays it all; otherwise the screened accounts' figures are brought up to date first.
        if not self.fund >= float(per_position.sum() + np.abs(self.figures.equity[bankrupt]).sum()):
            self._freshen(now, cause, events)
        result = run_waterfall(
            bankrupt,
            self.figures.equity,
            self.fund,
            pos_account=account[keep],
            pos_instrument=inst[keep],
            pos_quantity=book.pos_quantity[keep],
            pos_entry=entry[keep],
            pos_mark=mark[keep],
            contract_size=size[keep],
            is_linear=linear[keep],
            pos_close_cost=per_position[keep],
            account_gross=gross,
        )
        touched = self._apply_waterfall(result, keep, book, mark, now, cause, events)
        self._settle_dust(result.accounts)
        return touched

    def _settle_dust(self, rows: IndexArray) -> None:
        """Book the rounding left on flat, settled accounts (|equity| <= DUST_USD) against the insurance fund,
        so that a settled account stands at exactly 0 and is not found bankrupt again by a few ulps."""
        _, result = self._margin(rows)
        flat = self.store.is_flat(rows) & (np.abs(result.equity) <= DUST_USD)
        for k in np.flatnonzero(flat).tolist():
            residual = float(result.equity[k])
            if self.fund + residual < 0.0:
                continue  # an empty fund cannot take it: the account keeps it, below the liquidation threshold
            self.store.credit(int(rows[k]), CASH, -residual)
            self.fund += residual

    def _apply_waterfall(
        self,
        result: WaterfallResult,
        slot_of: IndexArray,
        book: Book,
        mark: FloatArray,
        now: datetime,
        cause: int,
        events: list[ev.Event],
    ) -> set[int]:
        names = self.store.account_ids
        account_of = book.position_account()
        touched = set(result.accounts.tolist())
        ids = self.store.instruments
        for f in range(result.adl_quantity.size):
            bankrupt_row = int(result.adl_bankrupt[f])
            counterparty = int(result.adl_counterparty[f])
            instrument = int(result.adl_instrument[f])
            quantity = float(result.adl_quantity[f])
            price = float(result.adl_price[f])
            self.store.trade(counterparty, instrument, -quantity, price, slot=int(slot_of[result.adl_row[f]]))
            # The bankrupt side: its position in the instrument on the other side of the counterparty's.
            bankrupt_slot = self.store.find_signed(bankrupt_row, instrument, -math.copysign(1.0, quantity))
            self.store.trade(bankrupt_row, instrument, quantity, price, slot=bankrupt_slot)
            touched.add(counterparty)
            self.totals.adl_fills += 1
            events.append(
                self._event(
                    ev.AutoDeleveraged,
                    now,
                    cause,
                    account=str(names[bankrupt_row]),
                    counterparty=str(names[counterparty]),
                    instrument=ids[instrument].id,
                    quantity=quantity,
                    price=price,
                )
            )
        for c in range(result.close_row.size):
            p = int(slot_of[result.close_row[c]])
            row = int(account_of[p])
            quantity = float(result.close_quantity[c])
            if quantity == 0.0:
                continue
            instrument = int(book.pos_instrument[p])
            linear = bool(self.store.linear[instrument])
            per_contract = float(result.close_cost[c]) / abs(quantity)
            size = float(self.store.contract_size[instrument])
            mark_per_unit = float(mark[p]) if linear else float(mark[p]) / size  # options' mark is per contract
            price = mark_per_unit - math.copysign(per_contract / size, quantity)
            self.store.trade(row, instrument, -quantity, price, slot=p)
            self.totals.liquidations += 1
            self.totals.liquidated_notional += abs(quantity) * size * abs(mark_per_unit)
            events.append(
                self._event(
                    ev.LiquidationExecuted,
                    now,
                    cause,
                    account=str(names[row]),
                    instrument=ids[instrument].id,
                    quantity=-quantity,
                    price=price,
                    fee=0.0,
                    reason="bankruptcy",
                )
            )
        for k, row in enumerate(result.accounts.tolist()):
            paid = float(result.fund_paid[k]) - float(result.fund_received[k])
            socialised = float(result.socialised[k])
            self.store.credit(row, CASH, paid + socialised)
            if result.fund_paid[k] > 0.0:
                events.append(
                    self._event(
                        ev.InsuranceFundPaid,
                        now,
                        cause,
                        account=str(names[row]),
                        amount=float(result.fund_paid[k]),
                        fund_after=float(result.fund_after),
                    )
                )
            if socialised > 0.0:
                charged = int(np.count_nonzero(result.charges))
                events.append(
                    self._event(
                        ev.LossSocialised,
                        now,
                        cause,
                        account=str(names[row]),
                        amount=socialised,
                        accounts_charged=charged,
                    )
                )
            if result.unresolved[k] > 0.0:
                events.append(
                    self._event(
                        ev.LossUnresolved, now, cause, account=str(names[row]), amount=float(result.unresolved[k])
                    )
                )
        for row in np.flatnonzero(result.charges).tolist():
            self.store.credit(row, CASH, -float(result.charges[row]))
            touched.add(row)
        self.totals.fund_paid += float(result.fund_paid.sum())
        self.totals.socialised += float(result.socialised.sum())
        self.totals.unresolved += float(result.unresolved.sum())
        self.fund = float(result.fund_after)
        return touched

    # ------------------------------------------------------------------------------- pre-trade

    def what_if(self, account: str, instrument: str, quantity: float, price: float, fee: float = 0.0) -> Decision:
        """Whether `account` may trade `quantity` of `instrument` at `price` now, and its IM after (O(S)).

        An unknown account or instrument, or anything the check cannot decide, is refused (fail closed).
        """
        row = self.store.row_of.get(account)
        inst = self.store.instrument_row.get(instrument)
        if row is None or inst is None:
            what = "account" if row is None else "instrument"
            return Decision(
                allowed=False, reason=f"unknown {what}", im_before=math.nan, im_after=math.nan, equity_after=math.nan
            )
        pnl, greeks, books = self._scenario_vector(row)
        f = self.figures
        equity, flagged = float(f.equity[row]), bool(f.flagged[row])
        if self.screen is not None and self.screen.asset[row] >= 0:  # figures of an earlier cycle
            fresh = self._margin(np.array([row]))[1]
            assert fresh.early_flag is not None
            equity, flagged = float(fresh.equity[0]), bool(fresh.early_flag[0] and not f.in_liquidation[row])
        return self._pretrade().check(
            pnl,
            greeks,
            equity,
            float(tier_multiplier(self.store.risk_tier[row : row + 1])[0]),
            inst,
            quantity,
            price,
            fee,
            position=self.store.quantity(row, inst),
            reduce_only=flagged or bool(f.in_liquidation[row]),
            held=self._held(row),
            books=books,
        )

    def _held(self, row: int) -> FloatArray:
        """(A,) the account's collateral balances in units of each asset (0 for USD and unquoted assets)."""
        held = np.zeros(len(self.market.assets))
        index = self.market.state.asset_index
        for c, asset in enumerate(self.store.collateral_assets):
            if asset in index and asset != CASH:
                held[index[asset]] += float(self.store.balance[row, c])
        return held

    def _pretrade(self) -> PreTradeChecker:
        if self._checker is None or self._checker_version != self._version:
            state = self.market.state
            long_t, short_t = concentration_thresholds(state, self.params)
            self._checker = PreTradeChecker(state, self.context.arrays, self.params, long_t, short_t)
            self._checker_version = self._version
        return self._checker

    def _scenario_vector(self, row: int) -> tuple[FloatArray, FloatArray, FloatArray]:
        """(scenario P&L (S,), Greeks (A, 3), books (A, B, 2)) of one account, kept until its next change."""
        cached = self._pnl_cache.get(row)
        if cached is not None and cached[0] == self._version:
            return cached[1], cached[2], cached[3]
        slots = self.store.used_slots(np.array([row], dtype=np.int64))
        instrument = self.store.pos_instrument[slots]
        quantity = self.store.pos_quantity[slots]
        arrays = self.context.arrays
        pnl = account_scenario_pnl(instrument, quantity, arrays)
        greeks = account_greeks(instrument, quantity, arrays)
        books = account_books(
            instrument, quantity, arrays.unit_greeks, arrays.instrument_asset, self._pretrade().layout, arrays.n_assets
        )
        self._pnl_cache[row] = (self._version, pnl, greeks, books)
        return pnl, greeks, books

    # ------------------------------------------------------------------------------- reporting

    def summary(self) -> dict[str, Any]:
        """The run's figures: counts, liquidations, the backstop, predictive lead times, batch timings."""
        f = self.figures
        opening = _seconds(self.market.snapshot.time)
        breached = ~np.isnan(f.first_liquidatable)
        later = breached & (f.first_liquidatable > opening)  # not already below MM at the start
        early = later & (f.first_flag < f.first_liquidatable)
        lead = f.first_liquidatable[early] - f.first_flag[early]
        timings = np.array(self.totals.batch_ms) if self.totals.batch_ms else np.zeros(1)
        return {
            "schema": "solvent.stream-summary/1",
            "records": self.totals.records,
            "batches": self.totals.batches,
            "events": self.next_seq,
            "rejected": self.totals.rejected,
            "accounts": self.store.n_accounts,
            "accounts_liquidatable_now": int(np.count_nonzero(f.status == LIQUIDATABLE)),
            "accounts_in_margin_call_now": int(np.count_nonzero(f.status == MARGIN_CALL)),
            "accounts_ever_liquidatable": int(np.count_nonzero(breached)),
            "liquidatable_at_start": int(np.count_nonzero(breached & ~later)),
            "flagged_before_breach": int(np.count_nonzero(early)),
            "lead_seconds_median": float(np.median(lead)) if lead.size else None,
            "lead_seconds_min": float(lead.min()) if lead.size else None,
            "liquidation_trades": self.totals.liquidations,
            "liquidated_notional": self.totals.liquidated_notional,
            "fees_to_fund": self.totals.fees_to_fund,
            "insurance_fund_start": self.fund_start,
            "insurance_fund_end": self.fund,
            "insurance_fund_paid": self.totals.fund_paid,
            "adl_fills": self.totals.adl_fills,
            "socialised_loss": self.totals.socialised,
            "unresolved_loss": self.totals.unresolved,
            "batch_ms_median": float(np.median(timings)),
            "batch_ms_p99": float(np.quantile(timings, 0.99)),
            "batch_ms_max": float(timings.max()),
        }

    # ------------------------------------------------------------------------------- persistence

    def save(self, path: str | os.PathLike[str]) -> None:
        """Close the open batch, then write the whole state (`solvent.state/1`: an .npz of plain arrays, no
        pickles) atomically. A stream split at a batch boundary and resumed gives the same events as one run."""
        from solvent.stream.state import write_state

        self.flush()
        events: list[ev.Event] = []
        self._freshen(self.last_time, self.last_input_seq, events)
        if events:
            self.sink(events)
        write_state(self, path)

    @classmethod
    def load(cls, path: str | os.PathLike[str], sink: Sink | None = None, screen: bool = False) -> StreamEngine:
        """A stream resumed from `save`'s file: the same events follow as if it had never stopped. `screen`: resume
        with the health screen (it is not saved: every account starts hot, banded at its first re-margin)."""
        from solvent.stream.state import read_state

        engine = read_state(path, sink)
        if screen:
            engine.screen = HealthScreen(engine.store.n_accounts, len(engine.market.assets))
        return engine


def _unwatched_deleverage(params: MarginParams, reflag: bool) -> str | None:
    """Why `params` cannot run on a stream publishing first flags only (None if they can): a deleveraging flag
    sizes liquidations, so every one must be watched."""
    if not reflag and params.predictive.action == "deleverage":
        return "predictive.action 'deleverage' needs every early flag watched; this stream has reflag=False"
    return None


@dataclass
class _Batch:
    """What one batch changed: assets whose price, depth or oracle moved (`moved`; `rescaled`: their depth;
    `dirty` until their risk arrays are refreshed; `priced`: quoted, with the time of the last quote, until
    aggregated), accounts that traded or moved collateral, and whether a new epoch starts."""

    moved: set[int] = field(default_factory=set)
    rescaled: set[int] = field(default_factory=set)
    dirty: set[int] = field(default_factory=set)
    priced: dict[int, float] = field(default_factory=dict)
    touched: set[int] = field(default_factory=set)
    new_epoch: bool = False


def _with_quantity(book: Book, quantity: FloatArray) -> Book:
    return dataclasses.replace(book, pos_quantity=quantity)
