"""Tests of the machine model against facts written out here independently of the code.

Independent facts used: SpiNNMachine's SpiNN-5 board (chips listed per column in `version_5.py`,
and its 48 board-edge links in the FPGA link table), its Spin2 QPE grid (`version_spin2.py`),
the closed-form hexagonal distance, and numbers from SPINNAKER2.md.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest

from backend.hardware import ChipSpec, Machine, load_machine, machine_from_name
from backend.program import LINK_NAMES
from ir.errors import InputError

# SpiNN-5 board chips, per column x: the range of y (SpiNNMachine version_5.py CHIPS_PER_BOARD).
BOARD_COLUMNS = {
    0: (0, 3),
    1: (0, 4),
    2: (0, 5),
    3: (0, 6),
    4: (0, 7),
    5: (1, 7),
    6: (2, 7),
    7: (3, 7),
}
BOARD = {(x, y) for x, (low, high) in BOARD_COLUMNS.items() for y in range(low, high + 1)}

# Links that leave a SpiNN-5 board, (x, y, link), from the FPGA link table of version_5.py.
BOARD_EDGE_LINKS = {
    (0, 0, 3), (0, 0, 4), (0, 0, 5), (0, 1, 3), (0, 1, 4), (0, 2, 3), (0, 2, 4), (0, 3, 2),
    (0, 3, 3), (0, 3, 4), (1, 0, 4), (1, 0, 5), (1, 4, 2), (1, 4, 3), (2, 0, 4), (2, 0, 5),
    (2, 5, 2), (2, 5, 3), (3, 0, 4), (3, 0, 5), (3, 6, 2), (3, 6, 3), (4, 0, 0), (4, 0, 4),
    (4, 0, 5), (4, 7, 1), (4, 7, 2), (4, 7, 3), (5, 1, 0), (5, 1, 5), (5, 7, 1), (5, 7, 2),
    (6, 2, 0), (6, 2, 5), (6, 7, 1), (6, 7, 2), (7, 3, 0), (7, 3, 1), (7, 3, 5), (7, 4, 0),
    (7, 4, 1), (7, 5, 0), (7, 5, 1), (7, 6, 0), (7, 6, 1), (7, 7, 0), (7, 7, 1), (7, 7, 2),
}  # fmt: skip

# Link directions as SpiNNaker defines them.
STEP = {"E": (1, 0), "NE": (1, 1), "N": (0, 1), "W": (-1, 0), "SW": (-1, -1), "S": (0, -1)}
OPPOSITE = {"E": "W", "NE": "SW", "N": "S", "W": "E", "SW": "NE", "S": "N"}

# Spin2 QPE grid: qx 1..7, qy 1..6 without four positions, 4 PEs each (version_spin2.py).
EMPTY_QPES = {(4, 3), (4, 4), (7, 3), (7, 4)}
APPLICATION_PES = {
    (qx, qy, p)
    for qx in range(1, 8)
    for qy in range(1, 7)
    for p in range(4)
    if (qx, qy) not in EMPTY_QPES
}

PRESETS = ["chip", "board", "2x2-boards", "1x3-boards", "3x1-boards", "1x4-boards", "3x3-boards"]


def hex_distance(dx: int, dy: int) -> int:
    """Hops between chips dx, dy apart on an unbounded SpiNNaker plane."""
    if dx * dy > 0:
        return max(abs(dx), abs(dy))
    return abs(dx) + abs(dy)


def torus_distance(a: tuple[int, int], b: tuple[int, int], size: int) -> int:
    """Hops on a size x size SpiNNaker torus: the nearest of b's images."""
    dx, dy = b[0] - a[0], b[1] - a[1]
    return min(hex_distance(dx + i * size, dy + j * size) for i in (-1, 0, 1) for j in (-1, 0, 1))


def test_board_has_the_48_chips_of_a_spinn5_board() -> None:
    machine = machine_from_name("board")
    assert len(machine.chips) == 48
    assert set(machine.chips) == BOARD
    assert machine.host_chip == (0, 0)
    assert (machine.width, machine.height, machine.wrap_x, machine.wrap_y) == (8, 8, False, False)


