"""Field and record codecs of the s2c image: numbers, strings, boxes, blocks, attributes, kernels.

`backend.image` owns the container (header, section table, checksums) and the section layouts; this
module owns the pieces those layouts are made of. The byte-level spec is `docs/image-format.md`.

Every field is little-endian with no padding. A string is a u32 byte length and UTF-8 bytes; a box
is a u32 rank, then rank i64 starts, then rank i64 stops; an attribute value is a typed TLV (u8 tag,
u32 length, value bytes).

`ByteWriter` raises `struct.error`, `TypeError` or `ValueError` on values the format cannot hold;
`backend.image` turns those into `InternalError` naming the section. `ByteReader` trusts nothing:
every read checks the bytes it needs against the bytes left in its section before it touches or
allocates anything, and every failure is an `InputError` naming the section and the file offset.
"""

from __future__ import annotations

import functools
import math
import operator
import struct
from collections.abc import Callable, Mapping

import numpy as np

from backend.program import AttrValue, Box, InputPort, Kernel, OutputPort, PortSource, TensorRef
from ir.errors import InputError

# Element types an image may name, spelled as numpy spells them, with their size in bytes.
DTYPE_SIZES: dict[str, int] = {
    "bool": 1,
    "int8": 1,
    "uint8": 1,
    "int16": 2,
    "uint16": 2,
    "float16": 2,
    "int32": 4,
    "uint32": 4,
    "float32": 4,
    "int64": 8,
    "uint64": 8,
    "float64": 8,
}

# Attribute value tags (docs/image-format.md, "Attribute values").
TAG_INT = 1
TAG_FLOAT = 2
TAG_STR = 3
TAG_INT_TUPLE = 4
TAG_FLOAT_TUPLE = 5
TAG_EMPTY_TUPLE = 6
TAG_BOOL = 7

# Memory codes of a TensorRef.
MEMORY_CODES: dict[str, int] = {"sram": 0, "dram": 1}

# Smallest encoded size of each record, so a count can be checked against the bytes left.
MIN_ATTR = 4 + 1 + 4  # empty name, tag, length
MIN_BOX = 4  # rank 0
MIN_SOURCE = 4 + 4 + MIN_BOX
MIN_INPUT_PORT = 4 + MIN_BOX + 4 + 4 + 4  # tensor id, box, dtype, buffer address, source count
MIN_OUTPUT_PORT = 4 + MIN_BOX + 4 + 4 + 4 + 4 + 4
MIN_TENSOR_REF = 4 + 4 + 4 + 1 + 8  # role, dtype, rank-0 shape, memory, address
MIN_BLOCK = 8 + 8  # address, length
MIN_KERNEL = 4 + 4 + 4 + 4 + 4 + 4 + MIN_OUTPUT_PORT + 4

_U8 = struct.Struct("<B")
_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")
_I64 = struct.Struct("<q")
_F64 = struct.Struct("<d")
_SOURCE_HEAD = struct.Struct("<III")
_TAG_LENGTH = struct.Struct("<BI")


@functools.lru_cache(maxsize=64)
def _i64_layout(count: int) -> struct.Struct:
    """The layout of `count` little-endian int64 values (cached: ranks repeat)."""
    return struct.Struct(f"<{count}q")


class ByteWriter:
    """Collects little-endian fields; `getvalue` joins them."""

    def __init__(self) -> None:
        self._parts: list[bytes] = []

    def u8(self, value: int) -> None:
        self._parts.append(_U8.pack(value))

    def u32(self, value: int) -> None:
        self._parts.append(_U32.pack(value))

    def u64(self, value: int) -> None:
        self._parts.append(_U64.pack(value))

    def i64(self, value: int) -> None:
        self._parts.append(_I64.pack(value))

    def f64(self, value: float) -> None:
        self._parts.append(_F64.pack(value))

    def i64s(self, values: tuple[int, ...]) -> None:
        self._parts.append(struct.pack(f"<{len(values)}q", *values))

    def raw(self, data: bytes) -> None:
        self._parts.append(bytes(data))

    def string(self, text: str) -> None:
        if not isinstance(text, str):
            raise TypeError(f"expected a string, got {type(text).__name__} {text!r}")
        encoded = text.encode("utf-8")
        self.u32(len(encoded))
        self.raw(encoded)

    def getvalue(self) -> bytes:
        return b"".join(self._parts)


