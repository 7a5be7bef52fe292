"""The stream's read model: the accounts' store, the live market, the parameters and the epoch's scenarios,
and how to margin any rows of the store on them. Every stage reads it; ingest changes the market and the
parameters through it.

What is derived from the market view (the breach probability's speeds, the pre-trade checker, each account's
scenario vectors) lives in one `MarketMemo`, dropped in one place (`Pricing.market_moved`) whenever prices,
risk arrays or parameters change; an account's vectors are dropped when its positions change (`positions_moved`).
"""

from __future__ import annotations

import copy
import dataclasses
import math
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np

from solvent.baselines import BaselineParams
from solvent.baselines.book import baseline_margin, option_unit_values
from solvent.engine.book import Book
from solvent.engine.margin import RiskContext, margin_accounts, risk_context
from solvent.engine.results import MarginResult
from solvent.engine.riskarrays import RiskArrays, build_risk_arrays, refresh_risk_arrays
from solvent.engine.vol_limit import VOL_ONLY, vol_scaled_requirement
from solvent.engine.whatif import PreTradeChecker
from solvent.liquidation.closeout import CloseOutBook, CloseOutMarket
from solvent.liquidation.predictive import SECONDS_PER_YEAR, VelocityTracker, book_breach, scenario_correlation
from solvent.market.history import PriceHistory
from solvent.market.oracle import OracleStatus
from solvent.market.state import OPTION, MarketState
from solvent.params import MarginParams
from solvent.scenarios.base import ScenarioSet
from solvent.stream.ledger import BoolArray, Changes, FloatArray, IndexArray
from solvent.stream.market import LiveMarket
from solvent.stream.screen import flag_reach
from solvent.stream.store import CASH, AccountStore

#: One account's (scenario P&L (S,), Greeks (A, 3), books (A, B, 2)) for the pre-trade check.
Vectors = tuple[FloatArray, FloatArray, FloatArray]
#: One account's (equity, early flag, in liquidation) for the pre-trade check.
Standing = tuple[float, bool, bool]


def _copied(arrays: RiskArrays) -> RiskArrays:
    """`arrays` with copies of what `refresh_risk_arrays` writes in place."""
    return dataclasses.replace(
        arrays,
        pnl_rows=arrays.pnl_rows.copy(),
        asset_pnl=arrays.asset_pnl.copy(),
        linear_weight=arrays.linear_weight.copy(),
        unit_greeks=arrays.unit_greeks.copy(),
        value=arrays.value.copy(),
    )


@dataclass
class MarketMemo:
    """Figures derived from the market view and the parameters, valid until either changes."""

    speed: tuple[FloatArray, FloatArray, FloatArray] | None = None  # (vol, velocity, reach), `Pricing.speed`
    checker: PreTradeChecker | None = None  # the pre-trade checker on the current risk arrays
    vectors: dict[int, Vectors] = field(default_factory=dict)  # account row -> its pre-trade vectors


def context_on(state: MarketState, params: MarginParams, scenarios: ScenarioSet, mm: ScenarioSet | None) -> RiskContext:
    """Risk arrays built at `state` on given scenario sets (a resumed stream's, kept in its state file); a new
    epoch generates its own (`engine.margin.risk_context`)."""
    time_floor = params.volatility.time_floor_days / params.days_per_year
    floor = params.volatility.vol_floor
    arrays = build_risk_arrays(state, scenarios, time_floor, floor)
    mm_arrays = None if mm is None else build_risk_arrays(state, mm, time_floor, floor)
    return RiskContext(scenarios, arrays, scenario_correlation(scenarios, params.predictive), mm, mm_arrays)


