"""Greedy placement: which PE runs each slice.

Method (raster next-fit, as SpiNNaker's PACMAN places vertices): PEs are visited in a fixed raster
order, chips by hop distance from the host chip (ties by (x, y)) and within a chip in the order of
`Machine.usable_cores`. Slices arrive in a topological order (producers before consumers) and go
one after another onto the current PE while its SRAM data region still holds them and, unless
`share_pe_across_layers` is set, they belong to the same layer as the slices already there (a PE
then runs the kernels of one layer only, which keeps the placement map readable). Otherwise the
next PE opens; a PE once left is never revisited.

The algorithm first packs slices into numbered bins on an unbounded machine and then maps bin i to
the i-th PE of the raster, so the number of PEs a placement needs is known even when the machine
is too small, and the error can say which machine would fit. The result is deterministic.

This placement is also the hint and the fallback of the constraint-solver placer.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from backend.hardware import MAX_BOARDS, Machine
from backend.program import PECoord
from backend.topology import BOARD_CHIPS, Chip
from ir.errors import InternalError, ResourceError


def place_greedy(
    slice_bytes: Sequence[int],
    machine: Machine,
    layer_of: Sequence[int],
    *,
    slice_names: Sequence[str] | None = None,
    share_pe_across_layers: bool = False,
) -> list[PECoord]:
    """The PE of each slice: raster next-fit over PEs (see the module docstring).

    `slice_bytes[i]` is the SRAM data slice i needs and `layer_of[i]` its layer. ResourceError when
    a slice does not fit one PE or the slices need more PEs than the machine has; messages call
    slice i `slice_names[i]` when names are given, else "slice i of layer L".
    """
    _check_inputs(slice_bytes, layer_of, slice_names)
    budget = machine.chip_spec.data_bytes
    _check_slices_fit(slice_bytes, layer_of, budget, slice_names)
    bin_of = pack_next_fit(slice_bytes, layer_of, budget, share_pe_across_layers)
    pes_needed = bin_of[-1] + 1 if bin_of else 0
    if pes_needed > machine.pe_count:
        raise ResourceError(_too_few_pes_message(pes_needed, machine))
    pes = list(_first_pes(machine, pes_needed))
    return [pes[index] for index in bin_of]


def pack_next_fit(
    slice_bytes: Sequence[int], layer_of: Sequence[int], budget: int, share_pe_across_layers: bool
) -> list[int]:
    """Bin index (0, 1, 2, ...) of each slice when bins of `budget` bytes are filled in turn."""
    bin_of: list[int] = []
    used = 0
    layer: int | None = None
    for size, slice_layer in zip(slice_bytes, layer_of, strict=True):
        same_layer = share_pe_across_layers or layer in (None, slice_layer)
        if bin_of and not (same_layer and used + size <= budget):
            bin_of.append(bin_of[-1] + 1)
            used, layer = size, slice_layer
            continue
        bin_of.append(bin_of[-1] if bin_of else 0)
        used, layer = used + size, slice_layer
    return bin_of


def chip_order(machine: Machine) -> list[Chip]:
    """The machine's chips by hop distance from the host chip, ties by (x, y)."""
    hops = machine.link_graph.distances_from(machine.host_chip)
    index = machine.link_graph.index
    return sorted(machine.chips, key=lambda chip: (hops[index[chip]], chip))


def _first_pes(machine: Machine, count: int) -> Iterator[PECoord]:
    """The first `count` PEs of the raster order."""
    if count == 0:
        return
    for chip in chip_order(machine):
        for core in machine.usable_cores(chip):
            yield PECoord(chip, core)
            count -= 1
            if count == 0:
                return


def _check_inputs(
    slice_bytes: Sequence[int], layer_of: Sequence[int], slice_names: Sequence[str] | None
) -> None:
    if len(slice_bytes) != len(layer_of):
        raise InternalError(
            f"placement got {len(slice_bytes)} slice sizes but {len(layer_of)} layer indices"
        )
    if slice_names is not None and len(slice_names) != len(slice_bytes):
        raise InternalError(
            f"placement got {len(slice_bytes)} slice sizes but {len(slice_names)} slice names"
        )
    negative = [index for index, size in enumerate(slice_bytes) if size < 0]
    if negative:
        raise InternalError(f"slice {negative[0]} has a negative size {slice_bytes[negative[0]]}")


def _check_slices_fit(
    slice_bytes: Sequence[int],
    layer_of: Sequence[int],
    budget: int,
    slice_names: Sequence[str] | None,
) -> None:
    """ResourceError naming the first slice larger than one PE's SRAM data region."""
    for index, size in enumerate(slice_bytes):
        if size <= budget:
            continue
        name = f"slice {index} of layer {layer_of[index]}"
        if slice_names is not None:
            name = slice_names[index]
        raise ResourceError(
            f"{name} needs {size} bytes of SRAM, a PE has {budget} "
            f"(sram_bytes - code_bytes - stack_bytes); cut the layer into smaller slices"
        )


def _too_few_pes_message(pes_needed: int, machine: Machine) -> str:
    usable = machine.chip_spec.usable_core_count
    message = (
        f"placement needs {pes_needed} PEs, machine '{machine.name}' has {machine.pe_count} "
        f"({machine.chip_count} chips x {usable} usable PEs)"
    )
    suggestion = suggest_machine(pes_needed, usable)
    if suggestion is None:
        return f"{message}; no machine of up to {MAX_BOARDS} boards is large enough"
    return f"{message}; use a bigger machine, e.g. --machine {suggestion}"


def suggest_machine(pes_needed: int, usable_per_chip: int) -> str | None:
    """The smallest preset name with `pes_needed` PEs, or None when no preset is that large.

    Boards form the most nearly square NxM grid with enough boards (fewest boards first, then
    the squarest, then fewest columns), as `backend.hardware.machine_from_name` accepts it.
    """
    if pes_needed <= usable_per_chip:
        return "chip"
    boards = math.ceil(pes_needed / (len(BOARD_CHIPS) * usable_per_chip))
    if boards == 1:
        return "board"
    if boards > MAX_BOARDS:
        return None
    grids = ((math.ceil(boards / rows), rows) for rows in range(1, boards + 1))
    fitting = [(c, r) for c, r in grids if c * r <= MAX_BOARDS]
    columns, rows = min(fitting, key=lambda grid: (grid[0] * grid[1], abs(grid[0] - grid[1]), grid))
    return f"{columns}x{rows}-boards"


@dataclass(frozen=True)
class PlacementSummary:
    """How many PEs a placement uses on each chip."""

    pes_by_chip: dict[Chip, int]

    @staticmethod
    def of(placement: Sequence[PECoord]) -> PlacementSummary:
        counts = Counter(pe.chip for pe in set(placement))
        return PlacementSummary(dict(sorted(counts.items())))

    @property
    def chips_used(self) -> int:
        return len(self.pes_by_chip)

    @property
    def pes_used(self) -> int:
        return sum(self.pes_by_chip.values())

    def describe(self) -> str:
        """One line, e.g. '3 PEs on 2 chips: (0, 0) 2, (1, 0) 1'."""
        per_chip = ", ".join(f"{chip} {count}" for chip, count in self.pes_by_chip.items())
        return f"{self.pes_used} PEs on {self.chips_used} chips: {per_chip}"
