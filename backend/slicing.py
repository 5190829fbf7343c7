"""Per-op slicing rules: what input a slice of a layer's output needs and how it computes.

A layer (an IR node) is cut into slices by boxes of its output. For each op this module gives:
- `split_axes(layer)`: output axes that may be cut, in order of preference, with their granule
  (a grouped conv cuts output channels only at group boundaries);
- `slice_layer(layer, out_box, channel_range)`: a `SliceSpec`: the input box per activation
  operand, the sliced constant parameters, and the kernel attributes in local terms.

Window ops (conv, pool) express their attributes locally: `pads` are the padding the slice sees
around its input box, so a conv slice is an ordinary conv of its input box. Pooling keeps the
global coordinates it needs for exact average divisors (`window_start`, `valid_lo`, `valid_hi`,
`input_start`), because with ceil_mode the last window may hang past the padding.

Ops without a specific rule take their whole activation operands and compute the whole op,
keeping their output box (`whole_inputs`); they can still be cut along any output axis.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from backend.kernels import reshape_sources
from backend.program import Box
from ir.graph import Node
from ir.registry import get_op
from passes.ann_to_snn import SpikingLayer


@dataclass(frozen=True)
class Layer:
    """An IR node as the partitioner sees it: attributes completed, operand shapes, constants."""

    node: Node
    attrs: dict[str, Any]
    spiking: SpikingLayer | None = None  # snn mode: how the node runs as neurons
    compress_weights: bool = True  # store sparse weights compressed when smaller

    @staticmethod
    def of(node: Node, spiking: SpikingLayer | None = None, compress_weights: bool = True) -> Layer:
        """The layer of `node`. A float weight without zeros is never smaller compressed, so
        its slices do not look (`backend.sparse_weights.store_sparse` would keep them dense);
        int8 and spiking weights are quantised first, which can make zeros."""
        float_layer = spiking is None and node.outputs[0].type.dtype == "float32"
        compress = compress_weights and (not float_layer or _weight_has_zeros(node))
        return Layer(node, get_op(node.op).with_defaults(node.attrs), spiking, compress)

    @property
    def op(self) -> str:
        return self.node.op

    @property
    def out_shape(self) -> tuple[int, ...]:
        return self.node.outputs[0].type.shape

    def in_shape(self, index: int) -> tuple[int, ...]:
        return self.node.inputs[index].type.shape


def _weight_has_zeros(node: Node) -> bool:
    if len(node.inputs) < 2 or not node.inputs[1].is_constant:
        return False
    return not np.all(node.inputs[1].constant_data)


@dataclass
class SliceSpec:
    """What one slice computes: op, local attributes, input boxes and parameter arrays."""

    opcode: str
    attrs: dict[str, Any]
    out_box: Box
    # (operand index, box) for each activation operand the slice reads
    inputs: list[tuple[int, Box]]
    params: list[tuple[str, np.ndarray]] = field(default_factory=list)


# -- helpers ------------------------------------------------------------------------------------
def _window_range(o0: int, o1: int, stride: int, pad: int, kernel: int, dilation: int):
    """Global input interval [lo, hi) that outputs o0..o1-1 of a sliding window touch."""
    lo = o0 * stride - pad
    hi = (o1 - 1) * stride - pad + (kernel - 1) * dilation + 1
    return lo, hi


def _clip(lo: int, hi: int, size: int) -> tuple[int, int]:
    return max(lo, 0), min(hi, size)


def _broadcast_box(out_box: Box, operand_shape: tuple[int, ...]) -> Box:
    """The box of a broadcast operand that an output box reads (numpy rules, right-aligned)."""
    offset = len(out_box.start) - len(operand_shape)
    start, stop = [], []
    for axis, dim in enumerate(operand_shape):
        if dim == 1:
            start.append(0)
            stop.append(1)
        else:
            start.append(out_box.start[axis + offset])
            stop.append(out_box.stop[axis + offset])
    return Box(tuple(start), tuple(stop))


def _crop(array: np.ndarray, box: Box) -> np.ndarray:
    """A view of the box of a constant (copied once, when the image is written)."""
    return array[tuple(slice(a, b) for a, b in zip(box.start, box.stop))]


def read_operand(layer: Layer, index: int, box: Box, into: tuple[list, list, list]) -> None:
    """Operand `index` read over `box`: an input port, or a constant cropped to `box` as the
    parameter `operand<index>`; appended to (inputs, params, operands) with its `operands`
    entry (index for a port, -1 - index for a parameter)."""
    inputs, params, operands = into
    value = layer.node.inputs[index]
    if value.is_constant:
        params.append((f"operand{index}", _crop(value.constant_data, box)))
        operands.append(-1 - index)
    else:
        inputs.append((index, box))
        operands.append(index)


def _operand(layer: Layer, index: int) -> np.ndarray:
    return layer.node.inputs[index].constant_data


# -- split axes ---------------------------------------------------------------------------------
def split_axes(layer: Layer) -> list[tuple[int, int]]:
    """Output axes a slice may cut, preferred first, each with its granule."""
    rank = len(layer.out_shape)
    op = layer.op
    if op == "conv":  # grouped convs: the partitioner picks chunks that respect groups
        return [(1, 1)] + [(2, 1)] * (rank > 2)
    if op in ("pool", "lrn", "activation", "batch_norm", "cast", "identity", "dropout"):
        return [(a, 1) for a in range(1, rank)]
    if op in ("global_pool", "instance_norm"):
        return [(1, 1)]
    if op == "dense":
        return [(rank - 1, 1)] + [(a, 1) for a in range(1, rank - 1)]
    if op == "softmax":
        return [(a, 1) for a in range(1, rank) if a != layer.attrs["axis"]]
    if op in SEQUENCE_SPLIT_AXES:
        return SEQUENCE_SPLIT_AXES[op](layer)
    if op in ("gru", "lstm"):
        from backend.recurrent import recurrent_split_axes

        return recurrent_split_axes(layer)
    return [(a, 1) for a in range(1, rank)]


# -- slice rules ----------------------------------------------------------------------------------
def slice_layer(
    layer: Layer, out_box: Box, in_channels: tuple[int, int] | None = None
) -> SliceSpec:
    """The slice of `layer` that computes `out_box`.

    `in_channels` = (i0, i1) makes a conv/dense slice compute a partial sum over those input
    channels (features), without bias or activation.
    """
    if in_channels is not None:
        spec = _partial_rule(layer, out_box, in_channels)
    elif layer.op in ("gru", "lstm"):  # float or int8: the rule makes both
        from backend.recurrent import recurrent_slice

        return recurrent_slice(layer, out_box)
    else:
        spec = _RULES.get(layer.op, _whole_inputs)(layer, out_box)
    if layer.node.outputs[0].type.dtype == "int8":
        from backend.quant_slicing import add_int8

        spec = add_int8(layer, spec, partial=in_channels is not None)
    if layer.spiking is not None:
        from backend.snn_slicing import add_snn

        spec = add_snn(layer, spec, layer.spiking, partial=in_channels is not None)
    if layer.compress_weights:
        from backend.sparse_weights import store_sparse

        spec = store_sparse(spec)
    return spec


def _conv_rule(layer: Layer, out_box: Box) -> SliceSpec:
    spec = _conv_geometry(layer, out_box, None)
    weight = layer.node.inputs[1].constant_data
    c0, c1 = out_box.start[1], out_box.stop[1]
    spec.params.append(("weight", weight[c0:c1]))
    if len(layer.node.inputs) == 3:
        spec.params.append(("bias", _operand(layer, 2)[c0:c1]))
    return spec


def _conv_geometry(layer: Layer, out_box: Box, in_channels: tuple[int, int] | None) -> SliceSpec:
    attrs = layer.attrs
    x_shape, w_shape = layer.in_shape(0), layer.in_shape(1)
    rank = len(w_shape) - 2
    group = attrs["group"]
    c0, c1 = out_box.start[1], out_box.stop[1]
    if in_channels is not None:
        i0, i1, local_group = in_channels[0], in_channels[1], 1
    elif group == 1:
        i0, i1, local_group = 0, x_shape[1], 1
    else:
        per_out, per_in = w_shape[0] // group, w_shape[1]
        g0, g1 = c0 // per_out, (c1 - 1) // per_out + 1
        i0, i1, local_group = g0 * per_in, g1 * per_in, g1 - g0
    start, stop, pads_begin, pads_end = [out_box.start[0], i0], [out_box.stop[0], i1], [], []
    for i in range(rank):
        axis = 2 + i
        lo, hi = _window_range(
            out_box.start[axis],
            out_box.stop[axis],
            attrs["strides"][i],
            attrs["pads"][i],
            w_shape[2 + i],
            attrs["dilations"][i],
        )
        clo, chi = _clip(lo, hi, x_shape[axis])
        start.append(clo)
        stop.append(max(chi, clo))
        pads_begin.append(clo - lo)
        pads_end.append(hi - max(chi, clo))
    local = {
        "strides": tuple(attrs["strides"]),
        "dilations": tuple(attrs["dilations"]),
        "pads": tuple(pads_begin + pads_end),
        "group": local_group,
        "activation": attrs["activation"] if in_channels is None else "none",
        "activation_params": tuple(attrs["activation_params"]) if in_channels is None else (),
    }
    return SliceSpec("conv", local, out_box, [(0, Box(tuple(start), tuple(stop)))])


def _dense_rule(layer: Layer, out_box: Box) -> SliceSpec:
    k = layer.in_shape(0)[-1]
    n0, n1 = out_box.start[-1], out_box.stop[-1]
    in_box = Box((*out_box.start[:-1], 0), (*out_box.stop[:-1], k))
    attrs = {
        "activation": layer.attrs["activation"],
        "activation_params": tuple(layer.attrs["activation_params"]),
    }
    spec = SliceSpec("dense", attrs, out_box, [(0, in_box)])
    spec.params.append(("weight", _operand(layer, 1)[:, n0:n1]))
    if len(layer.node.inputs) == 3:
        spec.params.append(("bias", _operand(layer, 2)[n0:n1]))
    return spec


def _partial_rule(layer: Layer, out_box: Box, in_channels: tuple[int, int]) -> SliceSpec:
    """A conv or dense slice over input channels [i0, i1): a partial sum, no bias, no activation."""
    i0, i1 = in_channels
    c0, c1 = (
        out_box.start[-1 if layer.op == "dense" else 1],
        out_box.stop[-1 if layer.op == "dense" else 1],
    )
    weight = layer.node.inputs[1].constant_data
    if layer.op == "dense":
        in_box = Box((*out_box.start[:-1], i0), (*out_box.stop[:-1], i1))
        attrs = {"activation": "none", "activation_params": ()}
        spec = SliceSpec("dense", attrs, out_box, [(0, in_box)])
        spec.params.append(("weight", weight[i0:i1, c0:c1]))
        return spec
    spec = _conv_geometry(layer, out_box, in_channels)
    spec.params.append(("weight", weight[c0:c1, i0:i1]))
    return spec


def partial_sum_slice(layer: Layer, out_box: Box, parts: int) -> SliceSpec:
    """The slice adding `parts` partial sums of `out_box`, then bias and activation."""
    axis = len(out_box.start) - 1 if layer.op == "dense" else 1
    c0, c1 = out_box.start[axis], out_box.stop[axis]
    attrs = {
        "activation": layer.attrs["activation"],
        "activation_params": tuple(layer.attrs["activation_params"]),
        "channel_axis": axis,
    }
    spec = SliceSpec("partial_sum", attrs, out_box, [(p, out_box) for p in range(parts)])
    if len(layer.node.inputs) == 3:
        spec.params.append(("bias", _operand(layer, 2)[c0:c1]))
    if layer.node.outputs[0].type.dtype == "int8":
        from backend.quant_slicing import add_int8

        spec = add_int8(layer, spec, partial=False)
    return spec


def _pool_rule(layer: Layer, out_box: Box) -> SliceSpec:
    attrs = layer.attrs
    x_shape = layer.in_shape(0)
    rank = len(attrs["kernel"])
    start, stop = list(out_box.start[:2]), list(out_box.stop[:2])
    window_start, valid_lo, valid_hi = [], [], []
    for i in range(rank):
        axis = 2 + i
        pad_begin, pad_end = attrs["pads"][i], attrs["pads"][rank + i]
        lo, hi = _window_range(
            out_box.start[axis],
            out_box.stop[axis],
            attrs["strides"][i],
            pad_begin,
            attrs["kernel"][i],
            attrs["dilations"][i],
        )
        clo, chi = _clip(lo, hi, x_shape[axis])
        start.append(clo)
        stop.append(max(chi, clo))
        window_start.append(lo)
        include = attrs["count_include_pad"] and attrs["kind"] == "avg"
        valid_lo.append(-pad_begin if include else 0)
        valid_hi.append(x_shape[axis] + pad_end if include else x_shape[axis])
    local = {
        "kind": attrs["kind"],
        "kernel": tuple(attrs["kernel"]),
        "strides": tuple(attrs["strides"]),
        "dilations": tuple(attrs["dilations"]),
        "window_start": tuple(window_start),
        "valid_lo": tuple(valid_lo),
        "valid_hi": tuple(valid_hi),
        "input_start": tuple(start[2:]),
    }
    return SliceSpec("pool", local, out_box, [(0, Box(tuple(start), tuple(stop)))])


def _lrn_rule(layer: Layer, out_box: Box) -> SliceSpec:
    size = layer.attrs["size"]
    channels = layer.in_shape(0)[1]
    lo = max(out_box.start[1] - (size - 1) // 2, 0)
    hi = min(out_box.stop[1] + math.ceil((size - 1) / 2), channels)
    in_box = Box(
        (out_box.start[0], lo, *out_box.start[2:]), (out_box.stop[0], hi, *out_box.stop[2:])
    )
    attrs = {k: layer.attrs[k] for k in ("size", "alpha", "beta", "bias")}
    attrs["channel_offset"] = out_box.start[1] - lo
    return SliceSpec("lrn", attrs, out_box, [(0, in_box)])


def _same_box_rule(layer: Layer, out_box: Box) -> SliceSpec:
    """Element-wise ops: each operand's box is the output box under broadcasting."""
    inputs, params = [], []
    for index, value in enumerate(layer.node.inputs):
        box = _broadcast_box(out_box, value.type.shape)
        if value.is_constant:
            params.append((f"operand{index}", _crop(value.constant_data, box)))
        else:
            inputs.append((index, box))
    attrs = {k: v for k, v in layer.attrs.items()}
    attrs["operands"] = tuple(
        i if not v.is_constant else -1 - i for i, v in enumerate(layer.node.inputs)
    )
    return SliceSpec(layer.op, attrs, out_box, inputs, params)


