"""The machine model: one SpiNNaker2 chip's resources and a machine of chips joined by links.

Every later stage (partition, place, route, layout, cost) reads hardware numbers from here and
nowhere else. Each number names its source and confidence, as in `SPINNAKER2.md`:
[P] read in a primary source, [S] reported by secondary notes (a parameter, not a fact).
Sources: DS = SpiNNaker2 datasheet v0.03 (2021); SM = SpiNNMachine `version_spin2.py` and
`version_48_chips.py`; A21, A24 = the SpiNNaker2 PE and system papers (arXiv:2103.08392,
arXiv:2401.04491); P26 = "The SpiNNaker2 chip" (arXiv:2607.24396); E2E = the end-to-end DNN
framework paper (arXiv:2507.13736). Every number is a default a user can override.
[A] marks an assumption of the cost model that no SpiNNaker2 source gives (ARM core cycle counts,
taken from the Cortex-M4 instruction timings); `docs/cost-model.md` lists them.

The chip: 38 quad-PEs (QPEs) on a 7x6 grid of positions qx = 1..7, qy = 1..6 with (4, 3), (4, 4),
(7, 3) and (7, 4) empty, four PEs each: 152 application PEs (SM). SM's core 0, at (0, 0, 0), is the
management core and is not part of the grid. Four application PEs are reserved for system
software [S]; which four is not published, so this model reserves the whole QPE (1, 1): keeping
the 37 other QPEs complete means any four PEs of one QPE can share their SRAM. The usable PEs are
listed in `ChipSpec.core_map` as data: core index i is the PE `core_map[i] = (qx, qy, p)`.

The machine: chips at SpiNNaker hexagonal coordinates with six links each (`backend.topology`).
Presets: "chip" (one chip), "board" (one 48-chip board, the default) and "NxM-boards" (N board
columns by M board rows, N * M boards; see `machine_from_name`). The host talks to chip (0, 0),
the Ethernet chip of the first board.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, fields
from functools import cached_property
from pathlib import Path

import numpy as np

from backend import topology
from backend.program import AttrValue
from backend.topology import Chip, QpeCore, application_core_order, default_core_map
from ir.errors import InputError, InternalError

KIB = 1024
GIB = 1024**3
# The host talks to chip (0, 0), the Ethernet chip of the first board (SM: the boot chip) [P].
HOST_CHIP: Chip = (0, 0)
# The largest SpiNNaker2 machine has 720 boards (vendor) [P]; larger names are refused.
MAX_BOARDS = 720
_BOARDS_NAME = re.compile(r"(\d+)x(\d+)-boards")
_UNKNOWN_MACHINE = "use chip, board or NxM-boards such as 2x2-boards"


# QPE grid (SM, QUAD_MAP in version_spin2.py) [P].
_EMPTY_QPE_POSITIONS: tuple[Chip, ...] = ((4, 3), (4, 4), (7, 3), (7, 4))
_DEFAULT_CORE_MAP = default_core_map(7, 6, _EMPTY_QPE_POSITIONS, 4)
# Fields holding tuples of tuples, flattened in a description: field name -> inner length.
_NESTED_FIELDS = {"empty_qpe_positions": 2, "core_map": 3}


@dataclass(frozen=True)
class ChipSpec:
    """One SpiNNaker2 chip's resources, speeds and energy figures (defaults with their sources)."""

    # QPE grid: positions qx = 1..width, qy = 1..height, some empty; PEs per QPE (SM) [P].
    qpe_grid_width: int = 7
    qpe_grid_height: int = 6
    empty_qpe_positions: tuple[Chip, ...] = _EMPTY_QPE_POSITIONS
    pes_per_qpe: int = 4
    # Usable application PEs, (qx, qy, p) per core index; 148 of 152 (module docstring) [S].
    core_map: tuple[QpeCore, ...] = _DEFAULT_CORE_MAP
    # SRAM per PE, code and data (DS) [P]; software split: code and stack at the top [S].
    sram_bytes: int = 128 * KIB
    code_bytes: int = 32 * KIB
    stack_bytes: int = 4 * KIB
    # DRAM per chip: the vendor fits 2 GB of LPDDR4 [P]; SM models 1 GiB [P], and so do we, so a
    # model that fits here fits every board. Sustained block transfer through DMA (DS) [P].
    dram_bytes: int = 1 * GIB
    dram_bytes_per_second: float = 6.4e9
    dma_alignment_bytes: int = 16  # [S]
    # Multicast router entries per chip (DS, SM) [P]; packet key and payload sizes [S].
    router_entries: int = 16384
    packet_key_bits: int = 32
    packet_payload_bits: tuple[int, ...] = (0, 32, 64, 128)
    # Performance levels (SM) [P] with their core voltages [S]; the level the model runs at.
    clock_levels_hz: tuple[int, ...] = (150_000_000, 300_000_000)
    level_voltages: tuple[float, ...] = (0.5, 0.8)
    clock_hz: int = 300_000_000
    # MAC array per PE: 16 x 4 int8 MACs, 24-bit accumulators (A21) [S].
    mac_rows: int = 16
    mac_columns: int = 4
    mac_accumulator_bits: int = 24
    # On-chip network between QPEs: XY routing, cycles per hop, flit width (A21) [S].
    noc_cycles_per_hop: int = 5
    noc_flit_bits: int = 192
    # Chip-to-chip link rates on a board and between boards (A24) [S].
    board_link_bits_per_second: float = 6e9
    inter_board_link_bits_per_second: float = 2e9
    # Energy (A24, P26) [S]: chip power range, idle baseline (under 250 mW), int8 efficiency with
    # operands in SRAM at each performance level.
    chip_power_min_watts: float = 0.24
    chip_power_max_watts: float = 2.2
    idle_power_watts: float = 0.25
    tops_per_watt: tuple[float, ...] = (2.77, 2.06)
    # MAC-array throughput measured at the top level: 4.56 of the 5.84 TOPS peak (A24) [S]. With
    # tops_per_watt it gives the chip's power at full MAC load (4.56 / 2.06 = 2.2 W, the top of
    # the chip power range).
    measured_tops: float = 4.56
    # MAC-array utilisation seen on real chips (P26, E2E) [S]: 16-19 % for fully connected
    # layers, 22-50 % for convolutions; the defaults are the middle of each range; 78 % for a
    # transformer's matmul of two activations.
    mac_utilisation_dense: float = 0.175
    mac_utilisation_conv: float = 0.36
    mac_utilisation_matmul: float = 0.78
    # ARM Cortex-M4F work, per the Cortex-M4 instruction timings [A]: an fp32 multiply-accumulate
    # is VLDR (1, pipelined) + VFMA.F32 (3); an element-wise step is load, operate, store; a
    # multicast packet costs its send or its receive interrupt.
    arm_cycles_per_fp32_mac: float = 4.0
    arm_cycles_per_element: float = 4.0
    arm_cycles_per_packet: float = 20.0
    # Dynamic energy of one ARM-core cycle at the top performance level [A]; lower levels scale
    # it by voltage squared. The chip's power range bounds it from above: (2.2 - 0.25) W over
    # 152 PEs at 300 MHz is 43 pJ, but that figure includes the MAC arrays at full load.
    arm_joules_per_cycle: float = 10e-12
    # exp/log accelerator: 7-22 cycles per call (A21) [S]; the model takes the slow end.
    exp_cycles: float = 22.0
    # Spiking networks: synaptic events per second per chip at a 1 ms tick (A24) [S].
    synaptic_events_per_second: float = 1.8e9

    def __post_init__(self) -> None:
        self._check_sizes()
        self._check_core_map()
        self._check_levels()
        self._check_fractions()

    def _check_sizes(self) -> None:
        for field in fields(self):
            value = getattr(self, field.name)
            if isinstance(value, (int, float)) and value < 0:
                raise InputError(f"machine field '{field.name}' must not be negative, got {value}")
        positive = ("qpe_grid_width", "qpe_grid_height", "pes_per_qpe", "sram_bytes", "clock_hz")
        rates = ("measured_tops", "synaptic_events_per_second", "dram_bytes_per_second")
        for name in (*positive, *rates, "router_entries", "mac_rows", "mac_columns"):
            if getattr(self, name) == 0:
                raise InputError(f"machine field '{name}' must be positive, got 0")
        if self.data_bytes <= 0:
            raise InputError(
                f"code_bytes {self.code_bytes} + stack_bytes {self.stack_bytes} leave no data "
                f"space in sram_bytes {self.sram_bytes}"
            )

    def _check_core_map(self) -> None:
        if not self.core_map:
            raise InputError("machine has no usable PE: core_map is empty (use 1 or more cores)")
        if len(set(self.core_map)) != len(self.core_map):
            raise InputError("machine core_map lists a PE twice")
        for qx, qy, p in self.core_map:
            on_grid = 1 <= qx <= self.qpe_grid_width and 1 <= qy <= self.qpe_grid_height
            if not on_grid or (qx, qy) in self.empty_qpe_positions or not 0 <= p < self.pes_per_qpe:
                raise InputError(
                    f"machine core_map entry ({qx}, {qy}, {p}) is not a PE of the chip"
                )

    def _check_fractions(self) -> None:
        if self.dma_alignment_bytes == 0:
            raise InputError("machine field 'dma_alignment_bytes' must be positive, got 0")
        for name in ("mac_utilisation_dense", "mac_utilisation_conv", "mac_utilisation_matmul"):
            value = getattr(self, name)
            if not 0.0 < value <= 1.0:
                raise InputError(f"machine field '{name}' must be in (0, 1], got {value}")

    def _check_levels(self) -> None:
        levels = len(self.clock_levels_hz)
        if len(self.level_voltages) != levels or len(self.tops_per_watt) != levels:
            raise InputError(
                "clock_levels_hz, level_voltages and tops_per_watt need one value per level"
            )
        if self.clock_hz not in self.clock_levels_hz:
            raise InputError(
                f"clock_hz {self.clock_hz} is not a performance level: use one of "
                f"{', '.join(str(level) for level in self.clock_levels_hz)}"
            )

    @property
    def data_bytes(self) -> int:
        """SRAM per PE left for data: sram_bytes - code_bytes - stack_bytes (92 KiB by default)."""
        return self.sram_bytes - self.code_bytes - self.stack_bytes

    @property
    def qpe_positions(self) -> tuple[Chip, ...]:
        """The occupied QPE positions (qx, qy), sorted."""
        grid = (
            (qx, qy)
            for qx in range(1, self.qpe_grid_width + 1)
            for qy in range(1, self.qpe_grid_height + 1)
        )
        return tuple(position for position in grid if position not in self.empty_qpe_positions)

    @property
    def pe_count(self) -> int:
        """Application PEs on the chip, usable or reserved (152 by default)."""
        return len(self.qpe_positions) * self.pes_per_qpe

    @property
    def usable_core_count(self) -> int:
        """PEs the compiler may place slices on (148 by default)."""
        return len(self.core_map)

    @property
    def macs_per_pe(self) -> int:
        """int8 multiply-accumulates per PE per cycle (64 by default)."""
        return self.mac_rows * self.mac_columns

    @property
    def pe_peak_ops_per_second(self) -> float:
        """One PE's int8 peak at the clock: 2 operations per MAC per cycle."""
        return 2.0 * self.macs_per_pe * self.clock_hz

    @property
    def joules_per_op(self) -> float:
        """int8 energy per operation at the clock's performance level, from tops_per_watt."""
        level = self.clock_levels_hz.index(self.clock_hz)
        return 1.0 / (self.tops_per_watt[level] * 1e12)

    def qpe_of(self, core: int) -> Chip:
        """The QPE position (qx, qy) of a core index."""
        if not 0 <= core < len(self.core_map):
            raise InternalError(f"core {core} outside the core map (0..{len(self.core_map) - 1})")
        qx, qy, _ = self.core_map[core]
        return qx, qy

    def noc_hops(self, core_a: int, core_b: int) -> int:
        """On-chip network hops between two cores: Manhattan distance of their QPEs (XY routing).

        The mesh is taken as complete; the routes around the empty QPE positions are not modelled.
        """
        (ax, ay), (bx, by) = self.qpe_of(core_a), self.qpe_of(core_b)
        return abs(ax - bx) + abs(ay - by)

    def describe(self) -> dict[str, AttrValue]:
        """Every field as an int, float, str or flat tuple (tuples of tuples are flattened)."""
        description: dict[str, AttrValue] = {}
        for field in fields(self):
            value = getattr(self, field.name)
            if field.name in _NESTED_FIELDS:
                value = tuple(number for item in value for number in item)
            description[field.name] = value
        return description

    @classmethod
    def from_values(cls, values: Mapping[str, object]) -> ChipSpec:
        """A spec from field values as a description or JSON gives them (lists or flat tuples)."""
        defaults = cls()
        unknown = sorted(set(values) - {field.name for field in fields(cls)})
        if unknown:
            raise InputError(f"unknown machine field '{unknown[0]}': use {_field_names()}")
        coerced = {
            name: _coerce(name, value, getattr(defaults, name)) for name, value in values.items()
        }
        return cls(**coerced)  # type: ignore[arg-type]


