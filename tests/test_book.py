"""The Book boundary: Arrow and Parquet round trips, JSON and Parquet agreement, and bad Parquet input."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest

from solvent.convert.inputs import load_portfolio
from solvent.engine.book import (
    CROSS,
    ISOLATED,
    Book,
    book_from_arrow,
    book_to_arrow,
    canonical_book,
)
from solvent.errors import InputError
from solvent.formats.arrow import ACCOUNTS_SCHEMA, ENCODED_SCHEMA
from solvent.formats.io import INSTRUMENTS_KEY, SCHEMA_KEY, write_portfolio_parquet
from solvent.formats.schemas import PORTFOLIO_SCHEMA, Instrument, Portfolio

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
NAN = float("nan")


def example_portfolio() -> Portfolio:
    return msgspec.json.decode((EXAMPLES / "portfolio.json").read_bytes(), type=Portfolio)


def example_rows() -> list[dict[str, Any]]:
    """The example accounts as plain rows of ACCOUNTS_SCHEMA, ready to be spoiled one field at a time."""
    rows: list[dict[str, Any]] = msgspec.to_builtins(example_portfolio().accounts)
    return rows


def assert_same_book(actual: Book, expected: Book) -> None:
    assert actual.instruments == expected.instruments
    assert actual.collateral_assets == expected.collateral_assets
    assert actual.venues == expected.venues
    for field in dataclasses.fields(Book):
        if field.name in ("instruments", "collateral_assets", "venues"):
            continue
        got, want = getattr(actual, field.name), getattr(expected, field.name)
        assert got.dtype == want.dtype, field.name
        np.testing.assert_array_equal(got, want, err_msg=field.name)  # NaN equals NaN here


def mixed_book() -> Book:
    """Linear and option positions (NaN entry), risk tiers, an isolated sub-account, empty accounts."""
    instruments = tuple(example_portfolio().instruments)
    kinds = [inst.id for inst in instruments]
    perp, eth_perp, future = kinds.index("BTC-PERP"), kinds.index("ETH-PERP"), kinds.index("BTC-26DEC26")
    call, put = kinds.index("BTC-26DEC26-110000-C"), kinds.index("BTC-26DEC26-80000-P")
    return canonical_book(
        Book(
            instruments=instruments,
            account_ids=np.array(["alice", "alice/eth", "bob", "carol", "dave"], dtype=object),
            pos_offsets=np.array([0, 2, 3, 3, 6, 6], dtype=np.int64),
            pos_instrument=np.array([perp, call, eth_perp, put, future, call], dtype=np.int32),
            pos_quantity=np.array([2.0, -5.0, -10.0, 3.0, 1.0, -0.25]),
            pos_entry=np.array([92000.0, NAN, 3300.0, NAN, 96500.0, NAN]),
            collateral_assets=("USDC", "BTC", "ETH"),
            col_offsets=np.array([0, 2, 3, 3, 4, 4], dtype=np.int64),
            col_asset=np.array([0, 1, 0, 2], dtype=np.int32),
            col_amount=np.array([40000.0, 1.5, 6000.0, -2.0]),
            risk_tier=np.array([NAN, NAN, 1.5, NAN, 2.0]),
            mode=np.array([CROSS, ISOLATED, CROSS, CROSS, CROSS], dtype=np.int8),
            parent=np.array([None, "alice", None, None, None], dtype=object),
        )
    )


def random_book(n_accounts: int, seed: int) -> Book:
    """Many accounts over the example instruments, so that several row groups carry different dictionaries."""
    rng = np.random.default_rng(seed)
    instruments = tuple(example_portfolio().instruments)
    counts = rng.integers(0, 6, n_accounts)
    offsets = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    inst = rng.integers(0, len(instruments), offsets[-1]).astype(np.int32)
    linear = np.array([i.kind != "option" for i in instruments])[inst]
    col_counts = rng.integers(0, 3, n_accounts)
    col_offsets = np.concatenate([[0], np.cumsum(col_counts)]).astype(np.int64)
    # Asset codes in order of first appearance, as a dictionary encoding of the names would number them.
    col_asset = np.array([0, 1, 2, *rng.integers(0, 3, col_offsets[-1] - 3)], dtype=np.int32)
    isolated = np.arange(n_accounts) % 7 == 6
    return canonical_book(
        Book(
            instruments=instruments,
            account_ids=np.array([f"acct-{n}" for n in rng.permutation(n_accounts)], dtype=object),
            pos_offsets=offsets,
            pos_instrument=inst,
            pos_quantity=rng.normal(0, 5, offsets[-1]),
            pos_entry=np.where(linear, rng.uniform(1, 1e5, offsets[-1]), NAN),
            collateral_assets=("USDC", "BTC", "ETH"),
            col_offsets=col_offsets,
            col_asset=col_asset,
            col_amount=rng.lognormal(8, 1, col_offsets[-1]),
            risk_tier=np.where(rng.random(n_accounts) < 0.2, rng.uniform(0.5, 3, n_accounts), NAN),
            mode=np.where(isolated, ISOLATED, CROSS).astype(np.int8),
            parent=np.array([f"acct-{n}" if iso else None for n, iso in enumerate(isolated)], dtype=object),
        )
    )


def write_raw(path: Path, table: pa.Table, metadata: dict[bytes, bytes] | None = None) -> Path:
    """Write `table` as Parquet as another tool would: no casting, the given metadata only."""
    pq.write_table(table.replace_schema_metadata(metadata), path)
    return path


def portfolio_metadata(instruments: tuple[Instrument, ...] | list[Instrument]) -> dict[bytes, bytes]:
    return {SCHEMA_KEY: PORTFOLIO_SCHEMA.encode(), INSTRUMENTS_KEY: msgspec.json.encode(list(instruments))}


# --- round trips -----------------------------------------------------------------------------------------------


def test_arrow_round_trip_is_identical() -> None:
    book = mixed_book()
    assert_same_book(book_from_arrow(book_to_arrow(book), book.instruments, "<test>"), book)


@pytest.mark.parametrize("row_group_size", [None, 2], ids=["one-row-group", "row-groups-of-2"])
def test_parquet_round_trip_is_identical(tmp_path: Path, row_group_size: int | None) -> None:
    book = mixed_book()
    path = tmp_path / "portfolio.parquet"
    write_portfolio_parquet(book.instruments, book_to_arrow(book), path)
    if row_group_size is not None:  # several row groups, each with its own dictionaries
        pq.write_table(pq.read_table(path), path, row_group_size=row_group_size)
        assert pq.ParquetFile(path).num_row_groups == 3
    assert_same_book(load_portfolio(path), book)


def test_parquet_round_trip_of_many_accounts_in_row_groups(tmp_path: Path) -> None:
    book = random_book(3000, seed=7)
    path = tmp_path / "portfolio.parquet"
    write_portfolio_parquet(book.instruments, book_to_arrow(book), path)
    pq.write_table(pq.read_table(path), path, row_group_size=700)
    assert_same_book(load_portfolio(path), book)


def test_dictionary_typed_parquet_gives_the_same_book(tmp_path: Path) -> None:
    """A file whose writer stored names as Arrow dictionaries (ENCODED_SCHEMA) loads into the same Book."""
    book = mixed_book()
    accounts = book_to_arrow(book).cast(ENCODED_SCHEMA)
    path = write_raw(tmp_path / "dictionary.parquet", accounts, portfolio_metadata(book.instruments))
    assert pq.read_schema(path).remove_metadata() == ENCODED_SCHEMA
    assert_same_book(load_portfolio(path), book)


def test_the_arrow_table_of_a_book_is_plain_accounts_schema() -> None:
    assert book_to_arrow(mixed_book()).schema == ACCOUNTS_SCHEMA


def test_legacy_list_naming_gives_the_same_book(tmp_path: Path) -> None:
    """Lists written as positions.list.item (not .element) are still read, names as plain strings."""
    book = mixed_book()
    path = tmp_path / "legacy.parquet"
    table = book_to_arrow(book).replace_schema_metadata(portfolio_metadata(book.instruments))
    pq.write_table(table, path, use_compliant_nested_type=False)
    assert "positions.list.item.instrument" in [column.path for column in pq.ParquetFile(path).schema]
    assert_same_book(load_portfolio(path), book)


def test_json_and_parquet_give_the_same_book(tmp_path: Path) -> None:
    from_json = load_portfolio(EXAMPLES / "portfolio.json")
    path = tmp_path / "portfolio.parquet"
    write_portfolio_parquet(from_json.instruments, book_to_arrow(from_json), path)
    from_parquet = load_portfolio(path)
    assert_same_book(from_parquet, from_json)
    assert from_json.n_accounts == 6
    assert list(from_json.parent) == [None, "alice", None, None, None, None]


def test_dictionaries_with_unused_names_give_the_same_book() -> None:
    """An unused unknown instrument name is no error; an unused asset does not become a collateral asset."""
    instruments = tuple(example_portfolio().instruments)
    plain = pa.Table.from_pylist(example_rows(), schema=ACCOUNTS_SCHEMA)
    encoded = plain.cast(ENCODED_SCHEMA)
    positions = encoded.column("positions").chunk(0)
    names = positions.values.field("instrument")
    names = pa.DictionaryArray.from_arrays(names.indices, pa.concat_arrays([names.dictionary, pa.array(["BTC-XYZ"])]))
    values = pa.StructArray.from_arrays([names, *positions.values.flatten()[1:]], fields=list(positions.values.type))
    collateral = encoded.column("collateral").chunk(0)
    assets = pa.DictionaryArray.from_arrays(
        pc.add(collateral.keys.indices, pa.scalar(1, pa.int32())),
        pa.concat_arrays([pa.array(["XRP"]), collateral.keys.dictionary]),
    )
    spoilt = encoded.set_column(1, "collateral", pa.MapArray.from_arrays(collateral.offsets, assets, collateral.items))
    spoilt = spoilt.set_column(2, "positions", pa.ListArray.from_arrays(positions.offsets, values))
    assert spoilt.schema == ENCODED_SCHEMA
    book = book_from_arrow(spoilt, instruments, "<test>")
    assert_same_book(book, book_from_arrow(plain, instruments, "<test>"))
    assert "XRP" not in book.collateral_assets


def test_a_sliced_table_gives_the_book_of_its_rows() -> None:
    instruments = tuple(example_portfolio().instruments)
    rows = example_rows()
    table = pa.Table.from_pylist(rows, schema=ACCOUNTS_SCHEMA)
    sliced = book_from_arrow(table.slice(2), instruments, "<test>")
    assert_same_book(sliced, book_from_arrow(pa.Table.from_pylist(rows[2:], schema=ACCOUNTS_SCHEMA), instruments, ""))


def test_loading_leaves_the_file_unchanged_and_twice_gives_the_same_book(tmp_path: Path) -> None:
    book = mixed_book()
    path = tmp_path / "portfolio.parquet"
    write_portfolio_parquet(book.instruments, book_to_arrow(book), path)
    before = path.read_bytes()
    assert_same_book(load_portfolio(path), load_portfolio(path))
    assert path.read_bytes() == before


@pytest.mark.parametrize("write", ["solvent-writer", "raw-plain-strings"])
def test_an_empty_portfolio_loads(tmp_path: Path, write: str) -> None:
    instruments = tuple(example_portfolio().instruments)
    path = tmp_path / "empty.parquet"
    if write == "solvent-writer":
        write_portfolio_parquet(instruments, ACCOUNTS_SCHEMA.empty_table(), path)
    else:
        write_raw(path, ACCOUNTS_SCHEMA.empty_table(), portfolio_metadata(instruments))
    book = load_portfolio(path)
    assert book.n_accounts == 0
    assert book.instruments == instruments
    assert book.collateral_assets == ()
    np.testing.assert_array_equal(book.pos_offsets, [0])
    np.testing.assert_array_equal(book.col_offsets, [0])
    assert book.pos_instrument.dtype == np.int32 and book.pos_instrument.shape == (0,)
    assert book.pos_quantity.shape == book.pos_entry.shape == book.risk_tier.shape == (0,)
    assert book.mode.dtype == np.int8 and book.account_ids.dtype == object


# --- bad input ------------------------------------------------------------------------------------------------


def _set(rows: list[dict[str, Any]], account: int, field: str, value: Any, position: int | None = None) -> None:
    if position is None:
        rows[account][field] = value
    else:
        rows[account]["positions"][position][field] = value


def _spoil(spoil: Callable[[list[dict[str, Any]]], None]) -> Callable[[], pa.Table]:
    def table() -> pa.Table:
        rows = example_rows()
        spoil(rows)
        return pa.Table.from_pylist(rows, schema=ACCOUNTS_SCHEMA)

    return table


def _with_unknown_column() -> pa.Table:
    table = pa.Table.from_pylist(example_rows(), schema=ACCOUNTS_SCHEMA)
    return table.append_column("colateral", pa.array([None] * table.num_rows, pa.string()))


def _duplicate(rows: list[dict[str, Any]]) -> None:
    rows.append(dict(rows[0]))


# (case id, the accounts table, where, words the message must contain)
BAD_TABLES = [
    (
        "unknown-instrument",
        _spoil(lambda r: _set(r, 3, "instrument", "BTC-XYZ", position=0)),
        "accounts[3].positions[0].instrument",
        "unknown instrument 'BTC-XYZ'",
    ),
    (
        "missing-instrument",
        _spoil(lambda r: _set(r, 5, "instrument", None, position=2)),
        "accounts[5].positions[2].instrument",
        "required",
    ),
    (
        "infinite-quantity",
        _spoil(lambda r: _set(r, 2, "quantity", float("inf"), position=1)),
        "accounts[2].positions[1].quantity",
        "must be finite, got np.float64(inf)",
    ),
    (
        "nan-quantity",
        _spoil(lambda r: _set(r, 5, "quantity", NAN, position=1)),
        "accounts[5].positions[1].quantity",
        "must be finite, got np.float64(nan)",
    ),
    (
        "missing-quantity",
        _spoil(lambda r: _set(r, 0, "quantity", None, position=0)),
        "accounts[0].positions[0].quantity",
        "required",
    ),
    (
        "linear-without-entry-price",
        _spoil(lambda r: _set(r, 2, "entry_price", None, position=1)),
        "accounts[2].positions[1].entry_price",
        "required for a linear product",
    ),
    (
        "option-with-entry-price",
        _spoil(lambda r: _set(r, 3, "entry_price", 1200.0, position=1)),
        "accounts[3].positions[1].entry_price",
        "options carry no entry price",
    ),
    (
        "negative-entry-price",
        _spoil(lambda r: _set(r, 5, "entry_price", -1.0, position=2)),
        "accounts[5].positions[2].entry_price",
        "must be in [1e-12, 1e+12], got np.float64(-1.0)",
    ),
    (
        "infinite-entry-price",
        _spoil(lambda r: _set(r, 0, "entry_price", float("inf"), position=0)),
        "accounts[0].positions[0].entry_price",
        "must be in [1e-12, 1e+12], got np.float64(inf)",
    ),
    ("duplicate-account-id", _spoil(_duplicate), "accounts[6].id", "duplicate account id 'alice'"),
    ("missing-account-id", _spoil(lambda r: _set(r, 4, "id", None)), "accounts[4].id", "required"),
    ("unknown-column", _with_unknown_column, "colateral", "unknown column"),
    (
        "nan-collateral",
        _spoil(lambda r: _set(r, 3, "collateral", {"BTC": 1.0, "USDC": NAN})),
        "accounts[3].collateral[1].amount",
        "must be finite",
    ),
    ("zero-risk-tier", _spoil(lambda r: _set(r, 4, "risk_tier", 0.0)), "accounts[4].risk_tier", "must be > 0"),
    # issue 12 item 14: the finite ranges hold for Parquet input too (it does not pass through msgspec)
    (
        "huge-quantity",
        _spoil(lambda r: _set(r, 0, "quantity", 1e308, position=0)),
        "accounts[0].positions[0].quantity",
        "must be within +-1e+12, got np.float64(1e+308)",
    ),
    (
        "subnormal-entry-price",
        _spoil(lambda r: _set(r, 0, "entry_price", 5e-324, position=0)),
        "accounts[0].positions[0].entry_price",
        "must be in [1e-12, 1e+12]",
    ),
    (
        "huge-collateral",
        _spoil(lambda r: _set(r, 3, "collateral", {"BTC": 1.0, "USDC": 1e300})),
        "accounts[3].collateral[1].amount",
        "must be within +-1e+15",
    ),
    ("huge-risk-tier", _spoil(lambda r: _set(r, 4, "risk_tier", 1e308)), "accounts[4].risk_tier", "at most 1000"),
    (
        "unknown-mode",
        _spoil(lambda r: _set(r, 2, "mode", "portfolio")),
        "accounts[2].mode",
        "must be 'cross' or 'isolated', got 'portfolio'",
    ),
    (
        "isolated-without-parent",
        _spoil(lambda r: _set(r, 1, "parent", None)),
        "accounts[1].parent",
        "isolated sub-accounts, and only they, name a parent",
    ),
    (
        "cross-with-parent",
        _spoil(lambda r: _set(r, 4, "parent", "alice")),
        "accounts[4].parent",
        "isolated sub-accounts, and only they, name a parent",
    ),
    (
        "unknown-parent",
        _spoil(lambda r: _set(r, 1, "parent", "zed")),
        "accounts[1].parent",
        "unknown parent account 'zed'",
    ),
]


@pytest.mark.parametrize("encoding", ["plain-strings", "dictionary"])
@pytest.mark.parametrize(("case", "table", "where", "message"), BAD_TABLES, ids=[c[0] for c in BAD_TABLES])
def test_bad_parquet_accounts_name_the_field(
    tmp_path: Path, encoding: str, case: str, table: Callable[[], pa.Table], where: str, message: str
) -> None:
    accounts = table()
    if encoding == "dictionary" and case != "unknown-column":
        accounts = accounts.cast(ENCODED_SCHEMA)
    path = write_raw(tmp_path / "bad.parquet", accounts, portfolio_metadata(example_portfolio().instruments))
    with pytest.raises(InputError) as caught:
        load_portfolio(path)
    assert caught.value.source == str(path)
    assert caught.value.where == where
    assert message in caught.value.message


# (case id, file metadata, where, words the message must contain)
BAD_METADATA = [
    ("missing-schema-metadata", None, "schema", "required field is missing (expected 'solvent.portfolio/1')"),
    (
        "wrong-schema-version",
        {SCHEMA_KEY: b"solvent.portfolio/9"},
        "schema",
        "unknown schema version 'solvent.portfolio/9'",
    ),
    (
        "missing-instruments",
        {SCHEMA_KEY: PORTFOLIO_SCHEMA.encode()},
        "metadata.solvent.instruments",
        "required",
    ),
]


@pytest.mark.parametrize(("case", "metadata", "where", "message"), BAD_METADATA, ids=[c[0] for c in BAD_METADATA])
def test_bad_parquet_metadata_is_named(
    tmp_path: Path, case: str, metadata: dict[bytes, bytes] | None, where: str, message: str
) -> None:
    accounts = pa.Table.from_pylist(example_rows(), schema=ACCOUNTS_SCHEMA)
    path = write_raw(tmp_path / "bad.parquet", accounts, metadata)
    with pytest.raises(InputError) as caught:
        load_portfolio(path)
    assert caught.value.where == where
    assert message in caught.value.message


@pytest.mark.parametrize("column", ["id", "positions"])
def test_a_missing_required_column_is_named(tmp_path: Path, column: str) -> None:
    accounts = pa.Table.from_pylist(example_rows(), schema=ACCOUNTS_SCHEMA).drop_columns([column])
    path = write_raw(tmp_path / "bad.parquet", accounts, portfolio_metadata(example_portfolio().instruments))
    with pytest.raises(InputError) as caught:
        load_portfolio(path)
    assert caught.value.where == column
    assert caught.value.message == "required column is missing"


def test_a_file_that_is_not_parquet_is_bad_input(tmp_path: Path) -> None:
    path = tmp_path / "portfolio.parquet"
    path.write_bytes(b"not parquet at all")
    with pytest.raises(InputError, match="not a readable Parquet file"):
        load_portfolio(path)


def test_a_column_of_the_wrong_type_is_named(tmp_path: Path) -> None:
    accounts = pa.Table.from_pylist(example_rows(), schema=ACCOUNTS_SCHEMA)
    accounts = accounts.set_column(3, "risk_tier", pa.array([[1.0]] * accounts.num_rows))
    path = write_raw(tmp_path / "bad.parquet", accounts, portfolio_metadata(example_portfolio().instruments))
    with pytest.raises(InputError) as caught:
        load_portfolio(path)
    assert caught.value.where == "risk_tier"
    assert caught.value.message.startswith("expected double, got list<")
