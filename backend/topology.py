"""Topology: the QPE grid in a chip, the SpiNN-5 48-chip board, board tiling and the link graph.

Inside a chip, PEs sit in quad-PEs (QPEs) on a grid of positions (qx, qy) counted from 1 (SM:
`version_spin2.py`) [P]. A core map lists the PEs the compiler may use, one (qx, qy, p) per core
index; the default lists them row by row and leaves out `RESERVED_QPE` (see `backend.hardware`).

Chips have SpiNNaker's hexagonal chip coordinates (SM: SpiNNMachine `version_5.py`,
`version_48_chips.py`, `spinnaker_triad_geometry.py`) [P]. Each chip has six links, indexed in the
order of `backend.program.LINK_NAMES`:

    E (+1, 0)   NE (+1, +1)   N (0, +1)   W (-1, 0)   SW (-1, -1)   S (0, -1)

so link `i` and link `(i + 3) % 6` are opposite. In this metric the distance between two chips on
an unbounded plane is `max(|dx|, |dy|)` when dx and dy have the same sign and `|dx| + |dy|`
otherwise.

A board is 48 chips in a hexagon on an 8x8 footprint: row y holds x in `BOARD_ROWS[y]`. Its
Ethernet chip, local (0, 0), is the board's origin. Boards tile the plane with their origins on the
lattice spanned by (8, 4) and (4, 8); three boards with origins (0, 0), (8, 4) and (4, 8) (a
"triad") tile a 12x12 torus exactly, which is how SpiNNaker machines wrap around (SM).

Multi-board machines ("NxM-boards") place board (column i, row j) at origin
`i * (8, 4) + j * (4, 8)`. Both steps lead to an adjacent board, so the boards form a compact
parallelogram of hexagons (2x2 boards: a rhombus of four). Chips keep their plane coordinates,
which are never negative. A machine wraps toroidally when its boards tile a
torus of whole triads exactly (12W x 12H chips with 3 * W * H boards): 1x3, 3x1, 2x3, 3x2, 6x1
and 1x6 boards do, 3x3 boards do not. Then coordinates are reduced modulo the torus size.
Otherwise it does not wrap, and links that would leave the machine do not exist.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np

from backend.program import LINK_NAMES
from ir.errors import InputError, InternalError

Chip = tuple[int, int]
QpeCore = tuple[int, int, int]

# The QPE whose four PEs run system software: an assumption, only the count (4) is reported [S].
RESERVED_QPE: Chip = (1, 1)


def application_core_order(
    grid_width: int, grid_height: int, empty: tuple[Chip, ...], pes_per_qpe: int
) -> tuple[QpeCore, ...]:
    """Every application PE of a QPE grid, row by row (qy, then qx, then p), RESERVED_QPE last."""
    cores = [
        (qx, qy, p)
        for qy in range(1, grid_height + 1)
        for qx in range(1, grid_width + 1)
        if (qx, qy) not in empty
        for p in range(pes_per_qpe)
    ]
    kept = [core for core in cores if core[:2] != RESERVED_QPE]
    reserved = [core for core in cores if core[:2] == RESERVED_QPE]
    return tuple(kept + reserved)


def default_core_map(
    grid_width: int, grid_height: int, empty: tuple[Chip, ...], pes_per_qpe: int
) -> tuple[QpeCore, ...]:
    """The application PEs of a QPE grid without the reserved QPE, in core-index order."""
    order = application_core_order(grid_width, grid_height, empty, pes_per_qpe)
    return tuple(core for core in order if core[:2] != RESERVED_QPE)


# Chip-to-chip link directions by name (SM, SpiNNaker1 lineage) [P].
_DELTA_BY_LINK_NAME: dict[str, Chip] = {
    "E": (1, 0),
    "NE": (1, 1),
    "N": (0, 1),
    "W": (-1, 0),
    "SW": (-1, -1),
    "S": (0, -1),
}
LINK_DELTAS: tuple[Chip, ...] = tuple(_DELTA_BY_LINK_NAME[name] for name in LINK_NAMES)
OPPOSITE_LINK: tuple[int, ...] = tuple(LINK_DELTAS.index((-dx, -dy)) for dx, dy in LINK_DELTAS)

# The SpiNN-5 48-chip board: for each row y = 0..7, the first and last x on that row (SM) [P].
BOARD_ROWS: tuple[tuple[int, int], ...] = (
    (0, 4),
    (0, 5),
    (0, 6),
    (0, 7),
    (1, 7),
    (2, 7),
    (3, 7),
    (4, 7),
)
BOARD_CHIPS: tuple[Chip, ...] = tuple(
    sorted((x, y) for y, (first, last) in enumerate(BOARD_ROWS) for x in range(first, last + 1))
)

# Board tiling (SM, `spinnaker_triad_geometry.py`) [P]: a triad of three boards is 12x12 chips.
TRIAD_SIZE = 12
BOARDS_PER_TRIAD = 3
BOARD_COLUMN_STEP: Chip = (8, 4)
BOARD_ROW_STEP: Chip = (4, 8)


def board_grid_origins(columns: int, rows: int) -> tuple[Chip, ...]:
    """Origins of the boards of an NxM-boards machine, sorted; see the module docstring."""
    column_dx, column_dy = BOARD_COLUMN_STEP
    row_dx, row_dy = BOARD_ROW_STEP
    origins = (
        (i * column_dx + j * row_dx, i * column_dy + j * row_dy)
        for i in range(columns)
        for j in range(rows)
    )
    return tuple(sorted(origins))


def board_chips(origin: Chip) -> tuple[Chip, ...]:
    """The 48 chips of the board whose Ethernet chip is at `origin`, in plane coordinates."""
    origin_x, origin_y = origin
    return tuple((origin_x + x, origin_y + y) for x, y in BOARD_CHIPS)


def find_torus(origins: tuple[Chip, ...]) -> tuple[int, int] | None:
    """The (width, height) of a torus of whole triads that these boards tile exactly, or None.

    Candidate tori are 12W x 12H chips with 3 * W * H boards, tried from the squarest. The boards
    tile one when their chips, reduced modulo its size, cover every position exactly once.
    """
    if len(origins) % BOARDS_PER_TRIAD != 0:
        return None
    triads = len(origins) // BOARDS_PER_TRIAD
    shapes = [(w, triads // w) for w in range(1, triads + 1) if triads % w == 0]
    shapes.sort(key=lambda shape: (abs(shape[0] - shape[1]), shape[0]))
    for triads_wide, triads_high in shapes:
        width, height = triads_wide * TRIAD_SIZE, triads_high * TRIAD_SIZE
        reduced = {(x % width, y % height) for origin in origins for x, y in board_chips(origin)}
        if len(reduced) == width * height:
            return width, height
    return None


def wrap_chip(chip: Chip, width: int, height: int, wrap_x: bool, wrap_y: bool) -> Chip:
    """`chip` reduced modulo the machine's size along the axes that wrap."""
    x, y = chip
    return (x % width if wrap_x else x, y % height if wrap_y else y)


