"""The default event/packed choice per producing layer from the zeros measured at calibration."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from backend.cost import estimate
from backend.image import decode_image, encode_image
from s2c.driver import CompileOptions, compile_model
from s2c.files import write_npz
from s2c.summary import format_summary, summarise
from s2c.validate import interpreter_outputs


def _model() -> tuple[onnx.ModelProto, np.ndarray, np.ndarray]:
    """x[1, 32] -> Gemm(64) -> Relu -> Gemm(10); 62 of the 64 hidden units have bias -100."""
    rng = np.random.default_rng(5)
    w1 = rng.standard_normal((32, 64)).astype(np.float32)
    b1 = np.full(64, -100.0, np.float32)
    b1[:2] = 1.0
    w2 = rng.standard_normal((64, 10)).astype(np.float32)
    nodes = [
        helper.make_node("Gemm", ["x", "w1", "b1"], ["h"], name="hidden"),
        helper.make_node("Relu", ["h"], ["r"], name="relu"),
        helper.make_node("Gemm", ["r", "w2", "b2"], ["y"], name="logits"),
    ]
    graph = helper.make_graph(
        nodes,
        "sparse_hidden",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 32])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 10])],
        [
            numpy_helper.from_array(w1, "w1"),
            numpy_helper.from_array(b1, "b1"),
            numpy_helper.from_array(w2, "w2"),
            numpy_helper.from_array(np.zeros(10, np.float32), "b2"),
        ],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    samples = rng.standard_normal((64, 1, 32)).astype(np.float32)
    hidden = np.maximum(samples.reshape(64, 32) @ w1 + b1, 0)  # independent reference
    return model, samples, hidden


def _compile(model, calib: Path, **options):
    options = dict(mode="int8", calib=str(calib), **options)
    result = compile_model(model, CompileOptions(**options), emit=lambda t: None, warn=None)
    return result.program, encode_image(result.program)


def test_layers_with_over_15_16_zeros_at_calibration_send_events(tmp_path: Path) -> None:
    model, samples, hidden = _model()
    calib = tmp_path / "calib.npz"
    write_npz(calib, {"x": samples})
    program, image = _compile(model, calib)
    record = json.loads(program.metadata["event_activations"])
    kernels = {k.layer: k for pe in program.pes for k in pe.kernels}
    hidden_layer = next(name for name in kernels if kernels[name].opcode == "dense")
    measured = np.count_nonzero(hidden == 0) / hidden.size
    assert measured > 15 / 16
    assert record["option"] == "auto"
    assert record["zeros_at_calibration"][hidden_layer] == round(measured, 6)
    assert record["layers"] == [hidden_layer]
    for name, kernel in kernels.items():
        assert kernel.output.values_per_packet == (1 if name == hidden_layer else 16)
    text = format_summary(summarise(decode_image(image), len(image)))
    assert "events (non-zeros only) from 1 of 2 layers" in text
    assert "chosen by calibration zeros" in text
    x = {"x": samples[:8].reshape(8, 32)}
    auto_out, stats = interpreter_outputs(image, x)
    packed_out, packed = interpreter_outputs(_compile(model, calib, event_activations=False)[1], x)
    np.testing.assert_array_equal(auto_out["y"], packed_out["y"])
    assert stats.packets < packed.packets


def test_options_force_events_everywhere_or_nowhere(tmp_path: Path) -> None:
    model, samples, _ = _model()
    calib = tmp_path / "calib.npz"
    write_npz(calib, {"x": samples})
    for forced, per_packet in ((True, {1}), (False, {16})):
        program, _ = _compile(model, calib, event_activations=forced)
        kernels = [k for pe in program.pes for k in pe.kernels]
        assert {k.output.values_per_packet for k in kernels} == per_packet
        record = json.loads(program.metadata["event_activations"])
        assert record["option"] == ("on" if forced else "off")
        assert len(record["layers"]) == (2 if forced else 0)


def test_cost_model_counts_an_event_layer_by_its_calibration_zeros(tmp_path: Path) -> None:
    model, samples, hidden = _model()
    calib = tmp_path / "calib.npz"
    write_npz(calib, {"x": samples})
    expected_sent = math.ceil(np.count_nonzero(hidden) / hidden.size * 64)  # one per non-zero
    for forced, hidden_packets in ((None, expected_sent), (True, expected_sent), (False, 4)):
        program, image = _compile(model, calib, event_activations=forced)
        layers = {
            layer["name"]: layer for layer in estimate(decode_image(image)).as_dict()["layers"]
        }
        dense = [k.layer for pe in program.pes for k in pe.kernels if k.opcode == "dense"]
        assert layers[dense[0]]["packets"] == hidden_packets
        # the logits layer processes only the hidden inputs that arrive when they come as events
        arrived = np.count_nonzero(hidden) / hidden.size if forced is not False else 1.0
        assert layers[dense[1]]["macs"] == round(64 * 10 * arrived)


def test_without_calibration_data_every_float_layer_stays_packed() -> None:
    model, _, _ = _model()
    options = CompileOptions(mode="float")
    program = compile_model(model, options, emit=lambda t: None, warn=None).program
    assert {k.output.values_per_packet for pe in program.pes for k in pe.kernels} == {4}
    assert json.loads(program.metadata["event_activations"])["layers"] == []
