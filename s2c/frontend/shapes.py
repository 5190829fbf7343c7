"""Static shapes: binding dynamic input dimensions, then ONNX shape inference.

s2c compiles for one fixed shape. A graph input's symbolic or unknown leading dimension becomes
the batch size; any other unknown dimension is an error. ONNX shape inference (with data
propagation, so that shape arithmetic is followed) then types the intermediate values; the
frontend cross-checks its own shape rules against those types.

Shape inference runs on a skeleton of the model: large initializers are declared as typed graph
inputs instead of carried as data (a big model is not copied in memory twice), and the model's
own declarations of intermediate and output shapes are left out, so that the cross-check compares
the IR's shape rules with what ONNX infers, not with what an exporter wrote.
"""

from __future__ import annotations

import onnx
from onnx import shape_inference

from ir.errors import InputError, UnsupportedError

# Initializers with more elements than this are declared, not copied, for shape inference.
_SKELETON_LIMIT = 4096


def bind_inputs(model: onnx.ModelProto, batch: int) -> None:
    """Fix every graph input's dimensions in place: unknown leading dimension = `batch`.

    Raises:
        InputError: an input has no shape or an unknown dimension other than the first.
        UnsupportedError: an input is not a tensor (a sequence, map or optional).
    """
    if batch < 1:
        raise InputError(f"batch must be at least 1, got {batch}")
    initializers = {t.name for t in model.graph.initializer}
    for value in model.graph.input:
        if value.name in initializers:
            continue
        if value.type.WhichOneof("value") != "tensor_type":
            kind = value.type.WhichOneof("value") or "untyped value"
            raise UnsupportedError(
                f"input '{value.name}' is a {kind.replace('_type', '')}; s2c compiles tensors only",
                [f"input '{value.name}': not a tensor"],
            )
        _bind_tensor_shape(value, batch)


def _bind_tensor_shape(value: onnx.ValueInfoProto, batch: int) -> None:
    tensor = value.type.tensor_type
    if not tensor.HasField("shape"):
        raise InputError(f"input '{value.name}' has no shape; s2c needs static shapes")
    for axis, dim in enumerate(tensor.shape.dim):
        if dim.HasField("dim_value") and dim.dim_value >= 0:
            continue
        if dim.HasField("dim_value") and dim.dim_value < -1:
            raise InputError(f"input '{value.name}' axis {axis} has negative size {dim.dim_value}")
        if axis != 0:
            named = f" ({dim.dim_param!r})" if dim.HasField("dim_param") else ""
            raise InputError(
                f"input '{value.name}' axis {axis}{named} has no fixed size; s2c needs static "
                "shapes (export the model with this axis fixed, e.g. the sequence length)"
            )
        dim.Clear()
        dim.dim_value = batch


def infer_types(model: onnx.ModelProto) -> dict[str, tuple[tuple[int | None, ...], int]]:
    """ONNX shape inference: value name -> (shape with None for unknown dims, element type)."""
    skeleton = _skeleton(model)
    try:
        inferred = shape_inference.infer_shapes(skeleton, strict_mode=False, data_prop=True)
    except (shape_inference.InferenceError, ValueError, RuntimeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(f"ONNX shape inference fails on the model: {first}") from None
    graph = inferred.graph
    types = {}
    for value in [*graph.input, *graph.value_info, *graph.output]:
        found = _tensor_type(value)
        if found is not None:
            types[value.name] = found
    return types


def _tensor_type(value: onnx.ValueInfoProto) -> tuple[tuple[int | None, ...], int] | None:
    if value.type.WhichOneof("value") != "tensor_type":
        return None
    tensor = value.type.tensor_type
    if not tensor.HasField("shape"):
        return None
    dims = tuple(
        d.dim_value if d.HasField("dim_value") and d.dim_value >= 0 else None
        for d in tensor.shape.dim
    )
    return dims, tensor.elem_type


def _skeleton(model: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of the model whose large initializers are typed graph inputs, without data."""
    skeleton = onnx.ModelProto()
    skeleton.ir_version = model.ir_version
    skeleton.opset_import.extend(model.opset_import)
    skeleton.functions.extend(model.functions)
    source, graph = model.graph, skeleton.graph
    graph.name = source.name
    graph.node.extend(source.node)
    graph.input.extend(source.input)
    for output in source.output:  # declared result shapes are not trusted: inferred afresh
        declared = graph.output.add()
        declared.CopyFrom(output)
        if declared.type.WhichOneof("value") == "tensor_type":
            declared.type.tensor_type.ClearField("shape")
    graph.sparse_initializer.extend(source.sparse_initializer)
    declared = {v.name for v in source.input}
    for tensor in source.initializer:
        if _element_count(tensor) <= _SKELETON_LIMIT:
            graph.initializer.append(tensor)
        elif tensor.name not in declared:
            graph.input.append(
                onnx.helper.make_tensor_value_info(tensor.name, tensor.data_type, tensor.dims)
            )
    return skeleton


def _element_count(tensor: onnx.TensorProto) -> int:
    count = 1
    for dim in tensor.dims:
        count *= dim
    return count
