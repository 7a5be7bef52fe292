"""Price history for calibration and filtered historical simulation: timestamps x asset closes.

Over 600 lines because the canonical reader, the mapped public formats (candle exports, CryptoDataDownload) and
the hourly volume reader share one parser and its row-and-column error messages.

The canonical file format is `solvent.history/1`, in CSV or Parquet:

- CSV: a first line ``# schema: solvent.history/1``, then a header ``timestamp,<ASSET>,...`` and
  one row per timestamp. Timestamps are ISO-8601 in whole seconds, in UTC: ``2020-01-01T00:00:00Z``
  (written so), ``2020-01-01T01:00:00+01:00`` (converted to UTC), ``2020-01-01T00:00:00`` or
  ``2020-01-01`` (read as UTC); a space may replace the ``T``. Closes are positive, finite numbers;
  an empty cell means the asset has no price at that time (not yet listed, or a gap).
- Parquet: the same columns (`timestamp` a timestamp column, one float column per asset) and the
  key-value metadata ``solvent.schema = solvent.history/1``.

Two foreign CSV layouts are also read as they are, for the real data in ../shared/data/prices:
Bitstamp daily wide files (an unnamed date column and ``ASSET:open, ASSET:high, ..., ASSET:close``
columns; the closes are kept) and CryptoDataDownload hourly files (a banner line, then the long
layout ``date,symbol,open,high,low,close,...`` with dates like ``2019-10-17 09-AM``, newest first;
symbol ``BTCUSD`` becomes asset ``BTC``).

Any other CSV of closes, as an exchange or a data vendor exports it (candle files with or without a header,
epoch times in s, ms or us, CryptoDataDownload's newer ``unix,date,symbol,...`` files), is read as it is with
a column mapping, `HistoryColumns` (on the command line `--columns "skip=1,time=date,close=close,symbol=symbol"`,
`parse_columns`): the lines to skip before the header, the time and close columns (a name, or a 0-based
position in a file without a header), the symbol column of a long file (one asset per symbol, as above) or
the asset a single-asset file holds, and the time's strptime format when it is neither ISO-8601 nor epoch
numbers.

Rows are sorted by timestamp; a repeated timestamp with the same closes is dropped, one with
different closes is an error. Every problem raises InputError naming the file, the row (1-based,
counting data rows after the header) or column, and what is wrong.
"""

from __future__ import annotations

import csv
import os
import re
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
from numpy.typing import NDArray

from solvent.errors import InputError

FloatArray = NDArray[np.float64]

HISTORY_SCHEMA = "solvent.history/1"
SCHEMA_KEY = b"solvent.schema"
SCHEMA_LINE = re.compile(r"^#\s*schema:\s*(?P<schema>\S+)\s*$")
TIMESTAMP_COLUMN = "timestamp"


@dataclass(frozen=True)
class _TimeLayout:
    """Text timestamps: a strict pattern (rejects 2020-02-30 style values that strptime would roll
    over into the next month), the strptime formats tried in order, and an example for messages."""

    pattern: str
    formats: tuple[str, ...]
    example: str


#: ISO-8601 in whole seconds; `%z` takes ``Z``, ``+01:00`` and ``+0100``; no zone means UTC.
ISO_LAYOUT = _TimeLayout(
    pattern=r"^\d{4}-\d{2}-\d{2}([T ]([01]\d|2[0-3]):[0-5]\d:[0-5]\d(Z|[+-]([01]\d|2[0-3]):?[0-5]\d)?)?$",
    formats=(
        "%Y-%m-%dT%H:%M:%S%z",
        "%Y-%m-%d %H:%M:%S%z",
        "%Y-%m-%dT%H:%M:%S",
        "%Y-%m-%d %H:%M:%S",
        "%Y-%m-%d",
    ),
    example="ISO-8601 such as 2020-01-01T00:00:00Z",
)
#: CryptoDataDownload's hourly dates, e.g. "2019-10-17 09-AM" (UTC, per the file's banner).
CDD_LAYOUT = _TimeLayout(
    pattern=r"^\d{4}-\d{2}-\d{2} (0[1-9]|1[0-2])-(AM|PM)$",
    formats=("%Y-%m-%d %I-%p",),
    example="a date like 2019-10-17 09-AM",
)
#: Quote-currency suffixes stripped from a CryptoDataDownload symbol to name the asset.
QUOTE_SUFFIXES = ("USDT", "USDC", "USD", "EUR")


