"""Tests of the image writer and reader (backend/image.py, spec docs/image-format.md).

The container helpers below (`split`, `assemble`) are written from the spec, independently of the
code under test, so `test_container_matches_spec` checks the checksums and the layout the spec
states, and the fuzz tests can build images whose checksums are valid but whose payloads are not.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import re
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import backend.image as image_module
from backend.image import (
    FORMAT_MAJOR,
    MAGIC,
    SectionType,
    decode_image,
    encode_image,
    read_image,
    write_image,
)
from backend.program import (
    Box,
    ChipImage,
    InputPort,
    IOTensor,
    Kernel,
    OutputPort,
    PECoord,
    PEImage,
    PortSource,
    Program,
    RouterEntry,
    TensorRef,
)
from ir.errors import InputError, InternalError, S2CError

EVERY_ATTR_TYPE = {
    "int": -7,
    "big_int": 2**62,
    "float": 0.1,
    "str": "same ✓ padding",
    "ints": (1, -2, 3),
    "floats": (0.5, -1.25),
    "empty": (),
    "flag": True,
}


def make_kernel(layer: str, tensor_in: int, tensor_out: int, key_in: int, key_out: int) -> Kernel:
    box_in = Box((0, 0, 0, 0), (1, 3, 8, 8))
    box_out = Box((0, 0, 0, 0), (1, 4, 8, 8))
    port = InputPort(
        tensor_id=tensor_in,
        box=box_in,
        dtype="int8",
        buffer_address=0x1000,
        sources=(PortSource(key_in, 0xFFFF_0000, box_in),),
    )
    output = OutputPort(tensor_out, box_out, "int8", 0x2000, key_out, 0xFFFF_0000, 16)
    params = (
        TensorRef("weights", "int8", (4, 3, 3, 3), "sram", 0x3000),
        TensorRef("bias", "int32", (4,), "dram", 0x1_0000_0000),
        TensorRef("scalar", "float32", (), "sram", 0x3100),
    )
    return Kernel("conv2d", layer, 1, dict(EVERY_ATTR_TYPE), (port,), output, params, order=3)


def make_program() -> Program:
    """Two PEs on two chips, a kernel each, router tables, DRAM blocks and I/O."""
    pes = [
        PEImage(
            PECoord((0, 0), 4),
            [make_kernel("conv_1", 0, 1, 0x0001_0000, 0x0002_0000)],
            [(0x1000, b"\x01\x02\x03"), (0x3000, bytes(range(108)))],
        ),
        PEImage(PECoord((1, 0), 0), [make_kernel("conv_2", 1, 2, 0x0002_0000, 0x0003_0000)]),
    ]
    chips = [
        ChipImage(
            (0, 0),
            [
                RouterEntry(0x0001_0000, 0xFFFF_0000, frozenset(), frozenset({4})),
                RouterEntry(0x0002_0000, 0xFFFF_0000, frozenset({0, 5}), frozenset({7, 2})),
            ],
            [(0, b"dram"), (0x100, bytes(16))],
        ),
        ChipImage(
            (1, 0),
            [RouterEntry(0x0003_0000, 0xFFFF_0000, frozenset({3}), frozenset(), host=True)],
        ),
    ]
    image_input = IOTensor(
        name="image",
        tensor_id=0,
        shape=(1, 3, 8, 8),
        dtype="int8",
        boxes=(Box.full((1, 3, 8, 8)),),
        keys=((0x0001_0000, 0xFFFF_0000),),
        values_per_packet=16,
        quant=(0.0078125, -128),
    )
    image_output = IOTensor(
        name="logits",
        tensor_id=2,
        shape=(1, 4, 8, 8),
        dtype="int8",
        boxes=(Box((0, 0, 0, 0), (1, 2, 8, 8)), Box((0, 2, 0, 0), (1, 4, 8, 8))),
        keys=((0x0003_0000, 0xFFFF_0000), (0x0003_1000, 0xFFFF_F000)),
        values_per_packet=16,
    )
    return Program(
        mode="int8",
        machine={"name": "chip", "sram_bytes": 131072, "chips": (1, 2), "clock_hz": 150e6},
        host_chip=(0, 0),
        pes=pes,
        chips=chips,
        inputs=[image_input],
        outputs=[image_output],
        metadata={"model": "tiny.onnx", "s2c": "0.1.0"},
    )


def empty_program() -> Program:
    return Program("float", {}, (0, 0), [], [], [], [])


# --- Container helpers written from the spec ---

HEADER = struct.Struct("<8sHHIQII32s")
ENTRY = struct.Struct("<IIQQ")


def split(data: bytes) -> list[tuple[int, bytes]]:
    """The (type, payload) of each section, read from the section table."""
    count = HEADER.unpack_from(data)[5]
    sections = []
    for index in range(count):
        section_type, _, offset, length = ENTRY.unpack_from(data, 64 + 24 * index)
        sections.append((section_type, data[offset : offset + length]))
    return sections


def assemble(sections: list[tuple[int, bytes]], major: int = 1, minor: int = 0) -> bytes:
    """An image with valid CRC-32s and SHA-256 around the given payloads."""
    offset = 64 + 24 * len(sections)
    table = b""
    for section_type, payload in sections:
        table += ENTRY.pack(section_type, zlib.crc32(payload), offset, len(payload))
        offset += len(payload)
    body = table + b"".join(payload for _, payload in sections)
    header = HEADER.pack(MAGIC, major, minor, 0, offset, len(sections), 0, bytes(32))
    digest = hashlib.sha256(header + body).digest()
    return header[:32] + digest + body


def patched(data: bytes, old: bytes, new: bytes) -> bytes:
    """Replace every occurrence of `old` in the payloads and re-seal the checksums."""
    sections = split(data)
    assert any(old in payload for _, payload in sections)
    return assemble([(t, payload.replace(old, new)) for t, payload in sections])


def section_offset(data: bytes, index: int) -> int:
    return ENTRY.unpack_from(data, 64 + 24 * index)[2]


# --- Round trip and determinism ---


def test_round_trip_equals_the_program() -> None:
    program = make_program()
    assert decode_image(encode_image(program)) == program


def test_round_trip_keeps_attribute_types_exact() -> None:
    decoded = decode_image(encode_image(make_program()))
    attrs = decoded.pes[0].kernels[0].attrs
    for name, value in EVERY_ATTR_TYPE.items():
        assert type(attrs[name]) is type(value), name
        if isinstance(value, tuple):
            assert [type(v) for v in attrs[name]] == [type(v) for v in value], name  # type: ignore[union-attr]
    assert isinstance(decoded.machine["clock_hz"], float)


def test_round_trip_of_an_empty_program() -> None:
    assert decode_image(encode_image(empty_program())) == empty_program()


def test_encoding_is_deterministic_and_ignores_dict_order() -> None:
    program = make_program()
    reordered = make_program()
    reordered.metadata = dict(reversed(list(program.metadata.items())))
    reordered.machine = dict(reversed(list(program.machine.items())))
    assert encode_image(program) == encode_image(program) == encode_image(reordered)


def test_numpy_scalars_are_stored_as_python_numbers() -> None:
    program = empty_program()
    program.machine = {"n": np.int64(3), "x": np.float32(0.5), "t": (np.int32(1), np.int32(2))}  # type: ignore[dict-item]
    assert decode_image(encode_image(program)).machine == {"n": 3, "x": 0.5, "t": (1, 2)}


def test_container_matches_spec() -> None:
    data = encode_image(make_program())
    magic, major, minor, flags, total, count, reserved, _ = HEADER.unpack_from(data)
    assert (magic, major, minor, flags, reserved) == (MAGIC, 1, 0, 0, 0)
    assert total == len(data)
    types = [t for t, _ in split(data)]
    assert count == len(types) == 1 + 2 + 2 + 2 + 1 + 1
    assert types == [1, 2, 2, 3, 3, 4, 4, 5, 6]
    assert assemble(split(data)) == data


def test_the_example_in_the_spec_is_what_the_writer_writes() -> None:
    spec = (Path(__file__).parents[2] / "docs" / "image-format.md").read_text(encoding="utf-8")
    example = spec[spec.index("## Example") :]
    rows = re.findall(r"^[0-9a-f]{4}: ((?:[0-9a-f]{2} ?)+)", example, flags=re.MULTILINE)
    expected = bytes.fromhex("".join(rows))
    program = Program("float", {"sram_bytes": 131072}, (0, 0), [], [], [], [], {"k": "v"})
    assert encode_image(program) == expected


def test_write_and_read_a_file(tmp_path: Path) -> None:
    path = tmp_path / "model.bin"
    written = write_image(make_program(), path)
    assert written == path.stat().st_size
    assert read_image(path) == make_program()
    assert [p.name for p in tmp_path.iterdir()] == ["model.bin"]


# --- Corruption, truncation and version errors ---


def test_bad_magic() -> None:
    data = encode_image(make_program())
    with pytest.raises(InputError, match="not an s2c image: bad magic"):
        decode_image(b"PK\x03\x04" + data[4:])


def test_empty_file() -> None:
    with pytest.raises(InputError, match="empty"):
        decode_image(b"")


def test_unknown_major_version_names_both_versions() -> None:
    data = bytearray(encode_image(make_program()))
    struct.pack_into("<H", data, 8, 2)
    with pytest.raises(InputError, match=r"version 2\.0.*supports version 1\.x"):
        decode_image(bytes(data))


def test_newer_minor_version_is_read() -> None:
    program = make_program()
    data = assemble(split(encode_image(program)), minor=7)
    assert decode_image(data) == program


def test_unknown_section_type_is_skipped() -> None:
    program = make_program()
    sections = split(encode_image(program))
    sections.insert(3, (99, b"from a later minor version"))
    assert decode_image(assemble(sections)) == program


def test_payload_flip_names_the_section_and_offset() -> None:
    data = bytearray(encode_image(make_program()))
    offset = section_offset(data, 2)  # the second PE section
    data[offset + 20] ^= 0x10
    with pytest.raises(
        InputError, match=rf"corrupted: section PE#1 checksum mismatch at offset {offset:#x}"
    ):
        decode_image(bytes(data))


@pytest.mark.parametrize(("offset", "words"), [(12, "flags"), (28, "reserved"), (40, "SHA-256")])
def test_header_field_corruption(offset: int, words: str) -> None:
    data = bytearray(encode_image(make_program()))
    data[offset] ^= 1
    with pytest.raises(InputError, match=words):
        decode_image(bytes(data))


def test_section_table_flip_is_caught_by_the_digest() -> None:
    data = bytearray(encode_image(make_program()))
    data[64] ^= 0x7  # type of the first section: MACHINE (1) becomes METADATA (6)
    with pytest.raises(InputError, match="SHA-256"):
        decode_image(bytes(data))


def test_truncation_at_every_offset() -> None:
    data = encode_image(make_program())
    for size in range(1, len(data)):
        with pytest.raises(InputError, match="truncated") as caught:
            decode_image(data[:size])
        if size >= 64 + 24 * 9:  # past the section table: the cut section is named
            assert "section " in str(caught.value)


def test_truncation_names_the_cut_section() -> None:
    data = encode_image(make_program())
    cut = section_offset(data, 8) + 1  # one byte into METADATA
    with pytest.raises(InputError, match=rf"truncated at offset {cut:#x}: section METADATA"):
        decode_image(data[:cut])


def test_trailing_bytes() -> None:
    with pytest.raises(InputError, match="unexpected bytes after its end"):
        decode_image(encode_image(make_program()) + b"\0")


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_any_byte_flip_is_refused(data: st.DataObject) -> None:
    image = bytearray(encode_image(make_program()))
    position = data.draw(st.integers(0, len(image) - 1))
    image[position] ^= data.draw(st.integers(1, 255))
    with pytest.raises(InputError):
        decode_image(bytes(image))


# --- Hostile payloads with valid checksums: only InputError, never a crash ---


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_resealed_mutations_raise_input_error_or_decode(data: st.DataObject) -> None:
    sections = split(encode_image(make_program()))
    index = data.draw(st.integers(0, len(sections) - 1))
    section_type, payload = sections[index]
    mutated = bytearray(payload)
    for _ in range(data.draw(st.integers(1, 4))):
        if not mutated:
            break
        position = data.draw(st.integers(0, len(mutated) - 1))
        action = data.draw(st.sampled_from(["flip", "max", "cut", "insert"]))
        if action == "flip":
            mutated[position] ^= data.draw(st.integers(1, 255))
        elif action == "max":
            mutated[position : position + 4] = b"\xff\xff\xff\xff"
        elif action == "cut":
            del mutated[position:]
        else:
            mutated[position:position] = data.draw(st.binary(min_size=1, max_size=8))
    sections[index] = (section_type, bytes(mutated))
    try:
        decoded = decode_image(assemble(sections))
    except InputError:
        return
    assert isinstance(decoded, Program)


@settings(max_examples=200)
@given(st.binary(max_size=300))
def test_arbitrary_bytes_after_the_magic(tail: bytes) -> None:
    with pytest.raises(S2CError):
        decode_image(MAGIC + tail)


@given(st.binary(max_size=200), st.sampled_from(list(SectionType)))
def test_arbitrary_section_payloads(payload: bytes, section_type: SectionType) -> None:
    sections = [(t, p) for t, p in split(encode_image(empty_program())) if t != section_type]
    with contextlib.suppress(InputError):
        decode_image(assemble([*sections, (int(section_type), payload)]))


# --- Meaning checks ---


def test_huge_count_is_refused_before_allocating() -> None:
    program = make_program()
    program.pes[1].kernels = []
    # The second PE section starts: chip (1, 0), core 0, kernel count 0.
    old = struct.pack("<IIII", 1, 0, 0, 0)
    new = struct.pack("<IIII", 1, 0, 0, 2**32 - 1)
    with pytest.raises(InputError, match=r"PE#1 .*kernel count 4294967295 cannot fit"):
        decode_image(patched(encode_image(program), old, new))


def test_sram_block_outside_sram() -> None:
    program = make_program()
    program.pes[1].blocks = [(131070, b"abcd")]
    with pytest.raises(
        InputError, match=r"PE#1 at offset .*SRAM block 0x1fffe\.\.0x20002 lies outside"
    ):
        decode_image(encode_image(program))


def test_sram_size_comes_from_the_machine() -> None:
    program = make_program()
    program.machine["sram_bytes"] = 0x3000
    with pytest.raises(InputError, match="outside the 12288-byte SRAM"):
        decode_image(encode_image(program))


def test_overlapping_sram_blocks() -> None:
    program = make_program()
    program.pes[1].blocks = [(0x100, b"abcd"), (0x102, b"ef")]
    with pytest.raises(InputError, match="sorted and disjoint"):
        decode_image(encode_image(program))


def test_unsorted_dram_blocks() -> None:
    program = make_program()
    program.chips[1].dram_blocks = [(0x100, b"a"), (0x10, b"b")]
    with pytest.raises(InputError, match=r"DRAM#1 .*sorted and disjoint"):
        decode_image(encode_image(program))


def test_buffer_outside_sram() -> None:
    program = make_program()
    kernel = program.pes[0].kernels[0]
    moved = OutputPort(1, kernel.output.box, "int8", 131072 - 10, 0x0002_0000, 0xFFFF_0000, 16)
    program.pes[0].kernels[0] = Kernel(
        kernel.opcode, kernel.layer, kernel.slice_index, kernel.attrs, kernel.inputs, moved
    )
    with pytest.raises(InputError, match=r"'conv_1' slice 1: output buffer .* outside"):
        decode_image(encode_image(program))


@pytest.mark.parametrize(
    ("boxes", "covered"),
    [
        ((Box((0, 0, 0, 0), (1, 2, 8, 8)),), 128),  # channels 2..3 missing
        ((Box((0, 0, 0, 0), (1, 3, 8, 8)), Box((0, 2, 0, 0), (1, 3, 8, 8))), 256),  # overlap
        ((Box((0, 0, 0, 0), (1, 3, 8, 8)), Box((0, 1, 0, 0), (1, 2, 8, 8))), 256),  # sum matches
    ],
)
def test_output_parts_must_cover_the_tensor_exactly_once(boxes: tuple[Box, ...], covered: int):
    """Otherwise the host would assemble an output with uninitialised or doubled elements."""
    program = make_program()
    logits = program.outputs[0]
    keys = tuple((0x0003_0000 + 0x1000 * i, 0xFFFF_F000) for i in range(len(boxes)))
    program.outputs[0] = dataclasses.replace(logits, boxes=boxes, keys=keys)
    message = rf"output 'logits': its {len(boxes)} parts hold {covered} elements but do not cover"
    with pytest.raises(InputError, match=message):
        decode_image(encode_image(program))


def test_an_io_tensor_beyond_the_cap_is_refused_before_anything_is_allocated() -> None:
    program = make_program()
    huge = (1 << 20, 1 << 20, 1 << 20)  # 2^60 bytes of int8: far beyond MAX_IO_TENSOR_BYTES
    program.inputs[0] = dataclasses.replace(program.inputs[0], shape=huge, boxes=(Box.full(huge),))
    with pytest.raises(InputError, match=r"input 'image' of shape .* needs 1152921504606846976 "):
        decode_image(encode_image(program))
    program.inputs[0] = dataclasses.replace(
        program.inputs[0], shape=(image_module.MAX_IO_TENSOR_BYTES + 1,), dtype="int8"
    )
    with pytest.raises(InputError, match="more than the 268435456 an I/O tensor may hold"):
        decode_image(encode_image(program))


def test_box_with_stop_before_start() -> None:
    data = encode_image(make_program())
    old = struct.pack("<I4q4q", 4, 0, 0, 0, 0, 1, 3, 8, 8) + struct.pack("<I", 0x0001_0000)
    new = struct.pack("<I4q4q", 4, 0, 0, 9, 0, 1, 3, 8, 8) + struct.pack("<I", 0x0001_0000)
    with pytest.raises(InputError, match="stop < start"):
        decode_image(patched(data, old, new))


def test_unknown_dtype() -> None:
    data = encode_image(make_program())
    with pytest.raises(InputError, match="'float33' is not a known dtype"):
        decode_image(patched(data, b"float32", b"float33"))


def test_unknown_memory_code() -> None:
    data = encode_image(make_program())
    old = struct.pack("<BQ", 1, 0x1_0000_0000)
    with pytest.raises(InputError, match="memory code 2"):
        decode_image(patched(data, old, struct.pack("<BQ", 2, 0x1_0000_0000)))


def test_link_index_beyond_five() -> None:
    data = encode_image(make_program())
    old = struct.pack("<IIBB", 0x0003_0000, 0xFFFF_0000, 1 << 3, 1)
    new = struct.pack("<IIBB", 0x0003_0000, 0xFFFF_0000, 1 << 6, 1)
    with pytest.raises(InputError, match=r"beyond 0..5"):
        decode_image(patched(data, old, new))


def test_invalid_utf8() -> None:
    data = encode_image(make_program())
    with pytest.raises(InputError, match="metadata value is not valid UTF-8"):
        decode_image(patched(data, b"tiny.onnx", b"tiny\xff\xfenx"))


def test_unknown_attribute_tag() -> None:
    data = encode_image(make_program())
    old = struct.pack("<I", 4) + b"flag" + struct.pack("<BI", 7, 1)
    new = struct.pack("<I", 4) + b"flag" + struct.pack("<BI", 42, 1)
    with pytest.raises(InputError, match="'flag' has unknown tag 42"):
        decode_image(patched(data, old, new))


def test_metadata_keys_must_increase() -> None:
    def entry(text: str) -> bytes:
        return struct.pack("<I", len(text)) + text.encode()

    metadata = struct.pack("<I", 2) + entry("b") + entry("1") + entry("a") + entry("2")
    sections = [
        (t, p) for t, p in split(encode_image(empty_program())) if t != SectionType.METADATA
    ]
    with pytest.raises(InputError, match="'a' after 'b'"):
        decode_image(assemble([*sections, (SectionType.METADATA, metadata)]))


def test_trailing_bytes_in_a_section() -> None:
    sections = split(encode_image(make_program()))
    sections[-1] = (sections[-1][0], sections[-1][1] + b"\0")
    with pytest.raises(InputError, match=r"METADATA .*1 unexpected bytes"):
        decode_image(assemble(sections))


@pytest.mark.parametrize("missing", [SectionType.MACHINE, SectionType.IO, SectionType.METADATA])
def test_missing_section(missing: SectionType) -> None:
    sections = [(t, p) for t, p in split(encode_image(make_program())) if t != missing]
    with pytest.raises(InputError, match=f"exactly one {missing.name} section, found 0"):
        decode_image(assemble(sections))


def test_router_without_dram_section() -> None:
    sections = [(t, p) for t, p in split(encode_image(make_program()))]
    del sections[6]  # DRAM#1, chip (1, 0)
    with pytest.raises(InputError, match=r"ROUTER#1 .*chip \(1, 0\) has no DRAM section"):
        decode_image(assemble(sections))


def test_duplicate_pe() -> None:
    program = make_program()
    program.pes[1].pe = program.pes[0].pe
    with pytest.raises(InputError, match=r"PE#1 .*second image for chip \(0, 0\) core 4"):
        decode_image(encode_image(program))


# --- What the encoder refuses: a Program the format cannot hold is a compiler bug ---


@pytest.mark.parametrize(
    ("value", "words"),
    [([1, 2], "cannot store a list"), ((1, 2.0), "only ints or only floats"), (None, "NoneType")],
)
def test_encoder_refuses_unsupported_attributes(value: object, words: str) -> None:
    program = make_program()
    program.pes[0].kernels[0].attrs["bad"] = value  # type: ignore[assignment]
    with pytest.raises(InternalError, match=words):
        encode_image(program)


def test_encoder_refuses_a_key_beyond_32_bits() -> None:
    program = make_program()
    program.chips[0].router[0] = RouterEntry(2**32, 0, frozenset(), frozenset())
    with pytest.raises(InternalError, match="ROUTER#0"):
        encode_image(program)


def test_encoder_refuses_a_bad_link_and_an_unknown_dtype() -> None:
    program = make_program()
    program.chips[0].router[0] = RouterEntry(1, 1, frozenset({6}), frozenset())
    with pytest.raises(InternalError, match="link index 6"):
        encode_image(program)
    program = make_program()
    program.outputs[0] = IOTensor("y", 2, (1,), "bfloat16", (), (), 1)
    with pytest.raises(InternalError, match="unknown dtype 'bfloat16'"):
        encode_image(program)


# --- Atomic writing ---


def test_failed_encoding_writes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def fail(program: Program) -> bytes:
        raise InternalError("encoder failed")

    monkeypatch.setattr(image_module, "encode_image", fail)
    with pytest.raises(InternalError):
        write_image(make_program(), tmp_path / "model.bin")
    assert list(tmp_path.iterdir()) == []


def test_interrupted_write_removes_the_temporary_file_and_keeps_the_old_image(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "model.bin"
    write_image(empty_program(), path)
    old = path.read_bytes()

    def interrupt(fd: int) -> None:
        assert len(list(tmp_path.iterdir())) == 2  # the temporary file exists at this point
        raise KeyboardInterrupt

    monkeypatch.setattr(image_module.os, "fsync", interrupt)
    with pytest.raises(KeyboardInterrupt):
        write_image(make_program(), path)
    assert [p.name for p in tmp_path.iterdir()] == ["model.bin"]
    assert path.read_bytes() == old


def test_unwritable_path(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="cannot write image"):
        write_image(make_program(), tmp_path / "missing" / "model.bin")


def test_unreadable_path(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="cannot read image"):
        read_image(tmp_path / "missing.bin")


def test_version_constant_is_the_one_written() -> None:
    assert struct.unpack_from("<H", encode_image(empty_program()), 8)[0] == FORMAT_MAJOR
