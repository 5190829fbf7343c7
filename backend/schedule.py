"""Firing schedule: which kernels the interpreter fires together, and in what order.

PEs that run identical kernels (same layer, opcode, attributes, buffer shapes and parameter
bytes; typically the row slices of one channel chunk) fire as one group: their input buffers are
stacked along the samples axis and the kernel computes once, which is exact because every kernel
treats samples independently. Groups are ordered by Kahn's algorithm over the producer ->
consumer relation of their members (ties by the first member's firing order), so every kernel
fires after all the kernels whose packets it reads.

Groups of one layer that differ only in their parameters (the output-channel and input-channel
chunks of a float conv or dense layer, each with its own weights) fire together too when they
have equally many members: the group then holds `units` blocks of equal length, members of a
block share parameters, and the kernel computes all blocks in one batched matrix product with
the blocks' parameters stacked (`PreparedKernel.call_stacked`). A layer's slices never read one
another, so merging them keeps the order acyclic. When every block reads the same input boxes
from the same senders (the output-channel chunks of a layer), the group is `shared`: the input
is filled and laid out once and the blocks' weights act as one wider layer
(`PreparedKernel.call_shared`). A conv layer sliced both ways (input-channel chunks x
output-channel chunks) shares by input class: its blocks are ordered so that each run of
`sharing` consecutive blocks reads the same inputs; each class's input is filled and laid out
once, and its blocks' weights act as one wider layer on it. An event-based dense kernel is not
merged this way: it fires alone, processing only the synaptic rows of the inputs that arrived.

Kernels of different layers merge the same ways when they lie at the same depth (the longest
chain of groups from the host's inputs to them): no path joins two groups of one depth, since
every step of a path goes one depth deeper, so a merged group reads none of its own results
and the order stays acyclic. The three projections of an attention layer, which read one input,
then fire as one wider dense layer, and their head splits as one reshape and one transpose.
Conv and recurrent layers merge only within their layer.
"""

from __future__ import annotations

import hashlib
import heapq
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from backend.program import Kernel
from backend.recurrent import RECURRENT_OPCODES
from ir.errors import InternalError

# Kernels whose result depends on where their boxes lie, not only on their buffers: `whole`
# crops its output box from the whole result, `reshape` maps positions through both shapes.
POSITIONAL = frozenset({"whole", "reshape"})
# Kernels that can compute several parameter sets in one batched product (float only).
STACKABLE = frozenset({"conv", "dense"})


@dataclass(frozen=True)
class FiringGroup:
    """Kernel indices that fire together: `units` equal blocks, each of identical kernels.

    Members of one block have identical descriptors and parameters; blocks differ only in their
    parameters (`units` is 1 for a group of identical kernels).
    """

    members: tuple[int, ...]
    units: int = 1
    sharing: int = 1  # each run of `sharing` consecutive blocks reads the same inputs

    @property
    def shared(self) -> bool:
        """Whether blocks share inputs (and fire as wider layers, one per input class)."""
        return self.sharing > 1

    @property
    def block_size(self) -> int:
        return len(self.members) // self.units

    def unit_firsts(self) -> tuple[int, ...]:
        """The first member of each block (whose parameters the block shares)."""
        return self.members[:: self.block_size]

    def readers(self) -> tuple[int, ...]:
        """The members whose buffers are filled: the first block of each input class."""
        size = self.block_size
        step = size * self.sharing
        return tuple(
            m
            for start in range(0, len(self.members), step)
            for m in self.members[start : start + size]
        )

    def read_position(self, position: int) -> int:
        """Where, among `readers()`, the buffers that the member at `position` reads are."""
        size = self.block_size
        return position // (size * self.sharing) * size + position % size


def _group_key(kernel: Kernel, params: dict[str, np.ndarray]) -> tuple:
    if kernel.opcode in RECURRENT_OPCODES:  # a recurrent layer's slices step together
        return ("recurrent", kernel.layer)
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
        where,
        tuple((role, params[role].shape) for role in sorted(params)),
        digest.digest(),
    )


def _stackable(kernel: Kernel) -> bool:
    """Float conv/dense; not an event-based dense kernel, which processes only the synaptic
    rows of the inputs that arrived (`backend.kernels.arrived_rows`)."""
    events = kernel.opcode == "dense" and "event_input_zeros" in kernel.attrs
    return kernel.opcode in STACKABLE and not kernel.attrs.get("int8") and not events


def _merge_blocks(blocks: list[tuple[int, ...]], keys: list[tuple], kernels) -> list[FiringGroup]:
    """Blocks whose keys differ only in the parameter digest, of equal length, fire together."""
    merged: dict[tuple, list[tuple[int, ...]]] = {}
    groups: list[FiringGroup] = []
    for block, key in zip(blocks, keys):
        if not _stackable(kernels[block[0]]):
            groups.append(FiringGroup(block))
            continue
        merged.setdefault((key[:-1], len(block)), []).append(block)
    for same in merged.values():
        ordered, sharing = _input_classes(same, kernels)
        members = tuple(index for block in ordered for index in block)
        groups.append(FiringGroup(members, len(same), sharing))
    return groups


