"""Static counts of what a kernel does per firing: multiply-accumulates and weight bytes.

Dense counts are what the kernel would do with every weight stored; performed counts are what it
does with the weights it stores: a csr weight (`backend.sparse_weights`) is walked row by row, so
its MACs scale with the stored non-zeros, nnz / (rows x columns) of the dense count (exact for
dense layers; for convs it ignores that taps over the padding are skipped either way). A weight
stored dense runs every MAC on the MAC array, zero or not.
"""

from __future__ import annotations

import math

import numpy as np

from backend.program import Kernel
from backend.recurrent import MATRIX_ROLES, RECURRENT_OPCODES, recurrent_macs
from backend.sparse_weights import SPARSE_ROLES

WEIGHT_OPCODES = ("conv", "dense")


def weight_shape(kernel: Kernel) -> tuple[int, ...] | None:
    """The dense shape of the kernel's weight (stored dense or csr), or None without one."""
    if kernel.attrs.get("weight_format") == "csr":
        return tuple(kernel.attrs["weight_shape"])
    ref = next((p for p in kernel.params if p.role == "weight"), None)
    return None if ref is None else ref.shape


def dense_mac_count(kernel: Kernel) -> int:
    """Multiply-accumulates per firing (per sample) with every weight, zero or not.

    conv: output elements x (input channels per group x kernel volume);
    dense: output elements x input features; matmul: output elements x the inner dimension K;
    attention: query rows x keys x (q's and v's features), the two products of every head;
    gru / lstm: steps x batch x the weights of its gates (`backend.recurrent.recurrent_macs`);
    other kernels: 0 (they run on the ARM core).
    """
    if kernel.opcode in RECURRENT_OPCODES:
        return recurrent_macs(kernel)
    if kernel.opcode == "matmul":
        return kernel.output.box.size * _matmul_inner(kernel)
    if kernel.opcode == "attention":
        q, k, v = (port.box.shape for port in kernel.inputs)
        return math.prod(q[:-1]) * k[int(kernel.attrs["axis"])] * (q[-1] + v[-1])
    shape = weight_shape(kernel)
    if kernel.opcode not in WEIGHT_OPCODES or shape is None:
        return 0
    out = kernel.output.box.size
    return out * (math.prod(shape[1:]) if kernel.opcode == "conv" else shape[0])


def _matmul_inner(kernel: Kernel) -> int:
    """K of a matmul: the last axis of its first operand (a port, or the parameter operand0)."""
    operands = kernel.attrs.get("operands", (0,))
    first = operands[0] if isinstance(operands, tuple) and operands else 0
    if isinstance(first, int) and first < 0:
        ref = next((p for p in kernel.params if p.role == "operand0"), None)
        return ref.shape[-1] if ref is not None and ref.shape else 0
    return kernel.inputs[0].box.shape[-1] if kernel.inputs and kernel.inputs[0].box.shape else 0


def mac_count(kernel: Kernel) -> int:
    """Multiply-accumulates performed per firing: the dense count scaled by stored non-zeros."""
    dense = dense_mac_count(kernel)
    if kernel.attrs.get("weight_format") != "csr" or dense == 0:
        return dense
    values = next(p for p in kernel.params if p.role == "weight_values")
    return dense * math.prod(values.shape) // math.prod(weight_shape(kernel) or (1,))


def weight_bytes(kernel: Kernel) -> tuple[int, int]:
    """(dense bytes, stored bytes) of the kernel's weight; (0, 0) without one. A gru / lstm
    kernel's weights are its gate matrices (w, r and a GRU's reset gate), always stored dense."""
    if kernel.opcode in RECURRENT_OPCODES:
        matrix_bytes = sum(p.nbytes for p in kernel.params if p.role in MATRIX_ROLES)
        return matrix_bytes, matrix_bytes
    shape = weight_shape(kernel)
    if shape is None:
        return 0, 0
    stored = [p for p in kernel.params if p.role == "weight" or p.role in SPARSE_ROLES]
    values = next(p for p in stored if p.role in ("weight", "weight_values"))
    return math.prod(shape) * np.dtype(values.dtype).itemsize, sum(p.nbytes for p in stored)
