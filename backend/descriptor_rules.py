"""Per-opcode rules for kernel descriptors: what each kernel family needs of its fields.

`CHECKS` maps each opcode the interpreter runs (`backend.kernels`) to its rule. A rule checks,
with the `Descriptor` methods of `backend.descriptor_fields`: attribute types, lengths and ranges
(strides, pads, permutations, activation codes, quantisation parameters, ...), the number and
dtypes of input ports, the roles, dtypes and shapes of parameters, the output box the kernel
computes from its input boxes and attributes, and a bound on the temporary arrays it needs
(`WORK_LIMIT`). Each rule's docstring states the kernel's contract.

Adding an opcode family (e.g. spiking or sparse kernels): write `_check_<family>(d)` here with
those methods, its docstring stating the kernel's contract, and add one entry per opcode to
`CHECKS` (and the opcode to the list in docs/image-format.md). A kernel handler without a rule
fails `test_every_kernel_the_interpreter_runs_has_a_rule`; add hostile edits of the new fields
to `CASES` in tests/backend/test_descriptor_check.py.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable

import numpy as np

from backend.descriptor_fields import COORDINATE_LIMIT, INT8_RANGE, Descriptor
from backend.kernels import reshape_sources
from backend.recurrent import RECURRENT_OPCODES, check_recurrent
from backend.sparse_weights import SPARSE_ROLES
from backend.spiking import SPIKING_OPCODES
from ir.activations import check_activation
from ir.ops import window_output_size
from ir.reference import KERNELS as REFERENCE_KERNELS
from ir.registry import OPS, OpDef
from ir.types import TensorType

LIMIT = COORDINATE_LIMIT
LRN_SIZE_LIMIT = 1 << 16  # the reference sums `size` shifted copies, one Python step each
RESHAPE_ELEMENTS_LIMIT = 1 << 62  # row-major positions must fit int64
VIEW_RANK_LIMIT = 32  # a permute's view: numpy indexes at most 64 axes


# -- shared parts of rules --------------------------------------------------------------------
def _activation(d: Descriptor) -> None:
    """A fused activation: 'none' or a function of ir.activations with its parameters."""
    function = d.attr("activation", "none")
    params = d.attr("activation_params", ())
    if not isinstance(params, tuple) or not all(isinstance(p, (int, float)) for p in params):
        d.fail("attribute 'activation_params'", params, "must be a tuple of numbers")
    if function == "none":
        return
    reason = check_activation(function, params) if isinstance(function, str) else "not a name"
    if reason:
        d.fail("attribute 'activation'", function, reason)


def _weight_roles(d: Descriptor) -> list[str]:
    """The weight's parameter roles: `weight` stored dense, or the three arrays of a csr weight
    (`backend.sparse_weights`; `weight_format` = 'csr')."""
    stored = d.str_attr("weight_format", ("dense", "csr"), default="dense")
    return list(SPARSE_ROLES) if stored == "csr" else ["weight"]


def _weight(d: Descriptor, dtype: str, rank: int) -> tuple[int, ...]:
    """The weight's shape: a dense weight's, or a csr weight's `weight_shape` (its arrays are
    1-D here; `backend.sparse_weights.check_sparse_weight` checks their contents at load,
    before the weight is rebuilt)."""
    if "weight" in d.params:
        return d.param("weight", dtype, (None,) * rank)
    shape = d.ints_attr("weight_shape", rank, 1, COORDINATE_LIMIT)
    d.param("weight_values", dtype, (None,))
    columns = d.params["weight_columns"]
    if columns.dtype not in ("uint8", "uint16") or len(columns.shape) != 1:
        d.fail("parameter 'weight_columns'", f"{columns.dtype} {columns.shape}", "uint8/16 [n]")
    d.param("weight_row_lengths", "uint16", (shape[0],))
    return shape


def _accumulator(d: Descriptor, weight_rank: int, channel_axis: int) -> tuple[int, ...]:
    """conv/dense parameters: weight (and bias, requantisation) by regime; the weight's shape.

    float: float32 in and out, weight and optional bias float32. int8: int8 in, weight int8,
    `input_zero_point`; a partial slice (`partial` = 1) writes its int32 accumulator and has no
    bias; otherwise optional int32 bias, per-channel requantisation and int8 out.
    """
    if d.regime() == "island":
        d.fail("attribute 'float_island'", 1, f"{d.opcode} has an integer kernel")
    stored = _weight_roles(d)
    if not d.flag("int8"):
        d.roles(stored, ["bias"])
        d.dtypes("float32", "float32")
        weight = _weight(d, "float32", weight_rank)
        if "bias" in d.params:
            d.param("bias", "float32", (weight[channel_axis],))
        return weight
    d.int_attr("input_zero_point", *INT8_RANGE)
    partial = d.flag("partial")
    d.roles(stored if partial else [*stored, "multiplier", "shift"], [] if partial else ["bias"])
    d.dtypes("int8", "int32" if partial else "int8")
    weight = _weight(d, "int8", weight_rank)
    if partial:
        return weight
    d.requantisation(weight[channel_axis])
    if "bias" in d.params:
        d.param("bias", "int32", (weight[channel_axis],))
    return weight


def _float_dtypes(d: Descriptor) -> None:
    """A kernel without an integer form: float32, or int8 around an fp32 island."""
    if d.regime() == "int8":
        d.fail("attribute 'int8'", 1, f"{d.opcode} has no integer kernel")
    island = d.flag("float_island")
    d.dtypes("int8" if island else "float32", "int8" if island else "float32")


def _movement_dtypes(d: Descriptor) -> None:
    """Data movement keeps the dtype: int8 (int8 or island regime) or that of the output."""
    if d.regime() == "float":
        d.dtypes(None, d.kernel.output.dtype)
    else:
        d.dtypes("int8", "int8")


def _operands(d: Descriptor, default: tuple[int, ...] | None) -> list[tuple[tuple[int, ...], str]]:
    """(shape, dtype) per operand. `operands` holds, per operand in order, its IR operand index
    i (read from the next input port) or -1 - i (parameter `operand<i>`); indices increase."""
    operands = d.attr("operands", default)
    if not isinstance(operands, tuple) or not all(isinstance(o, int) for o in operands):
        d.fail("attribute 'operands'", operands, "must be a tuple of integers")
    indices = [o if o >= 0 else -1 - o for o in operands]
    if any(b <= a for a, b in itertools.pairwise(indices)) or max(indices, default=0) > LIMIT:
        d.fail("attribute 'operands'", operands, "IR operand indices must increase")
    ports = iter(d.kernel.inputs)
    result, roles = [], []
    for operand in operands:
        if operand >= 0:
            port = next(ports, None)
            if port is None:
                d.fail(
                    "attribute 'operands'",
                    operands,
                    f"names more than {len(d.kernel.inputs)} ports",
                )
            result.append((port.box.shape, port.dtype))
        else:
            role = f"operand{-1 - operand}"
            if role not in d.params:
                d.fail("attribute 'operands'", operands, f"parameter '{role}' is missing")
            roles.append(role)
            result.append((d.params[role].shape, d.params[role].dtype))
    if next(ports, None) is not None:
        d.fail("input port count", len(d.kernel.inputs), f"'operands' {operands} reads fewer")
    d.roles(roles, ["table"] if d.opcode == "lookup" else [])
    return result


def _ir_result(d: Descriptor, op: OpDef, operands: list, island: bool) -> TensorType:
    """The IR op's result type for these operands and the kernel's attributes (checked)."""
    low, high = op.operands
    if not low <= len(operands) <= high:
        d.fail("operand count", len(operands), f"IR op {op.name} takes {low}..{high}")
    attrs = op.with_defaults(d.attrs)
    for name, spec in op.attrs.items():
        if name not in attrs:
            d.fail(f"attribute '{name}'", "missing", f"IR op {op.name} needs it")
        if not spec.accepts(attrs[name]):
            d.fail(f"attribute '{name}'", attrs[name], f"must be of kind {spec.kind}")
    shapes = [shape for shape, _ in operands]
    try:
        # An island dequantises its int8 operands; other constants (indices) keep their type.
        types = [
            TensorType(shape, "float32" if island and dtype == "int8" else dtype)
            for shape, dtype in operands
        ]
        reason = op.verify(types, attrs) if op.verify else None
        results = [] if reason or op.infer is None else op.infer(types, attrs)
    except (ValueError, TypeError, IndexError, KeyError, ZeroDivisionError, OverflowError) as e:
        reason = (str(e).splitlines() or [type(e).__name__])[0]
    if reason or not results:
        d.fail(f"operands of IR op {op.name}", shapes, reason or "no result")
    return results[0]


# -- rules, one per opcode family -------------------------------------------------------------
def _check_conv(d: Descriptor) -> None:
    """conv: x[N, C, *S], weight[M, C/group, *K] (bias[M]) -> y[N, M, *out], out per axis by
    `ir.ops.window_output_size` with the slice's pads; strides, dilations, group >= 1."""
    d.ports(1)
    shape = d.rank_at_least(0, 3)
    rank = len(shape) - 2
    strides = d.ints_attr("strides", rank, 1, LIMIT)
    dilations = d.ints_attr("dilations", rank, 1, LIMIT)
    pads = d.ints_attr("pads", 2 * rank, 0, LIMIT)
    group = d.int_attr("group", 1, LIMIT, default=1)
    _activation(d)
    weight = _accumulator(d, rank + 2, 0)
    if weight[1] * group != shape[1] or weight[0] % group:
        d.fail("attribute 'group'", group, f"weight {weight} does not fit input box {shape}")
    padded = [shape[2 + i] + pads[i] + pads[rank + i] for i in range(rank)]
    d.work(shape[0] * shape[1] * math.prod(padded), "zero-padded input")
    out = [
        window_output_size(shape[2 + i], weight[2 + i], strides[i], pads[i], pads[rank + i],
                           dilations[i], False)
        for i in range(rank)
    ]  # fmt: skip
    d.output_shape((shape[0], weight[0], *out))
    d.work(shape[0] * shape[1] * math.prod(weight[2:]) * math.prod(out), "im2col columns")


