"""PE kernels of sequence-model ops: matmul of two activations, gather, layer_norm.

Arrays carry the leading samples axis S (see `backend.kernels`); parameters do not.
- matmul: y = a @ b over the slice's box, products summed in float64 and rounded once to
  float32 (as dense: equal bits however the layer is sliced); int8: the MAC array's int32
  sums of (a - a_zero) (b - b_zero), requantised (`backend.kernels_int8.matmul`).
- gather: y = take(data, indices, axis) with the slice's local indices (int8: codes, an int8
  data port rescaled to the result's parameters first); an index port (token ids from the host)
  is checked against the table's `rows` first: an id outside -rows..rows-1 is the
  user's InputError naming the graph input (`indices_input`), the position and the limit.
- layer_norm: the reference (`ir.reference.sequence.layer_norm`) over the box's trailing axes,
  of the sum of its two ports when it has two (add_layer_norm).
- attention: per head, softmax(q_h k_h^T) v_h over the slice's heads (`ir.reference.sequence.
  attention`), the products float32 BLAS sums as the hidden dense products.
- reduce: the reference reduction of the box over its reduced axes (they span the whole tensor).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from backend import kernels_int8 as int8
from ir.errors import InputError
from ir.reference.sequence import head_order, merge_order
from ir.reference.sequence import layer_norm as layer_norm_reference

if TYPE_CHECKING:
    from backend.kernels import PreparedKernel

ACCUMULATE = np.float64


def _operands(kernel: PreparedKernel, inputs: list, params: dict) -> list[np.ndarray]:
    """Operands in IR order: ports keep their samples axis, parameters get a unit one."""
    ports = iter(inputs)
    return [
        next(ports) if operand >= 0 else params[f"operand{-1 - operand}"][None]
        for operand in kernel.attrs["operands"]
    ]


def _aligned(array: np.ndarray, rank: int) -> np.ndarray:
    """[S, *box] with unit axes inserted after S so the box has `rank` axes (broadcasting)."""
    return array.reshape(array.shape[0], *([1] * (rank + 1 - array.ndim)), *array.shape[1:])


def matmul(kernel: PreparedKernel, inputs: list, params: dict, samples: int) -> np.ndarray:
    """a @ b per sample (batch axes broadcast), float64 sums rounded once, or int8."""
    rank = len(kernel.out_shape)
    a, b = _operands(kernel, inputs, params)
    if a.ndim != rank + 1 or b.ndim != rank + 1:
        a, b = _aligned(a, rank), _aligned(b, rank)
    if kernel.quantised:
        return int8.matmul(kernel.attrs, a, b)
    y = np.matmul(a.astype(ACCUMULATE), b.astype(ACCUMULATE)).astype(np.float32)
    if y.shape == (samples, *kernel.out_shape):
        return y
    return np.broadcast_to(y, (samples, *kernel.out_shape)).copy()


def _checked_ids(kernel: PreparedKernel, indices: np.ndarray) -> np.ndarray:
    """The ids of an index port, negative ones counted from the table's end, once they are
    checked against the table's rows."""
    rows = int(kernel.attrs["rows"])
    if indices.size == 0:
        return indices
    low, high = indices.min(), indices.max()
    if low >= 0 and high < rows:
        return indices
    if low >= -rows and high < rows:
        return np.where(indices < 0, indices + rows, indices)
    bad = np.argwhere((indices < -rows) | (indices >= rows))
    where = tuple(int(i) for i in bad[0])
    value = int(indices[where])
    box_start = kernel.inputs[-1].box.start
    position = tuple(p + s for p, s in zip(where[1:], box_start))
    name = kernel.attrs.get("indices_input", "") or f"indices of {kernel.kernel.layer}"
    raise InputError(
        f"input '{name}': value {value} at position {position} (sample {where[0]}) is outside"
        f" the compiled table of {rows} rows (0..{rows - 1})"
    )


def _check_local_indices(kernel: PreparedKernel, indices: np.ndarray, rows: int) -> None:
    """Constant indices (from the image) must address the data box: else the image is bad."""
    if indices.size and (indices.min() < 0 or indices.max() >= rows):
        raise InputError(
            f"image: kernel {kernel.kernel.layer}#{kernel.kernel.slice_index} (gather): "
            f"parameter 'operand1' holds indices {int(indices.min())}..{int(indices.max())}, "
            f"outside the data box's {rows} rows"
        )


