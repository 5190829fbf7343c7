"""Chips for groups of bins by recursive bisection, each cut chosen by CP-SAT.

Method (recursive min-cut bisection mapped onto the machine, as in VLSI placement and process
mapping): the candidate chips form the first region, holding every group. A region of two or
more chips is cut into two spatially compact halves (`split_chips`); CP-SAT then chooses the side
of each of its groups (`bisection_model`), minimising

    traffic between groups cut apart x mean hops between the two halves
  + traffic to groups in other regions (and the host) x mean hops from each half to that region
  + chip weight x chips each half needs

subject to each half holding its bins on its PEs (and, when they could bind, router entries and
DRAM per chip). Both halves become regions, breadth first, until every region is one chip. Cuts
between rows of consecutive layers are cheaper than cuts between layers, so layers whose slices
exchange halos end up interleaved on the same chips, which a raster placement cannot do.

Each cut (`backend.placement.cut`) gets a share of the deterministic time limit in proportion to
its bins, divided by the number of levels of the recursion, and is hinted with the greedy
placement's sides (or a cheaper topological split). A cut that cannot fill the halves with whole
groups is retried with the region's groups halved; a cut that is infeasible for another reason
names the binding limit (`Infeasible`).
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from backend.placement.cut import PES, Infeasible, Split, SplitStats, solve_split
from backend.placement.problem import BinProblem, Group, group_index, halve
from ir.errors import InternalError

_HOST_REGION = -1


def split_chips(chips: Sequence[int], distances: np.ndarray) -> tuple[list[int], list[int]]:
    """Two compact halves of a set of chips: ordered from one far end to the other, cut midway.

    The ends: `a`, the chip with the largest total distance to the others, and `b`, the chip
    farthest from `a` (ties: lowest index). Chips are sorted by how much nearer to `a` than to
    `b` they are, so each half is the set of chips on one side of a line between the ends.
    """
    ordered = sorted(chips)
    if len(ordered) < 2:
        raise InternalError("a region of one chip cannot be split")
    sub = distances[np.ix_(ordered, ordered)]
    a = ordered[int(np.argmax(sub.sum(axis=1)))]
    b = ordered[int(np.argmax(distances[a, ordered]))]
    by_side = sorted(ordered, key=lambda c: (distances[a, c] - distances[b, c], distances[a, c], c))
    half = len(by_side) // 2
    return sorted(by_side[:half]), sorted(by_side[half:])


@dataclass
class _Regions:
    """Regions of chips and which region every bin is in (the host has its own region)."""

    chips: dict[int, tuple[int, ...]]
    of_bin: np.ndarray  # region per bin, plus the host's at index -1
    mean_hops: dict[tuple[tuple[int, ...], tuple[int, ...]], float] = field(default_factory=dict)

    def hops(self, first: tuple[int, ...], second: tuple[int, ...], distances: np.ndarray) -> float:
        """Mean hops between the chips of two sets (cached)."""
        key = (first, second)
        if key not in self.mean_hops:
            self.mean_hops[key] = float(distances[np.ix_(first, second)].mean())
        return self.mean_hops[key]


def assign_chips(
    problem: BinProblem,
    groups: Sequence[Group],
    time_limit: float,
    chip_weight: int,
    stats: SplitStats,
) -> tuple[np.ndarray, list[Group]]:
    """The chip index of every bin, and the groups as finally placed (after any halving)."""
    regions = _Regions(
        chips={0: tuple(range(len(problem.chips))), _HOST_REGION: (problem.host_chip,)},
        of_bin=np.zeros(problem.bin_count + 1, dtype=np.int64),
    )
    regions.of_bin[-1] = _HOST_REGION
    chip_of_bin = np.full(problem.bin_count, -1, dtype=np.int64)
    levels = max(1, math.ceil(math.log2(max(2, len(problem.chips)))))
    queue: deque[tuple[int, list[Group]]] = deque([(0, list(groups))])
    placed: list[Group] = []
    while queue:
        region, members = queue.popleft()
        chips = regions.chips[region]
        if not members:
            continue
        if len(chips) == 1:
            for start, stop in members:
                chip_of_bin[start:stop] = chips[0]
            placed += members
            continue
        halves = split_chips(chips, problem.distances)
        bins = sum(stop - start for start, stop in members)
        seconds = time_limit * bins / max(1, problem.bin_count) / levels
        members, sides = _cut(problem, regions, members, halves, seconds, chip_weight, stats)
        for s, half in enumerate(halves):
            number = max(regions.chips) + 1
            regions.chips[number] = tuple(half)
            chosen = [group for group, side in zip(members, sides.tolist()) if side == s]
            for start, stop in chosen:
                regions.of_bin[start:stop] = number
            queue.append((number, chosen))
    if (chip_of_bin < 0).any():
        raise InternalError("recursive bisection left a bin without a chip")
    return chip_of_bin, sorted(placed)


def _cut(
    problem: BinProblem,
    regions: _Regions,
    members: list[Group],
    halves: tuple[list[int], list[int]],
    seconds: float,
    chip_weight: int,
    stats: SplitStats,
) -> tuple[list[Group], np.ndarray]:
    """Sides for a region's groups, halving the groups until whole groups fill the halves."""
    while True:
        split = build_split(problem, regions, members, halves)
        sides = solve_split(split, chip_weight, seconds, stats)
        if sides is not None:
            return members, sides
        finer = halve(members)
        if len(finer) == len(members):
            raise Infeasible((PES,))
        stats.halvings += 1
        members = finer


