"""Reference semantics of the IR: every op evaluated exactly in numpy, as onnxruntime does.

`evaluate(op, attrs, inputs)` runs one IR op on numpy arrays whose shapes are the IR shapes (batch
axis included) and returns its results. Float operands give float32 results, computed in float32
where onnxruntime does (products and sums through BLAS or numpy) and in float64 rounded once for
transcendental functions; integer operands keep their dtype; `cast` gives the requested dtype.
Results are fresh arrays, never views of the operands.

One module per op family states the maths: `conv` (conv, dense, matmul), `pool` (pool,
global_pool), `elementwise` (binary ops, activation), `activation` (the activation functions,
also used for fused activations), `normalise` (softmax, lrn, batch_norm, instance_norm), `reduce`,
`recurrent` (gru, lstm), `sequence` (layer_norm, where, equal, less) and `movement` (reshape,
transpose, concat, split, slice, pad, gather, expand, tile, identity, dropout, cast); `window`
holds the sliding-window geometry shared by conv and pool.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from ir.errors import InternalError
from ir.reference import conv, elementwise, movement, normalise, pool, recurrent, reduce, sequence
from ir.reference.activation import apply_activation
from ir.registry import get_op

Kernel = Callable[[dict[str, Any], list[np.ndarray]], list[np.ndarray]]

# IR op -> kernel(attrs with defaults, operands) -> results.
KERNELS: dict[str, Kernel] = {
    **conv.KERNELS,
    **pool.KERNELS,
    **elementwise.KERNELS,
    **normalise.KERNELS,
    **reduce.KERNELS,
    **movement.KERNELS,
    **recurrent.KERNELS,
    **sequence.KERNELS,
}


def evaluate(op: str, attrs: dict[str, Any], inputs: list[np.ndarray]) -> list[np.ndarray]:
    """The results of IR op `op` with attributes `attrs` on the operands `inputs`."""
    if op not in KERNELS:
        raise InternalError(f"no reference semantics for IR op {op!r}")
    full = get_op(op).with_defaults(attrs)
    return KERNELS[op](full, [np.asarray(a) for a in inputs])


__all__ = ["KERNELS", "apply_activation", "evaluate"]
