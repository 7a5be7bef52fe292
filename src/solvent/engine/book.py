"""The position book: every account's collateral and positions as CSR arrays.

Built once at the boundary from an Arrow table (the Parquet format; the JSON format is converted to
the same table first, so both are validated by the same code). Rows index the portfolio's own
instrument list and collateral-asset list; the market is not needed to build a book.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from numpy.typing import NDArray

from solvent.errors import InputError
from solvent.formats.schemas import LINEAR_KINDS, Instrument

FloatArray = NDArray[np.float64]
IndexArray = NDArray[np.int64]

CROSS, ISOLATED = 0, 1
MODE_CODES = {"cross": CROSS, "isolated": ISOLATED}

POSITION_TYPE = pa.struct([("instrument", pa.string()), ("quantity", pa.float64()), ("entry_price", pa.float64())])
ACCOUNTS_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("collateral", pa.map_(pa.string(), pa.float64())),
        ("positions", pa.list_(POSITION_TYPE)),
        ("risk_tier", pa.float64()),
        ("mode", pa.string()),
        ("parent", pa.string()),
    ]
)


@dataclass(frozen=True, eq=False)
class Book:
    """N accounts in CSR form.

    Positions of account n are rows pos_offsets[n]:pos_offsets[n+1] of pos_instrument (index into
    `instruments`), pos_quantity and pos_entry (NaN for options). Collateral likewise with col_asset
    (index into `collateral_assets`) and col_amount. risk_tier is NaN where absent; mode is CROSS or
    ISOLATED; parent is None for cross accounts.
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

    @property
    def n_accounts(self) -> int:
        """N."""
        return int(self.account_ids.shape[0])

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


def _check_finite(values: FloatArray, offsets: IndexArray, source: str, kind: str, field: str) -> None:
    bad = ~np.isfinite(values)
    if bad.any():
        row = _first_row(bad)
        raise InputError(source, _where(offsets, row, field, kind), f"must be finite, got {values[row]!r}")


def _float_column(array: pa.Array, fill: float) -> FloatArray:
    return np.asarray(pc.fill_null(array.cast(pa.float64()), fill).to_numpy(zero_copy_only=False))


def _require_columns(table: pa.Table, source: str) -> pa.Table:
    for field in ("id", "positions"):
        if field not in table.column_names:
            raise InputError(source, field, "required column is missing")
    columns = {}
    for field in ACCOUNTS_SCHEMA:
        if field.name in table.column_names:
            column = table.column(field.name)
            try:
                columns[field.name] = column.cast(field.type)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
                raise InputError(source, field.name, f"expected {field.type}, got {column.type}") from None
        else:
            columns[field.name] = pa.nulls(table.num_rows, field.type)
    unknown = sorted(set(table.column_names) - set(ACCOUNTS_SCHEMA.names))
    if unknown:
        raise InputError(source, unknown[0], "unknown column")
    return pa.table(columns, schema=ACCOUNTS_SCHEMA).combine_chunks()


def book_from_arrow(table: pa.Table, instruments: tuple[Instrument, ...], source: str) -> Book:
    """Validate an accounts table (ACCOUNTS_SCHEMA) against the instruments and build the Book."""
    table = _require_columns(table, source)
    n = table.num_rows
    ids = table.column("id").chunk(0) if table.column("id").num_chunks else pa.array([], pa.string())
    if ids.null_count:
        raise InputError(source, f"accounts[{_first_row(ids.is_null().to_numpy(False))}].id", "required")
    id_values = np.asarray(ids.to_numpy(zero_copy_only=False), dtype=object)
    if len(pc.unique(ids)) != n:
        order = np.argsort(id_values, kind="stable")
        sorted_ids = id_values[order]
        dup = _first_row(sorted_ids[1:] == sorted_ids[:-1])
        row = int(max(order[dup], order[dup + 1]))
        raise InputError(source, f"accounts[{row}].id", f"duplicate account id {id_values[row]!r}")

    positions = _list_chunk(table, "positions")
    pos_offsets = np.asarray(positions.offsets.to_numpy(), dtype=np.int64)
    pos_values = positions.flatten()
    inst_names = pos_values.field("instrument")
    if inst_names.null_count:
        row = _first_row(inst_names.is_null().to_numpy(False))
        raise InputError(source, _where(pos_offsets, row, ".instrument", "positions"), "required")
    index = {inst.id: i for i, inst in enumerate(instruments)}
    encoded = inst_names.dictionary_encode()
    lookup = np.array([index.get(name, -1) for name in encoded.dictionary.to_pylist()], dtype=np.int32)
    pos_instrument = (
        lookup[np.asarray(encoded.indices.to_numpy(zero_copy_only=False))]
        if len(lookup)
        else (np.zeros(0, dtype=np.int32))
    )
    if (pos_instrument < 0).any():
        row = _first_row(pos_instrument < 0)
        raise InputError(
            source,
            _where(pos_offsets, row, ".instrument", "positions"),
            f"unknown instrument {inst_names[row].as_py()!r}",
        )
    quantity_array = pos_values.field("quantity")
    if quantity_array.null_count:
        row = _first_row(quantity_array.is_null().to_numpy(False))
        raise InputError(source, _where(pos_offsets, row, ".quantity", "positions"), "required")
    pos_quantity = _float_column(quantity_array, np.nan)
    _check_finite(pos_quantity, pos_offsets, source, "positions", ".quantity")
    pos_entry = _float_column(pos_values.field("entry_price"), np.nan)
    linear = np.array([inst.kind in LINEAR_KINDS for inst in instruments], dtype=np.bool_)[pos_instrument]
    has_entry = ~np.isnan(pos_entry)
    _check_entry_prices(pos_entry, linear, has_entry, pos_offsets, source)

    collateral = _list_chunk(table, "collateral")
    col_offsets = np.asarray(collateral.offsets.to_numpy(), dtype=np.int64)
    keys = collateral.keys
    if keys.null_count:
        raise InputError(source, "collateral", "asset names are required")
    key_codes = keys.dictionary_encode()
    collateral_assets = tuple(str(k) for k in key_codes.dictionary.to_pylist())
    col_asset = np.asarray(key_codes.indices.to_numpy(zero_copy_only=False), dtype=np.int32)
    col_amount = _float_column(collateral.items, np.nan)
    _check_finite(col_amount, col_offsets, source, "collateral", ".amount")

    risk_tier = _float_column(table.column("risk_tier").chunk(0), np.nan) if n else np.zeros(0)
    bad_tier = ~(np.isnan(risk_tier) | (np.isfinite(risk_tier) & (risk_tier > 0)))
    if bad_tier.any():
        row = _first_row(bad_tier)
        raise InputError(source, f"accounts[{row}].risk_tier", f"must be > 0, got {risk_tier[row]!r}")
    mode, parent = _modes(table, id_values, source)
    return Book(
        instruments=instruments,
        account_ids=id_values,
        pos_offsets=pos_offsets,
        pos_instrument=np.ascontiguousarray(pos_instrument, dtype=np.int32),
        pos_quantity=pos_quantity,
        pos_entry=pos_entry,
        collateral_assets=collateral_assets,
        col_offsets=col_offsets,
        col_asset=col_asset,
        col_amount=col_amount,
        risk_tier=risk_tier,
        mode=mode,
        parent=parent,
    )


