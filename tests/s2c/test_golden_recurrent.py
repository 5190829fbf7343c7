"""Recurrent golden cases: compile (float), run the image in the interpreter, compare with the
onnxruntime outputs stored by golden/make_recurrent.py, to each case's tolerances."""

from __future__ import annotations

import numpy as np
import onnx
import pytest

from backend.image import encode_image
from golden.recurrent import RECURRENT_CASES, load_recurrent_case
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
