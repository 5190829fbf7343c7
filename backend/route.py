"""Multicast routes and router tables.

A flow is one sender's packets: a key block `(key, mask)`, a source (a PE, or the host, which
injects at the host chip) and targets (PEs, and "host" for delivery to the host from the host
chip). Method, per flow:

1. Tree. The union of the shortest paths `Machine.shortest_path(source chip, target chip)`, target
   chips taken in sorted order. Paths come from one deterministic function, so paths to nearby
   targets share their prefixes. A step into a chip already in the tree is not added, so every
   chip keeps one parent and never receives a packet twice; since every path is a shortest path,
   each chip still sits at its hop distance from the source.
2. Entries. Every chip of the tree forwards the packet to its child links, delivers it to the
   target PEs on the chip, and to the host on the host chip. Default routing (SpiNNaker lineage)
   saves entries: a packet that matches no entry leaves by the link opposite the one it came in,
   so a chip the packet only crosses in a straight line gets no entry. The source chip always gets
   one, as a packet from a local PE or the host has no arrival link.
3. Merging (optional, on by default). On one chip, two entries with the same route whose blocks
   are siblings, `(k, m)` and `(k ^ b, m)` with b the lowest set bit of m, become one entry
   `(k & ~b, m & ~b)`, repeatedly. The merged entry matches exactly the union of the two blocks,
   and the flows' blocks are checked to be pairwise disjoint, so it matches no key of any other
   flow, including flows that cross the chip by default routing: merging is exactly equivalent.
4. Compression (optional, on by default). A table still over the router's capacity is compressed
   by ordered covering (`backend.table_compress`): same-route entries become fewer, more general
   ones that never match the keys of flows crossing the chip by default routing, in an order
   where the more specific entry comes first. Every compressed table is checked to route every
   key of every flow exactly as before (`check_equivalent`).
5. Capacity. Every table is checked against `ChipSpec.router_entries`.

Tables that fit without compression hold non-overlapping entries sorted by (key, mask); a
compressed table holds overlapping entries, most specific first. Hardware routers take the first
matching entry in table order; `deliver` does the same (scanning plain tables, or through a
`TableIndex`, which finds the first match without scanning), so it also gives the hardware's
answer for tables that do overlap.
`deliver` is the one walk of router tables that the compiler's checks and the interpreter share;
it takes the tables as plain data and a neighbour function.
"""

from __future__ import annotations

import itertools
from collections import defaultdict, deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Final, Literal

from backend.hardware import Machine
from backend.program import LINK_NAMES, PECoord, RouterEntry
from backend.table_compress import check_equivalent, compress_table
from backend.topology import OPPOSITE_LINK, Chip
from ir.errors import InternalError, ResourceError

HOST: Final = "host"
Target = PECoord | Literal["host"]
Neighbour = Callable[[Chip, int], Chip | None]
PathStep = tuple[Chip, int, Chip]  # (chip, link, the chip at the other end of the link)
Route = tuple[frozenset[int], frozenset[int], bool]  # what an entry does: (links, PEs, host)


@dataclass(frozen=True)
class Flow:
    """Packets whose keys match `(key, mask)`, from `source` (None: the host) to `targets`."""

    key: int
    mask: int
    source: PECoord | None
    targets: frozenset[Target]


@dataclass(frozen=True)
class MulticastTree:
    """A flow's tree of chips: the links each chip sends on, and the link that reached it."""

    source_chip: Chip
    links_out: dict[Chip, set[int]]
    link_in: dict[Chip, int]  # link index on the parent chip, for every chip but the source

    @property
    def hops(self) -> int:
        """Link traversals of one packet: the tree's edges."""
        return len(self.link_in)

    def is_straight(self, chip: Chip) -> bool:
        """The packet only crosses `chip`, leaving opposite the link it arrived by."""
        return chip in self.link_in and self.links_out[chip] == {self.link_in[chip]}


@dataclass
class RoutingResult:
    """Router tables by chip, hops per flow, and what default routing and merging saved."""

    tables: dict[Chip, list[RouterEntry]]
    hops_by_flow: list[int]
    entries_before_merge: int
    default_routed: int  # chip crossings that need no entry
    # chips whose table was compressed, with their entries before compression
    compressed: dict[Chip, int] = field(default_factory=dict)

    @property
    def entries_by_chip(self) -> dict[Chip, int]:
        return {chip: len(entries) for chip, entries in self.tables.items()}

    @property
    def entry_count(self) -> int:
        return sum(len(entries) for entries in self.tables.values())