#: Epoch numbers at least this large are read in ms, us or ns (a time in seconds this large is after year 5000).
EPOCH_UNITS = ((1e17, "ns"), (1e14, "us"), (1e11, "ms"))
EPOCH_PATTERN = r"^\d+(\.\d+)?$"


@dataclass(frozen=True)
class HistoryColumns:
    """How to read a foreign CSV of closes (module docstring). `time`, `close`, `symbol`: column names, or
    0-based positions (the only way without a header, or for an unnamed column); `asset`: the name of a
    single-asset file's asset (default the close column's name); `skip`: lines before the header (or before
    the data without one); `time_format`: a strptime format (default: epoch numbers, their unit from their
    size, or ISO-8601)."""

    time: str
    close: str
    symbol: str | None = None
    asset: str | None = None
    skip: int = 0
    header: bool = True
    time_format: str | None = None


COLUMN_KEYS = ("time", "close", "symbol", "asset", "skip", "header", "format")


def parse_columns(text: str) -> HistoryColumns:
    """`HistoryColumns` from ``key=value`` pairs separated by commas: time, close, symbol, asset, skip (an
    integer), header (yes/no), format (a strptime format; no commas). Raises InputError naming the pair."""
    pairs: dict[str, str] = {}
    for item in (part.strip() for part in text.split(",")):
        key, sep, value = item.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or key not in COLUMN_KEYS or not value:
            raise InputError("--columns", item or "''", f"expected key=value with key one of {', '.join(COLUMN_KEYS)}")
        if key in pairs:
            raise InputError("--columns", key, "given twice")
        pairs[key] = value
    for needed in ("time", "close"):
        if needed not in pairs:
            raise InputError("--columns", needed, "missing (the time and close columns are needed)")
    skip = pairs.get("skip", "0")
    if not skip.isdigit():
        raise InputError("--columns", "skip", f"must be a whole number of lines, got {skip!r}")
    header = pairs.get("header", "yes").lower()
    if header not in ("yes", "no"):
        raise InputError("--columns", "header", f"must be yes or no, got {header!r}")
    return HistoryColumns(
        time=pairs["time"],
        close=pairs["close"],
        symbol=pairs.get("symbol"),
        asset=pairs.get("asset"),
        skip=int(skip),
        header=header == "yes",
        time_format=pairs.get("format"),
    )


@dataclass(frozen=True, eq=False)
class PriceHistory:
    """Closes (T, A), NaN where an asset has no price yet; timestamps (T,) ascending, datetime64[s]."""

    timestamps: NDArray[np.datetime64]
    assets: tuple[str, ...]
    closes: FloatArray

    def __post_init__(self) -> None:
        if self.closes.shape != (self.timestamps.shape[0], len(self.assets)):
            raise ValueError("closes must be (len(timestamps), len(assets))")
        if self.timestamps.size > 1 and np.any(np.diff(self.timestamps) <= np.timedelta64(0, "s")):
            raise ValueError("timestamps must be strictly increasing")

    def log_returns(self) -> FloatArray:
        """(T - 1, A) log returns between consecutive closes (NaN where either close is missing)."""
        with np.errstate(invalid="ignore", divide="ignore"):
            return np.asarray(np.diff(np.log(self.closes), axis=0), dtype=np.float64)

    def select(self, assets: tuple[str, ...]) -> PriceHistory:
        """The same history restricted to (and ordered as) `assets`; missing assets raise KeyError."""
        cols = [self.assets.index(a) for a in assets]
        return PriceHistory(self.timestamps, assets, self.closes[:, cols])


# ----------------------------------------------------------------------------------------- reading


