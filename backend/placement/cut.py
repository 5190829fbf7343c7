"""One cut of a region's groups into two halves of its chips, as a CP-SAT model.

`bisection_model` builds the model (one Boolean per group: its side), `solve_split` solves it.
Hints: the greedy placement's sides, and two topological splits (groups in bin order fill the
first half, or the second half from the end), those that respect the PEs (`candidate_hints`).

A small cut is solved directly from the cheapest hint. A large cut is solved multilevel, as
multilevel graph partitioners do: groups are merged in pairs along the heaviest traffic
(`coarsen`) until sixty or so remain; the coarsest cut is solved once from each hint (carried
up by majority), sharing half the time, and the cheapest result wins; going back down, each
level starts from the coarser cut and re-solves only the groups that can gain by moving: those
on the cut and those drawn to the other side (`refine`, the rest fixed), with an equal share of
the other half. So the solver starts from the better of what a raster placement and a pipeline
placement would do, and spends its time where the cut can still change.

The solver runs on one worker with a fixed seed and a deterministic time limit: the cut's share
of the placer's limit, but at most a millisecond per group and edge, since small cuts are solved
(or as well as they will be) long before a larger share runs out. Before solving, a subset-sum
check (`fits`) says whether whole groups can fill the halves at all; when they cannot, the caller
halves the groups. A cut that is infeasible for a family other than PEs per chip is solved again
with one assumption literal per capacity family, and the literals in the solver's core name the
binding limits (`Infeasible`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace

import numpy as np
from ortools.sat.python import cp_model

SEED = 20240601
PES, ROUTER, DRAM = "PEs per chip", "router entries per chip", "DRAM per chip"
COARSEST_GROUPS = 60  # coarsen a cut until at most this many groups remain
COARSENING_PROGRESS = 0.9  # stop coarsening when a round removes fewer than a tenth of the groups
SECONDS_PER_ELEMENT = 0.001  # at most this much deterministic time per group and per edge
DIAGNOSIS_SECONDS = 1.0  # at least this much to find the binding limits of an infeasible cut
_MIN_SOLVE_SECONDS = 0.01


class Infeasible(Exception):
    """No cut respects the capacities; `limits` names the binding capacity families."""

    def __init__(self, limits: Sequence[str]) -> None:
        super().__init__(", ".join(limits))
        self.limits = tuple(limits)


class NoSolution(Exception):
    """The solver found no cut within its time, and no cut known to respect every capacity."""


@dataclass(frozen=True)
class Split:
    """One cut: a region's groups and what each costs on either side."""

    sizes: np.ndarray  # bins per group
    flows: np.ndarray  # multicast flows starting in each group
    dram: np.ndarray  # DRAM bytes per group
    edges: tuple[np.ndarray, np.ndarray, np.ndarray]  # (group, group, cost when cut apart)
    side_cost: np.ndarray  # (groups, 2): cost of traffic leaving the region, per side
    chips: tuple[int, int]  # chips on each side
    pes_per_chip: int
    router_entries: int
    dram_bytes: int
    # (flows, groups): flows of one source that need an entry on every chip holding a group
    router_sources: list[tuple[int, np.ndarray]]
    hint: np.ndarray  # side per group
    fixed_load: tuple[int, int] = (0, 0)  # PEs taken on each side by groups not in the model

    def capacity(self, side: int) -> int:
        """PEs on one side left for the groups of the cut."""
        return self.chips[side] * self.pes_per_chip - self.fixed_load[side]


@dataclass
class SplitStats:
    """What the cuts took: cuts, solver runs, halvings, deterministic seconds, statuses."""

    splits: int = 0
    solves: int = 0
    halvings: int = 0
    deterministic_seconds: float = 0.0
    statuses: dict[str, int] = field(default_factory=dict)