class PathCache:
    """Shortest paths between chips as (chip, link, next chip) steps, one search per pair."""

    def __init__(self, machine: Machine) -> None:
        self._machine = machine
        self._links = machine.link_graph.links
        self._steps: dict[tuple[Chip, Chip], tuple[PathStep, ...]] = {}

    def steps(self, source: Chip, target: Chip) -> tuple[PathStep, ...]:
        if (source, target) not in self._steps:
            self._steps[source, target] = self._walk(source, target)
        return self._steps[source, target]

    def _walk(self, source: Chip, target: Chip) -> tuple[PathStep, ...]:
        steps: list[PathStep] = []
        chip = source
        for link in self._machine.shortest_path(source, target):
            following = self._links[chip][link]
            steps.append((chip, link, following))
            chip = following
        return tuple(steps)


def route_flows(
    flows: Sequence[Flow], machine: Machine, *, merge: bool = True, compress: bool = True
) -> RoutingResult:
    """Router tables that deliver every flow to exactly its targets (see the module docstring).

    InternalError for a malformed flow or overlapping key blocks; ResourceError when a chip's
    table exceeds the router's capacity (after compression, when `compress`).
    """
    check_flows(flows, machine)
    paths = PathCache(machine)
    entries_by_chip: dict[Chip, list[RouterEntry]] = defaultdict(list)
    crossed_by: dict[Chip, list[tuple[int, int]]] = defaultdict(list)  # default-routed blocks
    hops_by_flow: list[int] = []
    crossings = 0
    for flow in flows:
        tree = multicast_tree(source_chip(flow, machine), target_chips(flow, machine), paths)
        hops_by_flow.append(tree.hops)
        crossings += len(tree.links_out)
        with_entry = set()
        for chip, entry in flow_entries(flow, tree, machine.host_chip):
            entries_by_chip[chip].append(entry)
            with_entry.add(chip)
        for chip in tree.links_out.keys() - with_entry:
            crossed_by[chip].append((flow.key, flow.mask))
    written = sum(len(entries) for entries in entries_by_chip.values())
    tables = {
        chip: sorted(merge_entries(entries) if merge else entries, key=_entry_order)
        for chip, entries in sorted(entries_by_chip.items())
    }
    compressed: dict[Chip, int] = {}
    if compress:
        capacity = machine.chip_spec.router_entries
        for chip, entries in tables.items():
            if len(entries) <= capacity:
                continue
            smaller = compress_table(entries, crossed_by.get(chip, ()))
            check_equivalent(entries, smaller, crossed_by.get(chip, ()), f"chip {chip}")
            compressed[chip] = len(entries)
            tables[chip] = smaller
    check_capacity(tables, machine)
    return RoutingResult(tables, hops_by_flow, written, crossings - written, compressed)


def source_chip(flow: Flow, machine: Machine) -> Chip:
    return machine.host_chip if flow.source is None else flow.source.chip


def target_chips(flow: Flow, machine: Machine) -> set[Chip]:
    return {machine.host_chip if target == HOST else target.chip for target in flow.targets}


def multicast_tree(source: Chip, targets: Iterable[Chip], paths: PathCache) -> MulticastTree:
    """The union of shortest paths from `source` to each target chip, each chip with one parent."""
    links_out: dict[Chip, set[int]] = {source: set()}
    link_in: dict[Chip, int] = {}
    for target in sorted(targets):
        for chip, link, following in paths.steps(source, target):
            # A chip already in the tree keeps its parent; the walk goes on from it.
            if following in links_out:
                continue
            links_out[chip].add(link)
            links_out[following] = set()
            link_in[following] = link
    return MulticastTree(source, links_out, link_in)


def flow_entries(
    flow: Flow, tree: MulticastTree, host_chip: Chip
) -> Iterator[tuple[Chip, RouterEntry]]:
    """The router entries a flow's tree needs, with their chips; straight crossings need none."""
    cores_by_chip: dict[Chip, set[int]] = defaultdict(set)
    for target in flow.targets:
        if target != HOST:
            cores_by_chip[target.chip].add(target.core)
    to_host = HOST in flow.targets
    for chip, links in tree.links_out.items():
        cores = frozenset(cores_by_chip.get(chip, ()))
        host = to_host and chip == host_chip
        if tree.is_straight(chip) and not cores and not host:
            continue
        yield chip, RouterEntry(flow.key, flow.mask, frozenset(links), cores, host)


def merge_entries(entries: Iterable[RouterEntry]) -> list[RouterEntry]:
    """One chip's entries with sibling key blocks and the same route merged (module docstring)."""
    entries_by_route: dict[Route, dict[tuple[int, int], RouterEntry]] = defaultdict(dict)
    for entry in entries:
        entries_by_route[entry.links, entry.pes, entry.host][entry.key, entry.mask] = entry
    merged: list[RouterEntry] = []
    for (links, pes, host), by_block in entries_by_route.items():
        for block in merge_sibling_blocks(by_block):
            unchanged = by_block.get(block)
            merged.append(unchanged or RouterEntry(*block, links, pes, host))
    return merged


