"""Tests of the ONNX exporter: float graphs against ir.reference and the golden outputs, and
quantised graphs as QDQ models against a numpy evaluation of the QDQ semantics.

Exported models pass `onnx.checker` with its full check (shape inference included; the two
exceptions say why) and run in onnxruntime with graph optimisations disabled, so that
QuantizeLinear and DequantizeLinear are evaluated as written.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, numpy_helper

from golden.cases import CASES, load_case
from ir import OPS, get_op
from ir.activations import ACTIVATION_PARAMS, FUSABLE
from ir.errors import InputError, UnsupportedError
from ir.graph import Graph, Value
from ir.reference import evaluate
from ir.types import QuantParams, TensorType
from ir.verifier import verify
from passes.base import PassManager
from passes.pipeline import canonicalisation
from s2c.export import EXPORTED_OPS, MAX_OPSET, MIN_OPSET, export_onnx, opset_needs
from s2c.export.registry import EMITTERS
from s2c.frontend import load_onnx

# ir.reference evaluates transcendental functions in float64 and rounds once, onnxruntime uses
# float32 approximations, and below the opsets of HardSwish, Celu and Gelu the exporter writes
# their formulas in float32 steps: results of order 1 differ by a few float32 ulps (~1e-7), so
# rtol 1e-5 and atol 1e-6 leave a 10x margin while a wrong attribute shows up far above 1e-3.
TOL = {"rtol": 1e-5, "atol": 1e-6}
# Products and reductions are sums of up to ~150 float32 terms of order 1, accumulated in
# different orders by numpy's BLAS and by onnxruntime (~sqrt(K) ulps, about 1e-6).
SUM_TOL = {"rtol": 1e-5, "atol": 1e-5}
OPSETS = (MIN_OPSET, 13, 17, 20)


# -- helpers ----------------------------------------------------------------------------------
def run_onnxruntime(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> dict[str, Any]:
    """Outputs of onnxruntime, graph optimisations disabled, by output name."""
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.intra_op_num_threads = 1
    options.log_severity_level = 3
    session = ort.InferenceSession(
        model.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, feeds), strict=True))


def export_checked(
    graph: Graph, opset: int = 17, *, full_check: bool = True, **options: Any
) -> onnx.ModelProto:
    model = export_onnx(graph, opset, **options)
    onnx.checker.check_model(model, full_check=full_check)
    return model


def reference_outputs(graph: Graph, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The graph evaluated node by node with ir.reference."""
    env = {id(v): feeds[v.name] for v in graph.inputs}
    for node in graph.nodes:
        operands = [v.constant_data if v.is_constant else env[id(v)] for v in node.inputs]
        for value, result in zip(node.outputs, evaluate(node.op, node.attrs, operands)):
            env[id(value)] = result
    return {v.name: (v.constant_data if v.is_constant else env[id(v)]) for v in graph.outputs}


@dataclass(frozen=True)
class Const:
    """An operand that is a constant of the graph rather than a graph input."""

    array: np.ndarray


@dataclass
class Case:
    """One IR node: op, attributes, operands (arrays are graph inputs, Const are constants)."""

    op: str
    attrs: dict[str, Any]
    operands: list[Any]
    tol: dict[str, float] = field(default_factory=lambda: TOL)
    single_node: bool = True  # exported as one ONNX node that the frontend lowers back to it
    # ONNX shape inference keeps a ceil-mode pooling window that starts inside the end padding;
    # onnxruntime and the IR drop it, so the checker's full check rejects the (right) shape.
    shape_inference: bool = True


def one_op_graph(case: Case) -> tuple[Graph, dict[str, np.ndarray]]:
    graph, values, feeds = Graph(case.op), [], {}
    for index, operand in enumerate(case.operands):
        if isinstance(operand, Const):
            values.append(graph.constant(f"c{index}", operand.array))
            continue
        type_ = TensorType(tuple(operand.shape), str(operand.dtype))
        values.append(graph.add_input(f"x{index}", type_))
        feeds[f"x{index}"] = operand
    opdef = get_op(case.op)
    types = opdef.infer([v.type for v in values], opdef.with_defaults(case.attrs))
    names = [f"y{i}" for i in range(len(types))]
    node = graph.add_node(case.op, values, types, case.attrs, name=case.op, output_names=names)
    graph.outputs = list(node.outputs)
    verify(graph)
    return graph, feeds


def normal(*shape: int, seed: int = 0, scale: float = 1.0) -> np.ndarray:
    return (np.random.default_rng(seed).standard_normal(shape) * scale).astype(np.float32)


def activation_input(function: str) -> np.ndarray:
    """Values over [-6, 6] with integers, halves and zero, some extremes; domain-restricted."""
    x = np.concatenate(
        [np.linspace(-6, 6, 97), normal(60, seed=4) * 3, [-30, -12, 12, 30, 1e-4, -1e-4]]
    ).astype(np.float32)
    if function in ("log", "sqrt"):
        x = np.abs(x) + np.float32(1e-3)
    if function == "reciprocal":
        x = x[np.abs(x) > 1e-3]
    return x.reshape(1, -1)


# Parameters exactly representable in float32, so that they survive ONNX's float attributes.
ACTIVATION_CASE_PARAMS: dict[str, tuple[float, ...]] = {
    "leaky_relu": (0.125,),
    "clip": (-0.75, 1.5),
    "hard_sigmoid": (0.25, 0.375),
    "elu": (0.75,),
    "selu": (1.5, 1.125),
    "celu": (0.75,),
    "thresholded_relu": (0.5,),
    "shrink": (0.5, 0.25),
}
FORMULA_BELOW = {"hard_swish": 14, "celu": 12, "gelu": 20, "gelu_tanh": 20}
CONV_ATTRS = {"strides": (2, 1), "pads": (1, 0, 1, 2), "dilations": (1, 2), "group": 1}
POOL_ATTRS = {"kernel": (3, 2), "strides": (2, 2), "pads": (1, 0, 1, 1), "dilations": (1, 1)}


