"""The reference interpreter: executes a program read from image bytes.

Loading (once per image):
0. every kernel descriptor is checked against the image and the machine model
   (`backend.descriptor_check`), so that no kernel runs on fields it cannot trust;
1. every parameter is read from the PE's SRAM content (or the chip's DRAM) at its address;
2. every sender (a kernel's output port, or the host injecting a graph input) has its key block
   walked through the router tables from its chip, exactly as the routers would forward it
   (`backend.route.simulate_delivery`): the result is the set of PEs (and the host) its packets
   reach, and the number of link hops per packet;
3. delivery is checked both ways: a packet that reaches a PE where no kernel's input port accepts
   its key is an error, and so is an input port whose sender's packets never reach its PE; every
   input box must be covered exactly once by the boxes of its senders.

Running: the host sends each graph input box; kernels fire in their order; each input port's
buffer is filled from the payloads of its senders (the part of each sender's box that falls in the
port's box), the kernel computes (`backend.kernels`), and its output box becomes the payload of its
key block. The host assembles graph outputs from the packets it received. Arrays carry a leading
samples axis so that a stack of inputs runs as independent inferences in one pass.

Kernels fire in groups (`backend.schedule`): the slices of a float layer whose output boxes tile
a region of its output as one computation over that region (`backend.layer_plans`: each slice's
payload is its box of the result), identical kernels with their buffers stacked along the
samples axis, and the chunks of one float conv or dense layer as batched or wider products.
A stacked buffer whose parts are each one sender's whole box, sent by consecutive kernels of one
group, is that group's result rows as they are (every packet's delivery was checked at load;
filling would copy the same values).
"""

from __future__ import annotations

import bisect
import functools
import math
from dataclasses import dataclass, field

import numpy as np
from threadpoolctl import ThreadpoolController

from backend.activity import SparsityCounter, SparsityPlan, SparsityStats
from backend.allocation import keep_freed_blocks
from backend.descriptor_check import check_descriptors
from backend.gc_pause import gc_paused
from backend.hardware import Machine
from backend.kernels import HIDDEN_ACCUMULATE, PreparedKernel
from backend.kernels_recurrent import RecurrentSlice, run_layer
from backend.layer_plans import LayerPlan, build_plans, head_kernels, link_plans
from backend.program import Box, Kernel, PECoord, Program, TensorRef
from backend.recurrent import RECURRENT_OPCODES, packets_per_step
from backend.route import TableIndex, simulate_delivery
from backend.schedule import FiringGroup, firing_schedule
from backend.snn_interpreter import SpikeStats, SpikingRun, prepare_spiking
from backend.sparse_weights import decode
from backend.stats import mac_count
from ir.errors import InputError
from ir.quant import dequantise, quantise


@dataclass
class Delivery:
    """Where one sender's packets go: PEs, host, link hops per packet, packets per inference."""

    pes: frozenset[PECoord]
    host: bool
    hops: int
    packets: int


@dataclass
class RunStats:
    """Counts for one run (all samples together)."""

    samples: int = 0
    kernels_fired: int = 0
    packets: int = 0
    link_hops: int = 0
    macs: int = 0
    per_layer: dict[str, dict[str, int]] = field(default_factory=dict)
    sparsity: SparsityStats | None = None  # dense vs stored / performed / sent (backend.activity)

    def scaled(self, samples: int) -> RunStats:
        """These per-inference counts for `samples` inferences."""
        per_layer = {
            name: layer.copy() if samples == 1 else {k: n * samples for k, n in layer.items()}
            for name, layer in self.per_layer.items()
        }
        return RunStats(
            samples,
            self.kernels_fired * samples,
            self.packets * samples,
            self.link_hops * samples,
            self.macs * samples,
            per_layer,
        )

    def merged(self, other: RunStats) -> RunStats:
        """The counts of this run and `other` (more samples of the same image) together."""
        per_layer = {
            name: {
                key: count + other.per_layer.get(name, {}).get(key, 0)
                for key, count in layer.items()
            }
            for name, layer in self.per_layer.items()
        }
        sparsity = self.sparsity
        if sparsity is not None and other.sparsity is not None:
            sparsity = sparsity.merged(other.sparsity)
        return RunStats(
            self.samples + other.samples,
            self.kernels_fired + other.kernels_fired,
            self.packets + other.packets,
            self.link_hops + other.link_hops,
            self.macs + other.macs,
            per_layer,
            sparsity,
        )

    def as_dict(self) -> dict:
        return {
            "samples": self.samples,
            "kernels_fired": self.kernels_fired,
            "packets": self.packets,
            "link_hops": self.link_hops,
            "macs": self.macs,
            "per_layer": self.per_layer,
            **({"sparsity": self.sparsity.as_dict()} if self.sparsity else {}),
        }


