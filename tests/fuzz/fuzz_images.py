"""Mutated s2c images for the image fuzz test: case `index` is a pure function of (seed, index).

The container helpers (`split`, `seal`) are written from `docs/image-format.md`, independently of
`backend.image`, so that a "sealed" mutation carries valid CRC-32s and a valid SHA-256 and reaches
the record parsers behind the checksums. Mutation families, drawn with fixed weights:

- raw (the checksums catch these): byte flips, truncation, splice of two images, insertion and
  deletion of byte runs;
- sealed payload edits: flips, interesting integers (0, 1, 2^31, 2^32 - 1, ...) written as u8,
  u32 or u64 at any offset, runs inserted, deleted or cut inside one section, then every CRC-32
  and the SHA-256 recomputed;
- sealed container edits: header and section-table fields rewritten (count, total length, type,
  offset, length, flags, minor version), the SHA-256 recomputed; sections dropped, duplicated,
  reordered or taken from another image;
- sealed program edits: the image decoded, one field of the Program (a key, a mask, a box, a
  dtype, an address, a machine entry, a router entry, ...) replaced by a hostile value of the same
  type, and the Program encoded again, so the encoding is valid and only the meaning is wrong.

Reproduce one case: `image_case(images, programs, seed, index)` rebuilds it. The interpreter's
cases are `accepted_case(images, programs, seed, index)`: sealed payload and program edits drawn
until the reader accepts one, so that every case reaches the interpreter.
"""

from __future__ import annotations

import dataclasses
import hashlib
import random
import struct
import zlib
from typing import Any, NamedTuple

import fuzz_bytes

from backend.image import decode_image, encode_image
from backend.program import Box, Program
from ir.errors import InputError

HEADER = struct.Struct("<8sHHIQII32s")
ENTRY = struct.Struct("<IIQQ")
HEADER_SIZE = 64
ENTRY_SIZE = 24

INTERESTING_U32 = (0, 1, 2, 7, 0x7F, 0x80, 0xFF, 0x100, 0xFFFF, 0x1_0000, 0x7FFF_FFFF,
                   0x8000_0000, 0xFFFF_FFFE, 0xFFFF_FFFF)  # fmt: skip
INTERESTING_U64 = (*INTERESTING_U32, 1 << 32, 1 << 40, 0x7FFF_FFFF_FFFF_FFFF,
                   0x8000_0000_0000_0000, 0xFFFF_FFFF_FFFF_FFFF)  # fmt: skip
INTERESTING_INT = (-(1 << 63), -(1 << 31), -1, 0, 1, 2, 3, 16, 255, 4096, 131071, 131072,
                   1 << 31, (1 << 32) - 1, 1 << 32, 1 << 40, (1 << 63) - 1)  # fmt: skip
DTYPES = ("bool", "int8", "uint8", "int16", "uint16", "float16", "int32", "uint32", "float32",
          "int64", "uint64", "float64")  # fmt: skip

Images = dict[str, bytes]


# --- Container helpers from the spec ---


def split(data: bytes) -> list[tuple[int, bytes]]:
    """The (type, payload) of each section of a valid image."""
    count = HEADER.unpack_from(data)[5]
    sections = []
    for index in range(count):
        section_type, _, offset, length = ENTRY.unpack_from(data, HEADER_SIZE + ENTRY_SIZE * index)
        sections.append((section_type, data[offset : offset + length]))
    return sections


def seal(sections: list[tuple[int, bytes]], minor: int = 0) -> bytes:
    """An image with a valid layout, CRC-32s and SHA-256 around the given payloads."""
    offset = HEADER_SIZE + ENTRY_SIZE * len(sections)
    table = b""
    for section_type, payload in sections:
        table += ENTRY.pack(section_type, zlib.crc32(payload), offset, len(payload))
        offset += len(payload)
    body = table + b"".join(payload for _, payload in sections)
    header = HEADER.pack(b"S2CIMG\0\0", 1, minor, 0, offset, len(sections), 0, bytes(32))
    return header[:32] + hashlib.sha256(header + body).digest() + body


def reseal_digest(data: bytes) -> bytes:
    """`data` with the SHA-256 at 0x20..0x3F recomputed (the CRCs are left as they are)."""
    if len(data) < HEADER_SIZE:
        return data
    zeroed = data[:32] + bytes(32) + data[64:]
    return data[:32] + hashlib.sha256(zeroed).digest() + data[64:]


