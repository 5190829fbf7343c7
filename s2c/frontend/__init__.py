"""The ONNX frontend: an ONNX model becomes a verified `ir.Graph`.

    graph = load_onnx("model.onnx", batch=1)

`load_model_proto` reads and checks a model file; `load_onnx` also binds dynamic batch
dimensions, folds compile-time constants and lowers each node with the handler of its op type.
`SUPPORTED_OPS` lists the ONNX op types that have a handler.
"""

from s2c.frontend.lower import SUPPORTED_OPS, load_onnx
from s2c.frontend.reader import MAX_OPSET, MIN_OPSET, load_model_proto

__all__ = ["MAX_OPSET", "MIN_OPSET", "SUPPORTED_OPS", "load_model_proto", "load_onnx"]
