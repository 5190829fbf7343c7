"""Write a `Program` as an s2c image and read it back; the spec is `docs/image-format.md`.

Format 1.0, little-endian, no padding or alignment anywhere:

    offset 0   header, 64 bytes: magic b"S2CIMG\\0\\0", u16 major, u16 minor, u32 flags (0),
               u64 total length, u32 section count, u32 reserved (0), SHA-256 of the whole file
               computed with these 32 digest bytes set to zero
    offset 64  section table, 24 bytes per section: u32 type, u32 CRC-32 of the payload,
               u64 offset, u64 length
    then       the payloads, back to back in table order, the last one ending at the total length:
               MACHINE, one PE per PE, one ROUTER and one DRAM per chip, IO, METADATA

Writing is deterministic (dict keys sorted, lists in the order given, no timestamps) and atomic
(temporary file in the same directory, fsync, rename). A Program the format cannot hold (a key
beyond 32 bits, an unknown dtype, a list attribute) is a compiler bug: `InternalError`.

Reading trusts nothing and checks in this order: magic, major version, flags, total length against
the file size, the section table (count, offsets, lengths), each section's CRC-32, the SHA-256
(which covers the header and the table), then each section's records (every count and length
against the bytes left before use) and their meaning (boxes, dtypes, links, SRAM bounds, I/O
tensor sizes and parts). Any malformed input raises `InputError` naming the section and the file
offset.
"""

from __future__ import annotations

import contextlib
import hashlib
import math
import os
import secrets
import struct
import zlib
from collections.abc import Callable
from dataclasses import dataclass
from enum import IntEnum
from pathlib import Path
from typing import TypeVar

import numpy as np

from backend.gc_pause import gc_paused
from backend.image_codec import (
    DTYPE_SIZES,
    MIN_KERNEL,
    ByteReader,
    ByteWriter,
    box_elements,
    read_attrs,
    read_blocks,
    read_box,
    read_chip,
    read_dtype,
    read_kernel,
    read_shape,
    write_attrs,
    write_blocks,
    write_box,
    write_chip,
    write_dtype,
    write_kernel,
    write_shape,
)
from backend.program import (
    LINK_NAMES,
    AttrValue,
    Box,
    ChipImage,
    IOTensor,
    Kernel,
    PECoord,
    PEImage,
    Program,
    RouterEntry,
)
from ir.errors import InputError, InternalError, S2CError

MAGIC = b"S2CIMG\0\0"
FORMAT_MAJOR = 1
FORMAT_MINOR = 0
HEADER_SIZE = 64
TABLE_ENTRY_SIZE = 24
# SRAM per PE (128 KiB on SpiNNaker2) when the image's machine description has no "sram_bytes".
DEFAULT_SRAM_BYTES = 131072
# Largest graph input or output per inference a reader accepts (256 MiB): it bounds what a run
# allocates for an I/O tensor, whatever the image claims.
MAX_IO_TENSOR_BYTES = 1 << 28

_HEADER = struct.Struct("<8sHHIQII32s")
_TABLE_ENTRY = struct.Struct("<IIQQ")
_DIGEST = slice(32, 64)
_MIN_ROUTER_ENTRY = 4 + 4 + 1 + 1 + 4
_MIN_IO_TENSOR = 4 + 4 + 4 + 4 + 4 + 4 + 1
_MIN_IO_PART = 4 + 4 + 4
_MIN_METADATA_ENTRY = 4 + 4


class SectionType(IntEnum):
    MACHINE = 1
    PE = 2
    ROUTER = 3
    DRAM = 4
    IO = 5
    METADATA = 6


_SINGLETONS = (SectionType.MACHINE, SectionType.IO, SectionType.METADATA)
_KNOWN_TYPES = frozenset(t.value for t in SectionType)

_T = TypeVar("_T")


@dataclass(frozen=True)
class _Section:
    type: int
    crc: int
    offset: int
    length: int
    label: str


# --- Public API ---


def write_image(program: Program, path: str | Path) -> int:
    """Encode `program` and write it to `path` atomically; return the number of bytes written.

    The bytes go to a temporary file in the same directory, are flushed to disk, then renamed over
    `path`. On any failure, an interrupt included, the temporary file is removed and `path` is left
    as it was.
    """
    data = encode_image(program)
    target = Path(path)
    temporary = target.with_name(f".{target.name}.{os.getpid()}.{secrets.token_hex(8)}.tmp")
    try:
        _write_then_rename(data, temporary, target)
    except OSError as exc:
        raise InputError(f"cannot write image '{target}': {exc.strerror or exc}") from exc
    return len(data)