def read_history(path: str | os.PathLike[str], columns: HistoryColumns | None = None) -> PriceHistory:
    """Read a price history: `solvent.history/1` CSV or Parquet (by suffix), a Bitstamp daily or
    CryptoDataDownload hourly CSV as downloaded, or with `columns` any CSV of closes read by that mapping.
    Raises InputError on any bad input."""
    source = str(path)
    if columns is not None:
        return _read_mapped(source, columns)
    if source.lower().endswith(".parquet"):
        return _read_parquet(source)
    try:
        with open(source, encoding="utf-8-sig", errors="replace", newline="") as handle:
            lines = [handle.readline(), handle.readline()]
    except OSError as exc:
        raise InputError(source, "", exc.strerror or str(exc)) from None
    if not "".join(lines).strip():
        raise InputError(source, "", "file is empty")
    first, second = (line.strip() for line in lines)
    match = SCHEMA_LINE.match(first)
    if match is not None:
        if match.group("schema") != HISTORY_SCHEMA:
            raise InputError(
                source,
                "line 1",
                f"unknown schema {match.group('schema')!r} (this solvent reads {HISTORY_SCHEMA!r})",
            )
        if not second:
            raise InputError(source, "line 2", "no header line after the schema line")
        return _read_solvent_csv(source, _fields(second))
    if second.lower().startswith("date,symbol,"):
        return _read_cdd_hourly(source, _fields(second))
    if re.search(r",[^,]+:close\b", first):
        return _read_bitstamp_daily(source, _fields(first))
    raise InputError(
        source,
        "line 1",
        f"missing schema line '# schema: {HISTORY_SCHEMA}' (and not a recognised Bitstamp daily or "
        "CryptoDataDownload hourly layout)",
    )


def _fields(line: str) -> list[str]:
    """The fields of one CSV header line."""
    return next(csv.reader([line]), [])


def _read_csv(source: str, skip_rows: int, columns: list[str], *, header: bool = True) -> pa.Table:
    """Read `columns` of a CSV (header after `skip_rows` lines; without one the columns are f0, f1, ...) as
    text, converted later with row-exact errors; a row with the wrong number of fields is an InputError
    naming its line."""
    try:
        return pcsv.read_csv(
            source,
            read_options=pcsv.ReadOptions(skip_rows=skip_rows, autogenerate_column_names=not header),
            convert_options=pcsv.ConvertOptions(
                column_types=dict.fromkeys(columns, pa.string()),
                include_columns=columns,
                null_values=[""],
                strings_can_be_null=True,
            ),
        )
    except pa.ArrowInvalid as exc:
        bad: list[tuple[int | None, int, int]] = []

        def record(row: pcsv.InvalidRow) -> str:
            bad.append((row.number, row.expected_columns, row.actual_columns))
            return "skip"

        try:  # single-threaded, so that pyarrow knows the line number of the bad row
            pcsv.read_csv(
                source,
                read_options=pcsv.ReadOptions(
                    skip_rows=skip_rows, use_threads=False, autogenerate_column_names=not header
                ),
                parse_options=pcsv.ParseOptions(invalid_row_handler=record),
            )
        except pa.ArrowInvalid:
            pass
        if bad:
            line, expected, actual = bad[0]
            where = f"line {line}" if line is not None else ""
            raise InputError(source, where, f"expected {expected} fields, got {actual}") from None
        raise InputError(source, "", f"not a readable CSV file ({exc})") from None


def _read_solvent_csv(source: str, header: list[str]) -> PriceHistory:
    if not header or header[0] != TIMESTAMP_COLUMN:
        raise InputError(source, "header", f"the first column must be {TIMESTAMP_COLUMN!r}, got {header[:1]}")
    assets = header[1:]
    _check_asset_names(source, assets)
    table = _read_csv(source, 1, header)
    timestamps = _parse_timestamps(source, table.column(TIMESTAMP_COLUMN), ISO_LAYOUT)
    closes = _closes(source, [table.column(a) for a in assets], assets)
    return _assemble(source, timestamps, tuple(assets), closes)


def _read_bitstamp_daily(source: str, header: list[str]) -> PriceHistory:
    date_column = header[0]
    close_columns = [name for name in header if name.endswith(":close")]
    assets = [name[: -len(":close")] for name in close_columns]
    _check_asset_names(source, assets)
    table = _read_csv(source, 0, [date_column, *close_columns])
    timestamps = _parse_timestamps(source, table.column(date_column), ISO_LAYOUT, date_column or "date")
    closes = _closes(source, [table.column(c) for c in close_columns], close_columns)
    return _assemble(source, timestamps, tuple(assets), closes)


