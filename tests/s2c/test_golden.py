"""Golden cases: compile, write the image, read it back, interpret, compare with onnxruntime.

Expected outputs were recorded from onnxruntime by golden/make_golden.py; tolerances come from
each case's case.json (with the reason for their size). The int8 expectations are onnxruntime's
outputs on each case's QDQ export (the exact integer computation) and must match exactly.
"""

from __future__ import annotations

import numpy as np
import pytest

from backend.image import decode_image, encode_image
from golden.cases import CASES, load_case, load_int8_outputs
from s2c.driver import CompileOptions, compile_model
from s2c.validate import interpreter_outputs


@pytest.mark.parametrize("case", CASES)
def test_golden_case_matches_onnxruntime(case: str) -> None:
    model, inputs, expected, tolerances = load_case(case)
    result = compile_model(model, CompileOptions(mode="float"), emit=lambda text: None)
    outputs, stats = interpreter_outputs(encode_image(result.program), inputs)
    assert set(outputs) == set(expected)
    for name, reference in expected.items():
        np.testing.assert_allclose(
            outputs[name], reference, rtol=tolerances.rtol, atol=tolerances.atol
        )
    assert stats.packets > 0


@pytest.mark.parametrize("case", CASES)
def test_golden_case_in_int8_matches_the_stored_outputs_exactly(case: str) -> None:
    model, inputs, _, _ = load_case(case)
    expected = load_int8_outputs(case)
    options = CompileOptions(mode="int8")
    result = compile_model(model, options, emit=lambda text: None, warn=lambda text: None)
    outputs, _ = interpreter_outputs(encode_image(result.program), inputs)
    assert set(outputs) == set(expected)
    for name, reference in expected.items():
        np.testing.assert_array_equal(outputs[name], reference, err_msg=f"{case}/{name}")


def test_multi_chip_case_uses_several_chips() -> None:
    model, _, _, _ = load_case("multi_chip")
    result = compile_model(model, CompileOptions(mode="float"), emit=lambda text: None)
    chips = {pe.pe.chip for pe in result.program.pes}
    assert len(chips) > 1


def test_same_model_and_options_give_identical_image_bytes() -> None:
    model, _, _, _ = load_case("concat_branches")
    first = encode_image(
        compile_model(model, CompileOptions(mode="float"), emit=lambda t: None).program
    )
    second = encode_image(
        compile_model(model, CompileOptions(mode="float"), emit=lambda t: None).program
    )
    assert first == second
    assert decode_image(first).pes


def test_stacked_inputs_run_as_independent_inferences() -> None:
    model, inputs, _, _ = load_case("conv_pool_dense")
    image = encode_image(
        compile_model(model, CompileOptions(mode="float"), emit=lambda t: None).program
    )
    ((name, x),) = inputs.items()
    rng = np.random.default_rng(5)
    other = rng.standard_normal(x.shape).astype(np.float32)
    stacked, _ = interpreter_outputs(image, {name: np.concatenate([x, other])})
    single_a, _ = interpreter_outputs(image, {name: x})
    single_b, _ = interpreter_outputs(image, {name: other})
    # Equal up to float32 rounding: BLAS blocks a product over two samples' columns differently
    # from one sample's (docs/numerics.md); mixing the samples would differ by far more.
    for key in stacked:
        np.testing.assert_allclose(stacked[key][0:1], single_a[key], rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(stacked[key][1:2], single_b[key], rtol=1e-5, atol=1e-6)
