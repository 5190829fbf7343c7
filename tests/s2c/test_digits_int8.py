"""int8 accuracy of the trained digits models on their whole held-out test set.

The fp32 accuracies in golden/digits/accuracy.json were measured with onnxruntime by
golden/train_digits.py; s2c's int8 image (calibrated on the stored training subset) must stay
within 0.5 points of them, the figure the int8 issue sets.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from backend.image import encode_image
from s2c.driver import CompileOptions, compile_model
from s2c.validate import interpreter_outputs

DIGITS = Path(__file__).resolve().parents[2] / "golden" / "digits"


@pytest.mark.parametrize("name", ["cnn", "mlp"])
def test_int8_accuracy_within_half_a_point_of_fp32(name: str) -> None:
    fp32 = json.loads((DIGITS / "accuracy.json").read_text())["models"][name]["accuracy"]
    test = np.load(DIGITS / "test.npz")
    options = CompileOptions(mode="int8", calib=str(DIGITS / f"calib_{name}.npz"))
    result = compile_model(DIGITS / f"{name}.onnx", options, emit=lambda t: None)
    outputs, _ = interpreter_outputs(encode_image(result.program), {"input": test[f"input_{name}"]})
    accuracy = float((outputs["logits"].argmax(axis=1) == test["labels"]).mean())
    assert accuracy >= fp32 - 0.005, (accuracy, fp32)
