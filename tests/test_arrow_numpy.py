"""formats/arrow_numpy.py against pyarrow's own conversions: the same values, dtypes, NaN and null placement and
writability; and `accounts_table` against `pa.Table.from_pylist` of the same records (issue 14 item 7: the readers
avoid pyarrow's conversions only because those import pandas)."""

from __future__ import annotations

from typing import Any

import msgspec
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import given
from hypothesis import strategies as st

from solvent.formats.arrow import ACCOUNTS_SCHEMA, accounts_table
from solvent.formats.arrow_numpy import (
    bools,
    float_array,
    floats,
    integers,
    objects,
    offsets_array,
    string_array,
    string_scalar,
)
from solvent.formats.schemas import Account, Position

FINITE = st.floats(allow_nan=False, allow_infinity=False) | st.sampled_from([0.0, -0.0, 5e-324, 1e300])
FLOATS = FINITE | st.sampled_from([float("inf"), float("-inf")])
NAMES = st.text(min_size=1, max_size=8)


def slices(values: list[Any]) -> st.SearchStrategy[tuple[int, int]]:
    """(offset, length) of a slice of `values`, so that arrays with a non-zero offset are converted too."""
    return st.integers(0, len(values)).flatmap(
        lambda start: st.tuples(st.just(start), st.integers(0, len(values) - start))
    )


def assert_same_floats(got: np.ndarray, want: np.ndarray) -> None:
    assert got.dtype == want.dtype == np.float64
    assert got.view(np.int64).tolist() == want.view(np.int64).tolist()  # bit for bit, NaN and -0.0 included
    assert got.flags.writeable == want.flags.writeable


@given(st.lists(st.none() | FLOATS, max_size=40), st.data())
def test_floats_are_to_numpys_bit_for_bit(values: list[float | None], data: st.DataObject) -> None:
    offset, length = data.draw(slices(values))
    array = pa.array(values, type=pa.float64()).slice(offset, length)
    assert_same_floats(floats(array), array.to_numpy(zero_copy_only=False))


@given(st.lists(st.none() | st.integers(-(2**31), 2**31 - 1), max_size=40), st.data())
def test_floats_cast_other_types_as_before(values: list[int | None], data: st.DataObject) -> None:
    offset, length = data.draw(slices(values))
    array = pa.array(values, type=pa.int32()).slice(offset, length)
    assert_same_floats(floats(array), array.cast(pa.float64()).to_numpy(zero_copy_only=False))


@given(st.lists(st.none() | st.booleans(), max_size=70), st.data())
def test_bools_are_to_numpys_with_nulls_false(values: list[bool | None], data: st.DataObject) -> None:
    offset, length = data.draw(slices(values))
    array = pa.array(values, type=pa.bool_()).slice(offset, length)
    got = bools(array)
    assert got.dtype == np.bool_ and got.flags.writeable
    assert got.tolist() == np.asarray(array.to_numpy(zero_copy_only=False), dtype=np.bool_).tolist()


@given(st.lists(st.integers(0, 2**31 - 1), max_size=40), st.data())
def test_integers_are_to_numpys(values: list[int], data: st.DataObject) -> None:
    offset, length = data.draw(slices(values))
    array = pa.array(values, type=pa.int32()).slice(offset, length)
    got = integers(array, np.int64)
    assert got.dtype == np.int64
    assert got.tolist() == array.to_numpy().tolist()


def test_integers_refuse_a_null() -> None:
    with pytest.raises(ValueError, match="1 nulls"):
        integers(pa.array([1, None], type=pa.int32()), np.int64)


@given(st.lists(st.none() | st.text(max_size=6), max_size=30), st.data())
def test_strings_both_ways(values: list[str | None], data: st.DataObject) -> None:
    built = string_array(values)
    assert built.equals(pa.array(values, type=pa.string()))
    offset, length = data.draw(slices(values))
    got = objects(built.slice(offset, length))
    want = built.slice(offset, length).to_numpy(zero_copy_only=False)
    assert got.dtype == want.dtype == np.object_
    assert got.tolist() == want.tolist()


@given(st.lists(st.none() | FLOATS, max_size=30))
def test_float_array_is_pa_arrays(values: list[float | None]) -> None:
    assert float_array(values).equals(pa.array(values, type=pa.float64()))


@given(st.lists(st.integers(0, 5), max_size=20))
def test_offsets_array_is_the_running_sum(lengths: list[int]) -> None:
    assert offsets_array(lengths).to_pylist() == [0, *np.cumsum(lengths, dtype=np.int64).tolist()]


@given(st.text(max_size=6))
def test_string_scalar_is_pa_scalar(value: str) -> None:
    assert string_scalar(value).equals(pa.scalar(value, type=pa.string()))
    assert pc.equal(string_array([value, None, "x"]), string_scalar(value)).to_pylist()[0] is True


POSITIONS = st.builds(
    Position,
    instrument=NAMES,
    quantity=FINITE,
    entry_price=st.none() | st.floats(1e-12, 1e12),
    venue=st.none() | NAMES,
)
ACCOUNTS = st.builds(
    Account,
    id=NAMES,
    collateral=st.dictionaries(NAMES, FINITE, max_size=3),
    positions=st.lists(POSITIONS, max_size=4),
    risk_tier=st.none() | st.floats(1e-6, 1000.0),
    mode=st.just("cross"),
    parent=st.none(),
) | st.builds(Account, id=NAMES, mode=st.just("isolated"), parent=NAMES, positions=st.lists(POSITIONS, max_size=2))


@given(st.lists(ACCOUNTS, max_size=6))
def test_accounts_table_is_from_pylists(accounts: list[Account]) -> None:
    rows = msgspec.to_builtins(accounts)
    want = pa.Table.from_pylist(rows, schema=ACCOUNTS_SCHEMA) if rows else ACCOUNTS_SCHEMA.empty_table()
    got = accounts_table(accounts)
    assert got.schema == ACCOUNTS_SCHEMA
    assert got.equals(want)
    assert got.to_pylist() == want.to_pylist()  # -0.0 and the map's order too