@functools.cache
def blas_libraries() -> list:
    """The process's BLAS libraries (threadpoolctl): finding them scans the loaded shared
    objects (milliseconds), which a run should not pay each time."""
    return list(ThreadpoolController().select(user_api="blas").lib_controllers)


_blas_threads_set: list[int] = []  # the BLAS thread count the last run set, once one has


def blas_threads(threads: int) -> None:
    """Run BLAS on `threads` threads from now on (a setting of the process, left as the run
    set it: setting and restoring it around every run took some 10 us, a fiftieth of a small
    model's run). Sets only what differs, and nothing when the last run set the same."""
    if _blas_threads_set == [threads]:
        return
    for lib in blas_libraries():
        if lib.num_threads != threads:
            lib.set_num_threads(threads)
    _blas_threads_set[:] = [threads]


def _sram_blocks(program: Program, machine: Machine) -> dict[PECoord, list[tuple[int, bytes]]]:
    """Each PE's initial SRAM content as sorted (address, bytes) blocks, checked against SRAM."""
    size = machine.chip_spec.sram_bytes
    blocks = {}
    for pe in program.pes:
        for address, data in pe.blocks:
            if address < 0 or address + len(data) > size:
                raise InputError(f"image: SRAM block at {address:#x} outside PE {pe.pe}")
        blocks[pe.pe] = sorted(pe.blocks)
    return blocks


def _read_param(ref: TensorRef, blocks: list[tuple[int, bytes]], where: str) -> np.ndarray:
    """The parameter's array, read from the SRAM block that holds its bytes."""
    if ref.memory != "sram":
        raise InputError(f"image: {where} parameter {ref.role} in {ref.memory} is not supported")
    index = bisect.bisect_right(blocks, ref.address, key=lambda block: block[0]) - 1
    if index < 0:
        raise InputError(f"image: {where} parameter {ref.role} at {ref.address:#x} has no data")
    address, data = blocks[index]
    offset = ref.address - address
    if offset + ref.nbytes > len(data):
        raise InputError(
            f"image: {where} parameter {ref.role} at {ref.address:#x}+{ref.nbytes} runs past "
            f"the SRAM block at {address:#x}"
        )
    dtype = np.dtype(ref.dtype).newbyteorder("<")
    array = np.frombuffer(data, dtype=dtype, count=int(np.prod(ref.shape)), offset=offset)
    # A copy: bytes payloads are not aligned for BLAS, and native byte order is wanted.
    return array.astype(ref.dtype, copy=True).reshape(ref.shape)


def _stack_params(
    params: list[dict[str, np.ndarray]], group: FiringGroup, kernel: Kernel, accumulate: type
):
    """The parameters of each unit of a group, in the accumulation type.

    Stacked on a new leading axis; or, when blocks share their inputs, joined per input class
    along the output channels into one wider layer: conv weight [M, ...] and bias [M] on axis 0,
    then the classes stacked on a new leading axis; dense weight [K, N] on axis 1 and bias [N] on
    axis 0 (a dense group shares only as one class).
    """
    firsts = group.unit_firsts()
    result: dict[str, np.ndarray] = {}
    for role in params[firsts[0]]:
        arrays = [params[first][role] for first in firsts]
        if not group.shared:
            result[role] = np.stack(arrays).astype(accumulate)
            continue
        if kernel.opcode == "dense":
            axis = 1 if role == "weight" else 0
            result[role] = np.concatenate(arrays, axis=axis).astype(accumulate)
            continue
        classes = [
            np.concatenate(arrays[start : start + group.sharing])
            for start in range(0, len(arrays), group.sharing)
        ]
        result[role] = np.stack(classes).astype(accumulate)
    return result


