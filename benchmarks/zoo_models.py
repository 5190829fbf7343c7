"""The nine model-zoo graphs of ONNX's backend test suite, with seeded random weights.

onnx ships "light" versions of nine model-zoo networks (onnx/backend/test/data/light): the graph
structure of the originals, but every weight is `ConstantOfShape(0.02)`. With all weights equal,
every logit is the same number and the Softmax output is a flat 0.001, which checks little. This
module rebuilds each graph with every floating-point weight replaced by seeded random values of
the same shape, so that comparisons against onnxruntime mean something:

- conv / Gemm / MatMul weights: He-scaled normal, std sqrt(2 / fan_in);
- BatchNormalization variance (and any weight named like *var* / *_riv*): uniform(0.5, 1.5),
  which keeps it positive; BatchNormalization scale, and per-channel `Mul` scales: uniform(0.5,
  1.5), so that scale / sqrt(var) stays near 1;
- biases, BatchNormalization means and shifts, anything else: normal with std 0.1.

A weight is any float tensor made by a `ConstantOfShape` or `Constant` node whose inputs are
constants, or held in a float initializer, and consumed by an operator (possibly through a
`Reshape` or `Unsqueeze`). Such a weight becomes an initializer; the nodes and shape tensors that
made it are dropped. The seed is fixed per model (a CRC of its name), so the same name always
gives the same model.

    model = randomised_model("resnet50")         # random weights, same graph
    logits = cut_at_softmax(model)               # the Softmax's input as the graph output
    x = seeded_input(model)                      # standard-normal input, seeded
"""

from __future__ import annotations

import zlib
from collections import defaultdict
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

MODEL_NAMES = (
    "bvlc_alexnet",
    "densenet121",
    "inception_v1",
    "inception_v2",
    "resnet50",
    "shufflenet",
    "squeezenet",
    "vgg19",
    "zfnet512",
)

LIGHT_DIR = Path(onnx.__file__).resolve().parent / "backend" / "test" / "data" / "light"

# Ops a weight may pass through on its way to the op that uses it.
_PASS_THROUGH = ("Reshape", "Unsqueeze", "Squeeze", "Flatten", "Identity", "Transpose")
_FLOAT_TYPES = (TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.DOUBLE, TensorProto.BFLOAT16)


def light_model_path(name: str) -> Path:
    """The light model-zoo graph shipped with onnx, e.g. `light_model_path("resnet50")`."""
    path = LIGHT_DIR / f"light_{name}.onnx"
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist; the light models are: {MODEL_NAMES}")
    return path


def model_seed(name: str) -> int:
    """The fixed seed of a model: a CRC-32 of its name."""
    return zlib.crc32(name.encode())


def randomised_model(name: str) -> onnx.ModelProto:
    """The light model `name` with seeded random weights (see the module docstring)."""
    return randomise_weights(onnx.load(str(light_model_path(name))), model_seed(name))


def randomise_weights(model: onnx.ModelProto, seed: int) -> onnx.ModelProto:
    """A copy of `model` whose float weights are seeded random values of the same shapes."""
    model = _copy(model)
    graph = model.graph
    initializers = {t.name: t for t in graph.initializer}
    constant_nodes = _constant_weight_nodes(graph, initializers)
    weights: dict[str, tuple[int, ...]] = {}
    for index, node in enumerate(graph.node):
        if index in constant_nodes:
            weights[node.output[0]] = _constant_node_shape(node, initializers)
    for tensor in graph.initializer:
        if tensor.data_type in _FLOAT_TYPES:
            weights.setdefault(tensor.name, tuple(tensor.dims))

    consumers = _consumers(graph)
    used = [name for name in _in_graph_order(graph, weights) if consumers[name]]
    rng = np.random.default_rng(seed)
    values = {}
    for name in used:
        op, index, shape = _final_use(graph, consumers, name, weights[name])
        values[name] = _draw(rng, name, weights[name], op, index, shape)

    kept_nodes = [n for i, n in enumerate(graph.node) if i not in constant_nodes]
    del graph.node[:]
    graph.node.extend(kept_nodes)
    new_initializers = [t for t in graph.initializer if t.name not in weights]
    new_initializers += [numpy_helper.from_array(values[n], n) for n in used]
    _install(model, new_initializers, set(initializers))
    return model


