"""Hostile descriptors of the sequence-model opcodes (matmul, gather, layer_norm, reduce,
attention) are
refused in one line naming PE, kernel, field, value and limit, as the other opcodes are
(tests/backend/test_descriptor_check.py)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from backend.image import decode_image, encode_image
from backend.interpreter import Interpreter
from backend.program import Program
from s2c.driver import CompileOptions, compile_model
from s2c.validate import run_onnxruntime
from tests.backend.test_descriptor_check import _attrs, _output_box, _param, assert_refused_edit


def _encoder_block(masked: bool = True):
    """tokens -> embedding -> x @ x^T (+ mask) -> softmax -> @ x -> layer norm -> mean over
    positions. Unmasked, the attention fuses into one kernel (passes/fuse_attention.py)."""
    rng = np.random.default_rng(0)
    table = numpy_helper.from_array(rng.standard_normal((10, 8)).astype(np.float32), "table")
    scale = numpy_helper.from_array(np.ones(8, np.float32), "scale")
    mask = numpy_helper.from_array(np.triu(np.full((6, 6), -1e4, np.float32), 1), "mask")
    nodes = [
        helper.make_node("Gather", ["table", "tokens"], ["x"], name="embed"),
        helper.make_node("Transpose", ["x"], ["xt"], perm=[0, 2, 1]),
        helper.make_node("MatMul", ["x", "xt"], ["raw" if masked else "scores"], name="scores"),
        *([helper.make_node("Add", ["raw", "mask"], ["scores"])] if masked else []),
        helper.make_node("Softmax", ["scores"], ["probs"], axis=-1),
        helper.make_node("MatMul", ["probs", "x"], ["mixed"], name="mix"),
        helper.make_node("LayerNormalization", ["mixed", "scale"], ["normed"], name="norm"),
        helper.make_node("ReduceMean", ["normed"], ["y"], axes=[1], keepdims=0, name="pool"),
    ]
    tokens = helper.make_tensor_value_info("tokens", TensorProto.INT64, [1, 6])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8])
    graph = helper.make_graph(nodes, "block", [tokens], [y], [table, scale, mask])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


@pytest.fixture(scope="module")
def programs() -> dict[str, Program]:
    built = {}
    for mode, masked in (("float", True), ("int8", True), ("attention", False)):
        options = CompileOptions(
            mode=mode.replace("attention", "float"), machine="chip", placer="greedy"
        )
        block = _encoder_block(masked)
        result = compile_model(block, options, emit=lambda t: None, warn=lambda t: None)
        built[mode] = decode_image(encode_image(result.program))
    return built


CASES = [
    ("float", "matmul", _attrs(operands=(0,)), ["'operands'", "reads fewer"]),
    ("float", "matmul", _attrs(operands=(-1, 1)), ["'operand0' is missing"]),
    ("float", "matmul", _output_box((1, 6, 5)), ["output box", "computes"]),
    ("int8", "matmul", _attrs(multiplier=-1), ["'multiplier'", "-1"]),
    ("int8", "matmul", _attrs(b_zero_point=200), ["'b_zero_point'", "-128..127"]),
    ("float", "gather", _attrs(rows=0), ["'rows'", "= 0"]),
    ("float", "gather", _attrs(axis=5), ["'axis'", "= 5"]),
    ("int8", "gather", _param("operand0", dtype="float32"), ["output dtype"]),
    ("float", "layer_norm", _attrs(axis=7), ["'axis'", "= 7"]),
    ("float", "layer_norm", _param("scale", shape=(3,)), ["'scale' shape", "(3,)"]),
    ("float", "layer_norm", lambda k: replace(k, inputs=k.inputs * 3), ["port count", "1..2"]),
    ("float", "reduce", _attrs(axes=(2, 1)), ["'axes'", "increasing"]),
    ("float", "reduce", _attrs(kind="median"), ["'kind'", "median"]),
    ("attention", "attention", _attrs(heads=3), ["'heads'", "divide"]),
    ("attention", "attention", _attrs(axis=2), ["'axis'", "= 2"]),
    ("attention", "attention", _output_box((1, 6, 4)), ["output box", "computes"]),
    ("attention", "attention", lambda k: replace(k, inputs=k.inputs[:2]), ["port count", "3"]),
]


@pytest.mark.parametrize(("mode", "opcode", "edit", "words"), CASES)
def test_a_hostile_sequence_descriptor_is_refused_in_one_line(programs, mode, opcode, edit, words):
    assert_refused_edit(programs[mode], opcode, edit, words)


@pytest.mark.parametrize(("mode", "masked"), [("float", True), ("attention", False)])
def test_the_unedited_block_matches_onnxruntime_in_float(programs, mode, masked) -> None:
    opcodes = {k.opcode for pe in programs[mode].pes for k in pe.kernels}
    assert ("attention" in opcodes) is not masked and ("matmul" in opcodes) is masked
    tokens = np.array([[1, 2, 3, 9, 0, 4]], dtype=np.int64)
    outputs, _ = Interpreter(programs[mode]).run({"tokens": tokens[None]})
    (expected,) = run_onnxruntime(_encoder_block(masked), {"tokens": tokens}).values()
    np.testing.assert_allclose(outputs["y"][0], expected, rtol=1e-4, atol=1e-5)
