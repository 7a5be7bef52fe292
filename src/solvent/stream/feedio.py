"""Reading and writing the feed (`solvent.feed/1`): NDJSON or Parquet in, validated records out.

The feed is converted once, here: every record decodes into its msgspec type (types, ranges, unknown
fields and the record's own rules are msgspec's checks, the same for both encodings), then the order
is checked (`seq` strictly increasing, `time` non-decreasing). Bad input raises InputError naming the
file, the record and the field: ``feed.ndjson: records[3] (line 5).price: Expected `float` > 0.0``.

- NDJSON (`.ndjson`, `.jsonl`): one record per line, a JSON object tagged by `type`; blank lines are
  skipped (a record's index counts records, its line counts lines).
- Parquet (`.parquet`): one flat table (`COLUMNS`); a record uses its type's columns and leaves the
  others null; a null in a field with a default is that default. The metadata key `solvent.schema`
  names `solvent.feed/1`; column order is free.

Writers go through `atomic_output`: a failed write leaves nothing behind.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from datetime import datetime
from pathlib import Path
from types import GenericAlias
from typing import Any, Final, NoReturn, get_args

import msgspec
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from solvent.errors import InputError
from solvent.formats.errors import read_bytes, split_validation_message, unreadable_json
from solvent.formats.io import SCHEMA_KEY, atomic_output
from solvent.stream.feed import FEED_SCHEMA, FeedRecord

NDJSON_SUFFIXES: Final = (".ndjson", ".jsonl")
PARQUET_SUFFIX: Final = ".parquet"

TIMESTAMP: Final = pa.timestamp("us", tz="UTC")
#: The Parquet columns: seq, time and type in every row, the others nullable and used by some types.
COLUMNS: Final[dict[str, pa.DataType]] = {
    "seq": pa.int64(),
    "time": TIMESTAMP,
    "type": pa.string(),
    **dict.fromkeys(("asset", "account", "instrument", "source"), pa.string()),
    **dict.fromkeys(("price", "quantity", "amount", "fee", "confidence", "scale", "vol"), pa.float64()),
    "timestamp": TIMESTAMP,
    "params": pa.string(),  # a solvent.params/1 document as JSON
}
REQUIRED_COLUMNS: Final = ("seq", "time", "type")
ARROW_SCHEMA: Final = pa.schema(list(COLUMNS.items()), metadata={SCHEMA_KEY: FEED_SCHEMA.encode()})

_TYPES: Final[dict[str, type[Any]]] = {cls.__struct_config__.tag: cls for cls in get_args(FeedRecord)}
#: Each type's own fields (after seq and time).
_FIELDS: Final = {
    tag: tuple(f for f in msgspec.structs.fields(cls) if f.name not in REQUIRED_COLUMNS) for tag, cls in _TYPES.items()
}
#: The types that have each optional column.
_OWNERS: Final = {
    name: [tag for tag, fields in _FIELDS.items() if name in {f.name for f in fields}]
    for name in COLUMNS
    if name not in REQUIRED_COLUMNS
}
_DECODE_LINE: Final = msgspec.json.Decoder(FeedRecord).decode
_ENCODER: Final = msgspec.json.Encoder()


def read_feed(path: str | os.PathLike[str]) -> tuple[FeedRecord, ...]:
    """Read a `solvent.feed/1` file (.ndjson, .jsonl or .parquet) into validated records, in feed order."""
    source = str(path)
    if _encoding(source) == "ndjson":
        return _read_ndjson(source)
    return _read_parquet(source)


def write_feed(path: str | os.PathLike[str], records: Iterable[FeedRecord]) -> None:
    """Write records as a `solvent.feed/1` file, NDJSON or Parquet by the suffix of `path`, atomically.

    Raises ValueError, and writes nothing, if the records are out of order. The fields are written as
    given: records built in Python are not range-checked until they are read.
    """
    records = tuple(records)
    disorder = _first_disorder(records)
    if disorder is not None:
        index, field, message = disorder
        raise ValueError(f"records[{index}].{field}: {message}")
    write = _write_ndjson if _encoding(str(path)) == "ndjson" else _write_parquet
    with atomic_output(path) as tmp:
        write(tmp, records)


def _write_ndjson(path: str, records: tuple[FeedRecord, ...]) -> None:
    Path(path).write_bytes(_ENCODER.encode_lines(records))


def _write_parquet(path: str, records: tuple[FeedRecord, ...]) -> None:
    pq.write_table(_table(records), path, compression="zstd")


def _encoding(source: str) -> str:
    suffix = Path(source).suffix.lower()
    if suffix in NDJSON_SUFFIXES:
        return "ndjson"
    if suffix == PARQUET_SUFFIX:
        return "parquet"
    raise InputError(source, "", f"unknown feed file suffix {suffix!r} (expected .ndjson, .jsonl or .parquet)")


def _first_disorder(records: Sequence[FeedRecord]) -> tuple[int, str, str] | None:
    """(index, field, message) of the first record out of order, or None."""
    for index in range(1, len(records)):
        before, record = records[index - 1], records[index]
        if record.seq <= before.seq:
            return index, "seq", f"seq {record.seq} after seq {before.seq}: sequence numbers must strictly increase"
        if record.time < before.time:
            return (
                index,
                "time",
                f"time {record.time.isoformat()} of seq {record.seq} is before time {before.time.isoformat()} "
                f"of seq {before.seq}: time must not go backwards",
            )
    return None


def _where(index: int, field: str, line: int | None = None) -> str:
    """`records[3] (line 5).price`: the record's index, its line in NDJSON, the field."""
    record = f"records[{index}]" if line is None else f"records[{index}] (line {line})"
    return f"{record}.{field}" if field else record


