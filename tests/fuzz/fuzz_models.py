"""Mutated ONNX models for the frontend fuzz test: case `index` is a pure function of (seed, index).

Two families, drawn half and half:

- bytes: the serialised protobuf of a real (golden) model with bytes flipped, runs inserted or
  deleted, a varint overwritten by an interesting value, a cut, or a splice of two models;
- structure: the ModelProto edited with `onnx.helper`-level operations: element types changed,
  dimensions made negative, zero or huge, a cycle, a dangling or an unused input, NaN or Inf
  written into a weight, external data pointing outside the folder or to a missing file, the
  opset below 6 or above 21, an unknown domain, an attribute removed or given the wrong type,
  a node's op type replaced, a node or initializer dropped, an output renamed.

`model_case(models, seed, index, folder)` writes the case into `folder` and returns
(description, model path).
"""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path

import fuzz_bytes
import numpy as np
import onnx
from onnx import AttributeProto, TensorProto, helper, numpy_helper

ELEMENT_TYPES = tuple(TensorProto.DataType.values())
WRONG_ELEMENT_TYPES = (0, 8, 14, 15, 17, 23, 99, -1)  # undefined, string, complex, float8, ...
HOSTILE_DIMS = (-1, -7, 0, 1 << 31, 1 << 40, (1 << 63) - 1)
HOSTILE_OPSETS = (0, 1, 5, 22, 23, 100, 1 << 40)
OTHER_OPS = ("Relu", "Conv", "Gemm", "Add", "MatMul", "Reshape", "Softmax", "LSTM", "Loop", "If",
             "NonZero", "Unique", "Resize", "TopK", "NoSuchOp", "")  # fmt: skip
INTERESTING_VARINTS = (0, 1, 0x7F, 0x80, 0xFF, 0x3FFF, 0xFFFF_FFFF, 1 << 63)


# --- Byte mutations of the serialised model ---


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def mutate_bytes(rng: random.Random, data: bytes, other: bytes) -> tuple[str, bytes]:
    action = rng.choice(("flip", "flip", "varint", "varint", "insert", "delete", "cut", "splice"))
    if action == "varint":
        value = rng.choice(INTERESTING_VARINTS)
        description, mutated = fuzz_bytes.overwrite(rng, data, _varint(value), f"varint {value:#x}")
        return f"bytes: {description}", mutated
    edit = {
        "flip": lambda: fuzz_bytes.flip(rng, data, rng.randint(1, 6)),
        "insert": lambda: fuzz_bytes.insert(rng, data, 32),
        "delete": lambda: fuzz_bytes.delete(rng, data, 64),
        "cut": lambda: fuzz_bytes.cut(rng, data),
        "splice": lambda: fuzz_bytes.splice(rng, data, other),
    }[action]
    description, mutated = edit()
    return f"bytes: {description}", mutated


# --- Structured mutations ---


def _value_infos(model: onnx.ModelProto) -> list[onnx.ValueInfoProto]:
    graph = model.graph
    return [*graph.input, *graph.output, *graph.value_info]


def wrong_element_type(rng: random.Random, model: onnx.ModelProto) -> str:
    if rng.random() < 0.5 and model.graph.initializer:
        tensor = rng.choice(model.graph.initializer)
        tensor.data_type = rng.choice((*WRONG_ELEMENT_TYPES, *ELEMENT_TYPES))
        return f"initializer '{tensor.name}' data_type {tensor.data_type}"
    value = rng.choice(_value_infos(model))
    value.type.tensor_type.elem_type = rng.choice((*WRONG_ELEMENT_TYPES, *ELEMENT_TYPES))
    return f"value '{value.name}' elem_type {value.type.tensor_type.elem_type}"


def hostile_dim(rng: random.Random, model: onnx.ModelProto) -> str:
    if rng.random() < 0.4 and model.graph.initializer:
        tensor = rng.choice(model.graph.initializer)
        if tensor.dims:
            axis = rng.randrange(len(tensor.dims))
            tensor.dims[axis] = rng.choice(HOSTILE_DIMS)
            return f"initializer '{tensor.name}' dims {list(tensor.dims)}"
    value = rng.choice(_value_infos(model))
    dims = value.type.tensor_type.shape.dim
    if not dims:
        dims.add().dim_value = rng.choice(HOSTILE_DIMS)
    else:
        dim = dims[rng.randrange(len(dims))]
        choice = rng.choice((*HOSTILE_DIMS, "symbolic"))
        if choice == "symbolic":
            dim.dim_param = "unknown"
        else:
            dim.dim_value = choice
    return f"value '{value.name}' dims {[d.dim_value or d.dim_param for d in dims]}"


