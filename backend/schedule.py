"""Firing schedule: which kernels the interpreter fires together, and in what order.

PEs that run identical kernels (same layer, opcode, attributes, buffer shapes and parameter
bytes; typically the row slices of one channel chunk) fire as one group: their input buffers are
stacked along the samples axis and the kernel computes once, which is exact because every kernel
treats samples independently. Groups are ordered by Kahn's algorithm over the producer ->
consumer relation of their members (ties by the first member's firing order), so every kernel
fires after all the kernels whose packets it reads.
"""

from __future__ import annotations

import hashlib
import heapq
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from backend.program import Kernel
from ir.errors import InternalError

# Kernels whose result depends on where their boxes lie, not only on their buffers: `whole`
# crops its output box from the whole result, `reshape` maps positions through both shapes.
POSITIONAL = frozenset({"whole", "reshape"})


@dataclass(frozen=True)
class FiringGroup:
    """Kernel indices that fire together (identical descriptors and parameters)."""

    members: tuple[int, ...]


def _group_key(kernel: Kernel, params: dict[str, np.ndarray]) -> tuple:
    digest = hashlib.blake2b(digest_size=16)
    for role in sorted(params):
        digest.update(role.encode())
        digest.update(str(params[role].shape).encode())
        digest.update(np.ascontiguousarray(params[role]).tobytes())
    ports = tuple((p.box.shape, p.dtype) for p in kernel.inputs)
    attrs = repr(sorted(kernel.attrs.items()))
    where: tuple = ()
    if kernel.opcode in POSITIONAL:
        where = (kernel.output.box.start, tuple(p.box.start for p in kernel.inputs))
    return (
        kernel.layer,
        kernel.opcode,
        attrs,
        ports,
        kernel.output.box.shape,
        kernel.output.dtype,
        digest.digest(),
        where,
    )


def firing_schedule(
    kernels: Sequence[Kernel], params: Sequence[dict[str, np.ndarray]]
) -> list[FiringGroup]:
    """Groups of identical kernels in an order that respects every producer -> consumer edge."""
    members: dict[tuple, list[int]] = {}
    for index, (kernel, kernel_params) in enumerate(zip(kernels, params)):
        members.setdefault(_group_key(kernel, kernel_params), []).append(index)
    groups = [tuple(m) for m in members.values()]
    group_of = {index: g for g, group in enumerate(groups) for index in group}
    producer = {kernel.output.key: index for index, kernel in enumerate(kernels)}
    successors: list[set[int]] = [set() for _ in groups]
    waiting = [0] * len(groups)
    for g, group in enumerate(groups):
        needs = {
            group_of[producer[source.key]]
            for index in group
            for port in kernels[index].inputs
            for source in port.sources
            if source.key in producer
        }
        needs.discard(g)
        waiting[g] = len(needs)
        for need in needs:
            successors[need].add(g)
    return _kahn(groups, successors, waiting, kernels)


def _kahn(groups, successors, waiting, kernels) -> list[FiringGroup]:
    first = [min(kernels[i].order for i in group) for group in groups]
    ready = [(first[g], g) for g in range(len(groups)) if waiting[g] == 0]
    heapq.heapify(ready)
    order: list[FiringGroup] = []
    while ready:
        _, g = heapq.heappop(ready)
        order.append(FiringGroup(groups[g]))
        for successor in sorted(successors[g]):
            waiting[successor] -= 1
            if waiting[successor] == 0:
                heapq.heappush(ready, (first[successor], successor))
    if len(order) != len(groups):
        raise InternalError("kernel groups depend on each other in a cycle")
    return order
