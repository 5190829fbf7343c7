"""The emitter table: IR op -> the function that writes one such node as ONNX.

An emitter takes a `NodeContext` and appends the ONNX nodes that compute the IR node's results
(as float for quantised results: the exporter adds the QuantizeLinear). Its docstring says what
the op becomes. An op whose ONNX form needs a newer opset for some attributes declares `needs`:
a function of the node returning (opset, reason) when the node needs more than `MIN_OPSET`.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ir.graph import Node
from s2c.export.context import NodeContext

EmitFunction = Callable[[NodeContext], None]
NeedsFunction = Callable[[Node], "tuple[int, str] | None"]


@dataclass(frozen=True)
class Emitter:
    """How one IR op is written: the emitting function and its opset needs."""

    emit: EmitFunction
    needs: NeedsFunction | None = None


EMITTERS: dict[str, Emitter] = {}


def emitter(op: str, needs: NeedsFunction | None = None) -> Callable[[EmitFunction], EmitFunction]:
    """Register the decorated function as the ONNX form of IR op `op`."""

    def register(function: EmitFunction) -> EmitFunction:
        add_emitter(op, function, needs)
        return function

    return register


def add_emitter(op: str, function: EmitFunction, needs: NeedsFunction | None = None) -> None:
    """Register `function` as the ONNX form of IR op `op` (for generated emitters)."""
    if op in EMITTERS:
        raise ValueError(f"two emitters for IR {op}")
    EMITTERS[op] = Emitter(function, needs)
