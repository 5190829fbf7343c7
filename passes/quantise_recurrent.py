"""int8 weights of the recurrent ops (`gru`, `lstm`), for `passes.quantise` (docs/numerics.md).

w[G*H, I] and r[G*H, H] become int8, symmetric, one scale per row (per gate and hidden unit):
s[j] = max_k |w[j, k]| / 127 (1 when the row is zero), q = clip(round(w / s), -127, 127). The
products x_t W^T and h_{t-1} R^T then run on the MAC array as int8 x int8 with int32
accumulators; the biases b, the peepholes p and the initial states stay float32, for the gate
arithmetic that runs in fp32 on the ARM core.
"""

from __future__ import annotations

import numpy as np

from ir.graph import Graph, Node
from ir.types import QuantParams, TensorType

RECURRENT_OPS = ("gru", "lstm")


def row_quantised(weight: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(int8 codes, float32 scale per row) of a [rows, columns] weight, symmetric."""
    peak = np.abs(weight.astype(np.float64)).max(axis=1)
    scales = np.where(peak > 0, peak / 127.0, 1.0).astype(np.float32)
    codes = np.clip(np.rint(weight / scales.astype(np.float64)[:, None]), -127, 127)
    return codes.astype(np.int8), scales


def quantise_recurrent_weights(graph: Graph, node: Node) -> None:
    """Replace the node's w and r operands by int8 constants with one scale per row."""
    for position in (1, 2):
        value = node.inputs[position]
        if not value.is_constant or value.type.dtype != "float32":
            continue
        codes, scales = row_quantised(value.constant_data)
        quant = QuantParams(tuple(float(s) for s in scales), (0,) * len(scales), 0)
        constant = graph.constant(value.name + "_q", codes, TensorType(codes.shape, "int8", quant))
        graph.set_input(node, position, constant)
