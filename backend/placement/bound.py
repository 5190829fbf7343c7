"""A lower bound on inter-chip traffic: each group's partners packed as close as chips allow.

Method (a Gilmore-Lawler bound for this assignment problem): fix one group g on some chip. Its
partners, wherever they go, fill the chips around it shell by shell: g's own chip has room for
`pes_per_chip - size(g)` bins, the chips at distance r for at most `6 r x pes_per_chip` (six
links per chip: no chip of a hexagonal machine, toroidal or not, has more than 6 r chips at
distance r). Filling the shells with partners in order of traffic per bin, splitting a partner
across shells where needed (a fractional knapsack), gives the least traffic x hops g can have to its
partners. Every pair is counted from both ends, so half the sum over groups bounds the traffic
between groups; traffic with the host is bounded once, from the host chip, with its exact shells.
The bound holds for every placement that keeps each group on one chip, so for the greedy and the
solver's placements alike; it ignores that partners compete for the same shells, which is why it
is loose when many large layers talk to each other.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from backend.placement.problem import BinProblem, Group, group_index
from backend.placement.traffic import HOST, aggregate


def traffic_lower_bound(problem: BinProblem, groups: Sequence[Group]) -> int:
    """A lower bound on the inter-chip traffic of any placement of `groups` (docstring)."""
    index = group_index(groups, problem.bin_count)
    traffic = problem.traffic
    sources, targets = index[traffic.sources], index[traffic.targets]
    # Undirected: one pair per two groups, whichever way the packets go.
    pairs = aggregate(np.minimum(sources, targets), np.maximum(sources, targets), traffic.packets)
    sizes = np.array([stop - start for start, stop in groups] + [0], dtype=np.int64)
    per_chip = problem.pes_per_chip
    machine = problem.machine
    from_host = np.array(machine.link_graph.distances_from(machine.host_chip), dtype=np.int64)
    host_chips = np.bincount(from_host[from_host >= 0])
    radius = max(len(host_chips), _radius(problem.bin_count, per_chip))
    shell_chips = np.array([1] + [6 * r for r in range(1, radius)], dtype=np.int64)
    host_chips = np.pad(host_chips, (0, radius - len(host_chips)))
    # Both directions of a pair, from each end: (group, partner, packets).
    ends = np.concatenate([pairs.sources, pairs.targets])
    partners = np.concatenate([pairs.targets, pairs.sources])
    packets = np.concatenate([pairs.packets, pairs.packets])
    order = np.lexsort((partners, ends))
    ends, partners, packets = ends[order], partners[order], packets[order]
    starts = np.flatnonzero(np.r_[True, ends[1:] != ends[:-1]])
    total = 0.0
    for first, last in zip(starts.tolist(), [*starts[1:].tolist(), len(ends)]):
        end = int(ends[first])
        mine, weights = partners[first:last], packets[first:last]
        if end == HOST:
            shells = host_chips * per_chip
            total += 2 * _shell_cost(weights, sizes[mine], shells)
            continue
        keep = mine != HOST  # host pairs are bounded from the host's end
        shells = shell_chips * per_chip
        shells[0] = per_chip - sizes[end]
        total += _shell_cost(weights[keep], sizes[mine[keep]], shells)
    return int(np.floor(total / 2))


def _radius(bins: int, per_chip: int) -> int:
    """Shells enough to hold `bins` bins around a chip: 1 + 6 + 12 + ... chips."""
    radius, chips = 1, 1
    while chips * per_chip < bins:
        chips += 6 * radius
        radius += 1
    return radius + 1


def _shell_cost(weights: np.ndarray, sizes: np.ndarray, shells: np.ndarray) -> float:
    """Least sum of weight x distance with partners (`sizes` bins each) filling `shells` in turn.

    Partners go in order of weight per bin; a partner split across shells pays for each part.
    """
    if len(weights) == 0:
        return 0.0
    sizes = np.maximum(sizes, 1)
    density = weights / sizes
    order = np.argsort(-density, kind="stable")
    density, sizes = density[order], sizes[order]
    capacity = np.concatenate([[0], np.cumsum(shells)]).astype(np.float64)
    # filled(u): sum of the shell distances of the first u bins placed, piecewise linear.
    filled = np.concatenate([[0], np.cumsum(shells * np.arange(len(shells)))]).astype(np.float64)
    end = np.cumsum(sizes).astype(np.float64)
    beyond = end > capacity[-1]
    if beyond.any():  # more partner bins than the chips hold: the bound stays finite
        end = np.minimum(end, capacity[-1])
    start = np.concatenate([[0.0], end[:-1]])
    cost = np.interp(end, capacity, filled) - np.interp(start, capacity, filled)
    return float((density * cost).sum())
