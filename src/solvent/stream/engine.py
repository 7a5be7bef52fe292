"""The deterministic streaming core: feed records in, account state and events out.

Single-threaded and deterministic (STYLE.md 9): the feed's own times are the clock, the sink is passed in,
and the state is written before a batch's events are published. Records are applied in batches — one per
record, or every record whose time falls in the same `block_ms` window.

`StreamEngine` is the loop; the work is done by stages, each with its own state, that never call one another
(docs/architecture.md, "The stream core"). Per batch, in this fixed order:

1. `Ingest` books the records on the store and the market (`stream.ingest`) -> `Changes`;
2. the read model (`stream.pricing`) refreshes the risk arrays of the assets that moved, or, on a volatility
   or parameter change, starts a new epoch (scenarios regenerated, every account due);
3. `Monitor` re-margins the accounts the changes reach and publishes status and flag changes (`stream.monitor`);
4. `Liquidator` slices every account due one (`stream.liquidator`) -> `Sliced`;
5. `Backstop` runs the waterfall for the bankrupt ones (`stream.backstop`), and the monitor re-margins every
   account the last two stages changed.

The engine owns the clock (the last record's time and sequence number) and the events' sequence (`Journal`).
docs/model.md ("Streaming engine") describes the rules; docs/formats.md the feed, event and state files.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import numpy as np
from numpy.typing import NDArray

from solvent.baselines import BASELINE_NAMES, BaselineParams
from solvent.engine.book import Book
from solvent.engine.margin import RiskContext, risk_context
from solvent.engine.results import MarginResult
from solvent.engine.vol_limit import VOL_ONLY
from solvent.engine.whatif import Decision
from solvent.errors import InputError
from solvent.factors.haircuts import require_collateral_vols
from solvent.formats.schemas import MarketSnapshot
from solvent.liquidation.predictive import VelocityTracker
from solvent.market.history import PriceHistory
from solvent.params import MarginParams
from solvent.stream import events as ev
from solvent.stream import state as saved
from solvent.stream.backstop import Backstop
from solvent.stream.feed import FeedRecord
from solvent.stream.ingest import Ingest, params_digest, supported, unwatched_deleverage
from solvent.stream.ledger import LIQUIDATABLE, MARGIN_CALL, Figures, IndexArray, Journal, Sink, Totals, seconds
from solvent.stream.liquidator import Liquidator
from solvent.stream.market import LiveMarket
from solvent.stream.monitor import Monitor
from solvent.stream.pretrade import PreTrade, refused
from solvent.stream.pricing import Pricing, context_on
from solvent.stream.screen import HealthScreen
from solvent.stream.store import AccountStore

__all__ = ["StreamEngine", "params_digest"]

LOG = logging.getLogger(__name__)


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
        supported(params, "params")
        if model not in ("multi", VOL_ONLY) and model not in BASELINE_NAMES:
            raise ValueError(f"unknown margin model {model!r}: multi, {VOL_ONLY} or one of {', '.join(BASELINE_NAMES)}")
        problem = unwatched_deleverage(params, reflag)
        if problem is not None:
            raise ValueError(problem)
        market = LiveMarket(book.instruments, snapshot, params, market_source, portfolio_source)
        require_collateral_vols(book, market.state, params, market_source)
        store = AccountStore(book, market.state.asset_index, len(market.assets))
        self.pricing = Pricing(
            store,
            market,
            params,
            risk_context(market.state, params, history),
            VelocityTracker.for_params(len(market.assets), params.predictive),
            history=history,
            model=model,
            baselines=BaselineParams() if baselines is None else baselines,
            portfolio_source=portfolio_source,
        )
        self.ingest = Ingest(reflag)
        screener = HealthScreen(book.n_accounts, len(market.assets)) if screen else None
        self.monitor = Monitor(Figures.empty(book.n_accounts), screener, margin_calls, reflag)
        self.liquidator = Liquidator()
        self.backstop = Backstop(insurance_fund)
        self.pretrade = PreTrade()
        self.totals = Totals()
        self.sink: Sink = sink if sink is not None else (lambda events: None)
        self.journal = Journal()
        self.last_input_seq = -1  # the clock: the last record's sequence number and time
        self.last_time = snapshot.time
        self._open: list[FeedRecord] = []
        self._open_window = -1

    # ------------------------------------------------------------------ the parts, as attributes

    @property
    def store(self) -> AccountStore:
        return self.pricing.store

    @property
    def market(self) -> LiveMarket:
        return self.pricing.market

    @property
    def params(self) -> MarginParams:
        return self.pricing.params

    @property
    def context(self) -> RiskContext:
        return self.pricing.context

    @property
    def velocity(self) -> VelocityTracker:
        return self.pricing.velocity

    @property
    def history(self) -> PriceHistory | None:
        return self.pricing.history

    @property
    def model(self) -> str:
        return self.pricing.model

    @property
    def baselines(self) -> BaselineParams:
        return self.pricing.baselines

    @property
    def portfolio_source(self) -> str:
        return self.pricing.portfolio_source

    @property
    def figures(self) -> Figures:
        return self.monitor.figures

    @property
    def screen(self) -> HealthScreen | None:
        return self.monitor.screen

    @property
    def margin_calls(self) -> bool:
        return self.monitor.margin_calls

    @property
    def reflag(self) -> bool:
        return self.monitor.reflag

    @property
    def fund(self) -> float:
        return self.backstop.fund

    @property
    def fund_start(self) -> float:
        return self.backstop.fund_start

    @property
    def next_seq(self) -> int:
        return self.journal.next_seq

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
        engine.monitor.oracles(
            engine.pricing, np.zeros(len(engine.market.assets), dtype=np.bool_), snapshot.time, -1, engine.journal
        )
        engine._remargin(everyone, snapshot.time, -1)
        events = engine.journal.take() + engine.settle(snapshot.time, -1)
        engine.sink(events)
        return engine

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
            window = record.seq if not block_ms else int(seconds(record.time) * 1000.0) // block_ms
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
        LOG.debug(
            "batch of %d records to seq %d: %d events in %.1f ms",
            len(records),
            records[-1].seq,
            len(events),
            self.totals.batch_ms[-1],
        )
        for event in events:
            if isinstance(
                event, ev.LiquidationExecuted | ev.LossSocialised | ev.LossUnresolved | ev.LiquidationsPaused
            ):
                LOG.info("%s: %s", type(event).__name__, event)
        self.sink(events)
        return events

    def apply_batch(self, records: Sequence[FeedRecord]) -> list[ev.Event]:
        """The first half of a batch: ingest its records, re-margin what they touched; returns the events
        (not yet published). `settle` is the second half."""
        now = records[-1].time
        cause = records[-1].seq
        pricing = self.pricing
        was_paused = pricing.paused()
        changes = self.ingest.apply(pricing, records, self.journal, self.totals)
        if changes.new_epoch:
            pricing.new_epoch(changes, now)
            rows = np.arange(self.store.n_accounts, dtype=np.int64)
        else:
            pricing.refresh(changes)
            rows = self.monitor.due(pricing, changes)
        self.monitor.oracles(pricing, was_paused, now, cause, self.journal)
        self._remargin(rows, now, cause)
        return self.journal.take()

    def settle(self, now: datetime, cause: int) -> list[ev.Event]:
        """The second half of a batch, at unchanged prices: one liquidation slice for every account due one,
        the backstop waterfall for the bankrupt; returns the events (not yet published)."""
        pricing, monitor, out = self.pricing, self.monitor, self.journal
        sliced = self.liquidator.slice(pricing, monitor.figures, now, cause, out, self.totals)
        if sliced is not None:
            self.backstop.collect(sliced.fees)
            touched = set(sliced.rows.tolist())
            if sliced.bankrupt.size:
                self._remargin(sliced.rows, now, cause)  # the waterfall reads every account's equity after the slices
                claim = self.backstop.claim(pricing, monitor.figures.equity, sliced.bankrupt)
                if claim.needs_every_equity:
                    monitor.freshen(pricing, now, cause, out, self.totals)
                touched |= self.backstop.resolve(pricing, claim, monitor.figures.equity, now, cause, out, self.totals)
            pricing.positions_moved(touched)
            self._remargin(np.array(sorted(touched), dtype=np.int64), now, cause)
        return out.take()

    def _remargin(self, rows: IndexArray, now: datetime, cause: int) -> None:
        self.monitor.remargin(self.pricing, rows, now, cause, self.journal, self.totals)

    # ------------------------------------------------------------------------------ read-only looks

    def margin_now(self, rows: IndexArray | None = None) -> MarginResult:
        """Margin figures of `rows` (default every account) at this moment under the stream's model, with every
        IM term: a read-only look (nothing stored, nothing published)."""
        everyone = np.arange(self.store.n_accounts, dtype=np.int64)
        return self.pricing.margin(everyone if rows is None else rows)[1]

    def im_now(self) -> NDArray[np.float64]:
        """(N,) IM of every account at this moment under the stream's model (nothing stored or published)."""
        return self.pricing.requirement(self.pricing.book(np.arange(self.store.n_accounts, dtype=np.int64)))

    def what_if(self, account: str, instrument: str, quantity: float, price: float, fee: float = 0.0) -> Decision:
        """Whether `account` may trade `quantity` of `instrument` at `price` now, and its IM after (O(S)).

        An unknown account or instrument, or anything the check cannot decide, is refused (fail closed).
        """
        row = self.store.row_of.get(account)
        inst = self.store.instrument_row.get(instrument)
        if row is None or inst is None:
            return refused(f"unknown {'account' if row is None else 'instrument'}")
        standing = self.monitor.standing(self.pricing, row)
        return self.pretrade.check(self.pricing, row, inst, quantity, price, fee, standing)

    def summary(self) -> dict[str, Any]:
        """The run's figures: counts, liquidations, the backstop, predictive lead times, batch timings."""
        f = self.figures
        opening = seconds(self.market.snapshot.time)
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
        self.flush()
        self.monitor.freshen(self.pricing, self.last_time, self.last_input_seq, self.journal, self.totals)
        events = self.journal.take()
        if events:
            self.sink(events)
        store, market, context, history = self.store, self.market, self.context, self.history
        meta = saved.StateMeta(
            schema=saved.STATE_SCHEMA,
            params=self.params,
            snapshot=market.snapshot,
            instruments=list(store.instruments),
            accounts=[str(a) for a in store.account_ids.tolist()],
            parents=[None if p is None else str(p) for p in store.parent.tolist()],
            venues=list(store.venues),
            fund=self.fund,
            fund_start=self.fund_start,
            next_seq=self.next_seq,
            last_input_seq=self.last_input_seq,
            last_time=self.last_time,
            totals={k: v for k, v in dataclasses.asdict(self.totals).items() if k != "batch_ms"},
            portfolio_source=self.portfolio_source,
            market_source=market.source,
            has_history=history is not None,
            history_assets=[] if history is None else list(history.assets),
            has_mm_scenarios=context.mm_scenarios is not None,
            model=self.model,
            baselines=self.baselines,
            margin_calls=self.margin_calls,
            reflag=self.reflag,
        )
        groups = {
            "store": store.arrays() | {"risk_tier": store.risk_tier, "mode": store.mode},
            "market": market.arrays(),
            "figures": {f.name: getattr(self.figures, f.name) for f in dataclasses.fields(self.figures)},
            "velocity": {k: np.asarray(v) for k, v in self.velocity.state().items()},
        }
        saved.write_state(path, meta, groups, context.scenarios, context.mm_scenarios, history)

    @classmethod
    def load(cls, path: str | os.PathLike[str], sink: Sink | None = None, screen: bool = False) -> StreamEngine:
        """A stream resumed from `save`'s file: the same events follow as if it had never stopped. `screen`: resume
        with the health screen (it is not saved: every account starts hot, banded at its first re-margin)."""
        return saved.read_state(path, lambda parts: cls._resumed(parts, sink, screen))

    @classmethod
    def _resumed(cls, parts: saved.SavedStream, sink: Sink | None, screen: bool) -> StreamEngine:
        meta = parts.meta
        engine = cls(
            parts.book,
            meta.snapshot,
            meta.params,
            history=parts.history,
            insurance_fund=meta.fund,
            sink=sink,
            portfolio_source=meta.portfolio_source,
            market_source=meta.market_source,
            model=meta.model,
            screen=screen,
            baselines=meta.baselines,
            margin_calls=meta.margin_calls,
            reflag=meta.reflag,
        )
        pricing = engine.pricing
        pricing.store.restore(parts.groups["store"])
        pricing.market.restore(parts.groups["market"], meta.params)
        pricing.velocity = VelocityTracker.from_state(parts.groups["velocity"])
        pricing.context = context_on(pricing.market.state, meta.params, parts.scenarios, parts.mm_scenarios)
        pricing.market_moved()
        engine.monitor.figures = Figures(**{k: np.array(v) for k, v in parts.groups["figures"].items()})
        engine.backstop = Backstop(meta.fund, meta.fund_start)
        engine.journal = Journal(meta.next_seq)
        engine.last_input_seq = meta.last_input_seq
        engine.last_time = meta.last_time
        engine.totals = Totals(**meta.totals)
        return engine