def merge_sibling_blocks(blocks: Iterable[tuple[int, int]]) -> set[tuple[int, int]]:
    """Key blocks with sibling pairs merged until none is left.

    # (k, m) + (k ^ b, m) -> (k & ~b, m & ~b), b = lowest set bit of m
    """
    merged = set(blocks)
    changed = True
    while changed:
        changed = False
        for key, mask in sorted(merged):
            bit = mask & -mask
            sibling = (key ^ bit, mask)
            if bit == 0 or (key, mask) not in merged or sibling not in merged:
                continue
            merged -= {(key, mask), sibling}
            merged.add((key & ~bit, mask & ~bit))
            changed = True
    return merged


def check_capacity(tables: Mapping[Chip, Sequence[RouterEntry]], machine: Machine) -> None:
    """ResourceError naming the fullest router over capacity (ties: the lowest chip)."""
    capacity = machine.chip_spec.router_entries
    over = {
        chip: len(entries) for chip, entries in sorted(tables.items()) if len(entries) > capacity
    }
    if not over:
        return
    chip = max(over, key=lambda chip: over[chip])
    others = f" ({len(over)} chips over capacity)" if len(over) > 1 else ""
    raise ResourceError(
        f"router of chip {chip} needs {over[chip]} entries, capacity is {capacity}{others}"
    )


def check_flows(flows: Sequence[Flow], machine: Machine) -> None:
    """InternalError for a flow the router cannot route: bad key block, PE, or no target."""
    full_mask = (1 << machine.chip_spec.packet_key_bits) - 1
    cores_by_chip: dict[Chip, frozenset[int]] = {}

    def is_usable(pe: PECoord) -> bool:
        if not machine.has_chip(pe.chip):
            return False
        if pe.chip not in cores_by_chip:
            cores_by_chip[pe.chip] = frozenset(machine.usable_cores(pe.chip))
        return pe.core in cores_by_chip[pe.chip]

    for index, flow in enumerate(flows):
        problem = _flow_problem(flow, is_usable, full_mask)
        if problem is not None:
            raise InternalError(f"flow {index} (key 0x{flow.key:08x}): {problem}")
    _check_disjoint(flows, full_mask)


def _flow_problem(flow: Flow, is_usable: Callable[[PECoord], bool], full_mask: int) -> str | None:
    if not (0 <= flow.mask <= full_mask and 0 <= flow.key <= full_mask):
        return f"key or mask 0x{flow.mask:08x} outside the {full_mask.bit_length()}-bit key space"
    if flow.key & ~flow.mask:
        return f"key has bits outside the mask 0x{flow.mask:08x}, so no packet matches it"
    if not flow.targets:
        return "no targets"
    pes = [target for target in flow.targets if target != HOST]
    if flow.source is not None:
        pes.append(flow.source)
    for pe in pes:
        if not isinstance(pe, PECoord):
            return f"target {pe!r} is neither a PE nor '{HOST}'"
        if not is_usable(pe):
            return f"PE {pe} is not a usable PE of the machine"
    return None


def _check_disjoint(flows: Sequence[Flow], full_mask: int) -> None:
    """InternalError when two flows' key blocks share a key.

    Blocks whose masks are contiguous high bits are intervals, checked in sorted order; any
    other block is checked against every flow (rare: allocated keys have contiguous masks).
    """
    intervals: list[tuple[int, int, int]] = []
    scattered: list[int] = []
    for index, flow in enumerate(flows):
        free_bits = full_mask & ~flow.mask
        if free_bits & (free_bits + 1):
            scattered.append(index)
            continue
        intervals.append((flow.key, flow.key + free_bits + 1, index))
    intervals.sort()
    for (_, stop, first), (start, _, second) in itertools.pairwise(intervals):
        if start < stop:
            raise InternalError(_overlap_message(flows, first, second))
    for first in scattered:
        for second, other in enumerate(flows):
            if (
                second != first
                and not (flows[first].key ^ other.key) & flows[first].mask & other.mask
            ):
                raise InternalError(_overlap_message(flows, first, second))


def _overlap_message(flows: Sequence[Flow], first: int, second: int) -> str:
    a, b = flows[first], flows[second]
    return (
        f"flows {first} (0x{a.key:08x}/0x{a.mask:08x}) and {second} (0x{b.key:08x}/0x{b.mask:08x}) "
        "share keys"
    )


def _entry_order(entry: RouterEntry) -> tuple[int, int]:
    return entry.key, entry.mask


@dataclass(frozen=True)
class Delivery:
    """Where one packet ends up: PEs, the host, link traversals, and what went wrong."""

    pes: frozenset[PECoord]
    host: bool
    hops: int
    problems: tuple[str, ...]  # dropped packets, loops, links that do not exist


