"""The same ONNX model with another fp32 summation order in every ungrouped convolution.

`reversed_channels(model)` computes the same function as `model` (each Conv reads its input
channels in reverse order, and its weights are reversed to match), so any difference between
onnxruntime's outputs on the two is onnxruntime's own fp32 rounding: a measure of how far an
exact implementation of the model can be from onnxruntime's run of it.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import helper, numpy_helper


def reversed_channels(model: onnx.ModelProto) -> onnx.ModelProto:
    """`model` with the input channels of each ungrouped Conv reversed: Gather(x, C-1..0, axis 1)
    and the int8 weight initializer (read by a DequantizeLinear along axis 0) reversed on axis 1.
    """
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    initializers = {t.name: t for t in copy.graph.initializer}
    producers = {out: node for node in copy.graph.node for out in node.output}
    nodes = []
    for node in copy.graph.node:
        grouped = any(a.name == "group" and a.i != 1 for a in node.attribute)
        if node.op_type == "Conv" and not grouped:
            weight = initializers[producers[node.input[1]].input[0]]
            data = numpy_helper.to_array(weight)
            weight.CopyFrom(
                numpy_helper.from_array(np.ascontiguousarray(data[:, ::-1]), weight.name)
            )
            order = np.arange(data.shape[1] - 1, -1, -1, dtype=np.int64)
            copy.graph.initializer.append(numpy_helper.from_array(order, f"{node.name}/reversed"))
            gathered = f"{node.name}/reversed_input"
            inputs = [node.input[0], f"{node.name}/reversed"]
            nodes.append(helper.make_node("Gather", inputs, [gathered], axis=1))
            node.input[0] = gathered
        nodes.append(node)
    del copy.graph.node[:]
    copy.graph.node.extend(nodes)
    return copy
