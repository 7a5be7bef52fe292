"""The liquidator: one partial close-out slice for every account due one (`liquidation.closeout`), traded at
its fill prices (`LiquidationExecuted`). Accounts the sizer finds bankrupt are left to the backstop (`Sliced`).
"""

from __future__ import annotations

import dataclasses
from datetime import datetime

import numpy as np

from solvent.engine.attribution import position_contributions
from solvent.engine.book import Book
from solvent.engine.margin import account_equity
from solvent.liquidation.closeout import CloseOutBook, CloseOutPlan, plan_closeout
from solvent.stream import events as ev
from solvent.stream.ledger import Figures, FloatArray, IndexArray, Journal, Sliced, Totals, seconds
from solvent.stream.pricing import Pricing


def _with_quantity(book: Book, quantity: FloatArray) -> Book:
    return dataclasses.replace(book, pos_quantity=quantity)


class Liquidator:
    """Sizes and executes close-out slices; its own state is the accounts' cooldowns (`Figures.cooldown_until`)."""

    def due(self, pricing: Pricing, figures: Figures, now: datetime) -> IndexArray:
        """Accounts due a slice: in liquidation (or flagged, under `deleverage`) and out of their cooldown."""
        f = figures
        params = pricing.params
        rows = np.flatnonzero(f.in_liquidation)
        if params.predictive.action == "deleverage":  # flagged accounts are hot: their figures are current
            eager = f.flagged & (f.equity < params.liquidation.target * f.im)
            rows = np.union1d(rows, np.flatnonzero(eager))
        paused = pricing.paused()
        if paused.any() and rows.size:  # nobody exposed to a degraded oracle is liquidated on its price
            rows = rows[~pricing.store.exposed[np.flatnonzero(paused)][:, rows].any(axis=0)]
        return rows[f.cooldown_until[rows] <= seconds(now)].astype(np.int64)

    def slice(
        self, pricing: Pricing, figures: Figures, now: datetime, cause: int, out: Journal, totals: Totals
    ) -> Sliced | None:
        """One slice for every account due one, their cooldowns restarted; None when no account is due."""
        rows = self.due(pricing, figures, now)
        if rows.size == 0:
            return None
        book = pricing.book(rows)
        params = pricing.params
        # Under the screen the stored equity may date from an earlier cycle; the sizer needs only equity, the
        # same under every model.
        equity = account_equity(book, pricing.market.state, params, pricing.context, pricing.portfolio_source)
        closeout_book, market = pricing.closeout_inputs(book)

        def requirement(quantity: FloatArray) -> FloatArray:
            return pricing.requirement(_with_quantity(book, quantity))

        priority = None
        if params.liquidation.method == "greedy":  # each position's Euler contribution to market risk
            priority = position_contributions(
                book.pos_offsets,
                book.pos_instrument,
                book.pos_quantity,
                pricing.context.arrays,
                params.confidence,
                params.measure,
            )
        plan = plan_closeout(closeout_book, equity, requirement, market, params.liquidation, priority)
        fees = self._execute(pricing, figures, rows, closeout_book, plan, now, cause, out, totals)
        figures.cooldown_until[rows] = seconds(now) + params.liquidation.cooldown_seconds
        return Sliced(rows=rows, bankrupt=rows[plan.bankrupt], fees=fees)

    def _execute(
        self,
        pricing: Pricing,
        figures: Figures,
        rows: IndexArray,
        book: CloseOutBook,
        plan: CloseOutPlan,
        now: datetime,
        cause: int,
        out: Journal,
        totals: Totals,
    ) -> list[float]:
        """Trade every non-bankrupt slice at its fill prices; returns each trade's fee (for the insurance fund),
        the account's fee split across its closes pro rata to notional."""
        store = pricing.store
        account = book.position_account()
        slots = store.used_slots(rows)  # the store slot of each position of `book` (gathered in that order)
        closing = np.flatnonzero((plan.close != 0.0) & ~plan.bankrupt[account])
        notional = np.abs(plan.close) * book.notional
        with np.errstate(divide="ignore", invalid="ignore"):
            share = np.where(plan.notional[account] > 0.0, notional / plan.notional[account], 0.0)
        fees = plan.fee[account] * share
        prices = plan.fill_price / store.contract_size[book.instrument]
        closed = rows[account[closing]]
        store.reduce(closed, slots[closing], plan.close[closing], prices[closing], fees[closing])
        instrument_ids = store.instrument_ids
        paid: list[float] = fees[closing].tolist()
        trades = zip(
            store.account_ids[closed].tolist(),
            book.instrument[closing].tolist(),
            (-plan.close[closing]).tolist(),
            prices[closing].tolist(),
            paid,
            notional[closing].tolist(),
            figures.in_liquidation[closed].tolist(),
            strict=True,
        )
        events = out.events
        seq = out.next_seq  # built here directly: a crash executes hundreds of thousands of slices
        for name, instrument, quantity, price, fee, traded, maintenance in trades:
            totals.fees_to_fund += fee
            totals.liquidations += 1
            totals.liquidated_notional += traded
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
        out.next_seq = seq
        return paid
