"""Tests of the ONNX frontend: lowering per op family, constant folding, names, errors, suites."""

from __future__ import annotations

import glob
import os
import warnings

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator

from ir.errors import InputError, InternalError, UnsupportedError
from ir.graph import Graph
from ir.verifier import verify
from s2c.frontend import MAX_OPSET, MIN_OPSET, SUPPORTED_OPS, load_model_proto, load_onnx
from s2c.frontend.registry import HANDLERS

ONNX_DATA = os.path.join(os.path.dirname(onnx.__file__), "backend", "test", "data")
FLOAT = TensorProto.FLOAT


# -- helpers ----------------------------------------------------------------------------------
def tensor(name: str, shape, elem_type: int = FLOAT) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, elem_type, shape)


def model(nodes, inputs, outputs, initializers=(), opset: int = 17) -> onnx.ModelProto:
    """A one-graph model; outputs given by name are typed by ONNX shape inference."""
    declared = [
        helper.make_empty_tensor_value_info(o) if isinstance(o, str) else o for o in outputs
    ]
    initializers = [
        numpy_helper.from_array(np.asarray(a), n) for n, a in dict(initializers).items()
    ]
    graph = helper.make_graph(nodes, "test", inputs, declared, initializer=initializers)
    result = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    inferred = onnx.shape_inference.infer_shapes(result).graph
    values = [*inferred.input, *inferred.value_info, *inferred.output]
    types = {v.name: v.type for v in values if v.type.WhichOneof("value")}
    for output in result.graph.output:
        if output.type.WhichOneof("value") is None and output.name in types:
            output.type.CopyFrom(types[output.name])
    return result


def lower(nodes, inputs, outputs, initializers=(), opset: int = 17, batch: int = 1) -> Graph:
    return load_onnx(model(nodes, inputs, outputs, initializers, opset), batch=batch)


def unary(op_type: str, shape=(1, 3, 4, 4), opset: int = 17, **attrs) -> Graph:
    node = helper.make_node(op_type, ["x"], ["y"], **attrs)
    return lower([node], [tensor("x", shape)], ["y"], opset=opset)


def ops(graph: Graph) -> list[str]:
    return [node.op for node in graph.nodes]


def only_node(graph: Graph):
    assert len(graph.nodes) == 1, ops(graph)
    return graph.nodes[0]


def weights(*shape: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(shape).astype(np.float32)


# -- API --------------------------------------------------------------------------------------
def test_supported_ops_is_the_sorted_handler_table():
    assert list(SUPPORTED_OPS) == sorted(HANDLERS)
    for op_type in ("Conv", "Gemm", "MatMul", "Relu", "Slice", "ConstantOfShape", "Shape"):
        assert op_type in SUPPORTED_OPS
    assert "ConvTranspose" not in SUPPORTED_OPS
    assert (MIN_OPSET, MAX_OPSET) == (6, 21)


def test_every_handler_says_what_it_lowers_to():
    for op_type, function in HANDLERS.items():
        assert function.__doc__ and "->" in function.__doc__, op_type


# -- convolution and products -----------------------------------------------------------------
def test_conv_2d_with_bias_groups_strides_and_dilations():
    node = helper.make_node(
        "Conv", ["x", "w", "b"], ["y"], group=2, strides=[2, 1], dilations=[1, 2], pads=[1, 0, 1, 0]
    )
    graph = lower(
        [node],
        [tensor("x", [1, 4, 9, 9])],
        ["y"],
        {"w": weights(6, 2, 3, 3), "b": weights(6)},
    )
    conv = only_node(graph)
    assert conv.op == "conv" and conv.name == "Conv_0"
    assert conv.attrs == {"strides": (2, 1), "pads": (1, 0, 1, 0), "dilations": (1, 2), "group": 2}
    assert [v.name for v in conv.inputs] == ["x", "w", "b"]
    assert conv.outputs[0].type.shape == (1, 6, 5, 5)


@pytest.mark.parametrize(
    ("auto_pad", "pads"), [("SAME_UPPER", (0, 1)), ("SAME_LOWER", (1, 0)), ("VALID", (0, 0))]
)
def test_conv_auto_pad_becomes_explicit_pads(auto_pad, pads):
    node = helper.make_node("Conv", ["x", "w"], ["y"], strides=[2], auto_pad=auto_pad)
    graph = lower([node], [tensor("x", [1, 2, 8])], ["y"], {"w": weights(3, 2, 3)})
    assert only_node(graph).attrs["pads"] == pads


@pytest.mark.parametrize("spatial", [(7,), (5, 6, 7)])
def test_conv_1d_and_3d(spatial):
    kernel = (3,) * len(spatial)
    node = helper.make_node("Conv", ["x", "w"], ["y"])
    graph = lower([node], [tensor("x", [2, 3, *spatial])], ["y"], {"w": weights(4, 3, *kernel)})
    conv = only_node(graph)
    assert conv.attrs["pads"] == (0,) * (2 * len(spatial))
    assert conv.outputs[0].type.shape == (2, 4, *(s - 2 for s in spatial))


def test_conv_with_a_weight_that_is_not_constant_is_unsupported():
    node = helper.make_node("Conv", ["x", "w"], ["y"], name="conv")
    with pytest.raises(UnsupportedError) as caught:
        lower([node], [tensor("x", [1, 2, 5, 5]), tensor("w", [3, 2, 3, 3])], ["y"])
    assert caught.value.problems == [
        "'conv' (Conv, opset 17): weight operand is not a compile-time constant"
    ]


def test_gemm_folds_alpha_beta_and_transpose_into_dense():
    b, c = weights(5, 4), weights(5, seed=1)
    node = helper.make_node("Gemm", ["a", "b", "c"], ["y"], alpha=2.0, beta=0.5, transB=1)
    graph = lower([node], [tensor("a", [3, 4])], ["y"], {"b": b, "c": c})
    dense = only_node(graph)
    assert dense.op == "dense"
    np.testing.assert_allclose(dense.inputs[1].data, 2.0 * b.T, rtol=1e-6)
    np.testing.assert_allclose(dense.inputs[2].data, 0.5 * c, rtol=1e-6)
    assert dense.inputs[1].data.flags["C_CONTIGUOUS"]
    assert dense.outputs[0].type.shape == (3, 5)


def test_gemm_trans_a_and_a_full_c_add_after_the_product():
    c = weights(3, 5)
    node = helper.make_node("Gemm", ["a", "b", "c"], ["y"], transA=1)
    graph = lower([node], [tensor("a", [4, 3])], ["y"], {"b": weights(4, 5), "c": c})
    assert ops(graph) == ["transpose", "dense", "add"]
    assert graph.nodes[0].attrs == {"perm": (1, 0)}
    assert len(graph.nodes[1].inputs) == 2
    assert graph.outputs[0].name == "y"


def test_gemm_with_a_dynamic_b_is_matmul_mul_add():
    node = helper.make_node("Gemm", ["a", "b", "c"], ["y"], alpha=3.0, beta=2.0, transB=1)
    inputs = [tensor("a", [2, 3]), tensor("b", [4, 3]), tensor("c", [4])]
    graph = lower([node], inputs, ["y"])
    assert ops(graph) == ["transpose", "matmul", "mul", "mul", "add"]
    assert graph.outputs[0].type.shape == (2, 4)


def test_gemm_with_beta_zero_ignores_c():
    node = helper.make_node("Gemm", ["a", "b", "c"], ["y"], beta=0.0)
    graph = lower([node], [tensor("a", [2, 3])], ["y"], {"b": weights(3, 4), "c": weights(4)})
    assert len(only_node(graph).inputs) == 2


def test_matmul_by_a_constant_matrix_is_dense_otherwise_matmul():
    node = helper.make_node("MatMul", ["a", "b"], ["y"])
    dense = lower([node], [tensor("a", [2, 5, 3])], ["y"], {"b": weights(3, 4)})
    assert ops(dense) == ["dense"] and dense.outputs[0].type.shape == (2, 5, 4)
    batched = lower([node], [tensor("a", [2, 5, 3]), tensor("b", [2, 3, 4])], ["y"])
    assert ops(batched) == ["matmul"]


# -- element-wise -----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("op_type", "ir_op"), [("Add", "add"), ("Sub", "sub"), ("Mul", "mul"), ("Div", "div")]
)
def test_binary_ops_broadcast(op_type, ir_op):
    node = helper.make_node(op_type, ["a", "b"], ["y"])
    graph = lower([node], [tensor("a", [2, 3, 4]), tensor("b", [3, 1])], ["y"])
    assert ops(graph) == [ir_op] and graph.outputs[0].type.shape == (2, 3, 4)


