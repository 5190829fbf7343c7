"""The PE kernels: what one kernel descriptor computes from its input buffers and parameters.

Every array carries a leading samples axis S (S independent inferences run together), then the
axes of its box. A kernel's attributes are local to its slice (see `backend.slicing`): a conv
slice is an ordinary conv of its input box with the padding the slice sees; a pool slice knows
the global window positions so that average divisors are exact at the edges.

Float kernels compute in float32 with the IR's reference semantics (`ir.reference`), which is
what the Cortex-M4F's single-precision FPU computes up to summation order.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from backend import kernels_int8 as int8
from backend.conv_gemm import conv_units
from backend.program import Box, Kernel
from ir.errors import InternalError
from ir.reference import KERNELS as REFERENCE_KERNELS
from ir.reference import apply_activation, evaluate
from ir.reference.normalise import softmax as softmax_reference
from ir.registry import OPS, get_op

Arrays = Sequence[np.ndarray]
# Float conv and dense products sum in float64 and round once to float32, so equal sums give
# equal bits whatever the slicing, batching or BLAS blocking; the interpreter sets a hidden
# layer's (not the head's, `backend.layer_plans.head_kernels`) to float32, as the PE's
# single-precision FPU computes (BLAS blocking changes the last bits; see docs/numerics.md).
ACCUMULATE = np.float64
HIDDEN_ACCUMULATE = np.float32


class PreparedKernel:
    """A kernel ready to fire: handler chosen and attributes completed once, at load time."""

    def __init__(self, kernel: Kernel) -> None:
        self.kernel = kernel
        self.handler = _HANDLERS.get(kernel.opcode, _same_box)
        op = str(kernel.attrs.get("ir_op", kernel.opcode))
        # The op's defaults completed; slice-local extras (window_start, offsets, ...) kept.
        self.attrs = get_op(op).with_defaults(kernel.attrs) if op in OPS else dict(kernel.attrs)
        self.op = op
        self.quantised = bool(self.attrs.get("int8"))
        self.float_island = bool(self.attrs.get("float_island"))
        self.out_shape = kernel.output.box.shape
        self.output = kernel.output
        self.inputs = kernel.inputs
        self._wide: list[np.ndarray] | None = None
        self.accumulate: type[np.floating] = ACCUMULATE  # float conv/dense products
        self.int8_cache: dict[str, np.ndarray] = {}  # int8 conv/dense: the converted weight
        self.cache: dict[str, np.ndarray] = {}  # arrays a handler derives once from attributes
        self.layouts: dict[str, list] = {}  # shapes and axis orders a handler derives once
        self._sample_attrs: dict | None = None

    def sample_attrs(self, key: str) -> dict:
        """The attributes with the axis (or axes) attribute `key` counted from the samples
        axis, as the reference sees [S, *box] (made on the first firing)."""
        if self._sample_attrs is None:
            value = self.attrs[key]
            shifted = int(value) + 1 if isinstance(value, int) else tuple(int(a) + 1 for a in value)
            self._sample_attrs = dict(self.attrs, **{key: shifted})
        return self._sample_attrs

    def wide(self, params: dict[str, np.ndarray]) -> list[np.ndarray]:
        """Weight (and bias) in the accumulation type, converted once."""
        if self._wide is None:
            self._wide = [array.astype(self.accumulate) for array in _weight_and_bias(params)]
        return self._wide

    def reference(self, op: str, attrs: dict, operands: list[np.ndarray]) -> np.ndarray:
        """The one result of IR op `op` (`ir.reference`). For the kernel's own op, `attrs` (its
        attributes, completed at load, with slice-local changes) go straight to the op's
        reference kernel: completing them again on every firing is the cost of a small one."""
        if op != self.op:
            return evaluate(op, attrs, operands)[0]
        return REFERENCE_KERNELS[op](attrs, operands)[0]

    def __call__(self, inputs: Arrays, params: dict[str, np.ndarray]) -> np.ndarray:
        """Compute the kernel's output box, shaped (S, *output box shape)."""
        samples = inputs[0].shape[0] if inputs else 1
        return self.checked(self.compute(list(inputs), params, samples))

    def compute(self, inputs: list, params: dict[str, np.ndarray], samples: int) -> np.ndarray:
        """The kernel's result for `samples` samples (unchecked: see `checked`)."""
        if self.float_island:
            return self._float_island(inputs, params, samples)
        return self.handler(self, inputs, params, samples)

    def checked(self, result: np.ndarray) -> np.ndarray:
        """`result`, once it has the output box's shape (else an InternalError)."""
        if result.shape[1:] != self.out_shape:
            kernel = self.kernel
            raise InternalError(
                f"kernel {kernel.layer}#{kernel.slice_index} ({kernel.opcode}) computed "
                f"{result.shape[1:]}, its output box is {self.out_shape}"
            )
        return result

    def call_stacked(self, inputs: Arrays, params: dict[str, np.ndarray], units: int) -> np.ndarray:
        """Fire `units` parameter sets at once (see `backend.schedule`).

        `inputs` hold the units' buffers one after another along the samples axis; `params` hold
        the units' weight (and bias), in the accumulation type, stacked on a new leading axis.
        """
        handler = _STACKED[self.kernel.opcode]
        result = handler(self, inputs[0], params, units)
        if result.shape[1:] != self.out_shape:
            raise InternalError(
                f"kernel {self.kernel.layer}#{self.kernel.slice_index} ({self.kernel.opcode}) "
                f"computed {result.shape[1:]} for stacked units, its output box is {self.out_shape}"
            )
        return result

    def call_shared(
        self, inputs: Arrays, params: dict[str, np.ndarray], sharing: int
    ) -> np.ndarray:
        """Fire parameter sets that read the same inputs, `sharing` at a time, as wider layers.

        `inputs` hold the buffers of each input class one after another along the samples axis;
        `params` hold, per class, its `sharing` units' weight (and bias), in the accumulation
        type, joined along the output channels (conv: classes stacked on a leading axis; dense:
        one class). The result holds the class's unit 0's outputs for each of its buffers, then
        unit 1's, ..., then the next class's.
        """
        handler = _SHARED[self.kernel.opcode]
        wide = handler(self, inputs[0], params)  # [X B, *box with `sharing` times the channels]
        axis = 2 if self.kernel.opcode == "conv" else wide.ndim - 1
        classes = params["weight"].shape[0] if self.kernel.opcode == "conv" else 1
        rows, channels = wide.shape[0] // classes, wide.shape[axis] // sharing
        split = wide.reshape(
            classes, rows, *wide.shape[1:axis], sharing, channels, *wide.shape[axis + 1 :]
        )
        # the units' axis (axis + 1) moves next to the classes: [X, V, B, ...]
        order = (0, axis + 1, *range(1, axis + 1), *range(axis + 2, split.ndim))
        return split.transpose(order).reshape(-1, *self.out_shape)

    def _float_island(self, inputs: list, params: dict, samples: int) -> np.ndarray:
        """int8 in, fp32 compute (the float kernel), int8 out: dequantise, run, quantise."""
        attrs = self.attrs
        operands = attrs.get("operands", tuple(range(len(inputs))))
        ports = [o for o in operands if o >= 0] or list(range(len(inputs)))
        floats = [
            x
            if x.dtype == np.bool_  # a condition (where) is not quantised
            else int8.to_float(x, attrs["input_scales"][o], attrs["input_zero_points"][o])
            for x, o in zip(inputs, ports)
        ]
        result = self.handler(self, floats, params, samples)
        return int8.to_int8(result, attrs["output_scale"], attrs["output_zero_point"])


