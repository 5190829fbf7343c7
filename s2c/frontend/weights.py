"""Stored weights: initializers, sparse initializers and Constant tensors, decoded and checked.

`weight_array` decodes a TensorProto with `onnx.numpy_helper`; bytes that do not match the
tensor's element type and dimensions, or an element type numpy cannot hold, are an InputError
naming the tensor. Floating-point weights must be finite: a NaN or an infinity in a stored weight
is an InputError naming the tensor and the first bad element (a NaN reaches every output it
touches, and an infinite weight has no int8 scale), so a broken export fails at compile time,
not as NaN outputs on the machine.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import numpy_helper

from ir.errors import InputError
from s2c.frontend.dtypes import onnx_type_name

_ELEMENT_TYPES = frozenset(onnx.TensorProto.DataType.values()) - {onnx.TensorProto.UNDEFINED}


def weight_array(tensor: onnx.TensorProto, what: str) -> np.ndarray:
    """The tensor's data, checked; `what` names it in messages, e.g. "initializer 'W'".

    Raises:
        InputError: the data does not decode to the declared type and shape, or a float weight
            holds NaN or infinity.
    """
    if tensor.data_type not in _ELEMENT_TYPES:
        raise InputError(f"{what} has element type {tensor.data_type}, which ONNX does not define")
    try:
        array = numpy_helper.to_array(tensor)
    except (ValueError, TypeError, KeyError, IndexError, OverflowError) as exc:
        raise InputError(
            f"{what} ({onnx_type_name(tensor.data_type)}, dims {list(tensor.dims)}): its data "
            f"does not match its type and dims ({_first_line(exc)})"
        ) from None
    check_finite(array, what)
    return array


def sparse_weight_array(sparse: onnx.SparseTensorProto, what: str) -> np.ndarray:
    """A dense array of an ONNX sparse tensor (linear or coordinate indices), checked."""
    values = weight_array(sparse.values, what)
    indices = weight_array(sparse.indices, f"{what} indices")
    shape = tuple(int(d) for d in sparse.dims)
    if any(d < 0 for d in shape):
        raise InputError(f"{what} has a negative dimension: {list(shape)}")
    try:
        dense = np.zeros(shape, dtype=values.dtype)
        positions = indices.astype(np.int64)
        if positions.ndim == 1:
            dense.reshape(-1)[positions] = values
        else:
            dense[tuple(positions.T)] = values
    except (ValueError, IndexError, MemoryError) as exc:
        raise InputError(f"{what}: indices do not fit dims {list(shape)}: {exc}") from None
    return dense


def check_finite(array: np.ndarray, what: str) -> None:
    """Raise InputError when a floating-point array holds NaN or infinity."""
    floating = array.dtype.kind == "f" or (array.dtype.kind == "V" and "float" in array.dtype.name)
    if not floating or array.size == 0:
        return
    bad = ~np.isfinite(array.astype(np.float32) if array.dtype.kind == "V" else array)
    if not bad.any():
        return
    first = np.unravel_index(int(np.argmax(bad)), array.shape)
    value = array[first]
    where = f" at index {tuple(int(i) for i in first)}" if array.ndim else ""
    raise InputError(
        f"{what} holds {int(bad.sum())} NaN or infinite value(s), the first {value}{where}; "
        "s2c needs finite weights"
    )


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
