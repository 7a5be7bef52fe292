"""The backstop: the insurance fund, auto-deleveraging and socialised loss for accounts the liquidator found
bankrupt (`liquidation.waterfall`), applied to the store as trades and transfers (`AutoDeleveraged`,
`LiquidationExecuted` "bankruptcy", `InsuranceFundPaid`, `LossSocialised`, `LossUnresolved`).

Two steps, so that the engine can bring every account's equity up to date between them when the fund alone
cannot pay (`Claim.needs_every_equity`): `claim` gathers what the waterfall needs, `resolve` runs and applies it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime

import numpy as np

from solvent.engine.book import Book
from solvent.liquidation.closeout import closeout_cost
from solvent.liquidation.waterfall import WaterfallResult, run_waterfall
from solvent.stream import events as ev
from solvent.stream.ledger import DUST_USD, FloatArray, IndexArray, Journal, Totals
from solvent.stream.pricing import Pricing
from solvent.stream.store import CASH


@dataclass(frozen=True)
class Claim:
    """The waterfall's inputs for `bankrupt`: the positions it can touch (`keep`: store slots), their marks and
    each one's share of closing the bankrupt books, and every account's linear gross notional."""

    bankrupt: IndexArray
    book: Book
    keep: IndexArray
    mark: FloatArray
    close_cost: FloatArray
    gross: FloatArray
    needs_every_equity: bool  # the fund cannot pay it all: ADL ranks and socialisation charge every account


class Backstop:
    """The insurance fund (`fund`, USD; `fund_start`: at the stream's start) and the waterfall."""

    def __init__(self, fund: float, fund_start: float | None = None) -> None:
        self.fund = float(fund)
        self.fund_start = self.fund if fund_start is None else float(fund_start)

    def collect(self, fees: list[float]) -> None:
        """Liquidation fees, paid into the fund one by one (in trade order)."""
        for fee in fees:
            self.fund += fee

    def claim(self, pricing: Pricing, equity: FloatArray, bankrupt: IndexArray) -> Claim:
        """What the waterfall for `bankrupt` needs, and whether it reads every account's equity (`equity`: the
        bankrupt accounts' are current)."""
        store = pricing.store
        book = store.whole_book()  # position row p is store slot p
        state = pricing.market.state
        account = book.position_account()
        inst = book.pos_instrument
        linear = store.linear[inst]
        mark = np.where(linear, state.forward[inst], pricing.context.arrays.value[inst])
        size = store.contract_size[inst]
        weights = np.where(linear, np.abs(book.pos_quantity) * size * mark, 0.0)
        gross = np.bincount(account, weights=weights, minlength=store.n_accounts).astype(np.float64, copy=False)
        # Only the positions the waterfall can touch: the bankrupt accounts' and, on their linear instruments,
        # everyone else's (the ADL candidates); store slots, so the result's rows map back to slots.
        theirs_slots = store.used_slots(bankrupt)
        exposed_to = np.zeros(len(store.instruments), dtype=np.bool_)
        exposed_to[inst[theirs_slots][linear[theirs_slots]]] = True
        keep = np.flatnonzero((book.pos_quantity != 0.0) & exposed_to[inst] & linear)
        keep = np.union1d(keep, theirs_slots)
        # Each position's share of closing the bankrupt accounts' whole books at once (the sizer's netted cost,
        # split by `closeout_cost`'s fill prices), so the waterfall sees the deficit the sizer found.
        theirs, market = pricing.closeout_inputs(store.book_of(bankrupt))
        _, fill = closeout_cost(theirs, theirs.quantity, market)
        per_position = np.zeros(book.pos_quantity.size)
        per_position[theirs_slots] = np.abs(theirs.quantity) * np.abs(fill - theirs.mark)
        # ADL ranks, and socialisation charges, every account by its equity; the fund alone reads only the
        # bankrupt accounts' (just re-margined). A fund above what closing them could cost beyond their equity
        # pays it all.
        needs = not self.fund >= float(per_position.sum() + np.abs(equity[bankrupt]).sum())
        return Claim(bankrupt, book, keep, mark, per_position, gross, needs)

    def resolve(
        self,
        pricing: Pricing,
        claim: Claim,
        equity: FloatArray,
        now: datetime,
        cause: int,
        out: Journal,
        totals: Totals,
    ) -> set[int]:
        """Run the waterfall on `equity` (every account's, current where the claim needs it) and apply its
        trades and transfers; returns every account it changed."""
        store = pricing.store
        book, keep, mark = claim.book, claim.keep, claim.mark
        inst = book.pos_instrument
        linear = store.linear[inst]
        entry = np.where(linear & np.isnan(book.pos_entry), mark, book.pos_entry)  # a flat slot: any entry
        result = run_waterfall(
            claim.bankrupt,
            equity,
            self.fund,
            pos_account=book.position_account()[keep],
            pos_instrument=inst[keep],
            pos_quantity=book.pos_quantity[keep],
            pos_entry=entry[keep],
            pos_mark=mark[keep],
            contract_size=store.contract_size[inst][keep],
            is_linear=linear[keep],
            pos_close_cost=claim.close_cost[keep],
            account_gross=claim.gross,
        )
        touched = self._apply(pricing, result, keep, book, mark, now, cause, out, totals)
        self._settle_dust(pricing, result.accounts)
        return touched

    def _settle_dust(self, pricing: Pricing, rows: IndexArray) -> None:
        """Book the rounding left on flat, settled accounts (|equity| <= DUST_USD) against the insurance fund,
        so that a settled account stands at exactly 0 and is not found bankrupt again by a few ulps."""
        _, result = pricing.margin(rows)
        flat = pricing.store.is_flat(rows) & (np.abs(result.equity) <= DUST_USD)
        for k in np.flatnonzero(flat).tolist():
            residual = float(result.equity[k])
            if self.fund + residual < 0.0:
                continue  # an empty fund cannot take it: the account keeps it, below the liquidation threshold
            pricing.store.credit(int(rows[k]), CASH, -residual)
            self.fund += residual

    def _apply(
        self,
        pricing: Pricing,
        result: WaterfallResult,
        slot_of: IndexArray,
        book: Book,
        mark: FloatArray,
        now: datetime,
        cause: int,
        out: Journal,
        totals: Totals,
    ) -> set[int]:
        store = pricing.store
        names = store.account_ids
        account_of = book.position_account()
        touched = set(result.accounts.tolist())
        ids = store.instruments
        for f in range(result.adl_quantity.size):
            bankrupt_row = int(result.adl_bankrupt[f])
            counterparty = int(result.adl_counterparty[f])
            instrument = int(result.adl_instrument[f])
            quantity = float(result.adl_quantity[f])
            price = float(result.adl_price[f])
            store.trade(counterparty, instrument, -quantity, price, slot=int(slot_of[result.adl_row[f]]))
            # The bankrupt side: its position in the instrument on the other side of the counterparty's.
            bankrupt_slot = store.find_signed(bankrupt_row, instrument, -math.copysign(1.0, quantity))
            store.trade(bankrupt_row, instrument, quantity, price, slot=bankrupt_slot)
            touched.add(counterparty)
            totals.adl_fills += 1
            out.emit(
                ev.AutoDeleveraged,
                now,
                cause,
                account=str(names[bankrupt_row]),
                counterparty=str(names[counterparty]),
                instrument=ids[instrument].id,
                quantity=quantity,
                price=price,
            )
        for c in range(result.close_row.size):
            p = int(slot_of[result.close_row[c]])
            row = int(account_of[p])
            quantity = float(result.close_quantity[c])
            if quantity == 0.0:
                continue
            instrument = int(book.pos_instrument[p])
            linear = bool(store.linear[instrument])
            per_contract = float(result.close_cost[c]) / abs(quantity)
            size = float(store.contract_size[instrument])
            mark_per_unit = float(mark[p]) if linear else float(mark[p]) / size  # options' mark is per contract
            price = mark_per_unit - math.copysign(per_contract / size, quantity)
            store.trade(row, instrument, -quantity, price, slot=p)
            totals.liquidations += 1
            totals.liquidated_notional += abs(quantity) * size * abs(mark_per_unit)
            out.emit(
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
        for k, row in enumerate(result.accounts.tolist()):
            paid = float(result.fund_paid[k]) - float(result.fund_received[k])
            socialised = float(result.socialised[k])
            store.credit(row, CASH, paid + socialised)
            name = str(names[row])
            if result.fund_paid[k] > 0.0:
                amount = float(result.fund_paid[k])
                out.emit(
                    ev.InsuranceFundPaid, now, cause, account=name, amount=amount, fund_after=float(result.fund_after)
                )
            if socialised > 0.0:
                charged = int(np.count_nonzero(result.charges))
                out.emit(ev.LossSocialised, now, cause, account=name, amount=socialised, accounts_charged=charged)
            if result.unresolved[k] > 0.0:
                out.emit(ev.LossUnresolved, now, cause, account=name, amount=float(result.unresolved[k]))
        for row in np.flatnonzero(result.charges).tolist():
            store.credit(row, CASH, -float(result.charges[row]))
            touched.add(row)
        totals.fund_paid += float(result.fund_paid.sum())
        totals.socialised += float(result.socialised.sum())
        totals.unresolved += float(result.unresolved.sum())
        self.fund = float(result.fund_after)
        return touched
