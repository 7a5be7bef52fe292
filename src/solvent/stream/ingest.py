"""Ingest, the stream's first stage: feed records in, market and account changes out.

`Ingest.apply` books each record of a batch on the store and the market (or refuses it, as `InputRejected` /
`FillRejected`) and returns the `Changes` the monitor re-margins from. It never margins the book, except the
one account a withdrawal would leave short of IM.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from solvent.engine.margin import margin_accounts
from solvent.engine.whatif import off_market
from solvent.errors import InputError, ModelError
from solvent.formats.provenance import canonical_sha256
from solvent.market.state import OPTION, build_market_state
from solvent.params import MarginParams
from solvent.scenarios import generate_scenarios
from solvent.stream import events as ev
from solvent.stream.feed import Deposit, DepthChange, FeedRecord, Fill, Quote, VolChange, Withdrawal
from solvent.stream.ledger import Changes, Journal, Totals, seconds
from solvent.stream.pricing import Pricing
from solvent.stream.store import CASH


def params_digest(params: MarginParams) -> str:
    """SHA-256 of the parameters' canonical JSON (the provenance's digest): what `ParametersChanged` reports."""
    return canonical_sha256(params)


def supported(params: MarginParams, where: str) -> None:
    """Refuse settings the streaming engine cannot yet honour (they need the whole venue's open interest)."""
    conc = params.concentration
    if conc.enabled and (conc.oi_share is not None or (conc.form == "ramp" and conc.ramp_driver != "account")):
        raise ModelError(
            f"{where}: concentration driven by the venue's open interest (oi_share, or a ramp on open_interest) "
            "is not supported by the streaming engine yet"
        )


def unwatched_deleverage(params: MarginParams, reflag: bool) -> str | None:
    """Why `params` cannot run on a stream publishing first flags only (None if they can): a deleveraging flag
    sizes liquidations, so every one must be watched."""
    if not reflag and params.predictive.action == "deleverage":
        return "predictive.action 'deleverage' needs every early flag watched; this stream has reflag=False"
    return None


class Ingest:
    """Books feed records on the store and the market. `reflag`: whether the stream watches every early flag
    (new parameters must agree with it)."""

    def __init__(self, reflag: bool) -> None:
        self.reflag = reflag

    def apply(self, pricing: Pricing, records: Sequence[FeedRecord], out: Journal, totals: Totals) -> Changes:
        """Apply one batch's records in order; rejections go to `out`. Returns what changed."""
        changes = Changes()
        for record in records:
            self._apply(pricing, record, changes, out, totals)
        return changes

    def _reject(self, out: Journal, totals: Totals, record: FeedRecord, field_name: str, reason: str) -> None:
        totals.rejected += 1
        record_type = type(record).__struct_config__.tag
        out.emit(ev.InputRejected, record.time, record.seq, record=str(record_type), field=field_name, reason=reason)

    def _account(
        self, pricing: Pricing, record: Fill | Deposit | Withdrawal, out: Journal, totals: Totals
    ) -> int | None:
        row = pricing.store.row_of.get(record.account)
        if row is None:
            self._reject(out, totals, record, "account", f"unknown account {record.account!r}")
        return row

    def _asset(
        self, pricing: Pricing, record: Quote | DepthChange | VolChange, out: Journal, totals: Totals
    ) -> int | None:
        column = pricing.market.base.asset_index.get(record.asset)  # the epoch's state: the same columns
        if column is None or record.asset == CASH:
            self._reject(out, totals, record, "asset", f"unknown asset {record.asset!r}")
            return None
        return column

    def _apply(self, pricing: Pricing, record: FeedRecord, changes: Changes, out: Journal, totals: Totals) -> None:
        store, market = pricing.store, pricing.market
        if isinstance(record, Quote):
            self._quote(pricing, record, changes, out, totals)
        elif isinstance(record, Fill):
            row = self._account(pricing, record, out, totals)
            instrument = store.instrument_row.get(record.instrument)
            if row is None:
                return
            if instrument is None:
                self._reject(out, totals, record, "instrument", f"unknown instrument {record.instrument!r}")
                return
            if self._off_market(pricing, record, instrument, changes, out, totals):
                return
            store.trade(row, instrument, record.quantity, record.price, record.fee)
            pricing.positions_moved([row])
            changes.touched.add(row)
        elif isinstance(record, Deposit):
            row = self._account(pricing, record, out, totals)
            if row is not None:
                if record.asset != CASH and record.asset not in market.state.asset_index:
                    self._reject(out, totals, record, "asset", f"unknown asset {record.asset!r}")
                    return
                store.credit(row, record.asset, record.amount)
                changes.touched.add(row)
        elif isinstance(record, Withdrawal):
            self._withdraw(pricing, record, changes, out, totals)
        elif isinstance(record, DepthChange):
            column = self._asset(pricing, record, out, totals)
            if column is not None:
                market.depth_scale[column] = record.scale
                changes.rescaled.add(column)
                changes.moved.add(column)
                changes.dirty.add(column)
        elif isinstance(record, VolChange):
            column = self._asset(pricing, record, out, totals)
            if column is not None:
                market.vol_override[column] = record.vol
                changes.new_epoch = True
        else:
            problem = self._params_problem(pricing, record.params)
            if problem is not None:
                self._reject(out, totals, record, "params", problem)
                return
            pricing.set_params(record.params)
            changes.new_epoch = True
            out.emit(ev.ParametersChanged, record.time, record.seq, digest=params_digest(record.params))

    def _off_market(
        self, pricing: Pricing, record: Fill, instrument: int, changes: Changes, out: Journal, totals: Totals
    ) -> bool:
        """Reject a fill priced outside `pretrade.price_band` around the instrument's mark, the pre-trade check's
        rule (`whatif.off_market`): published as `FillRejected`, never booked. The mark is this moment's: an asset
        quoted earlier in the batch is published first."""
        state = pricing.market.state
        if int(state.instruments.asset[instrument]) in changes.dirty:
            pricing.refresh(changes)
            state = pricing.market.state
        forward = float(state.forward[instrument])
        mark = forward
        if int(state.instruments.kind[instrument]) == OPTION:
            mark = float(pricing.context.arrays.value[instrument]) / float(state.instruments.contract_size[instrument])
        band = pricing.params.pretrade.price_band
        if not off_market(record.price, mark, forward, band):
            return False
        totals.rejected += 1
        reason = (
            f"price {record.price!r} is {abs(record.price - mark) / forward:.2%} of the forward from the mark "
            f"{mark!r}, outside the band of {band:.2%}"
        )
        out.emit(
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
        return True

    def _params_problem(self, pricing: Pricing, params: MarginParams) -> str | None:
        """Why `params` cannot take over this stream (None if they can): a setting the engine does not support,
        or a market or scenario set they cannot build here (fhs without a history, depth they require)."""
        problem = unwatched_deleverage(params, self.reflag)
        if problem is not None:
            return problem
        try:
            supported(params, "params")
            market = pricing.market
            state = build_market_state(
                list(pricing.store.instruments), market.snapshot, params, pricing.portfolio_source, market.source
            )
            generate_scenarios(state, params, pricing.history)
        except (ModelError, InputError) as error:
            return str(error)
        return None

    def _quote(self, pricing: Pricing, record: Quote, changes: Changes, out: Journal, totals: Totals) -> None:
        column = self._asset(pricing, record, out, totals)
        if column is None:
            return
        if not (math.isfinite(record.price) and record.price > 0.0):  # decoded feeds are checked already
            self._reject(out, totals, record, "price", f"must be finite and > 0, got {record.price!r}")
            return
        now = seconds(record.time)
        stamp = now if record.timestamp is None else seconds(record.timestamp)
        if stamp > now + pricing.params.oracle.future_tolerance_s:
            self._reject(out, totals, record, "timestamp", "published after it was received (a future timestamp)")
            return
        market = pricing.market
        if record.source is None:
            if column in market.sources:
                reason = f"{record.asset} is priced from oracle sources: name the source"
                self._reject(out, totals, record, "source", reason)
                return
            market.set_price(column, record.price)
        else:
            market.store_source(column, record.source, record.price, record.confidence, stamp)
        changes.priced[column] = now
        changes.moved.add(column)
        changes.dirty.add(column)

    def _withdraw(self, pricing: Pricing, record: Withdrawal, changes: Changes, out: Journal, totals: Totals) -> None:
        """Pay out only if equity stays at or above IM afterwards (at this moment's prices)."""
        row = self._account(pricing, record, out, totals)
        if row is None:
            return
        store = pricing.store
        if record.asset not in store.collateral_assets:
            self._reject(out, totals, record, "asset", f"the account holds no {record.asset}")
            return
        column = store.column(record.asset)
        if store.balance[row, column] < record.amount:
            reason = f"exceeds the balance of {float(store.balance[row, column])!r}"
            self._reject(out, totals, record, "amount", reason)
            return
        pricing.refresh(changes)
        held = float(store.balance[row, column])
        store.credit(row, record.asset, -record.amount)
        paused = np.flatnonzero(pricing.paused())
        still = pricing.exposed_to(row, paused) if paused.size else []
        if still:  # while an oracle is degraded only a withdrawal that ends the exposure to it lowers risk
            store.set_balance(row, record.asset, held)
            reason = f"oracle degraded on {', '.join(still)}: the account stays exposed"
            self._reject(out, totals, record, "amount", reason)
            return
        result = margin_accounts(
            store.book_of(np.array([row])),
            pricing.market.state,
            pricing.params,
            pricing.context,
            pricing.portfolio_source,
        )
        if not result.equity[0] >= result.im[0]:
            store.set_balance(row, record.asset, held)
            reason = f"equity {result.equity[0]:.2f} would fall below IM {result.im[0]:.2f}"
            self._reject(out, totals, record, "amount", reason)
            return
        changes.touched.add(row)
