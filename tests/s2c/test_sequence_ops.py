"""Sequence-model ops end to end: ONNX model -> image -> interpreter, against onnxruntime.

LayerNormalization, the decomposed layer-norm pattern, Gelu (both approximations), Erf,
MatMul of two activations (batched, broadcast, cut over PEs), Softmax on any axis, Gather from
a constant table with int64 ids, Where, Equal and Less.
"""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from backend.cost import mac_array_cycles
from backend.image import encode_image
from backend.partition import partition
from backend.stats import mac_count
from ir.errors import InputError, UnsupportedError
from passes.base import PassManager
from passes.pipeline import canonicalisation
from s2c.driver import CompileOptions, compile_model
from s2c.frontend import load_onnx
from s2c.validate import interpreter_outputs, run_onnxruntime

FLOAT = TensorProto.FLOAT
# Float kernels sum in float64 and round once; onnxruntime sums in float32 in its own order:
# the difference is a few float32 ulps of the sums, far inside the 1e-4 / 1e-5.
RTOL, ATOL = 1e-4, 1e-5


def _model(nodes, inputs, outputs, initializers=(), opset: int = 17):
    graph = helper.make_graph(nodes, "g", inputs, outputs, list(initializers))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def _value(name: str, shape, elem_type: int = FLOAT):
    return helper.make_tensor_value_info(name, elem_type, list(shape))


def _init(name: str, array: np.ndarray):
    return numpy_helper.from_array(array, name)


