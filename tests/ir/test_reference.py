"""ir.reference against onnxruntime: every IR op and activation function, on one-node models.

Each case evaluates an IR op with `ir.reference.evaluate` and runs the equivalent ONNX node (a
short chain for dense and fused activations) in onnxruntime with graph optimisations disabled, on
the same seeded inputs. Results must agree in dtype, in shape (which must also be the IR's shape
rule) and in value. Default tolerances are rtol 1e-5, atol 1e-6; larger ones say why.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import helper

from ir import OPS, TensorType, get_op
from ir.activations import ACTIVATION_PARAMS
from ir.errors import InternalError
from ir.reference import KERNELS, apply_activation, evaluate
from ir.reference.activation import erf

OPSET = 20  # Gelu needs 20; Reduce*, Split, Pad and Slice take their parameters as inputs
# Conv, dense and matmul outputs are O(1) sums of up to ~150 float32 products, accumulated in
# different orders by BLAS and by onnxruntime's kernels; the orders typically differ by ~1e-6
# (sqrt(K) ulps), and atol 1e-5 leaves room for other BLAS builds' blockings.
SUM_TOL = {"rtol": 1e-5, "atol": 1e-5}


def _rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def _normal(shape: tuple[int, ...], seed: int = 0, scale: float = 1.0) -> np.ndarray:
    return np.asarray(_rng(seed).standard_normal(shape) * scale, dtype=np.float32)


# -- running onnxruntime ------------------------------------------------------------------------
def run_graph(nodes: list[onnx.NodeProto], feeds: dict[str, np.ndarray], outputs: list[str]):
    """Outputs of a graph of `nodes` with graph inputs `feeds`, in onnxruntime, unoptimised."""
    graph_inputs = [
        helper.make_tensor_value_info(
            name, helper.np_dtype_to_tensor_dtype(value.dtype), value.shape
        )
        for name, value in feeds.items()
    ]
    graph_outputs = [helper.make_empty_tensor_value_info(name) for name in outputs]
    graph = helper.make_graph(nodes, "reference_case", graph_inputs, graph_outputs)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.intra_op_num_threads = 1
    options.log_severity_level = 3
    session = ort.InferenceSession(
        model.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )
    return session.run(outputs, feeds)


def run_node(onnx_op: str, operands: list[np.ndarray | None], results: int = 1, **attrs: Any):
    """Outputs of one ONNX node; None operands are omitted optional inputs."""
    names = ["" if a is None else f"in{i}" for i, a in enumerate(operands)]
    feeds = {n: np.asarray(a) for n, a in zip(names, operands, strict=True) if a is not None}
    outputs = [f"out{i}" for i in range(results)]
    return run_graph([helper.make_node(onnx_op, names, outputs, **attrs)], feeds, outputs)


def check(
    op: str,
    attrs: dict[str, Any],
    inputs: list[np.ndarray],
    expected: list[np.ndarray],
    rtol: float = 1e-5,
    atol: float = 1e-6,
) -> None:
    """evaluate(op) on `inputs` equals `expected`, and has the IR's result types."""
    types = [TensorType(tuple(a.shape), str(a.dtype)) for a in inputs]
    opdef = get_op(op)
    full = opdef.with_defaults(attrs)
    assert opdef.verify is None or opdef.verify(types, full) is None, "not a valid IR case"
    actual = evaluate(op, attrs, inputs)
    assert opdef.infer is not None
    assert [a.shape for a in actual] == [t.shape for t in opdef.infer(types, full)]
    assert len(actual) == len(expected)
    for got, want in zip(actual, expected, strict=True):
        assert got.dtype == want.dtype
        np.testing.assert_allclose(got, want, rtol=rtol, atol=atol)


def test_every_ir_op_has_reference_semantics():
    assert set(KERNELS) == set(OPS)


def test_unknown_op_is_an_internal_error():
    with pytest.raises(InternalError, match="no_such_op"):
        evaluate("no_such_op", {}, [np.zeros(1, np.float32)])


