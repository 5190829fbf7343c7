"""Recurrent layers (`gru`, `lstm`) on PEs: slicing by hidden units, packet format, descriptor rule.

A recurrent layer's output y[T, B, H] is cut along the hidden units only: slice s computes units
[u0, u1) for every step and keeps their state in its SRAM across the T steps (the LSTM cell state
never leaves the PE). Each step needs the whole previous hidden state h_{t-1}[B, H], so every
slice sends its part of h_t as the packets of row t of its output box; the routers multicast them
to the layer's own PEs (the `state` port: each slice receives the full y[T, B, H] box, row t
arriving at step t) and to the layer's consumers. A step's row fills whole packets: the values
per packet of a recurrent output are the largest divisor of B * units that the payload holds, so
step t's packets are exactly keys key + t * (B * units / values) ... + that count.

Slice parameters (float), with G gates (GRU 3: z, r, h; LSTM 4: i, o, f, c) and U = u1 - u0:
`w`[G, U, I], `r`[G, U, H], `b`[2, G, U] (W biases, then R biases), LSTM peepholes `p`[3, U]
(i, o, f), and, when constant, `initial_h`[B, H] (whole: the first step reads all of it) and
`initial_c`[B, U]; a GRU with linear_before_reset = 0 needs the reset gate of every unit
(r_t (.) h_{t-1} feeds R_h), so its slices also hold `reset_w`[H, I], `reset_r`[H, H],
`reset_b`[2, H] and compute the whole reset gate themselves instead of exchanging it.
Input ports, in order: x[T, B, I] (whole), initial_h[B, H] and initial_c[B, U] when they are
activations (attributes `initial_h_port`, `initial_c_port`), then the state port y[T, B, H] when
the layer exchanges its state (`exchange` = 1: every layer whose output is h; an LSTM node whose
output is the cell sequence is one slice and keeps h in its own SRAM).
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np

from backend.descriptor_fields import INT8_RANGE, Descriptor, is_scale
from backend.program import Box, Kernel
from backend.slicing import Layer, SliceSpec
from ir.graph import Graph
from passes.fold_movement import long_axes

RECURRENT_OPCODES = ("gru", "lstm")
MATRIX_ROLES = ("w", "r", "reset_w", "reset_r")
GATES = {"gru": 3, "lstm": 4}


def exchanges_state(layer: Layer) -> bool:
    """Whether the layer's output is its hidden state (which the slices then exchange)."""
    return layer.op == "gru" or layer.attrs["output"] == "hidden"


def recurrent_split_axes(layer: Layer) -> list[tuple[int, int]]:
    """The hidden-units axis; an LSTM that outputs its cell sequence stays one slice."""
    return [(2, 1)] if exchanges_state(layer) else []


def _constant(layer: Layer, index: int) -> np.ndarray | None:
    value = layer.node.inputs[index]
    return value.constant_data.astype(np.float32) if value.is_constant else None


def _matrix(layer: Layer, index: int, gates: int) -> tuple[np.ndarray, np.ndarray | None]:
    """w or r as [G, H, columns], with its int8 row scales as [G, H] (None in float)."""
    value = layer.node.inputs[index]
    hidden = layer.attrs["hidden_size"]
    matrix = value.constant_data.reshape(gates, hidden, -1)
    if value.type.dtype != "int8":
        return matrix.astype(np.float32), None
    assert value.type.quant is not None
    scales = np.asarray(value.type.quant.scale, np.float32).reshape(gates, hidden)
    return matrix, scales


def _weights(layer: Layer, units: slice) -> list[tuple[str, np.ndarray]]:
    """w, r (with row scales in int8), b and, for a GRU with linear_before_reset = 0, the
    whole reset gate's reset_w, reset_r, reset_b."""
    op, gates, hidden = layer.op, GATES[layer.op], layer.attrs["hidden_size"]
    params: list[tuple[str, np.ndarray]] = []
    reset = op == "gru" and not layer.attrs["linear_before_reset"]
    for role, index in (("w", 1), ("r", 2)):
        matrix, scales = _matrix(layer, index, gates)
        params.append((role, matrix[:, units]))
        params += [(f"{role}_scale", scales[:, units])] if scales is not None else []
        if reset:
            params.append((f"reset_{role}", matrix[1]))
            params += [(f"reset_{role}_scale", scales[1])] if scales is not None else []
    b = _constant(layer, 3)
    assert b is not None  # the frontend makes it constant
    params.append(("b", b.reshape(2, gates, hidden)[:, :, units]))
    if reset:
        params.append(("reset_b", b.reshape(2, gates, hidden)[:, 1]))
    return params


def _quantisation(layer: Layer, index: int, name: str) -> dict[str, Any]:
    """`<name>_scale` and `<name>_zero_point` of an int8 activation (operand or result)."""
    value = layer.node.outputs[0] if index < 0 else layer.node.inputs[index]
    quant = value.type.quant
    if value.type.dtype != "int8" or quant is None:
        return {}
    return {f"{name}_scale": float(quant.scale[0]), f"{name}_zero_point": int(quant.zero_point[0])}


