"""Memory layout: where each kernel's descriptor, buffers and parameters live in its PE's SRAM.

A PE's SRAM is code (the bottom `code_bytes`), then the data region, with the stack at the top.
Kernels on a PE are laid out one after another in firing order, each as: descriptor, input
buffers (one per port), output buffer, parameters; every region starts on a 16-byte boundary
(the DMA alignment). `verify_layout` checks that regions of a PE are inside the data region and
do not overlap: the allocation verifier run after planning.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from backend.partition import DESCRIPTOR_BYTES, PARAM_BYTES, PORT_BYTES, align
from ir.errors import InternalError, ResourceError


@dataclass
class Region:
    """A named block of a PE's SRAM: [address, address + size)."""

    name: str
    address: int
    size: int


@dataclass
class PELayout:
    """Allocator for one PE's data region."""

    base: int
    limit: int
    cursor: int = 0
    regions: list[Region] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.cursor = self.base

    def allocate(self, name: str, size: int) -> int:
        address = self.cursor
        self.cursor = address + align(max(size, 1))
        if self.cursor > self.limit:
            raise ResourceError(
                f"SRAM of a PE overflows at {name}: needs {self.cursor - self.base} bytes, "
                f"data region holds {self.limit - self.base}"
            )
        self.regions.append(Region(name, address, size))
        return address


def descriptor_size(ports: int, sources: int, params: int) -> int:
    """Bytes reserved for a kernel descriptor (matches the partitioner's estimate)."""
    return DESCRIPTOR_BYTES + PORT_BYTES * ports + 0 * sources + PARAM_BYTES * params


def verify_layout(regions: list[Region], base: int, limit: int, where: str) -> None:
    """Every region inside [base, limit), 16-byte aligned, and no two overlapping."""
    ordered = sorted(regions, key=lambda r: r.address)
    previous_end = base
    for region in ordered:
        if region.address % 16:
            raise InternalError(f"{where}: region {region.name} at {region.address:#x} unaligned")
        if region.address < previous_end:
            raise InternalError(f"{where}: region {region.name} at {region.address:#x} overlaps")
        previous_end = region.address + region.size
        if previous_end > limit:
            raise InternalError(f"{where}: region {region.name} ends past {limit:#x}")