# -- conv, dense, matmul ------------------------------------------------------------------------
# (x shape, weight shape, strides, pads, dilations, group)
CONV_CASES = {
    "3x3_pad1": ((1, 4, 9, 9), (6, 4, 3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 1),
    "7x7_stride2": ((2, 3, 15, 15), (8, 3, 7, 7), (2, 2), (3, 3, 3, 3), (1, 1), 1),
    "asymmetric_pads": ((1, 3, 8, 7), (4, 3, 3, 2), (1, 2), (0, 1, 2, 1), (1, 1), 1),
    "dilated": ((1, 3, 11, 10), (5, 3, 3, 3), (1, 1), (2, 2, 2, 2), (2, 3), 1),
    "strided_dilated": ((1, 2, 13, 12), (3, 2, 3, 2), (2, 3), (1, 0, 2, 1), (2, 2), 1),
    "groups_2": ((1, 6, 8, 8), (4, 3, 3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 2),
    "groups_3_strided": ((2, 6, 9, 9), (9, 2, 3, 3), (2, 2), (1, 0, 1, 0), (1, 1), 3),
    "depthwise": ((2, 5, 9, 8), (5, 1, 3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 5),
    "depthwise_strided_dilated": ((1, 4, 12, 11), (4, 1, 3, 3), (2, 2), (2, 1, 0, 2), (2, 2), 4),
    "depthwise_multiplier": ((1, 3, 7, 7), (6, 1, 3, 3), (1, 1), (1, 1, 1, 1), (1, 1), 3),
    "pointwise": ((2, 8, 5, 6), (4, 8, 1, 1), (1, 1), (0, 0, 0, 0), (1, 1), 1),
    "pointwise_stride2": ((1, 8, 7, 7), (16, 8, 1, 1), (2, 2), (0, 0, 0, 0), (1, 1), 1),
    "pointwise_padded_groups": ((1, 4, 5, 5), (6, 2, 1, 1), (2, 1), (1, 0, 0, 1), (1, 1), 2),
    "1d": ((2, 3, 20), (4, 3, 5), (2,), (2, 1), (1,), 1),
    "1d_dilated_depthwise": ((1, 4, 17), (4, 1, 3), (1,), (2, 2), (2,), 4),
    "3d": ((1, 2, 6, 7, 5), (3, 2, 3, 3, 2), (1, 2, 1), (1, 1, 0, 1, 0, 1), (1, 1, 2), 1),
    "3d_groups": ((1, 4, 5, 5, 5), (4, 2, 2, 3, 3), (2, 1, 1), (0, 1, 1, 1, 1, 0), (1, 1, 1), 2),
}


@pytest.mark.parametrize("with_bias", [True, False])
@pytest.mark.parametrize("case", CONV_CASES)
def test_conv(case, with_bias):
    x_shape, w_shape, strides, pads, dilations, group = CONV_CASES[case]
    fan_in = math.prod(w_shape[1:])
    x = _normal(x_shape, 1)
    w = _normal(w_shape, 2, scale=1 / math.sqrt(fan_in))
    bias = _normal((w_shape[0],), 3) if with_bias else None
    operands = [x, w] if bias is None else [x, w, bias]
    expected = run_node(
        "Conv", [x, w, bias], strides=strides, pads=pads, dilations=dilations, group=group
    )
    attrs = {"strides": strides, "pads": pads, "dilations": dilations, "group": group}
    check("conv", attrs, operands, expected, **SUM_TOL)


# IR fused activation -> ONNX node applied to the conv / dense result.
FUSED = {
    "relu": ((), "Relu", {}, []),
    "clip": ((-0.3, 0.4), "Clip", {}, [np.float32(-0.3), np.float32(0.4)]),
    "leaky_relu": ((0.2,), "LeakyRelu", {"alpha": 0.2}, []),
    "hard_swish": ((), "HardSwish", {}, []),
    "sigmoid": ((), "Sigmoid", {}, []),
}


@pytest.mark.parametrize("function", FUSED)
def test_conv_fused_activation(function):
    params, onnx_op, onnx_attrs, extra = FUSED[function]
    x, w, bias = _normal((1, 3, 6, 6), 1), _normal((4, 3, 3, 3), 2, 0.2), _normal((4,), 3)
    feeds = {"x": x, "w": w, "b": bias}
    feeds.update({f"p{i}": np.asarray(p) for i, p in enumerate(extra)})
    nodes = [
        helper.make_node("Conv", ["x", "w", "b"], ["c"], pads=(1, 1, 1, 1)),
        helper.make_node(
            onnx_op, ["c", *(f"p{i}" for i in range(len(extra)))], ["y"], **onnx_attrs
        ),
    ]
    expected = run_graph(nodes, feeds, ["y"])
    attrs = {
        "strides": (1, 1),
        "pads": (1, 1, 1, 1),
        "dilations": (1, 1),
        "activation": function,
        "activation_params": params,
    }
    check("conv", attrs, [x, w, bias], expected, **SUM_TOL)


@pytest.mark.parametrize("x_shape", [(4, 8), (2, 3, 8), (8,)])
@pytest.mark.parametrize("function", ["none", "relu", "hard_sigmoid"])
def test_dense(x_shape, function):
    x, w, bias = _normal(x_shape, 1), _normal((8, 5), 2), _normal((5,), 3)
    params = (0.3, 0.4) if function == "hard_sigmoid" else ()
    nodes = [
        helper.make_node("MatMul", ["x", "w"], ["m"]),
        helper.make_node("Add", ["m", "b"], ["y" if function == "none" else "a"]),
    ]
    if function == "relu":
        nodes.append(helper.make_node("Relu", ["a"], ["y"]))
    if function == "hard_sigmoid":
        nodes.append(helper.make_node("HardSigmoid", ["a"], ["y"], alpha=0.3, beta=0.4))
    expected = run_graph(nodes, {"x": x, "w": w, "b": bias}, ["y"])
    attrs = {"activation": function, "activation_params": params}
    check("dense", attrs, [x, w, bias], expected, **SUM_TOL)


def test_dense_without_bias():
    x, w = _normal((3, 6), 1), _normal((6, 2), 2)
    check("dense", {}, [x, w], run_node("MatMul", [x, w]), **SUM_TOL)


MATMUL_SHAPES = [
    ((3, 4), (4, 5)),
    ((2, 3, 4), (4, 5)),
    ((4,), (2, 4, 5)),
    ((2, 1, 3, 4), (5, 4, 6)),
    ((2, 3, 4), (4,)),
    ((4,), (4,)),
]


@pytest.mark.parametrize("shapes", MATMUL_SHAPES)
def test_matmul(shapes):
    a, b = _normal(shapes[0], 1), _normal(shapes[1], 2)
    check("matmul", {}, [a, b], run_node("MatMul", [a, b]), **SUM_TOL)


# -- pooling ------------------------------------------------------------------------------------
# (x shape, kernel, strides, pads, dilations). In ceil mode, the 1d, 1d_begin_pad_only,
# 1d_dilated, 2d, 2d_asymmetric (axis 3), 2d_dilated (axis 3) and 3d (axis 2) cases gain a last
# window that runs past the end padding, whose taps count_include_pad must not count; the
# 1d_last_window_dropped, 2d_asymmetric (axis 2), 2d_dilated (axis 2) and 3d (axis 4) cases would
# gain one that starts inside the end padding, which is dropped.
POOL_CASES = {
    "1d": ((1, 2, 10), (3,), (2,), (1, 1), (1,)),
    "1d_begin_pad_only": ((2, 3, 9), (4,), (3,), (2, 0), (1,)),
    "1d_last_window_dropped": ((1, 2, 5), (2,), (2,), (1, 1), (1,)),
    "1d_dilated": ((1, 2, 11), (3,), (2,), (1, 2), (2,)),
    "2d": ((1, 3, 7, 8), (3, 3), (2, 2), (1, 1, 1, 1), (1, 1)),
    "2d_asymmetric": ((2, 2, 9, 7), (3, 2), (2, 3), (1, 0, 2, 0), (1, 1)),
    "2d_dilated": ((1, 2, 11, 10), (2, 3), (3, 2), (1, 2, 1, 0), (2, 2)),
    "3d": ((1, 2, 6, 6, 7), (2, 3, 2), (2, 2, 3), (1, 0, 1, 0, 1, 1), (1, 1, 1)),
}


def _onnx_pool(kind, x, kernel, strides, pads, dilations, ceil_mode, count_include_pad):
    attrs = {"kernel_shape": kernel, "strides": strides, "pads": pads, "dilations": dilations}
    attrs["ceil_mode"] = ceil_mode
    if kind == "avg":
        return run_node("AveragePool", [x], count_include_pad=count_include_pad, **attrs)
    return run_node("MaxPool", [x], **attrs)


@pytest.mark.parametrize("count_include_pad", [0, 1])
@pytest.mark.parametrize("ceil_mode", [0, 1])
@pytest.mark.parametrize("case", POOL_CASES)
def test_avg_pool(case, ceil_mode, count_include_pad):
    x_shape, kernel, strides, pads, dilations = POOL_CASES[case]
    x = _normal(x_shape, 1)
    expected = _onnx_pool("avg", x, kernel, strides, pads, dilations, ceil_mode, count_include_pad)
    attrs = {
        "kind": "avg",
        "kernel": kernel,
        "strides": strides,
        "pads": pads,
        "dilations": dilations,
        "ceil_mode": ceil_mode,
        "count_include_pad": count_include_pad,
    }
    check("pool", attrs, [x], expected)


@pytest.mark.parametrize("ceil_mode", [0, 1])
@pytest.mark.parametrize("case", POOL_CASES)
def test_max_pool(case, ceil_mode):
    x_shape, kernel, strides, pads, dilations = POOL_CASES[case]
    x = _normal(x_shape, 1) - 5  # all negative: padding (zero) must never win
    expected = _onnx_pool("max", x, kernel, strides, pads, dilations, ceil_mode, 0)
    attrs = {
        "kind": "max",
        "kernel": kernel,
        "strides": strides,
        "pads": pads,
        "dilations": dilations,
        "ceil_mode": ceil_mode,
    }
    check("pool", attrs, [x], expected, rtol=0, atol=0)


@pytest.mark.parametrize(("pads", "expected"), [((1, 1), [1, 3, 3]), ((1, 0), [1, 3, 4.5])])
def test_avg_pool_divisor_clips_at_end_padding(pads, expected):
    """Worked example on x = 1..5, kernel 3, stride 2, ceil mode, padding counted.

    pads (1, 1): windows start at -1, 1, 3; the last covers 3, 4 and the end padding 5, so every
    divisor is 3: y = [(0+1+2)/3, (2+3+4)/3, (4+5+0)/3]. pads (1, 0): ceil mode adds the same
    third window, but now position 5 lies past the end padding and is not counted: (4+5)/2.
    """
    x = np.arange(1, 6, dtype=np.float32).reshape(1, 1, 5)
    attrs = {"kind": "avg", "kernel": (3,), "strides": (2,), "pads": pads, "dilations": (1,)}
    attrs |= {"ceil_mode": 1, "count_include_pad": 1}
    np.testing.assert_allclose(evaluate("pool", attrs, [x])[0].ravel(), expected, rtol=1e-6)
    from_onnxruntime = _onnx_pool("avg", x, (3,), (2,), pads, (1,), 1, 1)[0]
    np.testing.assert_allclose(from_onnxruntime.ravel(), expected, rtol=1e-6)


@pytest.mark.parametrize("dtype", [np.int8, np.uint8])
def test_max_pool_integers(dtype):
    x = _rng(1).integers(0, 100, (1, 2, 6, 5)).astype(dtype) - dtype(50 if dtype == np.int8 else 0)
    kernel, strides, pads = (3, 2), (2, 2), (1, 0, 1, 1)
    expected = _onnx_pool("max", x, kernel, strides, pads, (1, 1), 1, 0)
    attrs = {"kind": "max", "kernel": kernel, "strides": strides, "pads": pads}
    attrs |= {"dilations": (1, 1), "ceil_mode": 1}
    check("pool", attrs, [x], expected, rtol=0, atol=0)


@pytest.mark.parametrize("shape", [(2, 3, 5, 4), (1, 2, 7), (1, 2, 3, 4, 2)])
@pytest.mark.parametrize("kind", ["max", "avg"])
def test_global_pool(kind, shape):
    x = _normal(shape, 1)
    onnx_op = "GlobalMaxPool" if kind == "max" else "GlobalAveragePool"
    check("global_pool", {"kind": kind}, [x], run_node(onnx_op, [x]))


# -- element-wise -------------------------------------------------------------------------------
BINARY_ONNX = {
    "add": "Add",
    "sub": "Sub",
    "mul": "Mul",
    "div": "Div",
    "max": "Max",
    "min": "Min",
    "pow": "Pow",
    "prelu": "PRelu",
}


@pytest.mark.parametrize(
    "shapes", [((2, 3, 4), (2, 3, 4)), ((2, 3, 4), (3, 1)), ((1, 4), (3, 1)), ((2, 3), ())]
)
@pytest.mark.parametrize("op", BINARY_ONNX)
def test_binary(op, shapes):
    a, b = _normal(shapes[0], 1), _normal(shapes[1], 2)
    if op == "pow":
        a = np.abs(a) + np.float32(0.5)  # real results only
    if op == "div":
        b = np.sign(b) * (np.abs(b) + np.float32(0.5))  # away from zero
    if op == "prelu" and shapes[1] == (3, 1):  # the slope must broadcast to the input (PRelu)
        a = _normal((2, 3, 4), 1)
    check(op, {}, [a, b], run_node(BINARY_ONNX[op], [a, b]))


@pytest.mark.parametrize("dtype", [np.int32, np.int64])
@pytest.mark.parametrize("op", ["add", "sub", "mul", "div", "max", "min"])
def test_binary_integers(op, dtype):
    a = np.array([[-7, 7, -6, 6, 0, 5]], dtype=dtype)
    b = np.array([[2], [-3]], dtype=dtype)  # div: quotients truncated toward zero
    check(op, {}, [a, b], run_node(BINARY_ONNX[op], [a, b]), rtol=0, atol=0)


def test_prelu_per_channel_slope():
    x, slope = _normal((2, 4, 3, 3), 1), _normal((4, 1, 1), 2)
    check("prelu", {}, [x, slope], run_node("PRelu", [x, slope]))


# function -> (params, ONNX op, ONNX attributes, extra ONNX inputs)
ACTIVATION_ONNX: dict[str, tuple[tuple[float, ...], str, dict[str, Any], list[np.ndarray]]] = {
    "relu": ((), "Relu", {}, []),
    "leaky_relu": ((0.15,), "LeakyRelu", {"alpha": 0.15}, []),
    "clip": ((-0.7, 1.1), "Clip", {}, [np.float32(-0.7), np.float32(1.1)]),
    "sigmoid": ((), "Sigmoid", {}, []),
    "tanh": ((), "Tanh", {}, []),
    "hard_sigmoid": ((0.3, 0.45), "HardSigmoid", {"alpha": 0.3, "beta": 0.45}, []),
    "hard_swish": ((), "HardSwish", {}, []),
    "elu": ((0.8,), "Elu", {"alpha": 0.8}, []),
    "selu": ((1.6, 1.1), "Selu", {"alpha": 1.6, "gamma": 1.1}, []),
    "celu": ((0.7,), "Celu", {"alpha": 0.7}, []),
    "softplus": ((), "Softplus", {}, []),
    "softsign": ((), "Softsign", {}, []),
    "exp": ((), "Exp", {}, []),
    "log": ((), "Log", {}, []),
    "abs": ((), "Abs", {}, []),
    "neg": ((), "Neg", {}, []),
    "sqrt": ((), "Sqrt", {}, []),
    "reciprocal": ((), "Reciprocal", {}, []),
    "floor": ((), "Floor", {}, []),
    "ceil": ((), "Ceil", {}, []),
    "erf": ((), "Erf", {}, []),
    "gelu": ((), "Gelu", {}, []),
    "gelu_tanh": ((), "Gelu", {"approximate": "tanh"}, []),
    "sign": ((), "Sign", {}, []),
    "thresholded_relu": ((0.4,), "ThresholdedRelu", {"alpha": 0.4}, []),
    "shrink": ((0.5, 0.2), "Shrink", {"lambd": 0.5, "bias": 0.2}, []),
}
POSITIVE_ONLY = {"log", "sqrt"}


def _activation_input(function: str) -> np.ndarray:
    """Values over [-6, 6], with exact integers, halves and zero, and a few extremes."""
    x = np.concatenate(
        [np.linspace(-6, 6, 241), _normal((200,), 4) * 3, [-30, -12, 12, 30, -0.0, 1e-4, -1e-4]]
    ).astype(np.float32)
    if function in POSITIVE_ONLY:
        return np.abs(x) + np.float32(1e-3)
    if function == "reciprocal":
        return x[np.abs(x) > 1e-3]
    return x.reshape(1, -1)


def test_activation_table_covers_every_function():
    assert set(ACTIVATION_ONNX) == set(ACTIVATION_PARAMS)


@pytest.mark.parametrize("function", ACTIVATION_ONNX)
def test_activation(function):
    params, onnx_op, onnx_attrs, extra = ACTIVATION_ONNX[function]
    x = _activation_input(function)
    expected = run_node(onnx_op, [x, *extra], **onnx_attrs)
    check("activation", {"function": function, "params": params}, [x], expected)


@pytest.mark.parametrize("function", ["relu", "abs", "neg", "sign", "clip"])
def test_activation_keeps_integer_dtype(function):
    x = np.array([-3, -1, 0, 2, 5], dtype=np.int32)
    params, onnx_op, _, extra = ACTIVATION_ONNX[function]
    params = (-2.0, 3.0) if function == "clip" else params
    extra = [np.int32(-2), np.int32(3)] if function == "clip" else extra
    expected = run_node(onnx_op, [x, *extra])
    check("activation", {"function": function, "params": params}, [x], expected, rtol=0, atol=0)


@pytest.mark.parametrize(
    ("function", "params", "onnx_op", "onnx_attrs"),
    [
        ("shrink", (0.1, 0.2), "Shrink", {"lambd": 0.1, "bias": 0.2}),
        ("thresholded_relu", (0.3,), "ThresholdedRelu", {"alpha": 0.3}),
    ],
)
def test_activation_thresholds_compare_in_float32(function, params, onnx_op, onnx_attrs):
    """float32(0.1) > 0.1 in float64 but not in float32, where onnxruntime compares."""
    x = np.array([0.1, -0.1, 0.3, -0.3, np.nextafter(0.3, 1)], dtype=np.float32)
    expected = run_node(onnx_op, [x], **onnx_attrs)
    check("activation", {"function": function, "params": params}, [x], expected, rtol=0, atol=0)


def test_clip_of_integers_with_an_infinite_bound():
    x = np.array([-5, -2, 0, 7], dtype=np.int32)
    y = apply_activation("clip", (-2.0, math.inf), x)
    assert y.dtype == np.int32
    assert y.tolist() == [-2, -2, 0, 7]


def test_apply_activation_none_is_the_identity():
    x = _normal((3, 4), 1)
    assert apply_activation("none", (), x) is x


def test_erf_matches_math_erf():
    """Cody's rational approximations are accurate to about 1e-16 relative in float64."""
    x = np.concatenate([np.linspace(-8, 8, 16001), [0.46875, -0.46875, 4.0, -4.0, 27.0, np.inf]])
    want = np.array([math.erf(v) for v in x])
    np.testing.assert_allclose(erf(x), want, rtol=2e-15, atol=0)


# -- normalisation ------------------------------------------------------------------------------
@pytest.mark.parametrize("log", [0, 1])
@pytest.mark.parametrize("axis", [0, 1, 2])
def test_softmax(axis, log):
    x = _normal((2, 3, 4), 1) * 4
    expected = run_node("LogSoftmax" if log else "Softmax", [x], axis=axis)
    check("softmax", {"axis": axis, "log": log}, [x], expected)


@pytest.mark.parametrize("size", [1, 3, 5])
def test_lrn(size):
    x = _normal((2, 6, 3, 4), 1)
    attrs = {"size": size, "alpha": 0.3, "beta": 0.6, "bias": 1.5}
    check("lrn", attrs, [x], run_node("LRN", [x], **attrs))


def test_lrn_defaults():
    x = _normal((1, 5, 4, 2), 1) * 10
    check("lrn", {"size": 3}, [x], run_node("LRN", [x], size=3))


@pytest.mark.parametrize("size", [2, 4])
def test_lrn_even_size(size):
    """onnxruntime takes odd sizes only: compare with the ONNX formula written out as loops.

    (onnx.reference's LRN cannot serve: it loops over the batch axis instead of channels.)
    """
    x = _normal((2, 6, 3), 1).astype(np.float64)
    alpha, beta, bias = 0.3, 0.6, 1.5
    expected = np.empty_like(x)
    channels = x.shape[1]
    for c in range(channels):
        low = max(0, c - math.floor((size - 1) / 2))
        high = min(channels - 1, c + math.ceil((size - 1) / 2))
        square_sum = sum(x[:, i] ** 2 for i in range(low, high + 1))
        expected[:, c] = x[:, c] / (bias + alpha / size * square_sum) ** beta
    attrs = {"size": size, "alpha": alpha, "beta": beta, "bias": bias}
    check("lrn", attrs, [x.astype(np.float32)], [expected.astype(np.float32)])


@pytest.mark.parametrize("shape", [(2, 3, 4, 5), (2, 3), (1, 3, 7)])
def test_batch_norm(shape):
    x, scale, bias, mean = (_normal(s, i) for i, s in enumerate([shape, (3,), (3,), (3,)]))
    var = np.abs(_normal((3,), 5)) + np.float32(0.1)
    inputs = [x, scale, bias, mean, var]
    check(
        "batch_norm",
        {"epsilon": 1e-3},
        inputs,
        run_node("BatchNormalization", inputs, epsilon=1e-3),
    )


@pytest.mark.parametrize("shape", [(2, 3, 4, 5), (2, 3, 7), (1, 3, 2, 3, 4)])
def test_instance_norm(shape):
    x = _normal(shape, 1) * 3 + 2
    scale, bias = _normal((3,), 2), _normal((3,), 3)
    expected = run_node("InstanceNormalization", [x, scale, bias], epsilon=1e-4)
    check("instance_norm", {"epsilon": 1e-4}, [x, scale, bias], expected)


# -- reductions ---------------------------------------------------------------------------------
REDUCE_ONNX = {
    "sum": "ReduceSum",
    "mean": "ReduceMean",
    "max": "ReduceMax",
    "min": "ReduceMin",
    "prod": "ReduceProd",
    "sum_square": "ReduceSumSquare",
    "l1": "ReduceL1",
    "l2": "ReduceL2",
}


@pytest.mark.parametrize("keepdims", [0, 1])
@pytest.mark.parametrize("axes", [(1,), (0, 2), (0, 1, 2)])
@pytest.mark.parametrize("kind", REDUCE_ONNX)
def test_reduce(kind, axes, keepdims):
    x = _normal((2, 3, 4), 1)
    expected = run_node(REDUCE_ONNX[kind], [x, np.array(axes, np.int64)], keepdims=keepdims)
    check("reduce", {"kind": kind, "axes": axes, "keepdims": keepdims}, [x], expected)


@pytest.mark.parametrize("kind", REDUCE_ONNX)
def test_reduce_over_no_axes_maps_each_element(kind):
    """onnxruntime's noop_with_empty_axes: x unchanged, but x^2 for sum_square, |x| for l1, l2."""
    x = _normal((2, 3), 1)
    no_axes = np.zeros(0, np.int64)
    expected = run_node(REDUCE_ONNX[kind], [x, no_axes], noop_with_empty_axes=1)
    check("reduce", {"kind": kind, "axes": ()}, [x], expected, rtol=0, atol=0)


@pytest.mark.parametrize("kind", ["sum", "max", "min", "prod"])
def test_reduce_integers(kind):
    x = np.arange(-5, 7, dtype=np.int64).reshape(3, 4)
    expected = run_node(REDUCE_ONNX[kind], [x, np.array([1], np.int64)], keepdims=0)
    check("reduce", {"kind": kind, "axes": (1,), "keepdims": 0}, [x], expected, rtol=0, atol=0)


# -- data movement ------------------------------------------------------------------------------
def test_reshape():
    x = _normal((2, 3, 4), 1)
    shape = (4, 1, 6)
    check("reshape", {"shape": shape}, [x], run_node("Reshape", [x, np.array(shape)]), 0, 0)


@pytest.mark.parametrize("perm", [(2, 0, 1), (0, 2, 1), (0, 1, 2)])
def test_transpose(perm):
    x = _normal((2, 3, 4), 1)
    check("transpose", {"perm": perm}, [x], run_node("Transpose", [x], perm=perm), 0, 0)


@pytest.mark.parametrize("axis", [0, 1, 2])
def test_concat(axis):
    shapes = [[2, 3, 4] for _ in range(3)]
    for i, shape in enumerate(shapes):
        shape[axis] = i + 1
    inputs = [_normal(tuple(shape), i) for i, shape in enumerate(shapes)]
    check("concat", {"axis": axis}, inputs, run_node("Concat", inputs, axis=axis), 0, 0)


@pytest.mark.parametrize(("axis", "sizes"), [(1, (2, 3, 1)), (0, (1, 1)), (2, (3,)), (2, (0, 3))])
def test_split(axis, sizes):
    x = _normal((2, 6, 3), 1)
    expected = run_node("Split", [x, np.array(sizes)], results=len(sizes), axis=axis)
    check("split", {"axis": axis, "sizes": sizes}, [x], expected, 0, 0)


# (starts, stops, steps) on a [4, 5, 6] tensor, already clamped; stop -1 means "past index 0".
SLICE_CASES = {
    "forward": ((0, 1, 2), (4, 5, 6), (1, 2, 3)),
    "backward_to_the_start": ((3, 4, 5), (-1, -1, -1), (-1, -2, -4)),
    "backward_partial": ((2, 4, 5), (0, 1, 2), (-1, -2, -1)),
    "mixed": ((1, 4, 0), (3, -1, 6), (1, -1, 4)),
    "empty": ((2, 0, 5), (2, 5, 5), (1, 1, -1)),
}


@pytest.mark.parametrize("case", SLICE_CASES)
def test_slice(case):
    x = _normal((4, 5, 6), 1)
    starts, stops, steps = SLICE_CASES[case]
    # ONNX counts a negative end from the back, so "past index 0" is spelled -(dim + 1).
    ends = [stop if stop >= 0 else -(dim + 1) for stop, dim in zip(stops, x.shape, strict=True)]
    operands = [x, *(np.array(v, np.int64) for v in (starts, ends, (0, 1, 2), steps))]
    attrs = {"starts": starts, "stops": stops, "steps": steps}
    check("slice", attrs, [x], run_node("Slice", operands), 0, 0)


PAD_CASES = {
    "spatial": (0, 0, 1, 2, 0, 0, 2, 1),
    "every_axis": (1, 0, 1, 1, 0, 2, 1, 0),
    "crop_only": (0, -1, -1, 0, 0, 0, -2, -1),
    "crop_and_pad": (0, 0, -1, 2, 0, 0, 2, -2),
}


@pytest.mark.parametrize("mode", ["constant", "reflect", "edge"])
@pytest.mark.parametrize("case", PAD_CASES)
def test_pad(case, mode):
    x = _normal((2, 3, 5, 6), 1)
    pads = PAD_CASES[case]
    onnx_operands = [x, np.array(pads, np.int64)]
    attrs: dict[str, Any] = {"pads": pads, "mode": mode}
    if mode == "constant":
        onnx_operands.append(np.float32(1.5))
        attrs["value"] = 1.5
    check("pad", attrs, [x], run_node("Pad", onnx_operands, mode=mode), 0, 0)


def test_pad_integers_with_value():
    x = np.arange(12, dtype=np.int64).reshape(3, 4)
    pads = (1, 0, 0, 2)
    expected = run_node("Pad", [x, np.array(pads, np.int64), np.int64(-7)])
    check("pad", {"pads": pads, "value": -7.0}, [x], expected, 0, 0)


@pytest.mark.parametrize("index_dtype", [np.int32, np.int64])
@pytest.mark.parametrize("axis", [0, 1, 2])
def test_gather(axis, index_dtype):
    x = _normal((3, 4, 5), 1)
    indices = np.array([[0, -1], [2, 1], [-3, 0]], dtype=index_dtype)
    check("gather", {"axis": axis}, [x, indices], run_node("Gather", [x, indices], axis=axis), 0, 0)


def test_gather_integer_data_scalar_index():
    x = np.array([10, 20, 30, 40], dtype=np.int64)
    index = np.array(-2, dtype=np.int64)
    check("gather", {}, [x, index], run_node("Gather", [x, index]), 0, 0)


@pytest.mark.parametrize(("shape", "to"), [((3, 1), (2, 3, 4)), ((4,), (3, 4)), ((1,), (2, 2))])
def test_expand(shape, to):
    x = _normal(shape, 1)
    check("expand", {"shape": to}, [x], run_node("Expand", [x, np.array(to)]), 0, 0)


@pytest.mark.parametrize("repeats", [(2, 1), (1, 3), (3, 2), (0, 2)])
def test_tile(repeats):
    x = _normal((2, 3), 1)
    check("tile", {"repeats": repeats}, [x], run_node("Tile", [x, np.array(repeats)]), 0, 0)


@pytest.mark.parametrize(("op", "onnx_op"), [("identity", "Identity"), ("dropout", "Dropout")])
def test_identity_and_dropout(op, onnx_op):
    x = _normal((2, 3), 1)
    result = evaluate(op, {}, [x])
    check(op, {}, [x], run_node(onnx_op, [x]), 0, 0)
    assert not np.shares_memory(result[0], x)


CAST_CASES = {
    "float_to_int32_truncates": (np.float32, [-2.7, -0.5, 0.0, 0.5, 2.7, 100.9], "int32"),
    "float_to_int64": (np.float32, [-3.5, 7.9, 1e6], "int64"),
    "float_to_uint8": (np.float32, [0.0, 1.9, 254.5, 255.0], "uint8"),
    "float_to_bool": (np.float32, [0.0, -0.0, 1e-30, -2.0], "bool"),
    "int64_to_float": (np.int64, [-5, 0, 123456789], "float32"),
    "int32_to_int8": (np.int32, [-128, -1, 0, 127], "int8"),
    "bool_to_float": (np.bool_, [True, False], "float32"),
}


@pytest.mark.parametrize("case", CAST_CASES)
def test_cast(case):
    dtype, values, to = CAST_CASES[case]
    x = np.array(values, dtype=dtype)
    onnx_to = helper.np_dtype_to_tensor_dtype(np.dtype(to))
    check("cast", {"to": to}, [x], run_node("Cast", [x], to=onnx_to), 0, 0)


@pytest.mark.parametrize("op", ["reshape", "transpose", "slice", "expand", "split", "reduce"])
def test_results_never_alias_operands(op):
    x = _normal((2, 3), 1)
    attrs = {
        "reshape": {"shape": (2, 3)},
        "transpose": {"perm": (0, 1)},
        "slice": {"starts": (0, 0), "stops": (2, 3), "steps": (1, 1)},
        "expand": {"shape": (2, 3)},
        "split": {"axis": 0, "sizes": (2,)},
        "reduce": {"kind": "max", "axes": ()},
    }[op]
    for result in evaluate(op, attrs, [x]):
        assert not np.shares_memory(result, x)