def _field_names() -> str:
    return ", ".join(field.name for field in fields(ChipSpec))


def _coerce(name: str, value: object, default: object) -> object:
    """`value` converted to the type of the field's default, or an InputError naming the field."""
    if isinstance(default, int):
        return _as_int(name, value)
    if isinstance(default, float):
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise InputError(f"machine field '{name}' must be a number, got {value!r}")
        return float(value)
    if name in _NESTED_FIELDS:
        return _as_tuples(name, value, _NESTED_FIELDS[name])
    if not isinstance(value, (list, tuple)):
        raise InputError(f"machine field '{name}' must be a list, got {value!r}")
    element_default = default[0] if isinstance(default, tuple) and default else 0
    return tuple(_coerce(name, item, element_default) for item in value)


def _as_tuples(name: str, value: object, size: int) -> tuple[tuple[int, ...], ...]:
    """Integer tuples of `size` from a flat list (as in a description) or a list of lists (JSON)."""
    if not isinstance(value, (list, tuple)):
        raise InputError(f"machine field '{name}' must be a list, got {value!r}")
    if all(isinstance(item, (list, tuple)) for item in value):
        groups = [tuple(item) for item in value if isinstance(item, (list, tuple))]
    else:
        groups = [tuple(value[i : i + size]) for i in range(0, len(value), size)]
    if any(len(group) != size for group in groups):
        raise InputError(f"machine field '{name}' must hold groups of {size} integers")
    return tuple(tuple(_as_int(name, number) for number in group) for group in groups)