def _cases() -> dict[str, Case]:
    x4 = normal(1, 3, 7, 8, seed=1)
    cases = {
        "conv": Case(
            "conv",
            CONV_ATTRS,
            [x4, Const(normal(4, 3, 3, 2, seed=2, scale=0.3)), Const(normal(4, seed=3))],
            SUM_TOL,
        ),
        "conv_1d_grouped_no_bias": Case(
            "conv",
            {"strides": (1,), "pads": (2, 1), "dilations": (2,), "group": 2},
            [normal(1, 4, 11, seed=1), Const(normal(6, 2, 3, seed=2))],
            SUM_TOL,
        ),
        "dense": Case(
            "dense", {}, [normal(2, 6, seed=1), Const(normal(6, 5, seed=2)), Const(normal(5))]
        ),
        "dense_no_bias": Case("dense", {}, [normal(2, 6, seed=1), Const(normal(6, 5, seed=2))]),
        "dense_rank3_relu": Case(
            "dense",
            {"activation": "relu"},
            [normal(2, 3, 6, seed=1), Const(normal(6, 5, seed=2)), Const(normal(5))],
            single_node=False,
        ),
        "dense_rank1": Case("dense", {}, [normal(6, seed=1), Const(normal(6, 5, seed=2))]),
        "matmul": Case("matmul", {}, [normal(2, 3, 4, seed=1), normal(4, 5, seed=2)], SUM_TOL),
        "max_pool": Case(
            "pool",
            {"kind": "max", **POOL_ATTRS, "ceil_mode": 1},
            [x4 - 5],
            {"rtol": 0, "atol": 0},
            shape_inference=False,
        ),
        "max_pool_dilated": Case("pool", {"kind": "max", **POOL_ATTRS, "dilations": (2, 1)}, [x4]),
        "avg_pool": Case(
            "pool",
            {"kind": "avg", **POOL_ATTRS, "ceil_mode": 1, "count_include_pad": 1},
            [x4],
            shape_inference=False,
        ),
        "avg_pool_exclude_pad": Case("pool", {"kind": "avg", **POOL_ATTRS}, [x4]),
        "global_max_pool": Case("global_pool", {"kind": "max"}, [x4]),
        "global_avg_pool": Case("global_pool", {"kind": "avg"}, [x4]),
        "prelu": Case("prelu", {}, [x4, Const(normal(3, 1, 1, seed=2))]),
        "prelu_widening_slope": Case(
            "prelu", {}, [normal(3, 1, seed=1), normal(1, 4, seed=2)], single_node=False
        ),
        "softmax": Case("softmax", {"axis": 1}, [x4]),
        "log_softmax": Case("softmax", {"axis": 2, "log": 1}, [x4]),
        "softmax_last": Case("softmax", {"axis": 3}, [x4]),
        "lrn": Case("lrn", {"size": 3, "alpha": 0.25, "beta": 0.75, "bias": 1.5}, [x4]),
        "batch_norm": Case(
            "batch_norm",
            {"epsilon": 1e-3},
            [
                x4,
                Const(normal(3, seed=2)),
                Const(normal(3, seed=3)),
                Const(normal(3, seed=4)),
                Const(np.abs(normal(3, seed=5)) + np.float32(0.5)),
            ],
        ),
        "instance_norm": Case(
            "instance_norm",
            {"epsilon": 1e-4},
            [x4 * 3 + 2, Const(normal(3, seed=2)), Const(normal(3, seed=3))],
            SUM_TOL,
        ),
        "layer_norm": Case(
            "layer_norm",
            {"axis": 2, "epsilon": 1e-4},
            [x4 * 3 + 2, Const(normal(7, 8, seed=2)), Const(normal(8, seed=3))],
            SUM_TOL,
        ),
        "add_layer_norm": Case(
            "add_layer_norm",
            {"axis": 3, "epsilon": 1e-5},
            [x4 * 3 + 2, normal(1, 3, 7, 8, seed=4), Const(normal(8, seed=3))],
            SUM_TOL,
            single_node=False,
        ),
        "attention": Case(
            "attention",
            {"heads": 2, "axis": 1},
            [x4, normal(1, 5, 7, 8, seed=6), normal(1, 5, 7, 6, seed=7)],
            SUM_TOL,
            single_node=False,
        ),
        "where": Case(
            "where", {}, [Const(normal(7, 8) > 0), x4, Const(normal(1, 1, 1, 8, seed=2))]
        ),
        "equal": Case("equal", {}, [np.round(x4), Const(np.zeros(8, np.float32))]),
        "less": Case("less", {}, [x4, normal(1, 3, 7, 8, seed=5)]),
        "reshape": Case("reshape", {"shape": (1, 21, 8)}, [x4]),
        "transpose": Case("transpose", {"perm": (0, 2, 3, 1)}, [x4]),
        "permute": Case(
            "permute",
            {"view": (3, 7, 2, 4), "perm": (2, 0, 3, 1), "shape": (6, 28)},
            [x4],
            single_node=False,
        ),
        "concat": Case(
            "concat", {"axis": 1}, [x4, normal(1, 2, 7, 8, seed=2), Const(normal(1, 1, 7, 8))]
        ),
        "split": Case("split", {"axis": 3, "sizes": (2, 5, 1)}, [x4]),
        "slice": Case(
            "slice", {"starts": (0, 1, 6, 1), "stops": (1, 3, -1, 8), "steps": (1, 1, -2, 3)}, [x4]
        ),
        "slice_reversed_from_middle": Case(
            "slice",
            {"starts": (0, 2, 4, 7), "stops": (1, 0, -1, -1), "steps": (1, -1, -1, -3)},
            [x4],
        ),
        "pad_constant_crop": Case("pad", {"pads": (0, 1, -2, 3, 0, 0, 1, -1), "value": 0.5}, [x4]),
        "pad_reflect": Case("pad", {"pads": (0, 0, 2, 1, 0, 0, 1, 3), "mode": "reflect"}, [x4]),
        "pad_edge": Case("pad", {"pads": (0, 1, 0, 2, 0, 0, 3, 0), "mode": "edge"}, [x4]),
        "gather": Case("gather", {"axis": 2}, [x4, Const(np.array([[0, 6], [-1, 3]], np.int64))]),
        "gather_indices_input": Case("gather", {"axis": 1}, [x4, np.array([2, 0], np.int32)]),
        "expand": Case("expand", {"shape": (2, 3, 4, 5)}, [normal(3, 1, 5, seed=1)]),
        "tile": Case("tile", {"repeats": (1, 2, 1, 3)}, [x4]),
        "identity": Case("identity", {}, [x4]),
        "dropout": Case("dropout", {}, [x4]),
        "cast_float_to_int": Case("cast", {"to": "int32"}, [x4 * 10]),
        "cast_int_to_float": Case("cast", {"to": "float32"}, [np.arange(-3, 9, dtype=np.int64)]),
    }
    for op in ("add", "sub", "mul", "div", "max", "min", "pow"):
        a, b = normal(2, 3, 4, seed=1), normal(3, 1, seed=2)
        if op == "pow":
            a = np.abs(a) + np.float32(0.5)
        if op == "div":
            b = np.sign(b) * (np.abs(b) + np.float32(0.5))
        cases[op] = Case(op, {}, [a, b])
    cases["add_constant_scalar"] = Case("add", {}, [x4, Const(np.array(0.25, np.float32))])
    for kind in ("sum", "mean", "max", "min", "prod", "sum_square", "l1", "l2"):
        for axes, keepdims in (((1, 3), 1), ((0, 2), 0)):
            cases[f"reduce_{kind}_{''.join(map(str, axes))}_{keepdims}"] = Case(
                "reduce", {"kind": kind, "axes": axes, "keepdims": keepdims}, [x4], SUM_TOL
            )
        cases[f"reduce_{kind}_no_axes"] = Case(
            "reduce", {"kind": kind, "axes": ()}, [x4], single_node=False
        )
    for function in ACTIVATION_PARAMS:
        params = ACTIVATION_CASE_PARAMS.get(function, ())
        attrs = {"function": function, "params": params}
        single = function not in FORMULA_BELOW or FORMULA_BELOW[function] <= 17
        cases[f"activation_{function}"] = Case(
            "activation", attrs, [activation_input(function)], single_node=single
        )
    for function in sorted(FUSABLE):
        params = ACTIVATION_CASE_PARAMS.get(function, ())
        attrs = {**CONV_ATTRS, "activation": function, "activation_params": params}
        operands = [x4, Const(normal(4, 3, 3, 2, seed=2, scale=0.3)), Const(normal(4, seed=3))]
        cases[f"conv_fused_{function}"] = Case("conv", attrs, operands, SUM_TOL, False)
    for op, gates, attrs in (
        ("gru", 3, {"hidden_size": 4, "reverse": 1, "linear_before_reset": 1}),
        ("lstm", 4, {"hidden_size": 4, "input_forget": 0}),
    ):
        operands = [normal(5, 2, 3, seed=1)]
        shapes = [(gates * 4, 3), (gates * 4, 4), (2 * gates * 4,), (2, 4)]
        shapes += [(2, 4), (12,)] if op == "lstm" else []
        operands += [Const(normal(*shape, seed=2 + i, scale=0.5)) for i, shape in enumerate(shapes)]
        cases[op] = Case(op, attrs, operands, SUM_TOL, single_node=False)
    return cases


