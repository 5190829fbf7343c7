"""Tests of the `s2c` command line: happy paths, one-line errors on bad input, atomic output files.

Most tests call the click command in-process through `CliRunner`; one runs `python -m s2c.cli` in
a real process to show that a bad input gives one `error:` line and no traceback there too.
Models are tiny graphs built with `onnx.helper` in a temporary folder (a dense layer plus ReLU,
compiled in milliseconds), or the golden `mlp` case.
"""

from __future__ import annotations

import hashlib
import json
import os
import struct
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import onnxruntime
import pytest
from click.testing import CliRunner, Result
from onnx import TensorProto, helper, numpy_helper
from onnx.external_data_helper import set_external_data

from s2c.cli import main

ROOT = Path(__file__).resolve().parents[2]
GOLDEN_MLP = ROOT / "golden" / "mlp" / "model.onnx"
OPSET = 17
RTOL, ATOL = 1e-4, 1e-5


# -- helpers ----------------------------------------------------------------------------------
def make_model(nodes, inputs, outputs, initializers=(), name: str = "test") -> onnx.ModelProto:
    graph = helper.make_graph(nodes, name, inputs, outputs, initializer=list(initializers))
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=8)


def dense_relu_model() -> onnx.ModelProto:
    """x[N, 4] -> Gemm(W[4, 3], B[3]) -> Relu -> y[N, 3]; the batch axis N is dynamic."""
    rng = np.random.default_rng(0)
    weights = numpy_helper.from_array(rng.standard_normal((4, 3)).astype(np.float32), "W")
    bias = numpy_helper.from_array(rng.standard_normal(3).astype(np.float32), "B")
    nodes = [
        helper.make_node("Gemm", ["x", "W", "B"], ["h"], name="dense"),
        helper.make_node("Relu", ["h"], ["y"], name="relu"),
    ]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 3])
    return make_model(nodes, [x], [y], [weights, bias], name="tiny")


def sample_inputs(rows: int = 1, seed: int = 1) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((rows, 4)).astype(np.float32)


def onnxruntime_outputs(model_path: Path, feed: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    session = onnxruntime.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, feed)))


def runner() -> CliRunner:
    """A runner that keeps stderr apart (click 8.2 always does; 8.1 needs mix_stderr=False)."""
    try:
        return CliRunner(mix_stderr=False)
    except TypeError:
        return CliRunner()


def invoke(*args: str | Path) -> Result:
    return runner().invoke(main, [str(a) for a in args])


def error_lines(result: Result) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("error:")]


def temp_files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def assert_refused(result: Result, *names: str, absent: tuple[Path, ...] = ()) -> str:
    """Exit 2, one `error:` line naming every one of `names`, no traceback, no file left behind.

    Returns the error line.
    """
    assert result.exit_code == 2, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    lines = error_lines(result)
    assert len(lines) == 1, result.stderr
    for name in names:
        assert name in lines[0], lines[0]
    assert "Traceback" not in result.stdout
    assert "Traceback" not in result.stderr
    for path in absent:
        assert not path.exists(), path
        assert temp_files(path.parent) == []
    return lines[0]


# -- fixtures ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def built(tmp_path_factory) -> dict[str, Path]:
    """The tiny model, its board image and one input file, shared by the read-only tests."""
    folder = tmp_path_factory.mktemp("built")
    model = folder / "tiny.onnx"
    onnx.save(dense_relu_model(), str(model))
    image = folder / "tiny.bin"
    result = invoke("compile", "--mode", "float", model, "-o", image, "--quiet")
    assert result.exit_code == 0, result.output
    inputs = folder / "x.npz"
    np.savez(inputs, x=sample_inputs())
    return {"folder": folder, "model": model, "image": image, "inputs": inputs}


@pytest.fixture
def model_path(tmp_path: Path) -> Path:
    """A fresh copy of the tiny model in this test's own folder."""
    path = tmp_path / "tiny.onnx"
    onnx.save(dense_relu_model(), str(path))
    return path