def _check_dense(d: Descriptor) -> None:
    """dense: x[..., K] @ weight[K, N] (+ bias[N]) -> y[..., N]."""
    d.ports(1)
    shape = d.rank_at_least(0, 1)
    _activation(d)
    weight = _accumulator(d, 2, 1)
    if weight[0] != shape[-1]:
        d.fail("parameter 'weight' shape", weight, f"input box has {shape[-1]} features")
    d.output_shape((*shape[:-1], weight[1]))


def _check_partial_sum(d: Descriptor) -> None:
    """partial_sum: the sum of its inputs (each shaped as the output) + bias along
    `channel_axis`, then the activation (float) or requantisation (int8, int32 inputs)."""
    ports = d.ports(1, LIMIT)
    for number, port in enumerate(ports):
        if port.box.shape != d.out_shape:
            d.fail(f"input {number} box shape", port.box.shape, f"must be {d.out_shape}")
    axis = d.int_attr("channel_axis", 0, len(d.out_shape) - 1)
    channels = d.out_shape[axis]
    _activation(d)
    regime = d.regime()
    if regime == "island":
        d.fail("attribute 'float_island'", 1, "partial_sum has an integer kernel")
    if regime == "float":
        d.roles([], ["bias"])
        d.dtypes("float32", "float32")
    else:
        d.roles(["multiplier", "shift"], ["bias"])
        d.dtypes("int32", "int8")
        d.requantisation(channels)
    if "bias" in d.params:
        d.param("bias", "float32" if regime == "float" else "int32", (channels,))