def board_table(
    boards: tuple[Chip, ...], chips: tuple[Chip, ...], size: Chip, wrap: tuple[bool, bool]
) -> dict[Chip, Chip]:
    """The board origin of every chip; InputError when a chip is on no board or on two."""
    present = set(chips)
    board_by_chip: dict[Chip, Chip] = {}
    for origin in boards:
        for chip in board_chips(origin):
            chip = wrap_chip(chip, *size, *wrap)
            if chip not in present:
                continue
            if chip in board_by_chip:
                raise InputError(
                    f"machine chip {chip} is on boards {board_by_chip[chip]} and {origin}"
                )
            board_by_chip[chip] = origin
    for chip in chips:
        if chip not in board_by_chip:
            raise InputError(f"machine chip {chip} is on none of the boards")
    return board_by_chip


@dataclass(frozen=True)
class BoardLayout:
    """Where a machine's boards and chips are: sorted chips and board origins, size, wrapping."""

    chips: tuple[Chip, ...]
    boards: tuple[Chip, ...]
    size: Chip
    wrap: bool


def board_layout(origins: tuple[Chip, ...], allow_wrap: bool) -> BoardLayout:
    """Boards at `origins`, on the torus they tile when allowed and possible, else in the plane."""
    torus = find_torus(origins) if allow_wrap else None
    plane_chips = [chip for origin in origins for chip in board_chips(origin)]
    if torus is None:
        size = (max(x for x, _ in plane_chips) + 1, max(y for _, y in plane_chips) + 1)
        return BoardLayout(tuple(sorted(plane_chips)), tuple(sorted(origins)), size, wrap=False)
    chips = {wrap_chip(chip, *torus, True, True) for chip in plane_chips}
    boards = {wrap_chip(origin, *torus, True, True) for origin in origins}
    return BoardLayout(tuple(sorted(chips)), tuple(sorted(boards)), torus, wrap=True)