# -- compile ----------------------------------------------------------------------------------
def test_compile_writes_model_bin_next_to_the_model_and_prints_a_summary(model_path: Path) -> None:
    result = invoke("compile", "--mode", "float", model_path)
    assert result.exit_code == 0, result.output
    image = model_path.with_suffix(".bin")
    assert image.is_file()
    assert f"wrote {image} ({image.stat().st_size} bytes)" in result.stdout
    assert "mode              float" in result.stdout
    assert "machine           board" in result.stdout
    assert "input             x: 1x4 float32" in result.stdout
    assert "output            y: 1x3 float32" in result.stdout
    assert temp_files(model_path.parent) == []


def test_compile_output_option_and_quiet(model_path: Path, tmp_path: Path) -> None:
    image = tmp_path / "elsewhere.bin"
    result = invoke("compile", "--mode", "float", model_path, "-o", image, "--quiet")
    assert result.exit_code == 0, result.output
    assert image.read_bytes()[:6] == b"S2CIMG"
    assert not model_path.with_suffix(".bin").exists()
    assert result.stdout == ""


def test_compile_dump_ir_prints_the_graph(model_path: Path, tmp_path: Path) -> None:
    result = invoke("compile", "--mode", "float", model_path, "-o", tmp_path / "t.bin", "--dump-ir")
    assert result.exit_code == 0, result.output
    assert "graph @tiny(" in result.stdout


def test_compile_print_after_a_pass(model_path: Path, tmp_path: Path) -> None:
    result = invoke(
        "compile", model_path, "-o", tmp_path / "t.bin", "--print-after", "fuse-activation"
    )
    assert result.exit_code == 0, result.output
    assert "// after fuse-activation" in result.stdout
    assert 'activation = "relu"' in result.stdout


def test_compile_print_after_an_unknown_pass_is_one_line(model_path: Path, tmp_path: Path) -> None:
    image = tmp_path / "t.bin"
    result = invoke(
        "compile", "--mode", "float", model_path, "-o", image, "--print-after", "nonsense"
    )
    line = assert_refused(result, "--print-after", "'nonsense'", absent=(image,))
    assert "fuse-activation" in line  # the passes that exist


@pytest.mark.parametrize(("machine", "chips"), [("chip", 1), ("auto", 1), ("board", 48)])
def test_compile_machine_option(model_path: Path, tmp_path: Path, machine: str, chips: int) -> None:
    image = tmp_path / "t.bin"
    result = invoke(
        "compile", "--mode", "float", model_path, "-o", image, "--machine", machine, "--quiet"
    )
    assert result.exit_code == 0, result.output
    summary = json.loads(invoke("inspect", image, "--json").stdout)
    assert summary["machine"] == ("chip" if machine == "auto" else machine)
    assert summary["machine_chips"] == chips


def test_compile_batch_binds_the_dynamic_axis(model_path: Path, tmp_path: Path) -> None:
    image = tmp_path / "t.bin"
    assert (
        invoke(
            "compile", "--mode", "float", model_path, "-o", image, "--batch", "2", "--quiet"
        ).exit_code
        == 0
    )
    summary = json.loads(invoke("inspect", image, "--json").stdout)
    assert summary["inputs"][0]["shape"] == [2, 4]
    assert summary["outputs"][0]["shape"] == [2, 3]


def test_compile_batch_zero_is_a_usage_error(model_path: Path, tmp_path: Path) -> None:
    image = tmp_path / "t.bin"
    result = invoke("compile", "--mode", "float", model_path, "-o", image, "--batch", "0")
    assert result.exit_code == 2
    assert "--batch" in result.stderr
    assert "Traceback" not in result.output
    assert not image.exists()


def test_compile_refuses_to_overwrite_the_input_model(model_path: Path) -> None:
    before = model_path.read_bytes()
    result = invoke("compile", "--mode", "float", model_path, "-o", model_path)
    assert_refused(result, "overwrite", model_path.name)
    assert model_path.read_bytes() == before
    assert temp_files(model_path.parent) == []


