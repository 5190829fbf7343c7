"""Assemble a placed program: keys, router tables, SRAM layout and I/O map, from a partition.

Steps, in order:
1. keys: every sender (a slice's output port, or the host injecting a graph input) gets an
   aligned key block with one key per packet (`backend.keys`);
2. ports: a slice's input port (a box of a tensor) lists every sender of that tensor whose box
   overlaps it; those senders multicast to the slice's PE;
3. routes: one multicast flow per sender to the PEs (and the host, for graph outputs) that need
   it, turned into router tables (`backend.route`);
4. layout: each PE's kernels get their descriptor, buffers and parameters at SRAM addresses
   (`backend.layout`), and parameters become the PE's initial SRAM content.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from backend.hardware import Machine
from backend.keys import allocate_keys
from backend.layout import PELayout, descriptor_size, verify_layout
from backend.partition import Partition, Slice
from backend.program import (
    Box,
    ChipImage,
    InputPort,
    IOTensor,
    Kernel,
    OutputPort,
    PECoord,
    PEImage,
    PortSource,
    Program,
    TensorRef,
)
from backend.route import Flow, route_flows

PAYLOAD_BYTES = 16  # 128-bit multicast payload (SPINNAKER2.md, packets)


def values_per_packet(dtype: str, mode: str = "float", events: bool = False) -> int:
    """Values one packet carries; in snn mode a bool tensor is spikes: one key, no payload.

    With event-based activations (`events`, docs/sparsity.md) a kernel sends each non-zero
    element alone: key = the element's key, payload = its value.
    """
    if (mode == "snn" and dtype == "bool") or events:
        return 1
    return PAYLOAD_BYTES // np.dtype(dtype).itemsize


@dataclass(frozen=True)
class Sender:
    """Who sends a box of a tensor: a slice (index) or the host (None)."""

    slice_index: int | None
    tensor: int
    box: Box
    key: int
    mask: int


def _senders(partition: Partition, mode: str = "float", events: bool = False) -> list[Sender]:
    """Every sender with its key block; the host's inputs always travel packed (dense)."""
    boxes: list[tuple[int | None, int, Box]] = []
    for _, tensor in partition.graph_inputs:
        boxes.append((None, tensor, Box.full(partition.tensors[tensor].shape)))
    for s in partition.slices:
        boxes.append((s.index, s.output, s.spec.out_box))
    counts = [
        -(
            -box.size
            // values_per_packet(partition.tensors[t].dtype, mode, events and i is not None)
        )
        for i, t, box in boxes
    ]
    keys = allocate_keys(counts)
    return [Sender(i, t, b, k, m) for (i, t, b), (k, m) in zip(boxes, keys)]


def _sources_by_port(partition: Partition, senders: list[Sender]):
    """For each slice and input port, the senders whose box overlaps the port's box."""
    by_tensor: dict[int, list[Sender]] = {}
    for sender in senders:
        by_tensor.setdefault(sender.tensor, []).append(sender)
    result: dict[tuple[int, int], list[Sender]] = {}
    for s in partition.slices:
        for port, ((_, box), tensor) in enumerate(zip(s.spec.inputs, s.inputs)):
            result[s.index, port] = [
                sender for sender in by_tensor.get(tensor, []) if sender.box.intersect(box)
            ]
    return result


def _flows(partition: Partition, senders: list[Sender], sources, pe_of: list[PECoord]):
    targets: dict[int, set] = {i: set() for i in range(len(senders))}
    index_of = {id(sender): i for i, sender in enumerate(senders)}
    for (slice_index, _), port_senders in sources.items():
        for sender in port_senders:
            targets[index_of[id(sender)]].add(pe_of[slice_index])
    outputs = {tensor for _, tensor in partition.graph_outputs}
    for i, sender in enumerate(senders):
        if sender.slice_index is not None and sender.tensor in outputs:
            targets[i].add("host")
    flows = []
    for i, sender in enumerate(senders):
        if not targets[i] and sender.slice_index is None:
            continue  # a graph input no kernel reads: the host sends nothing for it
        source = None if sender.slice_index is None else pe_of[sender.slice_index]
        flows.append(Flow(sender.key, sender.mask, source, frozenset(targets[i])))
    return flows


def _zero(partition: Partition, tensor: int) -> int:
    """The value an event-based port leaves unsent: the tensor's zero point (0 unquantised)."""
    quant = partition.tensors[tensor].quant
    return 0 if quant is None else int(quant[1])


def _event_attrs(s: Slice, partition: Partition) -> dict[str, int | tuple[int, ...]]:
    """Zeros of an event-based kernel: what it does not send, what its ports start from."""
    return {
        "event_zero": _zero(partition, s.output),
        "event_input_zeros": tuple(_zero(partition, tensor) for tensor in s.inputs),
    }