def _readable(path: str, message: str) -> tuple[str, str]:
    """msgspec's (path, message) made plain: an unknown tag says which tags there are."""
    if path == "type" and message.startswith("Invalid value "):
        value = message.removeprefix("Invalid value ")
        return path, f"unknown record type {value} (expected one of {', '.join(_TYPES)})"
    return path, message


# ------------------------------------------------------------------------------------------------ NDJSON


def _read_ndjson(source: str) -> tuple[FeedRecord, ...]:
    return decode_ndjson(read_bytes(source), source)


def decode_ndjson(data: bytes, source: str) -> tuple[FeedRecord, ...]:
    """NDJSON bytes (one record a line) into validated records; bad input is InputError naming `source`."""
    lines = data.split(b"\n")
    records: list[FeedRecord] = []
    try:
        for line in lines:
            if line.strip():
                records.append(_DECODE_LINE(line))
    except _LINE_ERRORS as exc:
        _raise_at_line(source, lines, len(records), *_line_problem(exc))
    disorder = _first_disorder(records)
    if disorder is not None:
        _raise_at_line(source, lines, *disorder)
    return tuple(records)


def decode_record(line: bytes, source: str, index: int | None = None, number: int | None = None) -> FeedRecord:
    """One record read as it arrives (an NDJSON line of `solvent stream --follow`, a bus message). The InputError
    names `source`, the record's `index` in the feed and its line `number` where given, and the field."""
    try:
        record: FeedRecord = _DECODE_LINE(line)
    except _LINE_ERRORS as exc:
        field, message = _line_problem(exc)
        raise InputError(source, field if index is None else _where(index, field, number), message) from None
    return record


_LINE_ERRORS: Final = (msgspec.ValidationError, msgspec.DecodeError, RecursionError, UnicodeDecodeError)


def _line_problem(exc: BaseException) -> tuple[str, str]:
    """(field, message) of a line msgspec could not decode (one of _LINE_ERRORS)."""
    if isinstance(exc, msgspec.ValidationError):
        return _readable(*split_validation_message(str(exc)))
    if isinstance(exc, msgspec.DecodeError):
        return "", f"not valid JSON ({exc})"
    assert isinstance(exc, RecursionError | UnicodeDecodeError)
    return "", unreadable_json(exc)


def _raise_at_line(source: str, lines: list[bytes], index: int, field: str, message: str) -> NoReturn:
    """Raise InputError for the `index`-th record, naming its line (1-based, blank lines counted)."""
    count = -1
    for number, line in enumerate(lines, start=1):
        count += bool(line.strip())
        if count == index:
            raise InputError(source, _where(index, field, number), message)
    raise AssertionError(f"no record {index} in {source}")  # pragma: no cover - callers pass a record's index


# ----------------------------------------------------------------------------------------------- Parquet


def _read_parquet(source: str) -> tuple[FeedRecord, ...]:
    try:
        parquet = pq.ParquetFile(source)
        found = (parquet.schema_arrow.metadata or {}).get(SCHEMA_KEY)
        if found is None:
            raise InputError(source, "metadata", f"missing key 'solvent.schema' (expected {FEED_SCHEMA!r})")
        if found != FEED_SCHEMA.encode():
            raise InputError(
                source,
                "metadata.solvent.schema",
                f"unknown schema version {found.decode(errors='replace')!r} (this solvent reads {FEED_SCHEMA!r})",
            )
        table = parquet.read()
    except (OSError, pa.ArrowException) as exc:
        raise InputError(source, "", f"not a readable Parquet file ({exc})") from None
    return decode_table(table, source)


