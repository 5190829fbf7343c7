"""Bad input around recurrent models: a sequence length other than the compiled one at `s2c run`,
and a sequence axis left dynamic at compile time: one line, exit 2."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from click.testing import CliRunner

from golden.recurrent import GOLDEN_DIR, STEPS
from s2c.cli import main

MODEL = GOLDEN_DIR / "gru_classifier" / "model.onnx"


def invoke(*args: str | Path):
    try:
        runner = CliRunner(mix_stderr=False)  # click 8.1; 8.2 always keeps stderr apart
    except TypeError:
        runner = CliRunner()
    return runner.invoke(main, [str(a) for a in args])


def refused(result) -> str:
    """The one `error:` line of a run that exited 2 without a traceback."""
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    return lines[0]


def test_a_sequence_of_another_length_names_input_axis_and_compiled_length(tmp_path):
    image = tmp_path / "gru.bin"
    assert invoke("compile", MODEL, "--mode", "float", "-o", image, "--quiet").exit_code == 0
    inputs = tmp_path / "short.npz"
    np.savez(inputs, input=np.zeros((1, STEPS - 2, 16), np.float32))
    line = refused(invoke("run", image, "--inputs", inputs))
    assert f"input 'input' has shape (1, {STEPS - 2}, 16)" in line
    assert f"axis 1 has length {STEPS - 2}" in line
    assert f"compiled for {STEPS}" in line and "recurrent layer '/rnn/GRU" in line


def test_a_dynamic_sequence_axis_is_refused_at_compile_time(tmp_path):
    model = onnx.load(MODEL)
    axis = model.graph.input[0].type.tensor_type.shape.dim[1]
    axis.dim_param = "steps"
    path = tmp_path / "dynamic.onnx"
    onnx.save(model, path)
    line = refused(invoke("compile", path, "-o", tmp_path / "x.bin", "--quiet"))
    assert "input 'input' axis 1 ('steps') has no fixed size" in line
