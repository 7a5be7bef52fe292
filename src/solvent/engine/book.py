"""The position book: every account's collateral and positions as CSR arrays.

Built once at the boundary from an Arrow table (the Parquet format; the JSON format is converted to
the same table first, so both are validated by the same code). Rows index the portfolio's own
instrument list and collateral-asset list; the market is not needed to build a book.

The build is vectorised (no loop over accounts or positions) and must load 1,000,000 accounts in about
a second (benchmarks/bench_margin.py): instrument names and collateral assets may arrive
dictionary-encoded (ENCODED_SCHEMA, as the Parquet reader hands them back) and are then used as they are.

The book is canonical (issue 12 item 16): whatever order the file lists an account's positions and balances in,
or its accounts, or its instruments, every account's figures come out bit for bit the same. Within each account
positions are sorted by instrument id, venue and entry price, and the positions of one instrument at one venue
and one entry price (every option position of one instrument and venue: they carry no entry) are merged into one
row whose quantity is the correctly rounded sum of theirs (`_exact_sums`, as math.fsum); balances are sorted by
asset name (`collateral_assets` is sorted) and one asset's balances merged likewise. Positions of one instrument
at different entry prices stay apart (their unrealised PnL is not one quantity's), in entry-price order.

Over 600 lines because the one validating builder that every portfolio file and table goes through keeps its
checks (finite numbers, entry prices, modes, canonical order) beside the Book they guard.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from dataclasses import field as dataclass_field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from numpy.typing import NDArray

from solvent._numba import jit, prange
from solvent.errors import InputError
from solvent.formats.arrow import ACCOUNTS_SCHEMA, ENCODED_SCHEMA, POSITION_TYPE
from solvent.formats.arrow_numpy import bools, floats, integers, objects, string_scalar
from solvent.formats.schemas import LINEAR_KINDS, MAX_AMOUNT, MAX_PRICE, MAX_QUANTITY, MAX_TIER, MIN_PRICE, Instrument

FloatArray = NDArray[np.float64]
IndexArray = NDArray[np.int64]

CROSS, ISOLATED = 0, 1
MODE_CODES = {"cross": CROSS, "isolated": ISOLATED}

#: The venue code of a position held at the home venue (a null `venue`).
HOME_VENUE = -1


@dataclass(frozen=True, eq=False)
class Book:
    """N accounts in CSR form.

    Positions of account n are rows pos_offsets[n]:pos_offsets[n+1] of pos_instrument (index into
    `instruments`), pos_quantity and pos_entry (NaN for options). Collateral likewise with col_asset
    (index into `collateral_assets`) and col_amount. risk_tier is NaN where absent; mode is CROSS or
    ISOLATED; parent is None for cross accounts. pos_venue is the venue of each position, an index into
    `venues`, or HOME_VENUE (-1) for the home venue; a book built without it holds everything at home.
    """

    instruments: tuple[Instrument, ...]
    account_ids: NDArray[np.object_]
    pos_offsets: IndexArray
    pos_instrument: NDArray[np.int32]
    pos_quantity: FloatArray
    pos_entry: FloatArray
    collateral_assets: tuple[str, ...]
    col_offsets: IndexArray
    col_asset: NDArray[np.int32]
    col_amount: FloatArray
    risk_tier: FloatArray
    mode: NDArray[np.int8]
    parent: NDArray[np.object_]
    pos_venue: NDArray[np.int32] = dataclass_field(default_factory=lambda: np.zeros(0, dtype=np.int32))
    venues: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.pos_venue.size == 0 and self.pos_quantity.size:  # not given: every position at the home venue
            object.__setattr__(self, "pos_venue", np.full(self.pos_quantity.shape, HOME_VENUE, dtype=np.int32))
        if self.pos_venue.shape != self.pos_quantity.shape:
            raise ValueError(f"pos_venue: one venue code per position, got {self.pos_venue.shape}")

    @property
    def n_accounts(self) -> int:
        """N."""
        return int(self.account_ids.shape[0])

    def __repr__(self) -> str:
        held = sorted({self.instruments[i].underlying for i in np.unique(self.pos_instrument).tolist()})
        return (
            f"Book({self.n_accounts:,} accounts, {self.pos_quantity.size:,} positions on "
            f"{len(self.instruments):,} instruments over {len(held)} assets, collateral in "
            f"{', '.join(self.collateral_assets) or 'nothing'})"
        )

    def _repr_html_(self) -> str:
        """A notebook's view: the summary line and the first accounts' positions and collateral."""
        rows = []
        for n in range(min(self.n_accounts, 10)):
            held = range(int(self.pos_offsets[n]), int(self.pos_offsets[n + 1]))
            balances = range(int(self.col_offsets[n]), int(self.col_offsets[n + 1]))
            rows.append(
                f"<tr><td>{html.escape(str(self.account_ids[n]))}</td><td>"
                + ", ".join(
                    f"{self.pos_quantity[p]:+,.4g} {html.escape(self.instruments[self.pos_instrument[p]].id)}"
                    for p in held
                )
                + "</td><td>"
                + ", ".join(
                    f"{self.col_amount[c]:,.2f} {html.escape(self.collateral_assets[self.col_asset[c]])}"
                    for c in balances
                )
                + "</td></tr>"
            )
        more = f"<p>... {self.n_accounts - 10:,} more accounts</p>" if self.n_accounts > 10 else ""
        return (
            f"<p>{html.escape(repr(self))}</p><table><tr><th>account</th><th>positions</th><th>collateral</th></tr>"
            + "".join(rows)
            + f"</table>{more}"
        )

    def position_account(self) -> IndexArray:
        """(P,) the account row of every position."""
        return np.repeat(np.arange(self.n_accounts, dtype=np.int64), np.diff(self.pos_offsets))

    def collateral_account(self) -> IndexArray:
        """(C,) the account row of every collateral balance."""
        return np.repeat(np.arange(self.n_accounts, dtype=np.int64), np.diff(self.col_offsets))


def _first_row(mask: NDArray[np.bool_]) -> int:
    return int(np.flatnonzero(mask)[0])


def _where(offsets: IndexArray, flat_row: int, field: str, kind: str) -> str:
    """Name flat child row `flat_row` as accounts[n].<kind>[k].<field>."""
    account = int(np.searchsorted(offsets, flat_row, side="right") - 1)
    return f"accounts[{account}].{kind}[{flat_row - int(offsets[account])}]{field}"


def _require_columns(table: pa.Table, source: str) -> pa.Table:
    """The columns of ACCOUNTS_SCHEMA (or, as they are, their ENCODED_SCHEMA types), absent ones as nulls."""
    for field in ("id", "positions"):
        if field not in table.column_names:
            raise InputError(source, field, "required column is missing")
    columns = {}
    for field in ACCOUNTS_SCHEMA:
        if field.name in table.column_names:
            column = table.column(field.name)
            if column.type == ENCODED_SCHEMA.field(field.name).type:
                columns[field.name] = column
                continue
            target = _target_type(column.type, field, source)
            try:
                columns[field.name] = column.cast(target)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
                raise InputError(source, field.name, f"expected {field.type}, got {column.type}") from None
        else:
            columns[field.name] = pa.nulls(table.num_rows, field.type)
    unknown = sorted(set(table.column_names) - set(ACCOUNTS_SCHEMA.names))
    if unknown:
        raise InputError(source, unknown[0], "unknown column")
    return pa.table(columns).combine_chunks()


def _target_type(found: pa.DataType, field: pa.Field, source: str) -> pa.DataType:
    """What a column is cast to: its ACCOUNTS_SCHEMA type, or ENCODED_SCHEMA's for positions whose instrument
    names are dictionary-encoded (files written before `venue` existed lack it; the cast adds it as null).

    A position `venue` must be a string: a number would cast to one silently, so it is refused here.
    """
    if field.name != "positions" or not pa.types.is_list(found) or not pa.types.is_struct(found.value_type):
        return field.type
    struct = found.value_type
    index = struct.get_field_index("venue")
    if index >= 0:
        venue = struct.field(index).type
        if not (pa.types.is_string(venue) or pa.types.is_large_string(venue) or pa.types.is_null(venue)):
            raise InputError(source, "positions.venue", f"expected a string (the venue name) or null, got {venue}")
    index = struct.get_field_index("instrument")
    if index >= 0 and pa.types.is_dictionary(struct.field(index).type):
        return ENCODED_SCHEMA.field("positions").type
    return field.type


def _chunk(table: pa.Table, name: str) -> pa.Array:
    """The one chunk of a combined column (an empty array for an empty table)."""
    column = table.column(name)
    return column.chunk(0) if column.num_chunks else pa.array([], column.type)


def _codes(names: pa.Array) -> tuple[list[str | None], NDArray[np.intp]]:
    """(distinct values, (M,) index of each element into them) of a string or dictionary array without nulls.

    The indices are intp: numpy's take converts any other index type to it first, once per call.
    """
    encoded = names if pa.types.is_dictionary(names.type) else names.dictionary_encode()
    codes = integers(encoded.indices, np.intp)
    return encoded.dictionary.to_pylist(), codes


def book_from_arrow(table: pa.Table, instruments: tuple[Instrument, ...], source: str) -> Book:
    """Validate an accounts table (ACCOUNTS_SCHEMA or ENCODED_SCHEMA) against the instruments; build the Book."""
    table = _require_columns(table, source)
    ids = _chunk(table, "id")
    if ids.null_count:
        raise InputError(source, f"accounts[{_first_row(bools(ids.is_null()))}].id", "required")
    id_values = objects(ids)
    if len(pc.unique(ids)) != len(ids):
        order = np.argsort(id_values, kind="stable")
        sorted_ids = id_values[order]
        dup = _first_row(sorted_ids[1:] == sorted_ids[:-1])
        row = int(max(order[dup], order[dup + 1]))
        raise InputError(source, f"accounts[{row}].id", f"duplicate account id {id_values[row]!r}")
    pos_offsets, pos_instrument, pos_quantity, pos_entry, pos_venue, venues = _positions(table, instruments, source)
    collateral_assets, col_offsets, col_asset, col_amount = _collateral(table, source)
    risk_tier = floats(_chunk(table, "risk_tier"))
    bad_tier = ~(np.isnan(risk_tier) | ((risk_tier > 0) & (risk_tier <= MAX_TIER)))
    if bad_tier.any():
        row = _first_row(bad_tier)
        raise InputError(
            source, f"accounts[{row}].risk_tier", f"must be > 0 and at most {MAX_TIER:g}, got {risk_tier[row]!r}"
        )
    mode, parent = _modes(table, ids, source)
    book = Book(
        instruments=instruments,
        account_ids=id_values,
        pos_offsets=pos_offsets,
        pos_instrument=pos_instrument,
        pos_quantity=pos_quantity,
        pos_entry=pos_entry,
        collateral_assets=collateral_assets,
        col_offsets=col_offsets,
        col_asset=col_asset,
        col_amount=col_amount,
        risk_tier=risk_tier,
        mode=mode,
        parent=parent,
        pos_venue=pos_venue,
        venues=venues,
    )
    return canonical_book(book)


def _ranks(names: list[str]) -> IndexArray:
    """(K,) the place of each name in the sorted names."""
    return np.argsort(np.argsort(np.array(names, dtype=object), kind="stable")).astype(np.int64)


def canonical_book(book: Book) -> Book:
    """The same book in its canonical form (see the module docstring): `collateral_assets` sorted, each account's
    positions sorted by instrument id, venue and entry price and its balances by asset, rows of one instrument,
    venue and entry price (one asset) merged with the correctly rounded sum. Idempotent; vectorised."""
    assets = sorted(book.collateral_assets)
    col_asset = book.col_asset
    if tuple(assets) != book.collateral_assets:
        col_asset = _ranks(list(book.collateral_assets)).take(col_asset).astype(np.int32)
    no_rank = np.arange(len(assets), dtype=np.int64)
    collateral = None
    if not _is_canonical(book.col_offsets, col_asset, no_rank, book.col_asset[:0], 1, book.col_amount[:0]):
        collateral = _canonical(book.col_offsets, col_asset.astype(np.int64), None, book.col_amount)
    rank = _ranks([inst.id for inst in book.instruments])
    n_venue_codes = len(book.venues) + 1
    positions = None
    if not _is_canonical(book.pos_offsets, book.pos_instrument, rank, book.pos_venue, n_venue_codes, book.pos_entry):
        key = rank.take(book.pos_instrument) * n_venue_codes + (book.pos_venue.astype(np.int64) - HOME_VENUE)
        positions = _canonical(book.pos_offsets, key, book.pos_entry, book.pos_quantity)
    if collateral is None and positions is None and col_asset is book.col_asset:
        return book
    col_offsets, col_amount = book.col_offsets, book.col_amount
    if collateral is not None:
        col_offsets, col_order, col_amount = collateral
        col_asset = col_asset[col_order]
    pos_offsets, pos_instrument, pos_quantity = book.pos_offsets, book.pos_instrument, book.pos_quantity
    pos_entry, pos_venue = book.pos_entry, book.pos_venue
    if positions is not None:
        pos_offsets, order, pos_quantity = positions
        pos_instrument, pos_entry, pos_venue = pos_instrument[order], pos_entry[order], pos_venue[order]
    return Book(
        instruments=book.instruments,
        account_ids=book.account_ids,
        pos_offsets=pos_offsets,
        pos_instrument=pos_instrument,
        pos_quantity=pos_quantity,
        pos_entry=pos_entry,
        collateral_assets=tuple(assets),
        col_offsets=col_offsets,
        col_asset=col_asset,
        col_amount=col_amount,
        risk_tier=book.risk_tier,
        mode=book.mode,
        parent=book.parent,
        pos_venue=pos_venue,
        venues=book.venues,
    )


def _positions(
    table: pa.Table, instruments: tuple[Instrument, ...], source: str
) -> tuple[IndexArray, NDArray[np.int32], FloatArray, FloatArray, NDArray[np.int32], tuple[str, ...]]:
    """(offsets, instrument rows, quantities, entry prices, venue codes, venue names) of the positions column,
    validated."""
    positions = _list_chunk(table, "positions")
    offsets = integers(positions.offsets, np.int64)
    offsets = offsets - offsets[0]  # flatten() starts at this array's own first position
    values = positions.flatten()
    inst_names = values.field("instrument")
    if inst_names.null_count:
        row = _first_row(bools(inst_names.is_null()))
        raise InputError(source, _where(offsets, row, ".instrument", "positions"), "required")
    index = {inst.id: i for i, inst in enumerate(instruments)}
    names, codes = _codes(inst_names)
    lookup = np.array([-1 if name is None else index.get(name, -1) for name in names], dtype=np.int32)
    pos_instrument = lookup.take(codes)
    if (lookup < 0).any() and (pos_instrument < 0).any():
        row = _first_row(pos_instrument < 0)
        raise InputError(
            source,
            _where(offsets, row, ".instrument", "positions"),
            f"unknown instrument {inst_names[row].as_py()!r}",
        )
    quantity_array = values.field("quantity")
    if quantity_array.null_count:
        row = _first_row(bools(quantity_array.is_null()))
        raise InputError(source, _where(offsets, row, ".quantity", "positions"), "required")
    quantity = floats(quantity_array)
    _check_finite(quantity, offsets, source, "positions", ".quantity", MAX_QUANTITY)
    entry = floats(values.field("entry_price"))
    linear = np.array([inst.kind in LINEAR_KINDS for inst in instruments], dtype=np.bool_)
    linear = linear.take(lookup).take(codes)  # lookup is -1 only for names no position uses
    _check_entry_prices(entry, linear, offsets, source)
    pos_venue, venues = _venues(values.field("venue"), offsets, source)
    return offsets, pos_instrument, quantity, entry, pos_venue, venues


def _venues(names: pa.Array, offsets: IndexArray, source: str) -> tuple[NDArray[np.int32], tuple[str, ...]]:
    """(venue code of each position, HOME_VENUE where null; the distinct venue names, sorted)."""
    if names.null_count == len(names):
        return np.full(len(names), HOME_VENUE, dtype=np.int32), ()
    names = names.cast(pa.string())
    empty = bools(pc.fill_null(pc.equal(pc.utf8_length(names), 0), False))
    if empty.any():
        row = _first_row(empty)
        raise InputError(source, _where(offsets, row, ".venue", "positions"), "must be a non-empty name or null (home)")
    venues = tuple(sorted(str(v) for v in pc.unique(names.drop_null()).to_pylist()))
    codes = pc.fill_null(pc.index_in(names, value_set=pa.array(venues, type=pa.string())), HOME_VENUE)
    return integers(codes, np.int32), venues


def _collateral(table: pa.Table, source: str) -> tuple[tuple[str, ...], IndexArray, NDArray[np.int32], FloatArray]:
    """(asset names, offsets, asset of each balance, amounts) of the collateral column, validated."""
    collateral = _list_chunk(table, "collateral")
    offsets = integers(collateral.offsets, np.int64)
    # MapArray.keys / .items ignore a slice: cut them to this array's own entries.
    first, count = int(offsets[0]), int(offsets[-1] - offsets[0])
    offsets = offsets - first
    keys, items = collateral.keys.slice(first, count), collateral.items.slice(first, count)
    if keys.null_count:
        raise InputError(source, "collateral", "asset names are required")
    assets, codes = _codes(keys)
    if None in assets:  # a null inside a dictionary
        raise InputError(source, "collateral", "asset names are required")
    if len(set(assets)) != len(assets) or not np.bincount(codes, minlength=len(assets)).all():
        assets, codes = _codes(keys.cast(pa.string()))  # a dictionary with repeated or unused names
    col_asset = codes.astype(np.int32)
    col_amount = floats(items)
    _check_finite(col_amount, offsets, source, "collateral", ".amount", MAX_AMOUNT)
    return tuple(str(asset) for asset in assets), offsets, col_asset, col_amount


def _canonical(offsets: IndexArray, key: IndexArray, entry: FloatArray | None, amount: FloatArray) -> _Canonical:
    """(new offsets, (M,) the original row kept for each merged row, (M,) merged amounts) of CSR rows sorted,
    within each account, by `key` then entry price (NaN, an option's, last), where rows equal in both are merged
    with the correctly rounded sum of their amounts (see the module docstring); None where the rows already are
    canonical (sorted, nothing to merge: the usual case)."""
    entry_key = np.zeros(amount.shape, dtype=np.float64) if entry is None else np.where(np.isnan(entry), np.inf, entry)
    order, start, unchanged = _sort_within(offsets, key, entry_key)
    if unchanged:
        return None
    return _merged_rows(offsets, order, start, amount)


_Canonical = tuple[IndexArray, IndexArray, FloatArray] | None

#: An account's rows are sorted in place by insertion below this many, by a stable merge sort from it.
_INSERTION_BELOW = 32


@jit()
def _is_canonical(
    offsets: IndexArray,
    code: NDArray[np.int32],
    rank: IndexArray,
    venue: NDArray[np.int32],
    n_venue_codes: int,
    entry: FloatArray,
) -> bool:  # pragma: no cover - compiled
    """Whether every account's rows are strictly ascending in (rank[code] x n_venue_codes + venue + 1, entry with
    NaN last): sorted with nothing to merge. One pass, no temporaries (the usual case: a canonical file).
    `venue` and `entry` may be empty (not compared)."""
    with_venue = venue.shape[0] == code.shape[0]
    with_entry = entry.shape[0] == code.shape[0]
    for a in range(offsets.shape[0] - 1):
        for i in range(offsets[a] + 1, offsets[a + 1]):
            k0 = rank[code[i - 1]] * n_venue_codes
            k1 = rank[code[i]] * n_venue_codes
            if with_venue:
                k0 += venue[i - 1] + 1
                k1 += venue[i] + 1
            if k1 > k0:
                continue
            if k1 < k0 or not with_entry:
                return False
            e0, e1 = entry[i - 1], entry[i]  # equal keys: entries strictly ascending, NaN last
            if np.isnan(e0) or (not np.isnan(e1) and e1 <= e0):
                return False
    return True


@jit(parallel=True)
def _sort_within(
    offsets: IndexArray, key: IndexArray, entry: FloatArray
) -> tuple[IndexArray, NDArray[np.bool_], bool]:  # pragma: no cover - compiled
    """(order of the rows sorted by (key, entry) within each account, whether each sorted row starts a new
    (account, key, entry) group, whether nothing moved and nothing merges). Parallel over chunks of accounts:
    each account's rows are its own."""
    n_rows = key.shape[0]
    n_accounts = offsets.shape[0] - 1
    order = np.arange(n_rows)
    start = np.ones(n_rows, dtype=np.bool_)
    n_chunks = min(n_accounts, 256)
    moved = np.zeros(max(n_chunks, 1), dtype=np.bool_)
    for c in prange(n_chunks):
        for a in range(c * n_accounts // n_chunks, (c + 1) * n_accounts // n_chunks):
            lo, hi = offsets[a], offsets[a + 1]
            if hi - lo >= _INSERTION_BELOW:
                by_entry = np.argsort(entry[lo:hi], kind="mergesort")
                by_key = np.argsort(key[lo:hi][by_entry], kind="mergesort")
                order[lo:hi] = lo + by_entry[by_key]
            else:
                for i in range(lo + 1, hi):
                    row = order[i]
                    j = i
                    while j > lo and (
                        key[order[j - 1]] > key[row]
                        or (key[order[j - 1]] == key[row] and entry[order[j - 1]] > entry[row])
                    ):
                        order[j] = order[j - 1]
                        j -= 1
                    order[j] = row
            for i in range(lo, hi):
                if order[i] != i:
                    moved[c] = True
                if i > lo and key[order[i]] == key[order[i - 1]] and entry[order[i]] == entry[order[i - 1]]:
                    start[i] = False
                    moved[c] = True
    return order, start, not moved.any()


@jit()
def _merged_rows(
    offsets: IndexArray, order: IndexArray, start: NDArray[np.bool_], amount: FloatArray
) -> tuple[IndexArray, IndexArray, FloatArray]:  # pragma: no cover - compiled
    """(new offsets, the original row kept for each merged row, merged amounts) from `_sort_within`'s order and
    group starts: one pass, no (rows,) temporaries but the sorted amounts."""
    n_accounts = offsets.shape[0] - 1
    new_offsets = np.zeros(n_accounts + 1, dtype=np.int64)
    for a in range(n_accounts):
        count = 0
        for i in range(offsets[a], offsets[a + 1]):
            if start[i]:
                count += 1
        new_offsets[a + 1] = new_offsets[a] + count
    starts = np.empty(new_offsets[n_accounts], dtype=np.int64)
    values = np.empty(order.shape[0], dtype=np.float64)
    g = 0
    for i in range(order.shape[0]):
        values[i] = amount[order[i]]
        if start[i]:
            starts[g] = i
            g += 1
    kept = np.empty(starts.shape[0], dtype=np.int64)
    for g in range(starts.shape[0]):
        kept[g] = order[starts[g]]
    return new_offsets, kept, _exact_sums(values, starts)


@jit()
def _exact_sums(values: FloatArray, starts: IndexArray) -> FloatArray:  # pragma: no cover - compiled
    """The correctly rounded sum of each run values[starts[g]:starts[g + 1]] (the last to the end): Shewchuk's
    exact partials and CPython's math.fsum final rounding, so that the sum depends on no order. A run that
    overflows (non-finite partials) falls back to the plain sum."""
    n_groups = starts.shape[0]
    out = np.empty(n_groups, dtype=np.float64)
    partials = np.empty(64, dtype=np.float64)  # non-overlapping doubles: at most ~40
    for g in range(n_groups):
        first = starts[g]
        last = starts[g + 1] if g + 1 < n_groups else values.shape[0]
        if last - first == 1:
            out[g] = values[first]
            continue
        n = 0
        plain = 0.0
        for i in range(first, last):
            x = values[i]
            plain += x
            j = 0
            for k in range(n):
                y = partials[k]
                if abs(x) < abs(y):
                    x, y = y, x
                hi = x + y
                lo = y - (hi - x)
                if lo != 0.0:
                    partials[j] = lo
                    j += 1
                x = hi
            partials[j] = x
            n = j + 1
        if not np.isfinite(plain):
            out[g] = plain
            continue
        hi = 0.0
        lo = 0.0
        if n > 0:
            n -= 1
            hi = partials[n]
            while n > 0:
                x = hi
                n -= 1
                y = partials[n]
                hi = x + y
                lo = y - (hi - x)
                if lo != 0.0:
                    break
            if n > 0 and ((lo < 0.0 and partials[n - 1] < 0.0) or (lo > 0.0 and partials[n - 1] > 0.0)):
                y = lo * 2.0
                x = hi + y
                if y == x - hi:
                    hi = x
        out[g] = hi
    return out


def _list_chunk(table: pa.Table, name: str) -> pa.ListArray | pa.MapArray:
    chunk = _chunk(table, name)
    # A null list means "none": replace by empty lists so offsets stay well formed.
    if chunk.null_count:
        chunk = pc.if_else(chunk.is_null(), pa.scalar([], type=chunk.type), chunk)
    return chunk


def _check_finite(values: FloatArray, offsets: IndexArray, source: str, kind: str, field: str, bound: float) -> None:
    """Finite and |value| <= bound (docs/formats.md, "Numeric ranges"); the first offence is named."""
    if (np.abs(values) <= bound).all():  # NaN compares False
        return
    row = _first_row(~(np.abs(values) <= bound))
    what = "must be finite" if not np.isfinite(values[row]) else f"must be within +-{bound:g}"
    raise InputError(source, _where(offsets, row, field, kind), f"{what}, got {values[row]!r}")


def _check_entry_prices(entry: FloatArray, linear: NDArray[np.bool_], offsets: IndexArray, source: str) -> None:
    """Linear products carry a finite entry price > 0, options none (NaN); the first offence is named."""
    has_entry = ~np.isnan(entry)
    if not np.array_equal(linear, has_entry):
        missing = linear & ~has_entry
        if missing.any():
            row = _first_row(missing)
            raise InputError(source, _where(offsets, row, ".entry_price", "positions"), "required for a linear product")
        row = _first_row(~linear & has_entry)
        raise InputError(
            source,
            _where(offsets, row, ".entry_price", "positions"),
            "options carry no entry price (their premium is settled in collateral)",
        )
    bad = (entry < MIN_PRICE) | (entry > MAX_PRICE)  # NaN (no entry) compares False
    if bad.any():
        row = _first_row(bad)
        raise InputError(
            source,
            _where(offsets, row, ".entry_price", "positions"),
            f"must be in [{MIN_PRICE:g}, {MAX_PRICE:g}], got {entry[row]!r}",
        )


def _modes(table: pa.Table, ids: pa.Array, source: str) -> tuple[NDArray[np.int8], NDArray[np.object_]]:
    """(mode code of each account, its parent id or None), checked against the account ids."""
    mode_names = pc.fill_null(_chunk(table, "mode"), string_scalar("cross"))
    mode = np.full(table.num_rows, CROSS, dtype=np.int8)
    known = np.zeros(table.num_rows, dtype=np.bool_)
    for name, code in MODE_CODES.items():
        hit = bools(pc.equal(mode_names, string_scalar(name)))
        mode[hit] = code
        known |= hit
    if not known.all():
        row = _first_row(~known)
        raise InputError(
            source, f"accounts[{row}].mode", f"must be 'cross' or 'isolated', got {mode_names[row].as_py()!r}"
        )
    parent_column = _chunk(table, "parent")
    has_parent = bools(parent_column.is_valid())
    wrong = (mode == ISOLATED) != has_parent
    if wrong.any():
        row = _first_row(wrong)
        raise InputError(source, f"accounts[{row}].parent", "isolated sub-accounts, and only they, name a parent")
    parent = objects(parent_column)
    if has_parent.any():
        orphan = has_parent & ~bools(pc.is_in(parent_column, value_set=ids))
        if orphan.any():
            row = _first_row(orphan)
            raise InputError(source, f"accounts[{row}].parent", f"unknown parent account {parent[row]!r}")
    return mode, parent


def book_to_arrow(book: Book) -> pa.Table:
    """The accounts table (ACCOUNTS_SCHEMA) of a book: the inverse of `book_from_arrow`."""
    names = pa.array([inst.id for inst in book.instruments], type=pa.string())
    entry = pa.array(book.pos_entry, mask=np.isnan(book.pos_entry), type=pa.float64())
    venue_names = pa.array(list(book.venues), type=pa.string())
    home = book.pos_venue == HOME_VENUE
    venue = venue_names.take(pa.array(np.where(home, 0, book.pos_venue), mask=home))
    positions = pa.StructArray.from_arrays(
        [names.take(pa.array(book.pos_instrument)), pa.array(book.pos_quantity), entry, venue],
        fields=list(POSITION_TYPE),
    )
    assets = pa.array(list(book.collateral_assets), type=pa.string())
    collateral = pa.MapArray.from_arrays(
        pa.array(book.col_offsets.astype(np.int32)), assets.take(pa.array(book.col_asset)), pa.array(book.col_amount)
    )
    modes = np.where(book.mode == ISOLATED, "isolated", "cross")
    return pa.table(
        {
            "id": pa.array(book.account_ids, type=pa.string()),
            "collateral": collateral,
            "positions": pa.ListArray.from_arrays(pa.array(book.pos_offsets.astype(np.int32)), positions),
            "risk_tier": pa.array(book.risk_tier, mask=np.isnan(book.risk_tier), type=pa.float64()),
            "mode": pa.array(modes, type=pa.string()),
            "parent": pa.array(book.parent, type=pa.string()),
        },
        schema=ACCOUNTS_SCHEMA,
    )
