"""The op registry: each op is declared once with its operands, attributes and shape rule.

An `OpDef` names the op, how many operands it takes, the attributes it accepts (with kinds and
defaults), a shape rule that computes result types from operand types and attributes, and an
optional `verify` hook returning a reason string when a node is malformed. The verifier and the
printer read the registry; nothing else hard-codes op signatures.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ir.types import TensorType

# Attribute kinds: "int", "float", "str", "ints" (tuple of int), "floats" (tuple of float).
ATTR_KINDS = ("int", "float", "str", "ints", "floats")


@dataclass(frozen=True)
class AttrSpec:
    """An attribute an op accepts: its kind and, when optional, its default."""

    kind: str
    default: Any = None
    required: bool = False

    def accepts(self, value: Any) -> bool:
        if self.kind == "int":
            return isinstance(value, int) and not isinstance(value, bool)
        if self.kind == "float":
            return isinstance(value, float)
        if self.kind == "str":
            return isinstance(value, str)
        if self.kind == "ints":
            return isinstance(value, tuple) and all(
                isinstance(v, int) and not isinstance(v, bool) for v in value
            )
        if self.kind == "floats":
            return isinstance(value, tuple) and all(isinstance(v, float) for v in value)
        return False


ShapeRule = Callable[[list[TensorType], dict[str, Any]], list[TensorType]]
VerifyHook = Callable[[list[TensorType], dict[str, Any]], "str | None"]


@dataclass(frozen=True)
class OpDef:
    """The declaration of one op."""

    name: str
    summary: str
    operands: tuple[int, int]  # (minimum, maximum) operand count
    attrs: dict[str, AttrSpec] = field(default_factory=dict)
    infer: ShapeRule | None = None
    verify: VerifyHook | None = None
    results: int = 1  # -1: decided by attributes (e.g. split)

    def with_defaults(self, attrs: dict[str, Any]) -> dict[str, Any]:
        """`attrs` completed with the defaults of optional attributes."""
        full = {k: spec.default for k, spec in self.attrs.items() if not spec.required}
        full.update(attrs)
        return full


OPS: dict[str, OpDef] = {}


def register(op: OpDef) -> OpDef:
    if op.name in OPS:
        raise ValueError(f"op {op.name!r} registered twice")
    OPS[op.name] = op
    return op


def get_op(name: str) -> OpDef:
    if name not in OPS:
        raise KeyError(f"unknown IR op {name!r}")
    return OPS[name]
