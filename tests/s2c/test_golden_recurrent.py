"""Recurrent golden cases: compile (float), run the image in the interpreter, compare with the
onnxruntime outputs stored by golden/make_recurrent.py, to each case's tolerances."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from backend.image import encode_image
from golden import make_recurrent
from golden.cases import run_onnxruntime
from golden.recurrent import GOLDEN_DIR, RECURRENT_CASES, VARIANTS, load_recurrent_case
from s2c.driver import CompileOptions, compile_model
from s2c.validate import interpreter_outputs


@pytest.mark.parametrize("case", RECURRENT_CASES)
def test_recurrent_golden_case_matches_onnxruntime(case: str) -> None:
    model_bytes, inputs, expected, tolerances = load_recurrent_case(case)
    model = onnx.load_from_string(model_bytes)
    result = compile_model(model, CompileOptions(mode="float"), emit=lambda text: None)
    outputs, _ = interpreter_outputs(encode_image(result.program), inputs)
    assert set(outputs) == set(expected)
    for name, reference in expected.items():
        np.testing.assert_allclose(
            outputs[name], reference, rtol=tolerances.rtol, atol=tolerances.atol, err_msg=name
        )


@pytest.mark.parametrize("case", RECURRENT_CASES)
def test_stored_outputs_match_onnxruntime_today(case: str) -> None:
    model_bytes, inputs, expected, _ = load_recurrent_case(case)
    actual = run_onnxruntime(onnx.load_from_string(model_bytes), inputs)
    assert list(actual) == list(expected)
    for name, value in expected.items():
        np.testing.assert_allclose(actual[name], value, rtol=1e-6, atol=1e-7, err_msg=name)


@pytest.mark.parametrize("case", VARIANTS)
def test_the_script_reproduces_the_helper_cases_byte_for_byte(case: str) -> None:
    """The onnx.helper cases need no torch: made again, their files are the stored bytes (the
    classifiers and cell loops need torch and are made by hand)."""
    files = make_recurrent.render_case(case)
    for name in ("model.onnx", "inputs.npz", "outputs.npz"):
        assert files[name] == (GOLDEN_DIR / case / name).read_bytes(), name