def test_opset_6_broadcast_axis_aligns_b():
    node = helper.make_node("Add", ["a", "b"], ["y"], broadcast=1, axis=1)
    graph = lower([node], [tensor("a", [2, 3, 4, 5])], ["y"], {"b": weights(3)}, opset=6)
    add = only_node(graph)
    assert add.inputs[1].type.shape == (3, 1, 1)
    dynamic = lower([node], [tensor("a", [2, 3, 4, 5]), tensor("b", [3, 4])], ["y"], opset=6)
    assert ops(dynamic) == ["reshape", "add"]
    assert dynamic.nodes[0].attrs == {"shape": (3, 4, 1)}


def test_variadic_max_is_a_chain_and_mean_scales_the_sum():
    inputs = [tensor(n, [2, 3]) for n in "abc"]
    graph = lower([helper.make_node("Max", ["a", "b", "c"], ["y"])], inputs, ["y"])
    assert ops(graph) == ["max", "max"] and graph.outputs[0].name == "y"
    mean = lower([helper.make_node("Mean", ["a", "b", "c"], ["y"])], inputs, ["y"])
    assert ops(mean) == ["add", "add", "mul"]
    assert mean.nodes[-1].inputs[1].data.reshape(-1)[0] == pytest.approx(1 / 3)
    single = lower([helper.make_node("Sum", ["a"], ["y"])], inputs[:1], ["y"])
    assert ops(single) == ["identity"]


def test_prelu_opset_6_slope_applies_per_channel():
    node = helper.make_node("PRelu", ["x", "slope"], ["y"])
    graph = lower([node], [tensor("x", [2, 3, 4, 5])], ["y"], {"slope": weights(3)}, opset=6)
    prelu = only_node(graph)
    assert prelu.op == "prelu" and prelu.inputs[1].type.shape == (3, 1, 1)


@pytest.mark.parametrize(
    ("op_type", "attrs", "function", "params"),
    [
        ("Relu", {}, "relu", ()),
        ("LeakyRelu", {}, "leaky_relu", (0.01,)),
        ("LeakyRelu", {"alpha": 0.2}, "leaky_relu", (0.2,)),
        ("HardSigmoid", {}, "hard_sigmoid", (0.2, 0.5)),
        ("Selu", {}, "selu", (1.6732632, 1.0507010)),
        ("Elu", {"alpha": 2.0}, "elu", (2.0,)),
        ("Shrink", {"lambd": 1.5}, "shrink", (1.5, 0.0)),
        ("ThresholdedRelu", {}, "thresholded_relu", (1.0,)),
        ("Sqrt", {}, "sqrt", ()),
        ("Erf", {}, "erf", ()),
    ],
)
def test_activations(op_type, attrs, function, params):
    node = only_node(unary(op_type, **attrs))
    assert node.op == "activation" and node.attrs["function"] == function
    assert node.attrs["params"] == pytest.approx(params)


def test_gelu_at_opset_20():
    assert only_node(unary("Gelu", opset=20)).attrs["function"] == "gelu"
    tanh = only_node(unary("Gelu", opset=20, approximate="tanh"))
    assert tanh.attrs["function"] == "gelu_tanh"


