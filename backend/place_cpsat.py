"""Placement by constraint solving: which chip and PE runs each slice, minimising traffic x hops.

Objective (packets per inference; `backend.placement.traffic`):

    inter-chip traffic (packets x chip hops)
  + qpe_hop_weight x on-chip traffic (packets x QPE hops)
  + chip_weight x chips used

Method, in three steps (`backend.placement`):
1. Bins. Slices are packed into PE bins exactly as the greedy placer packs them (next fit, one
   layer per PE), so the SRAM of every PE is respected by construction; the greedy placement
   (`backend.place.place_greedy`) is computed first, as the hint, the fallback and the yardstick.
2. Chips. Groups of bins (runs of one layer) are assigned to chips by recursive bisection of the
   candidate chips, each cut a CP-SAT model (`backend.placement.bisection`) under PEs, router
   entries and DRAM per chip, hinted with the greedy placement (and two pipeline splits). The
   solver runs on one worker with a fixed seed and a deterministic time limit, so the same
   inputs give the same placement whatever the machine's load.
3. Cores. Within a chip, bins that talk go to nearby QPEs (`backend.placement.cores`).

The result is compared with the greedy placement on the same objective and the better one is
kept. The report gives both, the solver's statistics, and a lower bound on the objective
(`backend.placement.bound`) with the gap to it. When a cut is infeasible the report names the
binding capacity and the greedy placement is used.

`qpe_hop_weight` (1/16 by default) and `chip_weight` (0 by default) are cost-model choices, not
hardware facts: a hop between QPEs on the network-on-chip is taken as much cheaper than a hop
between chips, and a chip is free unless the user says what one is worth in packets x hops.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from backend.hardware import Machine
from backend.place import pack_next_fit, place_greedy
from backend.placement.bisection import assign_chips
from backend.placement.bound import traffic_lower_bound
from backend.placement.cores import assign_cores
from backend.placement.cut import Infeasible, NoSolution, SplitStats
from backend.placement.problem import BinProblem, bin_problem, initial_groups
from backend.placement.traffic import Cost, Traffic, placement_cost, router_entry_estimate
from backend.program import PECoord
from ir.errors import InputError

PLACERS = ("greedy", "cpsat")
DEFAULT_TIME_LIMIT = 10.0  # deterministic seconds (CP-SAT's work units, roughly seconds)
GROUP_SIZE = 32  # bins per group at most


@dataclass(frozen=True)
class CpsatOptions:
    """What the constraint-solving placer optimises and how long it may search."""

    time_limit: float = DEFAULT_TIME_LIMIT
    chip_weight: float = 0.0
    qpe_hop_weight: float = 1 / 16
    group_size: int = GROUP_SIZE

    def check(self) -> None:
        if not self.time_limit > 0:
            raise InputError(f"--place-time must be > 0 seconds, got {self.time_limit}")
        if self.chip_weight < 0 or self.qpe_hop_weight < 0:
            raise InputError("placement weights must not be negative")
        if self.group_size < 1:
            raise InputError(f"placement group size must be >= 1, got {self.group_size}")


@dataclass
class PlacementReport:
    """How a placement was found and what it costs, with the greedy placement's numbers."""

    placer: str
    status: str  # optimal, feasible, fallback, infeasible, greedy
    objective: float
    best_bound: float
    figures: dict[str, object]  # chips_used, pes_used, pes_per_chip, traffic, router entries
    greedy: dict[str, object]  # objective and figures of the greedy placement
    greedy_objective: float = 0.0
    solver: dict[str, object] = field(default_factory=dict)  # time limit, cuts, groups, ...
    binding_limits: tuple[str, ...] = ()
    note: str = ""
    solve_seconds: float = 0.0  # wall clock: for information, never part of the image

    @property
    def gap(self) -> float:
        """(objective - bound) / objective; 0 when the objective is 0."""
        if self.objective <= 0:
            return 0.0
        return max(0.0, (self.objective - self.best_bound) / self.objective)

    def as_dict(self, wall_clock: bool = True) -> dict[str, object]:
        """JSON-ready; without `wall_clock`, deterministic (as stored in the image)."""
        result: dict[str, object] = {
            "placer": self.placer,
            "status": self.status,
            "objective": _rounded(self.objective),
            "best_bound": _rounded(self.best_bound),
            "gap": _rounded(self.gap),
            **self.figures,
            "binding_limits": list(self.binding_limits),
            "note": self.note,
            "solver": self.solver,
            "greedy": self.greedy,
        }
        if wall_clock:
            result["solve_seconds"] = round(self.solve_seconds, 3)
        return result

    def describe(self) -> str:
        """One line for the compile output."""
        line = (
            f"{self.placer}: {self.status}, objective {self.objective:.6g} "
            f"(greedy {self.greedy_objective:.6g}), bound {self.best_bound:.6g}, "
            f"gap {self.gap:.1%}, {self.solve_seconds:.1f} s"
        )
        return f"{line}; {self.note}" if self.note else line


