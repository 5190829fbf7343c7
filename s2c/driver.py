"""The compiler driver: runs the stages in order and returns what each produced.

load (frontend) -> canonicalise (passes) -> partition -> place -> assemble (keys, routes,
layout) -> Program, which `backend.image` writes as the image.
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import onnx

from backend.assemble import assemble, values_per_packet
from backend.hardware import MAX_BOARDS, Machine, load_machine, machine_from_name
from backend.partition import Partition, partition
from backend.place import pack_next_fit, suggest_machine
from backend.place_cpsat import (
    DEFAULT_TIME_LIMIT,
    PLACERS,
    CpsatOptions,
    PlacementReport,
    greedy_outcome,
    place_cpsat,
)
from backend.placement.traffic import slice_traffic
from backend.program import PECoord, Program
from backend.recurrent import sequence_axes
from backend.topology import BOARD_CHIPS
from ir.errors import InputError, ResourceError, UnsupportedError
from ir.graph import Graph
from ir.printer import print_graph
from passes.activation_zeros import MeasureActivationZeros
from passes.ann_to_snn import ENCODINGS, AnnToSnn, SpikingNetwork
from passes.base import PassManager
from passes.calibration import METHODS, synthetic_inputs
from passes.fold_qdq import Calibration
from passes.pipeline import canonicalisation, pass_names
from passes.quantise import Quantise
from passes.sparsity import Prune, check_correction, check_fraction
from s2c import __version__
from s2c.capacity import check_io_fits, check_results_fit
from s2c.files import read_npz
from s2c.frontend import load_onnx

MODES = ("float", "int8", "snn")
MAX_TIMESTEPS = 4096  # more steps than this is a mistake, not a rate code (docs/snn.md)
CALIBRATION_SAMPLES = 8  # seeded synthetic samples when no --calib is given
QUANTISED_IN_FLOAT_MODE = "model is quantised; compile it with --mode int8"


@dataclass(frozen=True)
class CompileOptions:
    """Everything that decides the image: same options and model give the same bytes."""

    mode: str = "int8"
    machine: str = "board"
    batch: int = 1
    dump_ir: bool = False
    print_after: tuple[str, ...] = ()
    calib: str | None = None  # .npz of calibration inputs (int8)
    calib_method: str = "minmax"
    percentile: float = 99.99
    per_tensor_weights: bool = False
    placer: str = "cpsat"  # cpsat | greedy (backend.place_cpsat)
    place_time: float = DEFAULT_TIME_LIMIT  # deterministic seconds for the cpsat placer
    chip_weight: float = 0.0  # packets x hops one more chip is worth to the cpsat placer
    timesteps: int = 32  # snn: timesteps per inference
    snn_percentile: float = 99.9  # snn: threshold = this percentile of a channel's activations
    snn_per_layer: bool = False  # snn: one threshold per layer instead of per channel
    snn_encoding: str = "current"  # snn: input as constant current or Poisson spikes
    snn_seed: int = 0  # snn: seed of the Poisson input's PRNG (stored in the image)
    snn_bias_correction: bool = False  # snn: add back the current clipping at lambda removes
    prune: float = 0.0  # fraction of conv/dense weights zeroed by magnitude (passes.sparsity)
    prune_global: bool = False  # one magnitude ranking over all layers instead of per layer
    prune_first_last: bool = False  # prune the first and last conv/dense layers too
    prune_correction: str = "refit"  # refit | bias | none, from --calib (passes.prune_correction)
    sparse_weights: bool = True  # store a sparse weight compressed when smaller
    # send only non-zero activations: True everywhere, False nowhere, None: per layer where the
    # calibration zeros make events fewer packets than packed transmission (docs/sparsity.md)
    event_activations: bool | None = None

    def check(self) -> None:
        if self.mode not in MODES:
            raise InputError(
                f"--mode {self.mode!r} is not available; choose from {', '.join(MODES)}"
            )
        if self.batch < 1:
            raise InputError(f"--batch must be >= 1, got {self.batch}")
        if self.placer not in PLACERS:
            raise InputError(f"--placer {self.placer!r}: choose from {', '.join(PLACERS)}")
        self.placement_options().check()
        if self.calib_method not in METHODS:
            raise InputError(
                f"--calib-method {self.calib_method!r}: choose from {', '.join(METHODS)}"
            )
        if not 50.0 < self.percentile <= 100.0:
            raise InputError(f"--percentile must be in (50, 100], got {self.percentile}")
        self._check_snn()
        check_fraction(self.prune)
        check_correction(self.prune_correction)
        unknown = [p for p in self.print_after if p not in pass_names() and p != "all"]
        if unknown:
            raise InputError(
                f"--print-after {unknown[0]!r} names no pass; passes: {', '.join(pass_names())}"
            )

    def _check_snn(self) -> None:
        if not 1 <= self.timesteps <= MAX_TIMESTEPS:
            raise InputError(f"--timesteps must be in 1..{MAX_TIMESTEPS}, got {self.timesteps}")
        if not 50.0 < self.snn_percentile <= 100.0:
            raise InputError(f"--snn-percentile must be in (50, 100], got {self.snn_percentile}")
        if self.snn_encoding not in ENCODINGS:
            raise InputError(
                f"--snn-encoding {self.snn_encoding!r}: choose from {', '.join(ENCODINGS)}"
            )
        if not 0 <= self.snn_seed < 2**63:
            raise InputError(f"--snn-seed must be in 0..2^63-1, got {self.snn_seed}")
        if self.mode == "snn" and self.calib is None:
            raise InputError(
                "--mode snn needs --calib CALIB.npz: neuron thresholds come from percentiles of "
                "real activations, and random inputs give thresholds that do not fit the data"
            )

    def placement_options(self) -> CpsatOptions:
        return CpsatOptions(time_limit=self.place_time, chip_weight=self.chip_weight)


@dataclass
class CompileResult:
    """What compilation produced, stage by stage."""

    graph: Graph
    partition: Partition
    placement: list[PECoord]
    program: Program
    machine: Machine
    seconds: dict[str, float] = field(default_factory=dict)
    placement_report: PlacementReport | None = None


def resolve_machine(name: str) -> Machine:
    """A preset name (chip, board, NxM-boards) or a path to a JSON machine description."""
    if name.endswith(".json"):
        return load_machine(name)
    return machine_from_name(name)


def auto_machine(parts: Partition) -> Machine:
    """The smallest preset (chip, board, then NxM boards) whose PEs hold the placement.

    The SRAM budget per PE does not depend on the preset, so the partition stays valid; the PE
    count comes from the same next-fit packing the greedy placer uses.
    """
    spec = machine_from_name("chip").chip_spec
    bins = pack_next_fit(
        [s.sram_bytes for s in parts.slices],
        [s.layer_index for s in parts.slices],
        spec.data_bytes,
        False,
    )
    needed = max(bins, default=-1) + 1
    name = suggest_machine(needed, spec.usable_core_count)
    if name is None:
        largest = MAX_BOARDS * len(BOARD_CHIPS) * spec.usable_core_count
        raise ResourceError(
            f"the model needs {needed} PEs; the largest machine, {MAX_BOARDS} boards, has {largest}"
        )
    return machine_from_name(name)


def _model_digest(source: str | Path | onnx.ModelProto) -> str:
    if isinstance(source, onnx.ModelProto):
        return hashlib.sha256(source.SerializeToString(deterministic=True)).hexdigest()
    return hashlib.sha256(Path(source).read_bytes()).hexdigest()


def _warn_to_stderr(message: str) -> None:
    print(message, file=sys.stderr)


def _calibration_samples(graph: Graph, options: CompileOptions, warn) -> dict:
    """The user's calibration data, or seeded synthetic samples (with a warning)."""
    if options.calib is not None:
        return read_npz(options.calib)
    (warn or _warn_to_stderr)(
        f"warning: no --calib given: int8 ranges come from {CALIBRATION_SAMPLES} seeded "
        "random inputs; accuracy needs real calibration data"
    )
    return synthetic_inputs(graph, CALIBRATION_SAMPLES)