def _global_pool_rule(layer: Layer, out_box: Box) -> SliceSpec:
    shape = layer.in_shape(0)
    in_box = Box((*out_box.start[:2], *([0] * (len(shape) - 2))), (*out_box.stop[:2], *shape[2:]))
    return SliceSpec("global_pool", dict(layer.attrs), out_box, [(0, in_box)])


def _transpose_rule(layer: Layer, out_box: Box) -> SliceSpec:
    perm = layer.attrs["perm"]
    rank = len(perm)
    start, stop = [0] * rank, [0] * rank
    for out_axis, in_axis in enumerate(perm):
        start[in_axis] = out_box.start[out_axis]
        stop[in_axis] = out_box.stop[out_axis]
    return SliceSpec("transpose", dict(layer.attrs), out_box, [(0, Box(tuple(start), tuple(stop)))])


def _reshape_rule(layer: Layer, out_box: Box) -> SliceSpec:
    """Input bounding box of the elements the output box holds (row-major order is kept; a
    permute's elements found through its view and perm): the `reshape` kernel."""
    attrs: dict[str, Any] = {
        "in_shape": tuple(layer.in_shape(0)),
        "out_shape": tuple(layer.out_shape),
    }
    if layer.op == "permute":
        attrs.update(view=tuple(layer.attrs["view"]), perm=tuple(layer.attrs["perm"]))
    coords = reshape_sources(
        out_box, attrs["in_shape"], attrs["out_shape"], attrs.get("view"), attrs.get("perm")
    )
    in_box = Box(tuple(int(c.min()) for c in coords), tuple(int(c.max()) + 1 for c in coords))
    return SliceSpec("reshape", attrs, out_box, [(0, in_box)])


