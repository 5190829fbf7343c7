"""int8 figures of the golden transformer encoder: cosine similarity and top-1 agreement.

The model and data are golden/transformer/ (made by golden/make_transformer.py). s2c compiles it
in int8, calibrated on golden/transformer/calib.npz (64 seeded sequences), and the interpreter
runs the 200 seeded sequences of eval.npz; the fp32 logits come from onnxruntime on the same
sequences. Printed: the cosine similarity of each sequence's int8 logits with its fp32 logits
(mean and minimum over the 200), the cosine of all logits taken as one vector, the top-1
agreement with fp32 and both accuracies on the task's labels. Issue figures: cosine >= 0.99
and top-1 agreement >= 95 %.

    python benchmarks/transformer_int8.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from backend.image import encode_image  # noqa: E402
from s2c.driver import CompileOptions, compile_model  # noqa: E402
from s2c.validate import interpreter_outputs, run_onnxruntime  # noqa: E402

CASE = ROOT / "golden" / "transformer"


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine similarity of the rows of a and b."""
    dot = (a * b).sum(axis=-1)
    return dot / (np.linalg.norm(a, axis=-1) * np.linalg.norm(b, axis=-1))


def int8_logits(tokens: np.ndarray) -> np.ndarray:
    options = CompileOptions(mode="int8", calib=str(CASE / "calib.npz"))
    result = compile_model(CASE / "model.onnx", options, emit=lambda t: None, warn=lambda t: None)
    outputs, _ = interpreter_outputs(encode_image(result.program), {"tokens": tokens})
    return outputs["logits"]


def fp32_logits(tokens: np.ndarray) -> np.ndarray:
    rows = [run_onnxruntime(CASE / "model.onnx", {"tokens": t[None]}) for t in tokens]
    return np.concatenate([row["logits"] for row in rows])


def figures(count: int = 200) -> dict[str, float]:
    """The int8 figures over the first `count` evaluation sequences."""
    data = np.load(CASE / "eval.npz")
    tokens, labels = data["tokens"][:count], data["labels"][:count]
    quantised, reference = int8_logits(tokens), fp32_logits(tokens)
    per_sequence = cosine(quantised, reference)
    return {
        "sequences": float(len(tokens)),
        "cosine_mean": float(per_sequence.mean()),
        "cosine_min": float(per_sequence.min()),
        "cosine_all": float(cosine(quantised.reshape(-1), reference.reshape(-1))),
        "top1_agreement": float((quantised.argmax(1) == reference.argmax(1)).mean()),
        "accuracy_fp32": float((reference.argmax(1) == labels).mean()),
        "accuracy_int8": float((quantised.argmax(1) == labels).mean()),
    }


def main() -> int:
    result = figures()
    print(f"golden/transformer, {int(result['sequences'])} seeded sequences, int8 vs fp32")
    print(f"  cosine of logits, mean per sequence   {result['cosine_mean']:.5f}  (figure >= 0.99)")
    print(f"  cosine of logits, worst sequence      {result['cosine_min']:.5f}")
    print(f"  cosine of all logits as one vector    {result['cosine_all']:.5f}")
    print(f"  top-1 agreement with fp32             {100 * result['top1_agreement']:.1f} %"
          "  (figure >= 95 %)")  # fmt: skip
    print(f"  task accuracy fp32 / int8             {100 * result['accuracy_fp32']:.1f} % / "
          f"{100 * result['accuracy_int8']:.1f} %")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