def test_clip_bounds_are_attributes_before_opset_11_and_operands_after():
    old = only_node(unary("Clip", opset=6, min=-1.0, max=2.0))
    assert old.attrs["params"] == (-1.0, 2.0)
    node = helper.make_node("Clip", ["x", "", "hi"], ["y"])
    new = lower([node], [tensor("x", [4])], ["y"], {"hi": np.float32(6.0)})
    low, high = only_node(new).attrs["params"]
    assert low == float(np.finfo(np.float32).min) and high == 6.0
    clip = helper.make_node("Clip", ["x", "lo"], ["y"], name="clip")
    with pytest.raises(UnsupportedError, match=r"min operand is not a compile-time constant"):
        lower([clip], [tensor("x", [4]), tensor("lo", [])], ["y"])


# -- normalisation and softmax ----------------------------------------------------------------
def test_softmax_before_opset_13_coerces_to_2d():
    graph = unary("Softmax", shape=(2, 3, 4), opset=11, axis=1)
    assert ops(graph) == ["reshape", "softmax", "reshape"]
    assert graph.nodes[0].attrs == {"shape": (2, 12)}
    assert graph.nodes[1].attrs == {"axis": 1, "log": 0}
    assert graph.outputs[0].name == "y" and graph.outputs[0].type.shape == (2, 3, 4)


def test_softmax_from_opset_13_is_one_axis_and_log_softmax_sets_log():
    assert only_node(unary("Softmax", shape=(2, 3, 4), axis=1)).attrs == {"axis": 1, "log": 0}
    log = only_node(unary("LogSoftmax", shape=(2, 3, 4), opset=11, axis=-1))
    assert log.attrs == {"axis": 2, "log": 1}


def test_batch_norm_instance_norm_and_lrn():
    params = {n: weights(3, seed=i) for i, n in enumerate(["s", "b", "m"])}
    params["v"] = np.abs(weights(3, seed=9))
    node = helper.make_node("BatchNormalization", ["x", "s", "b", "m", "v"], ["y"], epsilon=1e-3)
    bn = only_node(lower([node], [tensor("x", [1, 3, 4, 4])], ["y"], params))
    assert bn.op == "batch_norm" and bn.attrs["epsilon"] == pytest.approx(1e-3)
    node = helper.make_node("InstanceNormalization", ["x", "s", "b"], ["y"])
    inorm = only_node(lower([node], [tensor("x", [1, 3, 4, 4])], ["y"], params))
    assert inorm.op == "instance_norm"
    lrn = only_node(unary("LRN", size=3))
    assert lrn.op == "lrn" and lrn.attrs["size"] == 3 and lrn.attrs["beta"] == 0.75


def test_batch_norm_in_training_mode_and_lrn_on_rank_2_are_unsupported():
    params = {n: weights(3) for n in ["s", "b", "m", "v"]}
    node = helper.make_node(
        "BatchNormalization", ["x", "s", "b", "m", "v"], ["y"], training_mode=1, name="bn"
    )
    with pytest.raises(UnsupportedError, match=r"'bn' .*training_mode=1"):
        lower([node], [tensor("x", [1, 3, 4, 4])], [tensor("y", [1, 3, 4, 4])], params, opset=15)
    with pytest.raises(UnsupportedError, match=r"LRN needs"):
        unary("LRN", shape=(2, 3), size=3)


# -- pooling ----------------------------------------------------------------------------------
def test_max_pool_attributes_and_ceil_mode():
    pool = only_node(
        unary("MaxPool", shape=(1, 2, 7, 7), kernel_shape=[3, 3], strides=[2, 2], ceil_mode=1)
    )
    assert pool.attrs == {
        "kind": "max",
        "kernel": (3, 3),
        "strides": (2, 2),
        "pads": (0, 0, 0, 0),
        "dilations": (1, 1),
        "ceil_mode": 1,
        "count_include_pad": 0,
    }
    assert pool.outputs[0].type.shape == (1, 2, 3, 3)


def test_average_pool_same_upper_count_include_pad_and_dilations():
    pool = only_node(
        unary(
            "AveragePool",
            shape=(1, 2, 6),
            opset=19,
            kernel_shape=[2],
            auto_pad="SAME_UPPER",
            count_include_pad=1,
            dilations=[2],
        )
    )
    assert pool.attrs["kind"] == "avg" and pool.attrs["pads"] == (1, 1)
    assert pool.attrs["count_include_pad"] == 1 and pool.attrs["dilations"] == (2,)
    assert pool.outputs[0].type.shape == (1, 2, 6)


def test_global_pools():
    assert only_node(unary("GlobalAveragePool")).attrs == {"kind": "avg"}
    assert only_node(unary("GlobalMaxPool")).outputs[0].type.shape == (1, 3, 1, 1)


def test_max_pool_indices_storage_order_and_auto_pad_with_ceil_are_unsupported():
    node = helper.make_node("MaxPool", ["x"], ["y", "i"], kernel_shape=[2, 2], name="p")
    with pytest.raises(UnsupportedError, match=r"'p' .*output 1 'i' is used"):
        lower([node], [tensor("x", [1, 1, 4, 4])], ["y", "i"])
    unused = helper.make_node("MaxPool", ["x"], ["y", "i"], kernel_shape=[2, 2])
    assert ops(lower([unused], [tensor("x", [1, 1, 4, 4])], ["y"])) == ["pool"]
    with pytest.raises(UnsupportedError, match=r"storage_order=1"):
        unary("MaxPool", kernel_shape=[2, 2], storage_order=1)
    with pytest.raises(UnsupportedError, match=r"auto_pad=SAME_UPPER together with ceil_mode"):
        unary("MaxPool", kernel_shape=[2, 2], auto_pad="SAME_UPPER", ceil_mode=1)


# -- shapes and data movement -----------------------------------------------------------------
def test_reshape_copies_zero_and_infers_minus_one():
    node = helper.make_node("Reshape", ["x", "shape"], ["y"])
    graph = lower([node], [tensor("x", [2, 3, 4])], ["y"], {"shape": np.array([0, -1], np.int64)})
    assert only_node(graph).attrs == {"shape": (2, 12)}