def read_image(path: str | Path) -> Program:
    """Read and decode the image at `path`."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read image '{path}': {exc.strerror or exc}") from exc
    return decode_image(data)


def encode_image(program: Program) -> bytes:
    """The image bytes of `program`; identical programs give identical bytes."""
    return _assemble(_encode_sections(program))


def decode_image(data: bytes) -> Program:
    """Rebuild a Program from image bytes; any malformed input raises InputError."""
    try:
        with gc_paused():
            return _decode(memoryview(data))
    except S2CError:
        raise
    except MemoryError:
        raise InputError(f"not enough memory to decode a {len(data)}-byte image") from None
    except Exception as exc:  # every malformed input should have been refused above
        raise InternalError(f"image reader failed on malformed input: {exc!r}") from exc


# --- Writing ---


def _write_then_rename(data: bytes, temporary: Path, target: Path) -> None:
    try:
        with open(temporary, "xb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise
    _sync_directory(target.parent)


def _sync_directory(directory: Path) -> None:
    """Make the rename durable where the platform allows opening a directory (not Windows)."""
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _encode_sections(program: Program) -> list[tuple[SectionType, bytes]]:
    sections = [(SectionType.MACHINE, _encoded("MACHINE", _encode_machine, program))]
    for index, pe in enumerate(program.pes):
        sections.append((SectionType.PE, _encoded(f"PE#{index}", _encode_pe, pe)))
    for index, chip in enumerate(program.chips):
        sections.append((SectionType.ROUTER, _encoded(f"ROUTER#{index}", _encode_router, chip)))
    for index, chip in enumerate(program.chips):
        sections.append((SectionType.DRAM, _encoded(f"DRAM#{index}", _encode_dram, chip)))
    sections.append((SectionType.IO, _encoded("IO", _encode_io, program)))
    sections.append((SectionType.METADATA, _encoded("METADATA", _encode_metadata, program)))
    return sections


def _encoded(label: str, encode: Callable[[ByteWriter, _T], None], item: _T) -> bytes:
    writer = ByteWriter()
    try:
        encode(writer, item)
    except (struct.error, TypeError, ValueError, AttributeError, UnicodeError) as exc:
        raise InternalError(f"cannot encode image section {label}: {exc}") from exc
    return writer.getvalue()


def _assemble(sections: list[tuple[SectionType, bytes]]) -> bytes:
    offset = HEADER_SIZE + TABLE_ENTRY_SIZE * len(sections)
    table = []
    for section_type, payload in sections:
        table.append(_TABLE_ENTRY.pack(section_type, zlib.crc32(payload), offset, len(payload)))
        offset += len(payload)
    payloads = [payload for _, payload in sections]

    def header(digest: bytes) -> bytes:
        return _HEADER.pack(MAGIC, FORMAT_MAJOR, FORMAT_MINOR, 0, offset, len(sections), 0, digest)

    sha = hashlib.sha256(header(bytes(32)))
    for part in (*table, *payloads):
        sha.update(part)
    return b"".join([header(sha.digest()), *table, *payloads])


def _encode_machine(writer: ByteWriter, program: Program) -> None:
    writer.string(program.mode)
    write_chip(writer, program.host_chip)
    write_attrs(writer, program.machine)


def _encode_pe(writer: ByteWriter, pe: PEImage) -> None:
    write_chip(writer, pe.pe.chip)
    writer.u32(pe.pe.core)
    writer.u32(len(pe.kernels))
    for kernel in pe.kernels:
        write_kernel(writer, kernel)
    write_blocks(writer, pe.blocks)


def _encode_router(writer: ByteWriter, chip: ChipImage) -> None:
    write_chip(writer, chip.chip)
    writer.u32(len(chip.router))
    for entry in chip.router:
        writer.u32(entry.key)
        writer.u32(entry.mask)
        writer.u8(_link_bits(entry.links))
        writer.u8(1 if entry.host else 0)
        writer.u32(len(entry.pes))
        for core in sorted(entry.pes):
            writer.u32(core)


def _link_bits(links: frozenset[int]) -> int:
    bits = 0
    for link in links:
        if not 0 <= link < len(LINK_NAMES):
            raise ValueError(f"link index {link} outside 0..{len(LINK_NAMES) - 1}")
        bits |= 1 << link
    return bits


def _encode_dram(writer: ByteWriter, chip: ChipImage) -> None:
    write_chip(writer, chip.chip)
    write_blocks(writer, chip.dram_blocks)


def _encode_io(writer: ByteWriter, program: Program) -> None:
    for tensors in (program.inputs, program.outputs):
        writer.u32(len(tensors))
        for tensor in tensors:
            _write_io_tensor(writer, tensor)


def _write_io_tensor(writer: ByteWriter, tensor: IOTensor) -> None:
    if len(tensor.boxes) != len(tensor.keys):
        raise ValueError(
            f"I/O tensor {tensor.name!r} has {len(tensor.boxes)} boxes "
            f"but {len(tensor.keys)} key ranges"
        )
    writer.string(tensor.name)
    writer.u32(tensor.tensor_id)
    write_shape(writer, tensor.shape)
    write_dtype(writer, tensor.dtype)
    writer.u32(len(tensor.boxes))
    for box, (key, mask) in zip(tensor.boxes, tensor.keys, strict=True):
        write_box(writer, box)
        writer.u32(key)
        writer.u32(mask)
    writer.u32(tensor.values_per_packet)
    if tensor.quant is None:
        writer.u8(0)
        return
    scale, zero_point = tensor.quant
    writer.u8(1)
    writer.f64(scale)
    writer.i64(zero_point)


def _encode_metadata(writer: ByteWriter, program: Program) -> None:
    writer.u32(len(program.metadata))
    for key in sorted(program.metadata):
        writer.string(key)
        writer.string(program.metadata[key])


# --- Reading: the container ---


def _decode(view: memoryview) -> Program:
    total_length, section_count = _read_header(view)
    sections = _read_section_table(view, total_length, section_count)
    _check_section_checksums(view, sections)
    _check_digest(view)
    return _read_program(view, sections)


def _read_header(view: memoryview) -> tuple[int, int]:
    """Check the header; return the total length and the section count."""
    if not view:
        raise InputError("not an s2c image: the file is empty")
    prefix = bytes(view[: len(MAGIC)])
    if prefix != MAGIC[: len(prefix)]:
        raise InputError(f"not an s2c image: bad magic {prefix!r} (expected {MAGIC!r})")
    if len(view) < HEADER_SIZE:
        raise InputError(
            f"image truncated: the file has {len(view)} bytes but the header alone needs "
            f"{HEADER_SIZE}"
        )
    _, major, minor, flags, total_length, section_count, reserved, _ = _HEADER.unpack_from(view)
    if major != FORMAT_MAJOR:
        raise InputError(
            f"unsupported image format version {major}.{minor}: this reader supports "
            f"version {FORMAT_MAJOR}.x"
        )
    if flags:
        raise InputError(f"image header sets unknown flags 0x{flags:08x} (offset 0xc)")
    if reserved:
        raise InputError(f"image header reserved field (offset 0x1c) is 0x{reserved:x}, not 0")
    if total_length < len(view):
        raise InputError(
            f"image has {len(view) - total_length} unexpected bytes after its end at offset "
            f"0x{total_length:x}"
        )
    return total_length, section_count


def _read_section_table(view: memoryview, total_length: int, count: int) -> list[_Section]:
    table_end = HEADER_SIZE + TABLE_ENTRY_SIZE * count
    if table_end > total_length:
        raise InputError(f"image invalid: {count} sections cannot fit in {total_length} bytes")
    if table_end > len(view):
        raise InputError(
            f"image truncated at offset 0x{len(view):x} inside the section table "
            f"(0x{HEADER_SIZE:x}..0x{table_end:x}); the header says {total_length} bytes"
        )
    sections = _table_entries(view, count)
    expected = table_end
    for section in sections:
        if section.offset != expected:
            raise InputError(
                f"image invalid: section {section.label} starts at offset 0x{section.offset:x}, "
                f"expected 0x{expected:x} (payloads follow the table back to back)"
            )
        expected += section.length
    if expected != total_length:
        raise InputError(
            f"image invalid: the sections end at offset 0x{expected:x} but the header says the "
            f"image is {total_length} bytes"
        )
    for section in sections:
        if section.offset + section.length > len(view):
            raise InputError(
                f"image truncated at offset 0x{len(view):x}: section {section.label} "
                f"(offset 0x{section.offset:x}, {section.length} bytes) is cut off; the header "
                f"says {total_length} bytes"
            )
    return sections


def _table_entries(view: memoryview, count: int) -> list[_Section]:
    sections = []
    seen: dict[int, int] = {}
    for index in range(count):
        entry_offset = HEADER_SIZE + TABLE_ENTRY_SIZE * index
        section_type, crc, offset, length = _TABLE_ENTRY.unpack_from(view, entry_offset)
        ordinal = seen.get(section_type, 0)
        seen[section_type] = ordinal + 1
        sections.append(_Section(section_type, crc, offset, length, _label(section_type, ordinal)))
    return sections


def _label(section_type: int, ordinal: int) -> str:
    """A section's name in messages: "MACHINE", "PE#12", or "type-99#0" for unknown types."""
    if section_type not in _KNOWN_TYPES:
        return f"type-{section_type}#{ordinal}"
    kind = SectionType(section_type)
    return kind.name if kind in _SINGLETONS else f"{kind.name}#{ordinal}"