def test_board_edge_links_are_the_48_links_to_the_fpgas() -> None:
    machine = machine_from_name("board")
    absent = {
        (x, y, link)
        for x, y in machine.chips
        for link in range(6)
        if link not in machine.links((x, y))
    }
    assert absent == BOARD_EDGE_LINKS


def test_default_machine_file_is_a_board(tmp_path: Path) -> None:
    path = tmp_path / "machine.json"
    path.write_text("{}")
    assert load_machine(path) == machine_from_name("board")


@pytest.mark.parametrize("name", PRESETS)
def test_links_are_symmetric_and_point_the_named_way(name: str) -> None:
    machine = machine_from_name(name)
    for chip in machine.chips:
        for link, other in machine.links(chip).items():
            back = LINK_NAMES.index(OPPOSITE[LINK_NAMES[link]])
            assert machine.neighbour(other, back) == chip
            if not machine.wrap_x:
                step = STEP[LINK_NAMES[link]]
                assert other == (chip[0] + step[0], chip[1] + step[1])


def test_board_hop_distances_are_hexagonal_distances() -> None:
    # The board is a convex hexagon, so the shortest route never needs to leave it.
    machine = machine_from_name("board")
    for a, b in itertools.product(machine.chips, repeat=2):
        assert machine.hop_distance(a, b) == hex_distance(b[0] - a[0], b[1] - a[1])
    assert machine.hop_distance((0, 0), (7, 7)) == 7
    assert machine.hop_distance((0, 3), (7, 3)) == 7


def test_board_distances_are_symmetric_and_obey_the_triangle_inequality() -> None:
    distances = machine_from_name("board").distance_matrix()
    assert distances.shape == (48, 48)
    assert np.array_equal(distances, distances.T)
    assert np.all(np.diag(distances) == 0)
    off_diagonal = distances[~np.eye(48, dtype=bool)]
    assert np.all(off_diagonal > 0)
    # d[i, k] <= d[i, j] + d[j, k] for every i, j, k.
    through = distances[:, :, None] + distances[None, :, :]
    assert np.all(distances[:, None, :] <= through)


@pytest.mark.parametrize("name", ["1x3-boards", "3x1-boards"])
def test_three_boards_form_a_12x12_torus(name: str) -> None:
    machine = machine_from_name(name)
    assert (machine.width, machine.height, machine.wrap_x, machine.wrap_y) == (12, 12, True, True)
    assert set(machine.chips) == {(x, y) for x in range(12) for y in range(12)}
    assert set(machine.boards) == {(0, 0), (8, 4), (4, 8)}
    assert all(len(machine.links(chip)) == 6 for chip in machine.chips)
    for a, b in itertools.product(machine.chips[::7], machine.chips):
        assert machine.hop_distance(a, b) == torus_distance(a, b, 12)


def test_each_board_of_a_triad_is_a_spinn5_board() -> None:
    machine = machine_from_name("3x1-boards")
    for origin in machine.boards:
        on_board = {chip for chip in machine.chips if machine.board_of(chip) == origin}
        local = {((x - origin[0]) % 12, (y - origin[1]) % 12) for x, y in on_board}
        assert local == BOARD


def test_six_boards_form_a_12x24_torus() -> None:
    machine = machine_from_name("2x3-boards")
    assert (machine.width, machine.height, machine.wrap_x, machine.wrap_y) == (12, 24, True, True)
    assert machine.chip_count == 288 and all(len(machine.links(c)) == 6 for c in machine.chips)


