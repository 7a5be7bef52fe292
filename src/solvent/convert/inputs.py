"""Input files into the engine's types: a portfolio (JSON or Parquet) into a Book, parameter files into their records.

Above both formats/ (the schemas and codecs) and engine/ (the Book): the formats know no engine type, and the
engine reads no file. Readers raise InputError naming file, record and field.
"""

from __future__ import annotations

import os

import pyarrow as pa
import pyarrow.parquet as pq

from solvent.baselines import BASELINE_PARAMS_SCHEMA, BaselineParams
from solvent.engine.book import Book, book_from_arrow
from solvent.errors import InputError
from solvent.formats.arrow import accounts_table
from solvent.formats.errors import decode_json, read_bytes
from solvent.formats.io import INSTRUMENTS_KEY, SCHEMA_KEY, check_schema, decode_versioned
from solvent.formats.schemas import PORTFOLIO_SCHEMA, Instrument, Portfolio
from solvent.params import PARAMS_SCHEMA, MarginParams


def load_portfolio(path: str | os.PathLike[str]) -> Book:
    """Read a `solvent.portfolio/1` file (.json or .parquet) into a validated Book."""
    source = str(path)
    if source.endswith(".parquet"):
        return _load_portfolio_parquet(source)
    portfolio = decode_versioned(read_bytes(source), Portfolio, PORTFOLIO_SCHEMA, source)
    return portfolio_to_book(portfolio, source)


def portfolio_to_book(portfolio: Portfolio, source: str = "<portfolio>") -> Book:
    """Convert a decoded Portfolio into a Book (through the same Arrow path as Parquet input)."""
    return book_from_arrow(accounts_table(portfolio.accounts), tuple(portfolio.instruments), source)


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
        check_schema(metadata.get(SCHEMA_KEY, b"").decode() or None, PORTFOLIO_SCHEMA, source)
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


def load_params(path: str | os.PathLike[str] | None) -> MarginParams:
    """Read a `solvent.params/1` JSON file; None gives the defaults."""
    if path is None:
        return MarginParams()
    source = str(path)
    return decode_versioned(read_bytes(source), MarginParams, PARAMS_SCHEMA, source)


def load_baseline_params(path: str | os.PathLike[str] | None) -> BaselineParams:
    """Read a `solvent.baseline-params/1` JSON file (the venue rules' parameters); None gives the defaults."""
    if path is None:
        return BaselineParams()
    source = str(path)
    return decode_versioned(read_bytes(source), BaselineParams, BASELINE_PARAMS_SCHEMA, source)
