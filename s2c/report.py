"""`s2c report`: what an image costs, where it sits, and how that compares (data and JSON).

Everything comes from the image bytes (`backend.image.decode_image`) and the cost model
(`backend.cost`); the GPU figures from `s2c/reference/gpu_energy_h200.json` (provenance in
`s2c/reference/README.md`); the onnxruntime time only when the user gives the ONNX model, measured
then on this machine (median of timed runs after a warm-up, one thread), never stored or guessed.
`s2c.report_html` renders the same data as one self-contained HTML file.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from backend.cost import Estimate, LayerActivity, estimate
from backend.gc_pause import gc_paused
from backend.hardware import Machine
from backend.program import PECoord, Program
from backend.snn_interpreter import SpikeStats
from ir.errors import InputError
from s2c.summary import sram_used, summarise

GPU_REFERENCE = "gpu_energy_h200.json"
ORT_RUNS = 10


@dataclass
class OnnxruntimeTiming:
    """onnxruntime on this machine: median seconds per run of the image's batch."""

    seconds: float
    runs: int
    threads: int = 1

    def as_dict(self) -> dict:
        return {"seconds": self.seconds, "runs": self.runs, "threads": self.threads}


@dataclass
class Report:
    """Everything a report shows."""

    image_name: str
    program: Program
    machine: Machine
    summary: dict
    estimate: Estimate
    sram_by_pe: dict[PECoord, int]
    layer_by_pe: dict[PECoord, str]  # the first layer a PE runs
    router_entries: dict[tuple[int, int], int]
    gpu: dict
    onnxruntime: OnnxruntimeTiming | None
    activity: Mapping[str, LayerActivity]

    def as_dict(self) -> dict:
        return {
            "image": self.image_name,
            "summary": self.summary,
            "estimate": self.estimate.as_dict(),
            "sram_bytes_per_pe": {
                f"{pe.chip[0]},{pe.chip[1]}:{pe.core}": used
                for pe, used in sorted(self.sram_by_pe.items(), key=lambda item: _pe_key(item[0]))
            },
            "router_entries_per_chip": {
                f"{x},{y}": n for (x, y), n in sorted(self.router_entries.items())
            },
            "onnxruntime": None if self.onnxruntime is None else self.onnxruntime.as_dict(),
            "gpu_reference": self.gpu,
            "spikes_per_layer": {
                name: list(layer.spikes) for name, layer in sorted(self.activity.items())
            },
        }


def _pe_key(pe: PECoord) -> tuple:
    return (pe.chip, pe.core)


def build_report(
    program: Program,
    image_name: str,
    image_bytes: int,
    onnxruntime_timing: OnnxruntimeTiming | None = None,
    activity: Mapping[str, LayerActivity] | None = None,
) -> Report:
    """Gather the report's data from a program read from image bytes."""
    with gc_paused():
        return _build_report(program, image_name, image_bytes, onnxruntime_timing, activity)


def _build_report(program, image_name, image_bytes, onnxruntime_timing, activity) -> Report:
    machine = Machine.from_description(program.machine)
    base = machine.chip_spec.code_bytes
    sram = [sram_used(pe, base) for pe in program.pes]
    return Report(
        image_name=image_name,
        program=program,
        machine=machine,
        summary=summarise(program, image_bytes, sram),
        estimate=estimate(program, activity),
        sram_by_pe={pe.pe: used for pe, used in zip(program.pes, sram)},
        layer_by_pe={pe.pe: pe.kernels[0].layer if pe.kernels else "" for pe in program.pes},
        router_entries={chip.chip: len(chip.router) for chip in program.chips},
        gpu=gpu_reference(),
        onnxruntime=onnxruntime_timing,
        activity=dict(activity or {}),
    )


def read_activity(path: Path) -> dict[str, LayerActivity]:
    """Per-inference spikes and synaptic events per layer and timestep, from the --stats-json
    file of an `s2c run` of an snn image (counts over its samples, divided by the samples)."""
    try:
        stats = json.loads(Path(path).read_text())
        return SpikeStats(
            samples=int(stats["samples"]),
            spikes_per_layer=dict(stats["spikes_per_layer_per_timestep"]),
            synaptic_events_per_layer=dict(stats["synaptic_events_per_layer_per_timestep"]),
        ).activity()
    except OSError as error:
        raise InputError(f"--activity {path}: cannot read it ({error.strerror})") from None
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise InputError(
            f"--activity {path}: not the --stats-json of an snn run ({type(error).__name__}: "
            f"{error})"
        ) from None


def gpu_reference() -> dict:
    """The stored H200 measurements (see s2c/reference/README.md)."""
    text = resources.files("s2c.reference").joinpath(GPU_REFERENCE).read_text(encoding="utf-8")
    return json.loads(text)


def time_onnxruntime(
    model: Path, inputs: dict[str, np.ndarray], runs: int = ORT_RUNS
) -> OnnxruntimeTiming:
    """Median wall time of `runs` onnxruntime runs after one warm-up run.

    CPU provider, one intra-op thread, onnxruntime's default graph optimisations.
    """
    from s2c.validate import onnxruntime_session

    session = onnxruntime_session(model, optimise=True)
    feed = {i.name: inputs[i.name] for i in session.get_inputs() if i.name in inputs}
    session.run(None, feed)
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        session.run(None, feed)
        times.append(time.perf_counter() - start)
    return OnnxruntimeTiming(statistics.median(times), runs)