CASES_BY_NAME = _cases()


# -- coverage -----------------------------------------------------------------------------------
def test_every_ir_op_has_an_emitter():
    assert set(EXPORTED_OPS) == set(OPS)


def test_every_emitter_says_what_it_becomes():
    for op, entry in EMITTERS.items():
        assert entry.emit.__doc__ and "->" in entry.emit.__doc__, op


def test_cases_cover_every_op_and_activation():
    cases = CASES_BY_NAME.values()
    assert {c.op for c in cases} == set(OPS)
    functions = {c.attrs["function"] for c in cases if c.op == "activation"}
    assert functions == set(ACTIVATION_PARAMS)
    fused = {c.attrs.get("activation") for c in cases if c.op == "conv"}
    assert fused >= FUSABLE


# -- float: one-op round trips ------------------------------------------------------------------
@pytest.mark.parametrize("opset", OPSETS)
@pytest.mark.parametrize("name", CASES_BY_NAME)
def test_one_op_matches_reference(name, opset):
    case = CASES_BY_NAME[name]
    graph, feeds = one_op_graph(case)
    model = export_checked(graph, opset, full_check=case.shape_inference)
    assert model.opset_import[0].version == opset
    actual = run_onnxruntime(model, feeds)
    expected = reference_outputs(graph, feeds)
    assert list(actual) == list(expected)
    for key, want in expected.items():
        assert actual[key].dtype == want.dtype, key
        assert actual[key].shape == want.shape, key
        np.testing.assert_allclose(actual[key], want, **case.tol, err_msg=key)