class Interpreter:
    """Loads a `Program` (as read from an image) and runs inferences on it."""

    def __init__(
        self, program: Program, threads: int | None = None, layer_plans: bool = True
    ) -> None:
        """`threads`: BLAS threads (default 1). More can help large products on an idle
        machine; BLAS threads wait for work spinning, so on a machine busy with other work
        (or beside another library's thread pool) they can slow a run down many times over.
        `layer_plans`: fire the slices of a layer as one computation where they qualify
        (`backend.layer_plans`); without, every kernel fires in its firing group."""
        self.threads = threads or 1
        self.layer_plans = layer_plans
        keep_freed_blocks()  # each run reuses the last run's large buffers (backend.allocation)
        with gc_paused():  # loading builds some 10^6 small objects and no reference cycles
            self._load(program)

    def _load(self, program: Program) -> None:
        self.program = program
        self.machine = Machine.from_description(program.machine)
        check_descriptors(program, self.machine)
        self.tables = {chip.chip: list(chip.router) for chip in program.chips}
        sram = _sram_blocks(program, self.machine)
        self.kernels: list[tuple[PECoord, Kernel]] = sorted(
            ((pe.pe, k) for pe in program.pes for k in pe.kernels), key=lambda item: item[1].order
        )
        self.params = [
            decode(
                k,
                {
                    ref.role: _read_param(ref, sram[pe], f"{k.layer}#{k.slice_index}")
                    for ref in k.params
                },
            )
            for pe, k in self.kernels
        ]
        self.prepared = [PreparedKernel(k) for _, k in self.kernels]
        kernels = [k for _, k in self.kernels]
        output_keys = {key for io in program.outputs for key, _ in io.keys}
        heads = head_kernels(kernels, output_keys)
        for index, prepared in enumerate(self.prepared):
            if index not in heads and prepared.kernel.opcode in ("conv", "dense"):
                prepared.accumulate = HIDDEN_ACCUMULATE
        self.macs = [mac_count(k) for _, k in self.kernels]
        self.deliveries = self._deliver()
        self.fills = [[_fill_plan(port) for port in k.inputs] for _, k in self.kernels]
        self._check_ports()
        self.sparsity_plan = SparsityPlan(kernels, self.params)
        alone = {i for i, k in enumerate(kernels) if self.sparsity_plan.sends_events[i]}
        plans = (
            build_plans(kernels, self.params, heads, alone, self.prepared)
            if self.layer_plans and program.mode != "snn"  # snn kernels step per timestep
            else []
        )
        planned = {index for plan in plans for index in plan.indices}
        read_keys = output_keys | {
            source.key
            for index, kernel in enumerate(kernels)
            if index not in planned
            for port in kernel.inputs
            for source in port.sources
        }
        link_plans(plans, read_keys)
        self.plans: dict[int, LayerPlan] = {plan.indices[0]: plan for plan in plans}
        self.schedule = firing_schedule(kernels, self.params, [p.indices for p in plans])
        self.readers = {group.members[0]: group.readers() for group in self.schedule}
        self.whole_sources = self._whole_sources()
        self.spiking = prepare_spiking(self) if program.mode == "snn" else []
        self.stacked_params = {
            group.members[0]: _stack_params(
                self.params,
                group,
                self.kernels[group.members[0]][1],
                self.prepared[group.members[0]].accumulate,
            )
            for group in self.schedule
            if group.units > 1
        }
        self.events = any("event_zero" in k.attrs for _, k in self.kernels)
        self.group_counts = {
            group.members[0]: self.sparsity_plan.group_counts(
                group.members,
                [self.deliveries[self.kernels[m][1].output.key].hops for m in group.members],
            )
            for group in self.schedule
        }
        self.per_inference = self._static_counts()
        self.output_plans = [
            [(key, box.relative_to(Box.full(io.shape))) for box, (key, _) in zip(io.boxes, io.keys)]
            for io in self.program.outputs
        ]
        self.input_plans = [
            [
                (key, (slice(None), *box.relative_to(Box.full(io.shape))))
                for box, (key, _) in zip(io.boxes, io.keys)
            ]
            for io in self.program.inputs
        ]
        # per group of the schedule: its `_Single` when it is one (fired so without counting)
        self.firings = [
            _Single(self, group.members[0])
            if len(group.members) == 1
            and group.members[0] not in self.plans
            and self.kernels[group.members[0]][1].opcode not in RECURRENT_OPCODES
            else None
            for group in self.schedule
        ]

    # -- loading ------------------------------------------------------------------------------
    def _senders(self) -> list[tuple[int, int, PECoord | None, int]]:
        """(key, mask, source PE or None for the host, packets per inference) of every sender."""
        senders: list[tuple[int, int, PECoord | None, int]] = []
        read = {source.key for _, k in self.kernels for port in k.inputs for source in port.sources}
        for io in self.program.inputs:
            for box, (key, mask) in zip(io.boxes, io.keys):
                if key in read:  # the host sends only inputs some kernel reads
                    senders.append((key, mask, None, -(-box.size // io.values_per_packet)))
        for pe, kernel in self.kernels:
            port = kernel.output
            senders.append((port.key, port.mask, pe, port.packet_count))
        return senders

    def _deliver(self) -> dict[int, Delivery]:
        deliveries = {}
        index = TableIndex(self.tables)
        for key, _mask, source, packets in self._senders():
            if key in deliveries:
                raise InputError(f"image: key {key:#010x} is sent by two senders")
            reached = simulate_delivery(index, self.machine, key, source)
            if reached.problems:
                raise InputError(f"image: packets with key {key:#010x}: {reached.problems[0]}")
            deliveries[key] = Delivery(frozenset(reached.pes), reached.host, reached.hops, packets)
        return deliveries

    def _check_ports(self) -> None:
        accepted: dict[PECoord, set[int]] = {}
        for (pe, kernel), fills in zip(self.kernels, self.fills):
            for port, plan in zip(kernel.inputs, fills):
                for source in port.sources:
                    delivery = self.deliveries.get(source.key)
                    if delivery is None or pe not in delivery.pes:
                        raise InputError(
                            f"image: {kernel.layer}#{kernel.slice_index} on PE {pe.chip}:{pe.core} "
                            f"expects key {source.key:#010x}, but the routers never deliver it"
                        )
                    accepted.setdefault(pe, set()).add(source.key)
                covered = sum(math.prod(_extent(t) for t in target) for _, target, _ in plan.copies)
                if covered != port.box.size:
                    raise InputError(
                        f"image: input port of {kernel.layer}#{kernel.slice_index} covers "
                        f"{covered} of {port.box.size} elements of its box"
                    )
        for key, delivery in self.deliveries.items():
            for pe in delivery.pes:
                if key not in accepted.get(pe, set()):
                    raise InputError(
                        f"image: packets with key {key:#010x} reach PE {pe.chip}:{pe.core}, "
                        "where no input port accepts them (misrouted)"
                    )
        for io in self.program.outputs:
            for key, _ in io.keys:
                if not self.deliveries[key].host:
                    raise InputError(
                        f"image: output '{io.name}' key {key:#010x} never reaches the host"
                    )

    # -- running ------------------------------------------------------------------------------
    def run(
        self, inputs: dict[str, np.ndarray], activity: bool = True
    ) -> tuple[dict[str, np.ndarray], RunStats | SpikeStats]:
        """Run on inputs shaped (samples, *input shape); outputs shaped (samples, *shape).

        An snn image runs its T timesteps (`run_spiking`). BLAS runs on `threads` threads (the
        process keeps that setting after the run: `blas_threads`).
        `activity`: count what depends on
        the values (activation zeros, MACs performed: `RunStats.sparsity`); without it the
        stats are the image's fixed per-inference counts, unless a layer sends events (its
        packets depend on the values, so they are counted either way).
        """
        if self.program.mode == "snn":
            return self.run_spiking(inputs)
        blas_threads(self.threads)
        return self._run(inputs, activity)

    def run_spiking(
        self, inputs: dict[str, np.ndarray]
    ) -> tuple[dict[str, np.ndarray], SpikeStats]:
        """Run an snn image for its T timesteps (`backend.snn_interpreter`)."""
        samples = next(iter(inputs.values())).shape[0] if inputs else 1
        run = SpikingRun(self, samples)
        blas_threads(1)
        return run.run(inputs), run.stats

    def _run(
        self, inputs: dict[str, np.ndarray], activity: bool = True
    ) -> tuple[dict[str, np.ndarray], RunStats]:
        payloads: dict[int, np.ndarray] = {}
        samples = 1
        for io, parts in zip(self.program.inputs, self.input_plans):
            data = inputs[io.name]
            samples = data.shape[0]
            if io.quant is not None:  # the host quantises, as ONNX QuantizeLinear
                data = quantise(data, *io.quant)
            for key, index in parts:
                payloads[key] = np.ascontiguousarray(data[index], dtype=io.dtype)
        counter = SparsityCounter(self.sparsity_plan) if activity or self.events else None
        origins: dict[int, tuple[np.ndarray, int]] = {}  # key -> (producer's result, block)
        results: list = [None] * len(self.plans)  # each layer plan's result
        singles = self.firings if counter is None else [None] * len(self.schedule)
        for group, single in zip(self.schedule, singles):
            if single is not None:
                single.fire(payloads, samples)
            else:
                self._fire(group, payloads, samples, counter, origins, results)
        outputs = {
            io.name: _assemble(io, plan, payloads, samples)
            for io, plan in zip(self.program.outputs, self.output_plans)
        }
        return outputs, self._run_stats(samples, counter)

    def _run_stats(self, samples: int, counter: SparsityCounter | None) -> RunStats:
        """The image's per-inference counts for `samples`; event-based packets as sent."""
        stats = self.per_inference.scaled(samples)
        if counter is None:
            return stats
        stats.sparsity = counter.stats
        if self.events:
            stats.packets = self.host_packets * samples + counter.packets
            stats.link_hops = self.host_hops * samples + counter.link_hops
        return stats

    def buffers(
        self,
        members: tuple[int, ...],
        payloads: dict[int, np.ndarray],
        samples: int,
        origins: dict[int, tuple[np.ndarray, int]] | None = None,
    ) -> list[np.ndarray]:
        """The input buffers of identical kernels, stacked along the samples axis.

        With `origins` (each payload's producer result and block position), a port whose
        members each read one whole producer box, from consecutive blocks of one result, is
        that result's rows: the copy would reproduce them.
        """
        first = members[0]
        if len(members) == 1:
            return [_fill(plan, payloads, samples) for plan in self.fills[first]]
        buffers = []
        for port, plan in enumerate(self.fills[first]):
            keys = self.whole_sources.get((members, port)) if origins is not None else None
            view = _stacked_view(keys, origins, samples) if keys and origins else None
            if view is not None and view.dtype == plan.dtype:
                buffers.append(view)
                continue
            stacked = np.empty((len(members) * samples, *plan.shape), dtype=plan.dtype)
            for position, member in enumerate(members):
                target = stacked[position * samples : (position + 1) * samples]
                _fill_into(self.fills[member][port], payloads, target)
            buffers.append(stacked)
        return buffers

    def _whole_sources(self) -> dict[tuple[tuple[int, ...], int], tuple[int, ...]]:
        """(readers of a group, port) -> the sender key of each reader, where every reader's
        port is exactly one sender's whole box."""
        result = {}
        for group in self.schedule:
            readers = group.readers()
            if len(readers) < 2:
                continue
            for port in range(len(self.kernels[readers[0]][1].inputs)):
                ports = [self.kernels[member][1].inputs[port] for member in readers]
                if all(len(p.sources) == 1 and p.sources[0].box == p.box for p in ports):
                    result[(readers, port)] = tuple(p.sources[0].key for p in ports)
        return result

    def _fire(
        self,
        group: FiringGroup,
        payloads: dict[int, np.ndarray],
        samples: int,
        counter: SparsityCounter | None,
        origins: dict[int, tuple[np.ndarray, int]] | None,
        results: list,
    ):
        """Fire a group at once: a layer plan over its region (`backend.layer_plans`), or its
        members' buffers stacked along the samples axis (a shared group fills only the first
        block of each input class)."""
        members = group.members
        first = members[0]
        plan = self.plans.get(first)
        if plan is not None:
            result = plan.fire(payloads, results, samples)
            counts = self.group_counts[first]
            if counter is not None and counts is not None:
                counter.fired_dense(first, counts, result, samples)
            return
        if self.kernels[first][1].opcode in RECURRENT_OPCODES:
            self._fire_recurrent(members, payloads, samples, counter)
            return
        buffers = self.buffers(self.readers[first], payloads, samples, origins)
        if group.shared:
            joined = self.stacked_params[first]
            result = self.prepared[first].call_shared(buffers, joined, group.sharing)
        elif group.units > 1:
            stacked = self.stacked_params[first]
            result = self.prepared[first].call_stacked(buffers, stacked, group.units)
        else:
            result = self.prepared[first](buffers, self.params[first])
        result = result.astype(self.kernels[first][1].output.dtype, copy=False)
        for position, member in enumerate(members):
            key = self.kernels[member][1].output.key
            payloads[key] = result[position * samples : (position + 1) * samples]
            if origins is not None:
                origins[key] = (result, position)
        if counter is None:
            return
        counts = self.group_counts[first]
        if counts is not None:  # dense dataflow in and out: one count for the group
            counter.fired_dense(first, counts, result, samples)
            return
        for position, member in enumerate(members):  # a shared block reads its class's buffers
            block = group.read_position(position) * samples
            read = [buffer[block : block + samples] for buffer in buffers]
            part = result[position * samples : (position + 1) * samples]
            counter.fired(
                member, read, part, self.deliveries[self.kernels[member][1].output.key].hops
            )

    def _fire_recurrent(
        self,
        members: tuple[int, ...],
        payloads: dict[int, np.ndarray],
        samples: int,
        counter: SparsityCounter | None,
    ) -> None:
        """Step the slices of a recurrent layer together (`backend.kernels_recurrent`): each
        step's rows reach the state ports as the image's fill plans say, before the next step."""
        kernels = [self.kernels[m][1] for m in members]
        slices, ports, exchange = [], [], []
        for member, kernel in zip(members, kernels):
            prepared = self.prepared[member]
            box_start = kernel.output.box.start[2]
            slices.append(
                RecurrentSlice(kernel.opcode, prepared.attrs, self.params[member], box_start)
            )
            plans = self.fills[member]
            exchanges = bool(kernel.attrs["exchange"])
            ordinary = plans[:-1] if exchanges else plans
            ports.append([_fill(plan, payloads, samples) for plan in ordinary])
            exchange.append(plans[-1].copies if exchanges else None)
        keys = [kernel.output.key for kernel in kernels]
        steps = kernels[0].output.box.shape[0]
        results = run_layer(slices, ports, exchange, keys, steps)
        for member, kernel, read, result in zip(members, kernels, ports, results):
            payloads[kernel.output.key] = result.astype(kernel.output.dtype, copy=False)
            if counter is not None:
                hops = self.deliveries[kernel.output.key].hops
                counter.fired(member, read, payloads[kernel.output.key], hops)

    def _static_counts(self) -> RunStats:
        """Counts of one inference: fixed by the image (dense dataflow fires every kernel)."""
        stats = RunStats(samples=1)
        for io in self.program.inputs:
            for key, _ in io.keys:
                if key in self.deliveries:
                    self._count_sender(stats, key)
        self.host_packets, self.host_hops = stats.packets, stats.link_hops
        for (_, kernel), macs in zip(self.kernels, self.macs):
            stats.kernels_fired += 1
            stats.macs += macs
            self._count_sender(stats, kernel.output.key)
            layer = stats.per_layer.setdefault(kernel.layer, {"slices": 0, "macs": 0, "packets": 0})
            layer["slices"] += 1
            layer["macs"] += macs
            layer["packets"] += self.deliveries[kernel.output.key].packets
            if kernel.opcode in RECURRENT_OPCODES:  # the same packets, sent step by step
                per_step = packets_per_step(kernel.output.box, kernel.output.values_per_packet)
                layer["packets_per_timestep"] = layer.get("packets_per_timestep", 0) + per_step
        return stats

    def _count_sender(self, stats: RunStats, key: int) -> None:
        delivery = self.deliveries[key]
        stats.packets += delivery.packets
        stats.link_hops += delivery.packets * delivery.hops


class _Single:
    """A group of one kernel, fired without the group machinery: its ports' buffers are the
    senders' payloads where one sender's whole box is the port's box, else filled."""

    def __init__(self, interpreter: Interpreter, index: int) -> None:
        self.prepared = interpreter.prepared[index]
        self.params = interpreter.params[index]
        kernel = interpreter.kernels[index][1]
        self.ports = [(plan.whole_from, plan) for plan in interpreter.fills[index]]
        self.key = kernel.output.key
        self.dtype = np.dtype(kernel.output.dtype)

    def fire(self, payloads: dict[int, np.ndarray], samples: int) -> None:
        inputs = [
            payloads[key] if key is not None else _fill(plan, payloads, samples)
            for key, plan in self.ports
        ]
        result = self.prepared.checked(self.prepared.compute(inputs, self.params, samples))
        payloads[self.key] = result if result.dtype == self.dtype else result.astype(self.dtype)


@dataclass(frozen=True)
class FillPlan:
    """How an input port's buffer is filled: (sender key, where in the buffer, which part)."""

    shape: tuple[int, ...]
    dtype: str
    copies: tuple[tuple[int, tuple[slice, ...], tuple[slice, ...]], ...]
    # the key of the one sender whose box is the port's box (its payload is the buffer), else None
    whole_from: int | None = None


def _extent(index: slice) -> int:
    return index.stop - index.start


def _fill_plan(port) -> FillPlan:
    copies = []
    whole_from = None
    for source in port.sources:
        overlap = _overlap(port.box, source.box)
        if overlap is not None:
            copies.append((source.key, *overlap))
        if source.box == port.box:
            whole_from = source.key
    whole_from = whole_from if len(copies) == 1 else None
    return FillPlan(port.box.shape, port.dtype, tuple(copies), whole_from)


def _overlap(box: Box, source: Box) -> tuple[tuple[slice, ...], tuple[slice, ...]] | None:
    """Where the common part of two boxes lies in `box` and in `source`, or None when they do
    not overlap (`Box.intersect` then `Box.relative_to` both ways, in one pass: a large
    image has some 10^5 of them)."""
    in_box, in_source = [], []
    for start, stop, source_start, source_stop in zip(
        box.start, box.stop, source.start, source.stop
    ):
        low, high = max(start, source_start), min(stop, source_stop)
        if high <= low:
            return None
        in_box.append(slice(low - start, high - start))
        in_source.append(slice(low - source_start, high - source_start))
    return tuple(in_box), tuple(in_source)


def _stacked_view(
    keys: tuple[int, ...], origins: dict[int, tuple[np.ndarray, int]], samples: int
) -> np.ndarray | None:
    """The rows of one producer result holding the payloads of `keys` one after another, or
    None when the payloads are not consecutive blocks of one result."""
    if keys[0] not in origins:
        return None
    result, start = origins[keys[0]]
    for offset, key in enumerate(keys):
        origin = origins.get(key)
        if origin is None or origin[0] is not result or origin[1] != start + offset:
            return None
    return result[start * samples : (start + len(keys)) * samples]


def _fill(plan: FillPlan, payloads: dict[int, np.ndarray], samples: int) -> np.ndarray:
    """The port's buffer: each sender's payload part written where it belongs."""
    if plan.whole_from is not None:
        return payloads[plan.whole_from]
    buffer = np.empty((samples, *plan.shape), dtype=plan.dtype)
    _fill_into(plan, payloads, buffer)
    return buffer


def _fill_into(plan: FillPlan, payloads: dict[int, np.ndarray], buffer: np.ndarray) -> None:
    """Write each sender's part of the port's box into `buffer` (samples, *box shape)."""
    for key, target, source in plan.copies:
        buffer[(slice(None), *target)] = payloads[key][(slice(None), *source)]


def _assemble(io, plan, payloads: dict[int, np.ndarray], samples: int) -> np.ndarray:
    """A graph output from the packets the host received (dequantised when int8)."""
    result = np.empty((samples, *io.shape), dtype=io.dtype)
    for key, target in plan:
        result[(slice(None), *target)] = payloads[key]
    if io.quant is not None:
        return dequantise(result, *io.quant)
    return result
