"""int8 accuracy on the digits test set: s2c against fp32 and onnxruntime's quantize_static.

For the digits CNN and MLP (golden/digits/, made by golden/train_digits.py) this prints the test
accuracy of: the fp32 model in onnxruntime; s2c's int8 image run in the interpreter (calibrated on
golden/digits/calib_*.npz); onnxruntime's `quantize_static` model (QDQ, per-channel, MinMax, the
same calibration samples) run in onnxruntime. Issue figures: s2c int8 >= fp32 - 0.5 points and
>= quantize_static - 0.2 points.

    python benchmarks/digits_int8.py
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np
import onnx
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from backend.image import encode_image  # noqa: E402
from s2c.driver import CompileOptions, compile_model  # noqa: E402
from s2c.validate import interpreter_outputs, run_onnxruntime  # noqa: E402

DIGITS = ROOT / "golden" / "digits"


class _Reader(CalibrationDataReader):
    def __init__(self, samples: np.ndarray) -> None:
        self.samples = iter(samples)

    def get_next(self):
        sample = next(self.samples, None)
        return None if sample is None else {"input": sample[None]}


def accuracy(logits: np.ndarray, labels: np.ndarray) -> float:
    return float((logits.argmax(axis=1) == labels).mean())


def s2c_int8_logits(model_path: Path, calib: Path, x: np.ndarray) -> np.ndarray:
    options = CompileOptions(mode="int8", calib=str(calib))
    result = compile_model(model_path, options, emit=lambda t: None, warn=lambda t: None)
    outputs, _ = interpreter_outputs(encode_image(result.program), {"input": x})
    return outputs["logits"]


def ort_int8_logits(model_path: Path, samples: np.ndarray, x: np.ndarray) -> np.ndarray:
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "q.onnx"
        quantize_static(
            str(model_path),
            str(out),
            _Reader(samples),
            quant_format=QuantFormat.QDQ,
            per_channel=True,
            activation_type=QuantType.QInt8,
            weight_type=QuantType.QInt8,
        )
        model = onnx.load(out)
    return np.concatenate([run_onnxruntime(model, {"input": s[None]})["logits"] for s in x])


def measure(name: str) -> dict[str, float]:
    test = np.load(DIGITS / "test.npz")
    x, labels = test[f"input_{name}"], test["labels"]
    calib_path = DIGITS / f"calib_{name}.npz"
    samples = np.load(calib_path)["input"]
    model_path = DIGITS / f"{name}.onnx"
    fp32 = np.concatenate(
        [run_onnxruntime(str(model_path), {"input": s[None]})["logits"] for s in x]
    )
    return {
        "fp32": accuracy(fp32, labels),
        "s2c_int8": accuracy(s2c_int8_logits(model_path, calib_path, x), labels),
        "ort_quantize_static": accuracy(ort_int8_logits(model_path, samples, x), labels),
    }


def main() -> None:
    print(f"{'model':<6} {'fp32':>8} {'s2c int8':>10} {'ORT QDQ':>9}  s2c-fp32  s2c-ORT (points)")
    for name in ("cnn", "mlp"):
        r = measure(name)
        print(
            f"{name:<6} {100 * r['fp32']:>7.2f}% {100 * r['s2c_int8']:>9.2f}% "
            f"{100 * r['ort_quantize_static']:>8.2f}%  {100 * (r['s2c_int8'] - r['fp32']):>+8.2f}"
            f"  {100 * (r['s2c_int8'] - r['ort_quantize_static']):>+7.2f}"
        )


if __name__ == "__main__":
    main()
