"""The streaming engine's account state: positions in per-account slots, collateral balances, exposure.

Positions live in one set of flat arrays; account n owns slots `start[n]:start[n+1]`, of which the first
`count[n]` are in use (a slotted CSR: a fill on a new instrument takes a free slot; an account out of slots
makes the whole layout grow). A closed position keeps its slot at quantity 0 (slots never move, so a slot
index stays valid for the whole run) and is reused if the instrument trades again. One slot per
(account, instrument, venue): the starting book's repeated holdings are merged, value for value.
Collateral is a dense (N, C) balance matrix over `collateral_assets`; USD, where realised
P&L, fees and the backstop's transfers settle, is always a column. `exposed` (A, N) marks the accounts a
move of asset a can change (a position on it, or collateral in it), so a tick re-margins only those.

`book_of(rows)` gathers accounts into the engine's immutable `Book`, vectorised over accounts.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from solvent._numba import jit
from solvent.engine.book import HOME_VENUE, Book
from solvent.formats.schemas import LINEAR_KINDS

FloatArray = NDArray[np.float64]
IndexArray = NDArray[np.int64]

CASH = "USD"
#: Free slots given to every account when the layout is (re)built.
SPARE_SLOTS = 2


def gather_ranges(starts: IndexArray, lengths: IndexArray) -> IndexArray:
    """The concatenation of `arange(starts[k], starts[k] + lengths[k])` over k, without a Python loop."""
    total = int(lengths.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    offsets = np.concatenate(([0], np.cumsum(lengths)[:-1]))
    return np.repeat(starts - offsets, lengths) + np.arange(total, dtype=np.int64)


@jit()
def _gather(
    rows: IndexArray, start: IndexArray, count: IndexArray, balance: FloatArray
) -> tuple[IndexArray, IndexArray, IndexArray, FloatArray, NDArray[np.int32]]:  # pragma: no cover - compiled
    """`book_of`'s layout of `rows` in one pass: position offsets (K+1,) and the store slots they gather, then
    the non-zero balances in (account, asset) order with their offsets (K+1,), amounts and asset columns."""
    k = rows.shape[0]
    pos_offsets = np.zeros(k + 1, dtype=np.int64)
    col_offsets = np.zeros(k + 1, dtype=np.int64)
    for j in range(k):
        row = rows[j]
        pos_offsets[j + 1] = pos_offsets[j] + count[row]
        held = 0
        for c in range(balance.shape[1]):
            if balance[row, c] != 0.0:
                held += 1
        col_offsets[j + 1] = col_offsets[j] + held
    slots = np.empty(pos_offsets[k], dtype=np.int64)
    amount = np.empty(col_offsets[k])
    asset = np.empty(col_offsets[k], dtype=np.int32)
    for j in range(k):
        row = rows[j]
        for i in range(count[row]):
            slots[pos_offsets[j] + i] = start[row] + i
        n = col_offsets[j]
        for c in range(balance.shape[1]):
            if balance[row, c] != 0.0:
                amount[n] = balance[row, c]
                asset[n] = c
                n += 1
    return pos_offsets, slots, col_offsets, amount, asset


def _merged(
    book: Book,
) -> tuple[IndexArray, NDArray[np.int32], FloatArray, FloatArray, NDArray[np.int32], FloatArray]:
    """The book's positions with one row per (account, instrument, venue), in account order: (counts per
    account, instrument, quantity, entry, venue, USD realised per account).

    Repeated rows are merged as trades would merge them, keeping equity exactly: each side's rows (longs,
    shorts) become one at the quantity-weighted mean entry, then the smaller side closes against the larger
    at its own entry, realising quantity x contract_size x (its entry - the larger side's entry) into USD; the
    rest keeps the larger side's entry (flat: no entry).
    """
    account = book.position_account()
    no_cash = np.zeros(book.n_accounts)
    key = np.lexsort((book.pos_venue, book.pos_instrument, account))
    a, i, v = account[key], book.pos_instrument[key], book.pos_venue[key]
    first = np.ones(key.size, dtype=np.bool_)
    first[1:] = (a[1:] != a[:-1]) | (i[1:] != i[:-1]) | (v[1:] != v[:-1])
    if first.all():
        counts = np.diff(book.pos_offsets)
        return counts, book.pos_instrument, book.pos_quantity, book.pos_entry, book.pos_venue, no_cash
    starts = np.flatnonzero(first)
    q = book.pos_quantity[key]
    entry = np.nan_to_num(book.pos_entry[key])
    linear = ~np.isnan(book.pos_entry[key][starts])
    long_q = np.add.reduceat(np.maximum(q, 0.0), starts)
    short_q = np.add.reduceat(np.minimum(q, 0.0), starts)
    with np.errstate(invalid="ignore", divide="ignore"):
        long_e = np.add.reduceat(np.maximum(q, 0.0) * entry, starts) / long_q
        short_e = np.add.reduceat(np.minimum(q, 0.0) * entry, starts) / short_q
    quantity = long_q + short_q
    longer = long_q >= -short_q
    closed = np.minimum(long_q, -short_q)  # units closed by netting the two sides
    both = linear & (closed > 0.0)
    size = np.array([inst.contract_size for inst in book.instruments])[i[starts]]
    realised = np.where(both, closed * size * (short_e - long_e), 0.0)
    merged_entry = np.where(linear, np.where(longer, long_e, short_e), np.nan)
    merged_entry = np.where(linear & (quantity == 0.0), np.nan, merged_entry)
    cash = np.bincount(a[starts], weights=realised, minlength=book.n_accounts).astype(np.float64)
    counts = np.bincount(a[starts], minlength=book.n_accounts).astype(np.int64)
    return counts, i[starts], quantity, merged_entry, v[starts], cash


@dataclass(frozen=True)
class Trade:
    """What a fill did to an account: the USD settled (realised P&L or option premium, minus the fee)."""

    cash: float
    realised: float


class AccountStore:
    """Mutable account state (see the module docstring). Rows follow the starting book's account order."""

    def __init__(self, book: Book, asset_of: dict[str, int], n_assets: int) -> None:
        self.instruments = book.instruments
        self.account_ids = book.account_ids
        self.row_of = {str(name): n for n, name in enumerate(book.account_ids.tolist())}
        self.instrument_row = {inst.id: i for i, inst in enumerate(book.instruments)}
        self.instrument_ids = [inst.id for inst in book.instruments]
        self.linear = np.array([inst.kind in LINEAR_KINDS for inst in book.instruments], dtype=np.bool_)
        self.contract_size = np.array([inst.contract_size for inst in book.instruments], dtype=np.float64)
        self.instrument_asset = np.array([asset_of[inst.underlying] for inst in book.instruments], dtype=np.int64)
        self.asset_of = asset_of
        self.risk_tier = book.risk_tier
        self.mode = book.mode
        self.parent = book.parent
        self.venues = book.venues
        counts, instrument, quantity, entry, venue, realised = _merged(book)
        self._layout(counts, instrument, quantity, entry, venue)
        assets = list(book.collateral_assets)
        if CASH not in assets:
            assets.append(CASH)
        self.collateral_assets = assets
        self.balance = np.zeros((book.n_accounts, len(assets)))
        np.add.at(self.balance, (book.collateral_account(), book.col_asset), book.col_amount)
        self.balance[:, assets.index(CASH)] += realised  # repeated holdings netted at load
        self.exposed = np.zeros((n_assets, book.n_accounts), dtype=np.bool_)
        self.refresh_exposure()
        self.version = 0  # bumped by every change of positions, balances or exposure

    # ------------------------------------------------------------------------------------- layout

    def _layout(
        self,
        counts: IndexArray,
        instrument: NDArray[np.int32],
        quantity: FloatArray,
        entry: FloatArray,
        venue: NDArray[np.int32],
    ) -> None:
        """Lay positions (given in account order, `counts` per account) out with spare slots."""
        capacity = counts + SPARE_SLOTS
        self.start = np.concatenate(([0], np.cumsum(capacity))).astype(np.int64)
        self.count = counts.astype(np.int64)
        size = int(self.start[-1])
        self.pos_instrument = np.zeros(size, dtype=np.int32)
        self.pos_quantity = np.zeros(size)
        self.pos_entry = np.full(size, math.nan)
        self.pos_venue = np.full(size, -1, dtype=np.int32)
        slots = gather_ranges(self.start[:-1], self.count)
        self.pos_instrument[slots] = instrument
        self.pos_quantity[slots] = quantity
        self.pos_entry[slots] = entry
        self.pos_venue[slots] = venue

    def _grow(self) -> None:
        """Re-lay every account with fresh spare slots (an account ran out)."""
        slots = gather_ranges(self.start[:-1], self.count)
        self._layout(
            self.count.copy(),
            self.pos_instrument[slots],
            self.pos_quantity[slots],
            self.pos_entry[slots],
            self.pos_venue[slots],
        )

    def copy(self) -> AccountStore:
        """An independent copy of the accounts (positions, balances, exposure, the collateral columns), for readers
        on other threads; the book's fixed parts (the id index, instruments) are shared: nothing changes them."""
        out = copy.copy(self)
        for name, value in vars(self).items():
            if isinstance(value, np.ndarray):
                setattr(out, name, value.copy())
            elif isinstance(value, list):  # `collateral_assets` grows with a deposit of a new asset
                setattr(out, name, list(value))
        return out

    @property
    def n_accounts(self) -> int:
        """N."""
        return int(self.count.shape[0])

    def used_slots(self, rows: IndexArray) -> IndexArray:
        """The slots in use by `rows`, account by account."""
        return gather_ranges(self.start[rows], self.count[rows])

    def refresh_exposure(self) -> None:
        """Recompute `exposed` from the positions and balances held now."""
        self.exposed[:] = False
        slots = self.used_slots(np.arange(self.n_accounts, dtype=np.int64))
        owner = np.repeat(np.arange(self.n_accounts), self.count)
        self.exposed[self.instrument_asset[self.pos_instrument[slots]], owner] = True
        for c, asset in enumerate(self.collateral_assets):
            if asset in self.asset_of:
                self.exposed[self.asset_of[asset]] |= self.balance[:, c] != 0.0

    # ----------------------------------------------------------------------------------- gathering

    def book_of(self, rows: IndexArray) -> Book:
        """Accounts `rows` (in that order) as an immutable `Book`.

        Every account in row order is served without copying (`whole_book`): the slotted arrays as they are,
        spare slots included (quantity 0, which adds exactly nothing), and the dense balances as every
        (account, asset) pair. Use the result before the store changes again."""
        n = self.n_accounts
        if rows.size == n and np.array_equal(rows, np.arange(n)):
            return self.whole_book()
        pos_offsets, slots, col_offsets, col_amount, col_asset = _gather(rows, self.start, self.count, self.balance)
        return Book(
            instruments=self.instruments,
            account_ids=self.account_ids[rows],
            pos_offsets=pos_offsets,
            pos_instrument=self.pos_instrument[slots],
            pos_quantity=self.pos_quantity[slots],
            pos_entry=self.pos_entry[slots],
            collateral_assets=tuple(self.collateral_assets),
            col_offsets=col_offsets,
            col_asset=col_asset,
            col_amount=col_amount,
            risk_tier=self.risk_tier[rows],
            mode=self.mode[rows],
            parent=self.parent[rows],
            pos_venue=self.pos_venue[slots],
            venues=self.venues,
        )

    def whole_book(self) -> Book:
        """Every account, without copying: position row p of the result is store slot p (see `book_of`)."""
        n, c = self.balance.shape
        return Book(
            instruments=self.instruments,
            account_ids=self.account_ids,
            pos_offsets=self.start,
            pos_instrument=self.pos_instrument,
            pos_quantity=self.pos_quantity,
            pos_entry=self.pos_entry,
            collateral_assets=tuple(self.collateral_assets),
            col_offsets=np.arange(0, n * c + 1, c, dtype=np.int64),
            col_asset=np.tile(np.arange(c, dtype=np.int32), n),
            col_amount=self.balance.ravel(),
            risk_tier=self.risk_tier,
            mode=self.mode,
            parent=self.parent,
            pos_venue=self.pos_venue,
            venues=self.venues,
        )

    # ------------------------------------------------------------------------------------ updates

    def column(self, asset: str) -> int:
        """The balance column of `asset`, added (zero for everyone) when first seen."""
        if asset not in self.collateral_assets:
            self.collateral_assets.append(asset)
            self.balance = np.hstack([self.balance, np.zeros((self.n_accounts, 1))])
        return self.collateral_assets.index(asset)

    def credit(self, row: int, asset: str, amount: float) -> None:
        """Add `amount` (negative: debit) units of `asset` to an account's balance."""
        column = self.column(asset)  # may widen `balance`: look it up first
        self.balance[row, column] += amount
        self.version += 1
        if asset in self.asset_of:
            self.exposed[self.asset_of[asset], row] = True

    def set_balance(self, row: int, asset: str, amount: float) -> None:
        """Put an account's balance of `asset` back to `amount` exactly (undoing a tentative change)."""
        self.balance[row, self.column(asset)] = amount
        self.version += 1

    def quantity(self, row: int, instrument: int) -> float:
        """The account's position in `instrument` at the home venue (0 when it holds none)."""
        slot = self.find(row, instrument)
        return 0.0 if slot < 0 else float(self.pos_quantity[slot])

    def find(self, row: int, instrument: int, venue: int = HOME_VENUE) -> int:
        """The slot of the account's position in `instrument` at `venue`, or -1."""
        lo = int(self.start[row])
        hi = lo + int(self.count[row])
        hits = np.flatnonzero((self.pos_instrument[lo:hi] == instrument) & (self.pos_venue[lo:hi] == venue))
        return lo + int(hits[0]) if hits.size else -1

    def find_signed(self, row: int, instrument: int, sign: float) -> int:
        """The slot of the account's position in `instrument` whose quantity has the sign of `sign` (at any
        venue, the home venue first); ValueError if there is none."""
        lo = int(self.start[row])
        hi = lo + int(self.count[row])
        hits = np.flatnonzero((self.pos_instrument[lo:hi] == instrument) & (self.pos_quantity[lo:hi] * sign > 0.0))
        if not hits.size:
            raise ValueError(f"account row {row} holds no position in instrument {instrument} of sign {sign}")
        home = hits[self.pos_venue[lo + hits] == HOME_VENUE]
        return lo + int(home[0] if home.size else hits[0])

    def is_flat(self, rows: IndexArray) -> NDArray[np.bool_]:
        """(K,) whether each account holds no position (every slot at quantity 0)."""
        slots = self.used_slots(rows)
        owner = np.repeat(np.arange(rows.size), self.count[rows])
        held = np.bincount(owner, weights=(self.pos_quantity[slots] != 0.0).astype(np.float64), minlength=rows.size)
        return np.asarray(held == 0.0)

    def trade(
        self, row: int, instrument: int, quantity: float, price: float, fee: float = 0.0, slot: int | None = None
    ) -> Trade:
        """Apply a trade of `quantity` contracts at `price` (USD per unit of the underlying: a linear
        product's price, an option's premium per unit; a contract is `contract_size` units) and settle it in USD.

        Linear products: a trade that adds to a position (or opens one) moves its entry to the
        size-weighted average price; one that reduces it realises quantity x contract_size x (price - entry)
        into USD; one that flips it closes the old position and opens the rest at `price`. Options: the
        premium is paid or received in full (their value is marked in equity). The fee is paid in USD.
        """
        if slot is None:
            slot = self.find(row, instrument)
            if slot < 0:
                slot = self._new_slot(row, instrument)
        elif not self.start[row] <= slot < self.start[row] + self.count[row] or self.pos_instrument[slot] != instrument:
            raise ValueError(f"slot {slot} does not hold instrument {instrument} of account row {row}")
        q = float(self.pos_quantity[slot])
        realised = 0.0
        if self.linear[instrument]:
            size = float(self.contract_size[instrument])
            entry = float(self.pos_entry[slot])
            if q == 0.0 or (q > 0.0) == (quantity > 0.0):
                new_q = q + quantity
                self.pos_entry[slot] = (abs(q) * (0.0 if q == 0.0 else entry) + abs(quantity) * price) / abs(new_q)
            else:
                closed = math.copysign(min(abs(quantity), abs(q)), q)
                realised = closed * size * (price - entry)
                new_q = q - closed
                rest = quantity + closed
                if rest != 0.0:
                    new_q = rest
                    self.pos_entry[slot] = price
            cash = realised - fee
        else:
            new_q = q + quantity
            cash = -quantity * float(self.contract_size[instrument]) * price - fee
        self.pos_quantity[slot] = new_q
        self.balance[row, self.collateral_assets.index(CASH)] += cash
        self.version += 1
        if new_q == 0.0 and self.linear[instrument]:
            self.pos_entry[slot] = math.nan  # flat: the next trade opens at its own price
        return Trade(cash=cash, realised=realised)

    def reduce(
        self, rows: IndexArray, slots: IndexArray, close: FloatArray, price: FloatArray, fee: FloatArray
    ) -> None:
        """Close `close` (P,) contracts of the positions in `slots` (distinct; `close` has each position's sign and
        |close| <= |quantity|: a liquidation never adds or flips) at `price` (per unit), paying `fee`: what
        `trade(row, instrument, -close, price, fee, slot)` does for each, at once and in the same order."""
        instrument = self.pos_instrument[slots]
        size = self.contract_size[instrument]
        linear = self.linear[instrument]
        entry = self.pos_entry[slots]
        cash = np.where(linear, close * size * (price - np.where(linear, entry, 0.0)), close * size * price) - fee
        remaining = self.pos_quantity[slots] - close
        self.pos_quantity[slots] = remaining
        self.pos_entry[slots] = np.where(linear & (remaining == 0.0), math.nan, entry)
        np.add.at(self.balance[:, self.collateral_assets.index(CASH)], rows, cash)
        self.version += 1

    def _new_slot(self, row: int, instrument: int) -> int:
        if self.count[row] == self.start[row + 1] - self.start[row]:
            self._grow()
        slot = int(self.start[row] + self.count[row])
        self.count[row] += 1
        self.pos_instrument[slot] = instrument
        self.pos_quantity[slot] = 0.0
        self.pos_entry[slot] = math.nan
        self.pos_venue[slot] = -1
        self.exposed[self.instrument_asset[instrument], row] = True
        return slot

    # ------------------------------------------------------------------------------- persistence

    def arrays(self) -> dict[str, NDArray[np.generic]]:
        """Everything mutable, as plain arrays (the state file's `store.*` entries)."""
        return {
            "start": self.start,
            "count": self.count,
            "pos_instrument": self.pos_instrument,
            "pos_quantity": self.pos_quantity,
            "pos_entry": self.pos_entry,
            "pos_venue": self.pos_venue,
            "balance": self.balance,
            "collateral_assets": np.array(self.collateral_assets, dtype=np.str_),
            "exposed": self.exposed,
        }

    def restore(self, arrays: dict[str, NDArray[np.generic]]) -> None:
        """Put back what `arrays` returned (bit for bit)."""
        self.start = np.asarray(arrays["start"], dtype=np.int64)
        self.count = np.asarray(arrays["count"], dtype=np.int64)
        self.pos_instrument = np.asarray(arrays["pos_instrument"], dtype=np.int32)
        self.pos_quantity = np.asarray(arrays["pos_quantity"], dtype=np.float64)
        self.pos_entry = np.asarray(arrays["pos_entry"], dtype=np.float64)
        self.pos_venue = np.asarray(arrays["pos_venue"], dtype=np.int32)
        self.balance = np.asarray(arrays["balance"], dtype=np.float64)
        self.collateral_assets = [str(a) for a in arrays["collateral_assets"].tolist()]
        self.exposed = np.asarray(arrays["exposed"], dtype=np.bool_)
        self.version += 1
