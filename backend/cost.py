"""The cost model: cycles, packets, hops, time and energy per slice, per layer and per inference.

It works from a `Program` read back from image bytes, so `s2c report IMAGE.bin` needs no model.
Every parameter comes from the machine the image names (`backend.hardware.ChipSpec`); the
method, its sources and its limits are in `docs/cost-model.md`. Per firing of one slice (one
kernel on one PE, one inference of the image's batch):

- MAC-array cycles (int8 conv and dense): MACs / (64 x utilisation), with the utilisation seen on
  real chips for that layer kind (`mac_utilisation_conv`, `mac_utilisation_dense`; int8 gru and
  lstm count as dense).
- ARM-core cycles: fp32 conv and dense do MACs x `arm_cycles_per_fp32_mac` on the Cortex-M4F;
  every kernel spends `arm_cycles_per_element` per value it reads or writes (per output value for
  conv and dense: bias, requantisation, activation), plus `exp_cycles` per value of an
  exponential function (softmax, sigmoid, tanh, ...), plus `arm_cycles_per_packet` per packet it
  sends or receives. A gru / lstm slice (all its T steps) spends, per gate value (T x B x units
  x gates), `arm_cycles_per_element` + `exp_cycles` (scale, bias, sigmoid or tanh), plus its
  MACs x `arm_cycles_per_fp32_mac` in float mode. An attention slice does its MACs (both
  products) x `arm_cycles_per_fp32_mac`, plus `arm_cycles_per_element` + `exp_cycles` per score
  (its softmax), plus `arm_cycles_per_element` per value it reads or writes.
- DMA seconds: bytes of its parameters that live in DRAM / `dram_bytes_per_second`.
- Packets: its output's packets; link hops: packets x chip-to-chip links its multicast tree uses
  (walked through the router tables, as the interpreter does). A kernel that sends events (one
  packet per non-zero element, docs/sparsity.md) is counted ceil((1 - z) x elements) packets,
  z = the zero fraction its layer's output had at calibration (image metadata
  `event_activations`), or one per element when z was not measured (an upper bound); a kernel
  whose first input comes as events does its MACs x (1 - z) of the producing layer.

Time: a slice's busy time is (MAC-array + ARM cycles) / clock + DMA seconds (the two units are
not overlapped). Latency is the critical path of one inference through the placed graph: a slice
starts when its PE is free and every sender's packets have arrived; packets arrive after the
sender finishes, plus the hops to the receiving chip (one packet time per link) and the stream
of the sender's packets over the first link, or the on-chip network hops between QPEs
(`noc_cycles_per_hop`). Pipelined (layers working on successive inferences), the period is the
busiest PE's busy time; throughput is its inverse.

Energy at each performance level: MAC-array ops x the dynamic energy per op (chip power at full
MAC load, `measured_tops / tops_per_watt`, less the idle baseline, spread over the measured ops),
plus ARM cycles x the dynamic energy per ARM cycle (`arm_joules_per_cycle` at the top level,
scaled by voltage squared), plus the idle baseline of every chip in use for the time of one
inference (latency) or of one period (pipelined).

Spiking images (hook): `LayerActivity` per layer gives spikes and synaptic events per timestep,
as an snn run of the interpreter counts them. A layer with activity adds its synaptic events,
spread over its slices, at the chip's published event rate, and its spikes as packets.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from backend.gc_pause import gc_paused
from backend.hardware import ChipSpec, Machine
from backend.program import Kernel, PECoord, Program
from backend.recurrent import GATES, RECURRENT_OPCODES
from backend.route import TableIndex, simulate_delivery
from backend.stats import mac_count
from backend.timing import Routes, critical_path

# Functions that run on the exp/log accelerator, one call per value.
EXPONENTIAL = frozenset(
    {"softmax", "sigmoid", "tanh", "exp", "log", "elu", "selu", "celu", "softplus", "gelu", "erf"}
)
MAC_ARRAY_OPCODES = ("conv", "dense", "matmul")


@dataclass(frozen=True)
class LayerActivity:
    """What a spiking layer did in one inference: counts per timestep (the snn hook)."""

    spikes: tuple[int, ...]
    synaptic_events: tuple[int, ...]


@dataclass
class SliceCost:
    """One kernel's work per firing, and where it runs."""

    layer: str
    opcode: str
    pe: PECoord
    order: int
    macs: int
    mac_array_cycles: float
    arm_cycles: float
    dma_seconds: float
    packets_sent: int
    packets_received: int
    link_hops: int
    parameter_bytes: int
    synaptic_events: int = 0

    def busy_seconds(self, clock_hz: float) -> float:
        return (self.mac_array_cycles + self.arm_cycles) / clock_hz + self.dma_seconds