class Pricing:
    """The store, the market and the parameters, and the margin of any rows on them (see the module docstring).
    `model`: "multi" or a venue rule of `solvent.baselines`, whose IM and MM replace the model's."""

    def __init__(
        self,
        store: AccountStore,
        market: LiveMarket,
        params: MarginParams,
        context: RiskContext,
        velocity: VelocityTracker,
        *,
        history: PriceHistory | None,
        model: str,
        baselines: BaselineParams,
        portfolio_source: str,
    ) -> None:
        self.store = store
        self.market = market
        self.params = params
        self.context = context
        self.velocity = velocity
        self.history = history
        self.model = model
        self.baselines = baselines
        self.portfolio_source = portfolio_source
        self.memo = MarketMemo()
        self._last_book: tuple[tuple[int, bytes], Book] | None = None  # `book`: the last rows gathered

    # ------------------------------------------------------------------------ changes (ingest's)

    def market_moved(self) -> None:
        """Drop everything derived from the market view: call after any change of prices, risk arrays,
        velocity or parameters."""
        self.memo = MarketMemo()

    def positions_moved(self, rows: set[int] | list[int]) -> None:
        """Drop the pre-trade vectors of accounts whose positions changed."""
        for row in rows:
            self.memo.vectors.pop(row, None)

    def set_params(self, params: MarginParams) -> None:
        """New parameters (the caller starts a new epoch): the velocity keeps its EWMAs at the new half-life."""
        if params.predictive.halflife_seconds != self.params.predictive.halflife_seconds:
            kept = dict(self.velocity.state())
            kept["halflife"] = np.asarray(params.predictive.halflife_seconds / SECONDS_PER_YEAR)
            self.velocity = VelocityTracker.from_state(kept)
        self.params = params
        self.market_moved()

    def new_epoch(self, changes: Changes, now: datetime) -> None:
        """Aggregate the quoted prices, rebuild the market at `now` and regenerate the scenarios."""
        self.settle_prices(changes)
        self.market.rebuild(self.params, now)
        self.context = risk_context(self.market.state, self.params, self.history)
        self.market_moved()

    def settle_prices(self, changes: Changes) -> None:
        """Price each asset quoted since the last call once: aggregate its sources (if it has any) at the time of
        its last quote, and fold that price into its velocity."""
        if not changes.priced:
            return
        columns = sorted(changes.priced)
        for column in columns:
            if column in self.market.sources:
                self.market.aggregate_sources(column, changes.priced[column], self.params)
            self.market.follow(column, changes.priced[column], self.params)
        times = np.array([changes.priced[column] / SECONDS_PER_YEAR for column in columns])
        # One tick per asset, in column order, at the market's prices (finite and > 0: ingest sees to it).
        self.velocity.fold(np.array(columns, dtype=np.int64), times, self.market.price[columns])
        self.market_moved()
        changes.priced.clear()

    def refresh(self, changes: Changes) -> None:
        """Publish the market overlays and recompute the risk-array rows of the assets that moved."""
        self.settle_prices(changes)
        if not changes.dirty:
            return
        self.market.refresh()
        assets = np.fromiter(sorted(changes.dirty), dtype=np.int64)
        time_floor = self.params.volatility.time_floor_days / self.params.days_per_year
        floor = self.params.volatility.vol_floor
        context = self.context
        refresh_risk_arrays(context.arrays, self.market.state, context.scenarios, time_floor, assets, floor)
        if context.mm_arrays is not None and context.mm_scenarios is not None:
            refresh_risk_arrays(context.mm_arrays, self.market.state, context.mm_scenarios, time_floor, assets, floor)
        changes.dirty.clear()
        self.market_moved()

    # ------------------------------------------------------------------------------ reading

    def paused(self) -> BoolArray:
        """Assets whose oracle is degraded (any status but OK): no liquidation on their price, no new risk."""
        return np.asarray(self.market.status != OracleStatus.OK)

    def speed(self) -> tuple[FloatArray, FloatArray, FloatArray]:
        """(vol, velocity, reach) (A,), (A,), (A, 4) now: the volatility the breach probability sees (the larger of
        the state's and the fast one), the price velocity, and each asset's reach (`screen.flag_reach`)."""
        if self.memo.speed is None:
            velocity, fast = self.velocity.rates()
            vol = np.maximum(self.market.state.vol, np.where(np.isnan(fast), 0.0, fast))
            self.memo.speed = (vol, velocity, flag_reach(vol, velocity, self.params.predictive))
        return self.memo.speed

    def book(self, rows: IndexArray) -> Book:
        """`store.book_of(rows)`, reused while neither the rows nor the store change (a run of ticks on one
        asset re-margins the same accounts on the same positions)."""
        key = (self.store.version, rows.tobytes())
        last = self._last_book  # read once: a frozen copy (`frozen`) is margined from several threads
        if last is None or last[0] != key:
            last = (key, self.store.book_of(rows))
            self._last_book = last
        return last[1]

    def frozen(self, store: AccountStore) -> Pricing:
        """This read model as it is now, for readers on other threads while the stream goes on: the market view
        (immutable), a copy of the risk arrays (the stream refreshes its own in place), the parameters, the speeds
        of now, and `store` (a copy of the accounts, `AccountStore.copy`). Nothing changes it afterwards; what it
        caches (the pre-trade checker, accounts' vectors) it computes from those alone."""
        context = self.context
        frozen_context = dataclasses.replace(
            context,
            arrays=_copied(context.arrays),
            mm_arrays=None if context.mm_arrays is None else _copied(context.mm_arrays),
        )
        frozen = Pricing(
            store,
            copy.copy(self.market),  # `state` is replaced, never changed, by the stream: the copy keeps this one
            self.params,
            frozen_context,
            self.velocity,  # not read: the speeds are those of now
            history=self.history,
            model=self.model,
            baselines=self.baselines,
            portfolio_source=self.portfolio_source,
        )
        frozen.memo.speed = self.speed()
        return frozen

    def standing(self, row: int, equity: float, flagged: bool, in_liquidation: bool, screened: bool) -> Standing:
        """(equity, early flag, in liquidation) of one account now, for the pre-trade check, from its stored
        figures: a screened account's date from an earlier cycle, so it is margined afresh (nothing stored)."""
        if screened:
            fresh = self.margin(np.array([row], dtype=np.int64))[1]
            assert fresh.early_flag is not None
            equity, flagged = float(fresh.equity[0]), bool(fresh.early_flag[0] and not in_liquidation)
        return equity, flagged, in_liquidation

    def margin(self, rows: IndexArray) -> tuple[Book, MarginResult]:
        """Margin `rows` now; the breach probability sees the fast volatility and the price velocity."""
        book = self.book(rows)
        vol, velocity, _ = self.speed()
        result = margin_accounts(
            book, self.market.state, self.params, self.context, self.portfolio_source, vol=vol, velocity=velocity
        )
        if self.model != "multi":
            result = self._under_baseline(book, result, vol, velocity)
        return book, result

    def _under_baseline(self, book: Book, result: MarginResult, vol: FloatArray, velocity: FloatArray) -> MarginResult:
        """The same accounts with IM and MM of the venue rule `self.model` (equity, Greeks as margined): what a
        venue running that rule would see. The breach probability is taken against the rule's MM."""
        state = self.market.state
        rule_im, rule_mm = self._rule(book, vol)
        loss_vol, _, probability, flagged = book_breach(
            result.held_greeks,
            state.price,
            vol,
            self.context.correlation,
            result.equity,
            rule_mm,
            self.params.predictive,
            velocity=velocity,
            held=result.held,
        )
        with np.errstate(divide="ignore", invalid="ignore"):
            health = np.where(rule_mm > 0.0, result.equity / np.where(rule_mm > 0.0, rule_mm, 1.0), np.inf)
        return dataclasses.replace(
            result,
            terms={self.model: rule_im},
            held_terms={},
            im=rule_im,
            mm=rule_mm,
            health=health,
            liquidatable=result.equity < rule_mm,
            breach_probability=probability,
            early_flag=flagged & (rule_mm > 0.0),
            loss_vol=loss_vol,
        )

    def requirement(self, book: Book) -> FloatArray:
        """IM of `book` (accounts at trial quantities) under this stream's model."""
        state = self.market.state
        if self.model == "multi":
            return margin_accounts(book, state, self.params, self.context, self.portfolio_source, predictive=False).im
        return self._rule(book, self.speed()[0])[0]

    def _rule(self, book: Book, vol: FloatArray) -> tuple[FloatArray, FloatArray]:
        """(IM, MM) of `book` under the stream's model other than multi: a venue rule, or `vol_only` at the fast
        volatility `vol` (what a volatility-scaled limit would charge as the stream sees the market)."""
        state = self.market.state
        if self.model == VOL_ONLY:
            return vol_scaled_requirement(book, state, self.params, vol)
        time_floor = self.params.volatility.time_floor_days / self.params.days_per_year
        rule = baseline_margin(
            book, state, self.baselines, self.model, unit_value=option_unit_values(state, time_floor)
        )
        return rule.im, rule.mm

    def closeout_inputs(self, book: Book) -> tuple[CloseOutBook, CloseOutMarket]:
        """`book`'s positions and the market as the close-out sizer sees them."""
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

    def exposed_to(self, row: int, assets: IndexArray) -> list[str]:
        """The assets of `assets` the account holds now: a non-zero position on one of their instruments or a
        non-zero balance of the asset itself."""
        store = self.store
        slots = store.used_slots(np.array([row], dtype=np.int64))
        held = store.pos_quantity[slots] != 0.0
        on = set(store.instrument_asset[store.pos_instrument[slots][held]].tolist())
        for c, asset in enumerate(store.collateral_assets):
            if asset in store.asset_of and store.balance[row, c] != 0.0:
                on.add(store.asset_of[asset])
        return [self.market.assets[a] for a in assets.tolist() if a in on]

    def cash_asset(self) -> int:
        """The settlement currency's column in the market (-1 if it is not quoted)."""
        return self.market.state.asset_index.get(CASH, -1)