def recurrent_slice(layer: Layer, out_box: Box) -> SliceSpec:
    """The slice computing hidden units [out_box.start[2], out_box.stop[2]) of every step."""
    op, attrs = layer.op, layer.attrs
    u0, u1 = out_box.start[2], out_box.stop[2]
    units = slice(u0, u1)
    params = _weights(layer, units)
    inputs = [(0, Box.full(layer.in_shape(0)))]
    kernel_attrs: dict[str, Any] = {
        "hidden_size": attrs["hidden_size"],
        "reverse": attrs["reverse"],
    }
    if layer.node.outputs[0].type.dtype == "int8":
        kernel_attrs.update(int8=1, **_quantisation(layer, 0, "input"))
        kernel_attrs.update(_quantisation(layer, -1, "output"))
    h0 = _constant(layer, 4)
    if h0 is None:
        inputs.append((4, Box.full(layer.in_shape(4))))
        kernel_attrs.update(_quantisation(layer, 4, "initial_h"))
    else:
        params.append(("initial_h", h0))
    kernel_attrs["initial_h_port"] = int(h0 is None)
    if op == "gru":
        kernel_attrs["linear_before_reset"] = attrs["linear_before_reset"]
    else:
        kernel_attrs.update(input_forget=attrs["input_forget"], output=attrs["output"])
        c0 = _constant(layer, 5)
        if c0 is None:
            inputs.append((5, Box((0, u0), (layer.in_shape(5)[0], u1))))
            kernel_attrs.update(_quantisation(layer, 5, "initial_c"))
        else:
            params.append(("initial_c", c0[:, units]))
        kernel_attrs["initial_c_port"] = int(c0 is None)
        peepholes = _constant(layer, 6)
        assert peepholes is not None  # the frontend makes it constant
        params.append(("p", peepholes.reshape(3, -1)[:, units]))
    kernel_attrs["exchange"] = int(exchanges_state(layer))
    if kernel_attrs["exchange"]:
        inputs.append((len(layer.node.inputs), Box.full(layer.out_shape)))  # its own result
    return SliceSpec(op, kernel_attrs, out_box, inputs, params)


def step_values_per_packet(out_box: Box, capacity: int) -> int:
    """Values per packet of a recurrent output: the largest divisor of one step's row (B * U)
    that the payload holds, so that every step's values travel in whole packets."""
    row = math.prod(out_box.shape[1:])
    return max(v for v in range(1, min(row, capacity) + 1) if row % v == 0)


def recurrent_macs(kernel: Kernel) -> int:
    """Multiply-accumulates of one firing (all T steps): every gate weight (w, r and a GRU's
    whole reset gate) once per step and batch entry."""
    steps, batch = kernel.output.box.shape[:2]
    weights = sum(math.prod(p.shape) for p in kernel.params if p.role in MATRIX_ROLES)
    return steps * batch * weights


def packets_per_step(out_box: Box, values_per_packet: int) -> int:
    """Packets a recurrent slice sends at each step."""
    return math.prod(out_box.shape[1:]) // values_per_packet


def sequence_axes(graph: Graph) -> dict[str, str]:
    """The `sequence_axes` METADATA entry: graph input -> [[axis, length, layer], ...] for each
    input axis that is a recurrent layer's time axis (reached through transposes, and reshapes
    that only move axes of length 1), so that `s2c run` can say which axis has the wrong length.
    Empty when there is none."""
    found: dict[str, list] = {}
    producers = {id(out): node for node in graph.nodes for out in node.outputs}
    inputs = {id(value) for value in graph.inputs}
    for node in graph.nodes:
        if node.op not in RECURRENT_OPCODES:
            continue
        value = node.inputs[0]
        axis: int | None = 0
        while axis is not None and id(value) in producers:
            producer = producers[id(value)]
            if producer.op == "transpose":
                axis = producer.attrs["perm"][axis]
            elif producer.op == "reshape":
                axis = _unit_reshape_axis(producer.inputs[0].type.shape, value.type.shape, axis)
            else:
                break
            value = producer.inputs[0]
        if axis is not None and id(value) in inputs:
            entry = [axis, value.type.shape[axis], node.name]
            found.setdefault(value.name, []).append(entry)
    return {"sequence_axes": json.dumps(found, sort_keys=True)} if found else {}


def _unit_reshape_axis(source: tuple[int, ...], result: tuple[int, ...], axis: int) -> int | None:
    """The axis of `source` that a reshape to `result` moves to `axis`, when the reshape only
    inserts, drops or moves axes of length 1 (the other lengths keep their order); else None."""
    kept = long_axes(source)
    if result[axis] == 1 or [source[a] for a in kept] != [result[a] for a in long_axes(result)]:
        return None
    return kept[sum(1 for n in result[:axis] if n != 1)]