# --- Sealed payload mutations ---


def _edit_payload(rng: random.Random, payload: bytes) -> tuple[str, bytes]:
    """One edit of a section payload: flip, interesting integer, insert, delete or cut."""
    action = rng.choice(("flip", "int", "int", "int", "insert", "delete", "cut"))
    if not payload:
        action = "insert"
    if action == "int":
        size = rng.choice((1, 4, 4, 8))
        values = {1: INTERESTING_U32[:7], 4: INTERESTING_U32, 8: INTERESTING_U64}[size]
        value = rng.choice(values) & ((1 << (8 * size)) - 1)
        encoded = value.to_bytes(size, "little")
        return fuzz_bytes.overwrite(rng, payload, encoded, f"u{8 * size} {value:#x}")
    edit = {
        "flip": lambda: fuzz_bytes.flip(rng, payload, 1),
        "insert": lambda: fuzz_bytes.insert(rng, payload, 16),
        "delete": lambda: fuzz_bytes.delete(rng, payload, 16),
        "cut": lambda: fuzz_bytes.cut(rng, payload),
    }[action]
    return edit()


def sealed_payload(rng: random.Random, data: bytes) -> tuple[str, bytes]:
    sections = split(data)
    index = rng.randrange(len(sections))
    section_type, payload = sections[index]
    edits = []
    for _ in range(rng.choice((1, 1, 1, 2, 3))):
        edit, payload = _edit_payload(rng, payload)
        edits.append(edit)
    sections[index] = (section_type, payload)
    return f"sealed: section {index} (type {section_type}): {'; '.join(edits)}", seal(sections)


# --- Sealed container mutations ---

HEADER_FIELDS = {  # name: (offset, size)
    "format_minor": (0x0A, 2),
    "flags": (0x0C, 4),
    "total_length": (0x10, 8),
    "section_count": (0x18, 4),
    "reserved": (0x1C, 4),
}
ENTRY_FIELDS = {"type": (0, 4), "crc32": (4, 4), "offset": (8, 8), "length": (16, 8)}


def sealed_header(rng: random.Random, data: bytes) -> tuple[str, bytes]:
    """A header or section-table field rewritten, the SHA-256 recomputed."""
    mutated = bytearray(data)
    count = HEADER.unpack_from(data)[5]
    if rng.random() < 0.4:
        name, (offset, size) = rng.choice(list(HEADER_FIELDS.items()))
        where = f"header {name}"
    else:
        entry = rng.randrange(count)
        name, (field_offset, size) = rng.choice(list(ENTRY_FIELDS.items()))
        offset = HEADER_SIZE + ENTRY_SIZE * entry + field_offset
        where = f"table entry {entry} {name}"
    old = int.from_bytes(mutated[offset : offset + size], "little")
    choices = [old + 1, old - 1, old + 24, old * 2, *INTERESTING_U64, rng.randrange(7, 300)]
    value = rng.choice(choices) & ((1 << (8 * size)) - 1)
    mutated[offset : offset + size] = value.to_bytes(size, "little")
    return f"sealed: {where} {old:#x} -> {value:#x}", reseal_digest(bytes(mutated))


def sealed_sections(rng: random.Random, data: bytes, other: bytes) -> tuple[str, bytes]:
    """Sections dropped, duplicated, swapped or borrowed from another image; all resealed."""
    sections = split(data)
    foreign = split(other)
    action = rng.choice(("drop", "duplicate", "swap", "borrow", "replace", "unknown"))
    index = rng.randrange(len(sections))
    if action == "drop":
        del sections[index]
    elif action == "duplicate":
        sections.insert(rng.randrange(len(sections) + 1), sections[index])
    elif action == "swap":
        other_index = rng.randrange(len(sections))
        sections[index], sections[other_index] = sections[other_index], sections[index]
        action = f"swap with {other_index}"
    elif action == "borrow":
        sections.insert(index, rng.choice(foreign))
    elif action == "replace":
        candidates = [s for s in foreign if s[0] == sections[index][0]] or foreign
        sections[index] = rng.choice(candidates)
    else:
        sections.insert(index, (rng.choice((0, 7, 99, 0xFFFF_FFFF)), rng.randbytes(8)))
    return f"sealed: {action} section {index}", seal(sections, minor=rng.choice((0, 0, 1)))