class ByteReader:
    """Reads fields from one section, checking every length against the bytes left in it.

    Args:
        data: the section's bytes.
        start: the file offset of `data[0]`, for messages.
        label: the section's name in messages, e.g. "PE#12".
    """

    def __init__(self, data: memoryview, start: int, label: str) -> None:
        self._data = data
        self._pos = 0
        self.start = start
        self.label = label

    @property
    def offset(self) -> int:
        """The file offset of the next byte to read."""
        return self.start + self._pos

    @property
    def remaining(self) -> int:
        return len(self._data) - self._pos

    def error(self, message: str, offset: int | None = None) -> InputError:
        """An InputError about this section at `offset` (default: the next byte to read)."""
        at = self.offset if offset is None else offset
        return InputError(f"image invalid: section {self.label} at offset 0x{at:x}: {message}")

    def take(self, size: int, what: str) -> memoryview:
        start = self._advance(size, what)
        return self._data[start : start + size]

    def _advance(self, size: int, what: str) -> int:
        """Move past `size` bytes, checked against the bytes left; returns where they start."""
        start = self._pos
        if start + size > len(self._data):
            raise self.error(f"{what} needs {size} bytes but only {self.remaining} are left")
        self._pos = start + size
        return start

    def unpack(self, layout: struct.Struct, what: str) -> tuple:
        """The fields of `layout`, read at once."""
        return layout.unpack_from(self._data, self._advance(layout.size, what))

    def u8(self, what: str) -> int:
        return int(self.unpack(_U8, what)[0])

    def u32(self, what: str) -> int:
        # The hottest read of a decode: _advance inlined.
        start = self._pos
        if start + 4 > len(self._data):
            raise self.error(f"{what} needs 4 bytes but only {self.remaining} are left")
        self._pos = start + 4
        value: int = _U32.unpack_from(self._data, start)[0]
        return value

    def u64(self, what: str) -> int:
        return int(self.unpack(_U64, what)[0])

    def i64(self, what: str) -> int:
        return int(self.unpack(_I64, what)[0])

    def f64(self, what: str) -> float:
        return float(self.unpack(_F64, what)[0])

    def i64s(self, count: int, what: str) -> tuple[int, ...]:
        return self.unpack(_i64_layout(count), what)

    def raw(self, size: int, what: str) -> bytes:
        return bytes(self.take(size, what))

    def count(self, what: str, min_record_size: int) -> int:
        """A u32 record count, refused when that many records cannot fit in the bytes left."""
        at = self.offset
        count = self.u32(what)
        if count * min_record_size > self.remaining:
            raise self.error(
                f"{what} {count} cannot fit in the {self.remaining} bytes left "
                f"(each record needs at least {min_record_size})",
                at,
            )
        return count

    def string(self, what: str) -> str:
        """A u32 length, then that many bytes of UTF-8 (a hot read: no message built unless
        there is an error)."""
        at = self._pos
        data = self._data
        if at + 4 > len(data):
            raise self.error(f"{what} length needs 4 bytes but only {self.remaining} are left")
        size = _U32.unpack_from(data, at)[0]
        start = at + 4
        if start + size > len(data):
            self._pos = start
            raise self.error(f"{what} needs {size} bytes but only {self.remaining} are left")
        self._pos = start + size
        try:
            return str(data[start : start + size], "utf-8")
        except UnicodeDecodeError as exc:
            raise self.error(f"{what} is not valid UTF-8 ({exc.reason})", self.start + at) from None

    def expect_end(self) -> None:
        if self.remaining:
            raise self.error(f"{self.remaining} unexpected bytes after the last record")


def write_box(writer: ByteWriter, box: Box) -> None:
    writer.u32(len(box.start))
    writer.i64s(tuple(box.start))
    writer.i64s(tuple(box.stop))


def read_box(reader: ByteReader, what: str) -> Box:
    at = reader.offset
    rank = reader.count(f"{what} rank", 16)
    corners = reader.i64s(2 * rank, f"{what} corners")
    start, stop = corners[:rank], corners[rank:]
    if any(map(operator.lt, stop, start)):
        raise reader.error(f"{what} has stop < start: {start}..{stop}", at)
    return Box(start, stop)