def _random(*shape: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


def _compile(model, mode: str = "float"):
    options = CompileOptions(mode=mode, machine="chip", placer="greedy")
    return compile_model(model, options, emit=lambda text: None, warn=lambda text: None)


def _check(model, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Compile in float, run the image, compare every output with onnxruntime."""
    image = encode_image(_compile(model).program)
    outputs, _ = interpreter_outputs(image, inputs)
    expected = run_onnxruntime(model, inputs)
    for name, reference in expected.items():
        np.testing.assert_allclose(outputs[name], reference, rtol=RTOL, atol=ATOL, err_msg=name)
    return outputs


@pytest.mark.parametrize(("axis", "bias"), [(-1, True), (1, False), (0, True)])
def test_layer_normalization_any_axis_with_and_without_bias(axis: int, bias: bool) -> None:
    shape = (2, 3, 8)
    normalised = shape[axis:]
    names = ["x", "scale"] + (["bias"] * bias)
    node = helper.make_node("LayerNormalization", names, ["y"], axis=axis, epsilon=1e-3)
    inits = [_init("scale", _random(*normalised, seed=1))]
    if bias:
        inits.append(_init("bias", _random(*normalised, seed=2)))
    model = _model([node], [_value("x", shape)], [_value("y", shape)], inits)
    _check(model, {"x": _random(*shape) * 3 + 1})


def _decomposed_layer_norm(shape, with_affine: bool = True):
    """ReduceMean, Sub, Pow 2, ReduceMean, Add eps, Sqrt, Div, Mul gamma, Add beta (as torch
    exports layer norm at opset < 17)."""
    width = shape[-1]
    nodes = [
        helper.make_node("ReduceMean", ["x"], ["mean"], axes=[-1]),
        helper.make_node("Sub", ["x", "mean"], ["centred"]),
        helper.make_node("Pow", ["centred", "two"], ["square"]),
        helper.make_node("ReduceMean", ["square"], ["var"], axes=[-1]),
        helper.make_node("Add", ["var", "eps"], ["var_eps"]),
        helper.make_node("Sqrt", ["var_eps"], ["std"]),
        helper.make_node("Div", ["centred", "std"], ["normalised" if with_affine else "y"]),
    ]
    inits = [_init("two", np.array(2.0, np.float32)), _init("eps", np.array(1e-5, np.float32))]
    if with_affine:
        nodes += [
            helper.make_node("Mul", ["normalised", "gamma"], ["scaled"]),
            helper.make_node("Add", ["scaled", "beta"], ["y"]),
        ]
        inits += [_init("gamma", _random(width, seed=3)), _init("beta", _random(width, seed=4))]
    return _model(nodes, [_value("x", shape)], [_value("y", shape)], inits, opset=13)


@pytest.mark.parametrize("with_affine", [True, False])
def test_decomposed_layer_norm_is_fused_and_matches(with_affine: bool) -> None:
    model = _decomposed_layer_norm((1, 5, 16), with_affine)
    graph = load_onnx(model)
    PassManager(canonicalisation()).run(graph)
    assert [n.op for n in graph.nodes] == ["layer_norm"]
    _check(model, {"x": _random(1, 5, 16) * 2 - 1})


def test_layer_norm_pattern_over_a_different_axis_is_not_fused() -> None:
    model = _decomposed_layer_norm((1, 5, 16))
    model.graph.node[3].attribute[0].ints[0] = 1  # the variance over another axis: no layer norm
    graph = load_onnx(model)
    PassManager(canonicalisation()).run(graph)
    assert "layer_norm" not in [n.op for n in graph.nodes]
    _check(model, {"x": _random(1, 5, 16)})


@pytest.mark.parametrize("approximate", ["none", "tanh"])
def test_gelu_both_approximations_and_erf(approximate: str) -> None:
    nodes = [
        helper.make_node("Gelu", ["x"], ["g"], approximate=approximate),
        helper.make_node("Erf", ["g"], ["y"]),
    ]
    model = _model(nodes, [_value("x", (2, 33))], [_value("y", (2, 33))], opset=20)
    _check(model, {"x": _random(2, 33) * 3})


def test_batched_broadcast_matmul_of_two_activations_is_cut_over_pes() -> None:
    # a [1, 4, 96, 64] @ b [4, 64, 96]: b broadcasts over a's leading axis; each operand and
    # the result exceed a PE's budget, so the matmul is cut and both operands arrive by ports.
    nodes = [helper.make_node("MatMul", ["a", "b"], ["y"], name="mm")]
    model = _model(
        nodes,
        [_value("a", (1, 4, 96, 64)), _value("b", (4, 64, 96))],
        [_value("y", (1, 4, 96, 96))],
    )
    graph = load_onnx(model)
    PassManager(canonicalisation()).run(graph)
    slices = [s for s in partition(graph, budget=94208).slices if s.layer == "mm"]
    assert len(slices) > 1
    assert all(s.spec.opcode == "matmul" and len(s.spec.inputs) == 2 for s in slices)
    _check(model, {"a": _random(1, 4, 96, 64), "b": _random(4, 64, 96, seed=1)})


@pytest.mark.parametrize("axis", [0, 1, -1])
def test_softmax_on_any_axis(axis: int) -> None:
    node = helper.make_node("Softmax", ["x"], ["y"], axis=axis)
    model = _model([node], [_value("x", (3, 4, 5))], [_value("y", (3, 4, 5))])
    _check(model, {"x": _random(3, 4, 5) * 4})


def _embedding_model(vocabulary: int = 20, width: int = 8, length: int = 6):
    nodes = [helper.make_node("Gather", ["table", "ids"], ["y"], axis=0, name="embed")]
    inputs = [_value("ids", (1, length), TensorProto.INT64)]
    table = _init("table", _random(vocabulary, width, seed=5))
    return _model(nodes, inputs, [_value("y", (1, length, width))], [table])


def test_gather_from_a_constant_table_with_int64_ids() -> None:
    ids = np.array([[0, 19, 3, -1, 7, 3]], dtype=np.int64)  # -1: the last row (ONNX Gather)
    outputs = _check(_embedding_model(), {"ids": ids})
    assert outputs["y"].shape == (1, 6, 8)


def test_token_id_beyond_the_table_is_an_input_error_naming_input_position_and_limit() -> None:
    image = encode_image(_compile(_embedding_model()).program)
    ids = np.array([[0, 1, 2, 20, 4, 5]], dtype=np.int64)
    with pytest.raises(InputError, match=r"input 'ids'.*20.*\(0, 3\).*20 rows"):
        interpreter_outputs(image, {"ids": ids})


def test_where_equal_and_less_on_activations_and_folded_on_constants() -> None:
    nodes = [
        # folded at compile time: a causal mask from constants (Less of two ranges, Equal)
        helper.make_node("Less", ["rows", "columns"], ["upper"]),
        helper.make_node("Equal", ["rows", "columns"], ["diagonal"]),
        helper.make_node("Where", ["upper", "minus", "x"], ["masked"]),
        # on activations
        helper.make_node("Less", ["masked", "zero"], ["negative"]),
        helper.make_node("Where", ["negative", "zero", "masked"], ["clipped"]),
        helper.make_node("Equal", ["clipped", "zero"], ["is_zero"]),
        helper.make_node("Where", ["is_zero", "x", "clipped"], ["y0"]),
        helper.make_node("Where", ["diagonal", "one", "y0"], ["y"]),
    ]
    inits = [
        _init("rows", np.arange(5, dtype=np.int64).reshape(5, 1)),
        _init("columns", np.arange(5, dtype=np.int64).reshape(1, 5)),
        _init("minus", np.array(-3.0, np.float32)),
        _init("zero", np.array(0.0, np.float32)),
        _init("one", np.array(1.0, np.float32)),
    ]
    model = _model(nodes, [_value("x", (1, 5, 5))], [_value("y", (1, 5, 5))], inits)
    graph = load_onnx(model)
    assert sorted({n.op for n in graph.nodes}) == ["equal", "less", "where"]
    _check(model, {"x": _random(1, 5, 5)})


def test_int8_matmul_of_two_activations_runs_on_the_mac_array_and_counts_its_macs() -> None:
    nodes = [helper.make_node("MatMul", ["a", "b"], ["y"], name="mm")]
    shapes = {"a": (1, 2, 5, 8), "b": (1, 2, 8, 3), "y": (1, 2, 5, 3)}
    model = _model(
        nodes, [_value("a", shapes["a"]), _value("b", shapes["b"])], [_value("y", shapes["y"])]
    )
    result = _compile(model, mode="int8")
    kernels = [k for pe in result.program.pes for k in pe.kernels if k.layer == "mm"]
    assert kernels and all(k.opcode == "matmul" and k.attrs["int8"] == 1 for k in kernels)
    assert all(p.dtype == "int8" for k in kernels for p in k.inputs)
    assert sum(mac_count(k) for k in kernels) == 2 * 5 * 3 * 8  # output elements x K
    spec = result.machine.chip_spec
    assert all(mac_array_cycles(k, mac_count(k), spec) > 0 for k in kernels)


def test_mean_over_positions_too_big_for_one_pe_is_cut_along_its_kept_axes() -> None:
    # [1, 48, 512] float32 is 96 KiB, more than a PE's data budget: the reduce is cut along the
    # features it keeps, each slice reading every position of its features.
    nodes = [helper.make_node("ReduceMean", ["x"], ["y"], axes=[1], keepdims=0, name="pool")]
    model = _model(nodes, [_value("x", (1, 48, 512))], [_value("y", (1, 512))])
    graph = load_onnx(model)
    PassManager(canonicalisation()).run(graph)
    slices = [s for s in partition(graph, budget=94208).slices if s.layer == "pool"]
    assert len(slices) > 1 and all(s.spec.opcode == "reduce" for s in slices)
    assert all(s.spec.inputs[0][1].shape[1] == 48 for s in slices)
    _check(model, {"x": _random(1, 48, 512)})


@pytest.mark.parametrize(("a", "b"), [((8,), (2, 8, 3)), ((2, 5, 8), (8,))])
def test_matmul_with_a_vector_operand_is_computed_whole(a, b) -> None:
    out = tuple(int(d) for d in np.matmul(np.zeros(a), np.zeros(b)).shape)
    nodes = [helper.make_node("MatMul", ["a", "b"], ["y"])]
    model = _model(nodes, [_value("a", a), _value("b", b)], [_value("y", out)])
    _check(model, {"a": _random(*a), "b": _random(*b, seed=1)})


def test_gather_of_an_activation_at_indices_that_arrive_as_an_input() -> None:
    nodes = [
        helper.make_node("Relu", ["x"], ["r"]),
        helper.make_node("Gather", ["r", "ids"], ["y"], axis=1),
    ]
    inputs = [_value("x", (2, 7, 3)), _value("ids", (4,), TensorProto.INT64)]
    model = _model(nodes, inputs, [_value("y", (2, 4, 3))])
    _check(model, {"x": _random(2, 7, 3), "ids": np.array([6, 0, -2, 3], np.int64)})


def test_layer_normalization_with_a_scale_computed_at_run_time_is_unsupported() -> None:
    node = helper.make_node("LayerNormalization", ["x", "s"], ["y"], name="norm")
    model = _model([node], [_value("x", (1, 4, 8)), _value("s", (8,))], [_value("y", (1, 4, 8))])
    with pytest.raises(UnsupportedError, match=r"'norm'.*scale operand is not a compile-time"):
        load_onnx(model)


def test_comparing_int8_activations_is_refused_in_int8_mode() -> None:
    nodes = [
        helper.make_node("Less", ["x", "zero"], ["negative"], name="sign"),
        helper.make_node("Where", ["negative", "zero", "x"], ["y"]),
    ]
    inits = [_init("zero", np.array(0.0, np.float32))]
    model = _model(nodes, [_value("x", (1, 5))], [_value("y", (1, 5))], inits)
    with pytest.raises(UnsupportedError, match=r"'sign' \(less\): comparing the int8"):
        _compile(model, mode="int8")
