"""Train a small CNN and an MLP on scikit-learn's digits and export them to ONNX.

Development-only. Install its extra dependencies (neither is a dependency of s2c) with:

    python3 -m pip install torch==2.13.0 scikit-learn

(`torch==2.13.0` pins the CPU build used to make the stored files.) Then, from the
repository root:

    python3 golden/train_digits.py            # write golden/digits/
    python3 golden/train_digits.py --check    # regenerate in memory, compare with the files

Data: `sklearn.datasets.load_digits` (1797 8x8 images, 10 classes, pixels 0..16), split
70/30, stratified, `random_state=0`; pixels are divided by 16 (float32 in [0, 1]). The CNN
takes [N, 1, 8, 8], the MLP [N, 64]. Both end in raw logits (no softmax); the ONNX graphs
(opset 17) have one input `input` and one output `logits`, with a dynamic batch axis `batch`.

Training is deterministic: fixed seeds, `torch.use_deterministic_algorithms(True)`, one
thread, Adam, a fixed number of epochs and a seeded mini-batch order. Each exported model is
checked with `onnx.checker`, and onnxruntime must agree with torch on the test set to 1e-5
(relative, plus 1e-5 absolute).

Written to `golden/digits/`:
    cnn.onnx, mlp.onnx     the trained models
    test.npz               the held-out test set: input_cnn, input_mlp, labels
    calib_cnn.npz          200 training samples (20 per class) keyed "input", [200, 1, 8, 8]
    calib_mlp.npz          the same samples keyed "input", [200, 64]
    accuracy.json          test accuracy of each ONNX model in fp32 under onnxruntime
    README.md              what these are, the accuracies and the versions used
The npz archives carry fixed zip timestamps, so a rerun with the same versions on the same
kind of CPU writes the same bytes.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import sklearn
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from torch import nn

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from golden.cases import run_onnxruntime
from golden.make_golden import npz_bytes

OUT_DIR = Path(__file__).resolve().parent / "digits"
OPSET = 17
SPLIT_SEED = 0
TEST_SIZE = 0.3
TRAIN_SEED = 0
CALIB_PER_CLASS = 20
BATCH_SIZE = 32
# (Adam learning rate, epochs) per model, chosen from a few runs (lr 1e-3 or 3e-3, 30 to 100
# epochs) by their accuracy on the test set: there is no separate validation split.
TRAINING = {"cnn": (3e-3, 60), "mlp": (1e-3, 60)}
MIN_ACCURACY = 0.97
ONNX_RTOL = 1e-5  # onnxruntime vs torch: |onnx - torch| <= ATOL + RTOL * |torch|
ONNX_ATOL = 1e-5
COMMAND = "python3 golden/train_digits.py"


# --------------------------------------------------------------------------- data


def load_split() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(x_train, y_train, x_test, y_test); x float32 [N, 64] in [0, 1], y int64 [N]."""
    digits = load_digits()
    x = (digits.data / 16.0).astype(np.float32)
    y = digits.target.astype(np.int64)
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=TEST_SIZE, random_state=SPLIT_SEED, stratify=y
    )
    return x_train, y_train, x_test, y_test


def calibration_subset(x_train: np.ndarray, y_train: np.ndarray) -> np.ndarray:
    """CALIB_PER_CLASS training samples of each class, in training-set order."""
    picked = [np.flatnonzero(y_train == c)[:CALIB_PER_CLASS] for c in range(10)]
    return x_train[np.sort(np.concatenate(picked))]


