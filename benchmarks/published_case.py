"""The cost model against a published SpiNNaker2 figure: chip power while a DNN layer runs.

SPINNAKER2.md (E2E, P26; [S]) reports 0.58-0.80 W per chip while DNN layers run on the MAC
arrays, and 16-19 % MAC-array utilisation for fully connected layers. This script builds the case
those figures describe: one int8 fully connected layer (Gemm, `--inputs` x `--outputs`, weights
in SRAM) that fills one chip's PEs, compiles it for `--machine chip`, and prints the cost model's
figures for that layer at each performance level: its time (slowest slice), its dynamic energy,
and the chip's average power while it runs, (dynamic energy + idle power x time) / time. It then
says whether the 300 MHz power lands in the published range, with the defaults, at both ends of
the published utilisation range, and with larger ARM energies per cycle (an assumption).
It asserts nothing; run from the repository root:

    python benchmarks/published_case.py [--inputs 2560 --outputs 4096]
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import numpy as np
from onnx import TensorProto, helper, numpy_helper

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from backend.cost import estimate  # noqa: E402
from backend.hardware import ChipSpec  # noqa: E402
from s2c.driver import CompileOptions, compile_model  # noqa: E402

PUBLISHED_WATTS = (0.58, 0.80)  # SPINNAKER2.md, "DNN layers" (E2E) [S]
PUBLISHED_UTILISATION = (0.16, 0.19)  # SPINNAKER2.md, fully connected (P26, E2E) [S]


def dense_model(inputs: int, outputs: int):
    """x[1, inputs] @ W[inputs, outputs] + b, seeded weights, ReLU."""
    rng = np.random.default_rng(0)
    weight = (rng.standard_normal((outputs, inputs)) / np.sqrt(inputs)).astype(np.float32)
    bias = (0.1 * rng.standard_normal(outputs)).astype(np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("Gemm", ["x", "w", "b"], ["y0"], transB=1),
            helper.make_node("Relu", ["y0"], ["y"]),
        ],
        "published_case",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, inputs])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, outputs])],
        [numpy_helper.from_array(weight, "w"), numpy_helper.from_array(bias, "b")],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def layer_power(program, overrides: dict) -> list[tuple[int, float, float, float]]:
    """(clock, seconds, dynamic joules, average watts) of the dense layer at each level, with
    chip-spec fields overridden (the image's machine description is the cost model's input)."""
    program = dataclasses.replace(program, machine=program.machine | overrides)
    cost = estimate(program)
    dense = next(layer for layer in cost.layers if layer.opcode == "dense")
    idle = ChipSpec().idle_power_watts * cost.chips_used
    rows = []
    for level, state in enumerate(cost.levels):
        seconds, joules = dense.seconds[level], dense.energy_joules[level]
        rows.append((state.clock_hz, seconds, joules, joules / seconds + idle))
    return rows


CASES = (
    ("defaults", {}),
    (f"utilisation {PUBLISHED_UTILISATION[0]:.0%}", {"mac_utilisation_dense": 0.16}),
    (f"utilisation {PUBLISHED_UTILISATION[1]:.0%}", {"mac_utilisation_dense": 0.19}),
    # Sensitivity to the assumed ARM energy per cycle: 25 pJ, and the 43 pJ upper bound.
    ("ARM 25 pJ/cycle", {"arm_joules_per_cycle": 25e-12}),
    ("ARM 43 pJ/cycle", {"arm_joules_per_cycle": 43e-12}),
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inputs", type=int, default=2560)
    parser.add_argument("--outputs", type=int, default=4096)
    arguments = parser.parse_args()
    model = dense_model(arguments.inputs, arguments.outputs)
    options = CompileOptions(mode="int8", machine="chip")
    result = compile_model(model, options, emit=lambda text: None, warn=lambda text: None)
    program = result.program
    pes = len(program.pes)
    print(f"int8 Gemm {arguments.inputs} x {arguments.outputs} on one chip: {pes} PEs")
    low, high = PUBLISHED_WATTS
    for label, overrides in CASES:
        for clock, seconds, joules, watts in layer_power(program, overrides):
            inside = "inside" if low <= watts <= high else "OUTSIDE"
            verdict = f" -> {inside} {low}-{high} W" if clock == 300_000_000 else ""
            print(
                f"{label:>20} at {clock / 1e6:g} MHz: layer {seconds * 1e6:8.1f} us, "
                f"{joules * 1e6:8.2f} uJ dynamic, chip power {watts:.3f} W{verdict}"
            )


if __name__ == "__main__":
    main()