def cycle(rng: random.Random, model: onnx.ModelProto) -> str:
    nodes = model.graph.node
    if len(nodes) < 2:
        nodes[0].input[0] = nodes[0].output[0]
        return f"node '{nodes[0].name}' reads its own output"
    early, late = sorted(rng.sample(range(len(nodes)), 2))
    slot = rng.randrange(len(nodes[early].input)) if nodes[early].input else 0
    if nodes[early].input:
        nodes[early].input[slot] = nodes[late].output[0]
    else:
        nodes[early].input.append(nodes[late].output[0])
    if rng.random() < 0.5:
        return f"node {early} reads node {late}'s output (listed later)"
    node_copy = onnx.NodeProto()
    node_copy.CopyFrom(nodes[early])
    del nodes[early]
    nodes.append(node_copy)
    return f"node {early} reads node {late}'s output and is moved last (a cycle)"


def dangling_input(rng: random.Random, model: onnx.ModelProto) -> str:
    node = rng.choice(model.graph.node)
    name = rng.choice(("nowhere", "", " ", "x" * 300))
    if node.input and rng.random() < 0.7:
        node.input[rng.randrange(len(node.input))] = name
    else:
        node.input.append(name)
    return f"node '{node.name}' reads {name!r}"


def unused_input(rng: random.Random, model: onnx.ModelProto) -> str:
    """A graph input no node reads (valid ONNX)."""
    elem = rng.choice((TensorProto.FLOAT, TensorProto.INT64, TensorProto.STRING, 0))
    shape = rng.choice(([1, 3], ["N", 3], [], None, [0], [-1]))
    model.graph.input.append(helper.make_tensor_value_info("unused", elem, shape))
    return f"unused input elem {elem} shape {shape}"


def nan_weight(rng: random.Random, model: onnx.ModelProto) -> str:
    floats = [t for t in model.graph.initializer if t.data_type == TensorProto.FLOAT]
    if not floats:
        return "no float initializer"
    tensor = rng.choice(floats)
    array = numpy_helper.to_array(tensor).copy()
    if array.size:
        array.reshape(-1)[rng.randrange(array.size)] = rng.choice((np.nan, np.inf, -np.inf))
    tensor.CopyFrom(numpy_helper.from_array(array, tensor.name))
    return f"initializer '{tensor.name}' holds NaN or Inf"