# -- inspect ----------------------------------------------------------------------------------
def test_inspect_prints_the_summary(built) -> None:
    result = invoke("inspect", built["image"])
    assert result.exit_code == 0, result.output
    assert "input             x: 1x4 float32" in result.stdout
    assert f"image             {built['image'].stat().st_size} bytes" in result.stdout


def test_inspect_json_agrees_with_the_model_and_the_file(built) -> None:
    result = invoke("inspect", built["image"], "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["mode"] == "float"
    assert summary["machine"] == "board"
    assert 1 <= summary["chips_used"] <= summary["machine_chips"]
    assert 1 <= summary["pes_used"] <= summary["machine_pes"]
    assert sum(summary["pes_used_per_chip"].values()) == summary["pes_used"]
    # the weights and bias alone (15 floats) sit in some PE's SRAM
    assert 15 * 4 <= summary["sram_bytes_per_pe_max"] <= summary["sram_data_bytes_per_pe"]
    assert 1 <= summary["router_entries_max"] <= summary["router_capacity"]
    assert summary["inputs"] == [{"name": "x", "shape": [1, 4], "dtype": "float32", "boxes": 1}]
    assert [(o["name"], o["shape"], o["dtype"]) for o in summary["outputs"]] == [
        ("y", [1, 3], "float32")
    ]
    assert summary["image_bytes"] == built["image"].stat().st_size
    digest = hashlib.sha256(built["model"].read_bytes()).hexdigest()
    assert summary["metadata"]["model_sha256"] == digest


# -- run --------------------------------------------------------------------------------------
def test_run_writes_outputs_keyed_by_onnx_name_matching_onnxruntime(built, tmp_path) -> None:
    out = tmp_path / "y.npz"
    result = invoke("run", built["image"], "--inputs", built["inputs"], "-o", out)
    assert result.exit_code == 0, result.output
    assert f"wrote {out}" in result.stdout
    with np.load(out) as archive:
        assert archive.files == ["y"]
        ours = archive["y"]
    expected = onnxruntime_outputs(built["model"], {"x": sample_inputs()})["y"]
    assert ours.shape == expected.shape == (1, 3)
    assert ours.dtype == np.float32
    assert np.any(expected > 0)  # ReLU lets something through: the comparison means something
    np.testing.assert_allclose(ours, expected, rtol=RTOL, atol=ATOL)
    assert temp_files(tmp_path) == []


def test_run_on_two_blas_threads_gives_the_same_outputs(built, tmp_path) -> None:
    paths = {threads: tmp_path / f"y{threads}.npz" for threads in ("1", "2")}
    for threads, path in paths.items():
        result = invoke(
            "run", built["image"], "--inputs", built["inputs"], "-o", path, "--threads", threads
        )
        assert result.exit_code == 0, result.output
    with np.load(paths["1"]) as one, np.load(paths["2"]) as two:
        np.testing.assert_allclose(two["y"], one["y"], rtol=1e-5, atol=1e-6)
    bad = invoke("run", built["image"], "--threads", "0")
    assert bad.exit_code == 2 and "--threads" in bad.output


def test_run_without_inputs_uses_seeded_inputs_and_prints_outputs(built) -> None:
    result = invoke("run", built["image"])
    assert result.exit_code == 0, result.output
    assert "y: shape (1, 3) float32" in result.stdout


def test_run_a_stack_along_the_batch_axis_runs_each_sample_alone(built, tmp_path) -> None:
    stack = sample_inputs(rows=3, seed=7)
    np.savez(tmp_path / "x3.npz", x=stack)
    result = invoke(
        "run", built["image"], "--inputs", tmp_path / "x3.npz", "-o", tmp_path / "y3.npz"
    )
    assert result.exit_code == 0, result.output
    with np.load(tmp_path / "y3.npz") as archive:
        stacked = archive["y"]
    assert stacked.shape == (3, 3)
    for row in range(3):
        np.savez(tmp_path / "one.npz", x=stack[row : row + 1])
        single = tmp_path / "one_out.npz"
        alone = invoke("run", built["image"], "--inputs", tmp_path / "one.npz", "-o", single)
        assert alone.exit_code == 0, alone.output
        with np.load(single) as archive:
            np.testing.assert_allclose(stacked[row : row + 1], archive["y"], rtol=1e-6, atol=1e-7)
    expected = onnxruntime_outputs(built["model"], {"x": stack})["y"]
    np.testing.assert_allclose(stacked, expected, rtol=RTOL, atol=ATOL)


def test_run_stats_and_stats_json(built, tmp_path) -> None:
    np.savez(tmp_path / "x3.npz", x=sample_inputs(rows=3))
    stats_path = tmp_path / "stats.json"
    result = invoke(
        "run",
        built["image"],
        "--inputs",
        tmp_path / "x3.npz",
        "--stats",
        "--stats-json",
        stats_path,
    )
    assert result.exit_code == 0, result.output
    stats_line = next(line for line in result.stdout.splitlines() if line.startswith("samples="))
    counts = dict(field.split("=") for field in stats_line.split())
    assert set(counts) == {"samples", "kernels_fired", "packets", "link_hops", "macs"}
    stats = json.loads(stats_path.read_text())
    assert {k: int(v) for k, v in counts.items()} == {k: stats[k] for k in counts}
    assert stats["samples"] == 3
    assert stats["macs"] == 3 * 4 * 3  # three samples through a 4 -> 3 dense layer
    assert stats["packets"] > 0
    assert temp_files(tmp_path) == []


# -- validate and demo ------------------------------------------------------------------------
def test_validate_passes_and_prints_pass(model_path: Path) -> None:
    result = invoke("validate", "--mode", "float", model_path)
    assert result.exit_code == 0, result.output
    assert "y: max abs error" in result.stdout
    assert "PASS" in result.stdout


def test_int8_is_the_default_mode_and_warns_once_without_calib(model_path: Path) -> None:
    compiled = invoke("compile", model_path, "-o", model_path.with_suffix(".int8.bin"))
    assert compiled.exit_code == 0, compiled.output
    assert "mode              int8" in compiled.stdout
    assert compiled.stderr.count("no --calib given") == 1
    validated = invoke("validate", model_path)
    assert validated.exit_code == 0, validated.output
    assert "y: against the QDQ model: 100.00 %" in validated.stdout
    assert validated.stderr.count("no --calib given") == 1


def test_validate_json_on_a_golden_model() -> None:
    result = invoke(
        "validate",
        "--mode",
        "float",
        GOLDEN_MLP,
        "--json",
        "--inputs",
        GOLDEN_MLP.parent / "inputs.npz",
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["ok"] is True
    assert (report["rtol"], report["atol"]) == (RTOL, ATOL)
    assert [o["name"] for o in report["outputs"]] == ["logits"]
    assert all(o["ok"] and o["mismatched"] == 0 for o in report["outputs"])
    assert not GOLDEN_MLP.with_suffix(".bin").exists()  # validate writes no image


@pytest.mark.parametrize("case", ["float64 inputs", "stack of 3 on a fixed batch"])
def test_validate_inputs_that_run_accepts_give_no_internal_error(tmp_path: Path, case: str) -> None:
    shape, dtype = ((1, 64), np.float64) if case == "float64 inputs" else ((3, 64), np.float32)
    np.savez(tmp_path / "in.npz", input=np.ones(shape, dtype))
    result = invoke("validate", "--mode", "float", GOLDEN_MLP, "--inputs", tmp_path / "in.npz")
    assert result.exit_code == 0, result.output
    assert "internal error" not in result.stderr


def test_demo_runs_end_to_end(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = invoke("demo", "--output-dir", "out")
    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines()[-1] == "PASS"
    assert "float: test accuracy 97.96 % (onnxruntime fp32 97.96 %)" in result.stdout
    assert "int8: test accuracy" in result.stdout
    for mode in ("float", "int8"):
        assert (tmp_path / "out" / f"digits_{mode}.bin").is_file()
        assert (tmp_path / "out" / f"report_{mode}.html").is_file()
        with np.load(tmp_path / "out" / f"outputs_{mode}.npz") as archive:
            assert archive.files == ["logits"]
            assert archive["logits"].shape == (540, 10)
    assert temp_files(tmp_path / "out") == []


# -- bad models: exit 2, one line, no image ---------------------------------------------------
def write_truncated(folder: Path) -> Path:
    data = GOLDEN_MLP.read_bytes()
    path = folder / "truncated.onnx"
    path.write_bytes(data[: len(data) // 2])
    return path


def write_random(folder: Path) -> Path:
    path = folder / "random.onnx"
    path.write_bytes(np.random.default_rng(3).bytes(2000))
    return path


def write_checker_failure(folder: Path) -> Path:
    """A node reads a value nothing defines: the ONNX checker refuses the graph."""
    nodes = [helper.make_node("Relu", ["undefined"], ["y"], name="r")]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    path = folder / "unchecked.onnx"
    onnx.save(make_model(nodes, [x], [y]), str(path))
    return path


def write_unsupported_ops(folder: Path) -> Path:
    nodes = [
        helper.make_node("Round", ["x"], ["a"], name="round_node"),
        helper.make_node("Hardmax", ["a"], ["y"], name="hardmax_node"),
    ]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])
    path = folder / "unsupported.onnx"
    onnx.save(make_model(nodes, [x], [y]), str(path))
    return path


def write_unsupported_attribute(folder: Path) -> Path:
    node = helper.make_node(
        "MaxPool", ["x"], ["y"], name="column_major_pool", kernel_shape=[2, 2], storage_order=1
    )
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 4, 4])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1, 3, 3])
    path = folder / "pool.onnx"
    onnx.save(make_model([node], [x], [y]), str(path))
    return path