def _kernel(
    s: Slice,
    partition: Partition,
    sender_of: Sender,
    sources,
    layout: PELayout,
    mode: str,
    events: bool = False,
):
    tensors = partition.tensors
    spec = s.spec
    layout.allocate(
        f"{s.layer}#{s.index}.descriptor", descriptor_size(len(spec.inputs), 0, len(spec.params))
    )
    ports = []
    for port, ((_, box), tensor) in enumerate(zip(spec.inputs, s.inputs)):
        dtype = tensors[tensor].dtype
        address = layout.allocate(
            f"{s.layer}#{s.index}.in{port}", box.size * np.dtype(dtype).itemsize
        )
        port_sources = tuple(
            PortSource(sender.key, sender.mask, sender.box) for sender in sources[s.index, port]
        )
        ports.append(InputPort(tensor, box, dtype, address, port_sources))
    out_dtype = tensors[s.output].dtype
    out_address = layout.allocate(
        f"{s.layer}#{s.index}.out", spec.out_box.size * np.dtype(out_dtype).itemsize
    )
    output = OutputPort(
        s.output,
        spec.out_box,
        out_dtype,
        out_address,
        sender_of.key,
        sender_of.mask,
        values_per_packet(out_dtype, mode, events),
    )
    params, blocks = [], []
    for role, array in spec.params:
        data = np.require(array, requirements="C")  # keeps 0-d arrays 0-d
        address = layout.allocate(f"{s.layer}#{s.index}.{role}", data.nbytes)
        params.append(TensorRef(role, str(data.dtype), tuple(data.shape), "sram", address))
        blocks.append((address, data.astype(data.dtype.newbyteorder("<")).tobytes()))
    kernel = Kernel(
        spec.opcode,
        s.layer,
        s.index,
        dict(spec.attrs, **_event_attrs(s, partition)) if events else dict(spec.attrs),
        tuple(ports),
        output,
        tuple(params),
        order=s.index,
    )
    return kernel, blocks


def assemble(
    partition: Partition,
    pe_of: list[PECoord],
    machine: Machine,
    mode: str,
    metadata: dict[str, str],
    events: bool = False,
) -> Program:
    """Build the whole `Program` from a partition and a placement (one PECoord per slice).

    `events`: kernels send only non-zero activations, one element per packet (not in snn mode,
    whose spikes are events already).
    """
    events = events and mode != "snn"
    senders = _senders(partition, mode, events)
    sources = _sources_by_port(partition, senders)
    routing = route_flows(_flows(partition, senders, sources, pe_of), machine)
    sender_by_slice = {s.slice_index: s for s in senders if s.slice_index is not None}
    base = machine.chip_spec.code_bytes
    limit = base + machine.chip_spec.data_bytes
    pes: dict[PECoord, PEImage] = {}
    layouts: dict[PECoord, PELayout] = {}
    for s in partition.slices:
        pe = pe_of[s.index]
        if pe not in pes:
            pes[pe] = PEImage(pe, [], [])
            layouts[pe] = PELayout(base, limit)
        kernel, blocks = _kernel(
            s, partition, sender_by_slice[s.index], sources, layouts[pe], mode, events
        )
        pes[pe].kernels.append(kernel)
        pes[pe].blocks.extend(blocks)
    for pe, layout in layouts.items():
        verify_layout(layout.regions, base, limit, f"PE {pe.chip}:{pe.core}")
    chips = [ChipImage(chip, list(entries), []) for chip, entries in sorted(routing.tables.items())]
    return Program(
        mode=mode,
        machine=machine.describe(),
        host_chip=machine.host_chip,
        pes=sorted(pes.values(), key=lambda p: (p.pe.chip, p.pe.core)),
        chips=chips,
        inputs=_io_inputs(partition, senders, mode),
        outputs=_io_outputs(partition, senders, mode, events),
        metadata=dict(metadata),
    )


def _io_inputs(partition: Partition, senders: list[Sender], mode: str) -> list[IOTensor]:
    result = []
    for name, tensor in partition.graph_inputs:
        info = partition.tensors[tensor]
        mine = [s for s in senders if s.slice_index is None and s.tensor == tensor]
        result.append(
            IOTensor(
                name,
                tensor,
                info.shape,
                info.dtype,
                tuple(s.box for s in mine),
                tuple((s.key, s.mask) for s in mine),
                values_per_packet(info.dtype, mode),
                info.quant,
            )
        )
    return result


def _io_outputs(
    partition: Partition, senders: list[Sender], mode: str, events: bool = False
) -> list[IOTensor]:
    result = []
    for name, tensor in partition.graph_outputs:
        info = partition.tensors[tensor]
        mine = [s for s in senders if s.slice_index is not None and s.tensor == tensor]
        result.append(
            IOTensor(
                name,
                tensor,
                info.shape,
                info.dtype,
                tuple(s.box for s in mine),
                tuple((s.key, s.mask) for s in mine),
                values_per_packet(info.dtype, mode, events),
                info.quant,
            )
        )
    return result