def build_split(
    problem: BinProblem,
    regions: _Regions,
    members: list[Group],
    halves: tuple[list[int], list[int]],
) -> Split:
    """The data of one cut: group sizes, traffic inside and out, capacities, greedy hint."""
    local = group_index(members, problem.bin_count)
    traffic = problem.traffic
    source_group, target_group = local[traffic.sources], local[traffic.targets]
    source_in, target_in = source_group >= 0, target_group >= 0
    sides = (tuple(halves[0]), tuple(halves[1]))
    across = regions.hops(sides[0], sides[1], problem.distances)
    inside = source_in & target_in & (source_group != target_group)
    first = np.minimum(source_group[inside], target_group[inside])
    second = np.maximum(source_group[inside], target_group[inside])
    keys, inverse = np.unique(first * len(members) + second, return_inverse=True)
    weights = np.bincount(inverse, weights=traffic.packets[inside]).astype(np.int64)
    edge_cost = np.round(weights * across).astype(np.int64)
    side_cost = np.zeros((len(members), 2))
    outgoing = source_in & ~target_in
    incoming = target_in & ~source_in
    leaving = (
        (source_group[outgoing], traffic.targets[outgoing], traffic.packets[outgoing]),
        (target_group[incoming], traffic.sources[incoming], traffic.packets[incoming]),
    )
    for groups, partners, packets in leaving:
        partner_region = regions.of_bin[partners]
        for region in np.unique(partner_region).tolist():
            chosen = partner_region == region
            for s in (0, 1):
                hops = regions.hops(sides[s], regions.chips[region], problem.distances)
                np.add.at(side_cost[:, s], groups[chosen], packets[chosen] * hops)
    sizes = np.array([stop - start for start, stop in members], dtype=np.int64)
    flows = np.array([problem.flows_per_bin[a:b].sum() for a, b in members], dtype=np.int64)
    chip_counts = (len(halves[0]), len(halves[1]))
    total_flows = int(problem.flows_per_bin.sum()) + 1  # every slice's flow and the host's
    may_bind = total_flows > problem.router_entries * min(chip_counts)
    return Split(
        sizes=sizes,
        flows=flows,
        dram=np.array([problem.dram_per_bin[a:b].sum() for a, b in members], dtype=np.int64),
        edges=(keys // len(members), keys % len(members), edge_cost),
        side_cost=np.round(side_cost).astype(np.int64),
        chips=chip_counts,
        pes_per_chip=problem.pes_per_chip,
        router_entries=problem.router_entries,
        dram_bytes=problem.dram_bytes,
        router_sources=_router_sources(problem, members, local) if may_bind else [],
        hint=_hint(problem, members, sides),
    )


def _router_sources(
    problem: BinProblem, members: list[Group], local: np.ndarray
) -> list[tuple[int, np.ndarray]]:
    """Per source bin (or the host) sending into the region: its flows and the groups it reaches.

    A group's own flows are counted in `Split.flows`; here, for each group, the sources that
    send to it from outside the group.
    """
    traffic = problem.traffic
    target_group = local[traffic.targets]
    chosen = (target_group >= 0) & (local[traffic.sources] != target_group)
    pairs = np.unique((traffic.sources[chosen] + 1) * len(members) + target_group[chosen])
    sources, groups = pairs // len(members) - 1, pairs % len(members)
    firsts = np.unique(sources, return_index=True)[1]
    result: list[tuple[int, np.ndarray]] = []
    for source, reached in zip(sources[firsts].tolist(), np.split(groups, firsts[1:])):
        flows = 1 if source < 0 else int(problem.flows_per_bin[source])
        result.append((flows, reached))
    return result


def _hint(
    problem: BinProblem, members: list[Group], sides: tuple[tuple[int, ...], ...]
) -> np.ndarray:
    """The side holding each group's greedy chip, or the side nearer to it."""
    hint = np.zeros(len(members), dtype=np.int64)
    for number, (start, _) in enumerate(members):
        chip = int(problem.greedy_chip[start])
        if chip in sides[1]:
            hint[number] = 1
        elif chip not in sides[0]:
            near = [problem.distances[chip, list(side)].mean() for side in sides]
            hint[number] = int(near[1] < near[0])
    return hint