def _read_cdd_hourly(source: str, header: list[str]) -> PriceHistory:
    missing = [c for c in ("date", "symbol", "close") if c not in header]
    if missing:
        raise InputError(source, "header", f"missing column {missing[0]!r}")
    table = _read_csv(source, 1, ["date", "symbol", "close"])
    timestamps = _parse_timestamps(source, table.column("date"), CDD_LAYOUT, "date")
    closes = _closes(source, [table.column("close")], ["close"])[:, 0]
    return _long_to_wide(source, timestamps, table.column("symbol"), closes)


def _read_mapped(source: str, columns: HistoryColumns) -> PriceHistory:
    """A CSV read through `columns`: its time and close columns (and symbol column, if a long file)."""
    named = [columns.time, columns.close, *([columns.symbol] if columns.symbol else [])]
    if not columns.header:
        bad = [n for n in named if not n.isdigit()]
        if bad:
            raise InputError("--columns", bad[0], "must be a 0-based column position in a file without a header")
        named = [f"f{n}" for n in named]
    else:
        header = _header_line(source, columns.skip)
        # A position names the column at it (an unnamed date column, say) unless a column has that name.
        named = [header[int(n)] if n not in header and n.isdigit() and int(n) < len(header) else n for n in named]
        missing = [n for n in named if n not in header]
        if missing:
            raise InputError(source, "header", f"no column {missing[0]!r} (the header has {header})")
    time_column, close_column = named[0], named[1]
    table = _read_csv(source, columns.skip, list(dict.fromkeys(named)), header=columns.header)
    timestamps = _mapped_timestamps(source, table.column(time_column), columns.time, columns.time_format)
    closes = _closes(source, [table.column(close_column)], [columns.close])
    if columns.symbol is not None:
        return _long_to_wide(source, timestamps, table.column(named[2]), closes[:, 0])
    asset = columns.asset or columns.close
    _check_asset_names(source, [asset])
    return _assemble(source, timestamps, (asset,), closes)


def _header_line(source: str, skip: int) -> list[str]:
    """The fields of the header line after `skip` lines."""
    try:
        with open(source, encoding="utf-8-sig", errors="replace", newline="") as handle:
            for _ in range(skip):
                handle.readline()
            return _fields(handle.readline().strip())
    except OSError as exc:
        raise InputError(source, "", exc.strerror or str(exc)) from None


def _mapped_timestamps(
    source: str, column: pa.ChunkedArray, name: str, time_format: str | None
) -> NDArray[np.datetime64]:
    """Seconds since the epoch (UTC): by `time_format`, or epoch numbers (unit by size), or ISO-8601."""
    _check_not_null(source, column, name)
    text = pc.utf8_trim_whitespace(column)
    if time_format is not None:
        parsed = pc.strptime(text, format=time_format, unit="s", error_is_null=True)
        bad = np.flatnonzero(np.asarray(parsed.is_null().to_numpy(zero_copy_only=False), dtype=np.bool_))
        if bad.size:
            i = int(bad[0])
            raise InputError(
                source, f"row {i + 1}", f"column {name}: cannot parse {column[i].as_py()!r} as {time_format!r}"
            )
        return np.asarray(parsed.cast(pa.int64()).to_numpy(zero_copy_only=False), dtype=np.int64).astype(
            "datetime64[s]"
        )
    numbers = np.asarray(pc.match_substring_regex(text, EPOCH_PATTERN).to_numpy(zero_copy_only=False), dtype=bool)
    if not numbers.all():
        return _parse_timestamps(source, column, ISO_LAYOUT, name)
    values = np.asarray(text.cast(pa.float64()).to_numpy(zero_copy_only=False), dtype=np.float64)
    scale = next((10.0 ** {"ns": 9, "us": 6, "ms": 3}[u] for limit, u in EPOCH_UNITS if values.max() >= limit), 1.0)
    return np.floor(values / scale).astype(np.int64).astype("datetime64[s]")


