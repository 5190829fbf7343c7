"""Cores within a chip: bins that talk to each other on nearby QPEs.

Method, per chip (cheap: no solver): the chip's cores are walked along a boustrophedon path over
the QPE grid (row by row, alternating direction, the PEs of one QPE together), so consecutive
cores share a QPE or sit on neighbouring ones. The chip's bins are put in a chain: start with the
first bin (topological order); next comes the bin with the most traffic to the bins just placed,
each earlier bin counting half as much as the one after it (ties and bins without traffic: the
lowest bin index). The i-th bin of the chain gets the i-th core of the path. Then two passes of
pairwise exchange (the classic local search for quadratic assignment): each bin in turn swaps
with the core (holding a bin or empty) that lowers packets x QPE hops the most, if any.

The exchange gains are sums of products of integers below 2^53, so they are exact in floating
point whatever the order of summation: the result does not depend on the linear-algebra library.
"""

from __future__ import annotations

import numpy as np

from backend.hardware import ChipSpec
from backend.placement.traffic import HOST, Traffic
from ir.errors import InternalError

_DECAY = 0.5  # weight of a placed bin's traffic relative to the bin placed after it
EXCHANGE_PASSES = 2


def snake_core_order(chip_spec: ChipSpec) -> list[int]:
    """Usable core indices along a boustrophedon walk of the QPE grid."""

    def position(core: int) -> tuple[int, int, int]:
        qx, qy, p = chip_spec.core_map[core]
        return qy, qx if qy % 2 else -qx, p

    return sorted(range(chip_spec.usable_core_count), key=position)


def assign_cores(chip_of_bin: np.ndarray, traffic: Traffic, chip_spec: ChipSpec) -> np.ndarray:
    """The core index of every bin (module docstring)."""
    core_order = snake_core_order(chip_spec)
    qpe_x = np.array([chip_spec.core_map[core][0] for core in core_order])
    qpe_y = np.array([chip_spec.core_map[core][1] for core in core_order])
    hops = np.abs(qpe_x[:, None] - qpe_x[None, :]) + np.abs(qpe_y[:, None] - qpe_y[None, :])
    core_of_bin = np.full(len(chip_of_bin), -1, dtype=np.int64)
    local = (traffic.sources != HOST) & (traffic.targets != HOST)
    sources, targets = traffic.sources[local], traffic.targets[local]
    same_chip = chip_of_bin[sources] == chip_of_bin[targets]
    sources, targets = sources[same_chip], targets[same_chip]
    packets = traffic.packets[local][same_chip].astype(np.float64)
    for chip in np.unique(chip_of_bin).tolist():
        bins = np.flatnonzero(chip_of_bin == chip)
        if len(bins) > len(core_order):
            raise InternalError(
                f"chip {chip} holds {len(bins)} bins but has {len(core_order)} cores"
            )
        position = np.full(len(chip_of_bin), -1, dtype=np.int64)
        position[bins] = np.arange(len(bins))
        on_chip = chip_of_bin[sources] == chip
        adjacency = np.zeros((len(bins), len(bins)))
        np.add.at(
            adjacency, (position[sources[on_chip]], position[targets[on_chip]]), packets[on_chip]
        )
        adjacency += adjacency.T
        order = chain(adjacency)
        ranks = np.arange(len(order))
        if adjacency.any():
            ranks = exchange(adjacency[np.ix_(order, order)], hops.astype(np.float64))
        for number, rank in zip(order, ranks.tolist()):
            core_of_bin[bins[number]] = core_order[rank]
    return core_of_bin


def chain(adjacency: np.ndarray) -> list[int]:
    """An order of nodes where each follows the nodes it talks to most (module docstring)."""
    count = len(adjacency)
    placed = np.zeros(count, dtype=bool)
    score = np.zeros(count)
    order: list[int] = []
    for _ in range(count):
        candidates = np.where(placed, -1.0, score)
        best = int(np.argmax(candidates))
        if candidates[best] <= 0:
            best = int(np.argmin(placed))  # the lowest index not yet placed
        order.append(best)
        placed[best] = True
        score = _DECAY * score + adjacency[best]
    return order


def exchange(adjacency: np.ndarray, hops: np.ndarray, passes: int = EXCHANGE_PASSES) -> np.ndarray:
    """Positions for n nodes among len(hops) slots, starting from node i at slot i, improved by
    swaps (module docstring). Returns the slot of every node.

    With B[a, b] = hops between the slots of a and b and M = A B, swapping a and b changes the
    cost by M[a, b] - M[a, a] - M[b, b] + M[b, a] + 2 A[a, b] B[a, b].
    """
    count, slots = len(adjacency), len(hops)
    weights = np.zeros((slots, slots))
    weights[:count, :count] = adjacency
    slot = np.arange(slots)
    distance = hops[np.ix_(slot, slot)]
    product = weights @ distance
    for _ in range(passes):
        improved = False
        for node in range(count):
            diagonal = np.diag(product)
            gain = (
                product[node]
                - product[node, node]
                - diagonal
                + product[:, node]
                + 2 * weights[node] * distance[node]
            )
            gain[node] = 0
            other = int(np.argmin(gain))
            if gain[other] >= 0:
                continue
            slot[[node, other]] = slot[[other, node]]
            before, distance = distance, hops[np.ix_(slot, slot)]
            # Only the rows of the two nodes change in B: update M = A B by a rank-one term,
            # then compute their two columns afresh.
            product += np.outer(weights[:, node] - weights[:, other], before[other] - before[node])
            product[:, node] = weights @ distance[:, node]
            product[:, other] = weights @ distance[:, other]
            improved = True
        if not improved:
            break
    return slot[:count]
