"""`s2c demo`: the bundled example, end to end.

The bundled model is the golden case `conv_pool_dense` (conv, ReLU, max pool, strided conv, dense;
made by `golden/make_golden.py`) with its seeded input. The demo compiles it for one 48-chip
board, writes the image, runs the image in the interpreter, writes the outputs, and compares them
with onnxruntime on the same input.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import resources
from pathlib import Path

from backend.image import write_image
from s2c.driver import CompileOptions, compile_model
from s2c.files import read_npz, write_npz
from s2c.summary import format_summary, summarise
from s2c.validate import (
    DEFAULT_ATOL,
    DEFAULT_RTOL,
    compare,
    interpreter_outputs,
    run_onnxruntime,
)

# The files the demo writes into its output folder: the image and the interpreter's outputs.
IMAGE_NAME = "demo.bin"
OUTPUTS_NAME = "outputs.npz"
OUTPUT_FILES = (IMAGE_NAME, OUTPUTS_NAME)


def run_demo(output_dir: Path, echo: Callable[[str], None]) -> int:
    """Run the demo; returns the exit code (0 when the image agrees with onnxruntime)."""
    files = resources.files("s2c.demo")
    with (
        resources.as_file(files / "model.onnx") as model,
        resources.as_file(files / "inputs.npz") as inputs_path,
    ):
        output_dir.mkdir(parents=True, exist_ok=True)
        image_path = output_dir / IMAGE_NAME
        echo(f"compiling {model.name} for one 48-chip board (float mode)")
        result = compile_model(model, CompileOptions(mode="float"), emit=echo)
        size = write_image(result.program, image_path)
        echo(f"wrote {image_path} ({size} bytes)")
        echo(format_summary(summarise(result.program, size)))
        inputs = read_npz(inputs_path)
        outputs, stats = interpreter_outputs(image_path.read_bytes(), inputs)
        write_npz(output_dir / OUTPUTS_NAME, outputs)
        echo(
            f"ran the image: {stats.packets} packets, {stats.link_hops} link hops, "
            f"{stats.macs} MACs; wrote {output_dir / OUTPUTS_NAME}"
        )
        expected = run_onnxruntime(str(model), inputs)
    ok = True
    for name, reference in expected.items():
        comparison = compare(name, reference, outputs[name], DEFAULT_RTOL, DEFAULT_ATOL)
        ok &= comparison.ok
        echo(
            f"{name}: max abs error vs onnxruntime {comparison.max_abs_error:.3g} "
            f"({'ok' if comparison.ok else 'FAIL'})"
        )
    echo("PASS" if ok else "FAIL")
    return 0 if ok else 1