def test_four_boards_have_192_connected_chips() -> None:
    machine = machine_from_name("2x2-boards")
    # Columns step by (8, 4), rows by (4, 8) (the documented layout).
    assert set(machine.boards) == {(0, 0), (8, 4), (4, 8), (12, 12)}
    assert machine.chip_count == 192
    assert len(set(machine.chips)) == 192
    assert not machine.wrap_x and not machine.wrap_y
    assert len(machine.boards) == 4
    for origin in machine.boards:
        assert sum(machine.board_of(chip) == origin for chip in machine.chips) == 48
    distances = machine.distance_matrix()
    assert distances.shape == (192, 192)
    assert distances.min() == 0 and np.count_nonzero(distances == 0) == 192
    assert np.array_equal(distances, distances.T)
    assert machine.pe_count == 192 * 148


def test_link_rates_differ_on_and_between_boards() -> None:
    machine = machine_from_name("2x2-boards")
    rates = {
        machine.board_of(chip) == machine.board_of(other): machine.link_bits_per_second(chip, link)
        for chip in machine.chips
        for link, other in machine.links(chip).items()
    }
    assert rates == {True: 6e9, False: 2e9}


def test_wrap_can_be_switched_off() -> None:
    wrapped = machine_from_name("1x3-boards")
    flat = machine_from_name("1x3-boards", {"wrap": False})
    assert not flat.wrap_x and flat.chip_count == 144
    assert flat.distance_matrix().max() > wrapped.distance_matrix().max()


def test_shortest_paths_lead_to_the_target_in_hop_distance_steps() -> None:
    machine = machine_from_name("2x2-boards")
    for a, b in itertools.product(machine.chips[::11], machine.chips[::5]):
        path = machine.shortest_path(a, b)
        assert len(path) == machine.hop_distance(a, b)
        chip = a
        for link in path:
            step = STEP[LINK_NAMES[link]]
            chip = (chip[0] + step[0], chip[1] + step[1])
            assert chip in machine.chips
        assert chip == b
        assert machine.shortest_path(a, b) == path


def test_shortest_path_takes_the_lowest_link_index_at_each_tie() -> None:
    machine = machine_from_name("board")
    east, north_east, north = (LINK_NAMES.index(name) for name in ("E", "NE", "N"))
    assert machine.shortest_path((0, 0), (2, 1)) == [east, north_east]
    assert machine.shortest_path((0, 0), (1, 2)) == [north_east, north]
    assert machine.shortest_path((3, 3), (3, 3)) == []


@pytest.mark.parametrize("name", PRESETS)
def test_description_round_trips(name: str) -> None:
    machine = machine_from_name(name)
    description = machine.describe()
    for value in description.values():
        assert isinstance(value, (int, float, str, tuple))
        if isinstance(value, tuple):
            assert all(isinstance(item, (int, float)) for item in value)
    assert Machine.from_description(description) == machine


def test_description_round_trips_through_json_with_overrides(tmp_path: Path) -> None:
    machine = machine_from_name("1x4-boards", {"sram_bytes": 256 * 1024, "usable_cores": 150})
    path = tmp_path / "machine.json"
    path.write_text(json.dumps(machine.describe()))
    assert load_machine(path) == machine
    assert load_machine(path).chip_spec.usable_core_count == 150


def test_machine_file_with_overrides(tmp_path: Path) -> None:
    path = tmp_path / "machine.json"
    path.write_text(json.dumps({"machine": "chip", "router_entries": 1024, "stack_bytes": 8192}))
    machine = load_machine(path)
    assert machine.chip_count == 1 and machine.links((0, 0)) == {}
    assert machine.chip_spec.router_entries == 1024
    assert machine.sram_data_bytes == (128 - 32 - 8) * 1024


@pytest.mark.parametrize(
    "name", ["foo", "", "boards", "2x2-board", "2x2", "0x3-boards", "2x-boards", "800x1-boards"]
)
def test_bad_machine_names_are_input_errors(name: str) -> None:
    with pytest.raises(InputError, match="chip, board or NxM-boards"):
        machine_from_name(name)


