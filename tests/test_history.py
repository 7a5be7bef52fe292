"""Reading and writing price histories: solvent.history/1 CSV and Parquet, the two real layouts,
and one InputError per kind of bad input, naming the file and the row or column."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.parquet as pq
import pytest

from solvent.errors import InputError
from solvent.market.history import PriceHistory, parse_columns, read_history, write_history

BITSTAMP = "data/prices/bitstamp_btc_eth_ltc_daily_2014_2020.csv"
COINBASE = "data/prices/coinbase_btcusd_hourly_2017_2019.csv"
HEAD = "# schema: solvent.history/1\n"


def write(tmp_path: Path, text: str, name: str = "history.csv") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def sample_history() -> PriceHistory:
    stamps = np.array(
        ["2020-01-01T00:00:00", "2020-01-01T01:30:00", "2020-01-03T00:00:00", "2021-06-30T23:59:59"],
        dtype="datetime64[s]",
    )
    closes = np.array(
        [[0.1 + 0.2, np.nan], [7.0e4, 1.0 / 3.0], [123.456789012345678, 5e-9], [1e300, np.nextafter(2.0, 3.0)]]
    )
    return PriceHistory(stamps, ("BTC", "ETH"), closes)


# ------------------------------------------------------------------------------------- round trip


@pytest.mark.parametrize("suffix", ["csv", "parquet"])
def test_round_trip_is_exact(tmp_path: Path, suffix: str) -> None:
    history = sample_history()
    path = tmp_path / f"h.{suffix}"
    write_history(history, path)
    back = read_history(path)
    assert back.assets == history.assets
    np.testing.assert_array_equal(back.timestamps, history.timestamps)
    assert back.timestamps.dtype == np.dtype("datetime64[s]")
    np.testing.assert_array_equal(back.closes, history.closes)  # NaN in the same places, floats exact
    assert [p.name for p in tmp_path.iterdir()] == [f"h.{suffix}"]  # no temporary file left behind


def test_csv_layout(tmp_path: Path) -> None:
    path = tmp_path / "h.csv"
    write_history(sample_history(), path)
    lines = path.read_text().splitlines()
    assert lines[:3] == [HEAD.strip(), "timestamp,BTC,ETH", "2020-01-01T00:00:00Z,0.30000000000000004,"]


def test_parquet_carries_the_schema(tmp_path: Path) -> None:
    path = tmp_path / "h.parquet"
    write_history(sample_history(), path)
    table = pq.read_table(path)
    assert table.schema.metadata[b"solvent.schema"] == b"solvent.history/1"
    assert table.schema.names == ["timestamp", "BTC", "ETH"]
    assert pa.types.is_timestamp(table.schema.field("timestamp").type)


def test_failed_write_keeps_the_old_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, "old contents", "h.csv")

    def fail(*args: object, **kwargs: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(pcsv, "write_csv", fail)
    with pytest.raises(OSError, match="disk full"):
        write_history(sample_history(), path)
    assert path.read_text() == "old contents"
    assert [p.name for p in tmp_path.iterdir()] == ["h.csv"]


@pytest.mark.parametrize("assets", [("BTC", "timestamp"), ("BTC", "A,B"), ("BTC", "BTC")])
def test_write_rejects_unwritable_asset_names(tmp_path: Path, assets: tuple[str, str]) -> None:
    stamps = np.array(["2020-01-01"], dtype="datetime64[s]")
    with pytest.raises(ValueError, match="asset"):
        write_history(PriceHistory(stamps, assets, np.ones((1, 2))), tmp_path / "h.csv")


# ---------------------------------------------------------------------------------------- parsing


def test_sorts_drops_repeats_and_reads_offsets(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        HEAD + "timestamp,BTC,ETH\n"
        "2020-01-02T01:00:00+01:00,2,\n"  # = 2020-01-02T00:00:00Z
        "2020-01-01,1,10\n"
        " 2020-01-03 00:00:00 , 3 , 30\n"
        "2020-01-02T00:00:00Z,2,\n",  # the same row again: dropped
    )
    history = read_history(path)
    expected = np.array(["2020-01-01", "2020-01-02", "2020-01-03"], dtype="datetime64[D]").astype("datetime64[s]")
    np.testing.assert_array_equal(history.timestamps, expected)
    np.testing.assert_array_equal(history.closes, [[1.0, 10.0], [2.0, np.nan], [3.0, 30.0]])


def test_crlf_and_byte_order_mark(tmp_path: Path) -> None:
    path = tmp_path / "h.csv"
    path.write_bytes(
        b"\xef\xbb\xbf" + (HEAD + "timestamp,BTC\n2020-01-01T00:00:00Z,5\n").replace("\n", "\r\n").encode()
    )
    history = read_history(path)
    assert history.assets == ("BTC",) and history.closes.tolist() == [[5.0]]


def test_cryptodatadownload_layout(tmp_path: Path) -> None:
    """Banner line, newest first, 12-AM is midnight and 12-PM noon; one column per symbol."""
    path = write(
        tmp_path,
        "Timestamps are UTC timezone,https://www.CryptoDataDownload.com\n"
        "date,symbol,open,high,low,close,volume_btc,volume\n"
        "2019-10-17 12-PM,BTCUSD,1,1,1,8002.5,1,1\n"
        "2019-10-17 01-AM,ETHUSD,1,1,1,180.25,1,1\n"
        "2019-10-17 12-AM,BTCUSD,1,1,1,8000,1,1\n",
    )
    history = read_history(path)
    assert history.assets == ("BTC", "ETH")
    expected = np.array(["2019-10-17T00:00:00", "2019-10-17T01:00:00", "2019-10-17T12:00:00"], dtype="datetime64[s]")
    np.testing.assert_array_equal(history.timestamps, expected)
    np.testing.assert_array_equal(history.closes, [[8000.0, np.nan], [np.nan, 180.25], [8002.5, np.nan]])


def test_bitstamp_layout(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        ",BTC:open,BTC:close,ETH:open,ETH:close\n2014-11-29,1,376.72,,\n2014-11-28,1,376.28,,\n2014-11-30,1,380,1,9\n",
    )
    history = read_history(path)
    assert history.assets == ("BTC", "ETH")
    np.testing.assert_array_equal(history.closes, [[376.28, np.nan], [376.72, np.nan], [380.0, 9.0]])


# ------------------------------------------------------------------------------------- real files


def test_real_bitstamp_daily(shared_dir: Path) -> None:
    history = read_history(shared_dir / BITSTAMP)
    assert history.assets == ("BTC", "ETH", "LTC")
    assert history.closes.shape == (1865, 3)
    assert history.timestamps[0] == np.datetime64("2014-11-28T00:00:00")
    assert history.timestamps[-1] == np.datetime64("2020-01-17T00:00:00")
    assert history.closes[0, 0] == 376.28 and history.closes[-1].tolist() == [8709.49, 164.52, 57.88]
    first_eth = history.timestamps[np.isfinite(history.closes[:, 1])][0]
    assert first_eth == np.datetime64("2017-11-09T00:00:00")


def test_real_coinbase_hourly(shared_dir: Path) -> None:
    history = read_history(shared_dir / COINBASE)
    assert history.assets == ("BTC",)
    assert history.closes.shape == (20111, 1)
    assert history.timestamps[0] == np.datetime64("2017-07-01T11:00:00")
    assert history.timestamps[-1] == np.datetime64("2019-10-17T09:00:00")
    assert history.closes[0, 0] == 2509.17 and history.closes[-1, 0] == 8035.88
    assert np.all(np.diff(history.timestamps) > np.timedelta64(0, "s"))


# ------------------------------------------------------------------------------------- bad inputs

BAD_CSV = [
    pytest.param("", "", "file is empty", id="empty"),
    pytest.param("\n  \n", "", "file is empty", id="blank"),
    pytest.param(HEAD, "line 2", "no header line", id="schema-only"),
    pytest.param(HEAD + "timestamp,BTC\n", "", "no data rows", id="no-rows"),
    pytest.param("# schema: solvent.history/2\ntimestamp,BTC\n", "line 1", "unknown schema", id="future-schema"),
    pytest.param("timestamp,BTC\n2020-01-01,1\n", "line 1", "missing schema line", id="no-schema"),
    pytest.param(HEAD + "time,BTC\n2020-01-01,1\n", "header", "first column must be 'timestamp'", id="no-ts-col"),
    pytest.param(HEAD + "timestamp\n2020-01-01\n", "header", "no asset columns", id="no-assets"),
    pytest.param(HEAD + "timestamp,BTC,BTC\n2020-01-01,1,2\n", "header", "'BTC' appears twice", id="dup-col"),
    pytest.param(HEAD + "timestamp,BTC\n2020-01-01,1\n2020-01-02,1,2\n", "line 4", "expected 2 fields", id="ragged"),
    pytest.param(HEAD + "timestamp,BTC\n2020-01-01,1\n01/02/2020,2\n", "row 2", "column timestamp", id="bad-ts"),
    pytest.param(HEAD + "timestamp,BTC\n2020-02-30,1\n", "row 1", "cannot parse timestamp", id="no-such-day"),
    pytest.param(HEAD + "timestamp,BTC\n,1\n", "row 1", "column timestamp: missing", id="empty-ts"),
    pytest.param(HEAD + "timestamp,BTC,ETH\n2020-01-01,1,2\n2020-01-02,1,x\n", "row 2", "column ETH", id="text"),
    pytest.param(HEAD + "timestamp,BTC\n2020-01-01,0\n", "row 1", "positive and finite, got 0.0", id="zero"),
    pytest.param(HEAD + "timestamp,BTC\n2020-01-01,1\n2020-01-02,-3\n", "row 2", "column BTC", id="negative"),
    pytest.param(HEAD + "timestamp,BTC\n2020-01-01,nan\n", "row 1", "got nan", id="nan"),
    pytest.param(HEAD + "timestamp,BTC\n2020-01-01,1\n2020-01-02,inf\n", "row 2", "got inf", id="inf"),
    pytest.param(HEAD + "timestamp,BTC,ETH\n2020-01-01,1,\n", "column ETH", "no closes", id="empty-col"),
    pytest.param(
        HEAD + "timestamp,BTC\n2020-01-01,1\n2020-01-02,2\n2020-01-01,3\n", "row 3", "repeats row 1", id="dup-ts"
    ),
    pytest.param(
        "banner\ndate,symbol,open,high,low,close\n2019-10-17 09-AM,BTCUSD,1,1,1,5\n2019-10-17 13-PM,BTCUSD,1,1,1,5\n",
        "row 2",
        "column date: cannot parse timestamp '2019-10-17 13-PM'",
        id="cdd-bad-date",
    ),
    pytest.param(
        "banner\ndate,symbol,open,high,low,close\n2019-10-17 09-AM,BTCUSD,1,1,1,-5\n",
        "row 1",
        "column close",
        id="cdd-neg",
    ),
    pytest.param(",BTC:open,BTC:close\n2014-11-28,1,2\n2014-11-29,1,0\n", "row 2", "column BTC:close", id="bitstamp-0"),
]


@pytest.mark.parametrize(("text", "where", "message"), BAD_CSV)
def test_bad_csv_raises_input_error(tmp_path: Path, text: str, where: str, message: str) -> None:
    path = write(tmp_path, text)
    with pytest.raises(InputError) as info:
        read_history(path)
    error = info.value
    assert error.source == str(path)
    assert error.where == where
    assert message in str(error)
    assert str(error).startswith(f"{path}: {where}" if where else f"{path}: ")


def parquet(tmp_path: Path, table: pa.Table, metadata: dict[bytes, bytes] | None) -> Path:
    path = tmp_path / "h.parquet"
    pq.write_table(table.replace_schema_metadata(metadata), path)
    return path


STAMPS = pa.array([0, 86400], type=pa.timestamp("s", tz="UTC"))
SCHEMA = {b"solvent.schema": b"solvent.history/1"}


@pytest.mark.parametrize(
    ("table", "metadata", "where", "message"),
    [
        (pa.table({"timestamp": STAMPS, "BTC": [1.0, 2.0]}), None, "metadata", "missing key 'solvent.schema'"),
        (
            pa.table({"timestamp": STAMPS, "BTC": [1.0, 2.0]}),
            {b"solvent.schema": b"solvent.history/9"},
            "metadata",
            "unknown schema",
        ),
        (pa.table({"BTC": [1.0, 2.0], "timestamp": STAMPS}), SCHEMA, "header", "first column"),
        (pa.table({"timestamp": [1.5, 2.5], "BTC": [1.0, 2.0]}), SCHEMA, "column timestamp", "must be a timestamp"),
        (pa.table({"timestamp": STAMPS, "BTC": ["1", "2"]}), SCHEMA, "column BTC", "must be numbers"),
        (pa.table({"timestamp": STAMPS, "BTC": [1.0, -2.0]}), SCHEMA, "row 2", "column BTC"),
        (pa.table({"timestamp": ["2020-01-01", "x"], "BTC": [1.0, 2.0]}), SCHEMA, "row 2", "cannot parse"),
        (pa.table({"timestamp": STAMPS.slice(0, 0), "BTC": pa.array([], pa.float64())}), SCHEMA, "", "no rows"),
    ],
)
def test_bad_parquet_raises_input_error(
    tmp_path: Path, table: pa.Table, metadata: dict[bytes, bytes] | None, where: str, message: str
) -> None:
    path = parquet(tmp_path, table, metadata)
    with pytest.raises(InputError) as info:
        read_history(path)
    assert info.value.source == str(path) and info.value.where == where
    assert message in str(info.value)


@pytest.mark.parametrize("name", ["missing.csv", "missing.parquet"])
def test_missing_file(tmp_path: Path, name: str) -> None:
    with pytest.raises(InputError, match="No such file"):
        read_history(tmp_path / name)


def test_not_a_parquet_file(tmp_path: Path) -> None:
    path = write(tmp_path, "not parquet", "h.parquet")
    with pytest.raises(InputError, match="not a readable Parquet file"):
        read_history(path)


# ----------------------------------------------------------------------------- a column mapping

# Binance's spot kline export (data.binance.vision): no header; open time in ms, then open, high, low, close.
BINANCE = """\
1577836800000,7195.24,7255.00,7175.15,7200.85,16792.38,1577923199999,121214452.11,194010,8946.95,64597785.21,0
1577923200000,7200.77,7212.50,6924.74,6965.71,31951.48,1578009599999,225982341.30,302667,15141.61,107060829.07,0
"""
# CryptoDataDownload's newer daily files: a banner line, then unix,date,symbol,..., newest first.
CDD_DAILY = """\
https://www.CryptoDataDownload.com
unix,date,symbol,open,high,low,close,Volume BTC,Volume USDT
1578009600,2020-01-03 00:00:00,BTC/USDT,6965.49,7405.0,6871.04,7344.96,68428.5,496489375.2
1577923200,2020-01-02 00:00:00,BTC/USDT,7199.5,7212.5,6924.74,6965.71,31951.48,225982341.3
1577836800,2020-01-01 00:00:00,BTC/USDT,7195.24,7255.0,7175.15,7200.85,16792.38,121214452.11
"""
DAYS = np.array(["2020-01-01", "2020-01-02", "2020-01-03"], dtype="datetime64[s]")


@pytest.mark.parametrize(
    ("text", "mapping", "days"),
    [
        (BINANCE, "time=0,close=4,header=no,asset=BTC", 2),
        (CDD_DAILY, "skip=1,time=date,close=close,symbol=symbol", 3),
        (CDD_DAILY, "skip=1,time=unix,close=close,asset=BTC", 3),
        (CDD_DAILY.replace("2020-01-0", "0"), "skip=1,time=date,close=close,asset=BTC,format=%d %H:%M:%S", 0),
    ],
    ids=["binance-ms-no-header", "cdd-symbol", "cdd-epoch-seconds", "strptime"],
)
def test_foreign_layouts_through_a_mapping(tmp_path: Path, text: str, mapping: str, days: int) -> None:
    history = read_history(write(tmp_path, text), parse_columns(mapping))
    assert history.assets == ("BTC",)
    expected = [7200.85, 6965.71, 7344.96][: days or 3]
    np.testing.assert_array_equal(history.closes[:, 0], expected)
    if days:  # the strptime case has no year: 1900, read as UTC
        np.testing.assert_array_equal(history.timestamps, DAYS[:days])


def test_epoch_units_by_size(tmp_path: Path) -> None:
    text = "t,c\n1577836800,1\n1577923200000,2\n"
    mapping = parse_columns("time=t,close=c")
    # Mixed units in one column are not guessed row by row: the column's largest value decides (ms here).
    history = read_history(write(tmp_path, text), mapping)
    assert history.timestamps[-1] == np.datetime64("2020-01-02", "s")
    micro = read_history(write(tmp_path, "t,c\n1577836800000000,1\n", "us.csv"), mapping)
    assert micro.timestamps[0] == np.datetime64("2020-01-01", "s") and micro.assets == ("c",)


@pytest.mark.parametrize(
    ("mapping", "message"),
    [
        ("time=date", "close: missing"),
        ("time=date,close=close,colour=red", "key one of"),
        ("time=date,close=close,skip=x", "skip: must be a whole number"),
        ("time=date,close=close,header=maybe", "header: must be yes or no"),
        ("time=date,close=close,time=unix", "time: given twice"),
    ],
)
def test_bad_mappings(mapping: str, message: str) -> None:
    with pytest.raises(InputError, match=message):
        parse_columns(mapping)


@pytest.mark.parametrize(
    ("text", "mapping", "message"),
    [
        (CDD_DAILY, "skip=1,time=when,close=close", "no column 'when'"),
        (BINANCE, "time=open,close=4,header=no", "must be a 0-based column position"),
        (CDD_DAILY, "skip=1,time=date,close=close,format=%Y/%m/%d", "row 1: column date: cannot parse"),
        (CDD_DAILY.replace("7344.96", "n/a"), "skip=1,time=date,close=close", "row 1: column close"),
    ],
)
def test_bad_files_through_a_mapping(tmp_path: Path, text: str, mapping: str, message: str) -> None:
    with pytest.raises(InputError, match=message):
        read_history(write(tmp_path, text), parse_columns(mapping))


def test_a_mapping_reads_the_real_files_as_their_own_readers_do(shared_dir: Path) -> None:
    """The two real layouts through a mapping give what their dedicated readers give."""
    coinbase = shared_dir / COINBASE
    mapped = read_history(coinbase, parse_columns("skip=1,time=date,close=close,symbol=symbol,format=%Y-%m-%d %I-%p"))
    own = read_history(coinbase)
    assert mapped.assets == own.assets
    np.testing.assert_array_equal(mapped.timestamps, own.timestamps)
    np.testing.assert_array_equal(mapped.closes, own.closes)
    bitstamp = shared_dir / BITSTAMP
    btc = read_history(bitstamp, parse_columns("time=0,close=BTC:close,asset=BTC"))
    own_btc = read_history(bitstamp).select(("BTC",))
    np.testing.assert_array_equal(btc.timestamps, own_btc.timestamps)
    np.testing.assert_array_equal(btc.closes, own_btc.closes)
