"""int8 recurrent classifiers against fp32: cosine similarity of logits and top-1 agreement.

For the GRU and LSTM classifiers of golden/ (made by golden/make_recurrent.py), calibrated on
CALIBRATION seeded task sequences (`golden.recurrent.task_sequences`, seed 1000), this runs
SAMPLES other seeded sequences (seed 2000) through s2c's int8 image in the interpreter and the
fp32 model in onnxruntime, and prints per model: the mean and the smallest cosine similarity
between the two logit vectors of an input, the top-1 agreement, and both accuracies on the task
labels. Issue figures (GRU): cosine >= 0.99 (mean over the inputs) and agreement >= 95 %.
`--lut` is not an option: the int8 kernels compute the gate non-linearities in fp32 (see
docs/numerics.md), so the whole error measured here is that of int8 weights, inputs and the
int8 hidden state exchanged at every step.

    python benchmarks/recurrent.py [--samples 200]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnxruntime as ort

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from backend.image import encode_image  # noqa: E402
from golden.recurrent import CLASSIFIERS, GOLDEN_DIR, task_sequences  # noqa: E402
from s2c.driver import CompileOptions, compile_model  # noqa: E402
from s2c.validate import interpreter_outputs  # noqa: E402

CALIBRATION, CALIBRATION_SEED, EVALUATION_SEED = 64, 1000, 2000


def int8_logits(model: Path, calibration: np.ndarray, x: np.ndarray) -> np.ndarray:
    """s2c's int8 image of `model`, calibrated on `calibration`, run on every row of x."""
    with tempfile.TemporaryDirectory() as folder:
        calib = Path(folder) / "calib.npz"
        np.savez(calib, input=calibration)
        options = CompileOptions(mode="int8", calib=str(calib))
        result = compile_model(model, options, emit=lambda t: None, warn=lambda t: None)
    outputs, _ = interpreter_outputs(encode_image(result.program), {"input": x})
    return outputs["logits"]


def float_logits(model: Path, x: np.ndarray) -> np.ndarray:
    """onnxruntime's fp32 logits, one run per sequence (the model's batch is 1)."""
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    return np.concatenate([session.run(None, {"input": row[None]})[0] for row in x])


def cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine similarity of each row of a with the same row of b."""
    dot = (a * b).sum(axis=1)
    return dot / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1))


def measure(case: str, samples: int) -> dict[str, float]:
    """The figures of one classifier."""
    model = GOLDEN_DIR / case / "model.onnx"
    calibration, _ = task_sequences(CALIBRATION, seed=CALIBRATION_SEED)
    x, labels = task_sequences(samples, seed=EVALUATION_SEED)
    reference = float_logits(model, x)
    quantised = int8_logits(model, calibration, x)
    similarity = cosines(quantised.astype(np.float64), reference.astype(np.float64))
    return {
        "cosine_mean": float(similarity.mean()),
        "cosine_min": float(similarity.min()),
        "top1_agreement": float((quantised.argmax(1) == reference.argmax(1)).mean()),
        "fp32_accuracy": float((reference.argmax(1) == labels).mean()),
        "int8_accuracy": float((quantised.argmax(1) == labels).mean()),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=200, help="evaluation sequences")
    args = parser.parse_args(argv)
    print(f"{args.samples} seeded sequences, calibrated on {CALIBRATION} others")
    columns = ("cos mean", "cos min", "top-1 agr", "fp32 acc", "int8 acc")
    print(f"{'model':16s} " + " ".join(f"{c:>9s}" for c in columns))
    for case in CLASSIFIERS:
        f = measure(case, args.samples)
        print(
            f"{case:16s} {f['cosine_mean']:9.5f} {f['cosine_min']:9.5f} "
            f"{f['top1_agreement']:9.1%} {f['fp32_accuracy']:9.1%} {f['int8_accuracy']:9.1%}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