def write_external(location: Callable[[Path], str]) -> Callable[[Path], Path]:
    """A model in folder/model whose weight W lives in external data at `location(folder)`."""

    def write(folder: Path) -> Path:
        (folder / "w.bin").write_bytes(bytes(48))  # exists, but outside the model's folder
        model = dense_relu_model()
        weights = model.graph.initializer[0]
        set_external_data(weights, location=location(folder), offset=0, length=48)
        weights.ClearField("raw_data")
        weights.data_location = TensorProto.EXTERNAL
        (folder / "model").mkdir()
        path = folder / "model" / "external.onnx"
        onnx.save(model, str(path))
        return path

    return write


BAD_MODELS = {
    "missing file": (lambda folder: folder / "absent.onnx", ["absent.onnx", "no such file"]),
    "random bytes": (write_random, ["random.onnx", "not an ONNX"]),
    "truncated": (write_truncated, ["truncated.onnx", "truncated"]),
    "checker": (write_checker_failure, ["ONNX checker", "'undefined'"]),
    "two unknown ops": (
        write_unsupported_ops,
        ["2 unsupported nodes", "'round_node' (Round", "'hardmax_node' (Hardmax"],
    ),
    "attribute value": (write_unsupported_attribute, ["'column_major_pool'", "storage_order=1"]),
    "external data escapes": (
        write_external(lambda f: "../w.bin"),
        ["'W'", "'../w.bin'", "outside"],
    ),
    "external data absolute": (
        write_external(lambda f: str(f / "w.bin")),
        ["'W'", "relative path"],
    ),
}


