"""Readers and writers for the portable formats (JSON for small inputs, Parquet for millions of rows).

Every file carries its schema and version: a `schema` field in JSON, the `solvent.schema` key in
Parquet metadata. Readers raise InputError naming file, record and field; writers write a temporary
file beside the target and rename it, so a failed run never leaves a half-written file. A portfolio becomes a Book
and a parameters file its record in convert/inputs.py, above both formats and engine.
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

from solvent.errors import InputError
from solvent.formats.arrow import ACCOUNTS_SCHEMA
from solvent.formats.errors import decode_json, read_bytes
from solvent.formats.schemas import MARKET_SCHEMA, PORTFOLIO_SCHEMA, AssetQuote, Instrument, MarketSnapshot, PositiveVol

T = TypeVar("T")
SCHEMA_KEY = b"solvent.schema"
INSTRUMENTS_KEY = b"solvent.instruments"


def check_schema(found: object, expected: str, source: str) -> None:
    """Raise InputError unless `found`, a file's schema tag, is `expected`."""
    if found is None:
        raise InputError(source, "schema", f"required field is missing (expected {expected!r})")
    if found != expected:
        raise InputError(source, "schema", f"unknown schema version {found!r} (this solvent reads {expected!r})")


def _top_level(data: bytes, expected: str, source: str) -> dict[str, msgspec.Raw]:
    """The document's top-level fields, still raw, after checking its schema and version."""
    fields = decode_json(data, dict[str, msgspec.Raw], source)
    raw = fields.get("schema")
    check_schema(None if raw is None else decode_json(raw, object, source), expected, source)
    return fields


def decode_versioned(data: bytes, kind: type[T], expected: str, source: str) -> T:
    """Decode a JSON document as `kind` after checking its schema tag."""
    _top_level(data, expected, source)
    return decode_json(data, kind, source)


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