def _check_section_checksums(view: memoryview, sections: list[_Section]) -> None:
    for section in sections:
        actual = zlib.crc32(view[section.offset : section.offset + section.length])
        if actual != section.crc:
            raise InputError(
                f"image corrupted: section {section.label} checksum mismatch at offset "
                f"0x{section.offset:x} (stored CRC-32 0x{section.crc:08x}, "
                f"computed 0x{actual:08x})"
            )


def _check_digest(view: memoryview) -> None:
    sha = hashlib.sha256(view[: _DIGEST.start])
    sha.update(bytes(_DIGEST.stop - _DIGEST.start))
    sha.update(view[_DIGEST.stop :])
    if sha.digest() != bytes(view[_DIGEST]):
        raise InputError(
            "image corrupted: SHA-256 mismatch (header at offset 0x20); the header or the "
            "section table was altered"
        )


# --- Reading: the sections ---


def _read_program(view: memoryview, sections: list[_Section]) -> Program:
    readers: dict[int, list[ByteReader]] = {}
    for section in sections:
        data = view[section.offset : section.offset + section.length]
        reader = ByteReader(data, section.offset, section.label)
        readers.setdefault(section.type, []).append(reader)
    machine_reader = _single(readers, SectionType.MACHINE)
    mode, host_chip, machine = _decode_machine(machine_reader)
    sram_bytes = _sram_bytes(machine_reader, machine)
    pes = _decode_pes(readers.get(SectionType.PE, []), sram_bytes)
    chips = _decode_chips(readers.get(SectionType.ROUTER, []), readers.get(SectionType.DRAM, []))
    inputs, outputs = _decode_io(_single(readers, SectionType.IO))
    metadata = _decode_metadata(_single(readers, SectionType.METADATA))
    return Program(mode, machine, host_chip, pes, chips, inputs, outputs, metadata)