@pytest.mark.parametrize("case", list(BAD_MODELS))
def test_compile_bad_model_is_one_line_and_writes_nothing(tmp_path: Path, case: str) -> None:
    write, names = BAD_MODELS[case]
    model = write(tmp_path)
    image = model.parent / "out.bin"
    result = invoke("compile", "--mode", "float", model, "-o", image)
    assert_refused(result, *names, absent=(image, model.with_suffix(".bin")))


def test_validate_bad_model_is_one_line(tmp_path: Path) -> None:
    result = invoke("validate", "--mode", "float", write_unsupported_ops(tmp_path))
    assert_refused(result, "'round_node'", "'hardmax_node'")


# -- bad inputs to run ------------------------------------------------------------------------
BAD_INPUTS = {
    "missing entry": ({"z": np.ones((1, 4), np.float32)}, ["'x'", "z"]),
    "wrong shape": ({"x": np.ones((1, 5), np.float32)}, ["'x'", "(1, 5)", "(1, 4)"]),
    "ragged stack": ({"x": np.ones((3, 4, 1), np.float32)}, ["'x'", "(3, 4, 1)"]),
    "wrong dtype": ({"x": np.ones((1, 4), np.complex64)}, ["'x'", "complex64", "float32"]),
    "strings": ({"x": np.array([["a"] * 4])}, ["'x'", "float32"]),
}