def _check_pool(d: Descriptor) -> None:
    """pool: max or avg windows in global coordinates over x[N, C, *S] whose first element is
    at `input_start` (the input box's start); y keeps N and C; int8 pools by max only."""
    (port,) = d.ports(1)
    shape = d.rank_at_least(0, 3)
    rank = len(shape) - 2
    kind = d.str_attr("kind", ("max", "avg"))
    kernel = d.ints_attr("kernel", rank, 1, LIMIT)
    strides = d.ints_attr("strides", rank, 1, LIMIT)
    dilations = d.ints_attr("dilations", rank, 1, LIMIT)
    window_start = d.ints_attr("window_start", rank, -LIMIT, LIMIT)
    valid_lo = d.ints_attr("valid_lo", rank, -LIMIT, LIMIT)
    d.ints_attr("valid_hi", rank, -LIMIT, LIMIT)
    if d.ints_attr("input_start", rank, -LIMIT, LIMIT) != port.box.start[2:]:
        d.fail("attribute 'input_start'", d.attrs["input_start"], "must be the input box's start")
    regime = d.regime()
    if regime == "int8" and kind == "avg":
        d.fail("attribute 'kind'", kind, "int8 pooling is max only (averages are fp32 islands)")
    d.dtypes("int8" if regime != "float" else "float32", "int8" if regime != "float" else "float32")
    out = d.out_shape
    if len(out) != len(shape) or out[:2] != shape[:2]:
        d.fail("output box shape", out, f"must keep the input's batch and channels {shape[:2]}")
    for i in range(rank):
        reach = window_start[i] + (out[2 + i] - 1) * strides[i] + (kernel[i] - 1) * dilations[i]
        if abs(reach) > LIMIT:
            d.fail("attribute 'strides'", strides, f"windows reach {reach}, beyond +-{LIMIT}")
        if out[2 + i] and not shape[2 + i]:
            d.fail("input box shape", shape, "windows need input positions")
        if valid_lo[i] > d.attrs["valid_hi"][i]:
            d.fail("attribute 'valid_lo'", valid_lo, "must not pass 'valid_hi'")
    spans = [max(shape[2 + i], out[2 + i] * kernel[i]) for i in range(rank)]
    d.work(shape[0] * shape[1] * math.prod(spans), "pooling windows")