def _long_to_wide(
    source: str, timestamps: NDArray[np.datetime64], symbols: pa.ChunkedArray, closes: FloatArray
) -> PriceHistory:
    """A long file (one row per time and symbol) as one column per symbol's asset, on the union of times."""
    _check_not_null(source, symbols, "symbol")
    names = np.asarray(symbols.to_numpy(zero_copy_only=False), dtype=object)
    unique = sorted(set(names.tolist()))
    assets = [_asset_from_symbol(s) for s in unique]
    _check_asset_names(source, assets)
    if len(set(assets)) != len(assets):
        raise InputError(source, "column symbol", f"symbols {unique} name the same asset twice")
    if len(unique) == 1:
        return _assemble(source, timestamps, tuple(assets), closes[:, np.newaxis])
    # Several symbols: one column each, on the union of their timestamps.
    col_of = np.searchsorted(np.array(unique, dtype=object), names)
    grid, row_of = np.unique(timestamps, return_inverse=True)
    key = row_of * len(unique) + col_of
    order = np.argsort(key, kind="stable")
    repeat = np.flatnonzero(key[order][1:] == key[order][:-1])
    conflict = repeat[closes[order][repeat] != closes[order][repeat + 1]]
    if conflict.size:
        a, b = sorted((int(order[conflict[0]]), int(order[conflict[0] + 1])))
        raise InputError(
            source, f"row {b + 1}", f"{names[b]} at {timestamps[b]}Z repeats row {a + 1} with another close"
        )
    wide = np.full((grid.shape[0], len(unique)), np.nan)
    wide[row_of, col_of] = closes
    return _assemble(source, grid, tuple(assets), wide)


def read_hourly_volume(path: str | os.PathLike[str]) -> tuple[PriceHistory, FloatArray]:
    """A CryptoDataDownload hourly file of one symbol: its closes (as `read_history` reads them) and each hour's
    volume (T,) in units of the asset (the `volume_<asset>` column, e.g. `volume_btc`), for order-flow toxicity
    (market.toxicity). A volume must be finite and >= 0 (empty: 0)."""
    source = str(path)
    history = read_history(source)
    if len(history.assets) != 1:
        raise InputError(source, "column symbol", f"one symbol expected, got {len(history.assets)}")
    with open(source, encoding="utf-8-sig", errors="replace", newline="") as handle:
        handle.readline()
        header = _fields(handle.readline())
    column = f"volume_{history.assets[0].lower()}"
    if column not in header:
        raise InputError(source, "header", f"missing column {column!r}")
    table = _read_csv(source, 1, ["date", column])
    timestamps = _parse_timestamps(source, table.column("date"), CDD_LAYOUT, "date")
    values = np.array(table.column(column).cast(pa.float64()).to_numpy(zero_copy_only=False), dtype=np.float64)
    values = np.nan_to_num(values, nan=0.0, posinf=-1.0)
    if (values < 0.0).any():
        i = int(np.flatnonzero(values < 0.0)[0])
        raise InputError(source, f"row {i + 1}", f"column {column}: volume must be finite and >= 0")
    order = np.argsort(timestamps, kind="stable")
    keep = np.concatenate(([True], timestamps[order][1:] != timestamps[order][:-1]))
    return history, np.ascontiguousarray(values[order][keep])


def _read_parquet(source: str) -> PriceHistory:
    try:
        table = pq.read_table(source)
    except FileNotFoundError:
        raise InputError(source, "", "No such file or directory") from None
    except (pa.ArrowInvalid, OSError) as exc:
        raise InputError(source, "", f"not a readable Parquet file ({exc})") from None
    metadata = table.schema.metadata or {}
    found = metadata.get(SCHEMA_KEY)
    if found is None:
        raise InputError(source, "metadata", f"missing key 'solvent.schema' (expected {HISTORY_SCHEMA!r})")
    if found != HISTORY_SCHEMA.encode():
        raise InputError(
            source,
            "metadata",
            f"unknown schema {found.decode(errors='replace')!r} (this solvent reads {HISTORY_SCHEMA!r})",
        )
    names = table.schema.names
    if not names or names[0] != TIMESTAMP_COLUMN:
        raise InputError(source, "header", f"the first column must be {TIMESTAMP_COLUMN!r}, got {names[:1]}")
    if table.num_rows == 0:
        raise InputError(source, "", "file has no rows")
    column = table.column(TIMESTAMP_COLUMN)
    if pa.types.is_timestamp(column.type):
        _check_not_null(source, column, TIMESTAMP_COLUMN)
        seconds = column.cast(pa.timestamp("s", tz=column.type.tz), safe=False).cast(pa.int64())
        timestamps = np.asarray(seconds.to_numpy(), dtype=np.int64).astype("datetime64[s]")
    elif pa.types.is_string(column.type) or pa.types.is_large_string(column.type):
        timestamps = _parse_timestamps(source, column, ISO_LAYOUT)
    else:
        raise InputError(source, f"column {TIMESTAMP_COLUMN}", f"must be a timestamp, got {column.type}")
    assets = names[1:]
    _check_asset_names(source, assets)
    columns = []
    for name in assets:
        col = table.column(name)
        if not (pa.types.is_floating(col.type) or pa.types.is_integer(col.type)):
            raise InputError(source, f"column {name}", f"closes must be numbers, got {col.type}")
        columns.append(col.cast(pa.float64()))
    return _assemble(source, timestamps, tuple(assets), _closes(source, columns, assets))


