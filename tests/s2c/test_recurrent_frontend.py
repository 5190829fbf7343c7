"""GRU and LSTM: the lowering (directions, layouts, initial states, Y/Y_h/Y_c) against onnxruntime.

Each case is one ONNX GRU/LSTM node built with onnx.helper; the lowered IR graph is evaluated node
by node with the IR reference (`ir.reference.evaluate`) and compared with onnxruntime's outputs.
"""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from ir.errors import UnsupportedError
from ir.graph import Graph
from ir.reference import evaluate
from s2c.frontend import load_onnx

STEPS, BATCH, FEATURES, HIDDEN = 5, 2, 3, 4
GATES = {"GRU": 3, "LSTM": 4}
# float32 GEMM sums in another order than onnxruntime's, compounded over 5 steps: a few ulps.
TOLERANCE = {"rtol": 1e-5, "atol": 1e-6}


def recurrent_model(op_type: str, *, opset: int = 17, states_as_inputs: bool = False, **attrs):
    """One GRU/LSTM node with seeded weights; returns (model, feeds, output names)."""
    rng = np.random.default_rng(7)
    directions = 2 if attrs.get("direction") == "bidirectional" else 1
    layout = attrs.get("layout", 0)
    gates = GATES[op_type]
    x_shape = (BATCH, STEPS, FEATURES) if layout else (STEPS, BATCH, FEATURES)
    state_shape = (BATCH, directions, HIDDEN) if layout else (directions, BATCH, HIDDEN)
    arrays = {
        "W": rng.normal(0, 0.5, (directions, gates * HIDDEN, FEATURES)),
        "R": rng.normal(0, 0.5, (directions, gates * HIDDEN, HIDDEN)),
        "B": rng.normal(0, 0.5, (directions, 2 * gates * HIDDEN)),
        "initial_h": rng.normal(0, 0.5, state_shape),
    }
    names = ["x", "W", "R", "B", "", "initial_h"]
    outputs = ["Y", "Y_h"]
    if op_type == "LSTM":
        arrays["initial_c"] = rng.normal(0, 0.5, state_shape)
        arrays["P"] = rng.normal(0, 0.5, (directions, 3 * HIDDEN))
        names += ["initial_c", "P"]
        outputs.append("Y_c")
    arrays = {k: v.astype(np.float32) for k, v in arrays.items()}
    feeds = {"x": rng.normal(0, 1, x_shape).astype(np.float32)}
    state_names = [n for n in ("initial_h", "initial_c") if n in arrays]
    if states_as_inputs:
        feeds.update({n: arrays.pop(n) for n in state_names})
    node = helper.make_node(op_type, names, outputs, hidden_size=HIDDEN, **attrs)
    inputs = [
        helper.make_tensor_value_info(n, TensorProto.FLOAT, a.shape) for n, a in feeds.items()
    ]
    graph = helper.make_graph(
        [node],
        "recurrent",
        inputs,
        [helper.make_empty_tensor_value_info(o) for o in outputs],
        [numpy_helper.from_array(a, n) for n, a in arrays.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    inferred = {v.name: v.type for v in onnx.shape_inference.infer_shapes(model).graph.output}
    for output in model.graph.output:
        output.type.CopyFrom(inferred[output.name])
    return model, feeds, outputs


def onnxruntime_outputs(model, feeds) -> list[np.ndarray]:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(model.SerializeToString(), options, ["CPUExecutionProvider"])
    return session.run(None, feeds)


def evaluate_graph(graph: Graph, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    """The IR graph's outputs, every node evaluated by the IR reference in order."""
    arrays = {v.name: feeds[v.name] for v in graph.inputs}
    graph.sort_topologically()
    for node in graph.nodes:
        operands = [v.constant_data if v.is_constant else arrays[v.name] for v in node.inputs]
        for value, result in zip(node.outputs, evaluate(node.op, node.attrs, operands)):
            arrays[value.name] = result
    return [arrays[v.name] for v in graph.outputs]


def check_against_onnxruntime(op_type: str, **kwargs) -> Graph:
    model, feeds, _ = recurrent_model(op_type, **kwargs)
    graph = load_onnx(model, batch=BATCH)
    expected = onnxruntime_outputs(model, feeds)
    actual = evaluate_graph(graph, feeds)
    assert len(actual) == len(expected)
    for a, e in zip(actual, expected):
        assert a.shape == e.shape
        np.testing.assert_allclose(a, e, **TOLERANCE)
    return graph


@pytest.mark.parametrize("op_type", ["GRU", "LSTM"])
@pytest.mark.parametrize("direction", ["forward", "reverse", "bidirectional"])
def test_directions_with_initial_states(op_type, direction):
    graph = check_against_onnxruntime(op_type, direction=direction)
    recurrent = [n for n in graph.nodes if n.op == op_type.lower()]
    reverse = [n.attrs["reverse"] for n in recurrent if n.attrs.get("output") != "cell"]
    assert reverse == {"forward": [0], "reverse": [1], "bidirectional": [0, 1]}[direction]


@pytest.mark.parametrize("op_type", ["GRU", "LSTM"])
def test_layout_1_and_states_from_graph_inputs(op_type):
    """onnxruntime has no layout 1: the expected outputs are the layout-0 model's, transposed."""
    attrs = {"direction": "bidirectional", "states_as_inputs": True}
    model, feeds, _ = recurrent_model(op_type, layout=1, **attrs)
    time_major, _, _ = recurrent_model(op_type, **attrs)
    swapped = {n: np.swapaxes(a, 0, 1) for n, a in feeds.items()}
    expected = onnxruntime_outputs(time_major, swapped)
    expected = [np.transpose(expected[0], (2, 0, 1, 3))] + [
        np.swapaxes(e, 0, 1) for e in expected[1:]
    ]
    actual = evaluate_graph(load_onnx(model, batch=BATCH), feeds)
    for a, e in zip(actual, expected, strict=True):
        np.testing.assert_allclose(a, e, **TOLERANCE)


def test_gru_linear_before_reset_at_opset_9():
    check_against_onnxruntime("GRU", opset=9, linear_before_reset=1)


def test_lstm_input_forget():
    check_against_onnxruntime("LSTM", input_forget=1)


@pytest.mark.parametrize(
    "attrs, message",
    [
        ({"activations": ["Relu", "Tanh"]}, "activations=['Relu', 'Tanh']"),
        ({"clip": 3.0}, "attribute 'clip'"),
        ({"activation_alpha": [1.0]}, "attribute 'activation_alpha'"),
    ],
)
def test_other_activations_and_clip_are_refused_naming_the_node(attrs, message):
    model, _, _ = recurrent_model("GRU", **attrs)
    model.graph.node[0].name = "rnn"
    with pytest.raises(UnsupportedError, match="rnn") as error:
        load_onnx(model, batch=BATCH)
    assert message in str(error.value)


def test_partial_or_dynamic_sequence_lens_is_refused():
    model, _, _ = recurrent_model("GRU")
    node = model.graph.node[0]
    node.input[4] = "lengths"
    partial = numpy_helper.from_array(np.array([STEPS, 2], np.int32), "lengths")
    model.graph.initializer.append(partial)
    with pytest.raises(UnsupportedError, match="sequence_lens"):
        load_onnx(model, batch=BATCH)
    model.graph.initializer.pop()
    model.graph.input.append(helper.make_tensor_value_info("lengths", TensorProto.INT32, [BATCH]))
    with pytest.raises(UnsupportedError, match="sequence_lens is not a compile-time constant"):
        load_onnx(model, batch=BATCH)


def test_full_constant_sequence_lens_is_accepted():
    model, feeds, _ = recurrent_model("LSTM")
    model.graph.node[0].input[4] = "lengths"
    lengths = numpy_helper.from_array(np.full(BATCH, STEPS, np.int32), "lengths")
    model.graph.initializer.append(lengths)
    actual = evaluate_graph(load_onnx(model, batch=BATCH), feeds)
    for a, e in zip(actual, onnxruntime_outputs(model, feeds)):
        np.testing.assert_allclose(a, e, **TOLERANCE)
