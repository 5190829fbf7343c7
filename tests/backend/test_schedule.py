"""Firing schedule: slices of one layer with different weights fire together, correctly.

The reference is onnxruntime on the same model; the test also checks that the schedule really
merged both kinds of blocks (output-channel chunks reading one input, and input-channel chunks
reading different inputs), so the comparison exercises both batched paths. The interpreter runs
without layer plans (`backend.layer_plans`), which would fire these layers whole.
"""

from __future__ import annotations

import numpy as np
import onnxruntime
from onnx import TensorProto, helper, numpy_helper

from backend.image import decode_image, encode_image
from backend.interpreter import Interpreter
from s2c.driver import CompileOptions, compile_model


def _conv_dense_model() -> tuple:
    """conv 96->160 3x3 with ReLU, then a dense 160*8*8 -> 48: both too big for one PE."""
    rng = np.random.default_rng(7)
    weight = rng.normal(0, 0.05, (160, 96, 3, 3)).astype(np.float32)
    bias = rng.normal(0, 0.1, 160).astype(np.float32)
    dense = rng.normal(0, 0.02, (160 * 8 * 8, 48)).astype(np.float32)
    nodes = [
        helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node("Flatten", ["r"], ["f"]),
        helper.make_node("MatMul", ["f", "d"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "chunks",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 96, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 48])],
        [numpy_helper.from_array(a, n) for a, n in ((weight, "w"), (bias, "b"), (dense, "d"))],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    x = rng.normal(0, 1, (1, 96, 8, 8)).astype(np.float32)
    return model, x


def test_chunks_of_a_layer_fire_together_and_match_onnxruntime() -> None:
    model, x = _conv_dense_model()
    result = compile_model(model, CompileOptions(mode="float", placer="greedy"), emit=lambda _: 0)
    interpreter = Interpreter(decode_image(encode_image(result.program)), layer_plans=False)
    merged = [group for group in interpreter.schedule if group.units > 1]
    assert any(group.shared for group in merged)
    assert any(not group.shared for group in merged)

    _assert_each_sample_matches_onnxruntime(
        model,
        interpreter,
        np.stack([x, -x, 2 * x]),  # three inferences at once
    )


def test_conv_cut_both_ways_fires_one_product_per_input_chunk() -> None:
    """conv 256->64 3x3 on 28x28: cut by input channels (partial sums) and by output channels.
    The output-channel chunks of each input chunk share one input class: their buffers are
    filled once and their weights act as one wider layer (1 < sharing < units)."""
    rng = np.random.default_rng(11)
    weight = rng.normal(0, 0.03, (64, 256, 3, 3)).astype(np.float32)
    bias = rng.normal(0, 0.1, 64).astype(np.float32)
    graph = helper.make_graph(
        [helper.make_node("Conv", ["x", "w", "b"], ["y"], pads=[1, 1, 1, 1])],
        "cut_both_ways",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 256, 28, 28])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 64, 28, 28])],
        [numpy_helper.from_array(weight, "w"), numpy_helper.from_array(bias, "b")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    result = compile_model(model, CompileOptions(mode="float", placer="greedy"), emit=lambda _: 0)
    interpreter = Interpreter(decode_image(encode_image(result.program)), layer_plans=False)
    assert any(1 < group.sharing < group.units for group in interpreter.schedule)

    x = rng.normal(0, 1, (1, 256, 28, 28)).astype(np.float32)
    _assert_each_sample_matches_onnxruntime(model, interpreter, np.stack([x, -0.5 * x]))


def _assert_each_sample_matches_onnxruntime(model, interpreter, samples: np.ndarray) -> None:
    """Run the stacked samples at once; each output must match onnxruntime's run of it alone."""
    outputs, _ = interpreter.run({"x": samples})
    session = onnxruntime.InferenceSession(
        model.SerializeToString(), providers=["CPUExecutionProvider"]
    )
    for sample, got in zip(samples, outputs["y"]):
        (expected,) = session.run(None, {"x": sample})
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)


def test_identical_kernels_of_different_layers_fire_together_at_one_depth_only() -> None:
    """Two dense layers reading one input (depth 1) fire as one wider product; the transposes
    after them (depth 2) fire together; the transpose after their sum (depth 4) fires alone."""
    rng = np.random.default_rng(13)
    weights = [rng.normal(0, 0.3, (16, 8)).astype(np.float32) for _ in range(2)]
    nodes = [
        helper.make_node("Relu", ["x"], ["r"]),
        helper.make_node("MatMul", ["r", "w0"], ["a"]),
        helper.make_node("MatMul", ["r", "w1"], ["b"]),
        helper.make_node("Transpose", ["a"], ["ta"], perm=[0, 2, 1]),
        helper.make_node("Transpose", ["b"], ["tb"], perm=[0, 2, 1]),
        helper.make_node("Add", ["ta", "tb"], ["s"]),
        helper.make_node("Transpose", ["s"], ["y"], perm=[0, 2, 1]),
    ]
    graph = helper.make_graph(
        nodes,
        "branches",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 8])],
        [numpy_helper.from_array(w, f"w{i}") for i, w in enumerate(weights)],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    options = CompileOptions(mode="float", placer="greedy")
    result = compile_model(model, options, emit=lambda _: 0)
    interpreter = Interpreter(decode_image(encode_image(result.program)))
    kernels = [kernel for _, kernel in interpreter.kernels]
    layers = [{kernels[m].layer for m in group.members} for group in interpreter.schedule]
    assert [len(names) for names in layers] == [1, 2, 2, 1, 1]
    assert interpreter.schedule[1].shared

    x = rng.normal(0, 1, (1, 4, 16)).astype(np.float32)
    _assert_each_sample_matches_onnxruntime(model, interpreter, np.stack([x, -x]))