# -- descriptor rule ----------------------------------------------------------------------------
def check_recurrent(d: Descriptor) -> None:
    """gru / lstm: one slice of hidden units [u0, u1) of a recurrent layer (this module's
    docstring): ports x[T, B, I], initial_h[B, H] and initial_c[B, U] when they are ports, the
    state port y[T, B, H] when `exchange` = 1 (required but for an LSTM cell output, whose
    slice holds every unit); parameters w[G, U, I], r[G, U, H], b[2, G, U] (p[3, U]; reset_w,
    reset_r, reset_b for a GRU with linear_before_reset = 0); output box [T, B, u0:u1], each
    step's row in whole packets. int8 (`int8` = 1): int8 ports and output, int8 matrices with
    float32 row scales `<role>_scale`, and the scale and zero point of x, the output and each
    state port."""
    hidden = d.int_attr("hidden_size", 1, 1 << 20)
    d.int_attr("reverse", 0, 1)
    if len(d.out_shape) != 3 or d.kernel.output.box.stop[2] > hidden:
        d.fail("output box", d.kernel.output.box, f"must be [T, B, units] of {hidden} units")
    steps, batch, units = d.out_shape
    features = _check_ports(d, hidden)
    int8 = _check_numerics(d)
    gates = GATES[d.opcode]
    matrices: dict[str, tuple[int, ...]] = {
        "w": (gates, units, features),
        "r": (gates, units, hidden),
    }
    if d.opcode == "gru" and not d.int_attr("linear_before_reset", 0, 1):
        matrices.update(reset_w=(hidden, features), reset_r=(hidden, hidden))
        d.param("reset_b", "float32", (2, hidden))
    vectors: dict[str, tuple[int, ...]] = {"b": (2, gates, units)}
    if d.opcode == "lstm":
        d.int_attr("input_forget", 0, 1)
        vectors["p"] = (3, units)
    optional: dict[str, tuple[int, ...]] = {
        "initial_h": (batch, hidden),
        "initial_c": (batch, units),
    }
    required = [*matrices, *vectors, *(["reset_b"] if "reset_w" in matrices else [])]
    required += [f"{role}_scale" for role in matrices] if int8 else []
    d.roles(required, [n for n in optional if n == "initial_h" or d.opcode == "lstm"])
    for role, shape in matrices.items():
        d.param(role, "int8" if int8 else "float32", shape)
        if int8:
            d.param(f"{role}_scale", "float32", shape[:-1])
    for role, shape in vectors.items():
        d.param(role, "float32", shape)
    for role, shape in optional.items():
        if not d.attr(f"{role}_port", 0) and (role == "initial_h" or d.opcode == "lstm"):
            d.param(role, "float32", shape)
    values = d.kernel.output.values_per_packet
    if (batch * units) % values:
        d.fail("values per packet", values, f"must divide a step's B * U = {batch * units}")
    d.work(steps * batch * gates * hidden, "gate pre-activations")


def _check_numerics(d: Descriptor) -> bool:
    """float32 ports and output, or int8 with the scale and zero point of each; True for int8."""
    int8 = bool(d.int_attr("int8", 0, 1, default=0))
    d.dtypes("int8" if int8 else "float32", "int8" if int8 else "float32")
    if not int8:
        return False
    names = ["input", "output"] + [n for n in ("initial_h", "initial_c") if d.attr(f"{n}_port", 0)]
    for name in names:
        scale = d.float_attr(f"{name}_scale")
        if not is_scale(scale):
            d.fail(f"attribute '{name}_scale'", scale, "must be a positive normal float32")
        d.int_attr(f"{name}_zero_point", *INT8_RANGE)
    return True


def _check_ports(d: Descriptor, hidden: int) -> int:
    """The ports in order (x, initial_h, initial_c, state); returns the input features."""
    steps, batch, units = d.out_shape
    u0 = d.kernel.output.box.start[2]
    h_port = d.int_attr("initial_h_port", 0, 1)
    c_port = d.int_attr("initial_c_port", 0, 1, default=0) if d.opcode == "lstm" else 0
    exchange = d.int_attr("exchange", 0, 1)
    cell_output = d.opcode == "lstm" and d.str_attr("output", ("hidden", "cell")) == "cell"
    if exchange == cell_output:
        reason = (
            "an LSTM cell output keeps h in its one slice"
            if cell_output
            else ("a hidden-state output is exchanged every step")
        )
        d.fail("attribute 'exchange'", exchange, reason)
    if cell_output and units != hidden:
        d.fail("output box", d.kernel.output.box, "an LSTM cell output is one slice of all units")
    ports = d.ports(1 + h_port + c_port + exchange)
    x = ports[0].box.shape
    if len(x) != 3 or x[:2] != (steps, batch):
        d.fail("input 0 box shape", x, f"must be [{steps}, {batch}, features]")
    expected = [Box.full((batch, hidden))] * h_port + [Box((0, u0), (batch, u0 + units))] * c_port
    expected += [Box.full((steps, batch, hidden))] * exchange
    for number, (port, box) in enumerate(zip(ports[1:], expected), start=1):
        if port.box != box:
            d.fail(f"input {number} box", port.box, f"must be {box}")
    return x[2]
