"""Placement figures: the CP-SAT placer against the greedy placer on model-zoo graphs and a
synthetic graph of 10,000 slices.

For each model it partitions the graph (frontend, passes, partition, as `s2c compile` does),
computes the traffic between slices, and places the slices with the greedy placer and with the
CP-SAT placer at the given deterministic time limit. It prints, per model: slices, PE bins, the
machine, both objectives and their ratio, both inter-chip traffics, the lower bound and the gap,
the solver's deterministic seconds, and the placer's wall and CPU seconds (wall depends on the
machine's load; CPU is this process's time; neither is asserted).

It asserts nothing. Run from the repository root:

    python -m benchmarks.placement                          # resnet50, vgg19, synthetic
    python -m benchmarks.placement vgg19 --mode int8        # one model, int8 (calibrated on
                                                            # seeded synthetic inputs)
    python -m benchmarks.placement synthetic --place-time 20

Models: the light model-zoo graphs shipped with onnx (weights do not matter for placement), on
the machine `--machine` names ("auto": the smallest preset that holds the model, as
`s2c compile --machine auto` picks it). "synthetic": 10,000 slices in 50 layers on 2x2 boards
(`synthetic_graph`).
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from backend.hardware import Machine  # noqa: E402
from backend.partition import Partition  # noqa: E402
from backend.place_cpsat import DEFAULT_TIME_LIMIT, CpsatOptions, place_cpsat  # noqa: E402
from backend.placement.traffic import HOST, Traffic, slice_traffic  # noqa: E402

DEFAULT_MODELS = ("resnet50", "vgg19", "synthetic")
SYNTHETIC_SLICES = 10_000
SYNTHETIC_LAYERS = 50
SYNTHETIC_MACHINE = "2x2-boards"


def model_partition(name: str, machine_name: str, mode: str) -> tuple[Partition, Machine]:
    """The partition `s2c compile` makes of a light model-zoo graph, and its machine.

    Runs the compiler with the greedy placer and stops it where it would assemble the image
    (slow for large models, and not needed here): the partition is the first argument.
    """
    from unittest import mock

    import s2c.driver as driver
    from benchmarks.zoo_models import light_model_path

    options = driver.CompileOptions(mode=mode, machine=machine_name, placer="greedy")
    with (
        mock.patch.object(driver, "assemble", side_effect=_Stop) as assemble,
        contextlib.suppress(_Stop),
    ):
        driver.compile_model(str(light_model_path(name)), options, emit=lambda text: None)
    parts = assemble.call_args.args[0]
    machine = assemble.call_args.args[2]
    return parts, machine


class _Stop(Exception):
    pass


def synthetic_graph(seed: int = 0) -> tuple[list[int], list[int], Traffic]:
    """10,000 slices in 50 layers of 200, shaped like a convolutional network.

    Every slice needs between half a PE and a whole PE of SRAM (one slice per PE). A slice of
    layer l receives from the slices of layer l-1 holding its rows and their neighbours (a
    halo), every fifth layer from every slice of the previous layer (a dense or channel-mixing
    layer), and every seventh layer also from layer l-3 (a residual connection). The host sends
    to the first layer and receives from the last.
    """
    rng = np.random.default_rng(seed)
    budget = 94208
    per_layer = SYNTHETIC_SLICES // SYNTHETIC_LAYERS
    sizes = rng.integers(budget // 2 + 1, budget, SYNTHETIC_SLICES).tolist()
    layers = [index // per_layer for index in range(SYNTHETIC_SLICES)]
    sources: list[int] = []
    targets: list[int] = []
    for layer in range(SYNTHETIC_LAYERS):
        first = layer * per_layer
        for row in range(per_layer):
            consumer = first + row
            if layer == 0:
                senders = [HOST]
            elif layer % 5 == 0:
                senders = list(range(first - per_layer, first))
            else:
                senders = [
                    first - per_layer + r for r in (row - 1, row, row + 1) if 0 <= r < per_layer
                ]
            if layer % 7 == 0 and layer >= 3:
                senders.append(first - 3 * per_layer + row)
            sources += senders
            targets += [consumer] * len(senders)
    last = (SYNTHETIC_LAYERS - 1) * per_layer
    sources += list(range(last, SYNTHETIC_SLICES))
    targets += [HOST] * per_layer
    packets = rng.integers(10, 2000, len(sources))
    return sizes, layers, Traffic.of(sources, targets, packets)


def measure(
    name: str, sizes: list[int], layers: list[int], traffic: Traffic, machine: Machine, limit: float
) -> None:
    wall, cpu = time.perf_counter(), time.process_time()
    outcome = place_cpsat(sizes, layers, traffic, machine, CpsatOptions(time_limit=limit))
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    report = outcome.report
    figures, greedy = report.figures, report.greedy
    solver = report.solver
    print(
        f"{name}: {len(sizes)} slices, {figures['pes_used']} PEs, machine {machine.name}; "
        f"chips used {figures['chips_used']} (greedy {greedy['chips_used']})"
    )
    print(
        f"  objective {report.objective:.6g} vs greedy {report.greedy_objective:.6g}: "
        f"ratio {report.objective / max(report.greedy_objective, 1e-9):.3f}; "
        f"status {report.status}"
    )
    inter, greedy_inter = figures["inter_chip_traffic"], greedy["inter_chip_traffic"]
    assert isinstance(inter, int) and isinstance(greedy_inter, int)
    print(
        f"  inter-chip traffic {inter} vs greedy {greedy_inter} packets x hops: "
        f"ratio {inter / max(greedy_inter, 1):.3f}"
    )
    print(f"  bound {report.best_bound:.6g}, gap {report.gap:.1%}")
    print(
        f"  solver {solver.get('deterministic_seconds', 0)} deterministic s of {limit}, "
        f"{solver.get('cuts', 0)} cuts, {solver.get('halvings', 0)} halvings; "
        f"placer wall {wall:.1f} s, CPU {cpu:.1f} s"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="*", default=list(DEFAULT_MODELS))
    parser.add_argument("--place-time", type=float, default=DEFAULT_TIME_LIMIT)
    parser.add_argument("--machine", default="auto")
    parser.add_argument("--mode", default="float", choices=["float", "int8"])
    args = parser.parse_args(argv)
    for name in args.models:
        if name == "synthetic":
            from backend.hardware import machine_from_name

            sizes, layers, traffic = synthetic_graph()
            measure(
                name, sizes, layers, traffic, machine_from_name(SYNTHETIC_MACHINE), args.place_time
            )
            continue
        started = time.perf_counter()
        parts, machine = model_partition(name, args.machine, args.mode)
        traffic = slice_traffic(parts)
        print(f"{name} ({args.mode}): partitioned in {time.perf_counter() - started:.1f} s")
        sizes = [s.sram_bytes for s in parts.slices]
        layers = [s.layer_index for s in parts.slices]
        measure(name, sizes, layers, traffic, machine, args.place_time)


if __name__ == "__main__":
    main()
