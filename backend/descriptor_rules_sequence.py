"""Descriptor rules of the sequence-model opcodes: matmul, gather, layer_norm, attention, reduce.

Each rule's docstring states the kernel's contract (see `backend.descriptor_rules`).
"""

from __future__ import annotations

import math

import numpy as np

from backend.descriptor_fields import INT8_RANGE, Descriptor
from backend.descriptor_rules import LIMIT, _float_dtypes, _operands
from ir.ops import matmul_shape
from passes.fuse_attention import MAX_KEYS


def check_matmul(d: Descriptor) -> None:
    """matmul: a[..., M, K] @ b[..., K, N] -> y[..., M, N], batch axes broadcast, operands by
    `operands` (ports or parameters `operand<i>`). float: float32; int8 (both operands int8 on
    the MAC array): `a_zero_point`, `b_zero_point`, `multiplier`, `shift` and
    `output_zero_point`: y = zero_y + round((sum (a - zero_a)(b - zero_b)) * multiplier
    * 2^(shift - 31)), clamped to int8."""
    operands = _operands(d, None)
    if len(operands) != 2 or any(len(shape) < 2 for shape, _ in operands):
        d.fail("operands", [s for s, _ in operands], "matmul takes two operands of rank >= 2")
    (a, _), (b, _) = operands
    try:
        computed = matmul_shape(a, b)
    except ValueError:
        d.fail("operand shapes", (a, b), "batch axes do not broadcast")
    if a[-1] != b[-2]:
        d.fail("operand shapes", (a, b), "inner dimensions differ")
    d.work(int(np.prod(computed, dtype=np.float64)) * a[-1], "matmul products")
    if d.regime() == "int8":
        for name in ("a_zero_point", "b_zero_point", "output_zero_point"):
            d.int_attr(name, *INT8_RANGE)
        d.int_attr("multiplier", 0, (1 << 31) - 1)
        d.int_attr("shift", -31, 31)
        d.dtypes("int8", "int8")
        for role in d.params:
            d.param(role, "int8", d.params[role].shape)
    else:
        _float_dtypes(d)
    d.output_shape(computed)


def check_gather(d: Descriptor) -> None:
    """gather: y = take(data, indices, axis) with data and indices by `operands`; indices
    int32/int64 local to the data box; `rows`: the whole table's length along `axis`, against
    which ids arriving on a port are checked (-rows..rows-1)."""
    operands = _operands(d, None)
    if len(operands) != 2:
        d.fail("operands", len(operands), "gather takes data and indices")
    (data, dtype), (indices, index_dtype) = operands
    axis = d.int_attr("axis", 0, max(len(data) - 1, 0))
    rows = d.int_attr("rows", 1, LIMIT)
    if not data or data[axis] > rows:
        d.fail("data box", data, f"needs axis {axis} with at most {rows} rows")
    if index_dtype not in ("int32", "int64"):
        d.fail("indices dtype", index_dtype, "must be int32 or int64")
    if d.regime() == "int8":  # codes; an int8 data port is rescaled to the output's parameters
        d.int_attr("output_zero_point", *INT8_RANGE)
        if d.attr("operands")[0] >= 0:
            _rescale(d)
    if dtype != d.kernel.output.dtype:
        d.fail("output dtype", d.kernel.output.dtype, f"gather writes the data's {dtype}")
    d.output_shape((*data[:axis], *indices, *data[axis + 1 :]))


def _rescale(d: Descriptor) -> None:
    """`rescale` = (input zero point, multiplier, shift) of an int8 rescaling."""
    zero, multiplier, shift = d.ints_attr("rescale", 3, -LIMIT, LIMIT)
    if not (INT8_RANGE[0] <= zero <= INT8_RANGE[1] and 0 <= multiplier < 1 << 31):
        d.fail("attribute 'rescale'", (zero, multiplier, shift), "zero point or multiplier range")
    if not -31 <= shift <= 31:
        d.fail("attribute 'rescale'", (zero, multiplier, shift), "shift must be in -31..31")