def bisection_model(
    split: Split, chip_weight: int, assume: bool = False
) -> tuple[cp_model.CpModel, list[cp_model.IntVar], dict[str, cp_model.IntVar]]:
    """The CP-SAT model of one cut: `side[g]` is 1 when group g goes to the second half.

    With `assume`, each capacity family is enforced only under its own assumption literal and the
    model has no objective, so that an infeasible cut can name the families that bind.
    """
    model = cp_model.CpModel()
    groups = range(len(split.sizes))
    side = [model.new_bool_var(f"side[{g}]") for g in groups]
    chips = [model.new_int_var(0, split.chips[s], f"chips[{s}]") for s in (0, 1)]
    families = {name: model.new_bool_var(name) for name in (PES, ROUTER, DRAM)} if assume else {}

    def on(s: int, g: int):
        return side[g] if s == 1 else 1 - side[g]

    def guarded(constraint: cp_model.Constraint, family: str) -> None:
        if assume:
            constraint.only_enforce_if(families[family])

    # Each half holds its bins on its PEs, one bin per PE, using as many chips as they need.
    for s in (0, 1):
        load = sum(int(split.sizes[g]) * on(s, g) for g in groups) + split.fixed_load[s]
        guarded(model.add(load <= split.pes_per_chip * chips[s]), PES)
    # Router entries: a source's flows need an entry in every half holding one of its groups
    # (one per chip; summed over a half's chips, checked against that half's capacity).
    if _router_may_bind(split):
        for s in (0, 1):
            terms = []
            for number, (flows, members) in enumerate(split.router_sources):
                reached = model.new_bool_var(f"reached[{number},{s}]")
                for g in members.tolist():
                    model.add_implication(side[g] if s == 1 else side[g].Not(), reached)
                terms.append(flows * reached)
            guarded(model.add(sum(terms) <= split.router_entries * chips[s]), ROUTER)
    # DRAM: a half's bins keep their DRAM data on that half's chips.
    if split.dram.any():
        for s in (0, 1):
            used = sum(int(split.dram[g]) * on(s, g) for g in groups)
            guarded(model.add(used <= split.dram_bytes * chips[s]), DRAM)
    if assume:
        model.add_assumptions(list(families.values()))
        return model, side, families
    # Objective: traffic cut apart, traffic to other regions, chips used.
    terms = []
    first, second, cost = split.edges
    for g, h, weight in zip(first.tolist(), second.tolist(), cost.tolist()):
        apart = model.new_bool_var(f"apart[{g},{h}]")
        model.add(apart >= side[g] - side[h])
        model.add(apart >= side[h] - side[g])
        model.add_hint(apart, int(split.hint[g] != split.hint[h]))
        terms.append(weight * apart)
    for g in groups:
        stay, leave = (int(value) for value in split.side_cost[g])
        terms.append(stay + (leave - stay) * side[g])
    terms += [chip_weight * chips[s] for s in (0, 1)]
    model.minimize(sum(terms))
    # The greedy placement's sides as the hint.
    for g in groups:
        model.add_hint(side[g], int(split.hint[g]))
    for s in (0, 1):
        load = int(split.sizes[split.hint == s].sum()) + split.fixed_load[s]
        model.add_hint(chips[s], min(split.chips[s], -(-load // split.pes_per_chip)))
    return model, side, families


def _router_may_bind(split: Split) -> bool:
    most = int(split.flows.sum()) + sum(flows for flows, _ in split.router_sources)
    return most > split.router_entries * min(split.chips)


def _solver(seconds: float) -> cp_model.CpSolver:
    solver = cp_model.CpSolver()
    solver.parameters.num_workers = 1
    solver.parameters.random_seed = SEED
    solver.parameters.max_deterministic_time = max(seconds, _MIN_SOLVE_SECONDS)
    # Ctrl-C must stop the compile, not end the solve early with a placement that differs from
    # an uninterrupted run: leave SIGINT to Python, which raises KeyboardInterrupt.
    solver.parameters.catch_sigint_signal = False
    return solver


def solve_split(
    split: Split, chip_weight: int, seconds: float, stats: SplitStats
) -> np.ndarray | None:
    """The side of every group, or None when whole groups cannot fill the halves.

    Large cuts are solved multilevel (module docstring). When the solver finds no cut in its
    time, a cut that respects the PEs is taken (the cheapest hint, or one from the subset-sum
    table). Raises `Infeasible` when a family other than PEs per chip binds, `NoSolution` when
    router entries or DRAM could bind and the solver found no cut in its time.
    """
    stats.splits += 1
    if not fits(split.sizes, split.capacity(0), split.capacity(1)):
        return None
    size = len(split.sizes) + len(split.edges[0])
    seconds = min(seconds, _MIN_SOLVE_SECONDS + SECONDS_PER_ELEMENT * size)
    hints = candidate_hints(split)
    sides = _solve_cut(split, hints, chip_weight, seconds, stats)
    if sides is not None:
        return sides
    if _has_other_families(split):
        # Router entries or DRAM may make every cut infeasible: say which, if the solver can.
        limits = binding_limits(split, seconds, stats)
        raise Infeasible(limits) if limits else NoSolution()
    if hints:
        return min(hints, key=lambda hint: cut_cost(split, hint))
    return subset_split(split.sizes, split.capacity(0), split.capacity(1))


def _solve_cut(
    split: Split, hints: list[np.ndarray], chip_weight: int, seconds: float, stats: SplitStats
) -> np.ndarray | None:
    """Sides from CP-SAT: directly for a small cut, multilevel for a large one."""
    if len(split.sizes) <= COARSEST_GROUPS:
        hint = min(hints, key=lambda sides: cut_cost(split, sides)) if hints else split.hint
        return _solve(replace(split, hint=hint), chip_weight, seconds, stats, finest=True)
    levels: list[tuple[Split, np.ndarray]] = []
    coarse = split
    while len(coarse.sizes) > COARSEST_GROUPS:
        coarser, cluster = coarsen(coarse)
        if len(coarser.sizes) > COARSENING_PROGRESS * len(coarse.sizes):
            break
        levels.append((coarse, cluster))
        coarse = coarser
    if not levels:
        return _solve(split, chip_weight, seconds, stats, finest=True)
    # The coarsest cut, once from each candidate hint; the cheapest result wins.
    best: np.ndarray | None = None
    for hint in hints or [split.hint]:
        start = _project(hint, split.sizes, levels)
        share = seconds / 2 / max(1, len(hints))
        sides = _solve(replace(coarse, hint=start), chip_weight, share, stats)
        if sides is not None and (best is None or cut_cost(coarse, sides) < cut_cost(coarse, best)):
            best = sides
    if best is None:
        return _solve(split, chip_weight, seconds / 2, stats, finest=True)
    # Finer levels: the coarser cut, refined where it can change.
    for fine, cluster in reversed(levels):
        best = refine(fine, best[cluster], chip_weight, seconds / 2 / len(levels), stats)
    return best


def _project(sides: np.ndarray, sizes: np.ndarray, levels: list[tuple[Split, np.ndarray]]):
    """Sides of the finest groups carried to the coarsest: each cluster goes where most bins go."""
    for _, cluster in levels:
        count = int(cluster.max()) + 1
        votes = [
            np.bincount(cluster, weights=sizes * (sides == s), minlength=count) for s in (0, 1)
        ]
        sides = (votes[1] > votes[0]).astype(np.int64)
        sizes = np.bincount(cluster, weights=sizes, minlength=count).astype(np.int64)
    return sides


def refine(
    split: Split, sides: np.ndarray, chip_weight: int, seconds: float, stats: SplitStats
) -> np.ndarray:
    """A better cut near `sides`: only groups on the boundary (or drawn to the other side) move.

    The other groups are fixed: their traffic to the free groups becomes a cost per side, their
    bins PEs taken. With router entries or DRAM in play the whole cut is solved again.
    """
    if _has_other_families(split):
        solved = _solve(replace(split, hint=sides), chip_weight, seconds, stats)
        return sides if solved is None else solved
    first, second, _ = split.edges
    free = np.zeros(len(sides), dtype=bool)
    apart = sides[first] != sides[second]
    free[first[apart]] = free[second[apart]] = True
    here = split.side_cost[np.arange(len(sides)), sides]
    there = split.side_cost[np.arange(len(sides)), 1 - sides]
    free |= there < here
    if not free.any():
        return sides
    solved = _solve(restrict(split, sides, free), chip_weight, seconds, stats)
    if solved is None:
        return sides
    refined = sides.copy()
    refined[free] = solved
    return refined


def restrict(split: Split, sides: np.ndarray, free: np.ndarray) -> Split:
    """The cut of the `free` groups with every other group fixed at its side in `sides`."""
    first, second, cost = split.edges
    local = np.cumsum(free) - 1
    inside = free[first] & free[second]
    side_cost = split.side_cost[free].astype(np.int64)
    for mine, other in ((first, second), (second, first)):
        crossing = free[mine] & ~free[other]
        # A free group pays the edge on the side away from its fixed partner.
        np.add.at(side_cost, (local[mine[crossing]], 1 - sides[other[crossing]]), cost[crossing])
    fixed = ~free
    taken = [int(split.sizes[fixed & (sides == s)].sum()) for s in (0, 1)]
    return replace(
        split,
        sizes=split.sizes[free],
        flows=split.flows[free],
        dram=split.dram[free],
        edges=(local[first[inside]], local[second[inside]], cost[inside]),
        side_cost=side_cost,
        router_sources=[],
        hint=sides[free],
        fixed_load=(split.fixed_load[0] + taken[0], split.fixed_load[1] + taken[1]),
    )


def candidate_hints(split: Split) -> list[np.ndarray]:
    """The greedy sides and the two topological splits, those that respect the PEs.

    Topological: groups in order (they are in bin order) fill the first half, or the second
    half from the end.
    """
    sizes = split.sizes
    forward = (np.cumsum(sizes) > split.capacity(0)).astype(np.int64)
    backward = 1 - (np.cumsum(sizes[::-1])[::-1] > split.capacity(1)).astype(np.int64)
    return [hint for hint in (split.hint, forward, backward) if _respects_pes(split, hint)]


def _solve(
    split: Split, chip_weight: int, seconds: float, stats: SplitStats, finest: bool = False
) -> np.ndarray | None:
    """One CP-SAT solve of a cut; on the finest level an infeasible cut names its limits."""
    model, side, _ = bisection_model(split, chip_weight)
    solver = _solver(seconds)
    status = solver.solve(model)
    stats.solves += 1
    stats.deterministic_seconds += solver.deterministic_time
    name = solver.status_name(status)
    stats.statuses[name] = stats.statuses.get(name, 0) + 1
    if status in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        return np.array([solver.value(variable) for variable in side], dtype=np.int64)
    if status == cp_model.INFEASIBLE and finest and _has_other_families(split):
        limits = binding_limits(split, seconds, stats)
        if limits and limits != (PES,):
            raise Infeasible(limits)
    return None


def _has_other_families(split: Split) -> bool:
    return _router_may_bind(split) or bool(split.dram.any())


def cut_cost(split: Split, sides: np.ndarray) -> int:
    """The objective of a cut without the chip term (traffic apart and leaving the region)."""
    first, second, cost = split.edges
    apart = int((cost * (sides[first] != sides[second])).sum())
    return apart + int(split.side_cost[np.arange(len(sides)), sides].sum())


def _respects_pes(split: Split, sides: np.ndarray) -> bool:
    sizes = split.sizes
    return all(sizes[sides == s].sum() <= split.capacity(s) for s in (0, 1))


def coarsen(split: Split) -> tuple[Split, np.ndarray]:
    """A cut with pairs of groups merged along the heaviest edges, and each group's cluster.

    Heavy-edge matching (as in multilevel graph partitioning): edges by falling cost, a pair is
    merged when neither group is merged yet and together they hold at most a quarter of the
    smaller half's PEs. The coarse hint: the side holding most of a cluster's bins.
    """
    count = len(split.sizes)
    first, second, cost = split.edges
    limit = max(int(split.sizes.max()), min(split.capacity(0), split.capacity(1)) // 4)
    mate = np.full(count, -1, dtype=np.int64)
    for edge in np.argsort(-cost, kind="stable").tolist():
        g, h = int(first[edge]), int(second[edge])
        if mate[g] < 0 and mate[h] < 0 and split.sizes[g] + split.sizes[h] <= limit:
            mate[g], mate[h] = h, g
    cluster = np.full(count, -1, dtype=np.int64)
    clusters = 0
    for g in range(count):
        if cluster[g] < 0:
            cluster[g] = clusters
            if mate[g] >= 0:
                cluster[mate[g]] = clusters
            clusters += 1

    def summed(values: np.ndarray) -> np.ndarray:
        return np.bincount(cluster, weights=values, minlength=clusters).astype(np.int64)

    side_cost = np.stack([summed(split.side_cost[:, s]) for s in (0, 1)], axis=1)
    votes = np.stack([summed(split.sizes * (split.hint == s)) for s in (0, 1)], axis=1)
    low = np.minimum(cluster[first], cluster[second])
    high = np.maximum(cluster[first], cluster[second])
    keep = low != high
    keys, inverse = np.unique(low[keep] * clusters + high[keep], return_inverse=True)
    edge_cost = np.bincount(inverse, weights=cost[keep]).astype(np.int64)
    coarse = replace(
        split,
        sizes=summed(split.sizes),
        flows=summed(split.flows),
        dram=summed(split.dram),
        edges=(keys // clusters, keys % clusters, edge_cost),
        side_cost=side_cost,
        router_sources=[
            (flows, np.unique(cluster[members])) for flows, members in split.router_sources
        ],
        hint=(votes[:, 1] > votes[:, 0]).astype(np.int64),
    )
    return coarse, cluster


def subset_split(sizes: np.ndarray, first: int, second: int) -> np.ndarray:
    """Sides such that the groups on side 0 fill at most `first` PEs and the rest at most
    `second`, read back from the subset-sum table (`fits` must hold)."""
    total = int(sizes.sum())
    low = max(0, total - second)
    reachable = [1]  # reachable[i]: sums of some of the first i groups, as bits
    for size in sizes.tolist():
        reachable.append(reachable[-1] | (reachable[-1] << size))
    target = next(t for t in range(low, first + 1) if reachable[-1] >> t & 1)
    sides = np.ones(len(sizes), dtype=np.int64)
    for index in reversed(range(len(sizes))):
        if not reachable[index] >> target & 1:  # the sum needs this group
            sides[index] = 0
            target -= int(sizes[index])
    return sides


def fits(sizes: np.ndarray, first: int, second: int) -> bool:
    """Whether some groups of `sizes` fill at most `first` PEs and the rest at most `second`."""
    total = int(sizes.sum())
    if total > first + second:
        return False
    reachable = 1  # bit k set: some groups sum to k
    for size in sizes.tolist():
        reachable |= reachable << size
    window = reachable >> max(0, total - second)  # sums of at least total - second
    return window & ((1 << (first - max(0, total - second) + 1)) - 1) != 0


def binding_limits(split: Split, seconds: float, stats: SplitStats) -> tuple[str, ...]:
    """The capacity families that make a cut infeasible, from the solver's assumption core;
    empty when the solver proves nothing within its time."""
    model, _, families = bisection_model(split, 0, assume=True)
    solver = _solver(max(seconds, DIAGNOSIS_SECONDS))  # assumptions turn presolve off: slower
    status = solver.solve(model)
    stats.deterministic_seconds += solver.deterministic_time
    if status != cp_model.INFEASIBLE:
        return ()
    core = set(solver.sufficient_assumptions_for_infeasibility())
    return tuple(name for name, literal in families.items() if literal.index in core)
