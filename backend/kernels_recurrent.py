"""The recurrent kernels: one slice of a `gru` / `lstm` layer, stepped T times (float32).

A slice owns hidden units [u0, u1) (`backend.recurrent`). Its state in SRAM: the LSTM cell
state c[S, B, U] and the hidden state it last computed; the whole previous hidden state
h_{t-1}[S, B, H] is what its state port received at the previous step (initial_h first). Per
step, with x_t W^T + Wb computed for every step when the slice starts (the input does not depend
on the recurrence), the ONNX equations (`ir.reference.recurrent`) restricted to the slice's units:

GRU: z = sigma(xz + h R_z^T + Rb_z), r = sigma(xr + h R_r^T + Rb_r) for units [u0, u1);
     linear_before_reset = 1: h~ = tanh(xh + r (.) (h R_h^T + Rb_h));
     linear_before_reset = 0: h~ = tanh(xh + (r_all (.) h) R_h^T + Rb_h), with r_all the reset
     gate of every unit from the slice's own `reset_*` parameters;
     H_t = (1 - z) (.) h~ + z (.) h[u0:u1].
LSTM: [i, o, f, c~] = x-part + h R^T + Rb; i = sigma(i + P_i (.) C), f = sigma(f + P_f (.) C)
     (1 - i with input_forget), C' = f (.) C + i (.) tanh(c~), o = sigma(o + P_o (.) C'),
     H_t = o (.) tanh(C').
Products sum in float64 and round once to float32 (as `backend.kernels`), so a result does not
depend on how the layer was sliced; sigmoid and tanh run in float64, rounded to float32.

`run_layer` steps all slices of a layer together: at each step every slice computes its rows,
then the packets of that step (row t of each slice's output box) are delivered to the state
ports that the fill plans of the routed image name, and only then does the next step start.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ir.reference.recurrent import sigmoid, step_order, tanh

ACCUMULATE = np.float64
Copies = Sequence[tuple[int, tuple[slice, ...], tuple[slice, ...]]]


class RecurrentSlice:
    """One slice of a recurrent layer, ready to step: parameters, ports and state."""

    def __init__(self, opcode: str, attrs: dict[str, Any], params: dict, box_start: int) -> None:
        self.opcode = opcode
        self.attrs = attrs
        self.params = {role: array.astype(ACCUMULATE) for role, array in params.items()}
        self.u0 = box_start
        self.units = params["w"].shape[1]
        self.cell: np.ndarray | None = None
        self.x_gates: np.ndarray = np.empty(0)
        self.last_hidden: np.ndarray = np.empty(0)  # an LSTM's h_t, kept when not exchanged

    def start(self, ports: list[np.ndarray]) -> np.ndarray:
        """Take the port buffers (x, initial_h / initial_c ports); return h_{-1}[S, B, H]."""
        x = ports[0].astype(ACCUMULATE)  # [S, T, B, I]
        w, b = self.params["w"], self.params["b"]
        # x_t W^T + Wb per gate: [S, T, B, G, U]
        self.x_gates = np.einsum("stbi,gui->stbgu", x, w) + b[0]
        if self.attrs.get("linear_before_reset") == 0:
            reset = np.einsum("stbi,hi->stbh", x, self.params["reset_w"])
            self.reset_x = reset + self.params["reset_b"][0]
        position = 1
        h0 = self.params.get("initial_h")
        if self.attrs["initial_h_port"]:
            h0, position = ports[1], 2
        if self.opcode == "lstm":
            c0 = ports[position] if self.attrs["initial_c_port"] else self.params["initial_c"]
            self.cell = np.broadcast_to(c0, (x.shape[0], *c0.shape[-2:])).astype(ACCUMULATE)
        assert h0 is not None
        return np.broadcast_to(h0, (x.shape[0], *h0.shape[-2:])).astype(np.float32)

    def step(self, t: int, h: np.ndarray) -> np.ndarray:
        """This slice's rows of step t: the new hidden (or cell) state [S, B, U] (float32)."""
        hidden = h.astype(ACCUMULATE)
        recurrent = np.einsum("sbh,guh->sbgu", hidden, self.params["r"]) + self.params["b"][1]
        if self.opcode == "gru":
            return self._gru(t, hidden, recurrent)
        return self._lstm(t, recurrent)

    def _gru(self, t: int, h: np.ndarray, recurrent: np.ndarray) -> np.ndarray:
        x_gates = self.x_gates[:, t]
        z = sigmoid(x_gates[..., 0, :] + recurrent[..., 0, :])
        mine = h[..., self.u0 : self.u0 + self.units]
        if self.attrs["linear_before_reset"]:
            reset = sigmoid(x_gates[..., 1, :] + recurrent[..., 1, :])
            candidate = tanh(x_gates[..., 2, :] + reset * recurrent[..., 2, :])
        else:
            reset_r, reset_b = self.params["reset_r"], self.params["reset_b"][1]
            reset_all = sigmoid(self.reset_x[:, t] + h @ reset_r.T + reset_b).astype(ACCUMULATE)
            r_h, rb_h = self.params["r"][2], self.params["b"][1, 2]
            candidate = tanh(x_gates[..., 2, :] + (reset_all * h) @ r_h.T + rb_h)
        return ((1 - z) * candidate + z * mine).astype(np.float32)

    def _lstm(self, t: int, recurrent: np.ndarray) -> np.ndarray:
        gates = self.x_gates[:, t] + recurrent
        p, cell = self.params["p"], self.cell
        assert cell is not None
        i = sigmoid(gates[..., 0, :] + p[0] * cell).astype(ACCUMULATE)
        if self.attrs["input_forget"]:
            f = 1 - i
        else:
            f = sigmoid(gates[..., 2, :] + p[2] * cell).astype(ACCUMULATE)
        self.cell = (f * cell + i * tanh(gates[..., 3, :])).astype(np.float32).astype(ACCUMULATE)
        o = sigmoid(gates[..., 1, :] + p[1] * self.cell).astype(ACCUMULATE)
        self.last_hidden = (o * tanh(self.cell)).astype(np.float32)
        if self.attrs["output"] == "cell":
            return self.cell.astype(np.float32)
        return self.last_hidden


