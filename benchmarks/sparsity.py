"""Sparsity: pruned digits models (accuracy, stored weights, MACs, PEs) and ResNet-50 event packets.

Part 1, the digits CNN and MLP (golden/digits/, made by golden/train_digits.py), int8, calibrated
on golden/digits/calib_*.npz, default options otherwise (per-layer pruning corrected by refit,
events chosen per layer; the layers that chose events are counted): for --prune 0, 0.5, 0.7, 0.9
it prints
the test accuracy (fp32 onnxruntime in the same run for reference), stored against dense weight
bytes (whole model and pruned layers; the first and last layers are exempt by default, so one more
row prunes them too with --prune-first-last), MACs performed against dense over the test set, and
PEs used. Issue figures: accuracy at 0.5 >= unpruned - 1 point; stored weight bytes at 90 %
sparsity <= 0.35x dense. Rows: `+fl` = --prune-first-last, `+gl` = --prune-global, `+mag` =
--prune-correction none (magnitude pruning alone).

Part 2, PEs: a model whose weights fill many PEs (the model-zoo ResNet-50, seeded random weights,
`benchmarks/zoo_models.py`, int8 on the auto machine), dense against --prune 0.9.

Part 3, the model-zoo ResNet-50 in int8 (ReLU activations), --event-activations, one seeded
input: activation sparsity over every kernel output, packets sent against one packet per element
(every element sent as an event) and against every element packed (16 int8 per packet, the
--no-event-activations transmission); and the layers the default (per-layer choice from the
calibration zeros) sends as events. Issue figure: packets sent <= (1 - measured activation
sparsity + 5 %) of dense packets (one per element).

    python benchmarks/sparsity.py [--skip-resnet]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from backend.activity import image_sparsity  # noqa: E402
from backend.image import decode_image, encode_image  # noqa: E402
from backend.interpreter import Interpreter  # noqa: E402
from benchmarks.zoo_models import cut_at_softmax, randomised_model, seeded_input  # noqa: E402
from s2c.driver import CompileOptions, compile_model  # noqa: E402
from s2c.files import write_npz  # noqa: E402
from s2c.validate import interpreter_outputs, run_onnxruntime  # noqa: E402

DIGITS = ROOT / "golden" / "digits"
FRACTIONS = (0.0, 0.5, 0.7, 0.9)


def _compile(model, **options):
    result = compile_model(model, CompileOptions(**options), emit=lambda t: None, warn=None)
    return result, encode_image(result.program)


def _pruned_layer_bytes(program, pruned: set[str]) -> tuple[int, int]:
    """(dense, stored) weight bytes of the layers the pass pruned."""
    summary = image_sparsity([k for pe in program.pes for k in pe.kernels])
    layers = [v for name, v in summary["per_layer"].items() if name in pruned]
    return sum(v["weight_bytes_dense"] for v in layers), sum(
        v["weight_bytes_stored"] for v in layers
    )


def digits_row(
    name: str,
    fraction: float,
    first_last: bool = False,
    ranking: bool = False,
    correction: str = "refit",
) -> dict:
    test = np.load(DIGITS / "test.npz")
    x, labels = test[f"input_{name}"], test["labels"]
    result, image = _compile(
        DIGITS / f"{name}.onnx",
        mode="int8",
        calib=str(DIGITS / f"calib_{name}.npz"),
        prune=fraction,
        prune_first_last=first_last,
        prune_global=ranking,
        prune_correction=correction,
    )
    outputs, stats = interpreter_outputs(image, {"input": x})
    sparsity = stats.sparsity.as_dict()
    report = summary_of(result.program)
    pruned = {n for n, v in report["prune"]["layers"].items() if v["zeros"] > v["zeros_given"]}
    layer_dense, layer_stored = _pruned_layer_bytes(result.program, pruned)
    return {
        "accuracy": float((outputs["logits"].argmax(axis=1) == labels).mean()),
        "weight_bytes_dense": sparsity["weight_bytes_dense"],
        "weight_bytes_stored": sparsity["weight_bytes_stored"],
        "pruned_layers_ratio": layer_stored / layer_dense if layer_dense else float("nan"),
        "macs_dense": sparsity["macs_dense"] // len(labels),
        "macs_performed": sparsity["macs_performed"] // len(labels),
        "pes": len(result.program.pes),
        "event_layers": len(sparsity["event_layers"]),
    }


def summary_of(program) -> dict:
    return {"prune": json.loads(program.metadata["prune"])}


def fp32_accuracy(name: str) -> float:
    test = np.load(DIGITS / "test.npz")
    x = test[f"input_{name}"]
    logits = np.concatenate(
        [run_onnxruntime(str(DIGITS / f"{name}.onnx"), {"input": s[None]})["logits"] for s in x]
    )
    return float((logits.argmax(axis=1) == test["labels"]).mean())


def print_digits() -> None:
    print(
        "model prune        acc  weights stored/dense (ratio; pruned layers)  "
        "MACs/inference performed/dense   PEs"
    )
    for name in ("cnn", "mlp"):
        print(f"{name}: fp32 onnxruntime accuracy {100 * fp32_accuracy(name):.2f} %")
        base = None
        rows = [(f, False, False, "refit") for f in FRACTIONS]
        rows += [(f, False, False, "none") for f in FRACTIONS[1:]]
        rows += [(0.9, True, False, "refit"), (0.5, False, True, "refit")]
        rows += [(0.7, False, True, "refit"), (0.9, False, True, "refit")]
        for fraction, first_last, ranking, correction in rows:
            r = digits_row(name, fraction, first_last, ranking, correction)
            base = r["accuracy"] if base is None else base
            label = f"{fraction:.1f}" + ("+fl" if first_last else "+gl" if ranking else "")
            label += "+mag" if correction == "none" else ""
            print(
                f"{name:<5} {label}  {100 * r['accuracy']:6.2f} %  "
                f"{r['weight_bytes_stored']:7d}/{r['weight_bytes_dense']:<7d} "
                f"({r['weight_bytes_stored'] / r['weight_bytes_dense']:.3f}; "
                f"{r['pruned_layers_ratio']:.3f})  "
                f"{r['macs_performed']:8d}/{r['macs_dense']:<8d} "
                f"({r['macs_performed'] / r['macs_dense']:.3f})  {r['pes']:4d}  "
                f"event layers {r['event_layers']}"
                f"   acc - unpruned {100 * (r['accuracy'] - base):+.2f} points"
            )


def resnet() -> None:
    model = cut_at_softmax(randomised_model("resnet50"))
    draws = [seeded_input(model, seed=100 + i) for i in range(4)]
    x = {k: v[None] for k, v in seeded_input(model, seed=7).items()}
    with tempfile.TemporaryDirectory() as folder:
        calib = Path(folder) / "calib.npz"
        write_npz(calib, {n: np.stack([d[n] for d in draws]) for n in draws[0]})
        base = dict(mode="int8", machine="auto", calib=str(calib))
        default, _ = _compile(model, **base)
        _, event_image = _compile(model, **base, event_activations=True)
        _, event_stats = Interpreter(decode_image(event_image)).run(x)
        print_events(event_stats.sparsity.as_dict(), default.program)
        pruned, _ = _compile(model, **base, prune=0.9)
    dense_pes, pruned_pes = len(default.program.pes), len(pruned.program.pes)
    print(
        f"resnet50 int8: PEs dense {dense_pes}, --prune 0.9 {pruned_pes} "
        f"({pruned_pes / dense_pes:.3f}x); weights stored/dense at 0.9: {_weights(pruned.program)}"
    )


def print_events(events: dict, default) -> None:
    """Packets sent with events against one per element and packed; the default's choice."""
    sparsity = events["activation_sparsity"]
    ratio = events["packets_sent"] / events["packets_elements"]
    target = 1 - sparsity + 0.05
    versus_packed = events["packets_sent"] / events["packets_packed"]
    record = json.loads(default.metadata["event_activations"])
    print(
        f"resnet50 int8 events: activation sparsity {100 * sparsity:.2f} %, packets sent "
        f"{events['packets_sent']} of {events['packets_elements']} (one per element) = "
        f"{ratio:.4f} (target <= {target:.4f}: {'met' if ratio <= target else 'not met'}); "
        f"packed: {events['packets_packed']} (events send {versus_packed:.2f}x that); the "
        f"default sends events from {len(record['layers'])} of "
        f"{len(record['zeros_at_calibration'])} layers; "
        f"MACs performed {events['macs_performed']} of "
        f"{events['macs_dense']} ({events['macs_performed'] / events['macs_dense']:.3f})",
        flush=True,
    )


def _weights(program) -> str:
    summary = image_sparsity([k for pe in program.pes for k in pe.kernels])
    stored, dense = summary["weight_bytes_stored"], summary["weight_bytes_dense"]
    return f"{stored}/{dense} ({stored / dense:.3f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skip-resnet", action="store_true", help="only the digits models")
    args = parser.parse_args()
    print_digits()
    if not args.skip_resnet:
        resnet()


if __name__ == "__main__":
    main()