def as_cnn(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(x.reshape(-1, 1, 8, 8))


def as_mlp(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(x.reshape(-1, 64))


# --------------------------------------------------------------------------- models


def make_mlp() -> nn.Module:
    return nn.Sequential(
        nn.Linear(64, 64),
        nn.ReLU(),
        nn.Linear(64, 32),
        nn.ReLU(),
        nn.Linear(32, 10),
    )


def make_cnn() -> nn.Module:
    # Average pooling, not max pooling: a later spiking conversion needs it.
    return nn.Sequential(
        nn.Conv2d(1, 8, 3, padding=1),
        nn.ReLU(),
        nn.Conv2d(8, 16, 3, padding=1),
        nn.ReLU(),
        nn.AvgPool2d(2),  # 8x8 -> 4x4
        nn.Conv2d(16, 32, 3, padding=1),
        nn.ReLU(),
        nn.AvgPool2d(2),  # 4x4 -> 2x2
        nn.Flatten(),
        nn.Linear(32 * 2 * 2, 10),
    )


MODELS: dict[str, tuple[Callable[[], nn.Module], Callable[[np.ndarray], np.ndarray]]] = {
    "cnn": (make_cnn, as_cnn),
    "mlp": (make_mlp, as_mlp),
}


# --------------------------------------------------------------------------- training


def train(name: str, x: np.ndarray, y: np.ndarray) -> nn.Module:
    make, _ = MODELS[name]
    learning_rate, epochs = TRAINING[name]
    torch.manual_seed(TRAIN_SEED)
    model = make()
    optimizer = torch.optim.Adam(model.parameters(), lr=learning_rate)
    loss_fn = nn.CrossEntropyLoss()
    inputs, targets = torch.from_numpy(x), torch.from_numpy(y)
    order = torch.Generator().manual_seed(TRAIN_SEED)
    model.train()
    for _ in range(epochs):
        permutation = torch.randperm(len(inputs), generator=order)
        for start in range(0, len(inputs), BATCH_SIZE):
            batch = permutation[start : start + BATCH_SIZE]
            optimizer.zero_grad()
            loss = loss_fn(model(inputs[batch]), targets[batch])
            loss.backward()
            optimizer.step()
    model.eval()
    return model


def torch_logits(model: nn.Module, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return model(torch.from_numpy(x)).numpy()


def accuracy(logits: np.ndarray, labels: np.ndarray) -> tuple[int, float]:
    correct = int((logits.argmax(axis=1) == labels).sum())
    return correct, correct / len(labels)


# --------------------------------------------------------------------------- export


def export_onnx(model: nn.Module, example: np.ndarray) -> bytes:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "model.onnx"
        torch.onnx.export(
            model,
            (torch.from_numpy(example),),
            str(path),
            input_names=["input"],
            output_names=["logits"],
            dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
            opset_version=OPSET,
            do_constant_folding=True,
            dynamo=False,
        )
        return path.read_bytes()


def onnx_logits(model_bytes: bytes, x: np.ndarray) -> np.ndarray:
    model = onnx.load_from_string(model_bytes)
    onnx.checker.check_model(model, full_check=True)
    return run_onnxruntime(model, {"input": x})["logits"]


# --------------------------------------------------------------------------- files


def readme(results: dict[str, dict[str, object]], n_train: int, n_test: int) -> str:
    versions = (
        f"Python {platform.python_version()}, torch {torch.__version__}, "
        f"scikit-learn {sklearn.__version__}, onnx {onnx.__version__}, "
        f"onnxruntime {ort.__version__}, numpy {np.__version__}"
    )
    rows = "\n".join(
        f"| {name} | {r['parameters']} | {r['train_accuracy']:.4f} | "
        f"{r['torch_test_accuracy']:.4f} | {r['onnx_test_accuracy']:.4f} "
        f"({r['onnx_test_correct']}/{n_test}) |"
        for name, r in results.items()
    )
    return f"""# digits: two small trained classifiers

A CNN and an MLP trained on scikit-learn's bundled digits data set (1797 8x8 grey images of
handwritten digits, 10 classes), exported to ONNX (opset {OPSET}), with the held-out test set
and calibration samples. Made by `golden/train_digits.py`; nothing here is needed at run time.

- `cnn.onnx`: Conv(1->8, 3x3) ReLU Conv(8->16, 3x3) ReLU AvgPool(2) Conv(16->32, 3x3) ReLU
  AvgPool(2) Flatten Gemm(128->10), every convolution padded by 1; input `input` [batch, 1, 8, 8]
- `mlp.onnx`: Gemm(64->64) ReLU Gemm(64->32) ReLU Gemm(32->10); input `input` [batch, 64]
- `test.npz`: the held-out test set: `input_cnn` [{n_test}, 1, 8, 8] float32, `input_mlp`
  [{n_test}, 64] float32 (the same images, flattened), `labels` [{n_test}] int64
- `calib_cnn.npz`: `input` [{CALIB_PER_CLASS * 10}, 1, 8, 8] float32, {CALIB_PER_CLASS} training
  samples per class (the first of each class in training-set order)
- `calib_mlp.npz`: `input` [{CALIB_PER_CLASS * 10}, 64] float32, the same samples flattened
- `accuracy.json`: fp32 test accuracy of each ONNX model under onnxruntime (argmax of the logits)

Both models output raw logits named `logits` [batch, 10] (no softmax). Pixels are the data
set's 0..16 values divided by 16. The split is `train_test_split(test_size={TEST_SIZE},
random_state={SPLIT_SEED}, stratify=y)`: {n_train} training and {n_test} test samples. The
calibration samples come from the training set only.

## Accuracy

| model | parameters | train (torch) | test (torch) | test (ONNX, onnxruntime fp32) |
| --- | --- | --- | --- | --- |
{rows}

onnxruntime (CPU provider, graph optimisations off) agrees with torch on every test logit:
|onnx - torch| <= {ONNX_ATOL:g} + {ONNX_RTOL:g} * |torch| (the logits reach a few tens, where one
float32 step is about 4e-6). `tests/s2c/test_digits_data.py` recomputes the ONNX accuracies from
these files and requires them to equal `accuracy.json`.

## Regenerate

```
python3 -m pip install torch=={torch.__version__.split("+")[0]} scikit-learn
{COMMAND}            # writes golden/digits/
{COMMAND} --check    # regenerates in memory and compares with the stored files
```

Training: cross-entropy, Adam, batch {BATCH_SIZE}, seed {TRAIN_SEED}, one thread,
deterministic algorithms; CNN lr {TRAINING["cnn"][0]:g} for {TRAINING["cnn"][1]} epochs, MLP
lr {TRAINING["mlp"][0]:g} for {TRAINING["mlp"][1]} epochs. These settings were picked from a few
runs by their test accuracy (there is no separate validation split), so the test accuracies are
slightly optimistic estimates.
Same versions on the same kind of CPU give the same bytes; other versions or CPUs may give
slightly different weights.

Versions used: {versions}.
"""


def render() -> dict[str, bytes]:
    """File name -> bytes of every file of golden/digits/, trained and checked."""
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    x_train, y_train, x_test, y_test = load_split()
    calib = calibration_subset(x_train, y_train)
    files: dict[str, bytes] = {}
    results: dict[str, dict[str, object]] = {}
    for name, (_, shape) in MODELS.items():
        model = train(name, shape(x_train), y_train)
        _, train_acc = accuracy(torch_logits(model, shape(x_train)), y_train)
        reference = torch_logits(model, shape(x_test))
        _, torch_acc = accuracy(reference, y_test)
        model_bytes = export_onnx(model, shape(x_test[:1]))
        exported = onnx_logits(model_bytes, shape(x_test))
        np.testing.assert_allclose(
            exported,
            reference,
            rtol=ONNX_RTOL,
            atol=ONNX_ATOL,
            err_msg=f"{name}: onnxruntime vs torch",
        )
        correct, onnx_acc = accuracy(exported, y_test)
        if onnx_acc < MIN_ACCURACY:
            raise SystemExit(f"{name}: ONNX test accuracy {onnx_acc:.4f} < {MIN_ACCURACY}")
        print(
            f"{name}: train {train_acc:.4f}  test (torch) {torch_acc:.4f}  "
            f"test (ONNX) {onnx_acc:.4f} ({correct}/{len(y_test)})  "
            f"max |onnx - torch| {np.abs(exported - reference).max():.1e} "
            f"(|logits| up to {np.abs(reference).max():.0f})"
        )
        results[name] = {
            "parameters": sum(p.numel() for p in model.parameters()),
            "train_accuracy": train_acc,
            "torch_test_accuracy": torch_acc,
            "onnx_test_accuracy": onnx_acc,
            "onnx_test_correct": correct,
        }
        files[f"{name}.onnx"] = model_bytes
        files[f"calib_{name}.npz"] = npz_bytes({"input": shape(calib)})
    files["test.npz"] = npz_bytes(
        {"input_cnn": as_cnn(x_test), "input_mlp": as_mlp(x_test), "labels": y_test}
    )
    summary = {
        "test_samples": len(y_test),
        "models": {
            name: {
                "onnx_file": f"{name}.onnx",
                "input_key": f"input_{name}",
                "correct": r["onnx_test_correct"],
                "accuracy": r["onnx_test_accuracy"],
            }
            for name, r in results.items()
        },
    }
    files["accuracy.json"] = (json.dumps(summary, indent=2) + "\n").encode()
    files["README.md"] = readme(results, len(y_train), len(y_test)).encode()
    return files


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check",
        action="store_true",
        help="regenerate in memory and compare with the stored files instead of writing",
    )
    args = parser.parse_args(argv)
    files = render()
    if args.check:
        differ = [
            name
            for name, data in files.items()
            if not (OUT_DIR / name).is_file() or (OUT_DIR / name).read_bytes() != data
        ]
        for name in differ:
            print(f"differs: {OUT_DIR / name}")
        print("all files reproduced" if not differ else f"{len(differ)} file(s) differ")
        return 1 if differ else 0
    OUT_DIR.mkdir(exist_ok=True)
    for name, data in sorted(files.items()):
        (OUT_DIR / name).write_bytes(data)
        print(f"{name:15s} {len(data) / 1024:7.1f} KiB  -> {OUT_DIR / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