def cut_at_softmax(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of `model` that outputs the logits: the input of the Softmax that makes its output.

    A model whose output is not made by a Softmax (densenet121 ends in a Conv) already outputs
    logits and is returned unchanged (as a copy).
    """
    model = _copy(model)
    graph = model.graph
    (output,) = graph.output
    producers = [n for n in graph.node if output.name in n.output]
    if not producers or producers[0].op_type != "Softmax":
        return model
    softmax = producers[0]
    logits = softmax.input[0]
    # Softmax keeps the shape, so the logits have the output's type.
    output.name = logits
    kept = [n for n in graph.node if n is not softmax]
    del graph.node[:]
    graph.node.extend(kept)
    return model


def graph_inputs(model: onnx.ModelProto) -> list[onnx.ValueInfoProto]:
    """The graph inputs that are not initializers (what a caller feeds)."""
    initialized = {t.name for t in model.graph.initializer}
    return [i for i in model.graph.input if i.name not in initialized]


def seeded_input(model: onnx.ModelProto, seed: int = 0) -> dict[str, np.ndarray]:
    """Standard-normal float32 arrays for the model's fed inputs (dynamic axes bound to 1)."""
    rng = np.random.default_rng(seed)
    arrays = {}
    for value in graph_inputs(model):
        dims = value.type.tensor_type.shape.dim
        shape = tuple(d.dim_value if d.HasField("dim_value") else 1 for d in dims)
        arrays[value.name] = rng.standard_normal(shape).astype(np.float32)
    return arrays


# -- helpers --------------------------------------------------------------------------------------
def _copy(model: onnx.ModelProto) -> onnx.ModelProto:
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    return copy


def _consumers(graph: onnx.GraphProto) -> dict[str, list[tuple[onnx.NodeProto, int]]]:
    consumers: dict[str, list[tuple[onnx.NodeProto, int]]] = defaultdict(list)
    for node in graph.node:
        for index, name in enumerate(node.input):
            if name:
                consumers[name].append((node, index))
    return consumers


def _constant_weight_nodes(graph: onnx.GraphProto, initializers) -> set[int]:
    """Indices of ConstantOfShape / Constant nodes that make a float tensor from constants."""
    fed = {i.name for i in graph.input} - set(initializers)
    found = set()
    for index, node in enumerate(graph.node):
        if node.op_type == "ConstantOfShape":
            value = _attribute(node, "value")
            float_value = value is None or value.data_type in _FLOAT_TYPES
            if float_value and node.input[0] in initializers and node.input[0] not in fed:
                found.add(index)
        elif node.op_type == "Constant":
            value = _attribute(node, "value")
            if value is not None and value.data_type in _FLOAT_TYPES and len(value.dims) > 0:
                found.add(index)
    return found


def _attribute(node: onnx.NodeProto, name: str):
    for attribute in node.attribute:
        if attribute.name == name:
            return helper.get_attribute_value(attribute)
    return None


def _constant_node_shape(node: onnx.NodeProto, initializers) -> tuple[int, ...]:
    if node.op_type == "ConstantOfShape":
        return tuple(int(d) for d in numpy_helper.to_array(initializers[node.input[0]]))
    return tuple(_attribute(node, "value").dims)


def _in_graph_order(graph: onnx.GraphProto, weights) -> list[str]:
    """Weight names in a fixed order: initializers first, then nodes, as the file lists them."""
    order = [t.name for t in graph.initializer if t.name in weights]
    order += [n.output[0] for n in graph.node if n.output and n.output[0] in weights]
    seen: set[str] = set()
    return [n for n in order if not (n in seen or seen.add(n))]


def _final_use(graph, consumers, name: str, shape: tuple[int, ...]):
    """(op type, input index, shape there) of the op that uses a weight, past reshapes."""
    node, index = consumers[name][0]
    while node.op_type in _PASS_THROUGH and index == 0 and consumers[node.output[0]]:
        if node.op_type == "Reshape":
            target = _initializer_value(graph, node.input[1])
            if target is not None:
                shape = _reshaped(shape, target)
        elif node.op_type == "Flatten":
            axis = _attribute(node, "axis")
            axis = 1 if axis is None else axis
            shape = (int(np.prod(shape[:axis])), int(np.prod(shape[axis:])))
        node, index = consumers[node.output[0]][0]
    return node, index, shape


def _initializer_value(graph: onnx.GraphProto, name: str):
    for tensor in graph.initializer:
        if tensor.name == name:
            return numpy_helper.to_array(tensor)
    return None


def _reshaped(shape: tuple[int, ...], target: np.ndarray) -> tuple[int, ...]:
    dims = [int(shape[i]) if int(d) == 0 else int(d) for i, d in enumerate(target)]
    if -1 in dims:
        known = int(np.prod([d for d in dims if d != -1]))
        dims[dims.index(-1)] = int(np.prod(shape)) // max(known, 1)
    return tuple(dims)


def _fan_in(node: onnx.NodeProto, shape: tuple[int, ...]) -> int:
    if node.op_type == "Gemm":
        trans_b = _attribute(node, "transB") or 0
        return int(shape[1] if trans_b else shape[0])
    if node.op_type == "MatMul":
        return int(shape[-2]) if len(shape) >= 2 else int(shape[0])
    return int(np.prod(shape[1:])) if len(shape) > 1 else int(shape[0])


def _draw(rng, name: str, shape, node, index: int, use_shape) -> np.ndarray:
    op = node.op_type
    lowered = name.lower()
    f32 = np.float32
    if (op == "BatchNormalization" and index == 4) or "var" in lowered or "_riv" in lowered:
        return rng.uniform(0.5, 1.5, shape).astype(f32)
    if op in ("Conv", "Gemm", "MatMul") and index == 1:
        std = f32(np.sqrt(2.0 / max(_fan_in(node, use_shape), 1)))
        return rng.standard_normal(shape, dtype=f32) * std
    if (op == "BatchNormalization" and index == 1) or op == "Mul":
        return rng.uniform(0.5, 1.5, shape).astype(f32)
    return rng.standard_normal(shape, dtype=f32) * f32(0.1)


def _install(model: onnx.ModelProto, initializers, initialized_before: set[str]) -> None:
    """Install `initializers`, dropping any no node reads, and keep the graph inputs in step.

    Fed inputs stay; an initializer that is dropped leaves the inputs too. IR 3 lists every
    initializer among the graph inputs as well, so new ones are listed there for IR < 4.
    """
    graph = model.graph
    read = {name for node in graph.node for name in node.input} | {o.name for o in graph.output}
    kept = []
    for tensor in initializers:
        if tensor.name in read:
            kept.append(onnx.TensorProto())
            kept[-1].CopyFrom(tensor)
    kept_names = {t.name for t in kept}
    inputs = [i for i in graph.input if i.name not in initialized_before or i.name in kept_names]
    listed = {i.name for i in inputs}
    if model.ir_version < 4:
        for tensor in kept:
            if tensor.name not in listed:
                inputs.append(
                    helper.make_tensor_value_info(tensor.name, tensor.data_type, tensor.dims)
                )
    del graph.initializer[:]
    graph.initializer.extend(kept)
    del graph.input[:]
    graph.input.extend(inputs)