def _single(readers: dict[int, list[ByteReader]], section_type: SectionType) -> ByteReader:
    found = readers.get(section_type, [])
    if len(found) != 1:
        raise InputError(
            f"image invalid: expected exactly one {section_type.name} section, found {len(found)}"
        )
    return found[0]


def _decode_machine(reader: ByteReader) -> tuple[str, tuple[int, int], dict[str, AttrValue]]:
    mode = reader.string("mode")
    host_chip = read_chip(reader)
    machine = read_attrs(reader, "machine entry")
    reader.expect_end()
    return mode, host_chip, machine


def _sram_bytes(reader: ByteReader, machine: dict[str, AttrValue]) -> int:
    """The SRAM size every PE's blocks and buffers must fit in."""
    value = machine.get("sram_bytes", DEFAULT_SRAM_BYTES)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= 1 << 32:
        raise reader.error(
            f"sram_bytes must be an integer in 1..2^32, found {value!r}", reader.start
        )
    return value


def _decode_pes(readers: list[ByteReader], sram_bytes: int) -> list[PEImage]:
    pes = []
    seen: set[PECoord] = set()
    for reader in readers:
        pe = _decode_pe(reader, sram_bytes)
        if pe.pe in seen:
            raise reader.error(
                f"a second image for chip {pe.pe.chip} core {pe.pe.core}", reader.start
            )
        seen.add(pe.pe)
        pes.append(pe)
    return pes


