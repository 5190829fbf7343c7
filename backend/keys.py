"""Multicast key allocation: one aligned block of keys per sender.

A sender (a slice's output port, or a box of a graph input that the host injects) sends packets
with keys `key + packet_index`. Its block holds the next power of two at or above its packet count
(at least 1) and starts at a multiple of its size, so one router entry `(key, mask)` with
`mask = 0xFFFFFFFF & ~(size - 1)` matches exactly the block:

    key = | block bits (matched by the mask) | packet index (log2(size) bits, masked out) |

Blocks are packed from key 0 upwards, largest first (ties by sender index); with sizes falling
powers of two, each block starts where the previous one ended and is still aligned, so the key
space has no holes except at the end. Aligned blocks of the same size side by side differ in one
key bit, which lets the router merge the entries of two such blocks that take the same route into
one entry (`backend.route`). The result is returned in the senders' order and is deterministic.
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
    full_mask = (1 << key_bits) - 1
    blocks: list[tuple[int, int]] = [(0, 0)] * len(sizes)
    next_key = 0
    # Largest blocks first: every later block size divides next_key, so each block is aligned.
    for index in sorted(range(len(sizes)), key=lambda i: (-sizes[i], i)):
        size = sizes[index]
        blocks[index] = (next_key, full_mask & ~(size - 1))
        next_key += size
    return blocks
