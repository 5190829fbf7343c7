"""GRU and LSTM (opsets 7-21): each direction becomes one `gru` / `lstm` IR node.

The IR nodes are time-major and one direction each (`ir.ops_recurrent`). Around them: layout = 1
transposes x[B, T, I] to [T, B, I] (and the results back); Y[T, D, B, H] is the directions'
sequences reshaped to [T, 1, B, H] and concatenated; Y_h[D, B, H] (and Y_c) the step each
direction ends on (T-1 forward, 0 reverse). W, R, B and P must be compile-time constants; a
missing B, initial_h, initial_c or P is zeros. Refused, naming the attribute: activations other
than the defaults, activation_alpha/beta, clip, and a sequence_lens that is not a constant equal
to the sequence length for every batch entry (the length is fixed at compile time).
"""

from __future__ import annotations

import numpy as np

from ir.graph import Value
from s2c.frontend.context import NodeContext
from s2c.frontend.registry import Result, handler

DEFAULT_ACTIVATIONS = {"GRU": ("sigmoid", "tanh"), "LSTM": ("sigmoid", "tanh", "tanh")}
DIRECTIONS = {"forward": (0,), "reverse": (1,), "bidirectional": (0, 1)}
GATES = {"GRU": 3, "LSTM": 4}


def _check_attributes(ctx: NodeContext, directions: int) -> None:
    """Refuse what the IR op does not compute: other activations, their parameters, clip."""
    activations = ctx.attr("activations")
    if activations is not None:
        expected = DEFAULT_ACTIVATIONS[ctx.op_type] * directions
        if tuple(a.lower() for a in activations) != expected:
            ctx.unsupported(f"activations={list(activations)} (only the defaults are supported)")
    for name in ("activation_alpha", "activation_beta", "clip"):
        if ctx.has_attr(name):
            ctx.unsupported(f"attribute '{name}' is not supported")


def _check_sequence_lens(ctx: NodeContext, steps: int, batch: int) -> None:
    """sequence_lens, when given, must be the full length for every batch entry."""
    if not ctx.has_input(4):
        return
    lengths = ctx.constant(4)
    if lengths is None:
        ctx.unsupported("sequence_lens is not a compile-time constant (the length is fixed)")
    if lengths.shape != (batch,) or np.any(lengths != steps):
        ctx.unsupported(f"sequence_lens {lengths.tolist()} is not {steps} for every batch entry")


def _weight(ctx: NodeContext, index: int, what: str, shape: tuple[int, ...]) -> np.ndarray:
    """A constant parameter (zeros when absent) as float32 of the ONNX shape `shape`."""
    if not ctx.has_input(index):
        return np.zeros(shape, np.float32)
    array = ctx.require_constant(index, what).astype(np.float32)
    if array.shape != shape:
        ctx.unsupported(f"{what} has shape {array.shape}, expected {shape}")
    return array


def _initial_state(ctx: NodeContext, index: int, direction: int, batch: int, hidden: int) -> Value:
    """initial_h / initial_c of one direction as [B, H] (zeros when absent)."""
    name = "initial_h" if index == 5 else "initial_c"
    if not ctx.has_input(index):
        return ctx.new_constant(np.zeros((batch, hidden), np.float32), f"{name}{direction}")
    layout = int(ctx.attr("layout", 0))
    constant = ctx.constant(index)
    if constant is not None:
        state = constant[:, direction] if layout else constant[direction]
        return ctx.new_constant(state.astype(np.float32), f"{name}{direction}")
    value = ctx.input(index)
    shape = value.type.shape
    starts = [0, 0, 0]
    stops = list(shape)
    axis = 1 if layout else 0
    starts[axis], stops[axis] = direction, direction + 1
    attrs = {"starts": tuple(starts), "stops": tuple(stops), "steps": (1, 1, 1)}
    part = ctx.emit("slice", [value], attrs, output=None, tag=f"{name}{direction}")
    return ctx.emit(
        "reshape", [part], {"shape": (batch, hidden)}, output=None, tag=f"{name}{direction}/2d"
    )


def _direction_node(ctx: NodeContext, x: Value, direction: int, slot: int, output: str) -> Value:
    """The IR node of one direction (`slot` indexes W, R, B, P; `direction` 1 = reverse)."""
    batch, features = x.type.shape[1:]
    hidden = int(ctx.attr("hidden_size"))
    gates = GATES[ctx.op_type]
    slots = len(DIRECTIONS[ctx.attr("direction", "forward")])
    w = _weight(ctx, 1, "W", (slots, gates * hidden, features))[slot]
    r = _weight(ctx, 2, "R", (slots, gates * hidden, hidden))[slot]
    b = _weight(ctx, 3, "B", (slots, 2 * gates * hidden))[slot]
    tag = f"{output}{slot}"
    operands = [
        x,
        ctx.new_constant(w, f"w{slot}"),
        ctx.new_constant(r, f"r{slot}"),
        ctx.new_constant(b, f"b{slot}"),
        _initial_state(ctx, 5, slot, batch, hidden),
    ]
    attrs = {"hidden_size": hidden, "reverse": direction}
    if ctx.op_type == "GRU":
        attrs["linear_before_reset"] = int(ctx.attr("linear_before_reset", 0))
        return ctx.emit("gru", operands, attrs, output=None, tag=tag)
    p = _weight(ctx, 7, "P", (slots, 3 * hidden))[slot]
    operands += [_initial_state(ctx, 6, slot, batch, hidden), ctx.new_constant(p, f"p{slot}")]
    attrs.update(input_forget=int(ctx.attr("input_forget", 0)), output=output)
    return ctx.emit("lstm", operands, attrs, output=None, tag=tag)