def _check_global_pool(d: Descriptor) -> None:
    """global_pool: x[N, C, *S] -> y[N, C, 1, ...]; int8 takes the max of the codes only."""
    d.ports(1)
    shape = d.rank_at_least(0, 3)
    kind = d.str_attr("kind", ("max", "avg"))
    regime = d.regime()
    if regime == "int8" and kind == "avg":
        d.fail("attribute 'kind'", kind, "int8 pooling is max only (averages are fp32 islands)")
    d.dtypes("float32" if regime == "float" else "int8", "float32" if regime == "float" else "int8")
    d.output_shape((*shape[:2], *(1,) * (len(shape) - 2)))


def _check_lrn(d: Descriptor) -> None:
    """lrn: across channels of x[N, C, *S]; the output's channels start `channel_offset` in."""
    d.ports(1)
    shape = d.rank_at_least(0, 3)
    d.int_attr("size", 1, LRN_SIZE_LIMIT)
    for name in ("alpha", "beta", "bias"):
        d.float_attr(name)
    offset = d.int_attr("channel_offset", 0, shape[1])
    _float_dtypes(d)
    channels = d.out_shape[1] if len(d.out_shape) > 1 else 0
    if offset + channels > shape[1]:
        d.fail("attribute 'channel_offset'", offset, f"{channels} channels from it pass {shape[1]}")
    d.output_shape((shape[0], channels, *shape[2:]))


def _check_softmax(d: Descriptor) -> None:
    """softmax: along `axis` of the box (the box spans that whole axis); log = 1: log-softmax."""
    d.ports(1)
    shape = d.rank_at_least(0, 1)
    d.int_attr("axis", 0, len(shape) - 1)
    d.int_attr("log", 0, 1, default=0)
    _float_dtypes(d)
    d.output_shape(shape)


