"""Compressed weight storage: a slice's weight as synaptic rows of non-zeros, when that is smaller.

Format `csr` (docs/image-format.md, "Sparse weights"). The weight W of a conv, dense, spike_conv
or spike_dense slice is seen as a matrix of R = shape[0] rows and C = product(shape[1:]) columns
(dense: row k = the synaptic row of input feature k; conv: row m = output channel m, columns its
input channels x kernel taps in row-major order). It is stored as three parameters:
- `weight_values`: the non-zeros, row by row, columns increasing (W's dtype: int8 or float32);
- `weight_columns`: the column of each non-zero, uint8 when C <= 256, else uint16;
- `weight_row_lengths`: uint16 [R], the non-zeros of each row;
and the attributes `weight_format` = "csr" and `weight_shape` = W's shape.
Choice: the backend stores W compressed only when its three parameters (each with its descriptor
entry and 16-byte alignment) take fewer SRAM bytes than W dense; the partitioner sizes slices by
these stored bytes, so a sparse layer fits more neurons per PE. Fallback: when C > 65535 a column
index or a row length would overflow 16 bits, and W stays dense (documented, never truncated);
so does a W of more than MAX_DENSE_WEIGHTS weights (it cannot fit a PE anyway).

Execution: the interpreter rebuilds W at load (a vectorised scatter of the values into zeros), so
sparse and dense storage of the same weights compute bit-identical results by construction; the
PE would instead walk the rows (`stats.performed_macs` counts that work: stored non-zeros).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np

from backend.partition import PARAM_BYTES, align
from backend.program import Kernel
from backend.slicing import SliceSpec
from ir.errors import InputError

SPARSE_OPCODES = frozenset({"conv", "dense", "spike_conv", "spike_dense"})
SPARSE_ROLES = ("weight_values", "weight_columns", "weight_row_lengths")
MAX_COLUMNS = 65535  # a uint16 column index and row length both hold 0..65535
# A csr weight decodes to at most this many weights (256 x a PE's 128 KiB SRAM): the reader
# allocates no more than that for an image, and a larger weight is stored dense (it cannot fit
# a PE then, so the partitioner cuts it smaller).
MAX_DENSE_WEIGHTS = 256 * 128 * 1024


def column_dtype(columns: int) -> np.dtype | None:
    """The narrowest index type for `columns` columns, or None when 16 bits overflow."""
    if columns <= 256:
        return np.dtype(np.uint8)
    if columns <= MAX_COLUMNS:
        return np.dtype(np.uint16)
    return None


def compress(weight: np.ndarray) -> list[tuple[str, np.ndarray]] | None:
    """The csr parameters of `weight`, or None when an index would overflow (stay dense)."""
    rows = weight.shape[0]
    matrix = weight.reshape(rows, -1)
    index_dtype = column_dtype(matrix.shape[1])
    if index_dtype is None or weight.size > MAX_DENSE_WEIGHTS:
        return None
    row_of, column_of = np.nonzero(matrix)  # row-major: rows in order, columns increasing
    lengths = np.bincount(row_of, minlength=rows).astype(np.uint16)
    return [
        ("weight_values", np.ascontiguousarray(matrix[row_of, column_of])),
        ("weight_columns", column_of.astype(index_dtype)),
        ("weight_row_lengths", lengths),
    ]


def stored_bytes(arrays: list[np.ndarray]) -> int:
    """SRAM bytes of parameters: a descriptor entry each, data aligned to 16 bytes."""
    return sum(PARAM_BYTES + align(array.nbytes) for array in arrays)


def store_sparse(spec: SliceSpec) -> SliceSpec:
    """Replace the slice's `weight` by its csr parameters when they take fewer bytes."""
    if spec.opcode not in SPARSE_OPCODES:
        return spec
    roles = [role for role, _ in spec.params]
    if "weight" not in roles:
        return spec
    weight = spec.params[roles.index("weight")][1]
    columns = column_dtype(math.prod(weight.shape[1:]))
    if columns is None or _values_and_columns_bytes(weight, columns) >= weight.nbytes:
        return spec  # the non-zeros and their columns alone take more than the dense weight
    compressed = compress(weight)
    if compressed is None or stored_bytes([a for _, a in compressed]) >= stored_bytes([weight]):
        return spec
    position = roles.index("weight")
    spec.params[position : position + 1] = compressed
    spec.attrs["weight_format"] = "csr"
    spec.attrs["weight_shape"] = tuple(int(d) for d in weight.shape)
    return spec


