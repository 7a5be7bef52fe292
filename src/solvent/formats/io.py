"""Readers and writers for the portable formats (JSON for small inputs, Parquet for millions of rows).

Every file carries its schema and version: a `schema` field in JSON, the `solvent.schema` key in
Parquet metadata. Readers raise InputError naming file, record and field; writers write a temporary
file beside the target and rename it, so a failed run never leaves a half-written file.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, TypeVar

import msgspec
import pyarrow as pa
import pyarrow.parquet as pq

from solvent.baselines import BASELINE_PARAMS_SCHEMA, BaselineParams
from solvent.engine.book import ACCOUNTS_SCHEMA, Book, book_from_arrow
from solvent.errors import InputError
from solvent.formats.errors import decode_json, read_bytes
from solvent.formats.schemas import (
    MARKET_SCHEMA,
    PORTFOLIO_SCHEMA,
    AssetQuote,
    Instrument,
    MarketSnapshot,
    Portfolio,
    PositiveVol,
)
from solvent.params import PARAMS_SCHEMA, MarginParams

T = TypeVar("T")
SCHEMA_KEY = b"solvent.schema"
INSTRUMENTS_KEY = b"solvent.instruments"


def _check_schema(found: object, expected: str, source: str) -> None:
    if found is None:
        raise InputError(source, "schema", f"required field is missing (expected {expected!r})")
    if found != expected:
        raise InputError(source, "schema", f"unknown schema version {found!r} (this solvent reads {expected!r})")


def _top_level(data: bytes, expected: str, source: str) -> dict[str, msgspec.Raw]:
    """The document's top-level fields, still raw, after checking its schema and version."""
    fields = decode_json(data, dict[str, msgspec.Raw], source)
    raw = fields.get("schema")
    _check_schema(None if raw is None else decode_json(raw, object, source), expected, source)
    return fields


def _decode_versioned(data: bytes, kind: type[T], expected: str, source: str) -> T:
    _top_level(data, expected, source)
    return decode_json(data, kind, source)


def load_portfolio(path: str | os.PathLike[str]) -> Book:
    """Read a `solvent.portfolio/1` file (.json or .parquet) into a validated Book."""
    source = str(path)
    if source.endswith(".parquet"):
        return _load_portfolio_parquet(source)
    portfolio = _decode_versioned(read_bytes(source), Portfolio, PORTFOLIO_SCHEMA, source)
    return portfolio_to_book(portfolio, source)


def portfolio_to_book(portfolio: Portfolio, source: str = "<portfolio>") -> Book:
    """Convert a decoded Portfolio into a Book (through the same Arrow path as Parquet input)."""
    rows = msgspec.to_builtins(portfolio.accounts)
    table = pa.Table.from_pylist(rows, schema=ACCOUNTS_SCHEMA) if rows else ACCOUNTS_SCHEMA.empty_table()
    return book_from_arrow(table, tuple(portfolio.instruments), source)


def _name_columns(schema: pq.ParquetSchema) -> list[str]:
    """Parquet paths of the instrument names and collateral assets, however the writer spelled the nesting.

    Read dictionary-encoded, ~2,000 distinct names in millions of rows are neither built as strings nor
    hashed again (book_from_arrow takes ENCODED_SCHEMA columns as they are).
    """
    paths = [column.path for column in schema if column.physical_type == "BYTE_ARRAY"]
    return [
        path
        for path in paths
        if (path.startswith("positions.") and path.endswith(".instrument"))
        or (path.startswith("collateral.") and path.endswith(".key"))
    ]


