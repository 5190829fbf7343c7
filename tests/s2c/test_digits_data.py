"""Guards on golden/digits/: the two trained digits classifiers and their data.

The files are made by `golden/train_digits.py` (which needs torch and scikit-learn); these
checks need neither. Each ONNX model must pass the checker, keep its interface, and, run in
onnxruntime on the stored test set, reach at least 97 % accuracy, exactly as recorded in
accuracy.json.
"""

from __future__ import annotations

import json
import sys
from functools import cache
from pathlib import Path

import numpy as np
import onnx
import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from golden.cases import run_onnxruntime  # noqa: E402

DIGITS = ROOT / "golden" / "digits"
MODELS = ("cnn", "mlp")
INPUT_SHAPES = {"cnn": (1, 8, 8), "mlp": (64,)}
MIN_ACCURACY = 0.97
CALIB_SAMPLES = 200
MAX_MODEL_BYTES = 64 * 1024


@cache
def _recorded() -> dict:
    return json.loads((DIGITS / "accuracy.json").read_text())


def _load_npz(name: str) -> dict[str, np.ndarray]:
    with np.load(DIGITS / name, allow_pickle=False) as data:
        return {key: data[key] for key in data.files}


@cache
def _test_set() -> dict[str, np.ndarray]:
    return _load_npz("test.npz")


@cache
def _model(name: str) -> onnx.ModelProto:
    return onnx.load(DIGITS / f"{name}.onnx")


def _dims(value: onnx.ValueInfoProto) -> list[int | str]:
    return [d.dim_param or d.dim_value for d in value.type.tensor_type.shape.dim]


def test_recorded_models_are_the_stored_ones():
    recorded = _recorded()
    assert sorted(recorded["models"]) == list(MODELS)
    for name, entry in recorded["models"].items():
        assert entry["onnx_file"] == f"{name}.onnx"
        assert entry["input_key"] == f"input_{name}"


def test_test_set_layout():
    data = _test_set()
    assert sorted(data) == ["input_cnn", "input_mlp", "labels"]
    n = _recorded()["test_samples"]
    images, flat, labels = data["input_cnn"], data["input_mlp"], data["labels"]
    assert images.shape == (n, 1, 8, 8) and images.dtype == np.float32
    assert flat.shape == (n, 64) and flat.dtype == np.float32
    assert labels.shape == (n,) and labels.dtype == np.int64
    np.testing.assert_array_equal(flat, images.reshape(n, 64))
    # pixels are the data set's integers 0..16 divided by 16
    np.testing.assert_array_equal(flat * 16, np.round(flat * 16))
    assert flat.min() >= 0.0 and flat.max() <= 1.0
    assert set(np.unique(labels)) == set(range(10))


@pytest.mark.parametrize("name", MODELS)
def test_calibration_set_layout(name):
    data = _load_npz(f"calib_{name}.npz")
    assert list(data) == ["input"]
    calib = data["input"]
    assert calib.shape == (CALIB_SAMPLES, *INPUT_SHAPES[name])
    assert calib.dtype == np.float32
    assert calib.min() >= 0.0 and calib.max() <= 1.0
    other = _load_npz(f"calib_{'mlp' if name == 'cnn' else 'cnn'}.npz")["input"]
    np.testing.assert_array_equal(calib.reshape(CALIB_SAMPLES, 64), other.reshape(-1, 64))


@pytest.mark.parametrize("name", MODELS)
def test_model_interface(name):
    model = _model(name)
    onnx.checker.check_model(model, full_check=True)
    assert (DIGITS / f"{name}.onnx").stat().st_size <= MAX_MODEL_BYTES
    assert [(o.domain, o.version) for o in model.opset_import] == [("", 17)]
    (graph_input,) = model.graph.input
    (graph_output,) = model.graph.output
    assert graph_input.name == "input"
    assert _dims(graph_input) == ["batch", *INPUT_SHAPES[name]]
    assert graph_output.name == "logits"
    assert _dims(graph_output) == ["batch", 10]
    ops = {node.op_type for node in model.graph.node}
    assert not ops & {"Softmax", "LogSoftmax", "MaxPool", "BatchNormalization"}


@pytest.mark.parametrize("name", MODELS)
def test_onnx_accuracy_matches_record(name):
    entry = _recorded()["models"][name]
    data = _test_set()
    logits = run_onnxruntime(_model(name), {"input": data[entry["input_key"]]})["logits"]
    labels = data["labels"]
    assert logits.shape == (len(labels), 10) and logits.dtype == np.float32
    correct = int((logits.argmax(axis=1) == labels).sum())
    accuracy = correct / len(labels)
    assert accuracy >= MIN_ACCURACY
    assert correct == entry["correct"]
    assert accuracy == entry["accuracy"]


@pytest.mark.parametrize("name", MODELS)
def test_readme_reports_recorded_accuracy(name):
    entry = _recorded()["models"][name]
    n = _recorded()["test_samples"]
    readme = (DIGITS / "README.md").read_text()
    assert f"| {entry['accuracy']:.4f} ({entry['correct']}/{n}) |" in readme