def _quantise_pass(graph: Graph, options: CompileOptions, warn, progress=None) -> Quantise:
    """The quantise pass with the user's calibration data, or seeded synthetic samples."""
    return Quantise(
        calibration=_calibration_samples(graph, options, warn),
        method=options.calib_method,
        percentile=options.percentile,
        per_tensor_weights=options.per_tensor_weights,
        progress=progress,
    )


def _snn_pass(options: CompileOptions) -> AnnToSnn:
    assert options.calib is not None  # CompileOptions.check
    return AnnToSnn(
        calibration=read_npz(options.calib),
        timesteps=options.timesteps,
        percentile=options.snn_percentile,
        per_layer=options.snn_per_layer,
        encoding=options.snn_encoding,
        bias_correction=options.snn_bias_correction,
        network=SpikingNetwork(),
    )


def _prune_pass(options: CompileOptions, warn) -> Prune:
    """The pruning pass; its correction fits the pruned layers to the user's --calib samples."""
    correcting = options.prune > 0 and options.prune_correction != "none"
    if correcting and options.calib is None:
        (warn or _warn_to_stderr)(
            "warning: --prune without --calib: the pruned layers are not corrected "
            "(docs/sparsity.md)"
        )
    return Prune(
        options.prune,
        options.prune_global,
        options.prune_first_last,
        calibration=read_npz(options.calib) if correcting and options.calib else None,
        correction=options.prune_correction,
    )