def _check_transpose(d: Descriptor) -> None:
    """transpose: y.shape[i] = x.shape[perm[i]], perm a permutation of the box's axes."""
    d.ports(1)
    shape = d.kernel.inputs[0].box.shape
    perm = d.ints_attr("perm", len(shape), 0, len(shape) - 1)
    if sorted(perm) != list(range(len(shape))):
        d.fail("attribute 'perm'", perm, f"must be a permutation of 0..{len(shape) - 1}")
    _movement_dtypes(d)
    d.output_shape(tuple(shape[p] for p in perm))


def _check_reshape(d: Descriptor) -> None:
    """reshape: every output element, at its row-major position in `out_shape`, comes from the
    element at that position in `in_shape`, which must lie in the input box. With `view` and
    `perm` (a permute: reshape, transpose, reshape), the position in `out_shape` is one in the
    transpose by `perm` of the input viewed as `view`."""
    (port,) = d.ports(1)
    in_shape = d.ints_attr("in_shape", len(port.box.start), 0, LIMIT)
    out_shape = d.ints_attr("out_shape", len(d.out_shape), 0, LIMIT)
    if math.prod(in_shape) != math.prod(out_shape) or math.prod(in_shape) > RESHAPE_ELEMENTS_LIMIT:
        d.fail("attribute 'out_shape'", out_shape, f"must hold the elements of {in_shape}")
    view, perm = _permute_attrs(d, math.prod(in_shape))
    _movement_dtypes(d)
    for name, shape, box in (("in_shape", in_shape, port.box), ("out_shape", out_shape, None)):
        box = d.kernel.output.box if box is None else box
        if any(b > n for b, n in zip(box.stop, shape)):
            d.fail(f"attribute '{name}'", shape, f"does not hold the box ending at {box.stop}")
    coords = reshape_sources(d.kernel.output.box, in_shape, out_shape, view, perm)
    for axis, (axis_coords, start, stop) in enumerate(zip(coords, port.box.start, port.box.stop)):
        if axis_coords.size and (axis_coords.min() < start or axis_coords.max() >= stop):
            d.fail("input box", port.box.shape, f"misses elements of the output on axis {axis}")


def _permute_attrs(
    d: Descriptor, elements: int
) -> tuple[tuple[int, ...] | None, tuple[int, ...] | None]:
    """A reshape kernel's optional `view` (holding `elements`) and `perm` (a permutation of
    the view's axes), both or neither."""
    if "view" not in d.kernel.attrs and "perm" not in d.kernel.attrs:
        return None, None
    view_value = d.kernel.attrs.get("view")
    rank = len(view_value) if isinstance(view_value, tuple) else 0
    if not 0 < rank <= VIEW_RANK_LIMIT:
        d.fail("attribute 'view'", view_value, f"must hold 1..{VIEW_RANK_LIMIT} integers")
    view = d.ints_attr("view", rank, 1, LIMIT)
    if math.prod(view) != elements:
        d.fail("attribute 'view'", view, f"must hold the {elements} elements of 'in_shape'")
    perm = d.ints_attr("perm", rank, 0, max(rank - 1, 0))
    if sorted(perm) != list(range(rank)):
        d.fail("attribute 'perm'", perm, f"must be a permutation of 0..{rank - 1}")
    return view, perm