def _emit(
    ctx: NodeContext, op: str, inputs: list[Value], attrs: dict, final: bool, index: int, tag: str
) -> Value:
    """One step towards ONNX output `index`: the final step yields that output."""
    if final:
        return ctx.emit(op, inputs, attrs, output=index)
    return ctx.emit(op, inputs, attrs, output=None, tag=tag)


def _sequence_output(ctx: NodeContext, sequences: list[Value], layout: int) -> Value:
    """Y: [T, D, B, H] (layout 0) or [B, T, D, H] (layout 1) from the directions' [T, B, H]."""
    steps, batch, hidden = sequences[0].type.shape
    single = len(sequences) == 1 and not layout
    shape = {"shape": (steps, 1, batch, hidden)}
    pieces = [
        _emit(ctx, "reshape", [s], shape, single, 0, f"y{slot}") for slot, s in enumerate(sequences)
    ]
    result = pieces[0]
    if len(pieces) > 1:
        result = _emit(ctx, "concat", pieces, {"axis": 1}, not layout, 0, "y")
    if layout:
        result = ctx.emit("transpose", [result], {"perm": (2, 0, 1, 3)})
    return result


def _state_output(
    ctx: NodeContext, sequences: list[Value], directions: tuple[int, ...], index: int, layout: int
) -> Value:
    """Y_h / Y_c: [D, B, H] (layout 0) or [B, D, H]: the step each direction ends on."""
    steps, batch, hidden = sequences[0].type.shape
    single = len(sequences) == 1 and not layout
    pieces = []
    for slot, (sequence, direction) in enumerate(zip(sequences, directions)):
        end = 0 if direction else steps - 1
        attrs = {"starts": (end, 0, 0), "stops": (end + 1, batch, hidden), "steps": (1, 1, 1)}
        pieces.append(_emit(ctx, "slice", [sequence], attrs, single, index, f"state{index}_{slot}"))
    result = pieces[0]
    if len(pieces) > 1:
        result = _emit(ctx, "concat", pieces, {"axis": 0}, not layout, index, f"state{index}")
    if layout:
        result = ctx.emit("transpose", [result], {"perm": (1, 0, 2)}, output=index)
    return result


def _lower(ctx: NodeContext) -> list[Result]:
    if ctx.opset < 7:
        ctx.unsupported(f"{ctx.op_type} before opset 7 (output_sequence) is not supported")
    direction_name = ctx.attr("direction", "forward")
    if direction_name not in DIRECTIONS:
        ctx.unsupported(f"direction={direction_name!r} is not forward, reverse or bidirectional")
    directions = DIRECTIONS[direction_name]
    _check_attributes(ctx, len(directions))
    layout = int(ctx.attr("layout", 0))
    x = ctx.input(0)
    if len(x.type.shape) != 3:
        ctx.unsupported(f"X must have rank 3, got shape {x.type.shape}")
    if layout:
        x = ctx.emit("transpose", [x], {"perm": (1, 0, 2)}, output=None, tag="time_major")
    steps, batch, _ = x.type.shape
    _check_sequence_lens(ctx, steps, batch)
    results: list[Result] = [None] * len(ctx.node.output)
    hidden = [_direction_node(ctx, x, d, slot, "hidden") for slot, d in enumerate(directions)]
    if ctx.output_used(0):
        results[0] = _sequence_output(ctx, hidden, layout)
    if ctx.output_used(1):
        results[1] = _state_output(ctx, hidden, directions, 1, layout)
    if ctx.op_type == "LSTM" and ctx.output_used(2):
        cells = [_direction_node(ctx, x, d, slot, "cell") for slot, d in enumerate(directions)]
        results[2] = _state_output(ctx, cells, directions, 2, layout)
    return results


@handler("GRU")
def lower_gru(ctx: NodeContext) -> list[Result]:
    """GRU -> one `gru` node per direction (default activations, fixed sequence length)."""
    return _lower(ctx)


@handler("LSTM")
def lower_lstm(ctx: NodeContext) -> list[Result]:
    """LSTM -> one `lstm` node per direction (default activations, fixed sequence length)."""
    return _lower(ctx)
