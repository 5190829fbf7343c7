"""First capacity checks, before partitioning: every tensor must fit the whole machine's SRAM,
and every graph input and output must fit the image's limit for I/O tensors.

Each layer's result lives in the output buffers of its slices, each slice in one PE's SRAM data
region, so a result larger than the data regions of all the machine's PEs together can never be
placed, whatever the partition. Checking that first turns an absurd shape (a dimension of 2^40
from a broken export) into a ResourceError that names the tensor, the bytes it needs, the bytes
the machine has and a machine that would hold it, instead of a partitioner working through
billions of rows.
"""

from __future__ import annotations

import math

import numpy as np

from backend.hardware import MAX_BOARDS, Machine, machine_from_name
from backend.image import MAX_IO_TENSOR_BYTES
from backend.place import suggest_machine
from backend.topology import BOARD_CHIPS
from ir.errors import ResourceError
from ir.graph import Graph


def check_io_fits(graph: Graph) -> None:
    """Raise ResourceError for a graph input or output larger than an image may carry.

    The image reader refuses I/O tensors over `MAX_IO_TENSOR_BYTES` per inference (it bounds
    what a run allocates), so the compiler refuses them first, with the name and the bytes.
    """
    for kind, values in (("input", graph.inputs), ("output", graph.outputs)):
        for value in values:
            needed = _nbytes(value.type.shape, value.type.dtype)
            if needed > MAX_IO_TENSOR_BYTES:
                raise ResourceError(
                    f"graph {kind} '{value.name}' of shape {value.type.shape} "
                    f"({value.type.dtype}) needs {needed} bytes per inference; an image carries "
                    f"inputs and outputs of up to {MAX_IO_TENSOR_BYTES} bytes each"
                )


def check_results_fit(graph: Graph, machine: Machine | None) -> None:
    """Raise ResourceError for the largest node result that exceeds the machine's SRAM.

    Args:
        graph: the graph after the passes, as the partitioner receives it.
        machine: the target; None for `--machine auto` (then the largest preset is the limit).
    """
    spec = (machine or machine_from_name("chip")).chip_spec
    chips = machine.chip_count if machine is not None else MAX_BOARDS * len(BOARD_CHIPS)
    pes = chips * spec.usable_core_count
    capacity = pes * spec.data_bytes
    results = [(_nbytes(v.type.shape, v.type.dtype), n, v) for n in graph.nodes for v in n.outputs]
    largest = max(results, key=lambda item: item[0], default=None)
    if largest is None or largest[0] <= capacity:
        return
    needed, node, value = largest
    name = f"machine '{machine.name}'" if machine else f"the largest machine, {MAX_BOARDS} boards,"
    message = (
        f"'{node.name}' ({node.op}) result '{value.name}' of shape {value.type.shape} "
        f"({value.type.dtype}) needs {needed} bytes of SRAM; {name} has {capacity} bytes "
        f"({pes} PEs x {spec.data_bytes} bytes of data each)"
    )
    suggestion = suggest_machine(math.ceil(needed / spec.data_bytes), spec.usable_core_count)
    if suggestion is None or machine is None:
        raise ResourceError(f"{message}; no machine of up to {MAX_BOARDS} boards is large enough")
    raise ResourceError(f"{message}; use a bigger machine, e.g. --machine {suggestion}")


def _nbytes(shape: tuple[int, ...], dtype: str) -> int:
    return math.prod(shape) * np.dtype(dtype).itemsize