def _asset_from_symbol(symbol: str) -> str:
    """The base asset of a pair: before a separator (``BTC/USDT``, ``BTC-USD``), or less a quote suffix."""
    base = re.split(r"[/_-]", symbol, maxsplit=1)[0]
    if base and base != symbol:
        return base
    for suffix in QUOTE_SUFFIXES:
        if symbol.endswith(suffix) and len(symbol) > len(suffix):
            return symbol[: -len(suffix)]
    return symbol


def _check_asset_names(source: str, assets: list[str]) -> None:
    if not assets:
        raise InputError(source, "header", "no asset columns")
    for name in assets:
        if not name or name != name.strip() or any(ch in name for ch in ',"\n\r'):
            raise InputError(source, "header", f"invalid asset name {name!r}")
    seen: set[str] = set()
    for name in assets:
        if name in seen:
            raise InputError(source, "header", f"asset {name!r} appears twice")
        seen.add(name)


def _first_failure(array: pa.Array, convert: Callable[[pa.Array], pa.Array]) -> int:
    """Index of the first element `convert` rejects (binary search over prefixes; error path only)."""
    lo, hi = 0, len(array)  # the prefix [0, hi) fails, [0, lo) succeeds
    while hi - lo > 1:
        mid = (lo + hi) // 2
        try:
            convert(array.slice(0, mid))
            lo = mid
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            hi = mid
    return lo


def _check_not_null(source: str, column: pa.ChunkedArray, name: str) -> None:
    nulls = np.flatnonzero(np.asarray(column.is_null().to_numpy(zero_copy_only=False)))
    if nulls.size:
        raise InputError(source, f"row {nulls[0] + 1}", f"column {name}: missing value")


def _parse_timestamps(
    source: str, column: pa.ChunkedArray, layout: _TimeLayout, name: str = TIMESTAMP_COLUMN
) -> NDArray[np.datetime64]:
    """Seconds since the epoch (UTC) from text in `layout`; a row-exact InputError otherwise."""
    _check_not_null(source, column, name)
    text = pc.utf8_trim_whitespace(column)
    parsed = None
    for fmt in layout.formats:
        attempt = pc.strptime(text, format=fmt, unit="s", error_is_null=True).cast(pa.int64())
        parsed = attempt if parsed is None else pc.coalesce(parsed, attempt)
    assert parsed is not None
    day = pc.utf8_slice_codeunits(text, 0, 10)
    real_day = pc.equal(pc.strftime(pc.strptime(day, format="%Y-%m-%d", unit="s", error_is_null=True), "%Y-%m-%d"), day)
    valid = pc.and_kleene(pc.match_substring_regex(text, layout.pattern), real_day)
    good = pc.and_kleene(pc.fill_null(valid, False), pc.is_valid(parsed))
    bad = np.flatnonzero(~np.asarray(good.to_numpy(zero_copy_only=False), dtype=np.bool_))
    if bad.size:
        i = int(bad[0])
        raise InputError(
            source,
            f"row {i + 1}",
            f"column {name}: cannot parse timestamp {column[i].as_py()!r} (expected {layout.example})",
        )
    return np.asarray(parsed.to_numpy(zero_copy_only=False), dtype=np.int64).astype("datetime64[s]")


