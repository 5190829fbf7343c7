"""Keep freed large blocks for reuse instead of returning them to the OS (glibc only).

glibc serves a block above its mmap threshold (128 KiB at first, raised towards 32 MiB as such
blocks are freed) with a fresh mapping and unmaps it on free; every page of the next block of
that size then faults in again. An interpreter run allocates and frees the same few hundred
large buffers every time (column matrices, products, padded inputs): on ResNet-50 some 7,000
page faults and a tenth of the run in the kernel. With the threshold at its maximum and the
trim threshold above it, freed blocks stay in the heap and the next run reuses them; the
process keeps its peak heap instead of shrinking after each run.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import sys

M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD_MAX = 32 << 20  # glibc's ceiling on 64-bit (DEFAULT_MMAP_THRESHOLD_MAX)


@functools.cache
def keep_freed_blocks() -> bool:
    """Set glibc's mmap and trim thresholds once per process; False where there is no glibc."""
    if not sys.platform.startswith("linux"):
        return False
    name = ctypes.util.find_library("c")
    try:
        libc = ctypes.CDLL(name or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes = (ctypes.c_int, ctypes.c_int)
    mallopt.restype = ctypes.c_int
    trimmed = mallopt(M_TRIM_THRESHOLD, 2 * MMAP_THRESHOLD_MAX)
    mapped = mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD_MAX)
    return bool(trimmed and mapped)
