"""The handler table: ONNX op type -> the function that lowers one such node.

A handler takes a `NodeContext` and returns one entry per ONNX output it computes: an IR value,
a numpy array (the output is a compile-time constant) or None (not computed). It raises
`NodeUnsupported` with the user's reason when it cannot lower the node. Its docstring says what
the op lowers to.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ir.graph import Value
from s2c.frontend.context import NodeContext

Result = Value | np.ndarray | None
Handler = Callable[[NodeContext], list[Result]]

HANDLERS: dict[str, Handler] = {}


def handler(op_type: str) -> Callable[[Handler], Handler]:
    """Register the decorated function as the lowering of ONNX `op_type`."""

    def register(function: Handler) -> Handler:
        add_handler(op_type, function)
        return function

    return register


def add_handler(op_type: str, function: Handler) -> None:
    """Register `function` as the lowering of ONNX `op_type` (for generated handlers)."""
    if op_type in HANDLERS:
        raise ValueError(f"two handlers for ONNX {op_type}")
    HANDLERS[op_type] = function