def _closes(source: str, columns: list[pa.ChunkedArray], names: list[str]) -> FloatArray:
    """(T, A) closes; empty cells become NaN; text, non-positive and non-finite values are errors."""
    out = np.empty((len(columns[0]) if columns else 0, len(columns)), dtype=np.float64)
    for j, (column, name) in enumerate(zip(columns, names, strict=True)):
        array = column.combine_chunks()
        if pa.types.is_string(array.type) or pa.types.is_large_string(array.type):
            array = pc.utf8_trim_whitespace(array)
            try:
                array = array.cast(pa.float64())
            except pa.ArrowInvalid:
                i = _first_failure(array, lambda a: a.cast(pa.float64()))
                raise InputError(
                    source, f"row {i + 1}", f"column {name}: close is not a number: {column[i].as_py()!r}"
                ) from None
        values = np.array(array.to_numpy(zero_copy_only=False), dtype=np.float64)
        missing = np.asarray(array.is_null().to_numpy(zero_copy_only=False), dtype=np.bool_)
        with np.errstate(invalid="ignore"):
            bad = np.flatnonzero(~missing & ~(np.isfinite(values) & (values > 0.0)))
        if bad.size:
            i = int(bad[0])
            raise InputError(
                source,
                f"row {i + 1}",
                f"column {name}: close must be positive and finite, got {float(values[i])!r}",
            )
        if values.size and missing.all():
            raise InputError(source, f"column {name}", "has no closes at all")
        values[missing] = np.nan
        out[:, j] = values
    return out


def _assemble(
    source: str, timestamps: NDArray[np.datetime64], assets: tuple[str, ...], closes: FloatArray
) -> PriceHistory:
    """Sort by time, drop repeated rows that agree, reject repeated timestamps that disagree."""
    if timestamps.shape[0] == 0:
        raise InputError(source, "", "file has no data rows")
    order = np.argsort(timestamps, kind="stable")
    ts, cl = timestamps[order], closes[order]
    repeat = np.flatnonzero(ts[1:] == ts[:-1])
    if repeat.size:
        first, second = cl[repeat], cl[repeat + 1]
        agree = np.all((first == second) | (np.isnan(first) & np.isnan(second)), axis=1)
        if not agree.all():
            k = int(repeat[~agree][0])
            a, b = sorted((int(order[k]), int(order[k + 1])))
            raise InputError(source, f"row {b + 1}", f"timestamp {ts[k]}Z repeats row {a + 1} with different closes")
        keep = np.ones(ts.shape[0], dtype=np.bool_)
        keep[repeat + 1] = False
        ts, cl = ts[keep], cl[keep]
    return PriceHistory(ts.astype("datetime64[s]"), assets, np.ascontiguousarray(cl))


# ----------------------------------------------------------------------------------------- writing


def write_history(history: PriceHistory, path: str | os.PathLike[str]) -> None:
    """Write `history` as `solvent.history/1`: Parquet if `path` ends in .parquet, else CSV.

    Atomic: the file is written beside `path` under a temporary name and renamed over it. Floats are
    written in their shortest round-trip form, so reading the file back gives the same closes.
    """
    from solvent.formats.io import atomic_output

    assets = list(history.assets)
    try:
        _check_asset_names(str(path), assets)
    except InputError as exc:
        raise ValueError(str(exc)) from None
    if TIMESTAMP_COLUMN in assets:
        raise ValueError(f"an asset may not be named {TIMESTAMP_COLUMN!r}")
    seconds = history.timestamps.astype("datetime64[s]")
    closes = {a: pa.array(history.closes[:, j], type=pa.float64(), from_pandas=True) for j, a in enumerate(assets)}
    if str(path).lower().endswith(".parquet"):
        stamps = pa.array(seconds.astype(np.int64), type=pa.int64()).cast(pa.timestamp("s", tz="UTC"))
        table = pa.table({TIMESTAMP_COLUMN: stamps, **closes})
        table = table.replace_schema_metadata({SCHEMA_KEY: HISTORY_SCHEMA.encode()})
        with atomic_output(path) as tmp:
            pq.write_table(table, tmp)
        return
    text = pa.array(np.char.add(np.datetime_as_string(seconds, unit="s"), "Z").tolist(), type=pa.string())
    table = pa.table({TIMESTAMP_COLUMN: text, **closes})
    header = f"# schema: {HISTORY_SCHEMA}\n{','.join([TIMESTAMP_COLUMN, *assets])}\n"
    with atomic_output(path) as tmp, open(tmp, "wb") as handle:
        handle.write(header.encode())
        pcsv.write_csv(table, handle, write_options=pcsv.WriteOptions(include_header=False, quoting_style="none"))
