"""A text form of the graph, for `--dump-ir`, `--print-after` and tests.

    graph @name(%x: tensor<1x3x8x8xfloat32>) {
      %w = constant tensor<4x3x3x3xfloat32>
      %y = conv(%x, %w) {dilations = (1, 1), group = 1, pads = (1, 1, 1, 1), strides = (1, 1)}
           : tensor<1x4x8x8xfloat32>  // conv_0
      return %y
    }

Constants print their type only (and a scalar's value); attributes print sorted by name.
"""

from __future__ import annotations

from ir.graph import Graph, Node, Value


def format_attr(value: object) -> str:
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, float):
        return repr(value)
    return str(value)


def _format_constant(value: Value) -> str:
    text = f"  %{value.name} = constant {value.type}"
    if value.data is not None and value.data.size == 1:
        text += f" = {value.data.reshape(-1)[0]!r}"
    return text


def _format_node(node: Node) -> str:
    results = ", ".join(f"%{v.name}" for v in node.outputs)
    operands = ", ".join(f"%{v.name}" for v in node.inputs)
    attrs = ""
    if node.attrs:
        items = ", ".join(f"{k} = {format_attr(v)}" for k, v in sorted(node.attrs.items()))
        attrs = f" {{{items}}}"
    types = ", ".join(str(v.type) for v in node.outputs)
    return f"  {results} = {node.op}({operands}){attrs} : {types}  // {node.name}"


def print_graph(graph: Graph) -> str:
    """The graph as text, constants first, then nodes in order."""
    params = ", ".join(f"%{v.name}: {v.type}" for v in graph.inputs)
    lines = [f"graph @{graph.name}({params}) {{"]
    lines += [_format_constant(v) for v in graph.constants()]
    lines += [_format_node(n) for n in graph.nodes]
    lines.append("  return " + ", ".join(f"%{v.name}" for v in graph.outputs))
    lines.append("}")
    return "\n".join(lines)
