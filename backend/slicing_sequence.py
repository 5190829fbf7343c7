"""Slice rules of sequence-model ops: matmul of two activations, gather, layer_norm, attention,
reduce.

matmul a[..., M, K] @ b[..., K, N] -> y[..., M, N] (both operands rank >= 2; batch axes
broadcast): a slice computing out box (batch box, rows m0..m1, columns n0..n1) reads a's batch
box (broadcast), rows m0..m1 and every K, and b's batch box, every K and columns n0..n1. Both
operands arrive through the routers as input ports; a constant operand is a parameter. A 1-D
operand (numpy promotes it and drops an axis) makes the product `whole` kernels.

gather (data, indices, axis a): y[i_<a, j..., i_>a] = data[i_<a, indices[j...], i_>a]. A slice
reads the indices box of its output's index axes and the data box of its other axes; along
`a` it reads data rows min(indices)..max(indices) when the indices are constant (the kernel
takes `indices - start`), every row otherwise. A constant table (an embedding) is a parameter
cropped to the box; constant indices are a parameter too.

layer_norm: the box spans the normalised axes (axis..), so a slice is computed alone; scale and
bias are whole parameters. add_layer_norm is the `layer_norm` kernel with a second port, the
residual, of the same box.

attention(q, k, v) {heads H, axis}: a slice computes a box of y: a range of batch entries,
of query positions (along `axis`) and of whole heads (the features axis cut in steps of d_v).
It reads q's box (the same batch and query positions, its heads' d_k columns) and k's and v's
boxes (the same batch entries, every key position, the heads' d_k and d_v columns), and computes
its heads alone (attrs: its head count and the axis).

reduce (a sequence model's mean over positions): a slice cuts the kept axes and reads every
element of the reduced ones: the input box is the output box on the kept axes and the whole
extent on the reduced axes (keepdims or not), reduced locally.
"""

from __future__ import annotations

import numpy as np

from backend.program import Box
from backend.slicing import (
    Layer,
    SliceSpec,
    _broadcast_box,
    _crop,
    _same_box_rule,
    _whole_inputs,
    read_operand,
)
from ir.errors import UnsupportedError


def _vector_operand(layer: Layer) -> bool:
    """A 1-D matmul operand (numpy promotes and drops an axis): computed whole."""
    return min(len(layer.in_shape(0)), len(layer.in_shape(1))) < 2


def matmul_split_axes(layer: Layer) -> list[tuple[int, int]]:
    """Columns, then rows, then batch axes (not axis 0)."""
    rank = len(layer.out_shape)
    if _vector_operand(layer):
        return [(a, 1) for a in range(1, rank)]
    return [(rank - 1, 1), (rank - 2, 1)] + [(a, 1) for a in range(1, rank - 2)]


def _matmul_operand_box(out_box: Box, shape: tuple[int, ...], keep: int) -> Box:
    """The box of one matmul operand: broadcast batch box, then the out box's rows (keep = -2)
    or columns (keep = -1) and the whole K axis."""
    batch = _broadcast_box(Box(out_box.start[:-2], out_box.stop[:-2]), shape[:-2])
    k_axis = shape[-1] if keep == -2 else shape[-2]
    kept = (out_box.start[keep], out_box.stop[keep])
    if keep == -2:
        return Box((*batch.start, kept[0], 0), (*batch.stop, kept[1], k_axis))
    return Box((*batch.start, 0, kept[0]), (*batch.stop, k_axis, kept[1]))


def matmul_rule(layer: Layer, out_box: Box) -> SliceSpec:
    """matmul of two operands (ports or constants) over the slice's rows and columns."""
    if _vector_operand(layer):
        return _whole_inputs(layer, out_box)
    inputs: list = []
    params: list = []
    operands: list = []
    for index, keep in ((0, -2), (1, -1)):
        box = _matmul_operand_box(out_box, layer.in_shape(index), keep)
        read_operand(layer, index, box, (inputs, params, operands))
    return SliceSpec("matmul", {"operands": tuple(operands)}, out_box, inputs, params)


def gather_rule(layer: Layer, out_box: Box) -> SliceSpec:
    """gather of a box: the indices box, the data box, constant operands as parameters."""
    data, indices = layer.node.inputs
    axis = int(layer.attrs["axis"])
    index_rank = indices.type.rank
    index_box = Box(out_box.start[axis : axis + index_rank], out_box.stop[axis : axis + index_rank])
    rows = (0, data.type.shape[axis])
    local_indices = None
    if indices.is_constant:
        chosen = _crop(np.asarray(indices.constant_data), index_box).astype(np.int64)
        chosen = np.where(chosen < 0, chosen + data.type.shape[axis], chosen)
        rows = (int(chosen.min(initial=0)), int(chosen.max(initial=0)) + 1)
        local_indices = chosen - rows[0]
    after = slice(axis + index_rank, None)
    data_box = Box(
        (*out_box.start[:axis], rows[0], *out_box.start[after]),
        (*out_box.stop[:axis], rows[1], *out_box.stop[after]),
    )
    inputs: list = []
    params: list = []
    operands: list = []
    read_operand(layer, 0, data_box, (inputs, params, operands))
    if local_indices is not None:
        params.append(("operand1", local_indices))
        operands.append(-2)
    else:
        inputs.append((1, index_box))
        operands.append(1)
    attrs = {"axis": axis, "operands": tuple(operands), "rows": data.type.shape[axis]}
    if not indices.is_constant and indices.producer is None:  # ids straight from the host
        attrs["indices_input"] = indices.name
    return SliceSpec("gather", attrs, out_box, inputs, params)