def _check_concat(d: Descriptor) -> None:
    """concat: pieces (ports or constant params, by `operands`) laid along `axis` at `offsets`,
    back to back, filling the output; int8 rescales each piece (`rescale`: zero, multiplier,
    shift per piece)."""
    rank = len(d.out_shape)
    axis = d.int_attr("axis", 0, rank - 1)
    pieces = _operands(d, None)
    offsets = d.ints_attr("offsets", len(pieces), 0, LIMIT)
    filled = 0
    for number, ((shape, _), offset) in enumerate(zip(pieces, offsets)):
        others = [s for a, s in enumerate(shape) if a != axis]
        if len(shape) != rank or others != [s for a, s in enumerate(d.out_shape) if a != axis]:
            d.fail(f"piece {number} shape", shape, f"must match {d.out_shape} outside axis {axis}")
        if offset != filled:
            d.fail("attribute 'offsets'", offsets, f"piece {number} must start at {filled}")
        filled += shape[axis]
    if filled != d.out_shape[axis]:
        d.fail("attribute 'offsets'", offsets, f"pieces fill {filled} of {d.out_shape[axis]}")
    _movement_dtypes(d)
    for role in d.params:
        if d.params[role].dtype != d.kernel.output.dtype:
            d.fail(f"parameter '{role}' dtype", d.params[role].dtype, "must be the output's")
    if d.flag("int8"):
        d.int_attr("output_zero_point", *INT8_RANGE)
        rescale = d.ints_attr("rescale", 3 * len(pieces), -LIMIT, LIMIT)
        for number in range(len(pieces)):
            zero, multiplier, shift = rescale[3 * number : 3 * number + 3]
            if not (INT8_RANGE[0] <= zero <= INT8_RANGE[1] and 0 <= multiplier < 1 << 31):
                d.fail("attribute 'rescale'", rescale, f"piece {number}: bad zero or multiplier")
            if not -31 <= shift <= 31:
                d.fail("attribute 'rescale'", rescale, f"piece {number}: shift outside -31..31")


def _check_slice(d: Descriptor) -> None:
    """slice: output index i along an axis reads input box index starts + i * steps."""
    d.ports(1)
    shape = d.kernel.inputs[0].box.shape
    if len(d.out_shape) != len(shape):
        d.fail("output box shape", d.out_shape, f"must have the input box's rank {len(shape)}")
    starts = d.ints_attr("starts", len(shape), 0, LIMIT)
    steps = d.ints_attr("steps", len(shape), -LIMIT, LIMIT)
    for axis, (start, step, count) in enumerate(zip(starts, steps, d.out_shape)):
        last = start + (count - 1) * step
        if step == 0 or (count and not (start < shape[axis] and 0 <= last < shape[axis])):
            d.fail("attribute 'steps'", steps, f"axis {axis} reads outside 0..{shape[axis] - 1}")
    _movement_dtypes(d)


def _check_lookup(d: Descriptor) -> None:
    """lookup (int8 element-wise function): y = table[x + 128], table int8[256]."""
    d.ports(1)
    if not d.flag("int8"):
        d.fail("attribute 'int8'", d.attrs.get("int8", 0), "lookup is an int8 kernel")
    d.roles(["table"])
    d.param("table", "int8", (256,))
    d.dtypes("int8", "int8")
    d.output_shape(d.kernel.inputs[0].box.shape)


def _check_elementwise(d: Descriptor) -> None:
    """Element-wise IR ops (opcode = IR op): operands (ports and constants, by `operands`) that
    the IR op accepts, whose broadcast result broadcasts to the output box. int8: add and sub
    (TFLite ADD: zero points, `rescale` of three multiplier-shift pairs) and mul."""
    operands = _operands(d, (0,))
    rank = len(d.out_shape)
    if any(len(shape) > rank for shape, _ in operands):
        d.fail("operand shapes", [s for s, _ in operands], f"ranks must not pass {rank}")
    regime = d.regime()
    result = _ir_result(d, OPS[d.opcode], operands, regime == "island")
    try:
        fits = tuple(np.broadcast_shapes(result.shape, d.out_shape)) == d.out_shape
    except ValueError:
        fits = False
    if not fits:
        d.fail("output box shape", d.out_shape, f"operands give {result.shape}")
    if regime == "float":  # operand dtypes are the IR op's business (cast, gather, ...)
        d.output_dtype(result.dtype)
        return
    if d.opcode == "where":  # an island: its bool condition is not quantised
        _where_condition_dtypes(d)
    else:
        d.dtypes("int8", "int8")
    if regime == "int8":
        _int8_elementwise(d, operands)


