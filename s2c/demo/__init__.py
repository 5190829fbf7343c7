"""`s2c demo`: the bundled digits classifier, end to end, in every mode in `DEMO_MODES`.

The bundled model is the digits CNN of `golden/digits` (Conv-ReLU x2, AvgPool, Conv-ReLU,
AvgPool, Gemm; trained by `golden/train_digits.py`), with its held-out test set (540 images and
labels) and its calibration samples, copied here as package data: `digits_cnn.onnx`,
`digits_test.npz` (`input`, `labels`), `digits_calib.npz`. For each mode the demo compiles the
model for one 48-chip board, writes the image, runs the whole test set through the image in the
interpreter, writes the outputs, compares the accuracy with onnxruntime's on the fp32 model, prints
the cost model's latency and energy per inference, and writes a report (`s2c report`).

It passes when float mode's logits agree with onnxruntime's (the validate tolerance) and every
other mode's accuracy is within its `accuracy_drop` (default `ACCURACY_DROP`) of onnxruntime's.
A new mode is one more `DemoMode` in `DEMO_MODES`. The spiking mode's estimate and report take
the spikes and synaptic events its run over the test set counted.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np

from backend.cost import estimate
from backend.image import decode_image, write_image
from backend.snn_interpreter import SpikeStats
from s2c.driver import CompileOptions, compile_model
from s2c.files import atomic_write_bytes, read_npz, write_npz
from s2c.progress import silent
from s2c.report import build_report
from s2c.report_html import render_html
from s2c.summary import format_joules, format_seconds
from s2c.validate import (
    DEFAULT_ATOL,
    DEFAULT_RTOL,
    compare,
    interpreter_outputs,
    run_onnxruntime,
)

MODEL = "digits_cnn.onnx"
TEST_SET = "digits_test.npz"
CALIBRATION = "digits_calib.npz"
ACCURACY_DROP = 0.01  # a quantised mode may lose at most 1 point of test accuracy
SNN_TIMESTEPS = 32  # docs/snn.md: within 0.3 points of fp32 on the digits CNN from T = 32


@dataclass(frozen=True)
class DemoMode:
    """One mode the demo compiles: CompileOptions fields; `calibrated` adds the calib file;
    `accuracy_drop` is the test accuracy it may lose against onnxruntime's fp32 model (float
    mode must match onnxruntime's logits instead)."""

    mode: str
    options: dict = field(default_factory=dict)
    calibrated: bool = False
    accuracy_drop: float = ACCURACY_DROP

    def files(self) -> tuple[str, str, str]:
        """Image, outputs and report file names, in the order they are written."""
        return f"digits_{self.mode}.bin", f"outputs_{self.mode}.npz", f"report_{self.mode}.html"


DEMO_MODES = (
    DemoMode("float"),
    DemoMode("int8", calibrated=True),
    DemoMode("snn", {"timesteps": SNN_TIMESTEPS}, calibrated=True),
)
OUTPUT_FILES = tuple(name for mode in DEMO_MODES for name in mode.files())


def run_demo(
    output_dir: Path, echo: Callable[[str], None], progress: Callable[[str], None] | None = None
) -> int:
    """Run the demo; returns the exit code (0 when every mode passes)."""
    progress = progress or silent()
    files = resources.files("s2c.demo")
    with (
        resources.as_file(files / MODEL) as model,
        resources.as_file(files / TEST_SET) as test_path,
        resources.as_file(files / CALIBRATION) as calibration,
    ):
        output_dir.mkdir(parents=True, exist_ok=True)
        test = read_npz(test_path)
        reference: dict[str, np.ndarray] = {}
        ok = True
        for demo_mode in DEMO_MODES:
            ok &= _run_mode(
                demo_mode, model, calibration, test, reference, output_dir, echo, progress
            )
    echo("PASS" if ok else "FAIL")
    return 0 if ok else 1


def _run_mode(demo_mode, model, calibration, test, reference, output_dir, echo, progress) -> bool:
    """Compile, run, compare and report one mode; True when it passes."""
    image_name, outputs_name, report_name = demo_mode.files()
    options = dict(demo_mode.options, mode=demo_mode.mode)
    if demo_mode.calibrated:
        options["calib"] = str(calibration)
    echo(f"== {demo_mode.mode}: compiling {MODEL} for one 48-chip board")
    result = compile_model(model, CompileOptions(**options), emit=echo, progress=progress)
    image_path = output_dir / image_name
    size = write_image(result.program, image_path)
    data = image_path.read_bytes()
    logits, stats = _run_test_set(data, test["input"], progress)
    write_npz(output_dir / outputs_name, {"logits": logits})
    if not reference:  # onnxruntime on the fp32 model, once
        reference.update(run_onnxruntime(str(model), {"input": test["input"]}))
    ok = _compare(demo_mode, logits, reference["logits"], test["labels"], echo)
    program = decode_image(data)
    activity = stats.activity() if isinstance(stats, SpikeStats) else None
    cost = estimate(program, activity)
    top = cost.levels[-1]
    echo(
        f"{demo_mode.mode}: image {size} bytes, {cost.chips_used} chip, {cost.pes_used} PEs; "
        f"estimate at {top.clock_hz / 1e6:g} MHz: latency {format_seconds(top.latency_seconds)}, "
        f"{format_joules(top.energy_joules)} per inference "
        f"({format_joules(top.dynamic_joules)} above idle)"
    )
    html = render_html(build_report(program, image_name, size, activity=activity))
    atomic_write_bytes(output_dir / report_name, html.encode("utf-8"))
    echo(f"wrote {image_path}, {output_dir / outputs_name}, {output_dir / report_name}")
    return ok


def _run_test_set(data: bytes, images: np.ndarray, progress):
    """The image's logits for every test image (in chunks, announced to `progress`), and the
    run's counts."""
    outputs, stats = interpreter_outputs(data, {"input": images}, progress)
    return outputs["logits"], stats


def _compare(demo_mode: DemoMode, logits, reference, labels, echo) -> bool:
    """Print accuracy against onnxruntime's; float must match it element-wise."""
    mode = demo_mode.mode
    accuracy = float((logits.argmax(axis=1) == labels).mean())
    expected = float((reference.argmax(axis=1) == labels).mean())
    agree = float((logits.argmax(axis=1) == reference.argmax(axis=1)).mean())
    echo(
        f"{mode}: test accuracy {100 * accuracy:.2f} % (onnxruntime fp32 {100 * expected:.2f} %); "
        f"same class as onnxruntime on {100 * agree:.2f} % of {len(labels)} images"
    )
    if mode == "float":
        comparison = compare("logits", reference, logits, DEFAULT_RTOL, DEFAULT_ATOL)
        echo(f"float: max abs error vs onnxruntime {comparison.max_abs_error:.3g}")
        return comparison.ok
    return accuracy >= expected - demo_mode.accuracy_drop