def test_reshape_allowzero_and_a_dynamic_shape():
    node = helper.make_node("Reshape", ["x", "shape"], ["y"], allowzero=1)
    graph = lower([node], [tensor("x", [0, 3])], ["y"], {"shape": np.array([3, 0], np.int64)})
    assert only_node(graph).attrs == {"shape": (3, 0)}
    dynamic = helper.make_node("Reshape", ["x", "s"], ["y"], name="r")
    with pytest.raises(UnsupportedError, match=r"'r' .*shape operand is not a compile-time"):
        lower([dynamic], [tensor("x", [2, 3]), tensor("s", [2], TensorProto.INT64)], ["y"])


def test_flatten_squeeze_unsqueeze_are_reshapes():
    assert only_node(unary("Flatten", shape=(2, 3, 4), axis=-1)).attrs == {"shape": (6, 4)}
    squeeze = unary("Squeeze", shape=(1, 3, 1, 4), opset=11, axes=[2])
    assert only_node(squeeze).attrs == {"shape": (1, 3, 4)}
    assert only_node(unary("Squeeze", shape=(1, 3, 1, 4))).attrs == {"shape": (3, 4)}
    node = helper.make_node("Unsqueeze", ["x", "axes"], ["y"])
    graph = lower([node], [tensor("x", [3, 4])], ["y"], {"axes": np.array([0, -1], np.int64)})
    assert only_node(graph).attrs == {"shape": (1, 3, 4, 1)}
    old = unary("Unsqueeze", shape=(3, 4), opset=11, axes=[1])
    assert only_node(old).attrs == {"shape": (3, 1, 4)}


def test_transpose_default_perm_reverses():
    assert only_node(unary("Transpose", shape=(2, 3, 4))).attrs == {"perm": (2, 1, 0)}


def test_concat_negative_axis_and_constant_operands():
    node = helper.make_node("Concat", ["a", "c"], ["y"], axis=-1)
    graph = lower([node], [tensor("a", [2, 3])], ["y"], {"c": weights(2, 5)})
    concat = only_node(graph)
    assert concat.attrs == {"axis": 1} and concat.outputs[0].type.shape == (2, 8)


@pytest.mark.parametrize(
    ("opset", "attrs", "split_input", "sizes"),
    [
        (11, {"split": [2, 4]}, None, (2, 4)),
        (13, {}, np.array([1, 5], np.int64), (1, 5)),
        (13, {}, None, (3, 3)),
        (18, {"num_outputs": 2}, None, (3, 3)),
    ],
)
def test_split_sizes(opset, attrs, split_input, sizes):
    inputs = ["x"] if split_input is None else ["x", "split"]
    node = helper.make_node("Split", inputs, ["a", "b"], axis=1, **attrs)
    initializers = {} if split_input is None else {"split": split_input}
    graph = lower([node], [tensor("x", [2, 6])], ["a", "b"], initializers, opset=opset)
    split = only_node(graph)
    assert split.attrs == {"axis": 1, "sizes": sizes}
    assert [v.name for v in split.outputs] == ["a", "b"]


def test_split_num_outputs_leaves_the_last_part_smaller():
    node = helper.make_node("Split", ["x"], ["a", "b", "c"], axis=0, num_outputs=3)
    graph = lower([node], [tensor("x", [7])], ["a", "b", "c"], opset=18)
    assert only_node(graph).attrs["sizes"] == (3, 3, 1)


SLICE_CASES = [
    ([1], [4], [0], [1]),
    ([-1], [-(10**9)], [1], [-1]),
    ([10], [0], [1], [-2]),
    ([-3, 0], [-1, 100], [0, 1], [1, 3]),
    ([5], [-100], [1], [-3]),
    ([0], [1], [-1], [1]),
    ([3], [1], [0], [1]),
]


@pytest.mark.parametrize(("starts", "ends", "axes", "steps"), SLICE_CASES)
def test_slice_canonical_bounds_select_what_onnx_selects(starts, ends, axes, steps):
    operands = {
        "starts": np.array(starts, np.int64),
        "ends": np.array(ends, np.int64),
        "axes": np.array(axes, np.int64),
        "steps": np.array(steps, np.int64),
    }
    node = helper.make_node("Slice", ["x", *operands], ["y"])
    onnx_model = model([node], [tensor("x", [6, 5])], ["y"], operands)
    attrs = only_node(load_onnx(onnx_model)).attrs
    x = np.arange(30, dtype=np.float32).reshape(6, 5)
    expected = ReferenceEvaluator(onnx_model).run(None, {"x": x})[0]
    index = tuple(
        slice(start, None if stop < 0 else stop, step)
        for start, stop, step in zip(attrs["starts"], attrs["stops"], attrs["steps"], strict=True)
    )
    np.testing.assert_array_equal(x[index], expected)


def test_slice_before_opset_10_reads_attributes():
    graph = unary("Slice", shape=(4, 5), opset=9, starts=[1], ends=[-1], axes=[1])
    assert only_node(graph).attrs == {"starts": (0, 1), "stops": (4, 4), "steps": (1, 1)}


def test_pad_by_opset():
    old = only_node(unary("Pad", shape=(1, 2, 3), opset=6, pads=[0, 0, 1, 0, 0, 2], value=1.5))
    assert old.attrs == {"pads": (0, 0, 1, 0, 0, 2), "mode": "constant", "value": 1.5}
    node = helper.make_node("Pad", ["x", "pads", "value", "axes"], ["y"], mode="reflect")
    operands = {
        "pads": np.array([1, 2], np.int64),
        "value": np.float32(0.0),
        "axes": np.array([-1], np.int64),
    }
    graph = lower([node], [tensor("x", [1, 2, 5])], ["y"], operands, opset=18)
    assert only_node(graph).attrs == {"pads": (0, 0, 1, 0, 0, 2), "mode": "reflect", "value": 0.0}
    wrap = helper.make_node("Pad", ["x", "pads"], ["y"], mode="wrap")
    with pytest.raises(UnsupportedError, match=r"mode='wrap'"):
        lower([wrap], [tensor("x", [3])], ["y"], {"pads": np.array([1, 1])}, opset=19)