def run_kernel(kernel: Kernel, inputs: Arrays, params: dict[str, np.ndarray]) -> np.ndarray:
    """Fire a kernel once (prepares it first; the interpreter prepares kernels at load)."""
    return PreparedKernel(kernel)(inputs, params)


# -- helpers ----------------------------------------------------------------------------------
def _weight_and_bias(params: dict[str, np.ndarray]) -> list[np.ndarray]:
    return [params["weight"], params["bias"]] if "bias" in params else [params["weight"]]


def _merge_samples(x: np.ndarray) -> np.ndarray:
    """(S, N, ...) -> (S*N, ...): samples become extra batch entries."""
    return x.reshape(x.shape[0] * x.shape[1], *x.shape[2:])


def _split_samples(y: np.ndarray, samples: int) -> np.ndarray:
    return y.reshape(samples, y.shape[0] // samples, *y.shape[1:])


# -- kernels --------------------------------------------------------------------------------------
def _conv(kernel: PreparedKernel, inputs: list, params: dict, samples: int) -> np.ndarray:
    if kernel.attrs.get("int8"):
        return _split_samples(
            int8.conv(kernel.attrs, _merge_samples(inputs[0]), params, kernel.int8_cache), samples
        )
    x = _merge_samples(inputs[0])
    weight, *bias = kernel.wide(params)
    if _depthwise(kernel.attrs, weight):
        (y,) = evaluate("conv", kernel.attrs, [x.astype(kernel.accumulate), weight, *bias])
        return _split_samples(y.astype(np.float32, copy=False), samples)
    y = conv_units(x, weight[None], bias[0][None] if bias else None, kernel.attrs)
    return _split_samples(y, samples)


def _depthwise(attrs: dict, weight: np.ndarray) -> bool:
    """One input channel per group (weight [M, 1, *K]): `ir.reference.conv` sums over the taps."""
    return int(attrs["group"]) > 1 and weight.shape[1] == 1


def arrived_rows(kernel: PreparedKernel, x: np.ndarray) -> np.ndarray | None:
    """An event-based dense kernel's synaptic rows to process: the inputs k that arrived
    (x[..., k] differs from the zero its port starts from) in any sample fired together (for one
    sample, exactly its arrived inputs). None for a kernel with dense transmission."""
    zeros = kernel.attrs.get("event_input_zeros")
    if zeros is None:
        return None
    flat = x.reshape(-1, x.shape[-1])
    return np.flatnonzero((flat != zeros[0]).any(axis=0))


def _dense(kernel: PreparedKernel, inputs: list, params: dict, samples: int) -> np.ndarray:
    """y = x @ W + b; event-based: y = x[arrived] @ W[arrived rows] + b (an input that did not
    arrive is the zero of its port and adds nothing, so both give the same result).

    Float: `ir.reference.conv.dense` on x, W and b in the kernel's accumulation type (the
    samples and rows of x as one [M, K] product), then the fused activation, rounded once."""
    x = inputs[0]
    rows = arrived_rows(kernel, x)
    if kernel.quantised:
        return int8.dense(kernel.attrs, x, params, kernel.int8_cache, rows)
    weight, *bias = kernel.wide(params)
    if rows is not None:
        x, weight = x[..., rows], weight[rows]
    return _dense_float(kernel.attrs, x, weight, bias)


def _dense_float(attrs: dict, x: np.ndarray, weight: np.ndarray, bias: list) -> np.ndarray:
    """x[..., K] @ weight[K, N] (+ bias[N]) and the fused activation, in the weight's type
    (float64 or float32), rounded once to float32."""
    y = np.matmul(x.reshape(-1, x.shape[-1]), weight)
    if bias:
        y += bias[0]
    y = _activate(attrs, y)
    return y.astype(np.float32, copy=False).reshape(*x.shape[:-1], weight.shape[1])


def _activate(attrs: dict, y: np.ndarray) -> np.ndarray:
    """The fused activation of a float conv or dense (`ir.reference.apply_activation`; ReLU
    in place)."""
    function = attrs["activation"]
    if function == "none":
        return y
    if function == "relu":
        return np.maximum(y, 0.0, out=y)
    return apply_activation(function, tuple(attrs["activation_params"]), y)


def _partial_sum(kernel: PreparedKernel, inputs: list, params: dict, samples: int) -> np.ndarray:
    if kernel.attrs.get("int8"):
        return int8.partial_sum(kernel.attrs, inputs, params)
    total = inputs[0].copy()
    for part in inputs[1:]:
        total += part
    if "bias" in params:
        axis = int(kernel.attrs["channel_axis"]) + 1
        shape = [1] * total.ndim
        shape[axis] = -1
        total += params["bias"].reshape(shape)
    function = str(kernel.attrs["activation"])
    if function == "none":
        return total
    return apply_activation(function, tuple(kernel.attrs["activation_params"]), total)


def _pool(kernel: PreparedKernel, inputs: list, params: dict, samples: int) -> np.ndarray:
    return pool(kernel.attrs, inputs[0], kernel.output.box.shape)


def pool(attrs: dict, x: np.ndarray, out_shape: tuple[int, ...]) -> np.ndarray:
    """Sliding-window max or average in global coordinates, over x (samples, *box).

    Output o along a spatial axis reads positions p = window_start + o*stride + t*dilation for
    taps t. Data exists where input_start <= p < input_start + extent; an average divides by the
    number of taps with valid_lo <= p < valid_hi (padding counted or not), as onnxruntime does.
    """
    quantised = bool(attrs.get("int8"))
    if quantised:  # int8 max pooling on the codes; averages run as fp32 islands
        x = x.astype(np.float64)
    rank = len(attrs["kernel"])
    is_max = attrs["kind"] == "max"
    fill = -np.inf if is_max else 0.0
    windows, divisors = [], []
    for i in range(rank):
        stride, dilation = attrs["strides"][i], attrs["dilations"][i]
        taps, out = attrs["kernel"][i], out_shape[2 + i]
        first = attrs["window_start"][i] - attrs["input_start"][i]
        windows.append((first, stride, dilation, taps, out))
        positions = (
            np.arange(out)[:, None] * stride
            + np.arange(taps)[None, :] * dilation
            + attrs["window_start"][i]
        )
        counted = (positions >= attrs["valid_lo"][i]) & (positions < attrs["valid_hi"][i])
        divisors.append(counted.sum(axis=1))
    result = _window_reduce(x, windows, is_max, fill)
    if is_max:
        return result.astype(np.int8 if quantised else np.float32)
    divisor = divisors[0].astype(np.float32)
    for d in divisors[1:]:
        divisor = np.multiply.outer(divisor, d.astype(np.float32))
    return (result / np.maximum(divisor, 1)).astype(np.float32)


def _window_reduce(x: np.ndarray, windows: list, is_max: bool, fill: float) -> np.ndarray:
    """Reduce over all kernel taps, one spatial axis at a time (separable).

    Along an axis, tap t of output o reads buffer index first + o*stride + t*dilation; the axis
    is padded with `fill` where windows reach past the buffer, so that each tap is one strided
    slice, and the taps are reduced in order (max, or sum t = 0, 1, ...).
    """
    result = x
    for i, (first, stride, dilation, taps, out) in enumerate(windows):
        axis = 3 + i
        last = first + (out - 1) * stride + (taps - 1) * dilation
        before, after = max(0, -first), max(0, last + 1 - result.shape[axis])
        if before or after:
            widths = [(0, 0)] * result.ndim
            widths[axis] = (before, after)
            result = np.pad(result, widths, constant_values=fill)
        taps_start = first + before
        reduced = _tap(result, axis, taps_start, stride, out).copy()
        for tap in range(1, taps):
            part = _tap(result, axis, taps_start + tap * dilation, stride, out)
            if is_max:
                np.maximum(reduced, part, out=reduced)
            else:
                reduced += part
        result = reduced
    return result


def _tap(x: np.ndarray, axis: int, start: int, stride: int, count: int) -> np.ndarray:
    """Elements start, start + stride, ... (`count` of them) of x along `axis`: a view."""
    index = [slice(None)] * x.ndim
    index[axis] = slice(start, start + (count - 1) * stride + 1, stride)
    return x[tuple(index)]


def _lrn(kernel: PreparedKernel, inputs: list, params: dict, samples: int) -> np.ndarray:
    (y,) = evaluate("lrn", kernel.attrs, [_merge_samples(inputs[0])])
    offset = int(kernel.attrs["channel_offset"])
    channels = kernel.output.box.shape[1]
    return _split_samples(y[:, offset : offset + channels], samples)


def _global_pool(kernel: PreparedKernel, inputs: list, params: dict, samples: int) -> np.ndarray:
    if kernel.attrs.get("int8"):  # int8 max on the codes; averages run as fp32 islands
        x = inputs[0]
        return x.max(axis=tuple(range(3, x.ndim)), keepdims=True)
    (y,) = evaluate("global_pool", kernel.attrs, [_merge_samples(inputs[0])])
    return _split_samples(y, samples)


def _transpose(kernel: PreparedKernel, inputs: list, params: dict, samples: int) -> np.ndarray:
    perm = kernel.sample_attrs("perm")["perm"]
    return inputs[0].transpose(0, *perm).copy()


def reshape_sources(
    out_box: Box,
    in_shape: tuple[int, ...],
    out_shape: tuple[int, ...],
    view: tuple[int, ...] | None = None,
    perm: tuple[int, ...] | None = None,
) -> tuple[np.ndarray, ...]:
    """Input coordinates (one array per input axis) of each element of `out_box`, row-major.

    An output element's row-major position in `out_shape` is its input's row-major position in
    `in_shape`; with `view` and `perm` (a permute) it is a position in the view's transpose T:
    T[c] = V[d] with d[perm[i]] = c[i], V the input viewed as `view`."""
    grids = np.meshgrid(
        *[np.arange(a, b) for a, b in zip(out_box.start, out_box.stop)], indexing="ij"
    )
    flat = np.ravel_multi_index([g.reshape(-1) for g in grids], out_shape)
    if view is not None and perm is not None:
        moved = np.unravel_index(flat, tuple(view[axis] for axis in perm))
        in_view: list[np.ndarray] = [moved[0]] * len(view)
        for position, axis in enumerate(perm):
            in_view[axis] = moved[position]
        flat = np.ravel_multi_index(in_view, view)
    return np.unravel_index(flat, in_shape)


def _reshape(kernel: PreparedKernel, inputs: list, params: dict, samples: int) -> np.ndarray:
    """Gather each output element from the input box by its row-major position (the positions
    are found once per kernel). Positions that run consecutively from `first` (a whole-tensor
    reshape, or a block of rows) are a plain slice of the input: no gather; a permute of whole
    tensors is numpy's reshape, transpose and reshape."""
    local = kernel.cache.get("reshape")
    if local is None:
        local = _reshape_positions(kernel)
    if "permute_whole" in kernel.cache:
        view, perm = kernel.attrs["view"], kernel.sample_attrs("perm")["perm"]
        moved = inputs[0].reshape(samples, *view).transpose(0, *perm)
        return moved.reshape(samples, *kernel.out_shape)
    x = inputs[0].reshape(samples, -1)
    run = kernel.cache.get("reshape_run")
    if run is not None:
        first = int(run[0])
        return x[:, first : first + local.size].reshape(samples, *kernel.out_shape)
    return x[:, local].reshape(samples, *kernel.out_shape)


def _reshape_positions(kernel: PreparedKernel) -> np.ndarray:
    """The input-box position of each output element, cached with `reshape_run` = [first]
    when they are first, first + 1, ..., and with `permute_whole` for a permute of whole
    tensors."""
    in_box = kernel.inputs[0].box
    attrs = kernel.attrs
    coords = reshape_sources(
        kernel.output.box,
        attrs["in_shape"],
        attrs["out_shape"],
        attrs.get("view"),
        attrs.get("perm"),
    )
    local = np.ravel_multi_index([c - s for c, s in zip(coords, in_box.start)], in_box.shape)
    kernel.cache["reshape"] = local
    whole_in = in_box.start == (0,) * len(in_box.start) and in_box.shape == attrs["in_shape"]
    whole_out = kernel.output.box.shape == attrs["out_shape"]
    if "view" in attrs and whole_in and whole_out:
        kernel.cache["permute_whole"] = local[:0]
    if local.size and np.array_equal(local, np.arange(local[0], local[0] + local.size)):
        kernel.cache["reshape_run"] = local[:1]
    return local


def _concat(kernel: PreparedKernel, inputs: list, params: dict, samples: int) -> np.ndarray:
    axis = int(kernel.attrs["axis"]) + 1
    out = np.empty(
        (samples, *kernel.output.box.shape), dtype=inputs[0].dtype if inputs else np.float32
    )
    ports = iter(inputs)
    pieces = zip(kernel.attrs["operands"], kernel.attrs["offsets"])
    for position, (operand, offset) in enumerate(pieces):
        piece = next(ports) if operand >= 0 else params[f"operand{-1 - operand}"][None]
        if kernel.attrs.get("int8"):
            zero, multiplier, shift = kernel.attrs["rescale"][3 * position : 3 * position + 3]
            piece = int8.rescale(piece, zero, multiplier, shift, kernel.attrs["output_zero_point"])
        index = [slice(None)] * out.ndim
        index[axis] = slice(offset, offset + piece.shape[axis])
        out[tuple(index)] = piece
    return out


def _slice(kernel: PreparedKernel, inputs: list, params: dict, samples: int) -> np.ndarray:
    out_shape = kernel.output.box.shape
    index: list[slice] = [slice(None)]
    for start, step, count in zip(kernel.attrs["starts"], kernel.attrs["steps"], out_shape):
        stop = start + count * step
        index.append(slice(start, stop if stop >= 0 else None, step))
    return np.ascontiguousarray(inputs[0][tuple(index)])


def _same_box(kernel: PreparedKernel, inputs: list, params: dict, samples: int) -> np.ndarray:
    """Element-wise ops: operands in IR order, constants from params, broadcast to full rank."""
    if _two_ports_of_the_box(kernel, inputs):
        return kernel.reference(kernel.kernel.opcode, kernel.attrs, inputs)
    rank = len(kernel.output.box.start)
    operands = []
    ports = iter(inputs)
    for operand in kernel.attrs.get("operands", (0,)):
        array = next(ports) if operand >= 0 else params[f"operand{-1 - operand}"][None]
        operands.append(
            array.reshape(array.shape[0], *([1] * (rank + 1 - array.ndim)), *array.shape[1:])
        )
    if kernel.attrs.get("int8"):
        y = _same_box_int8(kernel, operands)
    else:
        y = kernel.reference(kernel.kernel.opcode, kernel.attrs, operands)
    if y.shape[1:] == kernel.out_shape:
        return y
    return np.broadcast_to(y, (samples, *kernel.out_shape)).copy()


def _two_ports_of_the_box(kernel: PreparedKernel, inputs: list) -> bool:
    """A float binary op whose two operands are ports holding the output's box: nothing to
    broadcast or align."""
    if len(inputs) != 2 or kernel.quantised or kernel.attrs.get("operands") != (0, 1):
        return False
    return inputs[0].shape == inputs[1].shape and inputs[0].shape[1:] == kernel.out_shape


def _same_box_int8(kernel: PreparedKernel, operands: list) -> np.ndarray:
    op = kernel.kernel.opcode
    if op in ("add", "sub"):
        return int8.add_sub(kernel.attrs, operands[0], operands[1], subtract=op == "sub")
    if op == "mul":
        return int8.mul(kernel.attrs, operands[0], operands[1])
    return operands[0]  # identity-like


def _lookup(kernel: PreparedKernel, inputs: list, params: dict, samples: int) -> np.ndarray:
    return int8.lookup(params["table"], inputs[0])


def _softmax(kernel: PreparedKernel, inputs: list, params: dict, samples: int) -> np.ndarray:
    """`ir.reference` softmax, called directly: its attributes were completed at load."""
    return softmax_reference(kernel.sample_attrs("axis"), [inputs[0]])[0]


def _whole(kernel: PreparedKernel, inputs: list, params: dict, samples: int) -> np.ndarray:
    """Fallback ops: whole operands in, whole result out (per sample), output box cropped."""
    op = str(kernel.attrs["ir_op"])
    attrs = kernel.attrs
    crop = (
        slice(None),
        *(slice(a, b) for a, b in zip(kernel.output.box.start, kernel.output.box.stop)),
    )
    results = []
    for sample in range(samples):
        ports = iter(inputs)
        operands = [
            next(ports)[sample] if o >= 0 else params[f"operand{-1 - o}"]
            for o in kernel.kernel.attrs["operands"]
        ]
        results.append(evaluate(op, attrs, operands)[0])
    return np.ascontiguousarray(np.stack(results)[crop])


# -- stacked kernels: several parameter sets of one float layer in one batched product ---------
def _conv_stacked(kernel: PreparedKernel, x: np.ndarray, params: dict, units: int) -> np.ndarray:
    """conv of unit u's inputs with unit u's weights, for every u (`backend.conv_gemm`).

    x: [U*B, 1, C, *S] (unit-major), weight [U, M, C/g, *K], bias [U, M].
    """
    y = conv_units(_merge_samples(x), params["weight"], params.get("bias"), kernel.attrs)
    return y.reshape(-1, *kernel.out_shape)


def _dense_stacked(kernel: PreparedKernel, x: np.ndarray, params: dict, units: int) -> np.ndarray:
    """dense of unit u's inputs with unit u's weights: [U, B, K] @ [U, K, N] + bias[U, 1, N]."""
    weight = params["weight"]
    rows = x.reshape(units, -1, weight.shape[1]).astype(weight.dtype)
    y = np.matmul(rows, weight)
    if "bias" in params:
        y += params["bias"][:, None, :]
    y = apply_activation(kernel.attrs["activation"], kernel.attrs["activation_params"], y)
    return y.astype(np.float32).reshape(x.shape[0], *kernel.out_shape)


def _conv_shared(kernel: PreparedKernel, x: np.ndarray, params: dict) -> np.ndarray:
    """conv of each input class's buffers with its units' weights joined along the output
    channels (group 1): weight [X, V M, C, *K], bias [X, V M]."""
    y = conv_units(_merge_samples(x), params["weight"], params.get("bias"), kernel.attrs)
    return _split_samples(y, x.shape[0])


def _dense_shared(kernel: PreparedKernel, x: np.ndarray, params: dict) -> np.ndarray:
    """dense with the units' weights joined along the output features."""
    weight, *bias = _weight_and_bias(params)
    return _dense_float(kernel.attrs, x, weight, bias)


_SHARED = {"conv": _conv_shared, "dense": _dense_shared}

_STACKED = {"conv": _conv_stacked, "dense": _dense_stacked}

_HANDLERS = {
    "conv": _conv,
    "dense": _dense,
    "partial_sum": _partial_sum,
    "pool": _pool,
    "lrn": _lrn,
    "global_pool": _global_pool,
    "transpose": _transpose,
    "reshape": _reshape,
    "concat": _concat,
    "slice": _slice,
    "softmax": _softmax,
    "whole": _whole,
    "lookup": _lookup,
}

# Sequence-model kernels (matmul of activations, gather, layer_norm) have their own module.
from backend.kernels_sequence import HANDLERS as _SEQUENCE_HANDLERS  # noqa: E402

_HANDLERS.update(_SEQUENCE_HANDLERS)