def _attrs_match(ours: dict[str, Any], theirs: dict[str, Any]) -> bool:
    if ours.keys() != theirs.keys():
        return False
    for key, value in ours.items():
        other = theirs[key]
        if isinstance(value, float) or (
            isinstance(value, tuple) and value and type(value[0]) is float
        ):
            if not np.allclose(value, other, rtol=1e-7, atol=0):
                return False
        elif value != other:
            return False
    return True


@pytest.mark.parametrize("name", [n for n, c in CASES_BY_NAME.items() if c.single_node])
def test_one_op_lowers_back_to_itself(name):
    """IR -> ONNX -> IR through the frontend gives the same op with the same attributes."""
    case = CASES_BY_NAME[name]
    graph, _ = one_op_graph(case)
    (node,) = graph.nodes
    lowered = load_onnx(export_checked(graph, full_check=case.shape_inference))
    (back,) = lowered.nodes
    opdef = get_op(node.op)
    assert back.op == node.op
    assert _attrs_match(opdef.with_defaults(node.attrs), opdef.with_defaults(back.attrs))
    assert [v.name for v in lowered.inputs] == [v.name for v in graph.inputs]
    assert [v.name for v in lowered.outputs] == [v.name for v in graph.outputs]


@pytest.mark.parametrize("function", sorted(FORMULA_BELOW))
def test_new_activation_ops_are_formulas_at_older_opsets(function):
    case = CASES_BY_NAME[f"activation_{function}"]
    graph, _ = one_op_graph(case)
    since = FORMULA_BELOW[function]
    newer = [n.op_type for n in export_checked(graph, since).graph.node]
    older = [n.op_type for n in export_checked(graph, since - 1).graph.node]
    assert len(newer) == 1
    assert len(older) > 1 and newer[0] not in older


def test_slice_through_index_zero_uses_a_far_negative_end():
    graph, _ = one_op_graph(CASES_BY_NAME["slice_reversed_from_middle"])
    model = export_checked(graph)
    ends = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}["slice/ends"]
    assert ends.tolist() == [1, 0, -(2**62), -(2**62)]


def test_reduce_axes_are_an_attribute_before_opset_18():
    graph, _ = one_op_graph(CASES_BY_NAME["reduce_mean_13_1"])
    old, new = export_checked(graph, 17).graph.node[0], export_checked(graph, 18).graph.node[0]
    assert [a.name for a in old.attribute] == ["axes", "keepdims"] and len(old.input) == 1
    assert [a.name for a in new.attribute] == ["keepdims"] and len(new.input) == 2


def test_softmax_before_opset_13_moves_the_axis_last():
    graph, _ = one_op_graph(CASES_BY_NAME["softmax"])
    ops = [n.op_type for n in export_checked(graph, 11).graph.node]
    assert ops == ["Transpose", "Softmax", "Transpose"]
    graph, _ = one_op_graph(CASES_BY_NAME["softmax_last"])
    assert [n.op_type for n in export_checked(graph, 11).graph.node] == ["Softmax"]


# -- float: opsets --------------------------------------------------------------------------------
def test_dilated_average_pool_raises_the_opset_to_19():
    case = Case("pool", {"kind": "avg", **POOL_ATTRS, "dilations": (2, 1)}, [normal(1, 2, 9, 9)])
    graph, feeds = one_op_graph(case)
    assert opset_needs(graph) == [(19, "'pool' (pool): average pooling with dilations (2, 1)")]
    model = export_checked(graph, 17)
    assert model.opset_import[0].version == 19
    np.testing.assert_allclose(
        run_onnxruntime(model, feeds)["y0"], reference_outputs(graph, feeds)["y0"], **TOL
    )
    with pytest.raises(UnsupportedError, match=r"'pool' \(pool\): average pooling with dilations"):
        export_onnx(graph, 17, exact_opset=True)


def test_undilated_pools_write_no_dilations():
    graph, _ = one_op_graph(CASES_BY_NAME["avg_pool_exclude_pad"])
    (node,) = export_checked(graph, MIN_OPSET).graph.node
    assert "dilations" not in [a.name for a in node.attribute]


@pytest.mark.parametrize("opset", [MIN_OPSET - 1, MAX_OPSET + 1])
def test_opset_outside_the_supported_range_is_an_input_error(opset):
    graph, _ = one_op_graph(CASES_BY_NAME["identity"])
    with pytest.raises(InputError, match=f"export opset {opset}"):
        export_onnx(graph, opset)


# -- float: names and outputs -------------------------------------------------------------------
def test_constant_and_repeated_outputs_are_copied_under_their_names():
    graph = Graph("outputs")
    x = graph.add_input("x", TensorType((2, 3)))
    y = graph.add_node("activation", [x], [x.type], {"function": "neg"}, output_names=["y"])
    k = graph.constant("k", np.arange(3, dtype=np.float32))
    graph.outputs = [y.outputs[0], k, y.outputs[0]]
    model = export_checked(graph)
    assert [o.name for o in model.graph.output] == ["y", "k", "y_1"]
    feeds = {"x": normal(2, 3)}
    actual = run_onnxruntime(model, feeds)
    np.testing.assert_array_equal(actual["y"], -feeds["x"])
    np.testing.assert_array_equal(actual["y_1"], -feeds["x"])
    np.testing.assert_array_equal(actual["k"], np.arange(3, dtype=np.float32))


