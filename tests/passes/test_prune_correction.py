"""Correction of pruned layers from calibration data (passes/prune_correction.py)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from backend.image import encode_image
from ir.errors import InputError
from ir.reference import evaluate
from ir.registry import get_op
from passes.calibration import sample_activations
from passes.sparsity import Prune, weighted_layers
from s2c.driver import CompileOptions, compile_model
from s2c.frontend import load_onnx
from s2c.validate import interpreter_outputs

GOLDEN = Path(__file__).resolve().parents[2] / "golden"
MLP = GOLDEN / "mlp" / "model.onnx"
CNN = GOLDEN / "digits" / "cnn.onnx"


def _inputs_and_outputs(graph, node, samples) -> tuple[np.ndarray, np.ndarray]:
    """The node's input and (pre-activation) output over the samples, stacked."""
    pairs = [
        (env[id(node.inputs[0])], env[id(node.outputs[0])])
        for env in sample_activations(graph, samples)
    ]
    return np.concatenate([p[0] for p in pairs]), np.concatenate([p[1] for p in pairs])


def _output(node, x: np.ndarray) -> np.ndarray:
    operands = [x, *(value.constant_data for value in node.inputs[1:])]
    return evaluate(node.op, get_op(node.op).with_defaults(node.attrs), operands)[0]


def test_refit_of_a_dense_layer_is_the_least_squares_fit_of_its_unpruned_output() -> None:
    graph = load_onnx(MLP)
    samples = {"input": np.random.default_rng(3).standard_normal((160, 1, 64)).astype("float32")}
    middle = weighted_layers(graph)[1]
    x, unpruned = _inputs_and_outputs(graph, middle, samples)
    Prune(0.7, calibration=samples, correction="refit").run(graph)
    weight, bias = middle.inputs[1].constant_data, middle.inputs[2].constant_data
    assert np.count_nonzero(weight == 0) == int(0.7 * weight.size)
    design = np.c_[x, np.ones(len(x))].astype(np.float64)
    for output in range(weight.shape[1]):  # independent reference: lstsq on the data itself
        kept = np.append(weight[:, output] != 0, True)
        expected, *_ = np.linalg.lstsq(design[:, kept], unpruned[:, output], rcond=None)
        np.testing.assert_allclose(weight[kept[:-1], output], expected[:-1], rtol=1e-3, atol=1e-4)
        np.testing.assert_allclose(bias[output], expected[-1], rtol=1e-3, atol=1e-4)


def test_bias_correction_of_a_conv_keeps_each_channels_mean_output() -> None:
    graph = load_onnx(CNN)
    samples = {"input": np.load(GOLDEN / "digits" / "calib_cnn.npz")["input"][:40]}
    middle = weighted_layers(graph)[1]
    x, unpruned = _inputs_and_outputs(graph, middle, samples)
    Prune(0.5, calibration=samples, correction="bias").run(graph)
    pruned = _output(middle, x)
    assert np.count_nonzero(middle.inputs[1].constant_data == 0) == int(0.5 * 16 * 8 * 9)
    np.testing.assert_allclose(
        pruned.mean(axis=(0, 2, 3)), unpruned.mean(axis=(0, 2, 3)), rtol=1e-4, atol=1e-4
    )
    refit = load_onnx(CNN)
    Prune(0.5, calibration=samples, correction="refit").run(refit)
    error_refit = np.mean((_output(weighted_layers(refit)[1], x) - unpruned) ** 2)
    assert error_refit < np.mean((pruned - unpruned) ** 2)


def test_without_calibration_or_with_none_the_weights_are_only_pruned() -> None:
    plain, uncalibrated = load_onnx(MLP), load_onnx(MLP)
    samples = {"input": np.ones((4, 1, 64), dtype="float32")}
    prune = Prune(0.5, calibration=samples, correction="none")
    prune.run(plain)
    Prune(0.5).run(uncalibrated)
    for a, b in zip(weighted_layers(plain), weighted_layers(uncalibrated)):
        np.testing.assert_array_equal(a.inputs[1].constant_data, b.inputs[1].constant_data)
        np.testing.assert_array_equal(a.inputs[2].constant_data, b.inputs[2].constant_data)
    assert {layer.correction for layer in prune.report.values()} == {"none"}
    with pytest.raises(InputError, match="--prune-correction 'lsq': choose from refit"):
        Prune(0.5, correction="lsq").run(load_onnx(MLP))


def test_digits_cnn_pruned_by_half_per_layer_keeps_its_accuracy_in_int8() -> None:
    """The issue's figure: accuracy with --prune 0.5 >= unpruned - 1 point (int8, test set)."""
    options = CompileOptions(mode="int8", calib=str(GOLDEN / "digits" / "calib_cnn.npz"), prune=0.5)
    result = compile_model(CNN, options, emit=lambda text: None, warn=None)
    test = np.load(GOLDEN / "digits" / "test.npz")
    outputs, _ = interpreter_outputs(encode_image(result.program), {"input": test["input_cnn"]})
    accuracy = float((outputs["logits"].argmax(axis=1) == test["labels"]).mean())
    unpruned = json.loads((GOLDEN / "digits" / "accuracy.json").read_text())
    assert accuracy >= unpruned["models"]["cnn"]["accuracy"] - 0.01
    record = json.loads(result.program.metadata["prune"])
    assert record["correction"] == "refit"
    assert [v["correction"] for v in record["layers"].values()] == [
        "none",
        "refit",
        "refit",
        "none",
    ]
