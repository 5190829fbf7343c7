"""Latency (critical path through the placed graph) and pipelined period of one inference.

List scheduling in firing order: a slice starts when its PE has finished the slices before it
and every sender's packets have arrived; it is busy for its own time (`busy`). A sender's
packets reach another chip after (hops + packets) packet times on the links (store and forward
over each hop, the stream over the first link), or another PE of the same chip after the
on-chip network's hops between their QPEs. The host sends the graph inputs at time 0 and the
inference ends when the last output packet reaches the host chip. Pipelined, each PE works on
a later inference while the next PEs finish this one, so the period is the busiest PE's total.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from backend.hardware import Machine
from backend.program import Kernel, PECoord, Program


@dataclass(frozen=True)
class Sender:
    """Where a key's packets come from: PE (None for the host), packets and bits per packet."""

    pe: PECoord | None
    packets: int
    packet_bits: int


@dataclass(frozen=True)
class Timing:
    latency_seconds: float
    period_seconds: float
    finish_seconds: tuple[float, ...]  # per slice, in firing order


def packet_bits(values_per_packet: int, dtype: str, key_bits: int) -> int:
    """Key plus payload: the values a packet carries at their size."""
    return key_bits + 8 * values_per_packet * np.dtype(dtype).itemsize


def senders(program: Program, kernels: Sequence[tuple[PECoord, Kernel]], key_bits: int):
    """Every sender by key: the host's graph-input boxes and every kernel's output."""
    found: dict[int, Sender] = {}
    for io in program.inputs:
        bits = packet_bits(io.values_per_packet, io.dtype, key_bits)
        for box, (key, _) in zip(io.boxes, io.keys):
            found[key] = Sender(None, -(-box.size // io.values_per_packet), bits)
    for pe, kernel in kernels:
        port = kernel.output
        bits = packet_bits(port.values_per_packet, port.dtype, key_bits)
        found[port.key] = Sender(pe, port.packet_count, bits)
    return found


class Route(NamedTuple):
    """A slice's wait for one sender: link seconds (other chips) or on-chip network cycles."""

    key: int
    link_seconds: float
    noc_cycles: float


class Routes:
    """Every slice's routes from its senders, and each output's route to the host.

    Built once per image; `critical_path` runs it at any clock.
    """

    def __init__(
        self, program: Program, machine: Machine, kernels: Sequence[tuple[PECoord, Kernel]]
    ) -> None:
        self.machine = machine
        self.spec = machine.chip_spec
        self.by_key = senders(program, kernels, self.spec.packet_key_bits)
        self._links: dict[tuple[tuple[int, int], tuple[int, int]], tuple[int, float]] = {}
        self._noc_cycles: dict[tuple[int, int], float] = {}
        self.inputs = [
            tuple(
                self._route(source.key, pe.chip, pe.core)
                for port in kernel.inputs
                for source in port.sources
                if source.key in self.by_key
            )
            for pe, kernel in kernels
        ]
        self.to_host = [
            self._route(key, machine.host_chip, None)
            for io in program.outputs
            for key, _ in io.keys
            if key in self.by_key
        ]
        self.host_keys = [key for key, s in self.by_key.items() if s.pe is None]

    def _link(self, origin: tuple[int, int], chip: tuple[int, int]) -> tuple[int, float]:
        """Chip hops between two chips and the rate of the links (board or between boards)."""
        pair = (origin, chip)
        if pair not in self._links:
            rate = self.spec.board_link_bits_per_second
            if self.machine.board_of(origin) != self.machine.board_of(chip):
                rate = self.spec.inter_board_link_bits_per_second
            self._links[pair] = (self.machine.hop_distance(origin, chip), rate)
        return self._links[pair]

    def _route(self, key: int, chip: tuple[int, int], core: int | None) -> Route:
        """(hops + packets) packet times over links to another chip; NoC hops on the same chip."""
        sender = self.by_key[key]
        origin = self.machine.host_chip if sender.pe is None else sender.pe.chip
        if origin != chip:
            hops, rate = self._link(origin, chip)
            return Route(key, (hops + sender.packets) * sender.packet_bits / rate, 0.0)
        if sender.pe is None or core is None:
            return Route(key, 0.0, 0.0)
        cores = (sender.pe.core, core)
        if cores not in self._noc_cycles:
            hops = self.spec.noc_hops(*cores)
            self._noc_cycles[cores] = float(hops * self.spec.noc_cycles_per_hop)
        return Route(key, 0.0, self._noc_cycles[cores])


def critical_path(
    routes: Routes,
    kernels: Sequence[tuple[PECoord, Kernel]],
    busy: Sequence[float],
    clock_hz: float,
) -> Timing:
    """Latency and period of one inference; `busy[i]` is slice i's time, kernels in firing order."""
    finish_by_key: dict[int, float] = dict.fromkeys(routes.host_keys, 0.0)
    pe_free: dict[PECoord, float] = {}
    finishes = []
    for (pe, kernel), seconds, waits in zip(kernels, busy, routes.inputs):
        ready = pe_free.get(pe, 0.0)
        for route in waits:
            arrival = finish_by_key.get(route.key, 0.0) + route.link_seconds
            ready = max(ready, arrival + route.noc_cycles / clock_hz)
        finish = ready + seconds
        pe_free[pe] = finish
        finish_by_key[kernel.output.key] = finish
        finishes.append(finish)
    latency = max(finishes, default=0.0)
    for route in routes.to_host:
        latency = max(latency, finish_by_key.get(route.key, 0.0) + route.link_seconds)
    return Timing(latency, _period(kernels, busy), tuple(finishes))


def _period(kernels: Sequence[tuple[PECoord, Kernel]], busy: Sequence[float]) -> float:
    """The busiest PE's busy time per inference."""
    per_pe: dict[PECoord, float] = {}
    for (pe, _), seconds in zip(kernels, busy):
        per_pe[pe] = per_pe.get(pe, 0.0) + seconds
    return max(per_pe.values(), default=0.0)