def layer_norm_split_axes(layer: Layer) -> list[tuple[int, int]]:
    """Axes before the normalised ones (not axis 0)."""
    return [(a, 1) for a in range(1, int(layer.attrs["axis"]))]


def layer_norm_rule(layer: Layer, out_box: Box) -> SliceSpec:
    """layer_norm of the box alone (of the sum of x and the residual for add_layer_norm);
    scale and bias whole."""
    ports = 2 if layer.op == "add_layer_norm" else 1
    params = [
        (("scale", "bias")[i - ports], np.asarray(v.constant_data))
        for i, v in enumerate(layer.node.inputs)
        if i >= ports
    ]
    attrs = {"axis": int(layer.attrs["axis"]), "epsilon": float(layer.attrs["epsilon"])}
    inputs = [(port, out_box) for port in range(ports)]
    return SliceSpec("layer_norm", attrs, out_box, inputs, params)


def attention_split_axes(layer: Layer) -> list[tuple[int, int]]:
    """Batch axes, then whole heads (the features in steps of d_v), then query positions
    (not axis 0)."""
    rank = len(layer.out_shape)
    axis = int(layer.attrs["axis"])
    d_v = layer.out_shape[-1] // int(layer.attrs["heads"])
    batch = [(a, 1) for a in range(1, rank - 1) if a != axis]
    return [*batch, (rank - 1, d_v), *([(axis, 1)] if axis > 0 else [])]


def attention_rule(layer: Layer, out_box: Box) -> SliceSpec:
    """attention of the slice's batch entries, query positions and heads (see the module
    docstring): q's box, and k's and v's boxes over every key position."""
    heads, axis = int(layer.attrs["heads"]), int(layer.attrs["axis"])
    d_v = layer.out_shape[-1] // heads
    first, last = out_box.start[-1] // d_v, out_box.stop[-1] // d_v
    if out_box.start[-1] % d_v or out_box.stop[-1] % d_v:
        raise UnsupportedError(f"'{layer.node.name}' (attention): {out_box} cuts a head")
    inputs = []
    for index in range(3):
        shape = layer.in_shape(index)
        width = shape[-1] // heads
        start = [*out_box.start[:-1], first * width]
        stop = [*out_box.stop[:-1], last * width]
        if index > 0:  # every key and value position
            start[axis], stop[axis] = 0, shape[axis]
        inputs.append((index, Box(tuple(start), tuple(stop))))
    return SliceSpec("attention", {"heads": last - first, "axis": axis}, out_box, inputs)


def _kept_axes(layer: Layer) -> list[int | None]:
    """Per input axis: the output axis it becomes, or None when it is reduced away."""
    reduced = set(layer.attrs["axes"])
    keep = bool(layer.attrs["keepdims"])
    mapping: list[int | None] = []
    position = 0
    for axis in range(len(layer.in_shape(0))):
        if axis in reduced and not keep:
            mapping.append(None)
            continue
        mapping.append(None if axis in reduced else position)
        position += 1
    return mapping


def reduce_split_axes(layer: Layer) -> list[tuple[int, int]]:
    """The output axes of kept input axes (not axis 0)."""
    return [(out, 1) for out in _kept_axes(layer) if out is not None and out > 0]


def reduce_rule(layer: Layer, out_box: Box) -> SliceSpec:
    """reduce of the slice's kept box over the whole reduced axes."""
    shape = layer.in_shape(0)
    mapping = _kept_axes(layer)
    start = tuple(0 if out is None else out_box.start[out] for out in mapping)
    stop = tuple(shape[a] if out is None else out_box.stop[out] for a, out in enumerate(mapping))
    attrs = {k: layer.attrs[k] for k in ("kind", "axes", "keepdims")}
    attrs["axes"] = tuple(attrs["axes"])
    return SliceSpec("reduce", attrs, out_box, [(0, Box(start, stop))])


def comparison_rule(layer: Layer, out_box: Box) -> SliceSpec:
    """equal, less: element-wise on float operands; a comparison of int8 activations (whose
    bool result has no quantisation to carry it) is refused."""
    quantised = [v.name for v in layer.node.inputs if v.type.dtype == "int8"]
    if quantised:
        raise UnsupportedError(
            f"'{layer.node.name}' ({layer.op}): comparing the int8 activation '{quantised[0]}' "
            "is not supported in int8 mode (comparisons of constants fold at compile time); "
            "compile with --mode float"
        )
    return _same_box_rule(layer, out_box)


RULES = {
    "equal": comparison_rule,
    "less": comparison_rule,
    "matmul": matmul_rule,
    "gather": gather_rule,
    "layer_norm": layer_norm_rule,
    "add_layer_norm": layer_norm_rule,
    "reduce": reduce_rule,
    "attention": attention_rule,
}
SPLIT_AXES = {
    "matmul": matmul_split_axes,
    "layer_norm": layer_norm_split_axes,
    "add_layer_norm": layer_norm_split_axes,
    "reduce": reduce_split_axes,
    "attention": attention_split_axes,
}
