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

from backend.descriptor_fields import Descriptor
from backend.program import Box, Kernel
from backend.slicing import Layer, SliceSpec
from ir.graph import Graph

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


def recurrent_slice(layer: Layer, out_box: Box) -> SliceSpec:
    """The slice computing hidden units [out_box.start[2], out_box.stop[2]) of every step."""
    op, attrs = layer.op, layer.attrs
    gates, hidden = GATES[op], attrs["hidden_size"]
    u0, u1 = out_box.start[2], out_box.stop[2]
    w, r, b = (_constant(layer, i) for i in (1, 2, 3))
    assert w is not None and r is not None and b is not None  # the frontend makes them constant
    units = slice(u0, u1)
    params: list[tuple[str, np.ndarray]] = [
        ("w", w.reshape(gates, hidden, -1)[:, units]),
        ("r", r.reshape(gates, hidden, hidden)[:, units]),
        ("b", b.reshape(2, gates, hidden)[:, :, units]),
    ]
    x_shape = layer.in_shape(0)
    inputs = [(0, Box.full(x_shape))]
    kernel_attrs: dict[str, Any] = {"hidden_size": hidden, "reverse": attrs["reverse"]}
    h0 = _constant(layer, 4)
    if h0 is None:
        inputs.append((4, Box.full(layer.in_shape(4))))
    else:
        params.append(("initial_h", h0))
    kernel_attrs["initial_h_port"] = int(h0 is None)
    if op == "gru":
        kernel_attrs["linear_before_reset"] = attrs["linear_before_reset"]
        if not attrs["linear_before_reset"]:
            params += [
                ("reset_w", w.reshape(gates, hidden, -1)[1]),
                ("reset_r", r.reshape(gates, hidden, hidden)[1]),
                ("reset_b", b.reshape(2, gates, hidden)[:, 1]),
            ]
    else:
        kernel_attrs.update(input_forget=attrs["input_forget"], output=attrs["output"])
        c0 = _constant(layer, 5)
        if c0 is None:
            batch = layer.in_shape(5)[0]
            inputs.append((5, Box((0, u0), (batch, u1))))
        else:
            params.append(("initial_c", c0[:, units]))
        kernel_attrs["initial_c_port"] = int(c0 is None)
        params.append(("p", _constant(layer, 6).reshape(3, hidden)[:, units]))  # type: ignore[union-attr]
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
    input axis that is a recurrent layer's time axis (reached through transposes only), so that
    `s2c run` can say which axis has the wrong length. Empty when there is none."""
    found: dict[str, list] = {}
    producers = {id(out): node for node in graph.nodes for out in node.outputs}
    inputs = {id(value) for value in graph.inputs}
    for node in graph.nodes:
        if node.op not in RECURRENT_OPCODES:
            continue
        value, axis = node.inputs[0], 0
        while id(value) in producers and producers[id(value)].op == "transpose":
            transpose = producers[id(value)]
            value, axis = transpose.inputs[0], transpose.attrs["perm"][axis]
        if id(value) in inputs:
            entry = [axis, value.type.shape[axis], node.name]
            found.setdefault(value.name, []).append(entry)
    return {"sequence_axes": json.dumps(found, sort_keys=True)} if found else {}


# -- descriptor rule ----------------------------------------------------------------------------
def check_recurrent(d: Descriptor) -> None:
    """gru / lstm: one slice of hidden units [u0, u1) of a recurrent layer (this module's
    docstring): ports x[T, B, I], initial_h[B, H] and initial_c[B, U] when they are ports, the
    state port y[T, B, H] when `exchange` = 1 (required but for an LSTM cell output, whose
    slice holds every unit); parameters w[G, U, I], r[G, U, H], b[2, G, U] (p[3, U]; reset_w,
    reset_r, reset_b for a GRU with linear_before_reset = 0); output box [T, B, u0:u1], each
    step's row in whole packets."""
    hidden = d.int_attr("hidden_size", 1, 1 << 20)
    d.int_attr("reverse", 0, 1)
    if len(d.out_shape) != 3 or d.kernel.output.box.stop[2] > hidden:
        d.fail("output box", d.kernel.output.box, f"must be [T, B, units] of {hidden} units")
    steps, batch, units = d.out_shape
    features = _check_ports(d, hidden)
    if d.opcode == "gru":
        _check_gru_params(d, hidden, features)
    else:
        _check_lstm_params(d, hidden)
    gates = GATES[d.opcode]
    d.param("w", "float32", (gates, units, features))
    d.param("r", "float32", (gates, units, hidden))
    d.param("b", "float32", (2, gates, units))
    if not d.attr("initial_h_port"):
        d.param("initial_h", "float32", (batch, hidden))
    values = d.kernel.output.values_per_packet
    if (batch * units) % values:
        d.fail("values per packet", values, f"must divide a step's B * U = {batch * units}")
    d.work(steps * batch * gates * hidden, "gate pre-activations")


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


def _check_gru_params(d: Descriptor, hidden: int, features: int) -> None:
    linear_before_reset = d.int_attr("linear_before_reset", 0, 1)
    reset = [] if linear_before_reset else ["reset_w", "reset_r", "reset_b"]
    d.roles(["w", "r", "b", *reset], ["initial_h"])
    if reset:
        d.param("reset_w", "float32", (hidden, features))
        d.param("reset_r", "float32", (hidden, hidden))
        d.param("reset_b", "float32", (2, hidden))


def _check_lstm_params(d: Descriptor, hidden: int) -> None:
    _, batch, units = d.out_shape
    d.int_attr("input_forget", 0, 1)
    d.roles(["w", "r", "b", "p"], ["initial_h", "initial_c"])
    d.param("p", "float32", (3, units))
    if not d.attr("initial_c_port"):
        d.param("initial_c", "float32", (batch, units))
