"""The IR op set: hardware-neutral dataflow ops with their attributes and shape rules.

Attributes are canonical: the frontend resolves ONNX defaults, negative axes, `auto_pad` and
shape tensors, so every op here sees explicit, fully-sized tuples. Shapes include the batch axis.
Spatial ops use channels-first layout: x is [N, C, *spatial].

Conventions:
- `pads` lists the padding at the start of every spatial axis, then at the end (ONNX order).
- Fused activations: `activation` names a function from `ir.activations`, `activation_params`
  its parameters; "none" means no activation.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ir.activations import check_activation
from ir.registry import AttrSpec, OpDef, register
from ir.types import TensorType

Types = list[TensorType]
Attrs = dict[str, Any]

ACTIVATION_ATTRS = {
    "activation": AttrSpec("str", "none"),
    "activation_params": AttrSpec("floats", ()),
}


def _same(types: Types, attrs: Attrs) -> Types:
    return [types[0].with_shape(types[0].shape)]


def _float_like(types: Types, shape: tuple[int, ...]) -> TensorType:
    return TensorType(tuple(int(d) for d in shape), types[0].dtype)


def _check_fused(attrs: Attrs) -> str | None:
    if attrs["activation"] == "none":
        return None
    return check_activation(attrs["activation"], attrs["activation_params"])


# -- spatial arithmetic -----------------------------------------------------------------------
def window_output_size(
    size: int, kernel: int, stride: int, pad_begin: int, pad_end: int, dilation: int, ceil: bool
) -> int:
    """Output length of a sliding window (conv or pool) along one axis.

    floor((size + pads - dilation*(kernel-1) - 1) / stride) + 1, or ceil(...) in ceil mode, where
    in ceil mode a last window that would start inside the end padding is dropped (as onnxruntime).
    """
    span = size + pad_begin + pad_end - dilation * (kernel - 1) - 1
    if span < 0:
        return 0
    if not ceil:
        return span // stride + 1
    out = -(-span // stride) + 1
    if (out - 1) * stride >= size + pad_begin:
        out -= 1
    return out


def _spatial_out(x: TensorType, kernel: tuple[int, ...], attrs: Attrs, ceil: bool) -> list[int]:
    rank = len(kernel)
    pads, strides, dilations = attrs["pads"], attrs["strides"], attrs["dilations"]
    return [
        window_output_size(
            x.shape[2 + i], kernel[i], strides[i], pads[i], pads[rank + i], dilations[i], ceil
        )
        for i in range(rank)
    ]


def _check_window_attrs(rank: int, attrs: Attrs) -> str | None:
    if rank < 1:
        return "needs at least one spatial axis"
    if len(attrs["strides"]) != rank or len(attrs["dilations"]) != rank:
        return f"strides and dilations need {rank} values"
    if len(attrs["pads"]) != 2 * rank:
        return f"pads needs {2 * rank} values"
    if any(s < 1 for s in attrs["strides"]) or any(d < 1 for d in attrs["dilations"]):
        return "strides and dilations must be >= 1"
    if any(p < 0 for p in attrs["pads"]):
        return "pads must be >= 0"
    return None


# -- conv -------------------------------------------------------------------------------------
def _conv_infer(types: Types, attrs: Attrs) -> Types:
    x, w = types[0], types[1]
    spatial = _spatial_out(x, w.shape[2:], attrs, ceil=False)
    return [_float_like(types, (x.shape[0], w.shape[0], *spatial))]


def _conv_verify(types: Types, attrs: Attrs) -> str | None:
    x, w = types[0], types[1]
    if x.rank != w.rank or x.rank < 3:
        return f"input rank {x.rank} and weight rank {w.rank} must match and be >= 3"
    reason = _check_window_attrs(x.rank - 2, attrs)
    if reason:
        return reason
    group = attrs["group"]
    if group < 1 or x.shape[1] % group or w.shape[0] % group:
        return f"group={group} must divide {x.shape[1]} input and {w.shape[0]} output channels"
    if w.shape[1] * group != x.shape[1]:
        return f"weight has {w.shape[1]} input channels per group, input has {x.shape[1]}/{group}"
    if len(types) == 3 and types[2].shape != (w.shape[0],):
        return f"bias shape {types[2].shape} must be ({w.shape[0]},)"
    return _check_fused(attrs)


register(
    OpDef(
        "conv",
        "N-D convolution (x, weight[M, C/group, *kernel], bias[M]?) with optional fused activation",
        (2, 3),
        {
            "strides": AttrSpec("ints", required=True),
            "pads": AttrSpec("ints", required=True),
            "dilations": AttrSpec("ints", required=True),
            "group": AttrSpec("int", 1),
            **ACTIVATION_ATTRS,
        },
        _conv_infer,
        _conv_verify,
    )
)


# -- dense and matmul -------------------------------------------------------------------------
def _dense_infer(types: Types, attrs: Attrs) -> Types:
    return [_float_like(types, (*types[0].shape[:-1], types[1].shape[1]))]


def _dense_verify(types: Types, attrs: Attrs) -> str | None:
    x, w = types[0], types[1]
    if w.rank != 2 or x.rank < 1:
        return f"weight must be [K, N] (got rank {w.rank})"
    if x.shape[-1] != w.shape[0]:
        return f"input has {x.shape[-1]} features, weight expects {w.shape[0]}"
    if len(types) == 3 and types[2].shape != (w.shape[1],):
        return f"bias shape {types[2].shape} must be ({w.shape[1]},)"
    return _check_fused(attrs)


register(
    OpDef(
        "dense",
        "fully connected: x[..., K] @ weight[K, N] + bias[N]? with optional fused activation",
        (2, 3),
        dict(ACTIVATION_ATTRS),
        _dense_infer,
        _dense_verify,
    )
)


def matmul_shape(a: tuple[int, ...], b: tuple[int, ...]) -> tuple[int, ...]:
    a2 = (1, *a) if len(a) == 1 else a
    b2 = (*b, 1) if len(b) == 1 else b
    batch = np.broadcast_shapes(a2[:-2], b2[:-2])
    shape = (*batch, a2[-2], b2[-1])
    if len(a) == 1:
        shape = (*shape[:-2], shape[-1])
    if len(b) == 1:
        shape = shape[:-1]
    return tuple(int(d) for d in shape)


def _matmul_verify(types: Types, attrs: Attrs) -> str | None:
    a, b = types[0].shape, types[1].shape
    k_a = a[-1]
    k_b = b[0] if len(b) == 1 else b[-2]
    if k_a != k_b:
        return f"inner dimensions differ: {a} @ {b}"
    try:
        matmul_shape(a, b)
    except ValueError:
        return f"batch dimensions do not broadcast: {a} @ {b}"
    return None


register(
    OpDef(
        "matmul",
        "matrix product of two activations, numpy broadcasting over leading axes",
        (2, 2),
        {},
        lambda types, attrs: [_float_like(types, matmul_shape(types[0].shape, types[1].shape))],
        _matmul_verify,
    )
)


# -- pooling ----------------------------------------------------------------------------------
def _pool_infer(types: Types, attrs: Attrs) -> Types:
    x = types[0]
    spatial = _spatial_out(x, attrs["kernel"], attrs, ceil=bool(attrs["ceil_mode"]))
    return [_float_like(types, (x.shape[0], x.shape[1], *spatial))]


def _pool_verify(types: Types, attrs: Attrs) -> str | None:
    if attrs["kind"] not in ("max", "avg"):
        return f"pool kind must be max or avg, got {attrs['kind']!r}"
    rank = types[0].rank - 2
    if len(attrs["kernel"]) != rank:
        return f"kernel needs {rank} values"
    return _check_window_attrs(rank, attrs)


register(
    OpDef(
        "pool",
        "max or average pooling over a sliding window",
        (1, 1),
        {
            "kind": AttrSpec("str", required=True),
            "kernel": AttrSpec("ints", required=True),
            "strides": AttrSpec("ints", required=True),
            "pads": AttrSpec("ints", required=True),
            "dilations": AttrSpec("ints", required=True),
            "ceil_mode": AttrSpec("int", 0),
            "count_include_pad": AttrSpec("int", 0),
        },
        _pool_infer,
        _pool_verify,
    )
)

register(
    OpDef(
        "global_pool",
        "max or average over all spatial positions: [N, C, *spatial] -> [N, C, 1, ...]",
        (1, 1),
        {"kind": AttrSpec("str", required=True)},
        lambda types, attrs: [
            _float_like(types, (*types[0].shape[:2], *([1] * (types[0].rank - 2))))
        ],
        lambda types, attrs: (
            None
            if attrs["kind"] in ("max", "avg") and types[0].rank >= 3
            else "global_pool needs kind max|avg and a spatial input"
        ),
    )
)


# -- element-wise -----------------------------------------------------------------------------
def _broadcast_infer(types: Types, attrs: Attrs) -> Types:
    shape = np.broadcast_shapes(*(t.shape for t in types))
    return [_float_like(types, tuple(shape))]


def broadcast_verify(types: Types, attrs: Attrs) -> str | None:
    try:
        np.broadcast_shapes(*(t.shape for t in types))
    except ValueError:
        return "operand shapes do not broadcast: " + ", ".join(str(t.shape) for t in types)
    return None


BINARY_OPS = {
    "add": "a + b",
    "sub": "a - b",
    "mul": "a * b",
    "div": "a / b",
    "max": "maximum(a, b)",
    "min": "minimum(a, b)",
    "pow": "a ** b",
    "prelu": "a if a >= 0 else slope * a",
}
for _name, _formula in BINARY_OPS.items():
    register(
        OpDef(
            _name,
            f"element-wise {_formula} with numpy broadcasting",
            (2, 2),
            {},
            _broadcast_infer,
            broadcast_verify,
        )
    )

register(
    OpDef(
        "activation",
        "element-wise activation function (see ir.activations)",
        (1, 1),
        {"function": AttrSpec("str", required=True), "params": AttrSpec("floats", ())},
        _same,
        lambda types, attrs: check_activation(attrs["function"], attrs["params"]),
    )
)


def _axis_verify(types: Types, attrs: Attrs) -> str | None:
    axis = attrs["axis"]
    if not 0 <= axis < types[0].rank:
        return f"axis {axis} outside rank {types[0].rank}"
    return None


register(
    OpDef(
        "softmax",
        "softmax (or log-softmax when log=1) along one axis",
        (1, 1),
        {"axis": AttrSpec("int", required=True), "log": AttrSpec("int", 0)},
        _same,
        _axis_verify,
    )
)

register(
    OpDef(
        "lrn",
        "local response normalisation across channels: x / (bias + alpha/size * sum x^2)^beta",
        (1, 1),
        {
            "size": AttrSpec("int", required=True),
            "alpha": AttrSpec("float", 1e-4),
            "beta": AttrSpec("float", 0.75),
            "bias": AttrSpec("float", 1.0),
        },
        _same,
        lambda types, attrs: None if types[0].rank >= 3 else "lrn needs [N, C, ...] input",
    )
)


def _channel_params_verify(types: Types, attrs: Attrs) -> str | None:
    channels = types[0].shape[1] if types[0].rank >= 2 else -1
    for t in types[1:]:
        if t.shape != (channels,):
            return f"per-channel parameter shape {t.shape} must be ({channels},)"
    return None


register(
    OpDef(
        "batch_norm",
        "inference batch normalisation (x, scale, bias, mean, var) per channel (axis 1)",
        (5, 5),
        {"epsilon": AttrSpec("float", 1e-5)},
        _same,
        _channel_params_verify,
    )
)

register(
    OpDef(
        "instance_norm",
        "instance normalisation (x, scale, bias) over spatial axes, per sample and channel",
        (3, 3),
        {"epsilon": AttrSpec("float", 1e-5)},
        _same,
        _channel_params_verify,
    )
)


# -- data movement ----------------------------------------------------------------------------
def _reshape_verify(types: Types, attrs: Attrs) -> str | None:
    if math.prod(attrs["shape"]) != types[0].size:
        return f"cannot reshape {types[0].shape} to {attrs['shape']}"
    return None


register(
    OpDef(
        "reshape",
        "row-major reshape to a fully known shape",
        (1, 1),
        {"shape": AttrSpec("ints", required=True)},
        lambda types, attrs: [types[0].with_shape(attrs["shape"])],
        _reshape_verify,
    )
)


def _permute_verify(types: Types, attrs: Attrs) -> str | None:
    view, perm, shape = attrs["view"], attrs["perm"], attrs["shape"]
    if math.prod(view) != types[0].size or math.prod(shape) != types[0].size:
        return f"cannot view {types[0].shape} as {view} or as {shape}"
    if sorted(perm) != list(range(len(view))):
        return f"perm {perm} is not a permutation of rank {len(view)}"
    return None


register(
    OpDef(
        "permute",
        "row-major reshape to `view`, axis permutation `perm`, row-major reshape to `shape`",
        (1, 1),
        {
            "view": AttrSpec("ints", required=True),
            "perm": AttrSpec("ints", required=True),
            "shape": AttrSpec("ints", required=True),
        },
        lambda types, attrs: [types[0].with_shape(attrs["shape"])],
        _permute_verify,
    )
)


def _transpose_verify(types: Types, attrs: Attrs) -> str | None:
    if sorted(attrs["perm"]) != list(range(types[0].rank)):
        return f"perm {attrs['perm']} is not a permutation of rank {types[0].rank}"
    return None


register(
    OpDef(
        "transpose",
        "axis permutation",
        (1, 1),
        {"perm": AttrSpec("ints", required=True)},
        lambda types, attrs: [types[0].with_shape(tuple(types[0].shape[p] for p in attrs["perm"]))],
        _transpose_verify,
    )
)


def _concat_infer(types: Types, attrs: Attrs) -> Types:
    axis = attrs["axis"]
    shape = list(types[0].shape)
    shape[axis] = sum(t.shape[axis] for t in types)
    return [types[0].with_shape(tuple(shape))]


def _concat_verify(types: Types, attrs: Attrs) -> str | None:
    reason = _axis_verify(types, attrs)
    if reason:
        return reason
    axis = attrs["axis"]
    for t in types[1:]:
        if t.rank != types[0].rank or any(
            a != b for i, (a, b) in enumerate(zip(t.shape, types[0].shape)) if i != axis
        ):
            return f"shapes {types[0].shape} and {t.shape} differ outside axis {axis}"
    return None


register(
    OpDef(
        "concat",
        "concatenation along one axis",
        (1, 1 << 16),
        {"axis": AttrSpec("int", required=True)},
        _concat_infer,
        _concat_verify,
    )
)


def _split_infer(types: Types, attrs: Attrs) -> Types:
    axis = attrs["axis"]
    out = []
    for size in attrs["sizes"]:
        shape = list(types[0].shape)
        shape[axis] = size
        out.append(types[0].with_shape(tuple(shape)))
    return out


def _split_verify(types: Types, attrs: Attrs) -> str | None:
    reason = _axis_verify(types, attrs)
    if reason:
        return reason
    if sum(attrs["sizes"]) != types[0].shape[attrs["axis"]]:
        return f"split sizes {attrs['sizes']} do not add up to {types[0].shape[attrs['axis']]}"
    return None


register(
    OpDef(
        "split",
        "split along one axis into pieces of the given sizes (one result per piece)",
        (1, 1),
        {"axis": AttrSpec("int", required=True), "sizes": AttrSpec("ints", required=True)},
        _split_infer,
        _split_verify,
        results=-1,
    )
)


def slice_length(start: int, stop: int, step: int) -> int:
    """len(range(start, stop, step)) for already-clamped bounds."""
    return len(range(start, stop, step))


def _slice_verify(types: Types, attrs: Attrs) -> str | None:
    rank = types[0].rank
    if not (len(attrs["starts"]) == len(attrs["stops"]) == len(attrs["steps"]) == rank):
        return f"slice needs starts, stops and steps for all {rank} axes"
    if any(s == 0 for s in attrs["steps"]):
        return "slice steps must be non-zero"
    return None


register(
    OpDef(
        "slice",
        "strided slice, one (start, stop, step) per axis, bounds already clamped",
        (1, 1),
        {
            "starts": AttrSpec("ints", required=True),
            "stops": AttrSpec("ints", required=True),
            "steps": AttrSpec("ints", required=True),
        },
        lambda types, attrs: [
            types[0].with_shape(
                tuple(
                    slice_length(a, b, c)
                    for a, b, c in zip(attrs["starts"], attrs["stops"], attrs["steps"])
                )
            )
        ],
        _slice_verify,
    )
)


def _pad_verify(types: Types, attrs: Attrs) -> str | None:
    if len(attrs["pads"]) != 2 * types[0].rank:
        return f"pads needs {2 * types[0].rank} values"
    if attrs["mode"] not in ("constant", "reflect", "edge"):
        return f"pad mode {attrs['mode']!r} is not constant, reflect or edge"
    return None


register(
    OpDef(
        "pad",
        "padding of every axis (begin..., end...; negative values crop)",
        (1, 1),
        {
            "pads": AttrSpec("ints", required=True),
            "mode": AttrSpec("str", "constant"),
            "value": AttrSpec("float", 0.0),
        },
        lambda types, attrs: [
            types[0].with_shape(
                tuple(
                    d + attrs["pads"][i] + attrs["pads"][i + types[0].rank]
                    for i, d in enumerate(types[0].shape)
                )
            )
        ],
        _pad_verify,
    )
)


def _reduce_infer(types: Types, attrs: Attrs) -> Types:
    axes = set(attrs["axes"])
    keep = bool(attrs["keepdims"])
    shape = [(1 if i in axes else d) for i, d in enumerate(types[0].shape)]
    if not keep:
        shape = [d for i, d in enumerate(types[0].shape) if i not in axes]
    return [types[0].with_shape(tuple(shape))]


register(
    OpDef(
        "reduce",
        "reduction (sum, mean, max, min, prod, sum_square, l1, l2) over the given axes",
        (1, 1),
        {
            "kind": AttrSpec("str", required=True),
            "axes": AttrSpec("ints", required=True),
            "keepdims": AttrSpec("int", 1),
        },
        _reduce_infer,
        lambda types, attrs: (
            None
            if attrs["kind"] in ("sum", "mean", "max", "min", "prod", "sum_square", "l1", "l2")
            and all(0 <= a < types[0].rank for a in attrs["axes"])
            else f"bad reduce kind {attrs['kind']!r} or axes {attrs['axes']}"
        ),
    )
)


def _gather_infer(types: Types, attrs: Attrs) -> Types:
    data, indices = types
    axis = attrs["axis"]
    shape = (*data.shape[:axis], *indices.shape, *data.shape[axis + 1 :])
    return [data.with_shape(shape)]


register(
    OpDef(
        "gather",
        "take entries of data (operand 0) along an axis at integer indices (operand 1)",
        (2, 2),
        {"axis": AttrSpec("int", 0)},
        _gather_infer,
        lambda types, attrs: (
            _axis_verify(types, attrs)
            or (None if types[1].dtype in ("int32", "int64") else "indices must be int32 or int64")
        ),
    )
)

register(
    OpDef(
        "expand",
        "broadcast to a shape (numpy rules)",
        (1, 1),
        {"shape": AttrSpec("ints", required=True)},
        lambda types, attrs: [types[0].with_shape(attrs["shape"])],
        lambda types, attrs: (
            None
            if tuple(np.broadcast_shapes(types[0].shape, attrs["shape"])) == attrs["shape"]
            else f"{types[0].shape} does not broadcast to {attrs['shape']}"
        ),
    )
)

register(
    OpDef(
        "tile",
        "repeat the tensor along each axis",
        (1, 1),
        {"repeats": AttrSpec("ints", required=True)},
        lambda types, attrs: [
            types[0].with_shape(tuple(d * r for d, r in zip(types[0].shape, attrs["repeats"])))
        ],
        lambda types, attrs: (
            None
            if len(attrs["repeats"]) == types[0].rank and min(attrs["repeats"], default=1) >= 0
            else f"repeats {attrs['repeats']} must give one count >= 0 per axis"
        ),
    )
)

for _name, _summary in {
    "identity": "copy of its operand (removed by canonicalisation)",
    "dropout": "dropout at inference: the identity (removed by canonicalisation)",
}.items():
    register(OpDef(_name, _summary, (1, 1), {}, _same))

register(
    OpDef(
        "cast",
        "element type conversion",
        (1, 1),
        {"to": AttrSpec("str", required=True)},
        lambda types, attrs: [TensorType(types[0].shape, attrs["to"])],
    )
)