def _load_portfolio_parquet(source: str) -> Book:
    try:
        parquet = pq.ParquetFile(source)
        names = _name_columns(parquet.schema)  # pyarrow rejects a read_dictionary path the file lacks
        if names:
            parquet = pq.ParquetFile(source, metadata=parquet.metadata, read_dictionary=names)
        metadata = parquet.schema_arrow.metadata or {}
        _check_schema(metadata.get(SCHEMA_KEY, b"").decode() or None, PORTFOLIO_SCHEMA, source)
        raw_instruments = metadata.get(INSTRUMENTS_KEY)
        if raw_instruments is None:
            raise InputError(source, "metadata.solvent.instruments", "required (the instrument list as JSON)")
        instruments = decode_json(raw_instruments, list[Instrument], f"{source} metadata")
        if parquet.num_row_groups <= 1:
            table = parquet.read()
        else:  # pyarrow reads a nested dictionary column of several row groups only one group at a time
            table = pa.concat_tables([parquet.read_row_group(i) for i in range(parquet.num_row_groups)])
    except (OSError, pa.ArrowException) as exc:
        raise InputError(source, "", f"not a readable Parquet file ({exc})") from None
    return book_from_arrow(table, tuple(instruments), source)


def write_portfolio_parquet(
    instruments: tuple[Instrument, ...], accounts: pa.Table, path: str | os.PathLike[str]
) -> None:
    """Write accounts (ACCOUNTS_SCHEMA) and the instrument list as one `solvent.portfolio/1` Parquet.

    Parquet dictionary-encodes the strings on its own; casting names to an Arrow dictionary first would only
    make writing slower (the reader asks for dictionaries either way).
    """
    table = accounts.cast(ACCOUNTS_SCHEMA).replace_schema_metadata(
        {SCHEMA_KEY: PORTFOLIO_SCHEMA.encode(), INSTRUMENTS_KEY: msgspec.json.encode(list(instruments))}
    )
    with atomic_output(path) as tmp:
        pq.write_table(table, tmp, compression="zstd")


def load_market(path: str | os.PathLike[str]) -> MarketSnapshot:
    """Read a `solvent.market/1` JSON file; a bad entry of a keyed section is named by its key."""
    source = str(path)
    data = read_bytes(source)
    fields = _top_level(data, MARKET_SCHEMA, source)
    try:
        return decode_json(data, MarketSnapshot, source)
    except InputError as exc:
        section = exc.where.partition("[...]")[0]
        value_type = _KEYED_SECTIONS.get(section)
        if value_type is None or section not in fields:
            raise
        for key, entry in decode_json(fields[section], dict[str, msgspec.Raw], source).items():
            try:
                decode_json(entry, value_type, source)
            except InputError as inner:
                where = f"{section}.{key}" + (f".{inner.where}" if inner.where else "")
                raise InputError(source, where, inner.message) from None
        raise


_KEYED_SECTIONS: dict[str, Any] = {"assets": AssetQuote, "option_vols": PositiveVol}


def load_params(path: str | os.PathLike[str] | None) -> MarginParams:
    """Read a `solvent.params/1` JSON file; None gives the defaults."""
    if path is None:
        return MarginParams()
    source = str(path)
    return _decode_versioned(read_bytes(source), MarginParams, PARAMS_SCHEMA, source)


def load_baseline_params(path: str | os.PathLike[str] | None) -> BaselineParams:
    """Read a `solvent.baseline-params/1` JSON file (the venue rules' parameters); None gives the defaults."""
    if path is None:
        return BaselineParams()
    source = str(path)
    return _decode_versioned(read_bytes(source), BaselineParams, BASELINE_PARAMS_SCHEMA, source)


@contextmanager
def atomic_output(path: str | os.PathLike[str]) -> Iterator[str]:
    """Yield a temporary path beside `path`; rename it over `path` only if the block succeeds."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    try:
        yield tmp
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp makes 0600; give the file the usual permissions
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_text_atomic(path: str | os.PathLike[str], write: Callable[[IO[str]], None]) -> None:
    """Write a text file through `write(handle)` atomically."""
    with atomic_output(path) as tmp, open(tmp, "w", encoding="utf-8") as handle:
        write(handle)
