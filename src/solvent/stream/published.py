"""What the stream published after a batch, for readers that must not wait for the next one: the read model
frozen at that batch boundary (the market view, a copy of the risk arrays, the parameters, the speeds, the
accounts' positions and balances), each account's standing (equity, early flag, in liquidation, whether the
health screen holds its figures from an earlier batch), and the pre-trade check on them.

`Published.of` runs under the venue's lock between batches and costs a copy of the risk arrays (and of the
accounts only when a batch changed them) and the pre-trade checker on them; afterwards nothing changes the state a
`Published` holds (it only memoises the standings it computes from it), so any number of threads read it without
a lock while the stream runs the next batch. Its what-if is the engine's (`StreamEngine.what_if`)
on the state of that batch: the same decision, to the bit (tests/test_published.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from solvent.engine.whatif import Decision
from solvent.stream.engine import StreamEngine
from solvent.stream.ledger import BoolArray, FloatArray
from solvent.stream.pretrade import PreTrade, refused
from solvent.stream.pricing import Pricing, Standing


@dataclass(frozen=True, eq=False)
class Published:
    """The stream after input `last_input_seq` (see the module). `store_version`: the accounts' version it
    copied (a later `of` reuses the copy while the version is unchanged)."""

    last_input_seq: int
    store_version: int
    pricing: Pricing
    equity: FloatArray
    flagged: BoolArray
    in_liquidation: BoolArray
    screened: BoolArray
    # Each asked account's standing (`Pricing.standing`: a screened account is margined afresh), computed once: the
    # state never changes, and an account asked once is usually asked again before the next batch.
    standings: dict[int, Standing] = field(default_factory=dict)

    @classmethod
    def of(cls, engine: StreamEngine, previous: Published | None = None) -> Published:
        """Freeze `engine` between batches (the caller holds whatever serialises it); `previous`: the last one,
        whose copy of the accounts is reused if they have not changed since."""
        engine.flush()
        live = engine.pricing
        version = live.store.version
        if previous is not None and previous.store_version == version and previous.pricing.store.n_accounts:
            store = previous.pricing.store
        else:
            store = live.store.copy()
        f = engine.figures
        screen = engine.screen
        n = store.n_accounts
        pricing = live.frozen(store)
        PreTrade().checker(pricing)  # built here, on the batch's thread, not by the first what-if after it
        return cls(
            last_input_seq=engine.last_input_seq,
            store_version=version,
            pricing=pricing,
            equity=f.equity.copy(),
            flagged=f.flagged.copy(),
            in_liquidation=f.in_liquidation.copy(),
            screened=np.zeros(n, dtype=np.bool_) if screen is None else screen.asset >= 0,
        )

    def what_if(self, account: str, instrument: str, quantity: float, price: float, fee: float = 0.0) -> Decision:
        """`StreamEngine.what_if` on this state: whether `account` may trade `quantity` of `instrument` at `price`,
        and its IM after; unknown names and what the check cannot decide are refused (fail closed)."""
        pricing = self.pricing
        row = pricing.store.row_of.get(account)
        inst = pricing.store.instrument_row.get(instrument)
        if row is None or inst is None:
            return refused(f"unknown {'account' if row is None else 'instrument'}")
        standing = self.standings.get(row)
        if standing is None:
            standing = pricing.standing(
                row,
                float(self.equity[row]),
                bool(self.flagged[row]),
                bool(self.in_liquidation[row]),
                bool(self.screened[row]),
            )
            self.standings[row] = standing  # a race between two readers stores the same value twice
        return PreTrade().check(pricing, row, inst, quantity, price, fee, standing)