# -- float: golden cases ------------------------------------------------------------------------
@pytest.mark.parametrize("case", CASES)
def test_golden_case_round_trips_through_onnx(case):
    """ONNX -> IR (canonicalised: BN folded, activations fused, splits lowered) -> ONNX."""
    model, inputs, expected, _ = load_case(case)
    graph = load_onnx(model)
    PassManager(canonicalisation(), emit=lambda text: None).run(graph)
    exported = export_onnx(graph)
    if case != "multi_chip":  # its 24 MiB of weights make the full check slow; same ops
        onnx.checker.check_model(exported, full_check=True)
    assert [i.name for i in exported.graph.input] == [i.name for i in model.graph.input]
    actual = run_onnxruntime(exported, inputs)
    assert set(actual) == set(expected)
    for name, want in expected.items():
        # the golden tolerances (case.json): fp32 sums in another order, see golden/cases.py
        np.testing.assert_allclose(actual[name], want, rtol=1e-4, atol=1e-5, err_msg=name)


# -- quantised ----------------------------------------------------------------------------------
def quantise(x: np.ndarray, quant: QuantParams, dtype: str = "int8") -> np.ndarray:
    """ONNX QuantizeLinear: round half to even, add the zero point, saturate."""
    scale, zero = np.float32(quant.scale[0]), quant.zero_point[0]
    info = np.iinfo(np.dtype(dtype))
    q = np.rint(np.asarray(x, np.float32) / scale) + zero
    return np.clip(q, info.min, info.max).astype(dtype)


def requantise(real: np.ndarray, quant: QuantParams) -> np.ndarray:
    """The MAC array's requantisation when real / s_y is exact: round half away from zero."""
    steps = np.asarray(real, np.float64) / quant.scale[0]
    rounded = np.sign(steps) * np.floor(np.abs(steps) + 0.5)
    return np.clip(rounded + quant.zero_point[0], -128, 127).astype(np.int8)


def dequantise(q: np.ndarray, quant: QuantParams, axis: int | None = None) -> np.ndarray:
    """ONNX DequantizeLinear: scale * (q - zero_point), per channel along `axis`."""
    scale = np.asarray(quant.scale, np.float32)
    zero = np.asarray(quant.zero_point, np.float32)
    if quant.axis is not None:
        shape = [1] * q.ndim
        shape[quant.axis] = -1
        scale, zero = scale.reshape(shape), zero.reshape(shape)
    return ((q.astype(np.float32) - zero) * scale).astype(np.float32)


