"""The chip-assignment problem: PE bins, their groups, traffic, and the chips they may use.

A bin is one PE's worth of slices: the greedy placer's next-fit packing (`backend.place`), so a
bin holds slices of one layer whose SRAM needs add up to at most one PE's data budget. Placement
assigns bins to chips; within a chip, bins get cores afterwards (`backend.placement.cores`).

A group is a run of consecutive bins of one layer, at most `group_size` long, that also sat on one
chip in the greedy placement. Groups are what the solver moves: few enough for CP-SAT, and every
greedy placement is a placement of groups, so greedy is always a valid hint. A group can be
halved when bins must be split more finely to fill chips exactly.

Candidate chips are the machine's chips nearest the host (`chip_order`): as many as the bins need
plus a tenth to spare (capped by the machine), so that the solver has room to keep talking groups
together without spreading over the whole machine.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from backend.hardware import Machine
from backend.place import chip_order
from backend.placement.traffic import Traffic, coarsen, hop_matrix
from backend.topology import Chip

Group = tuple[int, int]  # bins [start, stop)
SPARE_CHIP_FRACTION = 0.1


@dataclass(frozen=True)
class BinProblem:
    """Everything the chip assignment needs, as arrays indexed by bin and by chip index."""

    machine: Machine
    bin_of_slice: np.ndarray  # bin index per slice
    bin_layer: np.ndarray  # layer per bin
    flows_per_bin: np.ndarray  # senders (slices) per bin: one multicast flow each
    dram_per_bin: np.ndarray  # DRAM bytes per bin (no slice uses DRAM yet)
    traffic: Traffic  # packets between bins (HOST = -1)
    chips: tuple[Chip, ...]  # the candidate chips; "chip index" below means an index into these
    greedy_chip: np.ndarray  # chip index of every bin in the greedy placement
    distances: np.ndarray  # hops between candidate chips
    host_chip: int  # chip index of the host chip

    @property
    def bin_count(self) -> int:
        return len(self.bin_layer)

    @property
    def pes_per_chip(self) -> int:
        return self.machine.chip_spec.usable_core_count

    @property
    def router_entries(self) -> int:
        return self.machine.chip_spec.router_entries

    @property
    def dram_bytes(self) -> int:
        return self.machine.chip_spec.dram_bytes


def bin_problem(
    bin_of_slice: Sequence[int], layer_of: Sequence[int], traffic: Traffic, machine: Machine
) -> BinProblem:
    """The problem for slices packed into bins as `bin_of_slice` says, bins in greedy order."""
    bins = np.asarray(bin_of_slice, dtype=np.int64)
    count = int(bins.max()) + 1 if len(bins) else 0
    layers = np.zeros(count, dtype=np.int64)
    layers[bins] = np.asarray(layer_of, dtype=np.int64)
    flows = np.bincount(bins, minlength=count).astype(np.int64)
    usable = machine.chip_spec.usable_core_count
    order = chip_order(machine)
    needed = max(1, math.ceil(count / usable))
    spare = math.ceil(needed * SPARE_CHIP_FRACTION) if needed > 1 else 0
    chips = tuple(sorted(order[: min(len(order), needed + spare)]))
    index = {chip: number for number, chip in enumerate(chips)}
    greedy = np.array([index[order[i // usable]] for i in range(count)], dtype=np.int64)
    return BinProblem(
        machine=machine,
        bin_of_slice=bins,
        bin_layer=layers,
        flows_per_bin=flows,
        dram_per_bin=np.zeros(count, dtype=np.int64),
        traffic=coarsen(traffic, bins),
        chips=chips,
        greedy_chip=greedy,
        distances=hop_matrix(machine, chips),
        host_chip=index[machine.host_chip],
    )


def initial_groups(problem: BinProblem, group_size: int) -> list[Group]:
    """Runs of at most `group_size` bins of one layer that shared a chip in the greedy placement."""
    groups: list[Group] = []
    start = 0
    for stop in range(1, problem.bin_count + 1):
        same = stop < problem.bin_count and (
            problem.bin_layer[stop] == problem.bin_layer[start]
            and problem.greedy_chip[stop] == problem.greedy_chip[start]
            and stop - start < group_size
        )
        if not same:
            groups.append((start, stop))
            start = stop
    return groups


def halve(groups: Sequence[Group]) -> list[Group]:
    """Every group of two or more bins cut into two halves."""
    halves: list[Group] = []
    for start, stop in groups:
        if stop - start < 2:
            halves.append((start, stop))
            continue
        middle = (start + stop) // 2
        halves += [(start, middle), (middle, stop)]
    return halves


def group_index(groups: Sequence[Group], bin_count: int) -> np.ndarray:
    """The group of every bin (-1 for bins in none of `groups`), with one extra -1 for the host."""
    index = np.full(bin_count + 1, -1, dtype=np.int64)
    for number, (start, stop) in enumerate(groups):
        index[start:stop] = number
    return index