def link_table(
    chips: tuple[Chip, ...], size: Chip, wrap: tuple[bool, bool]
) -> dict[Chip, dict[int, Chip]]:
    """Each chip's existing neighbours by link index.

    A link exists when the chip one step away in its direction (modulo the machine's size along a
    wrapping axis) is part of the machine and is not the chip itself.
    """
    present = set(chips)
    table: dict[Chip, dict[int, Chip]] = {}
    for chip in chips:
        steps = ((link, (chip[0] + dx, chip[1] + dy)) for link, (dx, dy) in enumerate(LINK_DELTAS))
        wrapped = ((link, wrap_chip(step, *size, *wrap)) for link, step in steps)
        table[chip] = {link: other for link, other in wrapped if other in present and other != chip}
    return table


class LinkGraph:
    """The chip-to-chip link graph of a machine, with hop distances by breadth-first search.

    Distances from a chip are computed when first asked for and kept, so a placer's all-pairs
    table costs one search per chip (O(chips * links) each).
    """

    def __init__(self, links: dict[Chip, dict[int, Chip]]) -> None:
        self.links = links
        self.chips: tuple[Chip, ...] = tuple(sorted(links))
        self.index: dict[Chip, int] = {chip: i for i, chip in enumerate(self.chips)}
        self._adjacent = tuple(
            tuple(self.index[links[chip][link]] for link in sorted(links[chip]))
            for chip in self.chips
        )
        self._distances: dict[int, list[int]] = {}
        self._matrix: np.ndarray | None = None

    def chip_index(self, chip: Chip) -> int:
        if chip not in self.index:
            raise InternalError(f"chip {chip} is not in the machine")
        return self.index[chip]

    def distances_from(self, chip: Chip) -> list[int]:
        """Hops from `chip` to every chip, in `chips` order; -1 where unreachable."""
        source = self.chip_index(chip)
        if source not in self._distances:
            self._distances[source] = breadth_first_distances(source, self._adjacent)
        return self._distances[source]

    def hop_distance(self, chip_a: Chip, chip_b: Chip) -> int:
        return self.distances_from(chip_a)[self.chip_index(chip_b)]

    def shortest_path(self, chip_a: Chip, chip_b: Chip) -> list[int]:
        """Link indices from `chip_a` to `chip_b`; at each chip the lowest link index that gets
        one hop closer (links are symmetric, so distances to b are distances from b)."""
        to_b = self.distances_from(chip_b)
        if to_b[self.chip_index(chip_a)] < 0:
            raise InternalError(f"no route from chip {chip_a} to chip {chip_b}")
        path: list[int] = []
        chip = chip_a
        while chip != chip_b:
            remaining = to_b[self.index[chip]]
            link = min(
                link
                for link, other in self.links[chip].items()
                if to_b[self.index[other]] == remaining - 1
            )
            path.append(link)
            chip = self.links[chip][link]
        return path

    def distance_matrix(self) -> np.ndarray:
        """All-pairs hops as an int32 array indexed like `chips` (O(chips^2) memory)."""
        if self._matrix is None:
            rows = [self.distances_from(chip) for chip in self.chips]
            self._matrix = np.array(rows, dtype=np.int32).reshape(len(self.chips), len(self.chips))
            self._matrix.setflags(write=False)
        return self._matrix


def breadth_first_distances(
    source: int, neighbour_indices: tuple[tuple[int, ...], ...]
) -> list[int]:
    """Hops from chip index `source` to every chip index; -1 where unreachable."""
    distances = [-1] * len(neighbour_indices)
    distances[source] = 0
    frontier = deque([source])
    while frontier:
        chip = frontier.popleft()
        for neighbour in neighbour_indices[chip]:
            if distances[neighbour] < 0:
                distances[neighbour] = distances[chip] + 1
                frontier.append(neighbour)
    return distances
