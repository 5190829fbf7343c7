"""Spiking (snn mode) accuracy and simulation cost on the digits test set.

For the digits CNN and MLP (golden/digits/, made by golden/train_digits.py) this prints the test
accuracy (all 540 samples) of: the fp32 model in onnxruntime; s2c's int8 image; s2c's snn image
at T = 8, 16, 32, 64, 128 (per-channel thresholds at the 99.9th percentile, constant-current
input, membrane readout; calibrated on golden/digits/calib_*.npz). Then the variants:
per-layer thresholds and Poisson input at T = 32, bias correction at T = 16, Poisson input at
T = 128, and for the CNN a max-pool version (its average pools replaced by max pools, same
weights) whose fp32 accuracy is the reference for the cost of max-pool gating.

Simulation cost: the wall time of the snn image's T steps over the test set against the float
image's single run of the same network in the same interpreter (best of 2 against best of 5, to
damp the noise of a shared host; issue target: <= 1.5 x T), and
onnxruntime's time for the same samples as a yardstick. Synaptic events per second are the
interpreter's own count over its run time.

    python benchmarks/snn_accuracy.py [--quick]
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from backend.image import decode_image, encode_image  # noqa: E402
from backend.interpreter import Interpreter  # noqa: E402
from s2c.driver import CompileOptions, compile_model  # noqa: E402
from s2c.validate import run_onnxruntime  # noqa: E402

DIGITS = ROOT / "golden" / "digits"
TIMESTEPS = (8, 16, 32, 64, 128)


def accuracy(logits: np.ndarray, labels: np.ndarray) -> float:
    return float((logits.argmax(axis=1) == labels).mean())


def interpreter(model: Path | onnx.ModelProto, options: CompileOptions) -> Interpreter:
    result = compile_model(model, options, emit=lambda t: None, warn=lambda t: None)
    return Interpreter(decode_image(encode_image(result.program)))


def timed_run(machine: Interpreter, x: np.ndarray) -> tuple[np.ndarray, float, object]:
    start = time.perf_counter()
    outputs, stats = machine.run({"input": x[:, None]})  # (samples, batch 1, ...)
    return outputs["logits"].reshape(len(x), -1), time.perf_counter() - start, stats


def fp32_logits(model: str, x: np.ndarray) -> tuple[np.ndarray, float]:
    """onnxruntime on the whole batch in one call (session creation included in the time)."""
    start = time.perf_counter()
    logits = run_onnxruntime(model, {"input": x})["logits"]
    return logits, time.perf_counter() - start


def max_pool_variant(model_path: Path) -> onnx.ModelProto:
    """The model with every AveragePool replaced by a MaxPool of the same window."""
    model = onnx.load(model_path)
    for node in model.graph.node:
        if node.op_type == "AveragePool":
            node.op_type = "MaxPool"
            kept = [a for a in node.attribute if a.name != "count_include_pad"]
            del node.attribute[:]
            node.attribute.extend(kept)
    return model


def snn(name: str, timesteps: int, **extra) -> CompileOptions:
    return CompileOptions(
        mode="snn", calib=str(DIGITS / f"calib_{name}.npz"), timesteps=timesteps, **extra
    )


def measure(name: str, timesteps: tuple[int, ...]) -> None:
    test = np.load(DIGITS / "test.npz")
    x, labels = test[f"input_{name}"], test["labels"]
    model = DIGITS / f"{name}.onnx"
    fp32, ort_seconds = fp32_logits(str(model), x)
    int8, _, _ = timed_run(
        interpreter(model, CompileOptions(mode="int8", calib=str(DIGITS / f"calib_{name}.npz"))), x
    )
    float_machine = interpreter(model, CompileOptions())
    float_seconds = min(timed_run(float_machine, x)[1] for _ in range(5))  # best of 5
    base = accuracy(fp32, labels)
    print(
        f"\n{name}: fp32 {100 * base:.2f} %, s2c int8 {100 * accuracy(int8, labels):.2f} % "
        f"({len(labels)} test samples)"
    )
    print(
        f"float interpreter {1000 * float_seconds:.1f} ms (best of 5), "
        f"onnxruntime {1000 * ort_seconds:.1f} ms (one batched call)"
    )
    print("    T   snn acc  vs fp32   snn time  time/(T x float)  spikes/sample  syn. events/s")
    for steps in timesteps:
        machine = interpreter(model, snn(name, steps))
        logits, seconds, stats = timed_run(machine, x)
        seconds = min(seconds, timed_run(machine, x)[1])  # best of 2
        acc = accuracy(logits, labels)
        print(
            f"{steps:>5} {100 * acc:>8.2f}% {100 * (acc - base):>+7.2f}  {seconds:>8.3f}s "
            f"{seconds / (steps * float_seconds):>17.2f}  {stats.spikes / len(labels):>13.0f}"
            f"  {stats.synaptic_events_per_second:>13.3g}"
        )
    variants = {
        "per-layer thresholds": (model, snn(name, 32, snn_per_layer=True)),
        "bias correction, T=16": (model, snn(name, 16, snn_bias_correction=True)),
        "Poisson input": (model, snn(name, 32, snn_encoding="poisson")),
        "Poisson input, T=128": (model, snn(name, 128, snn_encoding="poisson")),
    }
    for label, (source, options) in variants.items():
        logits, _, _ = timed_run(interpreter(source, options), x)
        print(f"T={options.timesteps:<4} {label}: {100 * accuracy(logits, labels):.2f} %")
    if name == "cnn":
        pooled = max_pool_variant(model)
        with tempfile.TemporaryDirectory() as folder:
            path = Path(folder) / "cnn_maxpool.onnx"
            onnx.save(pooled, path)
            reference, _ = fp32_logits(str(path), x)
            print(f"max-pool variant: fp32 {100 * accuracy(reference, labels):.2f} %")
            for steps in (8, 16, 32, 64):
                logits, _, _ = timed_run(interpreter(path, snn(name, steps)), x)
                agree = float((logits.argmax(1) == reference.argmax(1)).mean())
                print(
                    f"  T={steps:<4} max-pool gating: {100 * accuracy(logits, labels):.2f} %, "
                    f"top-1 agreement with fp32 {100 * agree:.2f} %"
                )


def main() -> None:
    timesteps = TIMESTEPS[:2] if "--quick" in sys.argv else TIMESTEPS
    for name in ("mlp", "cnn"):
        measure(name, timesteps)


if __name__ == "__main__":
    main()