@pytest.mark.parametrize(
    ("op_type", "opset", "axes_as_input", "kind"),
    [
        ("ReduceMean", 11, False, "mean"),
        ("ReduceSum", 13, True, "sum"),
        ("ReduceMax", 18, True, "max"),
        ("ReduceL2", 17, False, "l2"),
        ("ReduceSumSquare", 18, True, "sum_square"),
    ],
)
def test_reductions_read_axes_by_opset(op_type, opset, axes_as_input, kind):
    if axes_as_input:
        node = helper.make_node(op_type, ["x", "axes"], ["y"], keepdims=0)
        initializers = {"axes": np.array([-1, 1], np.int64)}
    else:
        node = helper.make_node(op_type, ["x"], ["y"], keepdims=0, axes=[-1, 1])
        initializers = {}
    graph = lower([node], [tensor("x", [2, 3, 4])], ["y"], initializers, opset=opset)
    assert only_node(graph).attrs == {"kind": kind, "axes": (1, 2), "keepdims": 0}
    assert graph.outputs[0].type.shape == (2,)


def test_reductions_without_axes():
    assert only_node(unary("ReduceProd", shape=(2, 3))).attrs["axes"] == (0, 1)
    noop = unary("ReduceSum", shape=(2, 3), noop_with_empty_axes=1)
    assert ops(noop) == ["identity"]


def test_gather_makes_constant_negative_indices_non_negative():
    node = helper.make_node("Gather", ["x", "i"], ["y"], axis=1)
    graph = lower([node], [tensor("x", [2, 5])], ["y"], {"i": np.array([-1, 0], np.int64)})
    gather = only_node(graph)
    assert gather.attrs == {"axis": 1} and list(gather.inputs[1].data) == [4, 0]
    node = helper.make_node("Gather", ["table", "i"], ["y"])
    inputs = [tensor("i", [1, 3], TensorProto.INT64)]
    embedding = lower([node], inputs, ["y"], {"table": weights(10, 4)})
    assert embedding.outputs[0].type.shape == (1, 3, 4)


def test_expand_is_bidirectional_and_tile_reads_repeats():
    node = helper.make_node("Expand", ["x", "shape"], ["y"])
    graph = lower([node], [tensor("x", [3, 1])], ["y"], {"shape": np.array([2, 1, 4], np.int64)})
    assert only_node(graph).attrs == {"shape": (2, 3, 4)}
    node = helper.make_node("Tile", ["x", "r"], ["y"])
    graph = lower([node], [tensor("x", [3, 1])], ["y"], {"r": np.array([2, 3], np.int64)})
    assert only_node(graph).attrs == {"repeats": (2, 3)}


def test_identity_dropout_and_cast():
    assert ops(unary("Identity")) == ["identity"]
    assert ops(unary("Dropout", opset=6, is_test=1)) == ["dropout"]
    assert ops(unary("Cast", to=TensorProto.FLOAT16)) == ["identity"]
    cast = only_node(unary("Cast", to=TensorProto.INT64))
    assert cast.attrs == {"to": "int64"} and cast.outputs[0].type.dtype == "int64"
    node = helper.make_node("Dropout", ["x"], ["y", "mask"], name="drop")
    with pytest.raises(UnsupportedError, match=r"'drop' .*output 1 'mask' is used"):
        lower([node], [tensor("x", [2])], ["y", "mask"])


# -- constant folding -------------------------------------------------------------------------
def test_shape_arithmetic_folds_into_a_reshape():
    nodes = [
        helper.make_node("Shape", ["x"], ["s"]),
        helper.make_node("Gather", ["s", "zero"], ["n"], axis=0),
        helper.make_node("Unsqueeze", ["n", "axes"], ["n1"]),
        helper.make_node("Concat", ["n1", "minus_one"], ["target"], axis=0),
        helper.make_node("Reshape", ["x", "target"], ["y"]),
    ]
    initializers = {
        "zero": np.array(0, np.int64),
        "axes": np.array([0], np.int64),
        "minus_one": np.array([-1], np.int64),
    }
    graph = lower(nodes, [tensor("x", ["N", 3, 4])], ["y"], initializers, batch=5)
    assert only_node(graph).attrs == {"shape": (5, 12)}


def test_ops_without_lowering_fold_when_their_operands_are_constant():
    nodes = [
        helper.make_node("Range", ["start", "limit", "delta"], ["r"]),
        helper.make_node("CumSum", ["r", "axis"], ["c"]),
        helper.make_node("Cast", ["c"], ["cf"], to=TensorProto.FLOAT),
        helper.make_node("Add", ["x", "cf"], ["y"]),
    ]
    initializers = {
        "start": np.array(0, np.int64),
        "limit": np.array(4, np.int64),
        "delta": np.array(1, np.int64),
        "axis": np.array(0, np.int64),
    }
    graph = lower(nodes, [tensor("x", [2, 4])], ["y"], initializers)
    add = only_node(graph)
    np.testing.assert_array_equal(add.inputs[1].data, [0, 1, 3, 6])
    assert add.inputs[1].data.dtype == np.float32


def test_constant_of_shape_weights_and_constant_attribute_forms():
    nodes = [
        helper.make_node(
            "ConstantOfShape",
            ["wshape"],
            ["w"],
            value=numpy_helper.from_array(np.array([0.5], np.float32)),
        ),
        helper.make_node("Constant", [], ["b"], value_floats=[1.0, 2.0]),
        helper.make_node("Conv", ["x", "w", "b"], ["y"]),
    ]
    graph = lower(nodes, [tensor("x", [1, 3, 5, 5])], ["y"], {"wshape": np.array([2, 3, 1, 1])})
    conv = only_node(graph)
    assert (
        conv.inputs[1].type.shape == (2, 3, 1, 1) and float(conv.inputs[1].data[0, 0, 0, 0]) == 0.5
    )
    np.testing.assert_array_equal(conv.inputs[2].data, [1.0, 2.0])


