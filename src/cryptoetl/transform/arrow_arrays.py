"""Columns between numpy and Arrow by their buffers. Pure: no I/O.

pyarrow's own conversions (`pa.array(numpy)`, `Array.to_numpy()`, a Python value as a scalar)
import pandas the first time one is used, which alone adds about 35 MB to the memory of a
process that never uses pandas. These helpers handle the few shapes the CSV path moves (flat
booleans, integers, floats and strings without nulls) from the buffers, and fall back to
pyarrow's conversion for anything else.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa

_TYPES: dict[np.dtype[Any], pa.DataType] = {
    np.dtype(np.int32): pa.int32(),
    np.dtype(np.int64): pa.int64(),
    np.dtype(np.float64): pa.float64(),
}
_DTYPES: dict[pa.DataType, np.dtype[Any]] = {arrow: dtype for dtype, arrow in _TYPES.items()}


def from_numpy(values: npt.NDArray[Any]) -> pa.Array:
    """A flat numpy array of booleans, int32, int64 or float64 as an Arrow array (no copy but
    for booleans, which Arrow packs into bits)."""
    if values.dtype == np.bool_:
        bits = np.packbits(values, bitorder="little")
        return pa.Array.from_buffers(pa.bool_(), len(values), [None, pa.py_buffer(bits)])
    kind = _TYPES.get(values.dtype)
    if kind is None or values.ndim != 1:
        return pa.array(values)
    values = np.ascontiguousarray(values)
    return pa.Array.from_buffers(kind, len(values), [None, pa.py_buffer(values)])


def _converted(values: pa.Array) -> npt.NDArray[Any]:
    converted: npt.NDArray[Any] = values.to_numpy(zero_copy_only=False)
    return converted


def to_numpy(values: pa.Array) -> npt.NDArray[Any]:
    """A flat Arrow array of booleans, int32, int64 or float64 without nulls as numpy."""
    if values.null_count:
        return _converted(values)
    buffer = values.buffers()[1]
    if pa.types.is_boolean(values.type):
        if not len(values):
            return np.zeros(0, np.bool_)
        bits = np.unpackbits(
            np.frombuffer(buffer, np.uint8), count=values.offset + len(values), bitorder="little"
        )
        return bits[values.offset :].astype(np.bool_)
    dtype = _DTYPES.get(values.type)
    if dtype is None:
        return _converted(values)
    if not len(values):
        return np.zeros(0, dtype)
    return np.frombuffer(buffer, dtype, count=len(values), offset=values.offset * dtype.itemsize)


def repeated(text: str, n: int) -> pa.Array:
    """`n` times the string `text` as an Arrow string array."""
    data = text.encode()
    offsets = np.arange(n + 1, dtype=np.int32) * len(data)
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(data * n))


def string_scalar(text: str) -> pa.Scalar:
    """`text` as an Arrow string scalar."""
    return repeated(text, 1)[0]
