"""Arrow arrays to numpy and back without pyarrow's pandas layer.

pyarrow 26 imports pandas (0.2 s) the first time a process converts Python objects or numpy arrays to Arrow
(`pa.array`, `pa.scalar`, `Table.from_pylist`, a Python value given to a compute function) or Arrow to numpy
(`Array.to_numpy`, `np.asarray(array)`), whether or not any pandas object is involved. The portfolio reader uses
these instead, through Arrow buffers and `to_pylist`, so that `solvent margin` on a JSON portfolio loads no pandas
(tests/test_cli_lazy.py); they give the values pyarrow's conversions give (tests/test_arrow_numpy.py).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

import numpy as np
import pyarrow as pa
from numpy.typing import NDArray

Int = TypeVar("Int", bound=np.integer[Any])


def floats(array: pa.Array) -> NDArray[np.float64]:
    """float64 values, nulls as NaN: a read-only view where the array is float64 without nulls, else a new array
    (what `array.cast(pa.float64()).to_numpy(zero_copy_only=False)` gives)."""
    values = array.cast(pa.float64())
    view = _view(values)
    if not values.null_count:
        return view
    result = view.copy()
    result[~_bits(values.buffers()[0], values.offset, len(values))] = np.nan
    return result


def integers(array: pa.Array, dtype: type[Int]) -> NDArray[Int]:
    """An integer array without nulls (offsets, codes) as `dtype`: a read-only view where the types agree."""
    if array.null_count:
        raise ValueError(f"{array.type} array with {array.null_count} nulls where none may be")
    return np.asarray(_view(array), dtype=dtype)


def bools(array: pa.Array) -> NDArray[np.bool_]:
    """A boolean array as a new numpy bool array, nulls as False."""
    validity, data = array.buffers()
    values = _bits(data, array.offset, len(array))
    if array.null_count:
        values &= _bits(validity, array.offset, len(array))
    return values


def objects(array: pa.Array) -> NDArray[np.object_]:
    """Each element as a Python object (a str for strings), None for a null."""
    values = np.empty(len(array), dtype=object)
    values[:] = array.to_pylist()
    return values


def float_array(values: Sequence[float | None]) -> pa.Array:
    """A float64 Arrow array of `values`, None as null."""
    data = np.fromiter((0.0 if v is None else v for v in values), dtype=np.float64, count=len(values))
    return pa.Array.from_buffers(pa.float64(), len(values), [_validity(values), pa.py_buffer(data)])


def string_array(values: Sequence[str | None]) -> pa.Array:
    """A string Arrow array of `values`, None as null (more than 2 GiB of text fails pyarrow's cast to it)."""
    encoded = [b"" if v is None else v.encode() for v in values]
    offsets = np.zeros(len(encoded) + 1, dtype=np.int64)
    np.cumsum(np.fromiter(map(len, encoded), dtype=np.int64, count=len(encoded)), out=offsets[1:])
    buffers = [_validity(values), pa.py_buffer(offsets), pa.py_buffer(b"".join(encoded))]
    return pa.Array.from_buffers(pa.large_string(), len(values), buffers).cast(pa.string())


def string_scalar(value: str) -> pa.Scalar:
    """`value` as an Arrow string scalar, for a compute function (given a Python str, it converts through pandas)."""
    return string_array([value])[0]


def offsets_array(lengths: Sequence[int]) -> pa.Array:
    """int32 list offsets of consecutive runs of `lengths` elements."""
    offsets = np.zeros(len(lengths) + 1, dtype=np.int32)
    np.cumsum(np.asarray(lengths, dtype=np.int64), out=offsets[1:])
    return pa.Array.from_buffers(pa.int32(), len(offsets), [None, pa.py_buffer(offsets)])


def _view(array: pa.Array) -> NDArray[Any]:
    """The values buffer of a fixed-width numeric array, read-only as Arrow's data is (its null slots undefined)."""
    dtype = np.dtype(str(array.type))
    view = np.frombuffer(array.buffers()[1], dtype=dtype, count=len(array), offset=array.offset * dtype.itemsize)
    view.flags.writeable = False
    return view


def _bits(buffer: pa.Buffer, offset: int, length: int) -> NDArray[np.bool_]:
    """Bits offset..offset+length of an Arrow bitmap (least significant bit first) as bools."""
    packed = np.frombuffer(buffer, dtype=np.uint8)
    return np.unpackbits(packed, count=offset + length, bitorder="little")[offset:].astype(np.bool_)


def _validity(values: Sequence[object | None]) -> pa.Buffer | None:
    """Arrow's validity bitmap of `values` (None is null), or None when none is null."""
    valid = np.fromiter((value is not None for value in values), dtype=np.bool_, count=len(values))
    return None if valid.all() else pa.py_buffer(np.packbits(valid, bitorder="little"))
