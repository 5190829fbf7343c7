"""Element types: ONNX tensor types to IR dtypes, and ONNX arrays to IR constant data.

The IR computes in float32 and integers. Every ONNX floating type (float16, bfloat16, float64)
becomes float32, for activations and for weights alike; integer and bool types map one to one;
unsigned 16- and 32-bit constants widen to the next signed type. Strings, complex numbers and
8-bit floats have no IR type.
"""

from __future__ import annotations

import numpy as np
from onnx import TensorProto, helper

_IR_DTYPE_BY_ONNX: dict[int, str] = {
    TensorProto.FLOAT: "float32",
    TensorProto.FLOAT16: "float32",
    TensorProto.BFLOAT16: "float32",
    TensorProto.DOUBLE: "float32",
    TensorProto.INT8: "int8",
    TensorProto.UINT8: "uint8",
    TensorProto.INT16: "int16",
    TensorProto.INT32: "int32",
    TensorProto.INT64: "int64",
    TensorProto.BOOL: "bool",
}

_INTEGER_KINDS = "iub"


def onnx_type_name(elem_type: int) -> str:
    """The ONNX name of an element type, e.g. 'FLOAT16'."""
    try:
        return TensorProto.DataType.Name(elem_type)
    except ValueError:
        return f"type {elem_type}"


def ir_dtype(elem_type: int) -> str | None:
    """The IR dtype that holds an ONNX element type, or None when there is none."""
    return _IR_DTYPE_BY_ONNX.get(elem_type)


def ir_array(array: np.ndarray) -> np.ndarray | None:
    """`array` converted to an IR dtype (floats to float32), or None when it has no IR form."""
    kind = array.dtype.kind
    if array.dtype == np.float32:
        return array
    if kind == "f" or _is_extension_float(array):
        return array.astype(np.float32)
    if array.dtype in (np.uint16,):
        return array.astype(np.int32)
    if array.dtype in (np.uint32,):
        return array.astype(np.int64)
    if array.dtype == np.uint64:
        if array.size and int(array.max()) > np.iinfo(np.int64).max:
            return None
        return array.astype(np.int64)
    if kind in _INTEGER_KINDS:
        return array
    return None


def _is_extension_float(array: np.ndarray) -> bool:
    """True for bfloat16 and the like (ml_dtypes), which numpy reports with kind 'V'."""
    return array.dtype.kind == "V" and "float" in array.dtype.name


def onnx_elem_type(array: np.ndarray) -> int:
    """The ONNX element type of a numpy array (strings and objects are STRING)."""
    if array.dtype.kind in "OUS":
        return TensorProto.STRING
    return helper.np_dtype_to_tensor_dtype(array.dtype)