class TableIndex:
    """Router tables as plain data, indexed for first-match lookup.

    For each chip and each mask in its table, a dict from key to the position of the first entry
    with that (key, mask). The first entry matching a packet key k is the one at the lowest
    position among the entries found under `k & mask` for each mask, so a lookup costs one dict
    probe per distinct mask instead of a scan of the table.
    """

    def __init__(self, tables: Mapping[Chip, Sequence[RouterEntry]]) -> None:
        self.tables = tables
        self._positions_by_mask: dict[Chip, list[tuple[int, dict[int, int]]]] = {}
        for chip, entries in tables.items():
            positions: dict[int, dict[int, int]] = defaultdict(dict)
            for position, entry in enumerate(entries):
                positions[entry.mask].setdefault(entry.key, position)
            self._positions_by_mask[chip] = list(positions.items())

    def first_match(self, chip: Chip, key: int) -> RouterEntry | None:
        """The first entry of `chip`'s table with `key & mask == entry.key`, or None."""
        found = (
            positions.get(key & mask) for mask, positions in self._positions_by_mask.get(chip, ())
        )
        first = min((position for position in found if position is not None), default=None)
        return None if first is None else self.tables[chip][first]


def deliver(
    tables: TableIndex | Mapping[Chip, Sequence[RouterEntry]],
    neighbour: Neighbour,
    key: int,
    source: Chip,
    host_chip: Chip,
) -> Delivery:
    """Walk a packet with `key` from chip `source` through the router tables, as hardware does.

    On each chip the first entry with `key & mask == entry.key` routes the packet to its links,
    PEs and the host. With no match the packet leaves by the link opposite its arrival link
    (default routing); with no match on the source chip it is dropped. A chip reached a second
    time (a loop or converging routes) is reported and not routed again, so the walk ends after
    at most one visit per chip. Plain tables are scanned; pass a `TableIndex` to walk many
    packets through the same tables.
    """
    lookup = _lookup(tables)
    pes: set[PECoord] = set()
    host = False
    problems: list[str] = []
    hops = 0
    visited = {source}
    frontier: deque[tuple[Chip, int | None]] = deque([(source, None)])
    while frontier:
        chip, arrival = frontier.popleft()
        entry = lookup(chip, key)
        if entry is None:
            out_links = _default_route(chip, arrival, key, problems)
        else:
            pes.update(PECoord(chip, core) for core in entry.pes)
            host = host or (entry.host and chip == host_chip)
            if entry.host and chip != host_chip:
                problems.append(
                    f"chip {chip} routes key 0x{key:08x} to the host but is not the host chip"
                )
            out_links = sorted(entry.links)
        for link in out_links:
            following = neighbour(chip, link)
            if following is None:
                problems.append(
                    f"chip {chip} sends key 0x{key:08x} over missing link {_name(link)}"
                )
                continue
            hops += 1
            if following in visited:
                problems.append(f"key 0x{key:08x} reaches chip {following} twice")
                continue
            visited.add(following)
            frontier.append((following, OPPOSITE_LINK[link]))
    return Delivery(frozenset(pes), host, hops, tuple(problems))


def first_match(entries: Iterable[RouterEntry], key: int) -> RouterEntry | None:
    """The first entry of a table with `key & mask == entry.key`, scanning in order, or None."""
    return next((entry for entry in entries if key & entry.mask == entry.key), None)


def _lookup(
    tables: TableIndex | Mapping[Chip, Sequence[RouterEntry]],
) -> Callable[[Chip, int], RouterEntry | None]:
    """First-match lookup: through the index, or by scanning plain tables (no index to build)."""
    if isinstance(tables, TableIndex):
        return tables.first_match
    return lambda chip, key: first_match(tables.get(chip, ()), key)


def _default_route(chip: Chip, arrival: int | None, key: int, problems: list[str]) -> list[int]:
    """The link a packet that matched no entry leaves by: opposite its arrival link."""
    if arrival is None:
        problems.append(f"no entry of source chip {chip} matches key 0x{key:08x}: dropped")
        return []
    return [OPPOSITE_LINK[arrival]]


def _name(link: int) -> str:
    return LINK_NAMES[link] if 0 <= link < len(LINK_NAMES) else str(link)


def simulate_delivery(
    tables: TableIndex | Mapping[Chip, Sequence[RouterEntry]],
    machine: Machine,
    key: int,
    source: PECoord | None,
) -> Delivery:
    """`deliver` on `machine` for a packet sent by PE `source` or, when None, by the host."""
    chip = machine.host_chip if source is None else source.chip
    return deliver(tables, machine.neighbour, key, chip, machine.host_chip)