def snn_metadata(options: CompileOptions) -> dict[str, str]:
    """How the image runs as a spiking network (read back by `backend.spiking`)."""
    return {
        "snn_timesteps": str(options.timesteps),
        "snn_encoding": options.snn_encoding,
        "snn_seed": str(options.snn_seed),
    }


def choose_event_layers(
    graph: Graph, options: CompileOptions, zeros: dict[str, float] | None
) -> frozenset[str]:
    """The layers that send only their non-zero activations.

    --event-activations: every layer; --no-event-activations or snn mode: none. Neither: a layer
    whose output had a zero fraction z at calibration sends events when they take fewer packets
    than packed transmission, (1 - z) x n < n / v with v values per packed packet (16 int8, 4
    float32), i.e. z > 1 - 1/v; without calibration samples (float without --calib, a model
    that arrives quantised) every layer stays packed.
    """
    if options.mode == "snn" or options.event_activations is False:
        return frozenset()
    if options.event_activations:
        return frozenset(node.name for node in graph.nodes)
    if zeros is None:
        return frozenset()
    chosen = set()
    for node in graph.nodes:
        per_packet = values_per_packet(node.outputs[0].type.dtype, options.mode)
        if zeros.get(node.name, 0.0) > 1.0 - 1.0 / per_packet:
            chosen.add(node.name)
    return frozenset(chosen)


def sparsity_metadata(
    options: CompileOptions,
    pruning: Prune,
    zeros: dict[str, float] | None = None,
    event_layers: frozenset[str] = frozenset(),
) -> dict[str, str]:
    """How weights were pruned (zeros per layer, given and after) and how activations travel:
    the option (auto / on / off), the layers that send events, and the zero fraction of each
    layer's output at calibration when it was measured."""
    layers = {name: layer.as_dict() for name, layer in pruning.report.items()}
    option = {None: "auto", True: "on", False: "off"}[options.event_activations]
    return {
        "prune": json.dumps(
            {
                "fraction": options.prune,
                "global": options.prune_global,
                "first_last": options.prune_first_last,
                "correction": options.prune_correction,
                "layers": layers,
            },
            sort_keys=True,
        ),
        "event_activations": json.dumps(
            {
                "option": option,
                "layers": sorted(event_layers),
                "zeros_at_calibration": {
                    name: round(fraction, 6) for name, fraction in (zeros or {}).items()
                },
            },
            sort_keys=True,
        ),
    }