# --- Sealed program mutations: a valid encoding of a wrong Program ---


def _leaves(node: Any, path: tuple[Any, ...] = ()) -> list[tuple[tuple[Any, ...], Any]]:
    """(path, value) of every scalar-ish leaf reachable from `node`."""
    if dataclasses.is_dataclass(node) and not isinstance(node, Box):
        found = []
        for field in dataclasses.fields(node):
            found += _leaves(getattr(node, field.name), (*path, field.name))
        return found
    if isinstance(node, list) or (isinstance(node, tuple) and any(map(_composite, node))):
        found = [((*path, "#list"), node)]
        for index, item in enumerate(node):
            found += _leaves(item, (*path, index))
        return found
    if isinstance(node, dict):
        found = []
        for key in sorted(node):
            found += _leaves(node[key], (*path, key))
        return found or [(path, node)]
    return [(path, node)]


def _composite(item: Any) -> bool:
    return isinstance(item, (tuple, Box)) or dataclasses.is_dataclass(item)


def _get(root: Any, path: tuple[Any, ...]) -> Any:
    node = root
    for step in path:
        node = node[step] if isinstance(node, (list, tuple, dict)) else getattr(node, step)
    return node


def _set(node: Any, path: tuple[Any, ...], value: Any) -> Any:
    """`node` with the leaf at `path` replaced (frozen dataclasses rebuilt, lists copied)."""
    if not path:
        return value
    step, rest = path[0], path[1:]
    if isinstance(node, (list, tuple)):
        copy = list(node)
        copy[step] = _set(node[step], rest, value)
        return type(node)(copy)
    if isinstance(node, dict):
        copy_dict = dict(node)
        copy_dict[step] = _set(node[step], rest, value)
        return copy_dict
    return dataclasses.replace(node, **{step: _set(getattr(node, step), rest, value)})


def _hostile(rng: random.Random, value: Any) -> Any:
    """A wrong value of the same type as `value`."""
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return rng.choice((*INTERESTING_INT, value + 1, value - 1, value * 2, value ^ 0x10))
    if isinstance(value, float):
        return rng.choice((0.0, -1.0, float("nan"), float("inf"), -float("inf"), 1e300, 5e-324))
    if isinstance(value, str):
        if value in DTYPES:
            return rng.choice(DTYPES)
        return rng.choice(("", "x", value + "_", "\u00e9", "relu", "dense", "conv2d", "float"))
    if isinstance(value, Box):
        return _hostile_box(rng, value)
    if isinstance(value, frozenset):
        items = set(value)
        if items and rng.random() < 0.5:
            items.discard(rng.choice(sorted(items)))
        else:
            items.add(rng.choice((0, 1, 5, 6, 151, 152, 1000)))
        return frozenset(items)
    if isinstance(value, tuple):
        return _hostile_tuple(rng, value)
    if isinstance(value, bytes):
        return value[: rng.randrange(len(value) + 1)] if value else b"\0" * 8
    return value


def _hostile_box(rng: random.Random, box: Box) -> Box:
    start, stop = list(box.start), list(box.stop)
    if not start:
        return Box((0,), (rng.choice((1, 2, 1 << 20)),))
    axis = rng.randrange(len(start))
    action = rng.choice(("grow", "shrink", "shift", "huge", "rank"))
    if action == "grow":
        stop[axis] += rng.choice((1, 2, 100))
    elif action == "shrink" and stop[axis] > start[axis]:
        stop[axis] -= 1
    elif action == "shift":
        start[axis] += 1
        stop[axis] += 1
    elif action == "huge":
        stop[axis] = start[axis] + rng.choice((1 << 20, 1 << 31, 1 << 40, (1 << 62)))
    else:
        start.append(0)
        stop.append(1)
    return Box(tuple(start), tuple(stop))


def _hostile_tuple(rng: random.Random, value: tuple[Any, ...]) -> tuple[Any, ...]:
    if not value:
        return (rng.choice((0, 1, 1 << 40)),)
    items = list(value)
    action = rng.choice(("element", "element", "drop", "append"))
    index = rng.randrange(len(items))
    if action == "element":
        items[index] = _hostile(rng, items[index])
    elif action == "drop":
        del items[index]
    else:
        items.append(items[index])
    numbers = all(isinstance(i, (int, float)) for i in items)
    if numbers and any(isinstance(i, float) for i in items):
        items = [float(i) for i in items]  # keep the tuple storable: ints only or floats only
    return tuple(items)