def box_elements(box: Box) -> int:
    """Element count of a box, in exact integers (numpy's product can wrap on hostile boxes)."""
    return math.prod(b - a for a, b in zip(box.start, box.stop, strict=True))


def write_shape(writer: ByteWriter, shape: tuple[int, ...]) -> None:
    writer.u32(len(shape))
    writer.i64s(tuple(shape))


def read_shape(reader: ByteReader, what: str) -> tuple[int, ...]:
    at = reader.offset
    rank = reader.count(f"{what} rank", 8)
    shape = reader.i64s(rank, what)
    if any(dim < 0 for dim in shape):
        raise reader.error(f"{what} has a negative dimension: {shape}", at)
    return shape


def write_dtype(writer: ByteWriter, dtype: str) -> None:
    if dtype not in DTYPE_SIZES:
        raise ValueError(f"unknown dtype {dtype!r} (known: {', '.join(DTYPE_SIZES)})")
    writer.string(dtype)


def read_dtype(reader: ByteReader, what: str) -> str:
    at = reader.offset
    dtype = reader.string(what)
    if dtype not in DTYPE_SIZES:
        raise reader.error(f"{what} {dtype!r} is not a known dtype", at)
    return dtype


def write_chip(writer: ByteWriter, chip: tuple[int, int]) -> None:
    x, y = chip
    writer.u32(x)
    writer.u32(y)


def write_blocks(writer: ByteWriter, blocks: list[tuple[int, bytes]]) -> None:
    writer.u32(len(blocks))
    for address, content in blocks:
        writer.u64(address)
        writer.u64(len(content))
        writer.raw(content)


def read_chip(reader: ByteReader) -> tuple[int, int]:
    return reader.u32("chip x"), reader.u32("chip y")


def read_blocks(reader: ByteReader, memory: str, limit: int | None) -> list[tuple[int, bytes]]:
    """Blocks sorted by address and disjoint; inside [0, limit) when a limit is given."""
    blocks = []
    previous_end = 0
    for _ in range(reader.count(f"{memory} block count", MIN_BLOCK)):
        at = reader.offset
        address = reader.u64(f"{memory} block address")
        size = reader.u64(f"{memory} block length")
        if address < previous_end:
            raise reader.error(
                f"{memory} block at 0x{address:x} starts before the previous block ends at "
                f"0x{previous_end:x} (blocks must be sorted and disjoint)",
                at,
            )
        if limit is not None and address + size > limit:
            raise reader.error(
                f"{memory} block 0x{address:x}..0x{address + size:x} lies outside the "
                f"{limit}-byte {memory}",
                at,
            )
        blocks.append((address, reader.raw(size, f"{memory} block content")))
        previous_end = address + size
    return blocks


# --- Attributes: a u32 count, then (name, TLV value) with names strictly increasing. ---


def write_attrs(writer: ByteWriter, attrs: Mapping[str, AttrValue]) -> None:
    writer.u32(len(attrs))
    for name in sorted(attrs):
        tag, payload = _attr_payload(name, attrs[name])
        writer.string(name)
        writer.u8(tag)
        writer.u32(len(payload))
        writer.raw(payload)


def _attr_payload(name: str, value: object) -> tuple[int, bytes]:
    if isinstance(value, (bool, np.bool_)):
        return TAG_BOOL, _U8.pack(1 if value else 0)
    if isinstance(value, (int, np.integer)):
        return TAG_INT, _I64.pack(int(value))
    if isinstance(value, (float, np.floating)):
        return TAG_FLOAT, _F64.pack(float(value))
    if isinstance(value, str):
        return TAG_STR, value.encode("utf-8")
    if isinstance(value, tuple):
        return _tuple_payload(name, value)
    raise TypeError(
        f"attribute {name!r}: cannot store a {type(value).__name__} "
        "(int, float, str, or a tuple of ints or of floats)"
    )