@dataclass
class LayerCost:
    """A layer's totals over its slices; `seconds` per performance level (slowest slice)."""

    name: str
    opcode: str
    slices: int = 0
    pes: int = 0
    macs: int = 0
    mac_array_cycles: float = 0.0
    arm_cycles: float = 0.0
    parameter_bytes: int = 0
    packets: int = 0
    link_hops: int = 0
    spikes: int | None = None
    synaptic_events: int | None = None
    seconds: list[float] = field(default_factory=list)
    energy_joules: list[float] = field(default_factory=list)


@dataclass
class LevelEstimate:
    """Time and energy of one inference at one performance level (clock and voltage)."""

    clock_hz: int
    voltage: float
    latency_seconds: float
    period_seconds: float
    dynamic_joules: float
    idle_joules: float
    pipelined_joules: float

    @property
    def energy_joules(self) -> float:
        """Energy of one inference on its own: dynamic energy plus the chips' idle baseline."""
        return self.dynamic_joules + self.idle_joules

    @property
    def throughput_per_second(self) -> float:
        return 1.0 / self.period_seconds if self.period_seconds > 0 else math.inf

    def as_dict(self) -> dict:
        return {
            "clock_hz": self.clock_hz,
            "voltage": self.voltage,
            "latency_seconds": self.latency_seconds,
            "period_seconds": self.period_seconds,
            "throughput_per_second": self.throughput_per_second,
            "energy_joules": self.energy_joules,
            "dynamic_joules": self.dynamic_joules,
            "idle_joules": self.idle_joules,
            "pipelined_joules": self.pipelined_joules,
            "average_watts": self.energy_joules / self.latency_seconds
            if self.latency_seconds > 0
            else 0.0,
        }


@dataclass
class Estimate:
    """The cost of one inference of an image: per slice, per layer, per performance level."""

    mode: str
    chips_used: int
    pes_used: int
    slices: list[SliceCost]
    layers: list[LayerCost]
    levels: list[LevelEstimate]
    bottleneck_layer: str
    spiking: bool

    @property
    def macs(self) -> int:
        return sum(s.macs for s in self.slices)

    @property
    def packets(self) -> int:
        return sum(s.packets_sent for s in self.slices)

    @property
    def link_hops(self) -> int:
        return sum(s.link_hops for s in self.slices)

    def as_dict(self) -> dict:
        return {
            "mode": self.mode,
            "chips_used": self.chips_used,
            "pes_used": self.pes_used,
            "macs": self.macs,
            "packets": self.packets,
            "link_hops": self.link_hops,
            "bottleneck_layer": self.bottleneck_layer,
            "spiking": self.spiking,
            "levels": [level.as_dict() for level in self.levels],
            "layers": [_layer_dict(layer) for layer in self.layers],
        }


def _layer_dict(layer: LayerCost) -> dict:
    return {
        "name": layer.name,
        "opcode": layer.opcode,
        "slices": layer.slices,
        "pes": layer.pes,
        "macs": layer.macs,
        "mac_array_cycles": layer.mac_array_cycles,
        "arm_cycles": layer.arm_cycles,
        "parameter_bytes": layer.parameter_bytes,
        "packets": layer.packets,
        "link_hops": layer.link_hops,
        "spikes": layer.spikes,
        "synaptic_events": layer.synaptic_events,
        "seconds": layer.seconds,
        "energy_joules": layer.energy_joules,
    }


# -- per slice ----------------------------------------------------------------------------------
def mac_array_cycles(kernel: Kernel, macs: int, spec: ChipSpec) -> float:
    """MACs / (MACs per cycle x utilisation) for int8 conv, dense, matmul and gru / lstm gates;
    0 for everything else."""
    if kernel.opcode in RECURRENT_OPCODES and kernel.attrs.get("int8"):
        return macs / (spec.macs_per_pe * spec.mac_utilisation_dense)
    if kernel.opcode not in MAC_ARRAY_OPCODES or not _on_mac_array(kernel):
        return 0.0
    utilisation = spec.mac_utilisation_conv
    if kernel.opcode == "dense":
        utilisation = spec.mac_utilisation_dense
    if kernel.opcode == "matmul":
        utilisation = spec.mac_utilisation_matmul
    return macs / (spec.macs_per_pe * utilisation)