def decode_table(table: pa.Table, source: str) -> tuple[FeedRecord, ...]:
    """An Arrow table in the Parquet layout (`COLUMNS`) into validated records, in order (the Parquet file's
    and the service's Arrow IPC body's one decoder)."""
    columns = _conform(table, source)
    if table.num_rows == 0:
        return ()
    _check_columns(columns, source)
    records = _records(columns, source)
    disorder = _first_disorder(records)
    if disorder is not None:
        index, field, message = disorder
        raise InputError(source, _where(index, field), message)
    return records


def _conform(table: pa.Table, source: str) -> dict[str, pa.Array]:
    """Every column of COLUMNS as one array of its type; a missing optional column is all nulls."""
    names = table.column_names
    for name in names:
        if name not in COLUMNS:
            raise InputError(source, f"column {name}", f"unknown column (expected some of {', '.join(COLUMNS)})")
        if names.count(name) > 1:
            raise InputError(source, f"column {name}", "appears more than once")
    for name in REQUIRED_COLUMNS:
        if name not in names:
            raise InputError(source, f"column {name}", "required column is missing")
    columns = {}
    for name, expected in COLUMNS.items():
        if name not in names:
            columns[name] = pa.nulls(table.num_rows, expected)
            continue
        column = table.column(name).combine_chunks()
        if not _castable(column.type, expected):
            raise InputError(source, f"column {name}", f"expected {expected}, got {column.type}")
        try:
            columns[name] = column.cast(expected)
        except pa.ArrowException as exc:
            raise InputError(source, f"column {name}", f"cannot be read as {expected} ({exc})") from None
    return columns


def _castable(found: pa.DataType, expected: pa.DataType) -> bool:
    if pa.types.is_dictionary(found):
        found = found.value_type
    if pa.types.is_timestamp(expected):
        return bool(pa.types.is_timestamp(found) and found.tz is not None)  # a time without a zone is an error
    if pa.types.is_string(expected):
        return bool(pa.types.is_string(found) or pa.types.is_large_string(found))
    if pa.types.is_floating(expected):
        return bool(pa.types.is_floating(found) or pa.types.is_integer(found))
    return bool(pa.types.is_integer(found))


def _first(mask: pa.Array) -> int | None:
    """The index of the first true (non-null) element of a boolean array, or None."""
    found = np.flatnonzero(mask.fill_null(False).to_numpy(zero_copy_only=False))
    return int(found[0]) if found.size else None


def _check_columns(columns: dict[str, pa.Array], source: str) -> None:
    """What msgspec cannot see in one row: the type column, values in another type's column, non-finite numbers."""
    for name in REQUIRED_COLUMNS:
        row = _first(pc.is_null(columns[name]))
        if row is not None:
            raise InputError(source, _where(row, name), "required field is missing")
    types = columns["type"]
    row = _first(pc.invert(pc.is_in(types, value_set=pa.array(list(_TYPES)))))
    if row is not None:
        raise InputError(source, _where(row, "type"), _readable("type", f"Invalid value {types[row].as_py()!r}")[1])
    for name, owners in _OWNERS.items():
        column = columns[name]
        row = _first(pc.and_(pc.is_valid(column), pc.invert(pc.is_in(types, value_set=pa.array(owners, pa.string())))))
        if row is not None:
            tag = types[row].as_py()
            raise InputError(source, _where(row, name), f"a {tag} record has no {name} (leave the column null there)")
        if pa.types.is_floating(column.type):
            row = _first(pc.invert(pc.is_finite(column)))
            if row is not None:
                raise InputError(source, _where(row, name), f"must be finite, got {column[row].as_py()!r}")


def _records(columns: dict[str, pa.Array], source: str) -> tuple[FeedRecord, ...]:
    """Decode each type's rows into its msgspec type (msgspec checks ranges and the record's own rules)."""
    encoded = columns["type"].dictionary_encode()
    tags: list[str] = encoded.dictionary.to_pylist()
    if len(tags) == 1:
        return tuple(_decode_rows(columns, tags[0], np.arange(len(encoded)), source))
    codes = encoded.indices.to_numpy()
    records: list[Any] = [None] * len(codes)
    for code, tag in enumerate(tags):
        rows = np.flatnonzero(codes == code)
        names = ["seq", "time", *(field.name for field in _FIELDS[tag])]
        taken = {name: columns[name].take(pa.array(rows)) for name in names}
        for row, record in zip(rows.tolist(), _decode_rows(taken, tag, rows, source), strict=True):
            records[row] = record
    return tuple(records)


