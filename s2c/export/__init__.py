"""The ONNX exporter: an IR graph becomes an ONNX model computing the same function.

    model = export_onnx(graph, opset=17)

A float graph becomes a plain float model, one small emitter per IR op. A quantised graph
(docs/numerics.md) becomes a QDQ model: float graph inputs are quantised and dequantised as the
host does; conv, dense, add, sub, mul, matmul, concat, gather of int8 data and element-wise
lookups are written as their exact integer computation (`integer`: ConvInteger,
MatMulInteger, int64 MatMul, int64 fixed-point requantisation); every other quantised result
is computed in float, then passes QuantizeLinear and
DequantizeLinear, and its quantised constants are integer initializers read through
DequantizeLinear. Run it in onnxruntime with graph optimisations disabled
(`ORT_DISABLE_ALL`) so that every QuantizeLinear and DequantizeLinear is evaluated as written.

`EXPORTED_OPS` lists the IR ops that have an emitter; `opset_needs` says which parts of a graph
need an opset newer than `MIN_OPSET`.
"""

from s2c.export import (  # noqa: F401  (each module registers its emitters)
    activations,
    conv,
    elementwise,
    movement,
    normalise,
    pool,
    recurrent,
    reduce,
    sequence,
)
from s2c.export.exporter import MAX_OPSET, MIN_OPSET, export_onnx, opset_needs
from s2c.export.registry import EMITTERS

EXPORTED_OPS: tuple[str, ...] = tuple(sorted(EMITTERS))

__all__ = ["EXPORTED_OPS", "MAX_OPSET", "MIN_OPSET", "export_onnx", "opset_needs"]
