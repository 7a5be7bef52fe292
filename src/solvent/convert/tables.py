"""A book from flat tables, as a notebook holds them: one row per position (and one per collateral balance), in a
pandas DataFrame or an Arrow table, turned into the portfolio's Arrow layout (formats/arrow.py) and built by the
same validating builder as a Parquet portfolio (`engine.book.book_from_arrow`)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from solvent.engine.book import Book, book_from_arrow
from solvent.errors import InputError
from solvent.formats.arrow import POSITION_TYPE
from solvent.formats.schemas import Instrument

POSITION_COLUMNS = ("account", "instrument", "quantity")
COLLATERAL_COLUMNS = ("account", "asset", "amount")
ACCOUNT_COLUMNS = ("id", "risk_tier", "mode", "parent")


def _arrow(table: Any, source: str) -> pa.Table:
    """An Arrow table from an Arrow table or a pandas DataFrame (its index dropped)."""
    if isinstance(table, pa.Table):
        return table
    try:
        return pa.Table.from_pandas(table, preserve_index=False)
    except (TypeError, AttributeError, pa.ArrowException) as error:
        raise InputError(source, "table", f"expected a pandas DataFrame or an Arrow table: {error}") from None


def _column(table: pa.Table, name: str, kind: pa.DataType, source: str) -> pa.Array:
    if name not in table.column_names:
        raise InputError(source, name, "required column is missing")
    try:
        return table.column(name).combine_chunks().cast(kind)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError):
        raise InputError(source, name, f"expected {kind}, got {table.column(name).type}") from None


def _grouped(ids: pa.Array, accounts: list[str], values: pa.Array, source: str) -> pa.ListArray:
    """`values` grouped by account (in `accounts` order, rows kept in their order within an account)."""
    if ids.null_count:
        raise InputError(source, "account", f"{ids.null_count} rows without an account id")
    codes = pc.index_in(ids, value_set=pa.array(accounts, pa.string())).to_numpy(zero_copy_only=False).astype(np.int64)
    order = np.argsort(codes, kind="stable")
    offsets = np.concatenate([[0], np.cumsum(np.bincount(codes, minlength=len(accounts)))]).astype(np.int32)
    return pa.ListArray.from_arrays(pa.array(offsets), values.take(pa.array(order)))


def book_from_tables(
    instruments: tuple[Instrument, ...] | list[Instrument],
    positions: Any,
    collateral: Any = None,
    accounts: Any = None,
    source: str = "<positions>",
) -> Book:
    """A Book from a positions table (columns account, instrument, quantity; optional entry_price, venue), an
    optional collateral table (account, asset, amount) and an optional accounts table (id; optional risk_tier,
    mode, parent: the portfolio file's account attributes, e.g. isolated sub-accounts). Accounts are those of any
    table, sorted by id; an account with collateral only has no positions. Bad input is an InputError naming the
    table and the column."""
    table = _arrow(positions, source)
    ids = _column(table, "account", pa.string(), source)
    n = table.num_rows
    entry = (
        _column(table, "entry_price", pa.float64(), source)
        if "entry_price" in table.column_names
        else pa.nulls(n, pa.float64())
    )
    venue = _column(table, "venue", pa.string(), source) if "venue" in table.column_names else pa.nulls(n, pa.string())
    unknown = sorted(set(table.column_names) - {*POSITION_COLUMNS, "entry_price", "venue"})
    if unknown:
        raise InputError(source, unknown[0], "unknown column")
    position = pa.StructArray.from_arrays(
        [
            _column(table, "instrument", pa.string(), source),
            _column(table, "quantity", pa.float64(), source),
            entry,
            venue,
        ],
        fields=list(POSITION_TYPE),
    )
    balances = None
    held = set(ids.drop_null().to_pylist())
    if collateral is not None:
        where = f"{source} (collateral)"
        balances = _arrow(collateral, where)
        unknown = sorted(set(balances.column_names) - set(COLLATERAL_COLUMNS))
        if unknown:
            raise InputError(where, unknown[0], "unknown column")
        held |= set(_column(balances, "account", pa.string(), where).drop_null().to_pylist())
    attributes = None
    if accounts is not None:
        where = f"{source} (accounts)"
        attributes = _arrow(accounts, where)
        unknown = sorted(set(attributes.column_names) - set(ACCOUNT_COLUMNS))
        if unknown:
            raise InputError(where, unknown[0], "unknown column")
        accounts_ids = _column(attributes, "id", pa.string(), where)
        if accounts_ids.null_count or len(set(accounts_ids.to_pylist())) != len(accounts_ids):
            raise InputError(where, "id", "account ids must be present and unique")
        held |= set(accounts_ids.to_pylist())
    order = sorted(held)
    columns: dict[str, pa.Array] = {
        "id": pa.array(order, pa.string()),
        "positions": _grouped(ids, order, position, source),
    }
    if balances is not None:
        where = f"{source} (collateral)"
        owners = _column(balances, "account", pa.string(), where)
        pairs = pa.StructArray.from_arrays(
            [_column(balances, "asset", pa.string(), where), _column(balances, "amount", pa.float64(), where)],
            names=["key", "value"],
        )
        grouped = _grouped(owners, order, pairs, where)
        columns["collateral"] = pa.MapArray.from_arrays(
            grouped.offsets, grouped.flatten().field("key"), grouped.flatten().field("value")
        )
    if attributes is not None:
        where = f"{source} (accounts)"
        at = pc.index_in(pa.array(order, pa.string()), value_set=_column(attributes, "id", pa.string(), where))
        for name, kind in (("risk_tier", pa.float64()), ("mode", pa.string()), ("parent", pa.string())):
            if name in attributes.column_names:
                columns[name] = _column(attributes, name, kind, where).take(at)
    return book_from_arrow(pa.table(columns), tuple(instruments), source)