def test_weights_convert_to_float32_and_int64_stays():
    nodes = [
        helper.make_node("Add", ["x", "w64"], ["a"]),
        helper.make_node("Mul", ["a", "w16"], ["b"]),
        helper.make_node("Add", ["i", "k"], ["c"]),
    ]
    initializers = {
        "w64": np.ones(3, np.float64),
        "w16": np.ones(3, np.float16),
        "k": np.ones(3, np.int64),
    }
    inputs = [tensor("x", [3], TensorProto.FLOAT), tensor("i", [3], TensorProto.INT64)]
    graph = lower(nodes, inputs, ["b", "c"], initializers)
    assert graph.inputs[0].type.dtype == "float32"
    assert [n.inputs[1].data.dtype for n in graph.nodes] == [np.float32, np.float32, np.int64]


def test_float64_graph_input_is_unsupported():
    nodes = [helper.make_node("Relu", ["x"], ["y"])]
    with pytest.raises(UnsupportedError, match="input 'x': float64"):
        lower(nodes, [tensor("x", [3], TensorProto.DOUBLE)], ["y"], {})


def test_shape_with_start_and_end_and_size_are_constants():
    nodes = [
        helper.make_node("Shape", ["x"], ["s"], start=1, end=-1),
        helper.make_node("Size", ["x"], ["n"]),
        helper.make_node("Cast", ["s"], ["sf"], to=TensorProto.FLOAT),
        helper.make_node("Cast", ["n"], ["nf"], to=TensorProto.FLOAT),
        helper.make_node("Mul", ["sf", "nf"], ["scale"]),
        helper.make_node("Mul", ["v", "scale"], ["y"]),
    ]
    graph = lower(nodes, [tensor("x", [2, 3, 4, 5]), tensor("v", [2])], ["y"], opset=15)
    np.testing.assert_array_equal(only_node(graph).inputs[1].data, [360.0, 480.0])


def test_model_local_functions_are_inlined():
    body = helper.make_node("Relu", ["a"], ["b"])
    function = helper.make_function(
        "custom", "MyRelu", ["a"], ["b"], [body], [helper.make_opsetid("", 17)]
    )
    node = helper.make_node("MyRelu", ["x"], ["y"], domain="custom")
    graph = helper.make_graph([node], "test", [tensor("x", [2])], [tensor("y", [2])])
    imports = [helper.make_opsetid("", 17), helper.make_opsetid("custom", 1)]
    onnx_model = helper.make_model(graph, opset_imports=imports, functions=[function])
    assert ops(load_onnx(onnx_model)) == ["activation"]


# -- names, inputs and outputs ----------------------------------------------------------------
def test_names_follow_onnx_and_unnamed_nodes_get_op_and_index():
    nodes = [
        helper.make_node("Relu", ["x"], ["hidden"], name="first"),
        helper.make_node("Neg", ["hidden"], ["y"]),
        helper.make_node("Abs", ["y"], ["z"], name="y"),
    ]
    graph = lower(nodes, [tensor("x", [2])], ["z"])
    assert [n.name for n in graph.nodes] == ["first", "Neg_1", "y_node"]
    assert [v.name for n in graph.nodes for v in n.outputs] == ["hidden", "y", "z"]


def test_outputs_that_are_inputs_constants_or_repeated_get_identity_nodes():
    nodes = [
        helper.make_node("Constant", [], ["c"], value_float=2.0),
        helper.make_node("Relu", ["x"], ["r"]),
    ]
    graph = lower(
        nodes, [tensor("x", [2])], ["x", "c", "r", helper.make_empty_tensor_value_info("r")]
    )
    assert ops(graph) == ["activation", "identity", "identity", "identity"]
    assert [v.name for v in graph.outputs] == ["x_1", "c", "r", "r_1"]
    assert graph.outputs[1].producer.inputs[0].is_constant


def test_initializers_listed_as_inputs_are_constants_and_unused_inputs_stay():
    node = helper.make_node("Add", ["x", "w"], ["y"])
    inputs = [tensor("x", [3]), tensor("w", [3]), tensor("unused", [1])]
    graph = lower([node], inputs, ["y"], {"w": weights(3)})
    assert [v.name for v in graph.inputs] == ["x", "unused"]
    assert only_node(graph).inputs[1].is_constant


def test_dynamic_batch_binds_and_other_unknown_dims_are_errors():
    graph = unary("Relu", shape=("batch", 3))
    assert graph.inputs[0].type.shape == (1, 3)
    node = helper.make_node("Relu", ["x"], ["y"])
    graph = lower([node], [tensor("x", [None, 3])], ["y"], batch=8)
    assert graph.inputs[0].type.shape == (8, 3) and graph.outputs[0].type.shape == (8, 3)
    unbound = r"input 'x' axis 2 \('width'\) has no fixed size; s2c needs static"
    with pytest.raises(InputError, match=unbound):
        lower([node], [tensor("x", [1, 3, "width"])], ["y"])


def test_a_shape_disagreeing_with_onnx_inference_is_an_internal_error(monkeypatch):
    from s2c.frontend import lower as lowering

    def wrong_types(model):
        return {"y": ((9, 9), FLOAT)}

    monkeypatch.setattr(lowering, "infer_types", wrong_types)
    with pytest.raises(InternalError, match=r"'Relu_0' .*ONNX shape inference"):
        unary("Relu", shape=(2, 3))


# -- unsupported nodes ------------------------------------------------------------------------
def test_every_unsupported_node_is_reported_at_once():
    nodes = [
        helper.make_node("ConvTranspose", ["x", "w"], ["a"], name="up"),
        helper.make_node("Relu", ["a"], ["b"]),
        helper.make_node("LpPool", ["b"], ["c"], kernel_shape=[2, 2], name="lp"),
        helper.make_node("Neg", ["c"], ["y"]),
    ]
    with pytest.raises(UnsupportedError) as caught:
        lower(nodes, [tensor("x", [1, 2, 4, 4])], ["y"], {"w": weights(2, 2, 3, 3)}, opset=11)
    assert caught.value.problems == [
        "'up' (ConvTranspose, opset 11): no lowering",
        "'lp' (LpPool, opset 11): no lowering",
    ]
    message = str(caught.value)
    assert message.startswith("2 unsupported nodes: 'up' (ConvTranspose, opset 11): no lowering;")
    assert "supported ops: Abs, Add," in message and "\n" not in message


