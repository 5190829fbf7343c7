"""The s2c dataflow IR: typed SSA graph, op registry, verifier and printer."""

from ir import ops as _ops  # noqa: F401  (registers the op set)
from ir import ops_recurrent as _ops_recurrent  # noqa: F401  (registers gru and lstm)
from ir import ops_sequence as _ops_sequence  # noqa: F401  (layer_norm, where, equal, less)
from ir.graph import Graph, Node, Value
from ir.registry import OPS, OpDef, get_op
from ir.types import QuantParams, TensorType

__all__ = ["OPS", "Graph", "Node", "OpDef", "QuantParams", "TensorType", "Value", "get_op"]
