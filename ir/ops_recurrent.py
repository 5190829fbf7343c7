"""Recurrent IR ops: one direction of an ONNX GRU or LSTM over a sequence fixed at compile time.

Both ops read x[T, B, I] (time-major, ONNX layout 0) and return the hidden state of every step,
y[T, B, H] (the `lstm` op returns the cell state instead when `output` = "cell"). The weights keep
ONNX's layout for one direction: w[G*H, I], r[G*H, H], b[2*G*H] (the W biases, then the R
biases), with the gates stacked in ONNX order (GRU: z, r, h; LSTM: i, o, f, c). `reverse` = 1
walks the sequence from the last step to the first; y stays indexed by input step, as in ONNX.
Default activations only (sigmoid for gates, tanh otherwise); the frontend refuses others.
The maths is in `ir.reference.recurrent`.
"""

from __future__ import annotations

from typing import Any

from ir.registry import AttrSpec, OpDef, register
from ir.types import TensorType

Types = list[TensorType]
Attrs = dict[str, Any]

# Gates per op, in ONNX order.
GATES = {"gru": 3, "lstm": 4}


def _sequence_infer(types: Types, attrs: Attrs) -> Types:
    steps, batch = types[0].shape[0], types[0].shape[1]
    return [TensorType((steps, batch, attrs["hidden_size"]), types[0].dtype)]


def _check_shapes(op: str, types: Types, attrs: Attrs) -> str | None:
    """Operand shapes of one direction: x[T, B, I], w[G*H, I], r[G*H, H], b[2*G*H], states[B, H]."""
    x = types[0]
    hidden, gates = attrs["hidden_size"], GATES[op]
    if hidden < 1:
        return f"hidden_size must be >= 1, got {hidden}"
    if x.rank != 3:
        return f"x must be [steps, batch, input], got shape {x.shape}"
    batch, features = x.shape[1:]
    expected = [
        ("w", (gates * hidden, features)),
        ("r", (gates * hidden, hidden)),
        ("b", (2 * gates * hidden,)),
        ("initial_h", (batch, hidden)),
    ]
    if op == "lstm":
        expected += [("initial_c", (batch, hidden)), ("p", (3 * hidden,))]
    for (name, shape), operand in zip(expected, types[1:]):
        if operand.shape != shape:
            return f"{name} must have shape {shape}, got {operand.shape}"
    if attrs["reverse"] not in (0, 1):
        return f"reverse must be 0 or 1, got {attrs['reverse']}"
    return None


def _gru_verify(types: Types, attrs: Attrs) -> str | None:
    if attrs["linear_before_reset"] not in (0, 1):
        return f"linear_before_reset must be 0 or 1, got {attrs['linear_before_reset']}"
    return _check_shapes("gru", types, attrs)


def _lstm_verify(types: Types, attrs: Attrs) -> str | None:
    if attrs["input_forget"] not in (0, 1):
        return f"input_forget must be 0 or 1, got {attrs['input_forget']}"
    if attrs["output"] not in ("hidden", "cell"):
        return f"output must be hidden or cell, got {attrs['output']!r}"
    return _check_shapes("lstm", types, attrs)


register(
    OpDef(
        "gru",
        "one direction of a GRU: (x[T,B,I], w[3H,I], r[3H,H], b[6H], initial_h[B,H]) -> h[T,B,H]",
        (5, 5),
        {
            "hidden_size": AttrSpec("int", required=True),
            "reverse": AttrSpec("int", 0),
            "linear_before_reset": AttrSpec("int", 0),
        },
        _sequence_infer,
        _gru_verify,
    )
)

register(
    OpDef(
        "lstm",
        "one direction of an LSTM: (x[T,B,I], w[4H,I], r[4H,H], b[8H], initial_h[B,H], "
        "initial_c[B,H], p[3H]) -> h[T,B,H] (or the cell states c[T,B,H])",
        (7, 7),
        {
            "hidden_size": AttrSpec("int", required=True),
            "reverse": AttrSpec("int", 0),
            "input_forget": AttrSpec("int", 0),
            "output": AttrSpec("str", "hidden"),
        },
        _sequence_infer,
        _lstm_verify,
    )
)