def _where_condition_dtypes(d: Descriptor) -> None:
    """int8 where: ports int8, or bool for the condition (operand 0); the result int8."""
    operands = d.attr("operands", (0,))
    for number, (operand, port) in enumerate(zip([o for o in operands if o >= 0], d.kernel.inputs)):
        expected = "bool" if operand == 0 else "int8"
        if port.dtype != expected:
            d.fail(f"input {number} dtype", port.dtype, f"where reads {expected} there")
    d.output_dtype("int8")


def _int8_elementwise(d: Descriptor, operands: list) -> None:
    if d.opcode not in ("add", "sub", "mul") or len(operands) != 2:
        d.fail("attribute 'int8'", 1, "int8 element-wise kernels are add, sub and mul of two")
    for name in ("a_zero_point", "b_zero_point", "output_zero_point"):
        d.int_attr(name, *INT8_RANGE)
    if d.opcode == "mul":
        d.int_attr("multiplier", 0, (1 << 31) - 1)
        d.int_attr("shift", -31, 31)
    else:
        d.fixed_point("rescale", 3)


def _check_whole(d: Descriptor) -> None:
    """whole: the IR op `ir_op` on whole operands (ports and constants, by `operands`); the
    output box lies inside its result, whose size is bounded."""
    op = d.str_attr("ir_op", sorted(set(REFERENCE_KERNELS) & set(OPS)))
    d.int_attr("output_index", 0, 0, default=0)
    operands = _operands(d, None)
    regime = d.regime()
    if regime == "int8":
        d.fail("attribute 'int8'", 1, "whole kernels compute in float (or as islands)")
    result = _ir_result(d, OPS[op], operands, regime == "island")
    d.work(result.size, f"result of IR op {op}")
    inside = len(result.shape) == len(d.out_shape) and all(
        b <= n for b, n in zip(d.kernel.output.box.stop, result.shape)
    )
    if not inside:
        d.fail("output box", d.kernel.output.box.stop, f"outside the result {result.shape}")
    if regime == "float":  # operand dtypes are the IR op's business (cast, gather, ...)
        d.output_dtype(result.dtype)
    else:
        d.dtypes("int8", "int8")


def _check_spiking(d: Descriptor) -> None:
    """Spiking kernels (`spike_conv`, `spike_dense`, `spike_add`, `spike_max_pool`; snn images
    only, which `check_descriptors` enforces): their neuron state, thresholds and synapses are
    parameters, so their rules read the parameters too. They are `backend.spiking`'s
    `DESCRIPTOR_CHECKS`, one per opcode, which the interpreter applies when it prepares an snn
    image: also at load, before any kernel runs."""
    if not d.kernel.inputs:
        d.fail("inputs", 0, "a spiking kernel reads at least one port")


ELEMENTWISE_OPS = ("add", "sub", "mul", "div", "max", "min", "pow", "prelu", "activation", "cast",
                   "identity", "dropout", "where", "equal", "less")  # fmt: skip

# opcode -> its rule. A new opcode family is one more function above and its entries here.
CHECKS: dict[str, Callable[[Descriptor], None]] = {
    "conv": _check_conv,
    "dense": _check_dense,
    "partial_sum": _check_partial_sum,
    "pool": _check_pool,
    "global_pool": _check_global_pool,
    "lrn": _check_lrn,
    "softmax": _check_softmax,
    "transpose": _check_transpose,
    "reshape": _check_reshape,
    "concat": _check_concat,
    "slice": _check_slice,
    "lookup": _check_lookup,
    "whole": _check_whole,
    **{op: check_recurrent for op in RECURRENT_OPCODES},
    **{op: _check_elementwise for op in ELEMENTWISE_OPS},
    **{op: _check_spiking for op in SPIKING_OPCODES},
}

# Sequence-model opcodes (matmul of activations, gather, layer_norm) have their own module.
from backend.descriptor_rules_sequence import CHECKS as _SEQUENCE_CHECKS  # noqa: E402

CHECKS.update(_SEQUENCE_CHECKS)