def test_nodes_of_other_domains_are_unsupported():
    node = helper.make_node("Scaler", ["x"], ["y"], domain="ai.onnx.ml", name="scale")
    graph = helper.make_graph([node], "test", [tensor("x", [1, 3])], [tensor("y", [1, 3])])
    imports = [helper.make_opsetid("", 17), helper.make_opsetid("ai.onnx.ml", 3)]
    with pytest.raises(UnsupportedError) as caught:
        load_onnx(helper.make_model(graph, opset_imports=imports))
    assert caught.value.problems[0].startswith("'scale' (Scaler, ai.onnx.ml opset 3): no lowering")


# -- bad input files --------------------------------------------------------------------------
def save(onnx_model: onnx.ModelProto, path) -> str:
    path.write_bytes(onnx_model.SerializeToString())
    return str(path)


def relu_model(opset: int = 17) -> onnx.ModelProto:
    return model([helper.make_node("Relu", ["x"], ["y"])], [tensor("x", [2])], ["y"], opset=opset)


def test_a_file_loads(tmp_path):
    graph = load_onnx(save(relu_model(), tmp_path / "m.onnx"))
    assert ops(graph) == ["activation"]
    assert load_model_proto(tmp_path / "m.onnx").graph.node[0].op_type == "Relu"


def test_missing_file(tmp_path):
    with pytest.raises(InputError, match=r"cannot read '.*missing.onnx': no such file"):
        load_onnx(tmp_path / "missing.onnx")


def test_not_protobuf(tmp_path):
    path = tmp_path / "notes.onnx"
    path.write_text("this is not a model\n" * 20)
    with pytest.raises(InputError, match=r"notes.onnx"):
        load_onnx(path)


def test_truncated_file(tmp_path):
    onnx_model = model(
        [helper.make_node("Add", ["x", "w"], ["y"])],
        [tensor("x", [1000])],
        ["y"],
        {"w": weights(1000)},
    )
    data = onnx_model.SerializeToString()
    path = tmp_path / "cut.onnx"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError, match=r"cannot parse '.*cut.onnx': not an ONNX protobuf file"):
        load_onnx(path)


def test_checker_failure(tmp_path):
    onnx_model = model([helper.make_node("Relu", ["nowhere"], ["y"])], [tensor("x", [2])], ["y"])
    with pytest.raises(InputError, match=r"^model fails the ONNX checker: "):
        load_onnx(save(onnx_model, tmp_path / "bad.onnx"))


@pytest.mark.parametrize(
    ("opset", "message"),
    [
        (5, "opset 5 is older than the supported minimum 6"),
        (22, "opset 22 is newer than the supported 21"),
    ],
)
def test_opsets_out_of_range(tmp_path, opset, message):
    with pytest.raises(InputError, match=message):
        load_onnx(save(relu_model(opset), tmp_path / "m.onnx"))
    with pytest.raises(InputError, match=message):
        load_onnx(relu_model(opset))


def external_model(folder) -> str:
    """A model whose weight is stored in weights.bin beside it."""
    onnx_model = model(
        [helper.make_node("Add", ["x", "w"], ["y"])], [tensor("x", [64])], ["y"], {"w": weights(64)}
    )
    path = str(folder / "m.onnx")
    onnx.save_model(
        onnx_model, path, save_as_external_data=True, location="weights.bin", size_threshold=0
    )
    return path


def relocate(path: str, location: str) -> None:
    onnx_model = onnx.load(path, load_external_data=False)
    for entry in onnx_model.graph.initializer[0].external_data:
        if entry.key == "location":
            entry.value = location
    with open(path, "wb") as file:
        file.write(onnx_model.SerializeToString())


def test_external_data_inside_the_folder_loads(tmp_path):
    graph = load_onnx(external_model(tmp_path))
    assert only_node(graph).inputs[1].data.shape == (64,)


def test_external_data_escaping_the_folder(tmp_path):
    folder = tmp_path / "model"
    folder.mkdir()
    path = external_model(folder)
    (tmp_path / "outside.bin").write_bytes((folder / "weights.bin").read_bytes())
    relocate(path, "../outside.bin")
    with pytest.raises(InputError, match=r"tensor 'w' keeps its data at '../outside.bin', outside"):
        load_onnx(path)
    relocate(path, str(tmp_path / "outside.bin"))
    with pytest.raises(InputError, match=r"tensor 'w' .*must be a relative path"):
        load_onnx(path)


def test_external_data_symlink_escaping_the_folder(tmp_path):
    folder = tmp_path / "model"
    folder.mkdir()
    path = external_model(folder)
    (folder / "weights.bin").rename(tmp_path / "real.bin")
    (folder / "weights.bin").symlink_to(tmp_path / "real.bin")
    with pytest.raises(InputError, match=r"tensor 'w' keeps its data at 'weights.bin', outside"):
        load_onnx(path)


def test_missing_external_data_file(tmp_path):
    path = external_model(tmp_path)
    os.remove(tmp_path / "weights.bin")
    with pytest.raises(InputError, match=r"tensor 'w' .*weights.bin does not exist"):
        load_onnx(path)


def test_model_proto_with_external_data_needs_its_path(tmp_path):
    path = external_model(tmp_path)
    with pytest.raises(InputError, match=r"tensor 'w' keeps its data in an external file"):
        load_onnx(onnx.load(path, load_external_data=False))


def test_a_model_proto_argument_is_not_changed():
    onnx_model = model([helper.make_node("Relu", ["x"], ["y"])], [tensor("x", ["N", 2])], ["y"])
    before = onnx_model.SerializeToString()
    load_onnx(onnx_model, batch=3)
    assert onnx_model.SerializeToString() == before


# -- the ONNX backend suite's models ----------------------------------------------------------
LIGHT_MODELS = sorted(glob.glob(os.path.join(ONNX_DATA, "light", "light_*.onnx")))