def arm_cycles(kernel: Kernel, macs: int, spec: ChipSpec) -> float:
    """Cycles of the Cortex-M4F for everything but packets (see the module docstring)."""
    out = kernel.output.box.size
    per_element = spec.arm_cycles_per_element
    if kernel.opcode in RECURRENT_OPCODES:  # every gate value: scale, bias, sigmoid or tanh
        fp32 = 0.0 if kernel.attrs.get("int8") else macs * spec.arm_cycles_per_fp32_mac
        gate_values = out * GATES[kernel.opcode]
        return fp32 + gate_values * (per_element + spec.exp_cycles)
    if kernel.opcode in MAC_ARRAY_OPCODES:
        fp32 = 0.0 if _on_mac_array(kernel) else macs * spec.arm_cycles_per_fp32_mac
        return fp32 + out * per_element
    read = sum(port.box.size for port in kernel.inputs)
    cycles = (read + out) * per_element
    if kernel.opcode == "attention":  # fp32 products, then a softmax over each row of scores
        q, k, _ = (port.box.shape for port in kernel.inputs)
        scores = math.prod(q[:-1]) * k[int(kernel.attrs["axis"])] * int(kernel.attrs["heads"])
        fp32 = macs * spec.arm_cycles_per_fp32_mac
        return fp32 + scores * (per_element + spec.exp_cycles) + cycles
    if kernel.opcode == "pool":
        cycles = out * math.prod(_ints(kernel.attrs.get("kernel", (1,)))) * per_element
    if _function(kernel) in EXPONENTIAL and kernel.opcode != "lookup":
        cycles += max(read, out) * spec.exp_cycles
    return cycles


def _on_mac_array(kernel: Kernel) -> bool:
    """int8 conv and dense (int8 weights) and int8 matmul (both operands int8) use the array."""
    if kernel.opcode == "matmul":
        return bool(kernel.attrs.get("int8"))
    return any(p.role in ("weight", "weight_values") and p.dtype == "int8" for p in kernel.params)


def _ints(value: object) -> tuple[int, ...]:
    return tuple(int(v) for v in value) if isinstance(value, tuple) else (int(str(value)),)


def _function(kernel: Kernel) -> str:
    """The element function a kernel computes: its opcode, or its activation / IR op."""
    for name in ("function", "ir_op"):
        if name in kernel.attrs:
            return str(kernel.attrs[name]).lower()
    return kernel.opcode


def slice_costs(
    program: Program, machine: Machine, kernels: list[tuple[PECoord, Kernel]]
) -> list[SliceCost]:
    """The cost of every kernel's firing; `kernels` in firing order (`kernels_in_order`)."""
    spec = machine.chip_spec
    packets_by_key, hops_by_key = _deliveries(program, machine, kernels)
    zeros = calibration_zeros(program)
    producer = {kernel.output.key: kernel.layer for _, kernel in kernels}
    costs = []
    for pe, kernel in kernels:
        macs = expected_macs(kernel, zeros, producer)
        received = sum(packets_by_key.get(s.key, 0) for p in kernel.inputs for s in p.sources)
        sent = packets_by_key[kernel.output.key]
        costs.append(
            SliceCost(
                layer=kernel.layer,
                opcode=kernel.opcode,
                pe=pe,
                order=kernel.order,
                macs=macs,
                mac_array_cycles=mac_array_cycles(kernel, macs, spec),
                arm_cycles=arm_cycles(kernel, macs, spec)
                + (sent + received) * spec.arm_cycles_per_packet,
                dma_seconds=sum(p.nbytes for p in kernel.params if p.memory == "dram")
                / spec.dram_bytes_per_second,
                packets_sent=sent,
                packets_received=received,
                link_hops=sent * hops_by_key.get(kernel.output.key, 0),
                parameter_bytes=sum(p.nbytes for p in kernel.params),
            )
        )
    return costs