def _hostile_list(rng: random.Random, value: list[Any] | tuple[Any, ...]) -> Any:
    """A list or tuple with an item dropped, duplicated or moved."""
    items = list(value)
    action = rng.choice(("drop", "drop", "duplicate", "move"))
    if items and action == "drop":
        del items[rng.randrange(len(items))]
    elif items and action == "duplicate":
        items.insert(rng.randrange(len(items) + 1), rng.choice(items))
    elif items:
        items.insert(rng.randrange(len(items) + 1), items.pop(rng.randrange(len(items))))
    return type(value)(items)


def sealed_program(rng: random.Random, program: Program) -> tuple[str, bytes] | None:
    """One to three leaves of the decoded Program replaced, encoded again (None: not storable)."""
    changes = []
    for _ in range(rng.choice((1, 1, 2, 3))):
        path, value = rng.choice(_leaves(program))
        if path and path[-1] == "#list":
            path = path[:-1]
            new = _hostile_list(rng, _get(program, path))
        else:
            new = _hostile(rng, value)
        try:
            program = _set(program, path, new)
        except (ValueError, TypeError):
            continue
        changes.append(f"{'.'.join(map(str, path))} = {_short(new)}")
    try:
        data = encode_image(program)
    except Exception:  # the writer refuses values the format cannot hold
        return None
    return f"program: {'; '.join(changes)}", data


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


# --- Cases ---

FAMILIES = (
    ("flip", 2),
    ("truncate", 1),
    ("splice", 1),
    ("insert", 1),
    ("delete", 1),
    ("sealed_payload", 6),
    ("sealed_header", 2),
    ("sealed_sections", 2),
    ("sealed_program", 6),
)


class ImageCase(NamedTuple):
    """One mutated image: which golden image, which mutation family, what was done, the bytes."""

    name: str
    family: str
    description: str
    data: bytes

    def label(self, index: int | str) -> str:
        return f"case {index} [{self.name}; {self.family}: {self.description}]"


def image_case(
    images: Images,
    programs: dict[str, Program],
    seed: int,
    index: int | str,
    only: tuple[str, ...] = (),
) -> ImageCase:
    """Case `index` of the run with base `seed` (from the families in `only`, when given)."""
    rng = random.Random(f"s2c-image-fuzz-{seed}-{index}")
    names = sorted(images)
    name = rng.choice(names)
    data = images[name]
    other = images[rng.choice(names)]
    families = [f for f, weight in FAMILIES if f in only or not only for _ in range(weight)]
    family = rng.choice(families)
    if family == "sealed_program":
        result = sealed_program(rng, programs[name])
        if result is None:
            family = "sealed_payload"
        else:
            return ImageCase(name, family, *result)
    mutate = {  # raw edits, which the checksums catch, then sealed ones
        "flip": lambda: fuzz_bytes.flip(rng, data, rng.randint(1, 8)),
        "truncate": lambda: fuzz_bytes.cut(rng, data),
        "splice": lambda: fuzz_bytes.splice(rng, data, other),
        "insert": lambda: fuzz_bytes.insert(rng, data, 64),
        "delete": lambda: fuzz_bytes.delete(rng, data, 256),
        "sealed_payload": lambda: sealed_payload(rng, data),
        "sealed_header": lambda: sealed_header(rng, data),
        "sealed_sections": lambda: sealed_sections(rng, data, other),
    }[family]
    description, mutated = mutate()
    return ImageCase(name, family, description, mutated)


# The families whose images the reader accepts often: valid records with wrong meanings.
LOAD_FAMILIES = ("sealed_payload", "sealed_program")
LOAD_ATTEMPTS = 50


def accepted_case(
    images: Images, programs: dict[str, Program], seed: int, index: int
) -> tuple[str, Program] | None:
    """Interpreter case `index`: (label, Program) of the first sealed payload or program mutation
    that the reader accepts, of the cases "load-<index>-<attempt>" (None: none in 50 attempts)."""
    for attempt in range(LOAD_ATTEMPTS):
        key = f"load-{index}-{attempt}"
        case = image_case(images, programs, seed, key, only=LOAD_FAMILIES)
        try:
            return case.label(key), decode_image(case.data)
        except InputError:
            continue
    return None