@pytest.mark.parametrize("path", LIGHT_MODELS, ids=os.path.basename)
def test_model_zoo_graphs_lower_and_verify(path):
    graph = load_onnx(path)
    verify(graph)
    assert graph.inputs and graph.outputs
    assert {"conv", "pool"} <= set(ops(graph))
    assert not {"reshape", "concat"} & {n.op for n in graph.nodes if n.inputs[0].is_constant}


def test_there_are_nine_model_zoo_graphs():
    assert len(LIGHT_MODELS) == 9


SUITE_MODELS = sorted(
    glob.glob(os.path.join(ONNX_DATA, "pytorch-converted", "*", "model.onnx"))
    + glob.glob(os.path.join(ONNX_DATA, "pytorch-operator", "*", "model.onnx"))
    + glob.glob(os.path.join(ONNX_DATA, "simple", "*", "model.onnx"))
)


def suite_id(path: str) -> str:
    return os.path.basename(os.path.dirname(path))


@pytest.mark.parametrize("path", SUITE_MODELS, ids=suite_id)
def test_backend_suite_models_lower_or_are_unsupported(path):
    try:
        graph = load_onnx(path)
    except UnsupportedError as error:
        assert error.problems
        return
    verify(graph)


def test_the_backend_suite_is_mostly_lowered():
    lowered = 0
    for path in SUITE_MODELS:
        try:
            load_onnx(path)
        except UnsupportedError:
            continue
        lowered += 1
    assert len(SUITE_MODELS) > 100 and lowered >= 110


# -- numerics through the IR reference, when it is there -------------------------------------
def run_graph(graph: Graph, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    """Evaluate the IR graph node by node with ir.reference (skips the test without it)."""
    reference = pytest.importorskip("ir.reference")
    env = {id(v): feeds[v.name] for v in graph.inputs}

    def value(v):
        return v.data if v.is_constant else env[id(v)]

    for node in graph.nodes:
        results = reference.evaluate(node.op, node.attrs, [value(v) for v in node.inputs])
        env.update({id(v): r for v, r in zip(node.outputs, results, strict=True)})
    return [value(v) for v in graph.outputs]


def read_tensor(path: str) -> np.ndarray:
    proto = onnx.TensorProto()
    with open(path, "rb") as file:
        proto.ParseFromString(file.read())
    return numpy_helper.to_array(proto)


def lowered_suite_models() -> list[str]:
    """Suite models that lower and have float32 data (the float64 cases hold values beyond
    float32's range, which s2c's float32 arithmetic cannot represent)."""
    chosen = []
    for path in SUITE_MODELS:
        inputs = onnx.load(path).graph.input
        if any(v.type.tensor_type.elem_type == TensorProto.DOUBLE for v in inputs):
            continue
        try:
            load_onnx(path)
        except UnsupportedError:
            continue
        chosen.append(path)
    return chosen


@pytest.mark.parametrize("path", lowered_suite_models(), ids=suite_id)
def test_backend_suite_results_through_the_ir_reference(path):
    graph = load_onnx(path)
    data = os.path.join(os.path.dirname(path), "test_data_set_0")
    inputs = [read_tensor(p) for p in sorted(glob.glob(os.path.join(data, "input_*.pb")))]
    expected = [read_tensor(p) for p in sorted(glob.glob(os.path.join(data, "output_*.pb")))]
    onnx_inputs = [v.name for v in onnx.load(path).graph.input]
    feeds = dict(zip(onnx_inputs, inputs, strict=False))
    results = run_graph(graph, {v.name: feeds[v.name] for v in graph.inputs})
    for result, want in zip(results, expected, strict=True):
        # float32 kernels against PyTorch's float32 results: a few ULP of accumulated rounding.
        np.testing.assert_allclose(result, want, rtol=1e-4, atol=1e-5, equal_nan=True)


@pytest.fixture(scope="module")
def node_test_cases():
    """The ONNX node test cases, with opsets above MAX_OPSET lowered to it."""
    from onnx.backend.test.case.node import collect_testcases

    with warnings.catch_warnings(), np.errstate(all="ignore"):
        warnings.simplefilter("ignore", RuntimeWarning)  # the cases' own numpy arithmetic
        cases = [c for c in collect_testcases(None) if isinstance(c.model, onnx.ModelProto)]
    for case in cases:
        for entry in case.model.opset_import:
            if entry.domain in ("", "ai.onnx"):
                entry.version = min(entry.version, MAX_OPSET)
    return cases


@pytest.mark.slow
def test_onnx_node_tests_lower_or_are_refused_cleanly(node_test_cases):
    lowered = 0
    for case in node_test_cases:
        try:
            load_onnx(case.model)
            lowered += 1
        except (UnsupportedError, InputError):
            pass
    assert lowered > 300


def as_array(data) -> np.ndarray:
    """A node test's data (numpy or TensorProto) as numpy; floats of any width as float32."""
    array = numpy_helper.to_array(data) if isinstance(data, onnx.TensorProto) else np.asarray(data)
    if array.dtype.kind == "f" or "float" in array.dtype.name:
        return array.astype(np.float32)
    return array


@pytest.mark.slow
def test_onnx_node_tests_that_lower_compute_the_expected_results(node_test_cases):
    checked = 0
    for case in node_test_cases:
        try:
            graph = load_onnx(case.model)
        except (UnsupportedError, InputError):
            continue
        inputs, expected = case.data_sets[0]
        initializers = {t.name for t in case.model.graph.initializer}
        names = [v.name for v in case.model.graph.input if v.name not in initializers]
        feeds = {n: as_array(a) for n, a in zip(names, inputs, strict=True)}
        for result, want in zip(run_graph(graph, feeds), expected, strict=True):
            raw = numpy_helper.to_array(want) if isinstance(want, onnx.TensorProto) else want
            if np.asarray(raw).dtype.itemsize < 4 and np.asarray(raw).dtype.kind in "fV":
                continue  # ONNX rounds to a narrow float; s2c keeps float32 (by design)
            # Expected values are computed in float64 by numpy; float32 differs in the last bits.
            np.testing.assert_allclose(
                result, as_array(want), rtol=1e-3, atol=1e-4, equal_nan=True, err_msg=case.name
            )
        checked += 1
    assert checked > 300
