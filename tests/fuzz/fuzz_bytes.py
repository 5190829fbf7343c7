"""Byte-level edits shared by the image and the model fuzzers.

Each edit takes the random generator and the bytes, and returns (description, edited bytes);
positions in descriptions are byte offsets into the bytes given.
"""

from __future__ import annotations

import random


def flip(rng: random.Random, data: bytes, count: int) -> tuple[str, bytes]:
    """`count` bytes XORed with random non-zero values."""
    mutated = bytearray(data)
    positions = sorted(rng.randrange(len(mutated)) for _ in range(count))
    for position in positions:
        mutated[position] ^= rng.randint(1, 255)
    return f"flip at {positions}", bytes(mutated)


def overwrite(rng: random.Random, data: bytes, encoded: bytes, what: str) -> tuple[str, bytes]:
    """`encoded` written over the bytes at a random position (the length may grow at the end)."""
    mutated = bytearray(data)
    position = rng.randrange(len(mutated))
    mutated[position : position + len(encoded)] = encoded
    return f"{what} at {position}", bytes(mutated)


def insert(rng: random.Random, data: bytes, longest: int) -> tuple[str, bytes]:
    position = rng.randrange(len(data) + 1)
    run = rng.randbytes(rng.randint(1, longest))
    return f"insert {run.hex()} at {position}", data[:position] + run + data[position:]


def delete(rng: random.Random, data: bytes, longest: int) -> tuple[str, bytes]:
    start = rng.randrange(len(data))
    stop = min(len(data), start + rng.randint(1, longest))
    return f"delete [{start}:{stop}]", data[:start] + data[stop:]


def cut(rng: random.Random, data: bytes) -> tuple[str, bytes]:
    position = rng.randrange(len(data))
    return f"cut at {position}", data[:position]


def splice(rng: random.Random, data: bytes, other: bytes) -> tuple[str, bytes]:
    head, tail = rng.randrange(len(data)), rng.randrange(len(other))
    return f"splice [:{head}] + other[{tail}:]", data[:head] + other[tail:]
