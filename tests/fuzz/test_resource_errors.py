"""Models too large for the chosen machine: one line naming the resource, the need, what exists,
and a machine that would fit."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import onnx
import pytest
from cli_runner import invoke
from fuzz_limits import COMPILE_SECONDS, time_limit
from onnx import TensorProto, helper

from golden.cases import build_model


def error_line(result) -> str:
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, result.stderr
    return lines[0]


@pytest.fixture(scope="module")
def multi_chip(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("multi_chip") / "multi_chip.onnx"
    onnx.save(build_model("multi_chip"), str(path))
    return path


def test_multi_chip_on_one_chip_names_pes_needed_and_available_and_a_machine(multi_chip, tmp_path):
    image = tmp_path / "out.bin"
    line = error_line(
        invoke("compile", "--mode", "float", multi_chip, "--machine", "chip", "-o", image)
    )
    needed = re.search(r"needs (\d+) PEs", line)
    assert needed and int(needed[1]) > 148, line
    assert "machine 'chip' has 148" in line
    assert "--machine board" in line
    assert not image.exists()
    # The suggestion is right: the board holds it.
    assert (
        invoke(
            "compile", "--mode", "float", multi_chip, "--machine", "board", "-o", image
        ).exit_code
        == 0
    )


def relu_model(path: Path, elements: int) -> Path:
    node = helper.make_node("Relu", ["x"], ["y"], name="relu")
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, elements])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, elements])
    graph = helper.make_graph([node], "wide", [x], [y])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


def test_a_result_larger_than_the_machine_names_bytes_and_a_machine(tmp_path):
    """10 M floats (40 MB) exceed the 148 PEs x 92 KiB of one chip; a board holds them."""
    model = relu_model(tmp_path / "wide.onnx", 10_000_000)
    line = error_line(
        invoke("compile", "--mode", "float", model, "--machine", "chip", "-o", tmp_path / "o.bin")
    )
    for words in ("'relu' (activation)", "'y'", "needs 40000000 bytes of SRAM"):
        assert words in line, line
    capacity = 148 * (128 - 32 - 4) * 1024
    assert f"machine 'chip' has {capacity} bytes (148 PEs x 94208 bytes" in line
    assert line.endswith("use a bigger machine, e.g. --machine board"), line


@pytest.mark.parametrize("machine", ["board", "auto"])
def test_a_result_no_machine_holds_says_so(tmp_path, machine):
    model = relu_model(tmp_path / "huge.onnx", 1 << 40)
    line = error_line(
        invoke("compile", "--mode", "float", model, "--machine", machine, "-o", tmp_path / "o.bin")
    )
    assert f"needs {4 << 40} bytes of SRAM" in line
    assert line.endswith("no machine of up to 720 boards is large enough"), line


def test_the_largest_result_is_the_one_named(tmp_path):
    """Two results too large: the message names the larger, so the fix addresses both."""
    nodes = [
        helper.make_node("Relu", ["x"], ["a"], name="small"),
        helper.make_node("Concat", ["a", "a"], ["y"], name="large", axis=1),
    ]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 5_000_000])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 10_000_000])
    graph = helper.make_graph(nodes, "two", [x], [y])
    model = tmp_path / "two.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(model))
    line = error_line(
        invoke("compile", "--mode", "float", model, "--machine", "chip", "-o", tmp_path / "o.bin")
    )
    assert "'large' (concat)" in line and f"needs {np.float32().nbytes * 10_000_000} bytes" in line


def test_an_input_larger_than_an_image_carries_is_refused_at_compile_time(tmp_path):
    """80 M floats (320 MB) as input, of which Slice keeps 10: no result is large, so the SRAM
    check passes, but the image's limit for I/O tensors (256 MiB) does not."""
    starts, ends, axes = (
        helper.make_tensor(name, TensorProto.INT64, [1], [value])
        for name, value in (("s", 0), ("e", 10), ("a", 1))
    )
    node = helper.make_node("Slice", ["x", "s", "e", "a"], ["y"], name="head")
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 80_000_000])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 10])
    graph = helper.make_graph([node], "slice", [x], [y], [starts, ends, axes])
    model = tmp_path / "slice.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(model))
    line = error_line(invoke("compile", "--mode", "float", model, "-o", tmp_path / "o.bin"))
    assert "graph input 'x'" in line and "needs 320000000 bytes per inference" in line, line
    assert line.endswith("an image carries inputs and outputs of up to 268435456 bytes each")


def test_a_layer_of_a_billion_rows_is_refused_quickly_naming_the_layer(tmp_path):
    """Expand to 2^30 rows, then a reduction over them, on the largest machine: the rows fit
    the SRAM of 720 boards, but the reduction reads a whole column of them into one PE. The
    partitioner's search is logarithmic in the rows and plans every layer before cutting any, so
    the error comes at once (the time limit turns a regression into a hang into a failure)."""
    rows = 1 << 30
    shape = helper.make_tensor("shape", TensorProto.INT64, [3], [1, rows, 2])
    nodes = [
        helper.make_node("Expand", ["x", "shape"], ["e"], name="expand"),
        helper.make_node("Relu", ["e"], ["r"], name="relu"),
        helper.make_node("ReduceMax", ["r"], ["y"], name="reduce", axes=[1], keepdims=1),
    ]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 1, 2])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 1, 2])
    graph = helper.make_graph(nodes, "rows", [x], [y], [shape])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    path = tmp_path / "rows.onnx"
    onnx.save(model, str(path))
    output = tmp_path / "o.bin"
    with time_limit(COMPILE_SECONDS):
        line = error_line(
            invoke("compile", path, "--mode", "float", "--machine", "auto", "-o", output)
        )
    assert "'reduce' (reduce)" in line, line
    need = int(re.search(r"needs (\d+) bytes", line).group(1))
    # the smallest slice keeps one of the two kept columns: its 2^30 rows, plus a descriptor
    assert rows * 4 <= need <= rows * 4 + 1024, line
    assert "a PE has 94208 for data" in line, line
    # int8 mode calibrates first: it refuses to evaluate the 2^31-element tensor on the host.
    with time_limit(COMPILE_SECONDS):
        line = error_line(invoke("compile", path, "--machine", "auto", "-o", output))
    assert "'expand' (expand): calibration would evaluate" in line, line
    assert f"({rows * 2} elements); the limit is {1 << 27} elements per tensor" in line, line