def _decode_pe(reader: ByteReader, sram_bytes: int) -> PEImage:
    coord = PECoord(read_chip(reader), reader.u32("core"))
    kernels = []
    for _ in range(reader.count("kernel count", MIN_KERNEL)):
        at = reader.offset
        kernel = read_kernel(reader)
        _check_kernel_in_sram(reader, kernel, sram_bytes, at)
        kernels.append(kernel)
    blocks = read_blocks(reader, "SRAM", sram_bytes)
    reader.expect_end()
    return PEImage(coord, kernels, blocks)


def _check_kernel_in_sram(reader: ByteReader, kernel: Kernel, sram_bytes: int, at: int) -> None:
    """Every buffer and SRAM parameter of the kernel lies inside the PE's SRAM."""
    regions = [
        (f"input {i} buffer", port.buffer_address, box_elements(port.box) * DTYPE_SIZES[port.dtype])
        for i, port in enumerate(kernel.inputs)
    ]
    output = kernel.output
    output_bytes = box_elements(output.box) * DTYPE_SIZES[output.dtype]
    regions.append(("output buffer", output.buffer_address, output_bytes))
    for param in kernel.params:
        if param.memory == "sram":
            param_bytes = math.prod(param.shape) * DTYPE_SIZES[param.dtype]
            regions.append((f"parameter {param.role!r}", param.address, param_bytes))
    for what, address, size in regions:
        if address + size > sram_bytes:
            raise reader.error(
                f"kernel {kernel.layer!r} slice {kernel.slice_index}: {what} "
                f"0x{address:x}..0x{address + size:x} lies outside the {sram_bytes}-byte SRAM",
                at,
            )


def _decode_chips(routers: list[ByteReader], drams: list[ByteReader]) -> list[ChipImage]:
    """Pair each chip's ROUTER section with its DRAM section; chips keep the ROUTER order."""
    dram_by_chip: dict[tuple[int, int], list[tuple[int, bytes]]] = {}
    for reader in drams:
        chip = read_chip(reader)
        if chip in dram_by_chip:
            raise reader.error(f"a second DRAM section for chip {chip}", reader.start)
        dram_by_chip[chip] = read_blocks(reader, "DRAM", None)
        reader.expect_end()
    chips: list[ChipImage] = []
    seen: set[tuple[int, int]] = set()
    for reader in routers:
        chip, entries = _decode_router(reader)
        if chip in seen:
            raise reader.error(f"a second ROUTER section for chip {chip}", reader.start)
        seen.add(chip)
        if chip not in dram_by_chip:
            raise reader.error(f"chip {chip} has no DRAM section", reader.start)
        chips.append(ChipImage(chip, entries, dram_by_chip.pop(chip)))
    if dram_by_chip:
        raise InputError(
            f"image invalid: chip {min(dram_by_chip)} has a DRAM but no ROUTER section"
        )
    return chips


def _decode_router(reader: ByteReader) -> tuple[tuple[int, int], list[RouterEntry]]:
    chip = read_chip(reader)
    entries = [
        _read_router_entry(reader)
        for _ in range(reader.count("router entry count", _MIN_ROUTER_ENTRY))
    ]
    reader.expect_end()
    return chip, entries


def _read_router_entry(reader: ByteReader) -> RouterEntry:
    key = reader.u32("router key")
    mask = reader.u32("router mask")
    at = reader.offset
    link_bits = reader.u8("router links")
    if link_bits >> len(LINK_NAMES):
        raise reader.error(f"router links 0x{link_bits:02x} name links beyond 0..5", at)
    host = reader.u8("router host flag")
    if host > 1:
        raise reader.error(f"router host flag is {host}, not 0 or 1", at + 1)
    cores: list[int] = []
    for _ in range(reader.count("router PE count", 4)):
        core_at = reader.offset
        core = reader.u32("router PE")
        if cores and core <= cores[-1]:
            raise reader.error(f"router PE {core} after {cores[-1]}: PEs must increase", core_at)
        cores.append(core)
    links = frozenset(i for i in range(len(LINK_NAMES)) if link_bits >> i & 1)
    return RouterEntry(key, mask, links, frozenset(cores), host == 1)


