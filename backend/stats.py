"""Static counts of what a kernel does per firing: multiply-accumulates."""

from __future__ import annotations

import math

from backend.program import Kernel


def mac_count(kernel: Kernel) -> int:
    """Multiply-accumulates per firing of one kernel (per sample).

    conv: output elements x (input channels per group x kernel volume);
    dense: output elements x input features; other kernels: 0 (they run on the ARM core).
    """
    out = kernel.output.box.size
    if kernel.opcode == "conv":
        weight = next(p for p in kernel.params if p.role == "weight")
        return out * math.prod(weight.shape[1:])
    if kernel.opcode == "dense":
        weight = next(p for p in kernel.params if p.role == "weight")
        return out * weight.shape[0]
    return 0
