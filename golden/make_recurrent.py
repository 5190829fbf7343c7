"""Write the recurrent golden cases: `python golden/make_recurrent.py [--only CASE ...]`.

Development only: needs torch (CPU). The two classifiers (`nn.GRU` / `nn.LSTM`(16, 32,
batch_first=True) and a Linear(32, 5) head on the last step) are trained for TRAIN_STEPS Adam
steps on the seeded synthetic task of `golden.recurrent` (so their logits carry meaning: the
accuracy on held-out sequences is written to case.json), then exported with
`torch.onnx.export(opset 17, dynamo=False)`. The variant cases are single GRU/LSTM nodes built
with onnx.helper from seeded weights: a bidirectional GRU whose initial_h is a graph input, and
a reverse LSTM with constant initial_h / initial_c, peepholes and all three outputs. The cell
loops are Python loops over nn.GRUCell / nn.LSTMCell (seeded, untrained), which the tracer
exports unrolled, with no Scan or Loop.

For every case onnxruntime (graph optimisations off) runs the stored inputs; its outputs are
checked against onnx's float64 reference evaluator to a tenth of the case's tolerances before
anything is written.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from golden import cases
from golden import recurrent as task
from golden.make_golden import check_float64, npz_bytes

SEED = 801
CELL_LOOP_STEPS = 6
TRAIN_STEPS, TRAIN_BATCH, HELD_OUT = 300, 64, 500
WHY = (
    "fp32 like onnxruntime, with {k}-term dot products per gate over {t} dependent steps; "
    "summation order and float64-evaluated sigmoid/tanh differ from onnxruntime by about 1e-7 "
    "per step, far below rtol 1e-4 / atol 1e-5, while a wrong gate order, bias half or "
    "direction is of order 1e-1"
)


def _classifier(kind: str):
    import torch
    from torch import nn

    class Classifier(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            layer = nn.GRU if kind == "gru" else nn.LSTM
            self.rnn = layer(task.FEATURES, task.HIDDEN, batch_first=True)
            self.head = nn.Linear(task.HIDDEN, task.CLASSES)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y, _ = self.rnn(x)
            return self.head(y[:, -1])

    return Classifier()


def trained_classifier(kind: str) -> tuple[onnx.ModelProto, float]:
    """The trained classifier exported to ONNX, and its held-out accuracy."""
    import torch

    torch.manual_seed(SEED)
    model = _classifier(kind)
    optimiser = torch.optim.Adam(model.parameters(), lr=0.01)
    x, labels = task.task_sequences(TRAIN_STEPS * TRAIN_BATCH, seed=SEED)
    for step in range(TRAIN_STEPS):
        batch = slice(step * TRAIN_BATCH, (step + 1) * TRAIN_BATCH)
        loss = torch.nn.functional.cross_entropy(
            model(torch.from_numpy(x[batch])), torch.from_numpy(labels[batch])
        )
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    model.eval()
    held_x, held_labels = task.task_sequences(HELD_OUT, seed=SEED + 1)
    with torch.no_grad():
        accuracy = float((model(torch.from_numpy(held_x)).argmax(1).numpy() == held_labels).mean())
    buffer = io.BytesIO()
    example = torch.from_numpy(held_x[:1])
    torch.onnx.export(
        model, (example,), buffer, opset_version=17, dynamo=False,
        input_names=["input"], output_names=["logits"],
    )  # fmt: skip
    return onnx.load_from_string(buffer.getvalue()), accuracy


def _cell_loop(kind: str):
    import torch
    from torch import nn

    class CellLoop(nn.Module):
        """h (and c) from zeros, one cell call per step, then the head on the last h."""

        def __init__(self) -> None:
            super().__init__()
            layer = nn.GRUCell if kind == "gru" else nn.LSTMCell
            self.cell = layer(task.FEATURES, task.HIDDEN)
            self.head = nn.Linear(task.HIDDEN, task.CLASSES)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            h = torch.zeros(1, task.HIDDEN)
            c = torch.zeros(1, task.HIDDEN)
            for t in range(CELL_LOOP_STEPS):
                if kind == "gru":
                    h = self.cell(x[:, t], h)
                else:
                    h, c = self.cell(x[:, t], (h, c))
            return self.head(h)

    return CellLoop()


def cell_loop(kind: str) -> onnx.ModelProto:
    """A seeded, untrained loop over a GRU/LSTM cell, exported unrolled by the tracer: the case
    checks that the unrolled Gemm/Split/Sigmoid/Tanh/Mul/Add chain compiles and matches."""
    import torch

    torch.manual_seed(SEED + 4)
    model = _cell_loop(kind).eval()
    example = torch.from_numpy(task.task_sequences(1, seed=SEED + 3)[0][:, :CELL_LOOP_STEPS])
    buffer = io.BytesIO()
    torch.onnx.export(
        model, (example,), buffer, opset_version=17, dynamo=False,
        input_names=["input"], output_names=["logits"],
    )  # fmt: skip
    return onnx.load_from_string(buffer.getvalue())


def _variant_model(kind: str) -> onnx.ModelProto:
    """One GRU (bidirectional, initial_h input) or LSTM (reverse, constant states) node."""
    rng = np.random.default_rng(SEED + (2 if kind == "gru" else 3))
    steps, features, hidden = 6, 8, 10
    directions, gates = (2, 3) if kind == "gru" else (1, 4)

    def draw(*shape: int) -> np.ndarray:
        return rng.normal(0.0, 0.4, shape).astype(np.float32)

    weights = {
        "W": draw(directions, gates * hidden, features),
        "R": draw(directions, gates * hidden, hidden),
        "B": draw(directions, 2 * gates * hidden),
    }
    graph_inputs = [helper.make_tensor_value_info("x", TensorProto.FLOAT, [steps, 1, features])]
    state_shape = [directions, 1, hidden]
    if kind == "gru":
        graph_inputs.append(
            helper.make_tensor_value_info("initial_h", TensorProto.FLOAT, state_shape)
        )
        names, outputs = ["x", "W", "R", "B", "", "initial_h"], ["Y", "Y_h"]
        attrs = {"direction": "bidirectional", "linear_before_reset": 0}
    else:
        weights.update(initial_h=draw(*state_shape), initial_c=draw(*state_shape))
        weights["P"] = draw(directions, 3 * hidden)
        names = ["x", "W", "R", "B", "", "initial_h", "initial_c", "P"]
        outputs, attrs = ["Y", "Y_h", "Y_c"], {"direction": "reverse"}
    node = helper.make_node(kind.upper(), names, outputs, name="rnn", hidden_size=hidden, **attrs)
    shapes = {"Y": [steps, directions, 1, hidden], "Y_h": state_shape, "Y_c": state_shape}
    graph = helper.make_graph(
        [node],
        f"{kind}_variant",
        graph_inputs,
        [helper.make_tensor_value_info(o, TensorProto.FLOAT, shapes[o]) for o in outputs],
        [numpy_helper.from_array(a, n) for n, a in weights.items()],
    )
    return helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=cases.IR_VERSION
    )


def _variant_inputs(model: onnx.ModelProto) -> cases.Arrays:
    rng = np.random.default_rng([SEED, 1])
    arrays = {}
    for value in model.graph.input:
        shape = [d.dim_value for d in value.type.tensor_type.shape.dim]
        arrays[value.name] = rng.normal(0.0, 1.0, shape).astype(np.float32)
    return arrays


def build(name: str) -> tuple[onnx.ModelProto, cases.Arrays, dict]:
    """(model, inputs, extra case.json fields) of a case."""
    kind = name.split("_")[0]
    if name in task.CLASSIFIERS:
        model, accuracy = trained_classifier(kind)
        x, _ = task.task_sequences(1, seed=SEED + 2)
        extra = {"held_out_accuracy": accuracy, "train_steps": TRAIN_STEPS, "seed": SEED}
        return model, {"input": x}, extra
    if name in task.UNROLLED:
        x, _ = task.task_sequences(1, seed=SEED + 2)
        return cell_loop(kind), {"input": x[:, :CELL_LOOP_STEPS]}, {"seed": SEED + 4}
    model = _variant_model(kind)
    return model, _variant_inputs(model), {"seed": SEED}


def render_case(name: str) -> dict[str, bytes]:
    """File name -> bytes of every file of a case (checked against float64 first)."""
    model, inputs, extra = build(name)
    onnx.checker.check_model(model, full_check=True)
    outputs = cases.run_onnxruntime(model, inputs)
    tolerances = cases.Tolerances(1e-4, 1e-5, WHY.format(k=task.HIDDEN, t=task.STEPS))
    check_float64(name, model, inputs, outputs, tolerances)
    meta = {
        "name": name,
        "onnx_version": onnx.__version__,
        "onnxruntime_version": ort.__version__,
        "tolerances": {"float": dict(tolerances._asdict())},
        **extra,
    }
    return {
        "model.onnx": model.SerializeToString(),
        "inputs.npz": npz_bytes(inputs),
        "outputs.npz": npz_bytes(outputs),
        "case.json": (json.dumps(meta, indent=2) + "\n").encode(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", action="append", choices=task.RECURRENT_CASES, metavar="CASE")
    args = parser.parse_args(argv)
    for name in args.only or task.RECURRENT_CASES:
        directory = task.GOLDEN_DIR / name
        directory.mkdir(exist_ok=True)
        files = render_case(name)
        for file_name, data in files.items():
            (directory / file_name).write_bytes(data)
        size = sum(len(d) for d in files.values()) / 1024
        print(f"{name:22s} {size:8.1f} KiB  -> {directory}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
