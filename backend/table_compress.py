"""Router table compression by ordered covering, and a check that it changes no route.

A chip's table after routing (`backend.route`) holds disjoint entries. When it has more entries
than the router holds, entries with the same route are replaced by fewer, more general ones
(Mundy, Heathcote and Garside, "On-chip order-exploiting routing table minimization for a
multicast supercomputer network", 2016: ordered covering). A cover of entries with keys k_i and
masks m_i keeps the bits on which all of them are specified and agree:

    mask = AND m_i & ~OR (k_i ^ k_0)        key = k_0 & mask

It also matches keys no entry matched. The table is kept in order of generality (entries with
fewer mask bits last), so a more specific entry is tried first. Each entry remembers its origins:
the original blocks it stands for. Invariant, checked before every merge: no entry matches a key
of a flow that crosses the chip by default routing (it must match nothing there), and for two
intersecting entries with different routes, one is strictly more specific and matches no origin
of the other. Then every original key's first match has its original route: an entry earlier in
the table with another route would be more specific and match an origin of the entry that owns
the key.

Merges are tried top down per route (most entries first): the cover of all the route's entries;
if that breaks the invariant, the entries are split by the highest key bit on which they differ
and each half is tried, down to single entries.

`check_equivalent` proves the result independently: for every original block it walks the
compressed table in order, splitting the block's keys into cubes (key/mask pairs) as entries take
their share, and requires each share to get the block's route and every key to be matched; keys of
default-routed flows must match no entry.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence

import numpy as np

from backend.program import RouterEntry
from ir.errors import InternalError

KEY_BITS = 32
FULL_MASK = (1 << KEY_BITS) - 1
Block = tuple[int, int]  # (key, mask)
Route = tuple[frozenset[int], frozenset[int], bool]
_MAX_CUBES = 1 << 16  # cubes one block may split into while checking


def route_of(entry: RouterEntry) -> Route:
    return entry.links, entry.pes, entry.host


def generality(mask: int) -> int:
    """Key bits an entry ignores: the zero bits of its mask."""
    return KEY_BITS - bin(mask & FULL_MASK).count("1")


def cover(blocks: Iterable[Block]) -> Block:
    """The most specific key/mask matching every block (module docstring)."""
    blocks = list(blocks)
    first_key = blocks[0][0]
    mask, differ = FULL_MASK, 0
    for key, block_mask in blocks:
        mask &= block_mask
        differ |= key ^ first_key
    mask &= ~differ & FULL_MASK
    return first_key & mask, mask


class _Table:
    """Entries in arrays for vectorised intersection tests, with their origins.

    A merge kills at least two entries and adds one, so `2 n` slots hold every entry ever made.
    """

    def __init__(self, size: int) -> None:
        self.keys = np.zeros(size, dtype=np.uint64)
        self.masks = np.zeros(size, dtype=np.uint64)
        self.levels = np.zeros(size, dtype=np.int64)
        self.routes = np.full(size, -1, dtype=np.int64)
        self.alive = np.zeros(size, dtype=bool)
        self.origins: list[list[Block]] = []

    def add(self, block: Block, route: int, origins: list[Block]) -> int:
        index = len(self.origins)
        self.keys[index], self.masks[index] = block
        self.levels[index] = generality(block[1])
        self.routes[index] = route
        self.alive[index] = True
        self.origins.append(origins)
        return index

    def block(self, index: int) -> Block:
        return int(self.keys[index]), int(self.masks[index])


def compress_table(
    entries: Sequence[RouterEntry], forbidden: Sequence[Block] = ()
) -> list[RouterEntry]:
    """An equivalent table with same-route entries covered where the invariant allows.

    `entries` must be disjoint; `forbidden` are the key blocks of flows that cross the chip by
    default routing. The result is ordered most specific first (ties: by key, then mask).
    """
    routes: dict[Route, int] = {}
    table = _Table(2 * len(entries) + 1)
    members: dict[int, list[int]] = defaultdict(list)
    for entry in sorted(entries, key=lambda e: (e.key, e.mask)):
        number = routes.setdefault(route_of(entry), len(routes))
        index = table.add((entry.key, entry.mask), number, [(entry.key, entry.mask)])
        members[number].append(index)
    forbidden_keys = np.array([key for key, _ in forbidden], dtype=np.uint64)
    forbidden_masks = np.array([mask for _, mask in forbidden], dtype=np.uint64)
    for number in sorted(members, key=lambda n: (-len(members[n]), n)):
        _cover_route(table, number, members[number], (forbidden_keys, forbidden_masks))
    by_number = {number: route for route, number in routes.items()}
    result = []
    for i in np.flatnonzero(table.alive).tolist():
        links, pes, host = by_number[int(table.routes[i])]
        result.append(RouterEntry(*table.block(i), links, pes, host))
    return sorted(result, key=lambda e: (generality(e.mask), e.key, e.mask))


def _cover_route(
    table: _Table, route: int, indices: list[int], forbidden: tuple[np.ndarray, np.ndarray]
) -> None:
    """Replace `indices` (entries of one route) by covers, largest sets first."""
    pending = [sorted(indices, key=lambda i: int(table.keys[i]))]
    while pending:
        group = pending.pop()
        if len(group) < 2:
            continue
        block = cover(table.block(i) for i in group)
        origins = [origin for i in group for origin in table.origins[i]]
        if _may_add(table, block, route, origins, set(group), forbidden):
            for i in group:
                table.alive[i] = False
            table.add(block, route, origins)
            continue
        pending += _split_by_highest_bit(table, group)


def _split_by_highest_bit(table: _Table, group: list[int]) -> list[list[int]]:
    """The group split by the highest key bit on which its entries differ (a trie step)."""
    keys = [int(table.keys[i]) for i in group]
    differ = 0
    for key in keys:
        differ |= key ^ keys[0]
    if differ == 0:  # same key, different masks: split off the first entry
        return [group[:1], group[1:]]
    bit = 1 << (differ.bit_length() - 1)
    low = [i for i, key in zip(group, keys) if not key & bit]
    high = [i for i, key in zip(group, keys) if key & bit]
    return [high, low]


def _intersects(keys: np.ndarray, masks: np.ndarray, key: int, mask: int) -> np.ndarray:
    return ((keys ^ np.uint64(key)) & masks & np.uint64(mask)) == 0


def _may_add(
    table: _Table,
    block: Block,
    route: int,
    origins: list[Block],
    replaced: set[int],
    forbidden: tuple[np.ndarray, np.ndarray],
) -> bool:
    """Whether `block` (standing for `origins`) keeps the invariant in place of `replaced`."""
    key, mask = block
    if len(forbidden[0]) and _intersects(*forbidden, key, mask).any():
        return False
    others = table.alive & (table.routes != route)
    others[list(replaced)] = False
    clashing = np.flatnonzero(others & _intersects(table.keys, table.masks, key, mask))
    level = generality(mask)
    if (table.levels[clashing] == level).any():
        return False
    origin_keys = np.array([k for k, _ in origins], dtype=np.uint64)
    origin_masks = np.array([m for _, m in origins], dtype=np.uint64)
    for i in clashing.tolist():
        if table.levels[i] < level:  # the other entry comes first: it must miss our origins
            if _intersects(origin_keys, origin_masks, *table.block(i)).any():
                return False
        elif any(_blocks_meet(block, origin) for origin in table.origins[i]):
            return False
    return True


def _blocks_meet(first: Block, second: Block) -> bool:
    return not (first[0] ^ second[0]) & first[1] & second[1]


# -- the check ---------------------------------------------------------------------------------


def check_equivalent(
    original: Sequence[RouterEntry],
    compressed: Sequence[RouterEntry],
    forbidden: Sequence[Block] = (),
    where: str = "a chip",
) -> None:
    """InternalError unless `compressed` routes every key exactly as `original` (docstring).

    `original` must be disjoint (each key has at most one entry); keys in `forbidden` must match
    no entry of `compressed`.
    """
    keys = np.array([entry.key for entry in compressed], dtype=np.uint64)
    masks = np.array([entry.mask for entry in compressed], dtype=np.uint64)
    for key, mask in forbidden:
        hit = np.flatnonzero(_intersects(keys, masks, key, mask))
        if len(hit):
            raise InternalError(
                f"compressed router table of {where}: entry {int(hit[0])} matches keys of "
                f"0x{key:08x}/0x{mask:08x}, which must pass by default routing"
            )
    for entry in original:
        _check_block(
            entry,
            compressed,
            np.flatnonzero(_intersects(keys, masks, entry.key, entry.mask)),
            where,
        )


def _check_block(
    entry: RouterEntry, compressed: Sequence[RouterEntry], candidates: np.ndarray, where: str
) -> None:
    """Every key of `entry`'s block first-matches an entry with `entry`'s route."""
    remaining: list[Block] = [(entry.key, entry.mask)]
    for index in candidates.tolist():
        other = compressed[index]
        next_remaining: list[Block] = []
        for cube in remaining:
            if not _blocks_meet(cube, (other.key, other.mask)):
                next_remaining.append(cube)
                continue
            if route_of(other) != route_of(entry):
                raise InternalError(
                    f"compressed router table of {where}: keys of 0x{entry.key:08x}/"
                    f"0x{entry.mask:08x} first match entry {index} with another route"
                )
            next_remaining += _subtract(cube, (other.key, other.mask))
        remaining = next_remaining
        if len(remaining) > _MAX_CUBES:
            raise InternalError(f"compressed router table of {where} is too fragmented to check")
        if not remaining:
            return
    if remaining:
        raise InternalError(
            f"compressed router table of {where}: keys of 0x{entry.key:08x}/0x{entry.mask:08x} "
            "match no entry"
        )


def _subtract(cube: Block, other: Block) -> list[Block]:
    """The keys of `cube` not in `other` (which meets it), as disjoint cubes."""
    key, mask = cube
    free = other[1] & ~mask & FULL_MASK  # bits `other` fixes that the cube leaves free
    pieces: list[Block] = []
    while free:
        bit = free & -free
        free ^= bit
        # Keys agreeing with `other` on the bits fixed so far and differing on this one.
        pieces.append(((key & ~bit) | (~other[0] & bit), mask | bit))
        key = (key & ~bit) | (other[0] & bit)
        mask |= bit
    return pieces
