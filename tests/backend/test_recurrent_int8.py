"""int8 recurrent layers: int8 gate matmuls, fp32 gates, int8 hidden state between steps.

Compared with the fp32 model in onnxruntime (the QDQ export cannot express the kernel, and says
so), on seeded task sequences: the figures of benchmarks/recurrent.py on fewer inputs.
"""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest

import s2c.driver
from backend.image import decode_image, encode_image
from backend.interpreter import Interpreter
from backend.partition import partition
from golden.recurrent import GOLDEN_DIR, task_sequences
from ir.errors import InputError, UnsupportedError
from s2c.driver import CompileOptions, compile_model
from s2c.export import export_onnx
from s2c.validate import interpreter_outputs

MODEL = GOLDEN_DIR / "gru_classifier" / "model.onnx"
SAMPLES = 40


@pytest.fixture(scope="module")
def calibration(tmp_path_factory):
    path = tmp_path_factory.mktemp("calib") / "calib.npz"
    np.savez(path, input=task_sequences(32, seed=1000)[0])
    return str(path)


def int8_result(calibration: str):
    options = CompileOptions(mode="int8", calib=calibration, machine="chip")
    return compile_model(MODEL, options, emit=lambda t: None, warn=lambda t: None)


def test_gru_int8_logits_follow_fp32(calibration):
    result = int8_result(calibration)
    kernels = [k for pe in result.program.pes for k in pe.kernels if k.opcode == "gru"]
    assert kernels and all(k.attrs["int8"] == 1 and k.output.dtype == "int8" for k in kernels)
    assert {p.role: p.dtype for p in kernels[0].params}["r"] == "int8"
    x, _ = task_sequences(SAMPLES, seed=2000)
    quantised, _ = interpreter_outputs(encode_image(result.program), {"input": x})
    session = ort.InferenceSession(str(MODEL), providers=["CPUExecutionProvider"])
    reference = np.concatenate([session.run(None, {"input": row[None]})[0] for row in x])
    a, b = quantised["logits"].astype(np.float64), reference.astype(np.float64)
    cosine = (a * b).sum(1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))
    # The figures (cosine >= 0.99, top-1 >= 95 %); 200 inputs give 0.9999 and 99 %.
    assert cosine.mean() >= 0.99
    assert (a.argmax(1) == b.argmax(1)).mean() >= 0.95


def test_slicing_does_not_change_the_int8_codes(calibration, monkeypatch):
    """The exchanged state is int8 codes: 4 slices and 1 slice compute the same integers."""
    x, _ = task_sequences(8, seed=3000)
    whole, _ = interpreter_outputs(encode_image(int8_result(calibration).program), {"input": x})
    monkeypatch.setattr(s2c.driver, "partition", lambda g, _b, *a: partition(g, 4000, *a))
    sliced_result = int8_result(calibration)
    slices = [k for pe in sliced_result.program.pes for k in pe.kernels if k.opcode == "gru"]
    assert len(slices) >= 2
    sliced, _ = interpreter_outputs(encode_image(sliced_result.program), {"input": x})
    np.testing.assert_array_equal(sliced["logits"], whole["logits"])


def test_emit_qdq_refuses_the_int8_recurrent_kernel(calibration):
    with pytest.raises(UnsupportedError, match="cannot express the int8 recurrent kernel"):
        export_onnx(int8_result(calibration).graph)


def test_float_export_writes_onnx_gru_nodes():
    model = onnx.load(GOLDEN_DIR / "gru_bidirectional" / "model.onnx")
    result = compile_model(model, CompileOptions(mode="float"), emit=lambda t: None)
    exported = export_onnx(result.graph)
    assert [n.op_type for n in exported.graph.node].count("GRU") == 2
    inputs = dict(np.load(GOLDEN_DIR / "gru_bidirectional" / "inputs.npz"))
    expected = dict(np.load(GOLDEN_DIR / "gru_bidirectional" / "outputs.npz"))
    session = ort.InferenceSession(exported.SerializeToString(), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    for name, value in zip(names, session.run(None, inputs)):
        np.testing.assert_allclose(value, expected[name], rtol=1e-5, atol=1e-6)


def test_int8_bidirectional_gru_with_an_initial_state_input_follows_fp32(tmp_path):
    """initial_h arrives as int8 codes of its own scale, is dequantised and used in fp32 at the
    first step; later steps read the exchanged int8 output codes."""
    model = onnx.load(GOLDEN_DIR / "gru_bidirectional" / "model.onnx")
    rng = np.random.default_rng(0)
    x = rng.normal(0, 1, (40, 6, 1, 8)).astype(np.float32)
    h = (rng.normal(0, 1, (40, 2, 1, 10)) * 0.3).astype(np.float32)
    np.savez(tmp_path / "calib.npz", x=x[:32], initial_h=h[:32])
    options = CompileOptions(mode="int8", calib=str(tmp_path / "calib.npz"), machine="chip")
    result = compile_model(model, options, emit=lambda t: None, warn=lambda t: None)
    image = encode_image(result.program)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    for i in range(32, 36):
        outputs, _ = interpreter_outputs(image, {"x": x[i], "initial_h": h[i]})
        (expected, _) = session.run(None, {"x": x[i], "initial_h": h[i]})
        # Y lies in (-1, 1) with a scale near 2/255: int8 inputs, weights and state over 6
        # steps stay within a few LSB (0.02 measured); a wrong scale or port is of order 0.5.
        np.testing.assert_allclose(outputs["Y"], expected, atol=0.05)


def test_an_int8_recurrent_descriptor_with_float_weights_is_refused(calibration):
    program = decode_image(encode_image(int8_result(calibration).program))
    for pe in program.pes:
        for index, kernel in enumerate(pe.kernels):
            if kernel.opcode == "gru":
                params = tuple(
                    dataclasses.replace(p, dtype="float32") if p.role == "w" else p
                    for p in kernel.params
                )
                pe.kernels[index] = dataclasses.replace(kernel, params=params)
    with pytest.raises(InputError, match="parameter 'w' dtype = 'float32': must be int8"):
        Interpreter(program)


def test_validate_judges_an_int8_recurrent_model_by_cosine_against_fp32(calibration, tmp_path):
    """No QDQ model exists for it, so `s2c validate` compares with fp32: cosine and top-1."""
    from click.testing import CliRunner

    from s2c.cli import main

    inputs = tmp_path / "x.npz"
    np.savez(inputs, input=task_sequences(SAMPLES, seed=2000)[0])
    args = ["validate", str(MODEL), "--calib", calibration, "--inputs", str(inputs), "--json"]
    result = CliRunner().invoke(main, args)
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    (cosine,) = report["cosine_against_fp32"]
    assert report["against_qdq"] == [] and cosine["samples"] == SAMPLES
    assert cosine["mean_cosine"] >= 0.99 and cosine["top1_agreement"] >= 0.95


def test_cosine_comparison_counts_rows_and_agreement():
    from s2c.validate import compare_cosine

    expected = np.array([[1.0, 0.0], [0.0, 2.0], [0.0, 0.0]])
    actual = np.array([[2.0, 0.0], [1.0, 1.0], [0.0, 0.0]])  # same, 45 degrees off, both zero
    c = compare_cosine("y", expected, actual)
    assert c.samples == 3 and c.agreeing == 2  # row 1 ties at argmax 0 vs 1
    assert np.isclose(c.min_cosine, np.sqrt(0.5)) and np.isclose(
        c.mean_cosine, (2 + np.sqrt(0.5)) / 3
    )