def _as_chips(name: str, value: object) -> tuple[Chip, ...]:
    return tuple((x, y) for x, y in _as_tuples(name, value, 2))


def _as_int(name: str, value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise InputError(f"machine field '{name}' must be an integer, got {value!r}")
    return value


@dataclass(frozen=True)
class Machine:
    """Chips at hexagonal coordinates joined by links, each chip a copy of `chip_spec`.

    `boards` holds the origin (Ethernet chip) of each board; `width` and `height` bound the
    coordinates; `wrap_x` and `wrap_y` say whether links wrap around those bounds.
    """

    name: str
    chip_spec: ChipSpec
    chips: tuple[Chip, ...]
    boards: tuple[Chip, ...]
    width: int
    height: int
    wrap_x: bool = False
    wrap_y: bool = False
    host_chip: Chip = HOST_CHIP

    def __post_init__(self) -> None:
        if not self.name:
            raise InputError("machine name is empty")
        if self.width <= 0 or self.height <= 0:
            raise InputError(f"machine size {self.width}x{self.height} must be positive")
        if not self.chips or self.chips != tuple(sorted(set(self.chips))):
            raise InputError("machine chips must be a non-empty, sorted list of distinct chips")
        for x, y in self.chips:
            if not (0 <= x < self.width and 0 <= y < self.height):
                raise InputError(f"machine chip ({x}, {y}) lies outside {self.width}x{self.height}")
        if self.host_chip not in self.chips:
            raise InputError(f"machine host chip {self.host_chip} is not one of its chips")
        unreachable = [
            chip for chip, hops in zip(self.chips, self._from_host, strict=True) if hops < 0
        ]
        if unreachable:
            raise InputError(f"machine is not connected: chip {unreachable[0]} is unreachable")
        _ = self._board_by_chip  # checks that every chip is on exactly one board

    @cached_property
    def link_graph(self) -> topology.LinkGraph:
        """The link graph, built once (see `backend.topology.LinkGraph`)."""
        size, wrap = (self.width, self.height), (self.wrap_x, self.wrap_y)
        return topology.LinkGraph(topology.link_table(self.chips, size, wrap))

    @cached_property
    def _from_host(self) -> list[int]:
        return self.link_graph.distances_from(self.host_chip)

    @cached_property
    def _board_by_chip(self) -> dict[Chip, Chip]:
        size, wrap = (self.width, self.height), (self.wrap_x, self.wrap_y)
        return topology.board_table(self.boards, self.chips, size, wrap)

    @property
    def chip_count(self) -> int:
        return len(self.chips)

    @property
    def pe_count(self) -> int:
        """Usable PEs in the whole machine."""
        return self.chip_count * self.chip_spec.usable_core_count

    @property
    def sram_data_bytes(self) -> int:
        """SRAM for data in one PE (`ChipSpec.data_bytes`)."""
        return self.chip_spec.data_bytes

    def has_chip(self, chip: Chip) -> bool:
        return chip in self.link_graph.index

    def usable_cores(self, chip: Chip) -> tuple[int, ...]:
        """Core indices of `chip` that slices may use (every chip has the same core map)."""
        self.link_graph.chip_index(chip)
        return tuple(range(self.chip_spec.usable_core_count))

    def links(self, chip: Chip) -> dict[int, Chip]:
        """Existing neighbours of `chip` by link index (see `backend.program.LINK_NAMES`)."""
        self.link_graph.chip_index(chip)
        return dict(self.link_graph.links[chip])

    def neighbour(self, chip: Chip, link: int) -> Chip | None:
        """The chip at the other end of `link`, or None when that link does not exist."""
        return self.links(chip).get(link)

    def board_of(self, chip: Chip) -> Chip:
        """The origin (Ethernet chip) of the board `chip` sits on."""
        self.link_graph.chip_index(chip)
        return self._board_by_chip[chip]

    def link_bits_per_second(self, chip: Chip, link: int) -> float:
        """Rate of an existing link: on-board or between boards."""
        other = self.neighbour(chip, link)
        if other is None:
            raise InternalError(f"chip {chip} has no link {link}")
        if self.board_of(other) == self.board_of(chip):
            return self.chip_spec.board_link_bits_per_second
        return self.chip_spec.inter_board_link_bits_per_second

    def hop_distance(self, chip_a: Chip, chip_b: Chip) -> int:
        """Fewest chip-to-chip links between two chips."""
        return self.link_graph.hop_distance(chip_a, chip_b)

    def shortest_path(self, chip_a: Chip, chip_b: Chip) -> list[int]:
        """Link indices of a shortest route; ties go to the lowest link index at each chip."""
        return self.link_graph.shortest_path(chip_a, chip_b)

    def distance_matrix(self) -> np.ndarray:
        """All-pairs hop distances, rows and columns in `chips` order (read-only)."""
        return self.link_graph.distance_matrix()

    def describe(self) -> dict[str, AttrValue]:
        """A flat description (ints, floats, strs, flat tuples) that `from_description` inverts."""
        description: dict[str, AttrValue] = {
            "name": self.name,
            "width": self.width,
            "height": self.height,
            "wrap_x": int(self.wrap_x),
            "wrap_y": int(self.wrap_y),
            "host_chip": self.host_chip,
            "chips": tuple(number for chip in self.chips for number in chip),
            "boards": tuple(number for board in self.boards for number in board),
        }
        return description | self.chip_spec.describe()

    @classmethod
    def from_description(cls, description: Mapping[str, object]) -> Machine:
        """The machine `describe` described; InputError naming the first bad or missing key."""
        missing = sorted(set(_MACHINE_KEYS) - set(description))
        if missing:
            raise InputError(f"machine description lacks '{missing[0]}'")
        name = description["name"]
        if not isinstance(name, str):
            raise InputError(f"machine name must be a string, got {name!r}")
        host_chips = _as_chips("host_chip", description["host_chip"])
        if len(host_chips) != 1:
            raise InputError(f"machine host_chip must be one chip, got {host_chips}")
        wrap_x, wrap_y = (_as_int(key, description[key]) for key in ("wrap_x", "wrap_y"))
        if wrap_x not in (0, 1) or wrap_y not in (0, 1):
            raise InputError(f"machine wrap_x and wrap_y must be 0 or 1, got {wrap_x}, {wrap_y}")
        spec_values = {key: value for key, value in description.items() if key not in _MACHINE_KEYS}
        return cls(
            name=name,
            chip_spec=ChipSpec.from_values(spec_values),
            chips=_as_chips("chips", description["chips"]),
            boards=_as_chips("boards", description["boards"]),
            width=_as_int("width", description["width"]),
            height=_as_int("height", description["height"]),
            wrap_x=bool(wrap_x),
            wrap_y=bool(wrap_y),
            host_chip=host_chips[0],
        )


_MACHINE_KEYS = ("name", "width", "height", "wrap_x", "wrap_y", "host_chip", "chips", "boards")


def machine_from_name(name: str, overrides: Mapping[str, object] | None = None) -> Machine:
    """A preset machine, optionally with chip-spec fields overridden.

    Names: "chip" is one chip; "board" is one 48-chip SpiNN-5 board; "NxM-boards" is N board
    columns by M board rows (N * M boards, at most 720): board (i, j) has its Ethernet chip at
    i * (8, 4) + j * (4, 8), a parallelogram of adjacent boards (`backend.topology`). A machine
    wraps toroidally when its boards tile a torus of whole triads (1x3, 3x1, 2x3, 3x2 boards do;
    3x3 boards do not); otherwise links that would leave it do not exist.

    Overrides: any `ChipSpec` field, plus "usable_cores" (the first N PEs of the chip in
    `application_core_order`, instead of a whole core_map) and "wrap" (false stops wrapping).
    """
    origins = _board_origins(name)
    options = dict(overrides or {})
    allow_wrap = options.pop("wrap", True)
    if not isinstance(allow_wrap, bool):
        raise InputError(f"machine option 'wrap' must be true or false, got {allow_wrap!r}")
    chip_spec = _chip_spec_with(options)
    if origins is None:
        return Machine(name, chip_spec, (HOST_CHIP,), (HOST_CHIP,), width=1, height=1)
    layout = topology.board_layout(origins, allow_wrap)
    wrap = layout.wrap
    return Machine(name, chip_spec, layout.chips, layout.boards, *layout.size, wrap, wrap)


def _board_origins(name: str) -> tuple[Chip, ...] | None:
    """The board origins a machine name asks for; None for the single chip."""
    if name == "chip":
        return None
    if name == "board":
        return (HOST_CHIP,)
    match = _BOARDS_NAME.fullmatch(name)
    if match is None:
        raise InputError(f"unknown machine '{name}': {_UNKNOWN_MACHINE}")
    columns, rows = int(match.group(1)), int(match.group(2))
    if not 1 <= columns * rows <= MAX_BOARDS:
        raise InputError(f"machine '{name}' needs 1 to {MAX_BOARDS} boards: {_UNKNOWN_MACHINE}")
    return topology.board_grid_origins(columns, rows)


def _chip_spec_with(options: dict[str, object]) -> ChipSpec:
    """A ChipSpec from overrides, turning "usable_cores" or a changed grid into a core map."""
    usable_cores = options.pop("usable_cores", None)
    if usable_cores is not None and "core_map" in options:
        raise InputError("machine options 'usable_cores' and 'core_map' exclude each other")
    defaults = ChipSpec()
    width = _as_int("qpe_grid_width", options.get("qpe_grid_width", defaults.qpe_grid_width))
    height = _as_int("qpe_grid_height", options.get("qpe_grid_height", defaults.qpe_grid_height))
    empty = _as_chips(
        "empty_qpe_positions", options.get("empty_qpe_positions", defaults.empty_qpe_positions)
    )
    pes_per_qpe = _as_int("pes_per_qpe", options.get("pes_per_qpe", defaults.pes_per_qpe))
    if usable_cores is None and "core_map" not in options:
        options["core_map"] = default_core_map(width, height, empty, pes_per_qpe)
    if usable_cores is not None:
        order = application_core_order(width, height, empty, pes_per_qpe)
        count = _as_int("usable_cores", usable_cores)
        if not 1 <= count <= len(order):
            raise InputError(
                f"machine option 'usable_cores' must be 1 to {len(order)}, got {count}"
            )
        options["core_map"] = order[:count]
    return ChipSpec.from_values(options)


def load_machine(path: str | Path) -> Machine:
    """A machine from a JSON file.

    The file holds either a full description (as `Machine.describe` writes it, with "chips") or
    {"machine": NAME, ...overrides} as `machine_from_name` takes them, e.g.
    {"machine": "2x2-boards", "sram_bytes": 131072, "usable_cores": 144}.
    """
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise InputError(f"cannot read machine file '{path}': {error}") from error
    if not isinstance(data, dict):
        raise InputError(f"machine file '{path}' must hold a JSON object")
    if "chips" in data:
        return Machine.from_description(data)
    name = data.pop("machine", "board")
    if not isinstance(name, str):
        raise InputError(f"machine file '{path}': 'machine' must be a name such as board")
    return machine_from_name(name, data)
