"""The feed (solvent.feed/1) in NDJSON and Parquet: round trips, one-line errors naming file, record and field."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, get_args

import jsonschema
import msgspec
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from solvent.errors import InputError
from solvent.params import MarginParams
from solvent.stream import feedio
from solvent.stream.feed import (
    Deposit,
    DepthChange,
    FeedRecord,
    Fill,
    ParamsChange,
    Quote,
    VolChange,
    Withdrawal,
)
from solvent.stream.feedio import ARROW_SCHEMA, COLUMNS, read_feed, write_feed

ROOT = Path(__file__).resolve().parents[1]
T0 = datetime(2026, 11, 25, tzinfo=UTC)
CET = timezone(timedelta(hours=1))


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


# One record of every type (and every optional field both set and left out), in feed order.
RECORDS: tuple[FeedRecord, ...] = (
    ParamsChange(seq=1, time=at(0), params=MarginParams(confidence=0.975, mpor_days=1.0)),
    Quote(seq=2, time=at(0), asset="BTC", price=95000.0),
    Quote(
        seq=3,
        time=at(1),
        asset="ETH",
        price=3401.2,
        source="pyth",
        confidence=1.1,
        timestamp=at(0.8).astimezone(CET),
    ),
    Deposit(seq=5, time=at(1.000001), account="acct-1", asset="USDC", amount=5000.0),
    Fill(seq=6, time=at(2), account="acct-1", instrument="BTC-PERP", quantity=-0.5, price=95010.0, fee=2.4),
    Fill(seq=7, time=at(2).astimezone(CET), account="acct-1", instrument="BTC-PERP", quantity=0.25, price=95011.5),
    DepthChange(seq=8, time=at(3), asset="BTC", scale=0.5),
    VolChange(seq=9, time=at(60), asset="BTC", vol=0.61),
    Withdrawal(seq=10, time=at(60), account="acct-1", asset="USDC", amount=1500.0),
)
SUFFIXES = [".ndjson", ".jsonl", ".parquet"]


def ndjson(*lines: dict[str, Any] | str) -> str:
    return "".join((line if isinstance(line, str) else json.dumps(line)) + "\n" for line in lines)


def quote(seq: int = 1, time: str = "2026-11-25T00:00:00Z", **fields: Any) -> dict[str, Any]:
    return {"type": "quote", "seq": seq, "time": time, "asset": "BTC", "price": 95000, **fields}


def fill(seq: int = 1, time: str = "2026-11-25T00:00:00Z", **fields: Any) -> dict[str, Any]:
    record = {"type": "fill", "seq": seq, "time": time, "account": "a", "instrument": "BTC-PERP"}
    return {**record, "quantity": 1.0, "price": 95000, **fields}


def error_of(path: Path) -> str:
    with pytest.raises(InputError) as caught:
        read_feed(path)
    message = str(caught.value)
    assert "\n" not in message, message
    return message


# ------------------------------------------------------------------------------------------- round trips


def _types() -> set[type]:
    return set(get_args(FeedRecord))


def test_the_sample_has_every_record_type() -> None:
    assert {type(record) for record in RECORDS} == _types()


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_round_trip(suffix: str, tmp_path: Path) -> None:
    path = tmp_path / f"feed{suffix}"
    write_feed(path, RECORDS)
    assert read_feed(path) == RECORDS


@pytest.mark.parametrize("suffix", SUFFIXES)
@pytest.mark.parametrize("kind", sorted(feedio._TYPES))
def test_round_trip_of_one_type(kind: str, suffix: str, tmp_path: Path) -> None:
    records = tuple(r for r in RECORDS if r.__struct_config__.tag == kind)
    path = tmp_path / f"feed{suffix}"
    write_feed(path, records)
    assert read_feed(path) == records


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_empty_feed_is_valid(suffix: str, tmp_path: Path) -> None:
    path = tmp_path / f"feed{suffix}"
    write_feed(path, ())
    assert read_feed(path) == ()


def test_blank_ndjson_is_an_empty_feed(tmp_path: Path) -> None:
    path = tmp_path / "feed.ndjson"
    path.write_text("\n  \n\r\n", encoding="utf-8")
    assert read_feed(path) == ()


def test_parquet_times_are_utc(tmp_path: Path) -> None:
    write_feed(tmp_path / "feed.parquet", RECORDS)
    table = pq.read_table(tmp_path / "feed.parquet")
    assert table.schema.equals(ARROW_SCHEMA, check_metadata=True)
    assert table.column("time").type == pa.timestamp("us", tz="UTC")


def test_parquet_reading_does_not_depend_on_column_order(tmp_path: Path) -> None:
    write_feed(tmp_path / "feed.parquet", RECORDS)
    table = pq.read_table(tmp_path / "feed.parquet")
    shuffled = table.select(list(reversed(table.column_names)))
    pq.write_table(shuffled, tmp_path / "shuffled.parquet")
    assert read_feed(tmp_path / "shuffled.parquet") == RECORDS


def test_parquet_optional_columns_may_be_missing_and_types_are_cast(tmp_path: Path) -> None:
    table = pa.table(
        {
            "type": pa.array(["depth", "vol"]).dictionary_encode(),
            "seq": pa.array([1, 2], pa.int32()),
            "time": pa.array([at(0), at(1)], pa.timestamp("ns", tz="Europe/Paris")),
            "asset": ["BTC", "ETH"],
            "scale": pa.array([2, None], pa.int64()),
            "vol": pa.array([None, 0.5], pa.float32()),
        }
    ).replace_schema_metadata({b"solvent.schema": b"solvent.feed/1"})
    pq.write_table(table, tmp_path / "feed.parquet")
    assert read_feed(tmp_path / "feed.parquet") == (
        DepthChange(seq=1, time=at(0), asset="BTC", scale=2.0),
        VolChange(seq=2, time=at(1), asset="ETH", vol=0.5),
    )


def test_columns_are_the_fields_of_the_record_types() -> None:
    fields = {f.name for kind in _types() for f in msgspec.structs.fields(kind)}
    assert set(COLUMNS) == fields | {"type"}


@pytest.mark.parametrize(
    "values",
    [
        pytest.param([at(0), None, at(-1e9 + 0.000001), at(123.456789)], id="nulls-and-before-1970"),
        pytest.param([], id="empty"),
    ],
)
def test_fast_datetimes_equal_arrows_own(values: list[datetime | None]) -> None:
    column = pa.array(values, pa.timestamp("us", tz="UTC"))
    assert feedio._datetimes(column) == column.to_pylist() == values


# ----------------------------------------------------------------------------------------- NDJSON errors

# (id, the file's text, where the error is: "records[i] (line n).field", words the message must contain)
NDJSON_CASES = [
    ("bad-json", ndjson(quote(), '{"type": "quote", "seq": 2,'), "records[1] (line 2)", ["not valid JSON"]),
    ("not-an-object", ndjson("[1, 2]"), "records[0] (line 1)", ["Expected `object`, got `array`"]),
    (
        "unknown-type",
        ndjson(quote(), {**quote(2), "type": "trade"}),
        "records[1] (line 2).type",
        ["unknown record type 'trade'", "quote, fill, deposit, withdrawal, depth, vol, params"],
    ),
    ("missing-type", ndjson({"seq": 1}), "records[0] (line 1).type", ["required field is missing"]),
    (
        "missing-field",
        ndjson({k: v for k, v in fill().items() if k != "instrument"}),
        "records[0] (line 1).instrument",
        ["required field is missing"],
    ),
    ("wrong-type", ndjson(quote(price="95000")), "records[0] (line 1).price", ["Expected `float`, got `str`"]),
    ("negative-price", ndjson(quote(price=-5)), "records[0] (line 1).price", ["Expected `float` >= 1e-12"]),
    ("out-of-range", ndjson(quote(price="__INF__")), "records[0] (line 1).price", ["out of range"]),
    ("zero-fill", ndjson(fill(quantity=0)), "records[0] (line 1).quantity", ["a fill trades a non-zero quantity"]),
    ("unknown-field", ndjson(quote(vol=0.5)), "records[0] (line 1).vol", ["unknown field"]),
    ("negative-seq", ndjson(quote(seq=-1)), "records[0] (line 1).seq", [">= 0"]),
    ("empty-asset", ndjson(quote(asset="")), "records[0] (line 1).asset", ["length >= 1"]),
    (
        "time-without-zone",
        ndjson(quote(time="2026-11-25T00:00:00")),
        "records[0] (line 1).time",
        ["timezone"],
    ),
    (
        "bad-params",
        ndjson({"type": "params", "seq": 1, "time": "2026-11-25T00:00:00Z", "params": {"confidence": 2}}),
        "records[0] (line 1).params.confidence",
        ["Expected `float` < 1.0"],
    ),
    (
        "seq-repeated",
        ndjson(quote(1), quote(2), quote(2)),
        "records[2] (line 3).seq",
        ["seq 2 after seq 2", "strictly increase"],
    ),
    (
        "seq-out-of-order-after-blank-lines",
        ndjson(quote(5), "", "  ", quote(9), quote(7)),
        "records[2] (line 5).seq",
        ["seq 7 after seq 9"],
    ),
    (
        "time-backwards",
        ndjson(quote(1, "2026-11-25T00:00:02Z"), quote(2, "2026-11-25T00:00:01Z")),
        "records[1] (line 2).time",
        ["of seq 2 is before", "of seq 1", "must not go backwards"],
    ),
    (
        "time-backwards-across-zones",
        ndjson(quote(1, "2026-11-25T00:30:00Z"), quote(2, "2026-11-25T01:00:00+01:00")),
        "records[1] (line 2).time",
        ["of seq 2 is before", "of seq 1"],
    ),
]


@pytest.mark.parametrize(
    ("text", "where", "words"), [pytest.param(text, where, words, id=name) for name, text, where, words in NDJSON_CASES]
)
def test_bad_ndjson_is_one_line_naming_file_record_line_and_field(
    text: str, where: str, words: list[str], tmp_path: Path
) -> None:
    path = tmp_path / "feed.ndjson"
    path.write_text(text.replace('"__INF__"', "1e999"), encoding="utf-8")
    message = error_of(path)
    assert message.startswith(f"{path}: {where}: "), message
    for word in words:
        assert word in message, message


def test_error_message_reads_as_documented(tmp_path: Path) -> None:
    path = tmp_path / "feed.ndjson"
    path.write_text(ndjson(quote(1), quote(2), quote(3), quote(4, price=-1)), encoding="utf-8")
    assert error_of(path) == f"{path}: records[3] (line 4).price: Expected `float` >= 1e-12"


def test_unknown_suffix_and_missing_file_are_input_errors(tmp_path: Path) -> None:
    assert "unknown feed file suffix '.csv'" in error_of(tmp_path / "feed.csv")
    assert error_of(tmp_path / "absent.ndjson").startswith(f"{tmp_path / 'absent.ndjson'}: ")


# ---------------------------------------------------------------------------------------- Parquet errors


def parquet_table(**changes: Any) -> pa.Table:
    """The sample feed as an Arrow table, with columns replaced (a list of values) or dropped (None)."""
    table = feedio._table(RECORDS)
    for name, values in changes.items():
        at_column = table.column_names.index(name)
        if values is None:
            table = table.remove_column(at_column)
        else:
            array = values if isinstance(values, pa.Array) else pa.array(values, COLUMNS[name])
            table = table.set_column(at_column, name, array)
    return table


def column(name: str, row: int, value: Any) -> list[Any]:
    values = feedio._table(RECORDS).column(name).to_pylist()
    values[row] = value
    return values


KINDS = [r.__struct_config__.tag for r in RECORDS]
# (id, the table, where, words)
PARQUET_CASES = [
    (
        "value-in-another-types-column",
        parquet_table(vol=column("vol", 2, 0.5)),
        "records[2].vol",
        ["a quote record has no vol"],
    ),
    ("missing-required-column", parquet_table(time=None), "column time", ["required column is missing"]),
    ("unknown-column", parquet_table().append_column("colour", pa.nulls(len(RECORDS))), "column colour", ["unknown"]),
    ("wrong-column-type", parquet_table(price=pa.array(["1"] * len(RECORDS))), "column price", ["expected double"]),
    (
        "time-without-zone",
        parquet_table(time=pa.array([r.time.replace(tzinfo=None) for r in RECORDS], pa.timestamp("us"))),
        "column time",
        ["expected timestamp[us, tz=UTC]"],
    ),
    ("null-seq", parquet_table(seq=column("seq", 4, None)), "records[4].seq", ["required field is missing"]),
    ("unknown-type", parquet_table(type=column("type", 3, "trade")), "records[3].type", ["unknown record type"]),
    ("null-required-field", parquet_table(amount=column("amount", 8, None)), "records[8].amount", ["missing"]),
    ("negative-price", parquet_table(price=column("price", 5, -1.0)), "records[5].price", ["`float` >= 1e-12"]),
    ("zero-fill", parquet_table(quantity=column("quantity", 5, 0.0)), "records[5].quantity", ["non-zero"]),
    ("infinite-price", parquet_table(price=column("price", 1, float("inf"))), "records[1].price", ["finite"]),
    ("nan-scale", parquet_table(scale=column("scale", 6, float("nan"))), "records[6].scale", ["finite"]),
    ("empty-asset", parquet_table(asset=column("asset", 7, "")), "records[7].asset", ["length >= 1"]),
    ("params-not-json", parquet_table(params=column("params", 0, "{")), "records[0].params", ["not valid JSON"]),
    (
        "params-out-of-range",
        parquet_table(params=column("params", 0, '{"confidence": 2}')),
        "records[0].params.confidence",
        ["Expected `float` < 1.0"],
    ),
    ("seq-out-of-order", parquet_table(seq=column("seq", 3, 2)), "records[3].seq", ["seq 2 after seq 3"]),
    (
        "time-backwards",
        parquet_table(time=column("time", 8, at(59))),
        "records[8].time",
        ["of seq 10 is before", "of seq 9"],
    ),
]


@pytest.mark.parametrize(
    ("table", "where", "words"),
    [pytest.param(table, where, words, id=name) for name, table, where, words in PARQUET_CASES],
)
def test_bad_parquet_is_one_line_naming_file_record_and_field(
    table: pa.Table, where: str, words: list[str], tmp_path: Path
) -> None:
    path = tmp_path / "feed.parquet"
    pq.write_table(table.replace_schema_metadata({b"solvent.schema": b"solvent.feed/1"}), path)
    message = error_of(path)
    assert message.startswith(f"{path}: {where}: "), message
    for word in words:
        assert word in message, message


@pytest.mark.parametrize(
    ("metadata", "words"),
    [
        pytest.param({}, ["metadata: missing key 'solvent.schema'"], id="missing"),
        pytest.param({b"solvent.schema": b"solvent.feed/2"}, ["unknown schema version 'solvent.feed/2'"], id="other"),
    ],
)
def test_parquet_names_its_schema(metadata: dict[bytes, bytes], words: list[str], tmp_path: Path) -> None:
    path = tmp_path / "feed.parquet"
    pq.write_table(parquet_table().replace_schema_metadata(metadata), path)
    message = error_of(path)
    assert all(word in message for word in words), message


def test_not_a_parquet_file(tmp_path: Path) -> None:
    path = tmp_path / "feed.parquet"
    path.write_text("hello", encoding="utf-8")
    assert "not a readable Parquet file" in error_of(path)


# ------------------------------------------------------------------------------------ writing: atomicity


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_out_of_order_records_are_not_written(suffix: str, tmp_path: Path) -> None:
    path = tmp_path / f"feed{suffix}"
    with pytest.raises(ValueError, match=r"records\[1\]\.seq: seq 1 after seq 2"):
        write_feed(path, (RECORDS[1], RECORDS[0]))
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("suffix", SUFFIXES)
def test_a_failed_write_leaves_the_old_file_and_no_temporary(
    suffix: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / f"feed{suffix}"
    write_feed(path, RECORDS[:2])
    before = path.read_bytes()

    def fail_half_way(tmp: str, records: tuple[FeedRecord, ...]) -> None:
        Path(tmp).write_bytes(b"half a feed")
        raise OSError("disk full")

    monkeypatch.setattr(feedio, "_write_ndjson", fail_half_way)
    monkeypatch.setattr(feedio, "_write_parquet", fail_half_way)
    with pytest.raises(OSError, match="disk full"):
        write_feed(path, RECORDS)
    assert path.read_bytes() == before
    assert list(tmp_path.iterdir()) == [path]


# --------------------------------------------------------------------------- JSON Schema and the docs


def feed_schema() -> jsonschema.Draft202012Validator:
    schema = json.loads((ROOT / "docs" / "schemas" / "solvent.feed-1.schema.json").read_text(encoding="utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


@pytest.mark.parametrize("record", [pytest.param(r, id=r.__struct_config__.tag) for r in RECORDS])
def test_every_record_validates_against_the_json_schema(record: FeedRecord) -> None:
    assert [e.message for e in feed_schema().iter_errors(json.loads(msgspec.json.encode(record)))] == []


@pytest.mark.parametrize(
    "document",
    [
        pytest.param({**quote(), "type": "trade"}, id="unknown-type"),
        pytest.param(quote(price=-1), id="negative-price"),
        pytest.param(quote(vol=0.5), id="unknown-field"),
        pytest.param({k: v for k, v in fill().items() if k != "account"}, id="missing-field"),
    ],
)
def test_json_schema_rejects_a_bad_record(document: dict[str, Any]) -> None:
    assert list(feed_schema().iter_errors(document))


def docs_ndjson_blocks() -> list[str]:
    """The ```ndjson blocks of docs/formats.md."""
    text = (ROOT / "docs" / "formats.md").read_text(encoding="utf-8")
    return re.findall(r"^```ndjson\n(.*?)^```$", text, flags=re.MULTILINE | re.DOTALL)


def test_docs_have_an_ndjson_example() -> None:
    assert len(docs_ndjson_blocks()) >= 1


@pytest.mark.parametrize("block", docs_ndjson_blocks())
def test_docs_ndjson_example_reads(block: str, tmp_path: Path) -> None:
    path = tmp_path / "feed.ndjson"
    path.write_text(block, encoding="utf-8")
    records = read_feed(path)
    lines = [line for line in block.splitlines() if line.strip()]
    assert len(records) == len(lines)
    assert {r.__struct_config__.tag for r in records} == set(feedio._TYPES)  # the example shows every type
    for line in lines:
        assert list(feed_schema().iter_errors(json.loads(line))) == []
