"""Recurrent ops (ONNX GRU-14 and LSTM-14, one direction, default activations), in float32.

With sigma the logistic sigmoid, (.) the element-wise product, x_t[B, I] the input of step t and
H_{t-1} the previous hidden state (initial_h before the first step); W*, R* the gate blocks of w
and r, Wb*, Rb* those of b:

GRU (gates z, r, h):
    z_t = sigma(x_t W_z^T + H_{t-1} R_z^T + Wb_z + Rb_z)
    r_t = sigma(x_t W_r^T + H_{t-1} R_r^T + Wb_r + Rb_r)
    linear_before_reset = 0: h~_t = tanh(x_t W_h^T + (r_t (.) H_{t-1}) R_h^T + Rb_h + Wb_h)
    linear_before_reset = 1: h~_t = tanh(x_t W_h^T + r_t (.) (H_{t-1} R_h^T + Rb_h) + Wb_h)
    H_t = (1 - z_t) (.) h~_t + z_t (.) H_{t-1}

LSTM (gates i, o, f, c; peepholes p = P_i, P_o, P_f):
    i_t = sigma(x_t W_i^T + H_{t-1} R_i^T + P_i (.) C_{t-1} + Wb_i + Rb_i)
    f_t = sigma(x_t W_f^T + H_{t-1} R_f^T + P_f (.) C_{t-1} + Wb_f + Rb_f)   (1 - i_t when
          input_forget = 1, as onnxruntime couples the two gates)
    c~_t = tanh(x_t W_c^T + H_{t-1} R_c^T + Wb_c + Rb_c)
    C_t = f_t (.) C_{t-1} + i_t (.) c~_t
    o_t = sigma(x_t W_o^T + H_{t-1} R_o^T + P_o (.) C_t + Wb_o + Rb_o)
    H_t = o_t (.) tanh(C_t)

`reverse` = 1 runs t = T-1 down to 0. The products are float32 matrix products (as onnxruntime's
GEMMs); the sigmoid and tanh are evaluated in float64 and rounded once to float32.
"""

from __future__ import annotations

from typing import Any

import numpy as np

Attrs = dict[str, Any]


def sigmoid(x: np.ndarray) -> np.ndarray:
    """The logistic function, in float64, rounded to float32."""
    return (1.0 / (1.0 + np.exp(-x.astype(np.float64)))).astype(np.float32)


def tanh(x: np.ndarray) -> np.ndarray:
    """tanh in float64, rounded to float32."""
    return np.tanh(x.astype(np.float64)).astype(np.float32)


def step_order(steps: int, reverse: int) -> range:
    """The steps in the order a direction visits them."""
    return range(steps - 1, -1, -1) if reverse else range(steps)


def gru_step(
    attrs: Attrs, x_gates: np.ndarray, h: np.ndarray, r: np.ndarray, b: np.ndarray
) -> np.ndarray:
    """One GRU step: H_t from x_t W^T + Wb (x_gates[B, 3H]) and H_{t-1} (h[B, H])."""
    hidden = attrs["hidden_size"]
    recurrent_bias = b[3 * hidden :]
    z_pre, r_pre, h_pre = np.split(x_gates, 3, axis=-1)
    r_z, r_r, r_h = np.split(r, 3, axis=0)
    rb_z, rb_r, rb_h = np.split(recurrent_bias, 3)
    z = sigmoid(z_pre + h @ r_z.T + rb_z)
    reset = sigmoid(r_pre + h @ r_r.T + rb_r)
    if attrs["linear_before_reset"]:
        candidate = tanh(h_pre + reset * (h @ r_h.T + rb_h))
    else:
        candidate = tanh(h_pre + (reset * h) @ r_h.T + rb_h)
    return ((1 - z) * candidate + z * h).astype(np.float32)


def lstm_step(
    attrs: Attrs,
    x_gates: np.ndarray,
    h: np.ndarray,
    c: np.ndarray,
    r: np.ndarray,
    b: np.ndarray,
    p: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """One LSTM step: (H_t, C_t) from x_t W^T + Wb (x_gates[B, 4H]), H_{t-1} and C_{t-1}."""
    hidden = attrs["hidden_size"]
    gates = x_gates + h @ r.T + b[4 * hidden :]
    i_pre, o_pre, f_pre, c_pre = np.split(gates, 4, axis=-1)
    p_i, p_o, p_f = np.split(p, 3)
    i = sigmoid(i_pre + p_i * c)
    f = (1 - i) if attrs["input_forget"] else sigmoid(f_pre + p_f * c)
    cell = (f * c + i * tanh(c_pre)).astype(np.float32)
    o = sigmoid(o_pre + p_o * cell)
    return (o * tanh(cell)).astype(np.float32), cell


def input_gates(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    """x_t W^T + Wb for every step at once: [T, B, G*H] (one float32 GEMM, as onnxruntime)."""
    return (x @ w.T + b[: w.shape[0]]).astype(np.float32)


def gru(attrs: Attrs, inputs: list[np.ndarray]) -> list[np.ndarray]:
    """The hidden state of every step of one GRU direction (see module docstring)."""
    x, w, r, b, h = (a.astype(np.float32) for a in inputs)
    x_gates = input_gates(x, w, b)
    y = np.empty((x.shape[0], x.shape[1], attrs["hidden_size"]), np.float32)
    for t in step_order(x.shape[0], attrs["reverse"]):
        h = gru_step(attrs, x_gates[t], h, r, b)
        y[t] = h
    return [y]


def lstm(attrs: Attrs, inputs: list[np.ndarray]) -> list[np.ndarray]:
    """The hidden (or cell) state of every step of one LSTM direction (see module docstring)."""
    x, w, r, b, h, c, p = (a.astype(np.float32) for a in inputs)
    x_gates = input_gates(x, w, b)
    y = np.empty((x.shape[0], x.shape[1], attrs["hidden_size"]), np.float32)
    for t in step_order(x.shape[0], attrs["reverse"]):
        h, c = lstm_step(attrs, x_gates[t], h, c, r, b, p)
        y[t] = c if attrs["output"] == "cell" else h
    return [y]


KERNELS = {"gru": gru, "lstm": lstm}