def qdq_reference(graph: Graph, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The QDQ semantics in numpy: dequantise operands, run ir.reference, quantise results.

    Returns the dequantised real value of every graph output.
    """
    env: dict[int, np.ndarray] = {}

    def real(value: Value) -> np.ndarray:
        if value.is_constant:
            data = value.constant_data
            return dequantise(data, value.type.quant) if value.type.quant else data
        return env[id(value)]

    for value in graph.inputs:
        quant = value.type.quant
        env[id(value)] = dequantise(quantise(feeds[value.name], quant), quant)
    for node in graph.nodes:
        results = evaluate(node.op, node.attrs, [real(v) for v in node.inputs])
        for value, result in zip(node.outputs, results, strict=True):
            quant = value.type.quant
            env[id(value)] = dequantise(quantise(result, quant), quant) if quant else result
    return {v.name: real(v) for v in graph.outputs}


def per_tensor(scale: float, zero_point: int) -> QuantParams:
    return QuantParams((scale,), (zero_point,))


def int8_type(shape: tuple[int, ...], quant: QuantParams) -> TensorType:
    return TensorType(shape, "int8", quant)


def quantised_conv_dense() -> tuple[Graph, dict[str, np.ndarray], dict[str, Any]]:
    """input -> conv 3x3 (int8 per-channel weights, int32 bias, fused relu) -> reshape -> dense.

    Every scale is a power of two, so every float product and partial sum in numpy is exact
    (integers below 2^24 times a power of two) and equals the exact integer accumulation the
    export writes; y / s_y lands exactly on .5 for a share of the values, where the fixed-point
    requantisation rounds half away from zero (not to even), and some values saturate.
    """
    rng = np.random.default_rng(7)
    graph = Graph("qnet")
    s_x = 2.0**-4
    x_quant = per_tensor(s_x, 3)
    x = graph.add_input("input", int8_type((1, 3, 6, 6), x_quant))

    s_w1 = (2.0**-6, 2.0**-7, 2.0**-5, 2.0**-6)
    w1_quant = QuantParams(s_w1, (0,) * 4, axis=0)
    w1 = graph.constant(
        "conv.weight",
        rng.integers(-127, 128, (4, 3, 3, 3)).astype(np.int8),
        int8_type((4, 3, 3, 3), w1_quant),
    )
    b1_quant = QuantParams(tuple(s_x * s for s in s_w1), (0,) * 4, axis=0)
    conv_bias = rng.integers(-3000, 3000, 4).astype(np.int32)
    conv_bias[2] += 2  # puts one relu output of channel 2 exactly on a tie (15.5 steps)
    b1 = graph.constant("conv.bias", conv_bias, TensorType((4,), "int32", b1_quant))
    y1_quant = per_tensor(2.0**-5, -128)
    conv_attrs = {"strides": (1, 1), "pads": (1, 1, 1, 1), "dilations": (1, 1)}
    conv_attrs |= {"activation": "relu"}
    conv = graph.add_node(
        "conv", [x, w1, b1], [int8_type((1, 4, 6, 6), y1_quant)], conv_attrs, name="conv"
    )
    flat = graph.add_node(
        "reshape", conv.outputs, [int8_type((1, 144), y1_quant)], {"shape": (1, 144)}
    )

    s_w2 = tuple(2.0 ** -(6 + c % 3) for c in range(5))
    w2 = graph.constant(
        "dense.weight",
        rng.integers(-127, 128, (144, 5)).astype(np.int8),
        int8_type((144, 5), QuantParams(s_w2, (0,) * 5, axis=1)),
    )
    # no parameters of its own: the exporter derives scale s_y1 * s_w2[c], zero point 0
    b2 = graph.constant("dense.bias", rng.integers(-5000, 5000, 5).astype(np.int32))
    y2_quant = per_tensor(2.0**-1, 5)
    dense = graph.add_node(
        "dense",
        [flat.outputs[0], w2, b2],
        [int8_type((1, 5), y2_quant)],
        name="dense",
        output_names=["logits"],
    )
    graph.outputs = list(dense.outputs)
    verify(graph)

    x_float = rng.standard_normal((1, 3, 6, 6)).astype(np.float32)
    x_float[0, 0, 0, :4] = np.array([0.5, 1.5, -2.5, 3.5], np.float32) * s_x  # ties
    x_float[0, 1, 0, :2] = [40.0, -40.0]  # saturate
    quant = {"x": x_quant, "w1": w1, "b1": b1, "y1": y1_quant, "w2": w2, "b2": b2, "y2": y2_quant}
    return graph, {"input": x_float}, quant


def numpy_conv_dense(feeds: dict[str, np.ndarray], quant: dict[str, Any]) -> dict[str, Any]:
    """The integer semantics of `quantised_conv_dense` written out in numpy (exact here)."""
    x = dequantise(quantise(feeds["input"], quant["x"]), quant["x"])
    w1 = dequantise(quant["w1"].constant_data, quant["w1"].type.quant)
    b1 = dequantise(quant["b1"].constant_data, quant["b1"].type.quant)
    padded = np.pad(x[0], ((0, 0), (1, 1), (1, 1)))
    windows = np.lib.stride_tricks.sliding_window_view(padded, (3, 3), axis=(1, 2))
    conv = np.einsum("chwij,mcij->mhw", windows, w1) + b1[:, None, None]
    conv_q = requantise(np.maximum(conv, 0), quant["y1"])
    hidden = dequantise(conv_q, quant["y1"]).reshape(1, 144)
    s_w2 = np.asarray(quant["w2"].type.quant.scale, np.float32)
    w2 = quant["w2"].constant_data.astype(np.float32) * s_w2
    b2 = quant["b2"].constant_data.astype(np.float32) * (np.float32(quant["y1"].scale[0]) * s_w2)
    logits = requantise(hidden.astype(np.float64) @ w2 + b2, quant["y2"])
    return {"conv": conv, "conv_q": conv_q, "logits": dequantise(logits, quant["y2"])}


@pytest.mark.parametrize("opset", [13, 17, MAX_OPSET])
def test_quantised_conv_dense_matches_numpy_bit_for_bit(opset):
    graph, feeds, quant = quantised_conv_dense()
    model = export_checked(graph, opset)
    expected = numpy_conv_dense(feeds, quant)
    actual = run_onnxruntime(model, feeds)
    assert list(actual) == ["logits"] and actual["logits"].dtype == np.float32
    np.testing.assert_array_equal(actual["logits"], expected["logits"])
    # the case exercises ties, saturation and the relu clamp of the hidden layer
    steps = expected["conv"] / np.float32(quant["y1"].scale[0])
    positive_ties = (np.abs(steps - np.floor(steps) - 0.5) == 0) & (steps > 0) & (steps < 127)
    assert np.any(positive_ties)  # where half to even would differ
    assert np.any(expected["conv_q"] == 127) and np.any(expected["conv_q"] == -128)


def test_quantised_hidden_layer_is_int8_between_q_and_dq():
    """Expose the conv result: its int8 tensor in the model equals numpy's quantised values."""
    graph, feeds, quant = quantised_conv_dense()
    model = export_checked(graph)
    hidden = onnx.helper.make_tensor_value_info("conv_out0/quantized", TensorProto.INT8, None)
    model.graph.output.append(hidden)
    actual = run_onnxruntime(model, feeds)["conv_out0/quantized"]
    np.testing.assert_array_equal(actual, numpy_conv_dense(feeds, quant)["conv_q"][None])


def test_quantised_model_structure():
    graph, _, _ = quantised_conv_dense()
    model = export_checked(graph, opset=MIN_OPSET)
    assert model.opset_import[0].version == 13  # per-channel DequantizeLinear needs opset 13
    (graph_input,) = model.graph.input
    assert graph_input.name == "input"
    assert graph_input.type.tensor_type.elem_type == TensorProto.FLOAT
    assert [o.name for o in model.graph.output] == ["logits"]
    assert model.graph.output[0].type.tensor_type.elem_type == TensorProto.FLOAT
    initializers = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    nodes = list(model.graph.node)
    by_output = {n.output[0]: n for n in nodes}
    assert nodes[0].op_type == "QuantizeLinear" and nodes[0].input[0] == "input"
    assert not {"Conv", "Gemm", "MatMul", "Relu"} & {n.op_type for n in nodes}
    # conv and dense are integer products of uint8 codes (int8 + 128, zero points + 128)
    conv = next(n for n in nodes if n.op_type == "ConvInteger")
    dense = next(n for n in nodes if n.op_type == "MatMulInteger")
    for node, weight in [(conv, "conv.weight"), (dense, "dense.weight")]:
        codes = initializers[node.input[1]]
        assert codes.dtype == np.uint8
        stored = next(v for v in graph.values() if v.name == weight).constant_data
        np.testing.assert_array_equal(codes.astype(np.int16) - 128, stored)
        assert initializers[node.input[3]] == 128
    assert initializers[conv.input[2]] == 3 + 128  # z_x + 128
    # the int8 result is a Cast of the clamped requantised sum, read through DequantizeLinear
    assert by_output["conv_out0/quantized"].op_type == "Cast"
    assert by_output["logits"].op_type == "DequantizeLinear"


def quantised_mixed() -> tuple[Graph, dict[str, np.ndarray]]:
    """Conv with clip, max pool, sigmoid, add, concat, global average pool, dense with a
    per-tensor weight, softmax: ops of every kind in docs/numerics.md, general scales."""
    rng = np.random.default_rng(11)
    graph = Graph("qmix")
    x = graph.add_input("image", int8_type((1, 4, 8, 8), per_tensor(0.05, -2)))
    s_w = tuple(float(s) for s in rng.uniform(0.003, 0.01, 6))
    w = graph.constant(
        "w",
        rng.integers(-127, 128, (6, 4, 3, 3)).astype(np.int8),
        int8_type((6, 4, 3, 3), QuantParams(s_w, (0,) * 6, axis=0)),
    )
    b = graph.constant(
        "b",
        rng.integers(-500, 500, 6).astype(np.int32),
        TensorType((6,), "int32", QuantParams(tuple(0.05 * s for s in s_w), (0,) * 6, axis=0)),
    )

    def add(op, inputs, shape, quant, attrs=None, name=None):
        out = graph.add_node(op, inputs, [int8_type(shape, quant)], attrs or {}, name=name)
        return out.outputs[0]

    window = {"strides": (1, 1), "pads": (1, 1, 1, 1), "dilations": (1, 1)}
    clipped = per_tensor(6 / 255, -128)
    conv = add(
        "conv",
        [x, w, b],
        (1, 6, 8, 8),
        clipped,
        {**window, "activation": "clip", "activation_params": (0.0, 6.0)},
    )
    pool_attrs = {"kind": "max", "kernel": (2, 2), "strides": (2, 2), "pads": (0,) * 4}
    pooled = add("pool", [conv], (1, 6, 4, 4), clipped, {**pool_attrs, "dilations": (1, 1)})
    gate = add(
        "activation", [pooled], (1, 6, 4, 4), per_tensor(1 / 256, -128), {"function": "sigmoid"}
    )
    total = add("add", [gate, pooled], (1, 6, 4, 4), per_tensor(7 / 255, -128), name="sum")
    joined = add("concat", [total, pooled], (1, 12, 4, 4), per_tensor(7 / 255, -128), {"axis": 1})
    mean = add("global_pool", [joined], (1, 12, 1, 1), per_tensor(7 / 255, -128), {"kind": "avg"})
    flat = add("reshape", [mean], (1, 12), per_tensor(7 / 255, -128), {"shape": (1, 12)})
    w2 = graph.constant(
        "w2",
        rng.integers(-127, 128, (12, 3)).astype(np.int8),
        int8_type((12, 3), per_tensor(0.002, 0)),
    )
    b2 = graph.constant(
        "b2",
        rng.integers(-100, 100, 3).astype(np.int32),
        TensorType((3,), "int32", per_tensor(7 / 255 * 0.002, 0)),
    )
    logits = add("dense", [flat, w2, b2], (1, 3), per_tensor(0.05, 4))
    probs = add("softmax", [logits], (1, 3), per_tensor(1 / 256, -128), {"axis": 1})
    graph.outputs = [pooled, total, logits, probs]
    verify(graph)
    return graph, {"image": (rng.standard_normal((1, 4, 8, 8)) * 2).astype(np.float32)}


def test_quantised_ops_of_every_kind_match_the_qdq_semantics():
    graph, feeds = quantised_mixed()
    model = export_checked(graph)
    actual = run_onnxruntime(model, feeds)
    expected = qdq_reference(graph, feeds)
    assert list(actual) == [v.name for v in graph.outputs]
    for value in graph.outputs:
        scale, zero_point = value.type.quant.scale[0], value.type.quant.zero_point[0]
        levels = actual[value.name] / np.float32(scale) + zero_point
        assert np.allclose(levels, np.rint(levels), rtol=0, atol=1e-3), value.name  # quantised
        steps = np.rint((actual[value.name] - expected[value.name]) / scale)
        # onnxruntime's float kernels (sum order, sigmoid and exp approximations) differ from
        # ir.reference by float32 ulps; a value within an ulp of a rounding boundary can land on
        # the neighbouring level, which happens for a handful of elements at most.
        assert np.abs(steps).max() <= 1, value.name
        assert np.count_nonzero(steps) <= max(1, steps.size // 100), value.name


def quantised_elementwise() -> tuple[Graph, dict[str, np.ndarray]]:
    """add, sub, mul, concat and a sigmoid table on two int8 inputs with general parameters."""
    graph = Graph("qelementwise")
    a_quant, b_quant = per_tensor(0.031, -7), per_tensor(0.017, 12)
    a = graph.add_input("a", int8_type((2, 3, 5), a_quant))
    b = graph.add_input("b", int8_type((2, 3, 5), b_quant))
    plans = [
        ("add", [a, b], (2, 3, 5), per_tensor(0.043, 3), {}),
        ("sub", [a, b], (2, 3, 5), per_tensor(0.041, -2), {}),
        ("mul", [a, b], (2, 3, 5), per_tensor(0.0123, 1), {}),
        ("concat", [a, b], (2, 6, 5), per_tensor(0.029, -5), {"axis": 1}),
        ("activation", [a], (2, 3, 5), per_tensor(1 / 256, -128), {"function": "sigmoid"}),
    ]
    outputs = []
    for op, inputs, shape, quant, attrs in plans:
        node = graph.add_node(op, inputs, [int8_type(shape, quant)], attrs, name=op)
        outputs.append(node.outputs[0])
    graph.outputs = outputs
    verify(graph)
    rng = np.random.default_rng(5)
    return graph, {"a": rng.uniform(-4, 4, (2, 3, 5)), "b": rng.uniform(-2.3, 2.3, (2, 3, 5))}


def integer_elementwise_reference(graph: Graph, feeds: dict[str, np.ndarray]) -> dict:
    """docs/numerics.md's integer semantics of `quantised_elementwise`, written out in numpy."""
    from ir.quant import multiply_by_quantized_multiplier as mbqm
    from ir.quant import quantize_multiplier

    (a, b), outputs = graph.inputs, graph.outputs
    (sa, za), (sb, zb) = ((v.type.quant.scale[0], v.type.quant.zero_point[0]) for v in (a, b))
    qa = quantise(feeds["a"], a.type.quant).astype(np.int64) - za
    qb = quantise(feeds["b"], b.type.quant).astype(np.int64) - zb

    def finish(value: Value, scaled: np.ndarray) -> np.ndarray:
        quant = value.type.quant
        q = np.clip(scaled + quant.zero_point[0], -128, 127)
        return ((q - quant.zero_point[0]) * np.float32(quant.scale[0])).astype(np.float32)

    expected = {}
    for value, sign in zip(outputs[:2], (1, -1)):
        twice = 2 * max(sa, sb)
        terms = [mbqm(q << 20, *quantize_multiplier(s / twice)) for q, s in ((qa, sa), (qb, sb))]
        total = terms[0] + sign * terms[1]
        y_scale = value.type.quant.scale[0]
        expected[value.name] = finish(
            value, mbqm(total, *quantize_multiplier(twice / (2**20 * y_scale)))
        )
    y_scale = outputs[2].type.quant.scale[0]
    expected[outputs[2].name] = finish(
        outputs[2], mbqm(qa * qb, *quantize_multiplier(sa * sb / y_scale))
    )
    y_scale = outputs[3].type.quant.scale[0]
    parts = [mbqm(q, *quantize_multiplier(s / y_scale)) for q, s in ((qa, sa), (qb, sb))]
    expected[outputs[3].name] = finish(outputs[3], np.concatenate(parts, axis=1))
    sigmoid = 1 / (1 + np.exp(-(qa * np.float32(sa)).astype(np.float32)))
    expected[outputs[4].name] = dequantise(
        quantise(sigmoid, outputs[4].type.quant), outputs[4].type.quant
    )
    return expected


def test_quantised_elementwise_ops_are_the_exact_integer_computation():
    graph, feeds = quantised_elementwise()
    model = export_checked(graph)
    op_types = {n.op_type for n in model.graph.node}
    assert {"Gather", "Div", "Sign"} <= op_types and "Sigmoid" not in op_types
    actual = run_onnxruntime(model, {k: v.astype(np.float32) for k, v in feeds.items()})
    expected = integer_elementwise_reference(graph, feeds)
    for value in graph.outputs:
        np.testing.assert_array_equal(actual[value.name], expected[value.name], value.name)


def test_plain_qdq_form_computes_every_quantised_op_in_float():
    graph, _, _ = quantised_conv_dense()
    op_types = {n.op_type for n in export_checked(graph, integer_ops=False).graph.node}
    assert {"Conv", "Gemm", "QuantizeLinear"} <= op_types
    assert not {"ConvInteger", "MatMulInteger"} & op_types


def test_quantised_graph_at_an_old_opset_needs_13():
    graph, _, _ = quantised_conv_dense()
    assert max(need for need, _ in opset_needs(graph)) == 13
    with pytest.raises(UnsupportedError, match="quantised int8 value %input needs opset 13"):
        export_onnx(graph, MIN_OPSET, exact_opset=True)


def test_unsupported_nodes_are_all_reported():
    graph = Graph("casts")
    quant = per_tensor(0.1, 0)
    x = graph.add_input("x", int8_type((2,), quant))
    first = graph.add_node("cast", [x], [TensorType((2,), "int32")], {"to": "int32"}, name="c1")
    second = graph.add_node("cast", [x], [TensorType((2,), "int32")], {"to": "int32"}, name="c2")
    graph.outputs = [first.outputs[0], second.outputs[0]]
    with pytest.raises(UnsupportedError, match="cannot export 2 nodes to ONNX") as error:
        export_onnx(graph)
    assert [p.split(":")[0] for p in error.value.problems] == ["'c1' (cast)", "'c2' (cast)"]


def test_float_graph_has_no_quantize_nodes():
    graph, _ = one_op_graph(CASES_BY_NAME["conv"])
    model = export_checked(graph)
    assert {n.op_type for n in model.graph.node} == {"Conv"}


def test_reshape_to_a_size_zero_axis_needs_allowzero():
    case = Case("reshape", {"shape": (3, 0)}, [np.zeros((0, 3), np.float32)])
    graph, feeds = one_op_graph(case)
    with pytest.raises(UnsupportedError, match="'reshape' \\(reshape\\): target shape \\(3, 0\\)"):
        export_onnx(graph, 13)
    model = export_checked(graph, 14)
    assert [a.name for a in model.graph.node[0].attribute] == ["allowzero"]
    assert run_onnxruntime(model, feeds)["y0"].shape == (3, 0)