@pytest.mark.parametrize("case", list(BAD_INPUTS))
def test_run_bad_inputs_are_one_line_and_write_nothing(built, tmp_path: Path, case: str) -> None:
    arrays, names = BAD_INPUTS[case]
    np.savez(tmp_path / "in.npz", **arrays)
    out = tmp_path / "y.npz"
    result = invoke("run", built["image"], "--inputs", tmp_path / "in.npz", "-o", out)
    assert_refused(result, *names, absent=(out,))


def test_run_inputs_file_that_is_not_an_npz(built, tmp_path: Path) -> None:
    out = tmp_path / "y.npz"
    result = invoke("run", built["image"], "--inputs", built["model"], "-o", out)
    assert_refused(result, "tiny.onnx", "npz", absent=(out,))


def test_run_missing_inputs_file(built, tmp_path: Path) -> None:
    out = tmp_path / "y.npz"
    result = invoke("run", built["image"], "--inputs", tmp_path / "absent.npz", "-o", out)
    assert_refused(result, "absent.npz", "no such file", absent=(out,))


def test_run_output_into_a_missing_folder_is_one_line(built, tmp_path: Path) -> None:
    out = tmp_path / "absent" / "y.npz"
    result = invoke("run", built["image"], "--inputs", built["inputs"], "-o", out)
    assert_refused(result, "cannot write", "y.npz")
    assert not out.parent.exists()


