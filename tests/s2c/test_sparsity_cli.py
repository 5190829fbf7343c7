"""The sparsity options on the command line: pruning errors, stats in run and inspect."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from s2c.cli import main

MLP = Path(__file__).resolve().parents[2] / "golden" / "mlp"


def invoke(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.mark.parametrize(
    "options, words",
    [
        (["--prune", "1"], "--prune must be in [0, 1), got 1.0"),
        (["--prune", "-0.2"], "--prune must be in [0, 1), got -0.2"),
        (["--prune", "0.999", "--prune-global", "--prune-first-last"], "leaves it no non-zero"),
    ],
)
def test_bad_pruning_is_a_one_line_error(tmp_path: Path, options, words: str) -> None:
    result = invoke("compile", MLP / "model.onnx", "-o", tmp_path / "m.bin", *options)
    assert result.exit_code == 2
    errors = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and words in errors[0], result.output
    assert "Traceback" not in result.output
    assert not (tmp_path / "m.bin").exists()


def test_run_and_inspect_report_sparsity(tmp_path: Path) -> None:
    image = tmp_path / "m.bin"
    compiled = invoke(
        "compile", MLP / "model.onnx", "-o", image, "--mode", "int8", "--prune", "0.9",
        "--prune-first-last", "--event-activations", "--quiet",
    )  # fmt: skip
    assert compiled.exit_code == 0, compiled.output
    stats = tmp_path / "stats.json"
    ran = invoke("run", image, "--inputs", MLP / "inputs.npz", "--stats-json", stats)
    assert ran.exit_code == 0, ran.output
    sparsity = json.loads(stats.read_text())["sparsity"]
    assert sparsity["event_activations"] is True
    assert sparsity["weight_bytes_stored"] < 0.35 * sparsity["weight_bytes_dense"]
    assert sparsity["macs_performed"] < sparsity["macs_dense"]
    assert sparsity["packets_sent"] <= sparsity["packets_elements"]
    for layer in sparsity["per_layer"].values():
        assert 0.0 <= layer["activation_sparsity"] <= 1.0
        assert layer["packets_sent"] == layer["activation_elements"] - layer["activation_zeros"]
    inspected = invoke("inspect", image, "--json")
    summary = json.loads(inspected.output)["sparsity"]
    assert summary["weight_bytes_stored"] == sparsity["weight_bytes_stored"]
    assert summary["prune"]["fraction"] == 0.9
    assert np.isclose(summary["macs_stored"] / summary["macs_dense"], 0.1, atol=0.02)


def test_validate_compares_a_pruned_float_image_with_the_pruned_graph() -> None:
    model = MLP / "model.onnx"
    args = ("--mode", "float", "--prune", "0.7", "--prune-first-last", "--json")
    pruned = invoke("validate", model, *args)
    assert pruned.exit_code == 0, pruned.output
    assert json.loads(pruned.output)["ok"] is True