@pytest.mark.parametrize(
    "overrides",
    [
        {"sram_bytes": -1},
        {"sram_bytes": "128K"},
        {"sram_bytes": True},
        {"colour": 3},
        {"core_map": []},
        {"usable_cores": 0},
        {"usable_cores": 153},
        {"usable_cores": 4, "core_map": [[1, 2, 0]]},
        {"core_map": [[4, 3, 0]]},
        {"core_map": [[2, 2, 0], [2, 2, 0]]},
        {"code_bytes": 100 * 1024, "stack_bytes": 28 * 1024},
        {"clock_hz": 200_000_000},
        {"tops_per_watt": [2.0]},
        {"wrap": "yes"},
    ],
)
def test_bad_overrides_are_input_errors(overrides: dict[str, object]) -> None:
    with pytest.raises(InputError):
        machine_from_name("board", overrides)


def test_bad_machine_files_are_input_errors(tmp_path: Path) -> None:
    path = tmp_path / "machine.json"
    with pytest.raises(InputError, match="cannot read"):
        load_machine(path)
    path.write_text("{not json")
    with pytest.raises(InputError, match="cannot read"):
        load_machine(path)
    path.write_text("[1, 2]")
    with pytest.raises(InputError, match="JSON object"):
        load_machine(path)


def test_broken_descriptions_are_input_errors() -> None:
    description = machine_from_name("board").describe()
    for key, value in [("chips", (0, 0, 1)), ("wrap_x", 2), ("width", 4), ("host_chip", (9, 9))]:
        with pytest.raises(InputError):
            Machine.from_description(description | {key: value})
    with pytest.raises(InputError, match="lacks 'boards'"):
        Machine.from_description({k: v for k, v in description.items() if k != "boards"})
    # Two chips that no link joins: (0, 0) and (5, 5) without the chips between them.
    with pytest.raises(InputError, match="not connected"):
        Machine.from_description(description | {"chips": (0, 0, 5, 5)})


def test_data_budget_is_92_kib_by_default() -> None:
    spec = ChipSpec()
    assert spec.data_bytes == 92 * 1024
    assert machine_from_name("board").sram_data_bytes == 94208


def test_core_map_lists_148_distinct_application_pes() -> None:
    spec = ChipSpec()
    assert len(APPLICATION_PES) == 152 and spec.pe_count == 152
    assert len(spec.core_map) == 148 == spec.usable_core_count
    assert len(set(spec.core_map)) == 148
    assert set(spec.core_map) <= APPLICATION_PES
    reserved = APPLICATION_PES - set(spec.core_map)
    assert len({(qx, qy) for qx, qy, _ in reserved}) == 1  # one whole QPE
    every_pe = machine_from_name("board", {"usable_cores": 152}).chip_spec.core_map
    assert set(every_pe) == APPLICATION_PES
    assert every_pe[:148] == spec.core_map


def test_noc_hops_are_manhattan_distances_between_qpes() -> None:
    spec = ChipSpec()
    core_of = {pe: core for core, pe in enumerate(spec.core_map)}
    assert spec.noc_hops(core_of[(2, 1, 0)], core_of[(2, 1, 3)]) == 0
    assert spec.noc_hops(core_of[(2, 1, 0)], core_of[(7, 6, 2)]) == 10
    assert spec.noc_hops(core_of[(7, 6, 2)], core_of[(2, 1, 0)]) == 10
    assert spec.noc_hops(core_of[(3, 2, 1)], core_of[(5, 5, 0)]) == 5
    assert spec.qpe_of(core_of[(6, 4, 3)]) == (6, 4)


def test_peak_and_energy_figures_match_the_reported_numbers() -> None:
    spec = ChipSpec()
    assert spec.macs_per_pe == 64
    # 152 PEs x 64 MACs x 2 ops x 300 MHz = 5.84 TOPS (SPINNAKER2.md).
    assert 152 * spec.pe_peak_ops_per_second == pytest.approx(5.8368e12)
    assert spec.joules_per_op == pytest.approx(1 / 2.06e12)
    slow = machine_from_name("chip", {"clock_hz": 150_000_000}).chip_spec
    assert slow.joules_per_op == pytest.approx(1 / 2.77e12)
    assert spec.router_entries == 16384