# -- bad images -------------------------------------------------------------------------------
def truncate(data: bytearray) -> bytes:
    return bytes(data[: len(data) // 2])


def flip_last_byte(data: bytearray) -> bytes:
    data[-1] ^= 0xFF
    return bytes(data)


def flip_digest_byte(data: bytearray) -> bytes:
    data[0x30] ^= 0xFF
    return bytes(data)


def bump_major_version(data: bytearray) -> bytes:
    """format_major (u16 at 0x08) set to 2; the SHA-256 (0x20..0x3F) recomputed to match."""
    struct.pack_into("<H", data, 0x08, 2)
    data[0x20:0x40] = bytes(32)
    data[0x20:0x40] = hashlib.sha256(data).digest()
    return bytes(data)


BAD_IMAGES = {
    "truncated": (truncate, ["image truncated"]),
    "flipped payload byte": (flip_last_byte, ["image corrupted", "checksum mismatch"]),
    "flipped digest byte": (flip_digest_byte, ["image corrupted", "SHA-256"]),
    "major version": (bump_major_version, ["format version 2.0", "1.x"]),
    "empty": (lambda data: b"", ["empty"]),
    "not an image": (lambda data: b"PK\x03\x04" + bytes(100), ["not an s2c image", "magic"]),
}


@pytest.mark.parametrize("command", ["run", "inspect"])
@pytest.mark.parametrize("case", list(BAD_IMAGES))
def test_bad_image_is_one_line(built, tmp_path: Path, case: str, command: str) -> None:
    corrupt, names = BAD_IMAGES[case]
    image = tmp_path / "bad.bin"
    image.write_bytes(corrupt(bytearray(built["image"].read_bytes())))
    out = tmp_path / "y.npz"
    args = ["--inputs", built["inputs"], "-o", out] if command == "run" else []
    result = invoke(command, image, *args)
    assert_refused(result, *names, absent=(out,))


def test_bumped_version_still_passes_the_digest_check(built) -> None:
    """The version test above really exercises the version check, not the SHA-256 one."""
    data = bytearray(bump_major_version(bytearray(built["image"].read_bytes())))
    stored = bytes(data[0x20:0x40])
    data[0x20:0x40] = bytes(32)
    assert hashlib.sha256(data).digest() == stored


def test_run_missing_image(tmp_path: Path) -> None:
    out = tmp_path / "y.npz"
    assert_refused(invoke("run", tmp_path / "absent.bin", "-o", out), "absent.bin", absent=(out,))


# -- atomic writes ----------------------------------------------------------------------------
def failing(exception: BaseException) -> Callable[..., None]:
    def fail(*args, **kwargs) -> None:
        raise exception

    return fail


WRITE_FAILURES = {
    "fsync fails": ("fsync", OSError(28, "No space left on device"), 2),
    "replace fails": ("replace", OSError(13, "Permission denied"), 2),
    "interrupt during fsync": ("fsync", KeyboardInterrupt(), 130),
    "interrupt during replace": ("replace", KeyboardInterrupt(), 130),
}


@pytest.mark.parametrize("case", list(WRITE_FAILURES))
def test_compile_write_failure_leaves_no_partial_image(
    model_path: Path, monkeypatch: pytest.MonkeyPatch, case: str
) -> None:
    function, exception, code = WRITE_FAILURES[case]
    folder = model_path.parent
    kept = folder / "kept.bin"
    kept.write_bytes(b"previous image")
    fresh = folder / "fresh.bin"
    monkeypatch.setattr(os, function, failing(exception))
    for image in (kept, fresh):
        result = invoke("compile", "--mode", "float", model_path, "-o", image)
        assert result.exit_code == code, result.output
        assert len(error_lines(result)) == 1
        assert "Traceback" not in result.output
    monkeypatch.undo()
    assert kept.read_bytes() == b"previous image"
    assert not fresh.exists()
    assert temp_files(folder) == []


@pytest.mark.parametrize("case", list(WRITE_FAILURES))
def test_run_write_failure_leaves_no_partial_output(
    built, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, case: str
) -> None:
    function, exception, code = WRITE_FAILURES[case]
    out = tmp_path / "y.npz"
    stats = tmp_path / "stats.json"
    monkeypatch.setattr(os, function, failing(exception))
    result = invoke("run", built["image"], "--inputs", built["inputs"], "-o", out)
    stats_result = invoke("run", built["image"], "--inputs", built["inputs"], "--stats-json", stats)
    monkeypatch.undo()
    for each in (result, stats_result):
        assert each.exit_code == code, each.output
        assert len(error_lines(each)) == 1
        assert "Traceback" not in each.output
        if code == 2:
            assert "cannot write" in error_lines(each)[0]
    assert not out.exists()
    assert not stats.exists()
    assert temp_files(tmp_path) == []


# -- a real process ---------------------------------------------------------------------------
def test_real_process_prints_one_error_line_and_no_traceback(tmp_path: Path) -> None:
    model = write_truncated(tmp_path)
    image = tmp_path / "out.bin"
    path = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    env = {**os.environ, "PYTHONPATH": path}
    process = subprocess.run(
        [sys.executable, "-m", "s2c.cli", "compile", str(model), "-o", str(image)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        timeout=120,
        check=False,
    )
    assert process.returncode == 2, process.stderr
    assert process.stdout == ""
    assert process.stderr.splitlines() == [
        f"error: cannot parse '{model}': not an ONNX protobuf file, or truncated"
    ]
    assert not image.exists()
    assert temp_files(tmp_path) == []