def _concat_rule(layer: Layer, out_box: Box) -> SliceSpec:
    axis = layer.attrs["axis"]
    inputs: list[tuple[int, Box]] = []
    params: list[tuple[str, np.ndarray]] = []
    operands: list[int] = []
    offsets: list[int] = []
    offset = 0
    for index, value in enumerate(layer.node.inputs):
        extent = value.type.shape[axis]
        lo, hi = max(out_box.start[axis], offset), min(out_box.stop[axis], offset + extent)
        if lo < hi:
            start = list(out_box.start)
            stop = list(out_box.stop)
            start[axis], stop[axis] = lo - offset, hi - offset
            box = Box(tuple(start), tuple(stop))
            offsets.append(lo - out_box.start[axis])
            read_operand(layer, index, box, (inputs, params, operands))
        offset += extent
    attrs = {"axis": axis, "offsets": tuple(offsets), "operands": tuple(operands)}
    return SliceSpec("concat", attrs, out_box, inputs, params)


def _slice_rule(layer: Layer, out_box: Box) -> SliceSpec:
    attrs = layer.attrs
    start, stop, local_starts, local_steps = [], [], [], []
    for axis in range(len(out_box.start)):
        first = attrs["starts"][axis] + out_box.start[axis] * attrs["steps"][axis]
        last = attrs["starts"][axis] + (out_box.stop[axis] - 1) * attrs["steps"][axis]
        lo, hi = min(first, last), max(first, last) + 1
        start.append(lo)
        stop.append(hi)
        local_starts.append(first - lo)
        local_steps.append(attrs["steps"][axis])
    local = {"starts": tuple(local_starts), "steps": tuple(local_steps)}
    return SliceSpec("slice", local, out_box, [(0, Box(tuple(start), tuple(stop)))])


