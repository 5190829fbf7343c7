"""Layer plans: the slices of a float layer fired as one computation give the layer's result.

References: onnxruntime on the same model, and the same image run without plans (every kernel
fired in its firing group). Each model is big enough that its layers are cut into row slices,
output-channel chunks and input-channel chunks; the tests check that plans were formed for them.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import onnxruntime
import pytest
from onnx import TensorProto, helper, numpy_helper

from backend.image import decode_image, encode_image
from backend.interpreter import Interpreter
from backend.layer_plans import ConvPlan, ElementwisePlan, PoolPlan, build_plans, head_kernels
from s2c.driver import CompileOptions, compile_model


def _model(nodes, inputs, output_shape, weights, rng):
    initializers = [
        numpy_helper.from_array(rng.normal(0, scale, shape).astype(np.float32), name)
        for name, (shape, scale) in weights.items()
    ]
    graph = helper.make_graph(
        nodes,
        "plans",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in inputs.items()],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, output_shape)],
        initializers,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _stem(rng):
    """7x7 stride-2 conv with ReLU, 3x3 stride-2 max pool, 3x3 conv, 1x1 stride-2 conv."""
    nodes = [
        helper.make_node("Conv", ["x", "w0", "b0"], ["c0"], strides=[2, 2], pads=[3, 3, 3, 3]),
        helper.make_node("Relu", ["c0"], ["r0"]),
        helper.make_node(
            "MaxPool", ["r0"], ["p0"], kernel_shape=[3, 3], strides=[2, 2], pads=[1] * 4
        ),
        helper.make_node("Conv", ["p0", "w1", "b1"], ["c1"], pads=[1, 1, 1, 1]),
        helper.make_node("Conv", ["c1", "w2"], ["y"], strides=[2, 2]),
    ]
    weights = {
        "w0": ((32, 3, 7, 7), 0.1),
        "b0": ((32,), 0.1),
        "w1": ((64, 32, 3, 3), 0.06),
        "b1": ((64,), 0.1),
        "w2": ((96, 64, 1, 1), 0.1),
    }
    return _model(nodes, {"x": [1, 3, 96, 96]}, [1, 96, 12, 12], weights, rng)


def _chunks(rng):
    """3x3 conv 256->64 with ReLU (input-channel chunks, partial sums), a 1x1 branch, their
    sum, and a 3x3 average pool that does not count padding."""
    nodes = [
        helper.make_node("Conv", ["x", "w0", "b0"], ["c0"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c0"], ["r0"]),
        helper.make_node("Conv", ["x", "w1"], ["c1"]),
        helper.make_node("Add", ["r0", "c1"], ["s"]),
        helper.make_node(
            "AveragePool", ["s"], ["y"], kernel_shape=[3, 3], pads=[1] * 4, count_include_pad=0
        ),
    ]
    weights = {"w0": ((64, 256, 3, 3), 0.02), "b0": ((64,), 0.1), "w1": ((64, 256, 1, 1), 0.05)}
    return _model(nodes, {"x": [1, 256, 28, 28]}, [1, 64, 28, 28], weights, rng)


def _dilated(rng):
    """3x3 conv with dilation 2 and asymmetric padding, then stride 2 with end padding only."""
    nodes = [
        helper.make_node("Conv", ["x", "w0"], ["c0"], dilations=[2, 2], pads=[2, 1, 2, 3]),
        helper.make_node("Conv", ["c0", "w1"], ["y"], strides=[2, 2], pads=[0, 0, 1, 1]),
    ]
    weights = {"w0": ((48, 16, 3, 3), 0.1), "w1": ((32, 48, 3, 3), 0.05)}
    return _model(nodes, {"x": [1, 16, 60, 60]}, [1, 32, 30, 30], weights, rng)


CASES = {"stem": _stem, "chunks": _chunks, "dilated": _dilated}


def _compiled(case: str):
    rng = np.random.default_rng(11)
    model = CASES[case](rng)
    ((name, shape),) = [
        (i.name, [d.dim_value for d in i.type.tensor_type.shape.dim]) for i in model.graph.input
    ]
    x = rng.normal(0, 1, (2, *shape)).astype(np.float32)  # two inferences stacked
    result = compile_model(model, CompileOptions(mode="float", placer="greedy"), emit=lambda _: 0)
    return model, name, x, decode_image(encode_image(result.program))


@pytest.mark.parametrize("case", sorted(CASES))
def test_plans_match_onnxruntime_and_the_kernel_by_kernel_run(case: str) -> None:
    model, name, x, program = _compiled(case)
    planned = Interpreter(program)
    kinds = {type(plan) for plan in planned.plans.values()}
    assert ConvPlan in kinds
    assert len(planned.plans) >= 2
    sliced = [p for p in planned.plans.values() if len(p.members) > 1]
    assert sliced, "the layers should be cut into several slices each"

    outputs, _ = planned.run({name: x})
    by_kernel, _ = Interpreter(program, layer_plans=False).run({name: x})
    session = onnxruntime.InferenceSession(
        model.SerializeToString(), providers=["CPUExecutionProvider"]
    )
    for sample in range(x.shape[0]):
        (expected,) = session.run(None, {name: x[sample]})
        np.testing.assert_allclose(outputs["y"][sample], expected, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(outputs["y"], by_kernel["y"], rtol=1e-5, atol=1e-6)


def test_pool_sum_and_partial_sum_layers_get_plans() -> None:
    _, _, _, stem = _compiled("stem")
    _, _, _, chunks = _compiled("chunks")
    kinds = {type(p) for p in Interpreter(stem).plans.values()}
    kinds |= {type(p) for p in Interpreter(chunks).plans.values()}
    assert {ConvPlan, PoolPlan, ElementwisePlan} <= kinds
    opcodes = {
        p.members[0].kernel.opcode
        for p in Interpreter(chunks).plans.values()
        if isinstance(p, ElementwisePlan)
    }
    assert {"partial_sum", "add"} <= opcodes


def test_a_kernel_whose_padding_disagrees_keeps_its_layer_out_of_plans() -> None:
    """One conv slice whose local padding does not match the global conv its neighbours imply:
    the layer is left to the kernel-by-kernel path (a plan would compute something else)."""
    _, _, _, program = _compiled("dilated")
    interpreter = Interpreter(program)
    kernels = [k for _, k in interpreter.kernels]
    conv = next(i for i, k in enumerate(kernels) if k.opcode == "conv" and any(k.attrs["pads"]))
    layer = kernels[conv].layer
    assert any(p.members[0].kernel.layer == layer for p in interpreter.plans.values())
    pads = list(kernels[conv].attrs["pads"])
    pads[0] += 1
    kernels[conv] = dataclasses.replace(
        kernels[conv], attrs={**kernels[conv].attrs, "pads": tuple(pads)}
    )
    plans = build_plans(kernels, interpreter.params, set(), set(), interpreter.prepared)
    assert conv not in {m.index for p in plans for m in p.members}


def _equal_rows_head(rng):
    """A hidden conv, global average pool, then a 1x1 conv head whose 10 weight rows are equal."""
    head = np.repeat(rng.normal(0, 0.2, (1, 64, 1, 1)), 10, axis=0).astype(np.float32)
    nodes = [
        helper.make_node("Conv", ["x", "w0"], ["c0"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c0"], ["r0"]),
        helper.make_node("GlobalAveragePool", ["r0"], ["g"]),
        helper.make_node("Conv", ["g", "head"], ["y"]),
    ]
    model = _model(nodes, {"x": [1, 8, 40, 40]}, [1, 10, 1, 1], {"w0": ((64, 8, 3, 3), 0.2)}, rng)
    model.graph.initializer.append(numpy_helper.from_array(head, "head"))
    return model


def test_head_layers_sum_in_float64_so_equal_weight_rows_give_equal_logits() -> None:
    rng = np.random.default_rng(3)
    model = _equal_rows_head(rng)
    result = compile_model(model, CompileOptions(mode="float"), emit=lambda _: 0)
    program = decode_image(encode_image(result.program))
    interpreter = Interpreter(program)
    kernels = [k for _, k in interpreter.kernels]
    output_keys = {key for io in program.outputs for key, _ in io.keys}
    heads = head_kernels(kernels, output_keys)
    assert {kernels[i].opcode for i in heads} == {"conv"}
    assert all(kernels[i].layer == kernels[max(heads)].layer for i in heads)
    x = rng.normal(0, 1, (3, 1, 8, 40, 40)).astype(np.float32)
    outputs, _ = interpreter.run({"x": x})
    logits = outputs["y"].reshape(3, 10)
    assert (logits == logits[:, :1]).all()
