"""The placed program: plain data that the image writer serialises and the image reader rebuilds.

This is the contract between the compile stages (partition, place, route, layout) and the image. The
interpreter works only on a `Program` that `backend.image.read_image` rebuilt from bytes, never
on one the compiler made, so everything execution needs is a field here and a field in the image.

Vocabulary:
- A logical tensor (an IR value) has an id (`tensor_id`) and a shape that includes the batch axis.
- A `Box` is a half-open hyper-rectangle of a logical tensor: `start[d] <= i[d] < stop[d]`.
  Data in a buffer that holds a box is laid out row-major (C order) over the box.
- A `Kernel` runs on one PE. It computes its output box from its input boxes, then sends the output
  box as multicast packets with keys `output.key + packet_index` (`values_per_packet` values each,
  the last packet padded).
- An `InputPort` of a kernel holds one box of one tensor in an SRAM buffer. Each `PortSource` is a
  producer whose packets (key & mask == source.key) the port accepts; the payload is decoded as the
  producer's box and the part that falls inside the port's box is written into the buffer.
- Router tables are per chip; an entry matches when `packet_key & mask == key`; its route is a
  set of chip links plus a set of local PEs (plus the host, on the chip that talks to the host).
"""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

AttrValue = int | float | str | tuple[int, ...] | tuple[float, ...]
Memory = Literal["sram", "dram"]

LINK_NAMES: tuple[str, ...] = ("E", "NE", "N", "W", "SW", "S")


@dataclass(frozen=True)
class Box:
    """A half-open box of a tensor: `start[d] <= index[d] < stop[d]` for every axis d."""

    start: tuple[int, ...]
    stop: tuple[int, ...]

    def __post_init__(self) -> None:
        if len(self.start) != len(self.stop):
            raise ValueError(f"box rank mismatch: {self.start} vs {self.stop}")
        if any(map(operator.lt, self.stop, self.start)):
            raise ValueError(f"box with negative extent: {self.start}..{self.stop}")

    @staticmethod
    def full(shape: tuple[int, ...]) -> Box:
        return Box(tuple(0 for _ in shape), tuple(shape))

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(b - a for a, b in zip(self.start, self.stop))

    @property
    def size(self) -> int:
        return math.prod(map(operator.sub, self.stop, self.start))

    def intersect(self, other: Box) -> Box | None:
        """The common part of two boxes of the same tensor, or None when they do not overlap."""
        start, stop = [], []
        for a0, a1, b0, b1 in zip(self.start, self.stop, other.start, other.stop):
            low, high = max(a0, b0), min(a1, b1)
            if high <= low:
                return None
            start.append(low)
            stop.append(high)
        return Box(tuple(start), tuple(stop))

    def relative_to(self, outer: Box) -> tuple[slice, ...]:
        """Index expression selecting this box inside an array that holds `outer`."""
        return tuple(slice(a - o, b - o) for a, b, o in zip(self.start, self.stop, outer.start))


@dataclass(frozen=True)
class TensorRef:
    """A typed array a kernel reads (weights, bias, ...) at an address in SRAM or DRAM."""

    role: str
    dtype: str
    shape: tuple[int, ...]
    memory: Memory
    address: int

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * np.dtype(self.dtype).itemsize


@dataclass(frozen=True)
class PortSource:
    """A producer whose packets an input port accepts: its key range and the box it sends."""

    key: int
    mask: int
    box: Box


@dataclass(frozen=True)
class InputPort:
    """One input of a kernel: the box of `tensor_id` it needs, where it lives and who sends it."""

    tensor_id: int
    box: Box
    dtype: str
    buffer_address: int
    sources: tuple[PortSource, ...]


@dataclass(frozen=True)
class OutputPort:
    """The output of a kernel: its box of `tensor_id`, its key range and its packet format."""

    tensor_id: int
    box: Box
    dtype: str
    buffer_address: int
    key: int
    mask: int
    values_per_packet: int

    @property
    def packet_count(self) -> int:
        return -(-self.box.size // self.values_per_packet)


@dataclass(frozen=True)
class Kernel:
    """One slice of one layer, as it runs on one PE."""

    opcode: str
    layer: str
    slice_index: int
    attrs: dict[str, Any]  # values: int, float, str, tuple of int or float
    inputs: tuple[InputPort, ...]
    output: OutputPort
    params: tuple[TensorRef, ...] = ()
    # Order of firing within the PE and within the whole program (a topological order of kernels).
    order: int = 0


@dataclass(frozen=True)
class PECoord:
    """A processing element: chip (x, y) and core index within the chip's core map."""

    chip: tuple[int, int]
    core: int


@dataclass
class PEImage:
    """Everything stored in one PE's SRAM data region."""

    pe: PECoord
    kernels: list[Kernel]
    # Initial SRAM content of the data region: (address, bytes) blocks, non-overlapping, sorted.
    blocks: list[tuple[int, bytes]] = field(default_factory=list)


@dataclass(frozen=True)
class RouterEntry:
    """A multicast router entry: packets with `key & mask == self.key` go to `links` and `pes`."""

    key: int
    mask: int
    links: frozenset[int]  # indices into LINK_NAMES
    pes: frozenset[int]  # core indices on this chip
    host: bool = False  # deliver to the host (only on the chip connected to the host)


@dataclass
class ChipImage:
    """A chip's router table and DRAM content."""

    chip: tuple[int, int]
    router: list[RouterEntry]
    dram_blocks: list[tuple[int, bytes]] = field(default_factory=list)


@dataclass(frozen=True)
class IOTensor:
    """A graph input or output as the host sees it.

    Inputs: the host sends `boxes[i]` of the tensor as packets with key range `keys[i]` (key, mask)
    into `host_chip`. Outputs: the host receives packets of those key ranges and assembles the
    boxes.
    """

    name: str
    tensor_id: int
    shape: tuple[int, ...]
    dtype: str
    boxes: tuple[Box, ...]
    keys: tuple[tuple[int, int], ...]
    values_per_packet: int
    # Quantisation as the host must apply it: (scale, zero_point) per tensor, or None for float.
    quant: tuple[float, int] | None = None


@dataclass
class Program:
    """A whole compiled model: machine, PEs, routers, I/O and metadata."""

    mode: str
    machine: dict[str, AttrValue]  # the machine description (see backend.hardware.Machine.describe)
    host_chip: tuple[int, int]
    pes: list[PEImage]
    chips: list[ChipImage]
    inputs: list[IOTensor]
    outputs: list[IOTensor]
    metadata: dict[str, str] = field(default_factory=dict)