def _reads(block: tuple[int, ...], kernels) -> tuple:
    """What a block's members read: the box, type and senders of each input port."""
    return tuple(
        (port.box, port.dtype, port.sources) for index in block for port in kernels[index].inputs
    )


def _input_classes(blocks: list[tuple[int, ...]], kernels) -> tuple[list[tuple[int, ...]], int]:
    """The blocks ordered by what they read (first appearance first), and the run length of
    blocks that read the same inputs: all of them, an equal number per class (group-1 conv), or 1.
    """
    classes: dict[tuple, list[tuple[int, ...]]] = {}
    for block in blocks:
        classes.setdefault(_reads(block, kernels), []).append(block)
    sizes = {len(members) for members in classes.values()}
    if len(blocks) < 2 or len(sizes) != 1 or kernels[blocks[0][0]].attrs.get("group", 1) != 1:
        return blocks, 1
    if len(classes) > 1 and kernels[blocks[0][0]].opcode != "conv":
        return blocks, 1
    return [block for members in classes.values() for block in members], sizes.pop()


def _depths(blocks: list[tuple[int, ...]], kernels: Sequence[Kernel]) -> list[int]:
    """Each block's depth: 0 when it reads only the host's inputs, else one more than the
    deepest other block it reads from (depth-first, without recursion)."""
    block_of = {kernels[i].output.key: b for b, block in enumerate(blocks) for i in block}
    reads = [
        {
            block_of[source.key]
            for index in block
            for port in kernels[index].inputs
            for source in port.sources
            if source.key in block_of
        }
        - {b}
        for b, block in enumerate(blocks)
    ]
    depths: dict[int, int] = {}
    for start in range(len(blocks)):
        stack = [start]
        while stack:
            b = stack[-1]
            if b in depths:
                stack.pop()
                continue
            pending = [r for r in reads[b] if r not in depths]
            if pending:
                stack.extend(pending)
                continue
            depths[b] = 1 + max((depths[r] for r in reads[b]), default=-1)
            stack.pop()
    return [depths[b] for b in range(len(blocks))]


def _across_layers(
    blocks: list[tuple[int, ...]], keys: list[tuple], kernels: Sequence[Kernel]
) -> tuple[list[tuple[int, ...]], list[tuple]]:
    """Blocks keyed by depth instead of layer (conv and recurrent blocks and layer plans keep
    their own key), identical blocks of one depth joined into one."""
    depths = _depths(blocks, kernels)
    joined: dict[tuple, tuple[int, ...]] = {}
    for block, key, depth in zip(blocks, keys, depths):
        own_layer = kernels[block[0]].opcode == "conv" or key[0] in ("recurrent", "plan")
        new_key = key if own_layer else (("depth", depth), *key[1:])
        joined[new_key] = joined.get(new_key, ()) + block
    return list(joined.values()), list(joined)


def firing_schedule(
    kernels: Sequence[Kernel],
    params: Sequence[dict[str, np.ndarray]],
    joined: Sequence[tuple[int, ...]] = (),
) -> list[FiringGroup]:
    """Firing groups in an order that respects every producer -> consumer edge. Each of
    `joined` (the kernels of a layer plan, `backend.layer_plans`) fires as one group."""
    planned = {index for group in joined for index in group}
    members: dict[tuple, list[int]] = {}
    for index, (kernel, kernel_params) in enumerate(zip(kernels, params)):
        if index not in planned:
            members.setdefault(_group_key(kernel, kernel_params), []).append(index)
    plans = [("plan", number) for number in range(len(joined))]
    blocks, keys = _across_layers(
        [tuple(m) for m in members.values()] + [tuple(group) for group in joined],
        list(members) + plans,
        kernels,
    )
    kernel_blocks = [(b, k) for b, k in zip(blocks, keys) if k[0] != "plan"]
    firing = _merge_blocks([b for b, _ in kernel_blocks], [k for _, k in kernel_blocks], kernels)
    firing += [FiringGroup(b) for b, k in zip(blocks, keys) if k[0] == "plan"]
    groups = [group.members for group in firing]
    units = [(group.units, group.sharing) for group in firing]
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
    return _kahn(groups, units, successors, waiting, kernels)


def _kahn(groups, units, successors, waiting, kernels) -> list[FiringGroup]:
    first = [min(kernels[i].order for i in group) for group in groups]
    ready = [(first[g], g) for g in range(len(groups)) if waiting[g] == 0]
    heapq.heapify(ready)
    order: list[FiringGroup] = []
    while ready:
        _, g = heapq.heappop(ready)
        order.append(FiringGroup(groups[g], *units[g]))
        for successor in sorted(successors[g]):
            waiting[successor] -= 1
            if waiting[successor] == 0:
                heapq.heappush(ready, (first[successor], successor))
    if len(order) != len(groups):
        raise InternalError("kernel groups depend on each other in a cycle")
    return order