def external_data(rng: random.Random, model: onnx.ModelProto, folder: Path) -> str:
    tensor = rng.choice(model.graph.initializer)
    size = len(tensor.raw_data) or 4
    (folder.parent / "outside.bin").write_bytes(bytes(size))
    (folder / "short.bin").write_bytes(bytes(max(0, size // 2)))
    outside = str(folder.parent / "outside.bin")
    locations = ("../outside.bin", outside, "missing.bin", "short.bin", "", "sub/../../outside.bin")
    location = rng.choice((*locations, "/dev/zero", "."))
    tensor.ClearField("raw_data")
    del tensor.float_data[:]
    del tensor.external_data[:]
    entry = tensor.external_data.add()
    entry.key, entry.value = "location", location
    if rng.random() < 0.5:
        for key, value in (("offset", rng.choice(("0", "-5", "x", "99999999"))), ("length", "4")):
            entry = tensor.external_data.add()
            entry.key, entry.value = key, value
    tensor.data_location = TensorProto.EXTERNAL
    return f"initializer '{tensor.name}' external data at {location!r}"


def bad_opset(rng: random.Random, model: onnx.ModelProto) -> str:
    version = rng.choice(HOSTILE_OPSETS)
    if rng.random() < 0.2 or not model.opset_import:
        del model.opset_import[:]
        return "no opset import"
    model.opset_import[0].version = version
    return f"opset {version}"


def unknown_domain(rng: random.Random, model: onnx.ModelProto) -> str:
    node = rng.choice(model.graph.node)
    node.domain = rng.choice(("com.example", "ai.onnx.ml", "com.microsoft", "ai.onnx.preview"))
    if rng.random() < 0.5:
        model.opset_import.append(helper.make_opsetid(node.domain, 1))
    return f"node '{node.name}' in domain {node.domain}"


def _attribute(rng: random.Random, model: onnx.ModelProto) -> tuple[onnx.NodeProto, int]:
    """A random node that has attributes, and the index of one of them (IndexError: none)."""
    node = rng.choice([n for n in model.graph.node if n.attribute])
    return node, rng.randrange(len(node.attribute))


def missing_attribute(rng: random.Random, model: onnx.ModelProto) -> str:
    node, index = _attribute(rng, model)
    name = node.attribute[index].name
    del node.attribute[index]
    return f"node '{node.name}' loses attribute {name}"


def wrong_attribute_type(rng: random.Random, model: onnx.ModelProto) -> str:
    node, index = _attribute(rng, model)
    name = node.attribute[index].name
    replacement = rng.choice(
        (1.5, 7, -1, 1 << 40, "text", [1.0, 2.0], [0, -1], [1 << 40] * 4, b"\xff\xfe", None)
    )
    if replacement is None:  # declared a graph, holds nothing
        attribute = AttributeProto(name=name, type=AttributeProto.GRAPH)
    else:
        attribute = helper.make_attribute(name, replacement)
    node.attribute[index].CopyFrom(attribute)
    return f"node '{node.name}' attribute {name} = {replacement!r}"


def other_op(rng: random.Random, model: onnx.ModelProto) -> str:
    node = rng.choice(model.graph.node)
    node.op_type = rng.choice(OTHER_OPS)
    return f"node '{node.name}' becomes {node.op_type!r}"


def drop_something(rng: random.Random, model: onnx.ModelProto) -> str:
    graph = model.graph
    if rng.random() < 0.5 and graph.initializer:
        index = rng.randrange(len(graph.initializer))
        name = graph.initializer[index].name
        del graph.initializer[index]
        return f"initializer '{name}' dropped"
    index = rng.randrange(len(graph.node))
    name = graph.node[index].name
    del graph.node[index]
    return f"node '{name}' dropped"


def rename_output(rng: random.Random, model: onnx.ModelProto) -> str:
    output = rng.choice(model.graph.output)
    output.name = rng.choice(("nowhere", "", model.graph.input[0].name))
    return f"output renamed {output.name!r}"


STRUCTURED: dict[str, Callable[[random.Random, onnx.ModelProto], str]] = {
    "element type": wrong_element_type,
    "dims": hostile_dim,
    "cycle": cycle,
    "dangling input": dangling_input,
    "unused input": unused_input,
    "nan weight": nan_weight,
    "opset": bad_opset,
    "domain": unknown_domain,
    "missing attribute": missing_attribute,
    "attribute type": wrong_attribute_type,
    "other op": other_op,
    "drop": drop_something,
    "rename output": rename_output,
}


def model_case(
    models: dict[str, onnx.ModelProto], seed: int, index: int, folder: Path
) -> tuple[str, Path]:
    """Write case `index` into `folder` (a fresh folder inside another): (description, path)."""
    rng = random.Random(f"s2c-model-fuzz-{seed}-{index}")
    names = sorted(models)
    name = rng.choice(names)
    path = folder / "model.onnx"
    if rng.random() < 0.5:
        data = models[name].SerializeToString()
        other = models[rng.choice(names)].SerializeToString()
        description, mutated = mutate_bytes(rng, data, other)
        path.write_bytes(mutated)
        return f"{name}: {description}", path
    model = onnx.ModelProto()
    model.CopyFrom(models[name])
    edits = []
    for _ in range(rng.choice((1, 1, 1, 2))):
        kind = rng.choice([*STRUCTURED, "external data"])
        try:
            if kind == "external data":
                edits.append(external_data(rng, model, folder))
            else:
                edits.append(STRUCTURED[kind](rng, model))
        except (IndexError, ValueError):  # e.g. nothing left to edit after a drop
            edits.append(f"{kind}: not applicable")
    path.write_bytes(model.SerializeToString())
    return f"{name}: {'; '.join(edits)}", path