def _values_and_columns_bytes(weight: np.ndarray, columns: np.dtype) -> int:
    """A lower bound of the csr bytes (a count, cheaper than finding the non-zeros)."""
    return int(np.count_nonzero(weight)) * (weight.itemsize + columns.itemsize)


def is_sparse(kernel: Kernel) -> bool:
    return kernel.attrs.get("weight_format") == "csr"


def check_sparse_weight(kernel: Kernel, params: Mapping[str, np.ndarray]) -> None:
    """Load-time checks of a csr weight: every failure is an InputError naming the kernel."""
    name = f"{kernel.layer}#{kernel.slice_index} ({kernel.opcode})"
    shape = kernel.attrs.get("weight_shape")
    if kernel.attrs.get("weight_format") != "csr":
        raise InputError(f"image: {name}: weight_format {kernel.attrs.get('weight_format')!r}")
    if (
        not isinstance(shape, tuple)
        or not shape
        or any(not isinstance(d, int) or d < 1 for d in shape)
    ):
        raise InputError(f"image: {name}: weight_shape {shape!r} is not a shape")
    if kernel.opcode not in SPARSE_OPCODES or any(role not in params for role in SPARSE_ROLES):
        raise InputError(f"image: {name}: a csr weight needs {', '.join(SPARSE_ROLES)}")
    values, columns, lengths = (params[role] for role in SPARSE_ROLES)
    rows, width = shape[0], math.prod(shape[1:])
    if rows * width > MAX_DENSE_WEIGHTS:
        raise InputError(
            f"image: {name}: weight_shape {shape} holds more than {MAX_DENSE_WEIGHTS} weights"
        )
    if lengths.dtype != np.uint16 or lengths.shape != (rows,):
        raise InputError(f"image: {name}: weight_row_lengths must be uint16 [{rows}]")
    if columns.dtype != column_dtype(width) or columns.ndim != 1 or values.ndim != 1:
        raise InputError(f"image: {name}: weight_columns must be {column_dtype(width)} [nnz]")
    count = int(lengths.sum(dtype=np.int64))
    if not count == values.size == columns.size:
        raise InputError(
            f"image: {name}: row lengths sum to {count}, but {values.size} values and "
            f"{columns.size} columns are stored"
        )
    if count and int(columns.max()) >= width:
        raise InputError(f"image: {name}: a weight column is {int(columns.max())} >= {width}")
    row_of = np.repeat(np.arange(rows), lengths.astype(np.int64))
    position = row_of.astype(np.int64) * width + columns
    if np.any(np.diff(position) <= 0):
        raise InputError(f"image: {name}: weight columns not increasing within a row")


def decode(kernel: Kernel, params: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The kernel's parameters with a csr weight rebuilt as the dense `weight` (checked first)."""
    if not is_sparse(kernel):
        return dict(params)
    check_sparse_weight(kernel, params)
    shape = tuple(kernel.attrs["weight_shape"])
    values, columns, lengths = (params[role] for role in SPARSE_ROLES)
    width = math.prod(shape[1:])
    dense = np.zeros((shape[0], width), dtype=values.dtype)
    dense[np.repeat(np.arange(shape[0]), lengths.astype(np.int64)), columns] = values
    result = {role: array for role, array in params.items() if role not in SPARSE_ROLES}
    result["weight"] = dense.reshape(shape)
    return result