def compile_model(
    source: str | Path | onnx.ModelProto,
    options: CompileOptions = CompileOptions(),
    emit: Callable[[str], None] = print,
    warn: Callable[[str], None] | None = None,
    progress: Callable[[str], None] | None = None,
) -> CompileResult:
    """Compile an ONNX model (path or proto) into a placed, routed program.

    `progress` hears a short status before each long step (a terminal shows it, `s2c.progress`).
    """
    options.check()
    status = progress or (lambda text: None)
    seconds: dict[str, float] = {}
    clock = time.perf_counter()

    def lap(stage: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        seconds[stage] = now - clock
        clock = now

    machine = None if options.machine == "auto" else resolve_machine(options.machine)

    # A QDQ / QOperator model arrives quantised with its own parameters: it is calibrated only
    # for values it leaves in float, and the quantise pass does not run.
    def samples(float_graph: Graph) -> dict:
        if options.mode == "float":
            raise UnsupportedError(QUANTISED_IN_FLOAT_MODE)
        return _calibration_samples(float_graph, options, warn)

    calibration = Calibration(samples, options.calib_method, options.percentile)
    status("reading the model")
    graph = load_onnx(source, batch=options.batch, calibration=calibration)
    lap("frontend")
    prequantised = any(value.type.quant is not None for value in graph.values())
    if prequantised and options.mode == "float":
        raise UnsupportedError(QUANTISED_IN_FLOAT_MODE)
    if prequantised and options.mode == "snn":
        raise UnsupportedError("model is quantised; --mode snn converts float ReLU networks")
    passes = canonicalisation(options.mode)
    pruning = _prune_pass(options, warn)
    passes.append(pruning)
    # the zeros of each layer's output at calibration: int8 counts them while calibrating
    zeros: Quantise | MeasureActivationZeros | None = None
    if options.mode == "int8" and not prequantised:
        zeros = _quantise_pass(graph, options, warn, progress)
    elif options.mode == "float" and options.calib and options.event_activations is None:
        zeros = MeasureActivationZeros(read_npz(options.calib))
    if zeros is not None:
        passes.append(zeros)
    spiking = _snn_pass(options) if options.mode == "snn" else None
    if spiking is not None:
        passes.append(spiking)
    status(
        {"int8": "calibrating and quantising", "snn": "calibrating and converting to spikes"}.get(
            options.mode, "running the passes"
        )
    )
    manager = PassManager(passes, print_after=frozenset(options.print_after), emit=emit)
    manager.run(graph)
    if options.dump_ir:
        emit(print_graph(graph))
    lap("passes")
    check_results_fit(graph, machine)
    check_io_fits(graph)
    budget = (
        machine.chip_spec.data_bytes if machine else machine_from_name("chip").chip_spec.data_bytes
    )
    status("partitioning")
    parts = partition(
        graph, budget, spiking.network.layers if spiking else None, options.sparse_weights
    )
    lap("partition")
    if machine is None:
        machine = auto_machine(parts)
    place = place_cpsat if options.placer == "cpsat" else greedy_outcome
    status(f"placing {len(parts.slices)} slices ({options.placer})")
    outcome = place(
        [s.sram_bytes for s in parts.slices],
        [s.layer_index for s in parts.slices],
        slice_traffic(parts),
        machine,
        options.placement_options(),
        slice_names=[f"slice {s.index} of '{s.layer}'" for s in parts.slices],
    )
    placement = outcome.placement
    lap("place")
    metadata = {
        "s2c_version": __version__,
        "model_sha256": _model_digest(source),
        "graph": graph.name,
        "batch": str(options.batch),
    }
    if options.mode == "snn":
        metadata.update(snn_metadata(options))
    measured = zeros.zeros if zeros is not None else None
    event_layers = choose_event_layers(graph, options, measured)
    metadata.update(sparsity_metadata(options, pruning, measured, event_layers))
    metadata.update(sequence_axes(graph))
    status("routing and laying out memory")
    program = assemble(parts, placement, machine, options.mode, metadata, event_layers)
    outcome.report.figures["router_entries_max"] = max(
        (len(chip.router) for chip in program.chips), default=0
    )
    report = outcome.report.as_dict(wall_clock=False)
    program.metadata["placement"] = json.dumps(report, sort_keys=True)
    lap("assemble")
    return CompileResult(graph, parts, placement, program, machine, seconds, outcome.report)
