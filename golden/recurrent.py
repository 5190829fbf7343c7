"""The recurrent golden cases: their names, the synthetic sequence task, and a loader.

`golden/make_recurrent.py` (torch, development only) writes each case as
`golden/<case>/{model.onnx, inputs.npz, outputs.npz, case.json}`; this module needs numpy only,
so tests and benchmarks can read the cases and draw task sequences without torch.

The task (for the two classifiers): 5 classes; a sequence of STEPS steps of FEATURES features is
    x[t, j] = sin(2 pi (c + 1) t / STEPS + 2 pi j / FEATURES) + noise, noise ~ N(0, NOISE^2)
for class c, so the class is the frequency of a travelling wave under noise.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from golden.cases import Arrays, Tolerances

GOLDEN_DIR = Path(__file__).resolve().parent
STEPS, FEATURES, HIDDEN, CLASSES = 12, 16, 32, 5
NOISE = 2.5
# Classifiers exported from torch, then onnx.helper cases of directions and states.
CLASSIFIERS = ("gru_classifier", "lstm_classifier")
VARIANTS = ("gru_bidirectional", "lstm_reverse_states")
# Python loops over nn.GRUCell / nn.LSTMCell, exported unrolled (no Scan or Loop).
UNROLLED = ("gru_cell_loop", "lstm_cell_loop")
RECURRENT_CASES = CLASSIFIERS + VARIANTS + UNROLLED


def task_sequences(count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """`count` seeded task sequences [count, STEPS, FEATURES] (float32) and their classes."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, CLASSES, count)
    steps = np.arange(STEPS)[None, :, None]
    features = np.arange(FEATURES)[None, None, :]
    phase = 2 * np.pi * (labels[:, None, None] + 1) * steps / STEPS
    waves = np.sin(phase + 2 * np.pi * features / FEATURES)
    noise = rng.normal(0.0, NOISE, waves.shape)
    return (waves + noise).astype(np.float32), labels


def load_recurrent_case(name: str) -> tuple[bytes, Arrays, Arrays, Tolerances]:
    """(model bytes, inputs, onnxruntime outputs, float tolerances) of a stored case."""
    if name not in RECURRENT_CASES:
        raise KeyError(f"unknown recurrent case {name!r}; known: {', '.join(RECURRENT_CASES)}")
    directory = GOLDEN_DIR / name
    meta = json.loads((directory / "case.json").read_text())
    tolerance = meta["tolerances"]["float"]
    return (
        (directory / "model.onnx").read_bytes(),
        _arrays(directory / "inputs.npz"),
        _arrays(directory / "outputs.npz"),
        Tolerances(tolerance["rtol"], tolerance["atol"], tolerance["why"]),
    )


def _arrays(path: Path) -> Arrays:
    with np.load(path, allow_pickle=False) as data:
        return {key: data[key] for key in data.files}