def _list_chunk(table: pa.Table, name: str) -> pa.ListArray | pa.MapArray:
    column = table.column(name)
    chunk = column.chunk(0) if column.num_chunks else pa.array([], column.type)
    # A null list means "none": replace by empty lists so offsets stay well formed.
    if chunk.null_count:
        chunk = pc.if_else(chunk.is_null(), pa.scalar([], type=chunk.type), chunk)
    return chunk


def _check_entry_prices(
    entry: FloatArray, linear: NDArray[np.bool_], has_entry: NDArray[np.bool_], offsets: IndexArray, source: str
) -> None:
    missing = linear & ~has_entry
    if missing.any():
        row = _first_row(missing)
        raise InputError(source, _where(offsets, row, ".entry_price", "positions"), "required for a linear product")
    extra = ~linear & has_entry
    if extra.any():
        row = _first_row(extra)
        raise InputError(
            source,
            _where(offsets, row, ".entry_price", "positions"),
            "options carry no entry price (their premium is settled in collateral)",
        )
    bad = has_entry & ~(np.isfinite(entry) & (entry > 0))
    if bad.any():
        row = _first_row(bad)
        raise InputError(source, _where(offsets, row, ".entry_price", "positions"), f"must be > 0, got {entry[row]!r}")


def _modes(table: pa.Table, ids: NDArray[np.object_], source: str) -> tuple[NDArray[np.int8], NDArray[np.object_]]:
    n = table.num_rows
    mode_names = pc.fill_null(table.column("mode"), "cross").to_numpy(zero_copy_only=False)
    mode = np.full(n, CROSS, dtype=np.int8)
    for name, code in MODE_CODES.items():
        mode[mode_names == name] = code
    unknown = ~np.isin(mode_names, list(MODE_CODES))
    if unknown.any():
        row = _first_row(unknown)
        raise InputError(source, f"accounts[{row}].mode", f"must be 'cross' or 'isolated', got {mode_names[row]!r}")
    parent_column = table.column("parent")
    parent = np.asarray(parent_column.to_numpy(zero_copy_only=False), dtype=object)
    has_parent = np.asarray(parent_column.is_valid().to_numpy(zero_copy_only=False), dtype=np.bool_)
    wrong = (mode == ISOLATED) != has_parent
    if wrong.any():
        row = _first_row(wrong)
        raise InputError(source, f"accounts[{row}].parent", "isolated sub-accounts, and only they, name a parent")
    orphan = has_parent.copy()
    orphan[has_parent] = ~np.isin(parent[has_parent], ids)
    if orphan.any():
        row = _first_row(orphan)
        raise InputError(source, f"accounts[{row}].parent", f"unknown parent account {parent[row]!r}")
    return mode, parent


def book_to_arrow(book: Book) -> pa.Table:
    """The accounts table (ACCOUNTS_SCHEMA) of a book: the inverse of `book_from_arrow`."""
    names = pa.array([inst.id for inst in book.instruments], type=pa.string())
    entry = pa.array(book.pos_entry, mask=np.isnan(book.pos_entry), type=pa.float64())
    positions = pa.StructArray.from_arrays(
        [names.take(pa.array(book.pos_instrument)), pa.array(book.pos_quantity), entry],
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