def _local_rule(layer: Layer, out_box: Box) -> SliceSpec:
    """Ops computed on the box alone (softmax: the box spans the whole softmax axis)."""
    return SliceSpec(layer.op, dict(layer.attrs), out_box, [(0, out_box)])


def _whole_inputs(layer: Layer, out_box: Box) -> SliceSpec:
    """Fallback: read whole operands, compute the whole op, keep the output box."""
    inputs, params = [], []
    for index, value in enumerate(layer.node.inputs):
        if value.is_constant:
            params.append((f"operand{index}", value.constant_data))
        else:
            inputs.append((index, Box.full(value.type.shape)))
    attrs = dict(layer.attrs)
    attrs["ir_op"] = layer.op
    attrs["operands"] = tuple(
        i if not v.is_constant else -1 - i for i, v in enumerate(layer.node.inputs)
    )
    attrs["output_index"] = 0
    return SliceSpec("whole", attrs, out_box, inputs, params)


_RULES = {
    "conv": _conv_rule,
    "dense": _dense_rule,
    "pool": _pool_rule,
    "lrn": _lrn_rule,
    "global_pool": _global_pool_rule,
    "transpose": _transpose_rule,
    "reshape": _reshape_rule,
    "permute": _reshape_rule,
    "concat": _concat_rule,
    "slice": _slice_rule,
    "softmax": _local_rule,
}
for _op in (
    "add",
    "sub",
    "mul",
    "div",
    "max",
    "min",
    "pow",
    "prelu",
    "activation",
    "cast",
    "identity",
    "dropout",
    "where",
    "equal",
    "less",
):
    _RULES[_op] = _same_box_rule

# Sequence-model ops (matmul of activations, gather, layer_norm) have their own module.
from backend.slicing_sequence import RULES as _SEQUENCE_RULES  # noqa: E402
from backend.slicing_sequence import SPLIT_AXES as SEQUENCE_SPLIT_AXES  # noqa: E402

_RULES.update(_SEQUENCE_RULES)
