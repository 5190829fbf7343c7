"""Constant folding at import: a node whose operands are all compile-time constants is evaluated.

The node is run alone by `onnx.reference.ReferenceEvaluator` (the ONNX reference implementation),
as a one-node model at the model's opset, and its results are stored as constants. This evaluates
shape arithmetic (Shape -> Gather -> Concat -> Reshape), weights built by ConstantOfShape, casts
and the like, including ops that have no IR lowering. Random generators are never folded, and
neither are nodes with subgraphs (If, Loop, Scan), whose bodies may read outer values.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper
from onnx.reference import ReferenceEvaluator

from s2c.frontend.dtypes import onnx_elem_type
from s2c.frontend.reader import DEFAULT_DOMAINS

NEVER_FOLDED = frozenset(
    {
        "Bernoulli",
        "Multinomial",
        "RandomNormal",
        "RandomNormalLike",
        "RandomUniform",
        "RandomUniformLike",
    }
)

_SUBGRAPH_TYPES = (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS)


def can_fold(node: onnx.NodeProto, constants: dict[str, np.ndarray]) -> bool:
    """True when the node is deterministic, has no subgraph and reads only constants."""
    if node.domain not in DEFAULT_DOMAINS or node.op_type in NEVER_FOLDED:
        return False
    if any(a.type in _SUBGRAPH_TYPES for a in node.attribute):
        return False
    return all(name in constants for name in node.input if name)


def evaluate(
    node: onnx.NodeProto, constants: dict[str, np.ndarray], opset: int
) -> list[np.ndarray | None]:
    """Run the node on its constant operands; one array per ONNX output (None for unnamed).

    Raises:
        ValueError: the reference implementation failed or returned a non-tensor.
    """
    names = sorted({n for n in node.input if n})
    inputs = [
        helper.make_tensor_value_info(n, onnx_elem_type(np.asarray(constants[n])), None)
        for n in names
    ]
    outputs = [helper.make_empty_tensor_value_info(n) for n in node.output if n]
    graph = helper.make_graph([node], "fold", inputs, outputs)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    try:
        results = ReferenceEvaluator(model).run(None, {n: constants[n] for n in names})
    except Exception as exc:  # the reference implementation raises anything
        raise ValueError(_first_line(exc)) from None
    by_name = dict(zip([n for n in node.output if n], results, strict=True))
    return [_as_array(by_name[n]) if n else None for n in node.output]


def _as_array(result: object) -> np.ndarray:
    if isinstance(result, (list, tuple, dict)):
        raise ValueError("the result is a sequence or map, not a tensor")
    return np.asarray(result)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