def _deliveries(
    program: Program, machine: Machine, kernels: list[tuple[PECoord, Kernel]]
) -> tuple[dict[int, int], dict[int, int]]:
    """Packets per inference and link hops per packet of every sender, by key."""
    index = TableIndex({chip.chip: list(chip.router) for chip in program.chips})
    packets: dict[int, int] = {}
    hops: dict[int, int] = {}
    for io in program.inputs:
        for box, (key, _) in zip(io.boxes, io.keys):
            packets[key] = -(-box.size // io.values_per_packet)
            hops[key] = simulate_delivery(index, machine, key, None).hops
    zeros = calibration_zeros(program)
    for pe, kernel in kernels:
        packets[kernel.output.key] = expected_packets(kernel, zeros)
        hops[kernel.output.key] = simulate_delivery(index, machine, kernel.output.key, pe).hops
    return packets, hops


def calibration_zeros(program: Program) -> dict[str, float]:
    """Zero fraction of each layer's output at calibration, as the compiler stored it."""
    try:
        record = json.loads(program.metadata.get("event_activations", "{}"))
    except ValueError:
        return {}
    zeros = record.get("zeros_at_calibration", {}) if isinstance(record, dict) else {}
    return {str(k): float(v) for k, v in zeros.items()} if isinstance(zeros, dict) else {}


def expected_packets(kernel: Kernel, zeros: Mapping[str, float]) -> int:
    """Packets per inference: an event kernel's expected non-zeros, else its key block's."""
    if "event_zero" not in kernel.attrs or kernel.layer not in zeros:
        return kernel.output.packet_count
    return math.ceil((1.0 - zeros[kernel.layer]) * kernel.output.box.size)


def expected_macs(kernel: Kernel, zeros: Mapping[str, float], producer: Mapping[int, str]) -> int:
    """MACs with the stored weights; a kernel whose first input comes as events processes only
    the inputs that arrive: x (1 - z), z = its producing layer's zeros at calibration."""
    macs = mac_count(kernel)
    if "event_input_zeros" not in kernel.attrs or not kernel.inputs:
        return macs
    layers = {producer.get(source.key, "") for source in kernel.inputs[0].sources}
    measured = [zeros[layer] for layer in layers if layer in zeros]
    if len(measured) != 1:
        return macs
    return round(macs * (1.0 - measured[0]))


# -- energy -------------------------------------------------------------------------------------
def mac_joules_per_op(spec: ChipSpec, level: int) -> float:
    """Dynamic energy of one int8 op (a multiply or an add) on the MAC array at `level`.

    At full MAC load the chip does ops = measured_tops x clock / top clock per second and draws
    ops / tops_per_watt watts; less the idle baseline, spread over those ops.
    """
    ops_per_second = spec.measured_tops * 1e12 * spec.clock_levels_hz[level] / _top_clock(spec)
    full_load_watts = ops_per_second / (spec.tops_per_watt[level] * 1e12)
    return max(full_load_watts - spec.idle_power_watts, 0.0) / ops_per_second


def arm_joules_per_cycle(spec: ChipSpec, level: int) -> float:
    """Dynamic energy of one PE cycle of ARM work at `level`.

    `arm_joules_per_cycle` holds it at the top level; dynamic energy per cycle goes with the
    square of the voltage, so a lower level costs (V / V_top)^2 of it.
    """
    top = spec.clock_levels_hz.index(_top_clock(spec))
    scale = (spec.level_voltages[level] / spec.level_voltages[top]) ** 2
    return spec.arm_joules_per_cycle * scale


def cycles_per_synaptic_event(spec: ChipSpec) -> float:
    """PE cycles one synaptic event takes at the published rate (all PEs, top clock)."""
    return spec.pe_count * _top_clock(spec) / spec.synaptic_events_per_second


def _top_clock(spec: ChipSpec) -> int:
    return max(spec.clock_levels_hz)


def slice_joules(cost: SliceCost, per_op: float, per_cycle: float) -> float:
    """Dynamic energy of one firing: MAC-array ops x `per_op` plus ARM cycles x `per_cycle`."""
    mac_ops = 2 * cost.macs if cost.mac_array_cycles > 0 else 0
    return mac_ops * per_op + cost.arm_cycles * per_cycle


# -- per inference ------------------------------------------------------------------------------
def kernels_in_order(program: Program) -> list[tuple[PECoord, Kernel]]:
    """Every (PE, kernel) of the program in firing order."""
    return sorted(
        ((pe.pe, kernel) for pe in program.pes for kernel in pe.kernels),
        key=lambda item: item[1].order,
    )


def estimate(program: Program, activity: Mapping[str, LayerActivity] | None = None) -> Estimate:
    """The cost of one inference of `program` at every performance level of its machine."""
    with gc_paused():
        return _estimate(program, activity or {})


def _estimate(program: Program, activity: Mapping[str, LayerActivity]) -> Estimate:
    machine = Machine.from_description(program.machine)
    spec = machine.chip_spec
    kernels = kernels_in_order(program)
    costs = slice_costs(program, machine, kernels)
    _add_activity(costs, activity, spec)
    layers = _layers(costs, activity)
    chips = len({pe.chip for pe, _ in kernels})
    routes = Routes(program, machine, kernels)
    levels = []
    for level, clock in enumerate(spec.clock_levels_hz):
        busy = [cost.busy_seconds(clock) for cost in costs]
        timing = critical_path(routes, kernels, busy, clock)
        per_op, per_cycle = mac_joules_per_op(spec, level), arm_joules_per_cycle(spec, level)
        joules = [slice_joules(cost, per_op, per_cycle) for cost in costs]
        _fill_layers(layers, costs, busy, joules)
        dynamic = sum(joules)
        idle_watts = chips * spec.idle_power_watts
        levels.append(
            LevelEstimate(
                clock,
                spec.level_voltages[level],
                timing.latency_seconds,
                timing.period_seconds,
                dynamic,
                idle_watts * timing.latency_seconds,
                dynamic + idle_watts * timing.period_seconds,
            )
        )
    return Estimate(
        mode=program.mode,
        chips_used=chips,
        pes_used=len({pe for pe, _ in kernels}),
        slices=costs,
        layers=list(layers.values()),
        levels=levels,
        bottleneck_layer=_bottleneck(costs, spec.clock_hz),
        spiking=bool(activity),
    )


def _add_activity(
    costs: list[SliceCost], activity: Mapping[str, LayerActivity], spec: ChipSpec
) -> None:
    """Spread each spiking layer's synaptic events and spikes over its slices (the snn hook)."""
    for name, layer in activity.items():
        mine = [cost for cost in costs if cost.layer == name]
        if not mine:
            continue
        events = sum(layer.synaptic_events) / len(mine)
        spikes = sum(layer.spikes) / len(mine)
        for cost in mine:
            cost.synaptic_events = round(events)
            cost.arm_cycles += events * cycles_per_synaptic_event(spec)
            cost.arm_cycles += spikes * spec.arm_cycles_per_packet
            cost.packets_sent += round(spikes)


def _layers(costs: list[SliceCost], activity: Mapping[str, LayerActivity]) -> dict[str, LayerCost]:
    layers: dict[str, LayerCost] = {}
    pes: dict[str, set[PECoord]] = {}
    for cost in costs:
        layer = layers.setdefault(cost.layer, LayerCost(cost.layer, cost.opcode))
        layer.slices += 1
        layer.macs += cost.macs
        layer.mac_array_cycles += cost.mac_array_cycles
        layer.arm_cycles += cost.arm_cycles
        layer.parameter_bytes += cost.parameter_bytes
        layer.packets += cost.packets_sent
        layer.link_hops += cost.link_hops
        pes.setdefault(cost.layer, set()).add(cost.pe)
    for name, layer in layers.items():
        layer.pes = len(pes[name])
        if name in activity:
            layer.spikes = sum(activity[name].spikes)
            layer.synaptic_events = sum(activity[name].synaptic_events)
    return layers


def _fill_layers(
    layers: dict[str, LayerCost], costs: list[SliceCost], busy: list[float], joules: list[float]
) -> None:
    """Append one level's figures: the slowest slice's time and the sum of energies."""
    seconds: dict[str, float] = {}
    energy: dict[str, float] = {}
    for cost, time, joule in zip(costs, busy, joules):
        seconds[cost.layer] = max(seconds.get(cost.layer, 0.0), time)
        energy[cost.layer] = energy.get(cost.layer, 0.0) + joule
    for name, layer in layers.items():
        layer.seconds.append(seconds[name])
        layer.energy_joules.append(energy[name])


def _bottleneck(costs: list[SliceCost], clock_hz: float) -> str:
    """The layer that keeps the busiest PE busiest (it sets the pipelined period)."""
    per_pe: dict[PECoord, dict[str, float]] = {}
    for cost in costs:
        layers = per_pe.setdefault(cost.pe, {})
        layers[cost.layer] = layers.get(cost.layer, 0.0) + cost.busy_seconds(clock_hz)
    if not per_pe:
        return ""
    busiest = max(per_pe.values(), key=lambda layers: sum(layers.values()))
    return max(busiest, key=lambda name: busiest[name])
