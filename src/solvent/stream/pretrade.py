"""Pre-trade: whether an account may trade now, and its IM after (`engine.whatif`), in O(S) per question.

The checker and each account's scenario vectors are kept in the read model's `MarketMemo`, which drops them
when the market or the account's positions change.
"""

from __future__ import annotations

import math

import numpy as np

from solvent.engine.whatif import (
    Decision,
    PreTradeChecker,
    account_greeks,
    account_scenario_pnl,
    concentration_thresholds,
)
from solvent.factors.basis import account_books
from solvent.factors.concentration import tier_multiplier
from solvent.stream.ledger import FloatArray
from solvent.stream.pricing import Pricing, Vectors
from solvent.stream.store import CASH


def refused(reason: str) -> Decision:
    """A refusal with no figures (the check could not run)."""
    return Decision(allowed=False, reason=reason, im_before=math.nan, im_after=math.nan, equity_after=math.nan)


class PreTrade:
    """Answers what-if questions on the read model; holds no state of its own."""

    def check(
        self,
        pricing: Pricing,
        row: int,
        inst: int,
        quantity: float,
        price: float,
        fee: float,
        standing: tuple[float, bool, bool],
    ) -> Decision:
        """Whether account `row` may trade `quantity` of instrument `inst` at `price`; `standing`: its (equity,
        early flag, in liquidation) now (the monitor's)."""
        equity, flagged, in_liquidation = standing
        pnl, greeks, books = self.vectors(pricing, row)
        store = pricing.store
        return self.checker(pricing).check(
            pnl,
            greeks,
            equity,
            float(tier_multiplier(store.risk_tier[row : row + 1])[0]),
            inst,
            quantity,
            price,
            fee,
            position=store.quantity(row, inst),
            reduce_only=flagged or in_liquidation,
            held=self._held(pricing, row),
            books=books,
        )

    def checker(self, pricing: Pricing) -> PreTradeChecker:
        """The checker on the current risk arrays and parameters."""
        memo = pricing.memo
        if memo.checker is None:
            state = pricing.market.state
            long_t, short_t = concentration_thresholds(state, pricing.params)
            memo.checker = PreTradeChecker(state, pricing.context.arrays, pricing.params, long_t, short_t)
        return memo.checker

    def vectors(self, pricing: Pricing, row: int) -> Vectors:
        """(scenario P&L (S,), Greeks (A, 3), books (A, B, 2)) of one account."""
        memo = pricing.memo
        cached = memo.vectors.get(row)
        if cached is not None:
            return cached
        store = pricing.store
        slots = store.used_slots(np.array([row], dtype=np.int64))
        instrument = store.pos_instrument[slots]
        quantity = store.pos_quantity[slots]
        arrays = pricing.context.arrays
        layout = self.checker(pricing).layout
        books = account_books(
            instrument, quantity, arrays.unit_greeks, arrays.instrument_asset, layout, arrays.n_assets
        )
        vectors = (
            account_scenario_pnl(instrument, quantity, arrays),
            account_greeks(instrument, quantity, arrays),
            books,
        )
        memo.vectors[row] = vectors
        return vectors

    def _held(self, pricing: Pricing, row: int) -> FloatArray:
        """(A,) the account's collateral balances in units of each asset (0 for USD and unquoted assets)."""
        held = np.zeros(len(pricing.market.assets))
        index = pricing.market.state.asset_index
        store = pricing.store
        for c, asset in enumerate(store.collateral_assets):
            if asset in index and asset != CASH:
                held[index[asset]] += float(store.balance[row, c])
        return held