def _decode_rows(
    columns: dict[str, pa.Array], tag: str, rows: np.ndarray[Any, np.dtype[np.intp]], source: str
) -> list[FeedRecord]:
    """The records of one type, from its columns (`rows`: the file's row of each)."""
    names = ["seq", "time"]
    values: list[list[Any]] = [columns["seq"].to_numpy().tolist(), _datetimes(columns["time"])]
    for field in _FIELDS[tag]:
        column = columns[field.name]
        missing = _first(pc.is_null(column)) if column.null_count else None
        if missing is not None and field.required:
            raise InputError(source, _where(int(rows[missing]), field.name), "required field is missing")
        if missing is not None and field.default not in (None, msgspec.NODEFAULT):
            column = column.fill_null(field.default)  # a null is the field left out
        names.append(field.name)
        values.append(_python_values(column, field.name, rows, source))
    try:
        records: list[FeedRecord] = msgspec.convert(
            [dict(zip(names, row, strict=True)) for row in zip(*values, strict=True)], GenericAlias(list, _TYPES[tag])
        )
        return records
    except msgspec.ValidationError as exc:
        path, message = split_validation_message(str(exc))
        index, _, field_path = path.partition("]")  # "[12].price": the 12th record of this type
        raise InputError(source, _where(int(rows[int(index.lstrip("["))]), field_path.lstrip(".")), message) from None


def _python_values(column: pa.Array, name: str, rows: np.ndarray[Any, np.dtype[np.intp]], source: str) -> list[Any]:
    if pa.types.is_timestamp(column.type):
        return _datetimes(column)
    if pa.types.is_floating(column.type) and not column.null_count:
        return column.to_numpy().tolist()  # type: ignore[no-any-return]
    if name != "params":
        return column.to_pylist()  # type: ignore[no-any-return]
    documents = []
    for k, text in enumerate(column.to_pylist()):
        try:
            documents.append(None if text is None else msgspec.json.decode(text))
        except msgspec.DecodeError as exc:
            raise InputError(source, _where(int(rows[k]), name), f"not valid JSON ({exc})") from None
        except (RecursionError, UnicodeDecodeError) as exc:
            raise InputError(source, _where(int(rows[k]), name), unreadable_json(exc)) from None
    return documents


#: A msgpack "timestamp 96" extension (type -1): nanoseconds (uint32) and seconds (int64), big-endian.
_MSGPACK_TIMESTAMP: Final = np.dtype([("header", "u1", 3), ("nanoseconds", ">u4"), ("seconds", ">i8")])
_DECODE_TIMES: Final = msgspec.msgpack.Decoder(list[datetime | None]).decode


def _datetimes(column: pa.Array) -> list[datetime | None]:
    """A timestamp[us, tz=UTC] column as UTC datetimes, nulls as None.

    Equal to `column.to_pylist()` (tests/test_feedio.py checks), four times faster: the instants are packed
    as one msgpack array of timestamps, which msgspec turns into datetimes in C.
    """
    micros = column.cast(pa.int64()).fill_null(0).to_numpy()
    packed = np.empty(len(micros), _MSGPACK_TIMESTAMP)
    packed["header"] = (0xC7, 12, 0xFF)  # ext 8, 12 bytes, type -1
    seconds, remainder = np.divmod(micros, 1_000_000)
    packed["seconds"] = seconds
    packed["nanoseconds"] = remainder * 1000
    times: list[datetime | None] = _DECODE_TIMES(b"\xdd" + len(micros).to_bytes(4, "big") + packed.tobytes())
    if column.null_count:
        for k in np.flatnonzero(column.is_null().to_numpy(zero_copy_only=False)).tolist():
            times[k] = None
    return times


def _table(records: tuple[FeedRecord, ...]) -> pa.Table:
    """The records as one Arrow table of ARROW_SCHEMA (a field a record's type lacks is null)."""
    present = {record.__struct_config__.tag for record in records}
    arrays = []
    for name, kind in COLUMNS.items():
        if name == "type":
            values: list[Any] = [record.__struct_config__.tag for record in records]
        elif name in REQUIRED_COLUMNS:
            values = [getattr(record, name) for record in records]
        elif not present & set(_OWNERS[name]):
            arrays.append(pa.nulls(len(records), kind))
            continue
        elif present <= set(_OWNERS[name]):
            values = [getattr(record, name) for record in records]
        else:
            values = [getattr(record, name, None) for record in records]
        if name == "params":
            values = [None if value is None else _ENCODER.encode(value).decode() for value in values]
        arrays.append(pa.array(values, kind))
    return pa.Table.from_arrays(arrays, schema=ARROW_SCHEMA)
