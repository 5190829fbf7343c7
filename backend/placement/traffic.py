"""Traffic between slices, and what a placement costs: packets x chip hops, packets x QPE hops.

A sender (a slice's output, or the host injecting a graph input) multicasts its box of a tensor as
`ceil(box size / values per packet)` packets (`backend.assemble`). Every slice whose input box of
that tensor overlaps the sender's box receives them, so the traffic from sender s to consumer t is
s's packet count, once per input port of t that overlaps s. Graph outputs go to the host.

The host is a node of the traffic graph with index `HOST` (-1); it sits on the machine's host
chip. The cost of a placement:

    inter-chip traffic = sum over (sender, consumer) of packets x hops between their chips
    on-chip traffic    = sum over pairs on one chip of packets x QPE hops between their PEs

(QPE hops: `ChipSpec.noc_hops`, the Manhattan distance of the QPEs; host traffic has no on-chip
part). The overlap of boxes is computed per tensor on arrays of box corners, in chunks of senders
so that memory stays bounded on layers cut into thousands of slices.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from backend.assemble import values_per_packet
from backend.hardware import Machine
from backend.partition import Partition
from backend.program import PECoord
from backend.topology import Chip
from ir.errors import InternalError

HOST = -1
_CHUNK_CELLS = 1 << 22  # sender x consumer x axis cells per overlap chunk (32 MiB per array)


@dataclass(frozen=True)
class Traffic:
    """Packets per inference from `sources[i]` to `targets[i]` (slice indices, HOST = -1).

    Pairs are unique, never from a node to itself, and sorted by (source, target).
    """

    sources: np.ndarray
    targets: np.ndarray
    packets: np.ndarray

    @staticmethod
    def of(
        sources: Sequence[int] | np.ndarray,
        targets: Sequence[int] | np.ndarray,
        packets: Sequence[int] | np.ndarray,
    ) -> Traffic:
        """Traffic from parallel lists: self pairs dropped, duplicate pairs summed."""
        source = np.asarray(sources, dtype=np.int64)
        target = np.asarray(targets, dtype=np.int64)
        count = np.asarray(packets, dtype=np.int64)
        if not source.shape == target.shape == count.shape:
            raise InternalError("traffic lists differ in length")
        if (count < 0).any():
            raise InternalError("traffic with a negative packet count")
        return aggregate(source, target, count)

    def __len__(self) -> int:
        return len(self.sources)

    @property
    def total_packets(self) -> int:
        return int(self.packets.sum())


def aggregate(sources: np.ndarray, targets: np.ndarray, packets: np.ndarray) -> Traffic:
    """Pairs with their packets summed; pairs from a node to itself dropped."""
    keep = sources != targets
    sources, targets, packets = sources[keep], targets[keep], packets[keep]
    if len(sources) == 0:
        empty = np.zeros(0, dtype=np.int64)
        return Traffic(empty, empty.copy(), empty.copy())
    offset = int(min(sources.min(), targets.min()))
    span = int(max(sources.max(), targets.max())) - offset + 1
    keys = (sources - offset) * span + (targets - offset)
    unique, inverse = np.unique(keys, return_inverse=True)
    summed = np.bincount(inverse, weights=packets).astype(np.int64)
    return Traffic(unique // span + offset, unique % span + offset, summed)


def slice_traffic(partition: Partition) -> Traffic:
    """The packets every sender sends to every slice (and the host) that receives them."""
    senders: dict[int, list[tuple[int, tuple[int, ...], tuple[int, ...], int]]] = defaultdict(list)
    for _, tensor in partition.graph_inputs:
        shape = partition.tensors[tensor].shape
        size = int(np.prod(shape, dtype=np.int64))
        senders[tensor].append((HOST, (0,) * len(shape), shape, _packets(partition, tensor, size)))
    for s in partition.slices:
        box = s.spec.out_box
        senders[s.output].append(
            (s.index, box.start, box.stop, _packets(partition, s.output, box.size))
        )
    consumers: dict[int, list[tuple[int, tuple[int, ...], tuple[int, ...]]]] = defaultdict(list)
    for s in partition.slices:
        for (_, box), tensor in zip(s.spec.inputs, s.inputs):
            consumers[tensor].append((s.index, box.start, box.stop))
    outputs = {tensor for _, tensor in partition.graph_outputs}
    parts: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    for tensor, sent in sorted(senders.items()):
        ids = np.array([item[0] for item in sent], dtype=np.int64)
        counts = np.array([item[3] for item in sent], dtype=np.int64)
        if tensor in outputs:
            parts.append((ids, np.full(len(ids), HOST, dtype=np.int64), counts))
        if tensor in consumers:
            parts.append(_overlaps(sent, consumers[tensor]))
    if not parts:
        return Traffic.of([], [], [])
    return aggregate(*(np.concatenate(column) for column in zip(*parts)))


def _packets(partition: Partition, tensor: int, size: int) -> int:
    return -(-size // values_per_packet(partition.tensors[tensor].dtype))


def _overlaps(
    sent: list[tuple[int, tuple[int, ...], tuple[int, ...], int]],
    received: list[tuple[int, tuple[int, ...], tuple[int, ...]]],
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(sender, consumer, packets) for every sender box that overlaps a consumer's input box."""
    ids = np.array([item[0] for item in sent], dtype=np.int64)
    starts = np.array([item[1] for item in sent], dtype=np.int64)
    stops = np.array([item[2] for item in sent], dtype=np.int64)
    counts = np.array([item[3] for item in sent], dtype=np.int64)
    consumer_ids = np.array([item[0] for item in received], dtype=np.int64)
    consumer_starts = np.array([item[1] for item in received], dtype=np.int64)
    consumer_stops = np.array([item[2] for item in received], dtype=np.int64)
    axes = max(starts.shape[1] if starts.ndim == 2 else 0, 1)
    chunk = max(1, _CHUNK_CELLS // max(1, len(received) * axes))
    pairs_sender, pairs_consumer = [], []
    for first in range(0, len(sent), chunk):
        last = first + chunk
        low = np.maximum(starts[first:last, None, :], consumer_starts[None, :, :])
        high = np.minimum(stops[first:last, None, :], consumer_stops[None, :, :])
        sender, consumer = np.nonzero((high > low).all(axis=2))
        pairs_sender.append(sender + first)
        pairs_consumer.append(consumer)
    sender = np.concatenate(pairs_sender)
    consumer = np.concatenate(pairs_consumer)
    return ids[sender], consumer_ids[consumer], counts[sender]


def coarsen(traffic: Traffic, node_of: np.ndarray) -> Traffic:
    """The traffic between the nodes that `node_of` maps slices to (HOST stays HOST)."""
    extended = np.append(node_of, HOST)  # index -1 reads the host
    return aggregate(extended[traffic.sources], extended[traffic.targets], traffic.packets)


@dataclass(frozen=True)
class Cost:
    """What a placement costs: inter-chip and on-chip traffic, chips used."""

    inter_chip: int  # packets x chip hops
    on_chip: int  # packets x QPE hops
    chips_used: int

    def objective(self, qpe_hop_weight: float, chip_weight: float) -> float:
        return self.inter_chip + qpe_hop_weight * self.on_chip + chip_weight * self.chips_used


def placement_cost(traffic: Traffic, placement: Sequence[PECoord], machine: Machine) -> Cost:
    """The cost of a placement (one PE per slice) under `traffic` (see the module docstring)."""
    used = sorted({pe.chip for pe in placement} | {machine.host_chip})
    index = {chip: number for number, chip in enumerate(used)}
    chips = np.array([index[pe.chip] for pe in placement] + [index[machine.host_chip]])
    cores = np.array([pe.core for pe in placement] + [-1], dtype=np.int64)
    source_chip, target_chip = chips[traffic.sources], chips[traffic.targets]
    hops = hop_matrix(machine, used)[source_chip, target_chip]
    inter = int((traffic.packets * hops).sum())
    local = (source_chip == target_chip) & (traffic.sources != HOST) & (traffic.targets != HOST)
    qpe_x, qpe_y = _qpe_coordinates(machine)
    source_core, target_core = cores[traffic.sources[local]], cores[traffic.targets[local]]
    qpe_hops = np.abs(qpe_x[source_core] - qpe_x[target_core]) + np.abs(
        qpe_y[source_core] - qpe_y[target_core]
    )
    on_chip = int((traffic.packets[local] * qpe_hops).sum())
    return Cost(inter, on_chip, len({pe.chip for pe in placement}))


def _qpe_coordinates(machine: Machine) -> tuple[np.ndarray, np.ndarray]:
    core_map = machine.chip_spec.core_map
    return (
        np.array([qx for qx, _, _ in core_map], dtype=np.int64),
        np.array([qy for _, qy, _ in core_map], dtype=np.int64),
    )


def router_entry_estimate(traffic: Traffic, placement: Sequence[PECoord], machine: Machine) -> int:
    """The most router entries any chip needs, counted where flows start or end, before merging.

    A sender's flow needs an entry on its own chip and on every chip with one of its targets (one
    entry per chip, however many PEs it reaches there); the host's flows start on the host chip.
    Chips a flow only crosses are not counted: most need no entry (default routing), and routing
    reports the exact numbers.
    """
    used = sorted({pe.chip for pe in placement} | {machine.host_chip})
    index = {chip: number for number, chip in enumerate(used)}
    chips = np.array([index[pe.chip] for pe in placement] + [index[machine.host_chip]])
    flows = np.concatenate([traffic.sources, np.arange(len(placement), dtype=np.int64)])
    ends = np.concatenate([chips[traffic.targets], chips[: len(placement)]])
    if len(flows) == 0:
        return 0
    chip_count = len(used)
    unique = np.unique((flows + 1) * chip_count + ends)
    return int(np.bincount(unique % chip_count, minlength=chip_count).max())


def hop_matrix(machine: Machine, chips: Sequence[Chip]) -> np.ndarray:
    """Hops between every two of `chips` (one breadth-first search per chip, not all pairs)."""
    graph = machine.link_graph
    columns = [graph.index[chip] for chip in chips]
    rows = [np.asarray(graph.distances_from(chip), dtype=np.int64)[columns] for chip in chips]
    return np.array(rows, dtype=np.int64).reshape(len(chips), len(chips))