@dataclass(frozen=True)
class PlacementOutcome:
    """A placement (one PE per slice) and its report."""

    placement: list[PECoord]
    report: PlacementReport


def place_cpsat(
    slice_bytes: Sequence[int],
    layer_of: Sequence[int],
    traffic: Traffic,
    machine: Machine,
    options: CpsatOptions = CpsatOptions(),
    *,
    slice_names: Sequence[str] | None = None,
) -> PlacementOutcome:
    """Place slices by recursive CP-SAT bisection (module docstring); never worse than greedy.

    ResourceError as `place_greedy` raises it when the slices cannot fit the machine at all.
    """
    options.check()
    started = time.perf_counter()
    greedy = place_greedy(slice_bytes, machine, layer_of, slice_names=slice_names)
    greedy_cost = placement_cost(traffic, greedy, machine)
    budget = machine.chip_spec.data_bytes
    bins = pack_next_fit(slice_bytes, layer_of, budget, False)
    problem = bin_problem(bins, layer_of, traffic, machine)
    groups = initial_groups(problem, options.group_size)
    stats = SplitStats()
    solver: dict[str, object] = {"groups": len(groups)}
    try:
        chip_of_bin, placed = assign_chips(
            problem, groups, options.time_limit, round(options.chip_weight), stats
        )
    except (Infeasible, NoSolution) as failure:
        solver.update(_stats(stats, options.time_limit))
        status = "infeasible" if isinstance(failure, Infeasible) else "fallback"
        report = _report(
            status, greedy, greedy, greedy_cost, traffic, machine, options, problem, groups
        )
        report.solver = solver
        if isinstance(failure, Infeasible):
            report.binding_limits = failure.limits
            report.note = f"no cut respects {', '.join(failure.limits)}; greedy placement used"
        else:
            report.note = "no cut found within the time limit; greedy placement used"
        report.solve_seconds = time.perf_counter() - started
        return PlacementOutcome(greedy, report)
    solver.update(_stats(stats, options.time_limit))
    core_of_bin = assign_cores(chip_of_bin, problem.traffic, machine.chip_spec)
    placement = [
        PECoord(problem.chips[chip_of_bin[b]], int(core_of_bin[b])) for b in problem.bin_of_slice
    ]
    cost = placement_cost(traffic, placement, machine)
    objective = cost.objective(options.qpe_hop_weight, options.chip_weight)
    greedy_objective = greedy_cost.objective(options.qpe_hop_weight, options.chip_weight)
    status, note = "feasible", ""
    if greedy_objective < objective:
        placement, cost = greedy, greedy_cost
        status, note = "fallback", "the greedy placement costs less; it is used"
    report = _report(status, placement, greedy, greedy_cost, traffic, machine, options, problem)
    report.best_bound = _bound(problem, placed, options)
    if report.objective <= report.best_bound and status == "feasible":
        report.status = "optimal"
    report.solver, report.note = solver, note
    report.solve_seconds = time.perf_counter() - started
    return PlacementOutcome(placement, report)