def gather(kernel: PreparedKernel, inputs: list, params: dict, samples: int) -> np.ndarray:
    """take(data, indices, axis) per sample; a constant table is shared by all samples."""
    axis = int(kernel.attrs["axis"])
    operands = kernel.attrs["operands"]
    data, indices = _operands(kernel, inputs, params)
    if operands == (-1, 1) and axis == 0 and len(data[0]) == kernel.attrs["rows"]:
        return _embedding(kernel, data[0], indices)
    if operands[1] >= 0:
        indices = _checked_ids(kernel, indices)
    if kernel.attrs.get("int8") and operands[0] >= 0:
        zero, multiplier, shift = kernel.attrs["rescale"]
        data = int8.rescale(data, zero, multiplier, shift, kernel.attrs["output_zero_point"])
    if operands[1] < 0 and "indices_checked" not in kernel.cache:
        _check_local_indices(kernel, indices, data.shape[axis + 1])
        kernel.cache["indices_checked"] = np.ones(1)
    if operands[0] < 0:  # constant table: one take for every sample at once
        y = np.take(data[0], indices[0] if operands[1] < 0 else indices, axis=axis)
        if operands[1] < 0:
            return np.broadcast_to(y, (samples, *kernel.out_shape)).copy()
        return y if axis == 0 else np.ascontiguousarray(np.moveaxis(y, axis, 0))
    if operands[1] < 0:
        return np.take(data, indices[0], axis=axis + 1)
    return np.stack([np.take(data[s], indices[s], axis=axis) for s in range(samples)])


def _embedding(kernel: PreparedKernel, table: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Rows of a whole constant table for ids from a port: numpy's take checks the ids
    (-rows..rows-1, negative ones from the end) as it goes; an id outside is the user's
    InputError (`_checked_ids`)."""
    try:
        return np.take(table, ids, axis=0)
    except IndexError:
        _checked_ids(kernel, ids)
        raise


def layer_norm(kernel: PreparedKernel, inputs: list, params: dict, samples: int) -> np.ndarray:
    """Layer normalisation of each sample's box over its trailing axes (scale and bias
    widened to float64 once, as the reference widens them)."""
    if "scale" not in kernel.cache:
        for name in ("scale", "bias"):
            if name in params:
                kernel.cache[name] = params[name].astype(ACCUMULATE)
    names = ("scale", "bias") if "bias" in kernel.cache else ("scale",)
    x = inputs[0] if len(inputs) == 1 else np.add(inputs[0], inputs[1])
    operands = [x, *(kernel.cache[name] for name in names)]
    # the reference kernel itself: attributes were completed at load (`evaluate` would
    # complete them again on every firing of a fused add_layer_norm)
    return layer_norm_reference(kernel.sample_attrs("axis"), operands)[0]


def attention(kernel: PreparedKernel, inputs: list, params: dict, samples: int) -> np.ndarray:
    """Each sample's heads: softmax(q_h k_h^T) v_h, computed as the reference does (float32
    products; softmax shifted by the row's maximum), the heads merged back. The head splits are
    one reshape and one transpose of each port (`_head_views`: k's arrives transposed)."""
    views = kernel.layouts.get("head_views")
    if views is None:
        views = kernel.layouts["head_views"] = _head_views(kernel)
    q, k, v = (x.reshape(shape).transpose(axes) for x, (shape, axes) in zip(inputs, views))
    merged_shape, merge_axes = views[3]
    scores = np.matmul(q, k)
    scores -= np.maximum.reduce(scores, axis=-1, keepdims=True)
    weights = np.exp(scores, out=scores)
    weights /= np.add.reduce(weights, axis=-1, keepdims=True)
    return np.matmul(weights, v).transpose(merge_axes).reshape(merged_shape)


def _head_views(kernel: PreparedKernel) -> list:
    """(shape, axes) of the reshape and transpose that split each port [S, *box] into heads
    [S, batch..., H, L, d] (k's last two axes swapped: [.., H, d, L]), and of the transpose and
    reshape that merge the result back into [S, *output box] (`ir.reference.sequence`)."""
    heads, axis = int(kernel.attrs["heads"]), int(kernel.attrs["axis"]) + 1
    rank = len(kernel.out_shape) + 1
    views = []
    for index, port in enumerate(kernel.inputs):
        box = port.box.shape
        order = head_order(rank, axis, transposed=index == 1)
        views.append(((-1, *box[:-1], heads, box[-1] // heads), order))
    views.append(((-1, *kernel.out_shape), merge_order(rank, axis)))
    return views


def reduce(kernel: PreparedKernel, inputs: list, params: dict, samples: int) -> np.ndarray:
    """The reduction of each sample's box."""
    return kernel.reference("reduce", kernel.sample_attrs("axes"), [inputs[0]])


HANDLERS = {
    "matmul": matmul,
    "gather": gather,
    "layer_norm": layer_norm,
    "reduce": reduce,
    "attention": attention,
}