def check_layer_norm(d: Descriptor) -> None:
    """layer_norm: over the box's axes `axis`..; parameters `scale` (and `bias`) float32 that
    broadcast to those axes; y = (x - mean) / sqrt(var + epsilon) * scale + bias. A second port
    (a residual, of the first port's box shape) is added to x first, in float32."""
    ports = d.ports(1, 2)
    shape = d.rank_at_least(0, 1)
    if len(ports) == 2 and ports[1].box.shape != shape:
        d.fail("port 1 box", ports[1].box.shape, f"must be port 0's {shape}")
    axis = d.int_attr("axis", 0, len(shape) - 1)
    d.float_attr("epsilon")
    d.roles(["scale"], ["bias"])
    for role in d.params:
        ref = d.params[role]
        if ref.dtype != "float32" or len(ref.shape) > len(shape) - axis:
            d.fail(f"parameter '{role}'", (ref.dtype, ref.shape), "float32 of the normalised axes")
        try:
            np.broadcast_shapes(ref.shape, shape[axis:])
        except ValueError:
            d.fail(f"parameter '{role}' shape", ref.shape, f"must broadcast to {shape[axis:]}")
    _float_dtypes(d)
    d.output_shape(shape)


def check_attention(d: Descriptor) -> None:
    """attention: ports q, k, v (float32, one rank >= 2), positions along `axis` (before the
    features axis), `heads` dividing q's and v's features; k has q's features and v's positions
    and both match q outside the positions and features axes; y has q's box with v's features:
    y_h = softmax(q_h k_h^T) v_h per head h, one query row at a time (the row of scores, 4
    bytes a key, on the stack: at most MAX_KEYS keys)."""
    q, k, v = (port.box.shape for port in d.ports(3))
    if not len(q) == len(k) == len(v) >= 2:
        d.fail("port boxes", (q, k, v), "attention takes q, k, v of one rank >= 2")
    axis = d.int_attr("axis", 0, len(q) - 2)
    heads = d.int_attr("heads", 1, max(q[-1], 1))
    if q[-1] % heads or v[-1] % heads:
        d.fail("attribute 'heads'", heads, f"must divide q's {q[-1]} and v's {v[-1]} features")
    if k[-1] != q[-1] or k[:-1] != v[:-1]:
        d.fail("port 1 box", k, f"must have q's {q[-1]} features and v's positions {v[:-1]}")
    if any(q[a] != k[a] for a in range(len(q) - 1) if a != axis):
        d.fail("port 1 box", k, f"must match q's {q} outside axis {axis} and the features")
    if k[axis] > MAX_KEYS:
        d.fail("port 1 box", k, f"at most {MAX_KEYS} key positions (a row of scores)")
    d.work(math.prod(q[:-1]) * k[axis] * (q[-1] + v[-1]), "attention products")
    _float_dtypes(d)
    d.output_shape((*q[:-1], v[-1]))


REDUCE_KINDS = ("sum", "mean", "max", "min", "prod", "sum_square", "l1", "l2")


def check_reduce(d: Descriptor) -> None:
    """reduce: `kind` over the box's `axes` (distinct, increasing), `keepdims` 0/1; the output
    box is the input box with those axes 1 (keepdims) or removed."""
    d.ports(1)
    shape = d.kernel.inputs[0].box.shape
    d.str_attr("kind", REDUCE_KINDS)
    axes = d.attr("axes")
    if not isinstance(axes, tuple) or not axes or len(axes) > len(shape):
        d.fail("attribute 'axes'", axes, f"1..{len(shape)} axes of the box")
    d.ints_attr("axes", len(axes), 0, max(len(shape) - 1, 0))
    if list(axes) != sorted(set(axes)):
        d.fail("attribute 'axes'", axes, "must be distinct and increasing")
    keep = d.int_attr("keepdims", 0, 1)
    _float_dtypes(d)
    if keep:
        d.output_shape(tuple(1 if a in axes else n for a, n in enumerate(shape)))
    else:
        d.output_shape(tuple(n for a, n in enumerate(shape) if a not in axes))


CHECKS = {
    "matmul": check_matmul,
    "gather": check_gather,
    "layer_norm": check_layer_norm,
    "reduce": check_reduce,
    "attention": check_attention,
}