def _tuple_payload(name: str, value: tuple[object, ...]) -> tuple[int, bytes]:
    if not value:
        return TAG_EMPTY_TUPLE, b""
    ints = [int(v) for v in value if isinstance(v, (int, np.integer))]
    if len(ints) == len(value):
        return TAG_INT_TUPLE, struct.pack(f"<{len(ints)}q", *ints)
    floats = [float(v) for v in value if isinstance(v, (float, np.floating))]
    if len(floats) == len(value):
        return TAG_FLOAT_TUPLE, struct.pack(f"<{len(floats)}d", *floats)
    raise TypeError(
        f"attribute {name!r}: a tuple must hold only ints or only floats, got {value!r}"
    )


def read_attrs(reader: ByteReader, what: str) -> dict[str, AttrValue]:
    attrs: dict[str, AttrValue] = {}
    previous: str | None = None
    for _ in range(reader.count(f"{what} count", MIN_ATTR)):
        at = reader.offset
        name = reader.string(f"{what} name")
        if previous is not None and name <= previous:
            raise reader.error(f"{what} {name!r} after {previous!r}: names must increase", at)
        attrs[name] = _read_attr_value(reader, name)
        previous = name
    return attrs


def _read_attr_value(reader: ByteReader, name: str) -> AttrValue:
    at = reader.offset
    if reader.remaining < _TAG_LENGTH.size:  # checked here to name the attribute cheaply
        raise reader.error(
            f"attribute {name!r} tag and length need {_TAG_LENGTH.size} bytes but only "
            f"{reader.remaining} are left"
        )
    tag, size = reader.unpack(_TAG_LENGTH, "attribute tag and length")
    if size > reader.remaining:
        raise reader.error(
            f"attribute {name!r} value needs {size} bytes but only {reader.remaining} are left"
        )
    payload = reader.raw(size, "attribute value")
    decode = _ATTR_DECODERS.get(tag)
    if decode is None:
        raise reader.error(f"attribute {name!r} has unknown tag {tag}", at)
    value = decode(payload)
    if value is None:
        raise reader.error(
            f"attribute {name!r}: {len(payload)} bytes are not a tag-{tag} value", at
        )
    return value


def _decode_int(payload: bytes) -> int | None:
    return int(_I64.unpack(payload)[0]) if len(payload) == 8 else None


def _decode_float(payload: bytes) -> float | None:
    return float(_F64.unpack(payload)[0]) if len(payload) == 8 else None


def _decode_str(payload: bytes) -> str | None:
    try:
        return payload.decode("utf-8")
    except UnicodeDecodeError:
        return None


def _decode_int_tuple(payload: bytes) -> tuple[int, ...] | None:
    if not payload or len(payload) % 8:
        return None
    return tuple(struct.unpack(f"<{len(payload) // 8}q", payload))


def _decode_float_tuple(payload: bytes) -> tuple[float, ...] | None:
    if not payload or len(payload) % 8:
        return None
    return tuple(struct.unpack(f"<{len(payload) // 8}d", payload))


def _decode_empty_tuple(payload: bytes) -> tuple[()] | None:
    return () if not payload else None


def _decode_bool(payload: bytes) -> bool | None:
    return payload == b"\x01" if payload in (b"\x00", b"\x01") else None


_ATTR_DECODERS: dict[int, Callable[[bytes], AttrValue | None]] = {
    TAG_INT: _decode_int,
    TAG_FLOAT: _decode_float,
    TAG_STR: _decode_str,
    TAG_INT_TUPLE: _decode_int_tuple,
    TAG_FLOAT_TUPLE: _decode_float_tuple,
    TAG_EMPTY_TUPLE: _decode_empty_tuple,
    TAG_BOOL: _decode_bool,
}


# --- Kernels and their ports and parameters. ---


def write_kernel(writer: ByteWriter, kernel: Kernel) -> None:
    writer.string(kernel.opcode)
    writer.string(kernel.layer)
    writer.u32(kernel.slice_index)
    writer.u32(kernel.order)
    write_attrs(writer, kernel.attrs)
    writer.u32(len(kernel.inputs))
    for port in kernel.inputs:
        _write_input_port(writer, port)
    _write_output_port(writer, kernel.output)
    writer.u32(len(kernel.params))
    for param in kernel.params:
        _write_tensor_ref(writer, param)