def run_layer(
    slices: Sequence[RecurrentSlice],
    ports: Sequence[list[np.ndarray]],
    exchange: Sequence[Copies | None],
    keys: Sequence[int],
    steps: int,
) -> list[np.ndarray]:
    """Step every slice of a layer T times; return each slice's output box [S, T, B, U].

    `ports[k]` are slice k's buffers of its ports before the state port; `exchange[k]` the
    copies of its state port's fill plan (sender key, where in the buffer, which part of the
    sender's box), None when it keeps its own state; `keys[k]` its output key.
    """
    hidden = [s.start(p) for s, p in zip(slices, ports)]
    samples, batch = hidden[0].shape[0], hidden[0].shape[1]
    outputs = {
        key: np.zeros((samples, steps, batch, s.units), np.float32) for key, s in zip(keys, slices)
    }
    for t in step_order(steps, int(slices[0].attrs["reverse"])):
        for s, key, h in zip(slices, keys, hidden):
            outputs[key][:, t] = s.step(t, h)
        for k, (s, copies) in enumerate(zip(slices, exchange)):
            hidden[k] = (
                s.last_hidden if copies is None else _received(hidden[k], outputs, copies, t)
            )
    return [outputs[key] for key in keys]


def _received(previous: np.ndarray, outputs: dict, copies: Copies, t: int) -> np.ndarray:
    """h_t[S, B, H] as the state port holds it after step t's packets arrived."""
    state = previous.copy()
    for key, target, source in copies:
        state[(slice(None), *target[1:])] = outputs[key][(slice(None), t, *source[1:])]
    return state
