"""The monitor: re-margins the accounts a batch can have changed and publishes every change of status or
early flag (`MarginCallIssued`, `AccountBecameLiquidatable`, `AccountRecovered`, `AccountFlaggedEarly`), and of
the oracles (`LiquidationsPaused` / `LiquidationsResumed`). It owns the accounts' `Figures` and the health
screen (`stream.screen`), which spares the re-margin of accounts a move cannot have changed.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from datetime import datetime

import numpy as np
from numpy.typing import NDArray

from solvent.engine.results import MarginResult
from solvent.factors.concentration import tier_multiplier
from solvent.market.oracle import OracleStatus
from solvent.stream import events as ev
from solvent.stream.ledger import (
    DUST_USD,
    HEALTHY,
    LIQUIDATABLE,
    MARGIN_CALL,
    BoolArray,
    Changes,
    Figures,
    IndexArray,
    Journal,
    Totals,
    seconds,
)
from solvent.stream.pricing import Pricing
from solvent.stream.screen import HealthScreen, Holdings, Reach, Standing, diffusion_reach
from solvent.stream.store import CASH


class Monitor:
    """Figures and status events of every account. `margin_calls`, `reflag`: see `StreamEngine`."""

    def __init__(self, figures: Figures, screen: HealthScreen | None, margin_calls: bool, reflag: bool) -> None:
        self.figures = figures
        self.screen = screen
        self.margin_calls = margin_calls
        self.reflag = reflag
        # Told of every re-margin (the rows, their result, the batch's cause): a service keeps each account's last
        # full figures from it (service/view.py). It must not change the stream.
        self.on_remargin: Callable[[IndexArray, MarginResult, int], None] | None = None

    def oracles(self, pricing: Pricing, was: BoolArray, now: datetime, cause: int, out: Journal) -> None:
        """`LiquidationsPaused` / `LiquidationsResumed` for every asset whose oracle left or regained OK since `was`."""
        market = pricing.market
        now_paused = pricing.paused()
        for a in np.flatnonzero(now_paused != was).tolist():
            name = market.assets[a]
            if now_paused[a]:
                out.emit(ev.LiquidationsPaused, now, cause, asset=name, reason=OracleStatus(int(market.status[a])).name)
            else:
                out.emit(ev.LiquidationsResumed, now, cause, asset=name, reason="OK")

    def due(self, pricing: Pricing, changes: Changes) -> IndexArray:
        """The accounts a batch can have changed, ascending: those exposed to an asset that moved and those that
        traded or moved collateral; with the screen, of the first only the hot ones and the screened ones whose
        band the move left (every exposed account where depth changed or the asset is the settlement currency)."""
        store = pricing.store
        moved = np.fromiter(sorted(changes.moved), dtype=np.int64)
        touched = np.fromiter(sorted(changes.touched), dtype=np.int64)
        if self.screen is None:
            exposed = np.zeros(store.n_accounts, dtype=np.bool_)
            if moved.size:
                exposed |= store.exposed[moved].any(axis=0)
            exposed[touched] = True
            return np.flatnonzero(exposed).astype(np.int64)
        cash = pricing.cash_asset()
        # A move that re-margins every exposed account even under the screen: depth changed, or it is the
        # settlement currency (it moves all cash).
        whole = np.array([a for a in moved.tolist() if a in changes.rescaled or a == cash], dtype=np.int64)
        parts = [touched]
        if whole.size:
            parts.append(np.flatnonzero(store.exposed[whole].any(axis=0)).astype(np.int64))
        if moved.size:
            hot = self.screen.hot_rows()
            parts.append(hot[store.exposed[moved[:, np.newaxis], hot].any(axis=0)])
            mask = np.zeros(len(pricing.market.assets), dtype=np.bool_)
            mask[moved] = True
            mask[whole] = False
            state = pricing.market.state
            parts.append(
                self.screen.due(mask, state.price, pricing.speed()[2], state.oracle_uncertainty, state.stable_price)
            )
            parts += [self.screen.holding(a) for a in np.flatnonzero(mask).tolist()]
        parts = [part for part in parts if part.size]
        if len(parts) <= 1:  # each part is ascending and unique
            return parts[0] if parts else touched
        due = np.zeros(store.n_accounts, dtype=np.bool_)  # their union, ascending (a mask: no sort of 10^5 rows)
        for part in parts:
            due[part] = True
        return np.flatnonzero(due).astype(np.int64)

    def remargin(
        self, pricing: Pricing, rows: IndexArray, now: datetime, cause: int, out: Journal, totals: Totals
    ) -> None:
        """Recompute `rows` (ascending), store their figures and publish every change of status or flag."""
        if rows.size == 0:
            return
        _, result = pricing.margin(rows)
        totals.remargined += int(rows.size)
        assert result.breach_probability is not None and result.early_flag is not None and result.loss_vol is not None
        f = self.figures
        if rows.size == f.im.size:  # every account (rows are ascending and unique): slices, not gathers
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
        target = pricing.params.liquidation.target * result.im
        f.in_liquidation[rows_or_all] &= ~(result.equity >= target - DUST_USD)  # liquidation stops at target x IM
        raised = flagged & ~old_flag
        if not self.reflag:  # only first flags
            raised &= np.isnan(f.first_flag[rows_or_all])
        changed = np.flatnonzero((status != old_status) | raised)
        if changed.size:
            names = pricing.store.account_ids[rows[changed]].tolist()
            self._publish(
                rows[changed],
                names,
                status[changed],
                old_status[changed],
                raised[changed],
                result,
                changed,
                now,
                cause,
                out,
            )
        if self.screen is not None:
            self._update_screen(pricing, rows, result)
        if self.on_remargin is not None:
            self.on_remargin(rows, result, cause)

    def _publish(
        self,
        rows: IndexArray,
        names: list[object],
        status: NDArray[np.int8],
        old_status: NDArray[np.int8],
        raised: BoolArray,
        result: MarginResult,
        at: IndexArray,
        now: datetime,
        cause: int,
        out: Journal,
    ) -> None:
        """The events of `rows` whose status changed or whose early flag was `raised` (their figures at `at` in
        `result`), in row order; marks the first liquidatable and first flagged times."""
        assert result.breach_probability is not None and result.loss_vol is not None
        f = self.figures
        clock = seconds(now)
        equity, im, mm = result.equity[at].tolist(), result.im[at].tolist(), result.mm[at].tolist()
        breach, loss_vol = result.breach_probability[at].tolist(), result.loss_vol[at].tolist()
        changes = zip(rows.tolist(), status.tolist(), old_status.tolist(), raised.tolist(), strict=True)
        events = out.events
        seq = out.next_seq  # the events are built here directly: a crash publishes millions of them
        for k, (row, new, old, flag) in enumerate(changes):
            name = str(names[k])
            if new == LIQUIDATABLE and old != LIQUIDATABLE:
                f.in_liquidation[row] = True
                if math.isnan(f.first_liquidatable[row]):
                    f.first_liquidatable[row] = clock
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
                    f.first_flag[row] = clock
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
        out.next_seq = seq

    def _update_screen(self, pricing: Pricing, rows: IndexArray, result: MarginResult) -> None:
        """New bands for `rows` just re-margined (`result`): which of them the screen can watch (`stream.screen`)."""
        assert self.screen is not None
        store, market, params, f = pricing.store, pricing.market, pricing.params, self.figures
        cash = store.collateral_assets.index(CASH)
        balances = store.balance[rows]
        held = balances != 0.0
        held[:, cash] = False
        # One collateral asset besides USD at most, valued at its price alone (no haircut on the positions' delta,
        # no scenario of its own): a move of its price re-margins the account (`HealthScreen.holding`).
        excluded = (held.sum(axis=1) > 1) | (held.any(axis=1) & (params.collateral.mode != "none"))
        columns = np.array([store.asset_of.get(name, -1) for name in store.collateral_assets], dtype=np.int64)
        collateral = np.where(held.any(axis=1), columns[np.argmax(held, axis=1)], -1).astype(np.int64)
        concentration = params.concentration
        if pricing.model == "multi" and concentration.enabled and concentration.form == "ramp":
            excluded[:] = True  # an IMF ramping with notional may grow faster than the screen's bound
        sourced = np.zeros(len(market.assets), dtype=np.bool_)
        sourced[list(market.sources)] = True
        state = market.state
        holdings = Holdings(
            store.start,
            store.count,
            store.pos_instrument,
            store.pos_quantity,
            store.pos_venue,
            store.instrument_asset,
            store.linear,
            excluded,
            collateral,
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
            tier=tier_multiplier(store.risk_tier[rows]),
            dust=DUST_USD,
            target=params.liquidation.target,
            deleverage=params.predictive.action == "deleverage",
            calls=self.margin_calls,
            oracle_buffer=params.oracle.buffer_multiplier,
            scan=params.oracle.uncertainty_charge == "scan",
        )
        stable = state.stable_price if state.stable_price.size else state.price
        reach = Reach(
            state.price,
            pricing.speed()[2],
            diffusion_reach(state.vol, params.predictive),
            sourced,
            np.ascontiguousarray(state.oracle_uncertainty, dtype=np.float64),
            np.ascontiguousarray(stable, dtype=np.float64),
        )
        self.screen.update(rows, holdings, standing, reach)

    def freshen(self, pricing: Pricing, now: datetime, cause: int, out: Journal, totals: Totals) -> None:
        """Re-margin the screened accounts (their figures date from their last re-margin) before something reads
        every account's figures; by the screen's bounds no status or flag changes."""
        if self.screen is not None:
            self.remargin(pricing, self.screen.screened_rows(), now, cause, out, totals)

    def standing(self, pricing: Pricing, row: int) -> tuple[float, bool, bool]:
        """(equity, flagged, in liquidation) of one account now, for the pre-trade check (`Pricing.standing`)."""
        f = self.figures
        screened = self.screen is not None and bool(self.screen.asset[row] >= 0)
        return pricing.standing(row, float(f.equity[row]), bool(f.flagged[row]), bool(f.in_liquidation[row]), screened)