def read_kernel(reader: ByteReader) -> Kernel:
    opcode = reader.string("opcode")
    layer = reader.string("layer name")
    slice_index = reader.u32("slice index")
    order = reader.u32("order")
    attrs = read_attrs(reader, "kernel attribute")
    inputs = tuple(
        _read_input_port(reader) for _ in range(reader.count("input count", MIN_INPUT_PORT))
    )
    output = _read_output_port(reader)
    params = tuple(
        _read_tensor_ref(reader) for _ in range(reader.count("parameter count", MIN_TENSOR_REF))
    )
    return Kernel(opcode, layer, slice_index, attrs, inputs, output, params, order)


def _write_input_port(writer: ByteWriter, port: InputPort) -> None:
    writer.u32(port.tensor_id)
    write_box(writer, port.box)
    write_dtype(writer, port.dtype)
    writer.u32(port.buffer_address)
    writer.u32(len(port.sources))
    for source in port.sources:
        writer.u32(source.key)
        writer.u32(source.mask)
        write_box(writer, source.box)


def _read_input_port(reader: ByteReader) -> InputPort:
    tensor_id = reader.u32("input tensor id")
    box = read_box(reader, "input box")
    dtype = read_dtype(reader, "input dtype")
    buffer_address = reader.u32("input buffer address")
    sources = []
    rank = len(box.start)
    for _ in range(reader.count("source count", MIN_SOURCE)):
        sources.append(_read_source(reader, rank))
    return InputPort(tensor_id, box, dtype, buffer_address, tuple(sources))


def _read_source(reader: ByteReader, rank: int) -> PortSource:
    """key u32, mask u32, then a box of the port's rank (the most frequent record: one read
    for the three u32 fields, one for the corners)."""
    key, mask, source_rank = reader.unpack(_SOURCE_HEAD, "source key, mask and box rank")
    at = reader.offset - 4
    if source_rank != rank:
        if source_rank * 16 > reader.remaining:
            raise reader.error(
                f"source box rank {source_rank} cannot fit in the {reader.remaining} bytes left "
                "(each record needs at least 16)",
                at,
            )
        raise reader.error(f"source box rank {source_rank} != port rank", at)
    corners = reader.i64s(2 * rank, "source box corners")
    start, stop = corners[:rank], corners[rank:]
    if any(map(operator.lt, stop, start)):
        raise reader.error(f"source box has stop < start: {start}..{stop}", at)
    return PortSource(key, mask, Box(start, stop))


def _write_output_port(writer: ByteWriter, port: OutputPort) -> None:
    writer.u32(port.tensor_id)
    write_box(writer, port.box)
    write_dtype(writer, port.dtype)
    writer.u32(port.buffer_address)
    writer.u32(port.key)
    writer.u32(port.mask)
    writer.u32(port.values_per_packet)


def _read_output_port(reader: ByteReader) -> OutputPort:
    tensor_id = reader.u32("output tensor id")
    box = read_box(reader, "output box")
    dtype = read_dtype(reader, "output dtype")
    buffer_address = reader.u32("output buffer address")
    key = reader.u32("output key")
    mask = reader.u32("output mask")
    at = reader.offset
    values_per_packet = reader.u32("values per packet")
    if values_per_packet == 0:
        raise reader.error("values per packet must be at least 1", at)
    return OutputPort(tensor_id, box, dtype, buffer_address, key, mask, values_per_packet)


def _write_tensor_ref(writer: ByteWriter, ref: TensorRef) -> None:
    writer.string(ref.role)
    write_dtype(writer, ref.dtype)
    write_shape(writer, ref.shape)
    if ref.memory not in MEMORY_CODES:
        raise ValueError(f"parameter {ref.role!r}: memory {ref.memory!r} is not sram or dram")
    writer.u8(MEMORY_CODES[ref.memory])
    writer.u64(ref.address)


def _read_tensor_ref(reader: ByteReader) -> TensorRef:
    role = reader.string("parameter role")
    dtype = read_dtype(reader, "parameter dtype")
    shape = read_shape(reader, "parameter shape")
    at = reader.offset
    code = reader.u8("parameter memory")
    if code == MEMORY_CODES["sram"]:
        return TensorRef(role, dtype, shape, "sram", reader.u64("parameter address"))
    if code == MEMORY_CODES["dram"]:
        return TensorRef(role, dtype, shape, "dram", reader.u64("parameter address"))
    raise reader.error(
        f"parameter {role!r}: memory code {code} is neither 0 (sram) nor 1 (dram)", at
    )
