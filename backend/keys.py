"""Multicast key allocation: one aligned block of keys per sender.

A sender (a slice's output port, or a box of a graph input that the host injects) sends packets
with keys `key + packet_index`. Its block holds the next power of two at or above its packet count
(at least 1) and starts at a multiple of its size, so one router entry `(key, mask)` with
`mask = 0xFFFFFFFF & ~(size - 1)` matches exactly the block:

    key = | block bits (matched by the mask) | packet index (log2(size) bits, masked out) |

Zones: consecutive senders (in the order given) with the same block size form a zone, which in
the compiler's order (graph inputs, then slices layer by layer) is the slices of one layer. A zone
of n blocks of size b takes an aligned range of `next_pow2(n) * b` keys, its blocks side by side
from the start. Zones are packed from key 0 upwards, largest first (ties by their first sender);
with sizes falling powers of two, each zone starts where the previous one ended and is still
aligned. So the blocks of one layer are contiguous and their zone is one aligned block: slices
that take the same route merge into few router entries (sibling merging and ordered covering,
`backend.route`), and a zone's unused tail is free for a covering entry to match. When the zones'
padding would overflow the key space, the blocks are packed without zones (each block aligned,
largest first, no holes). The result is returned in the senders' order and is deterministic.
"""

from __future__ import annotations

from collections.abc import Sequence

from ir.errors import InternalError, ResourceError

KEY_BITS = 32


def block_size(packet_count: int) -> int:
    """Keys reserved for a sender: the next power of two >= packet_count, at least 1."""
    if packet_count < 0:
        raise InternalError(f"a sender cannot send {packet_count} packets")
    return 1 << (max(packet_count, 1) - 1).bit_length()


def allocate_keys(packet_counts: Sequence[int], key_bits: int = KEY_BITS) -> list[tuple[int, int]]:
    """A (key, mask) per sender, in the order given; ResourceError when the keys run out."""
    sizes = [block_size(count) for count in packet_counts]
    total = sum(sizes)
    if total > 1 << key_bits:
        raise ResourceError(
            f"multicast keys: {len(sizes)} senders need {total} keys, a {key_bits}-bit key "
            f"holds {1 << key_bits}; send fewer, larger packets"
        )
    zones = _zones(sizes)
    if sum(zone_size for _, _, zone_size in zones) > 1 << key_bits:
        zones = [(index, index + 1, size) for index, size in enumerate(sizes)]
    full_mask = (1 << key_bits) - 1
    blocks: list[tuple[int, int]] = [(0, 0)] * len(sizes)
    next_key = 0
    # Largest zones first: every later zone size divides next_key, so each zone is aligned.
    for start, stop, zone_size in sorted(zones, key=lambda zone: (-zone[2], zone[0])):
        for index in range(start, stop):
            size = sizes[index]
            blocks[index] = (next_key + (index - start) * size, full_mask & ~(size - 1))
        next_key += zone_size
    return blocks


def _zones(sizes: Sequence[int]) -> list[tuple[int, int, int]]:
    """(first sender, end, keys) of each run of consecutive senders with one block size."""
    zones: list[tuple[int, int, int]] = []
    start = 0
    for stop in range(1, len(sizes) + 1):
        if stop < len(sizes) and sizes[stop] == sizes[start]:
            continue
        zones.append((start, stop, block_size(stop - start) * sizes[start]))
        start = stop
    return zones
