"""The recurrent kernels: one slice of a `gru` / `lstm` layer, stepped T times (float or int8).

A slice owns hidden units [u0, u1) (`backend.recurrent`). Its state in SRAM: the LSTM cell
state c[S, B, U] and the whole previous hidden state h_{t-1}[S, B, H] as its state port received
it at the previous step (initial_h first). Per step, with x_t W^T + Wb computed for every step
when the slice starts (the input does not depend on the recurrence), the ONNX equations
(`ir.reference.recurrent`) restricted to the slice's units:

GRU: z = sigma(xz + h R_z^T + Rb_z), r = sigma(xr + h R_r^T + Rb_r) for units [u0, u1);
     linear_before_reset = 1: h~ = tanh(xh + r (.) (h R_h^T + Rb_h));
     linear_before_reset = 0: h~ = tanh(xh + (r_all (.) h) R_h^T + Rb_h), with r_all the reset
     gate of every unit from the slice's own `reset_*` parameters;
     H_t = (1 - z) (.) h~ + z (.) h[u0:u1].
LSTM: [i, o, f, c~] = x-part + h R^T + Rb; i = sigma(i + P_i (.) C), f = sigma(f + P_f (.) C)
     (1 - i with input_forget), C' = f (.) C + i (.) tanh(c~), o = sigma(o + P_o (.) C'),
     H_t = o (.) tanh(C').

float: products sum in float64 and round once to float32 (as `backend.kernels`), so a result
does not depend on how the layer was sliced; sigmoid and tanh run in float64, rounded to float32.
int8 (docs/numerics.md): x_t and the exchanged h_{t-1} are int8 codes; the MAC array computes
acc = sum (x - z_x) w_q and sum (h - z_y) r_q exactly (int32), the ARM core scales them by
s_x * s_w[row] and s_y * s_r[row] in floating point, adds the float biases and computes the gates
in fp32 as above; H_t is quantised to the output's (s_y, z_y) (ONNX QuantizeLinear) and sent, so
the state the next step reads is the int8 code. The LSTM cell state stays fp32 in the PE. Three
products are fp32 activations times the int8 rows instead of int8 x int8: the first step's
h_{-1} R^T (the initial state in fp32, which the output's range could clip), a GRU's
(r_all (.) h) R_h^T with linear_before_reset = 0, and an LSTM cell-output slice's h R^T (h kept
locally in fp32).

`run_layer` steps all slices of a layer together: at each step every slice computes its rows,
then the packets of that step (row t of each slice's output box) are delivered to the state
ports that the fill plans of the routed image name, and only then does the next step start.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ir.quant import dequantise, quantise
from ir.reference.recurrent import sigmoid, step_order, tanh

ACCUMULATE = np.float64
Copies = Sequence[tuple[int, tuple[slice, ...], tuple[slice, ...]]]


class RecurrentSlice:
    """One slice of a recurrent layer, ready to step: parameters, ports and state."""

    def __init__(self, opcode: str, attrs: dict[str, Any], params: dict, box_start: int) -> None:
        self.opcode = opcode
        self.attrs = attrs
        self.params = {role: array.astype(ACCUMULATE) for role, array in params.items()}
        self.int8 = bool(attrs.get("int8"))
        self.u0 = box_start
        self.units = params["w"].shape[1]
        self.cell: np.ndarray = np.empty(0)
        self.x_gates: np.ndarray = np.empty(0)
        self.reset_x: np.ndarray = np.empty(0)
        self.last_hidden: np.ndarray = np.empty(0)  # an LSTM's h_t, kept when not exchanged

    def _scale(self, role: str) -> np.ndarray | float:
        """The row scales of an int8 matrix parameter (1 in float)."""
        return self.params[f"{role}_scale"] if self.int8 else 1.0

    def _codes(self, array: np.ndarray, name: str) -> np.ndarray:
        """An int8 activation's codes minus its zero point (float input: unchanged)."""
        if array.dtype != np.int8:
            return array.astype(ACCUMULATE)
        return array.astype(ACCUMULATE) - int(self.attrs[f"{name}_zero_point"])

    def _real(self, array: np.ndarray, name: str) -> np.ndarray:
        """An activation's real value (int8: dequantised with the attributes `name`_*)."""
        if array.dtype != np.int8:
            return array.astype(ACCUMULATE)
        scale, zero = self.attrs[f"{name}_scale"], int(self.attrs[f"{name}_zero_point"])
        return dequantise(array, scale, zero).astype(ACCUMULATE)

    def start(self, ports: list[np.ndarray]) -> np.ndarray:
        """Take the port buffers (x, initial_h / initial_c ports); return h_{-1}[S, B, H]."""
        x = self._codes(ports[0], "input")  # [S, T, B, I]
        x_scale = float(self.attrs["input_scale"]) if self.int8 else 1.0
        acc = np.einsum("stbi,gui->stbgu", x, self.params["w"])
        self.x_gates = acc * (x_scale * self._scale("w")) + self.params["b"][0]
        if "reset_w" in self.params:
            reset = np.einsum("stbi,hi->stbh", x, self.params["reset_w"])
            self.reset_x = reset * (x_scale * self._scale("reset_w")) + self.params["reset_b"][0]
        samples, position = x.shape[0], 1
        if self.attrs["initial_h_port"]:
            h0, position = self._real(ports[1], "initial_h"), 2
        else:
            h0 = self.params["initial_h"]
        if self.opcode == "lstm":
            port = self.attrs["initial_c_port"]
            c0 = self._real(ports[position], "initial_c") if port else self.params["initial_c"]
            self.cell = np.broadcast_to(c0, (samples, *c0.shape[-2:])).astype(ACCUMULATE)
        # fp32 even in int8: quantised to the output's range, a large initial state would clip
        return np.broadcast_to(h0, (samples, *h0.shape[-2:])).astype(np.float32)

    def step(self, t: int, h: np.ndarray) -> np.ndarray:
        """This slice's rows of step t: the new hidden (or cell) state [S, B, U]."""
        hidden = self._real(h, "output")
        codes, scale = hidden, 1.0
        if h.dtype == np.int8:  # the MAC array multiplies the codes; the ARM core scales
            codes, scale = self._codes(h, "output"), float(self.attrs["output_scale"])
        acc = np.einsum("sbh,guh->sbgu", codes, self.params["r"])
        recurrent = acc * (scale * self._scale("r")) + self.params["b"][1]
        if self.opcode == "gru":
            result = self._gru(t, hidden, codes, scale, recurrent)
        else:
            result = self._lstm(t, recurrent)
        if not self.int8:
            return result.astype(np.float32)
        return quantise(result, self.attrs["output_scale"], int(self.attrs["output_zero_point"]))

    def _gru(
        self, t: int, h: np.ndarray, codes: np.ndarray, scale: float, recurrent: np.ndarray
    ) -> np.ndarray:
        x_gates = self.x_gates[:, t]
        z = sigmoid(x_gates[..., 0, :] + recurrent[..., 0, :])
        mine = h[..., self.u0 : self.u0 + self.units]
        if self.attrs["linear_before_reset"]:
            reset = sigmoid(x_gates[..., 1, :] + recurrent[..., 1, :])
            candidate = tanh(x_gates[..., 2, :] + reset * recurrent[..., 2, :])
        else:
            reset_acc = codes @ self.params["reset_r"].T
            reset_h = reset_acc * (scale * self._scale("reset_r")) + self.params["reset_b"][1]
            reset_all = sigmoid(self.reset_x[:, t] + reset_h).astype(ACCUMULATE)
            r_h = self.params["r"][2]
            if self.int8:  # fp32 (r_all (.) h) times the int8 rows of R_h, scaled
                r_h = r_h * self.params["r_scale"][2][:, None]
            candidate = tanh(x_gates[..., 2, :] + (reset_all * h) @ r_h.T + self.params["b"][1, 2])
        return ((1 - z) * candidate + z * mine).astype(np.float32)

    def _lstm(self, t: int, recurrent: np.ndarray) -> np.ndarray:
        gates = self.x_gates[:, t] + recurrent
        p, cell = self.params["p"], self.cell
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
    dtype = np.int8 if slices[0].int8 else np.float32
    outputs = {
        key: np.zeros((samples, steps, batch, s.units), dtype) for key, s in zip(keys, slices)
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
    """h_t[S, B, H] as the state port holds it after step t's packets arrived (the interpreter
    checked at load that the senders' boxes cover the port's box exactly once)."""
    state = np.empty(previous.shape, next(iter(outputs.values())).dtype)
    for key, target, source in copies:
        state[(slice(None), *target[1:])] = outputs[key][(slice(None), t, *source[1:])]
    return state