def _decode_io(reader: ByteReader) -> tuple[list[IOTensor], list[IOTensor]]:
    inputs = _read_io_tensors(reader, "input")
    outputs = _read_io_tensors(reader, "output")
    reader.expect_end()
    return inputs, outputs


def _read_io_tensors(reader: ByteReader, kind: str) -> list[IOTensor]:
    tensors: list[IOTensor] = []
    for _ in range(reader.count(f"{kind} count", _MIN_IO_TENSOR)):
        at = reader.offset
        tensor = _read_io_tensor(reader, kind)
        if any(t.name == tensor.name for t in tensors):
            raise reader.error(f"two graph {kind}s named {tensor.name!r}", at)
        tensors.append(tensor)
    return tensors


def _read_io_tensor(reader: ByteReader, kind: str) -> IOTensor:
    name = reader.string(f"{kind} name")
    tensor_id = reader.u32(f"{kind} tensor id")
    at = reader.offset
    shape = read_shape(reader, f"{kind} shape")
    dtype = read_dtype(reader, f"{kind} dtype")
    size = math.prod(shape) * DTYPE_SIZES[dtype]
    if size > MAX_IO_TENSOR_BYTES:
        raise reader.error(
            f"{kind} {name!r} of shape {shape} ({dtype}) needs {size} bytes, more than the "
            f"{MAX_IO_TENSOR_BYTES} an I/O tensor may hold",
            at,
        )
    boxes = []
    keys = []
    parts_at = reader.offset
    for _ in range(reader.count(f"{kind} part count", _MIN_IO_PART)):
        at = reader.offset
        box = read_box(reader, f"{kind} box")
        if len(box.start) != len(shape) or any(
            a < 0 or b > dim for a, b, dim in zip(box.start, box.stop, shape, strict=True)
        ):
            raise reader.error(f"{kind} {name!r}: box {box} is not inside shape {shape}", at)
        boxes.append(box)
        keys.append((reader.u32(f"{kind} key"), reader.u32(f"{kind} mask")))
    _check_parts_tile(reader, f"{kind} {name!r}", shape, boxes, parts_at)
    at = reader.offset
    values_per_packet = reader.u32(f"{kind} values per packet")
    if values_per_packet == 0:
        raise reader.error(f"{kind} {name!r}: values per packet must be at least 1", at)
    quant = _read_quant(reader, f"{kind} {name!r}")
    return IOTensor(
        name, tensor_id, shape, dtype, tuple(boxes), tuple(keys), values_per_packet, quant
    )


def _check_parts_tile(
    reader: ByteReader, what: str, shape: tuple[int, ...], boxes: list[Box], at: int
) -> None:
    """The parts of an I/O tensor cover each of its elements exactly once."""
    covered = sum(box_elements(box) for box in boxes)
    if covered == math.prod(shape):
        count = np.zeros(shape, dtype=np.uint8)
        for box in boxes:
            count[tuple(slice(a, b) for a, b in zip(box.start, box.stop, strict=True))] += 1
        if count.size == 0 or count.min() == 1:  # with the sum: each element once
            return
    raise reader.error(
        f"{what}: its {len(boxes)} parts hold {covered} elements but do not cover the "
        f"{math.prod(shape)} elements of shape {shape} exactly once",
        at,
    )


def _read_quant(reader: ByteReader, what: str) -> tuple[float, int] | None:
    at = reader.offset
    flag = reader.u8(f"{what} quantisation flag")
    if flag == 0:
        return None
    if flag != 1:
        raise reader.error(f"{what}: quantisation flag is {flag}, not 0 or 1", at)
    return reader.f64(f"{what} scale"), reader.i64(f"{what} zero point")


def _decode_metadata(reader: ByteReader) -> dict[str, str]:
    metadata: dict[str, str] = {}
    previous: str | None = None
    for _ in range(reader.count("metadata count", _MIN_METADATA_ENTRY)):
        at = reader.offset
        key = reader.string("metadata key")
        if previous is not None and key <= previous:
            raise reader.error(f"metadata key {key!r} after {previous!r}: keys must increase", at)
        metadata[key] = reader.string("metadata value")
        previous = key
    reader.expect_end()
    return metadata