def greedy_outcome(
    slice_bytes: Sequence[int],
    layer_of: Sequence[int],
    traffic: Traffic,
    machine: Machine,
    options: CpsatOptions = CpsatOptions(),
    *,
    slice_names: Sequence[str] | None = None,
) -> PlacementOutcome:
    """The greedy placement with the same report (no solver runs)."""
    started = time.perf_counter()
    greedy = place_greedy(slice_bytes, machine, layer_of, slice_names=slice_names)
    cost = placement_cost(traffic, greedy, machine)
    bins = pack_next_fit(slice_bytes, layer_of, machine.chip_spec.data_bytes, False)
    problem = bin_problem(bins, layer_of, traffic, machine)
    groups = initial_groups(problem, options.group_size)
    report = _report("greedy", greedy, greedy, cost, traffic, machine, options, problem, groups)
    report.placer = "greedy"
    report.solve_seconds = time.perf_counter() - started
    return PlacementOutcome(greedy, report)


def _report(
    status: str,
    placement: list[PECoord],
    greedy: list[PECoord],
    greedy_cost: Cost,
    traffic: Traffic,
    machine: Machine,
    options: CpsatOptions,
    problem: BinProblem | None = None,
    groups: Sequence[tuple[int, int]] | None = None,
) -> PlacementReport:
    cost = placement_cost(traffic, placement, machine) if placement is not greedy else greedy_cost
    weights = (options.qpe_hop_weight, options.chip_weight)
    greedy_figures = _figures(greedy, greedy_cost, traffic, machine)
    bound = _bound(problem, groups, options) if problem is not None and groups else 0.0
    return PlacementReport(
        placer="cpsat",
        status=status,
        objective=cost.objective(*weights),
        best_bound=bound,
        figures=_figures(placement, cost, traffic, machine),
        greedy={"objective": _rounded(greedy_cost.objective(*weights)), **greedy_figures},
        greedy_objective=greedy_cost.objective(*weights),
    )


def _figures(
    placement: list[PECoord], cost: Cost, traffic: Traffic, machine: Machine
) -> dict[str, object]:
    pes = sorted(set(placement), key=lambda pe: (pe.chip, pe.core))
    per_chip: dict[str, int] = {}
    for pe in pes:
        key = f"{pe.chip[0]},{pe.chip[1]}"
        per_chip[key] = per_chip.get(key, 0) + 1
    return {
        "chips_used": cost.chips_used,
        "pes_used": len(pes),
        "pes_per_chip": per_chip,
        "inter_chip_traffic": cost.inter_chip,
        "on_chip_traffic": cost.on_chip,
        "router_entries_estimate_max": router_entry_estimate(traffic, placement, machine),
    }


def _bound(problem: BinProblem, groups: Sequence[tuple[int, int]], options: CpsatOptions) -> float:
    """Lower bound on the objective: traffic bound + fewest chips that hold the bins."""
    usable = problem.pes_per_chip
    fewest = -(-problem.bin_count // usable) if problem.bin_count else 0
    return traffic_lower_bound(problem, groups) + options.chip_weight * fewest


def _stats(stats: SplitStats, time_limit: float) -> dict[str, object]:
    """Solver figures for the report. The time limit is named only when a run stopped at it
    (a status other than OPTIMAL or INFEASIBLE): a limit that was not reached does not change
    the placement, so it must not change the image's bytes either."""
    figures: dict[str, object] = {
        "cuts": stats.splits,
        "solver_runs": stats.solves,
        "statuses": dict(sorted(stats.statuses.items())),
        "halvings": stats.halvings,
        "deterministic_seconds": round(stats.deterministic_seconds, 6),
    }
    if set(stats.statuses) - {"OPTIMAL", "INFEASIBLE"}:
        figures["time_limit"] = time_limit
    return figures


def _rounded(value: float) -> float:
    return float(np.round(value, 6))
