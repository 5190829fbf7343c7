"""Partition: cut every layer into slices that each fit one PE's SRAM data budget.

For a layer, a slice is a box of its output. The partitioner searches split counts along the
op's splittable output axes (`slicing.split_axes`: output channels, then rows, ...) and, for conv
and dense layers whose smallest slice still does not fit, along input channels: each such slice
computes a partial sum, and one `partial_sum` slice per output box adds the parts, the bias and the
activation. Among the split counts whose every slice fits, the one with the fewest slices wins
(ties: fewer cuts on the later axis, so slices keep whole rows).

A slice's SRAM need is its kernel descriptor, its input buffers (one box per input port), its
output buffer and its parameters, each rounded up to the 16-byte DMA alignment.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

import numpy as np

from backend.program import Box
from backend.recurrent import RECURRENT_OPCODES
from backend.slicing import Layer, SliceSpec, partial_sum_slice, slice_layer, split_axes
from ir.errors import ResourceError, UnsupportedError
from ir.graph import Graph, Node, Value
from passes.ann_to_snn import SpikingLayer

ALIGNMENT = 16
DESCRIPTOR_BYTES = 96
PORT_BYTES = 48
SOURCE_BYTES = 24
PARAM_BYTES = 32
MAX_PARTS = 4096
POSITIONAL_OPS = frozenset({"reshape", "permute"})  # slices read their sources' bounding box


def align(size: int) -> int:
    return -(-size // ALIGNMENT) * ALIGNMENT


@dataclass
class TensorInfo:
    """A logical tensor the slices exchange: an IR value, or one part of a partial sum."""

    id: int
    name: str
    shape: tuple[int, ...]
    dtype: str
    quant: tuple[float, int] | None = None  # per-tensor (scale, zero point) of int8 tensors


@dataclass
class Slice:
    """One slice: what it computes and which tensors it reads and writes."""

    index: int
    layer: str
    layer_index: int
    spec: SliceSpec
    output: int
    inputs: list[int]
    sram_bytes: int


@dataclass
class Partition:
    """All slices of a graph, in topological order, and the tensors between them."""

    tensors: dict[int, TensorInfo] = field(default_factory=dict)
    slices: list[Slice] = field(default_factory=list)
    graph_inputs: list[tuple[str, int]] = field(default_factory=list)
    graph_outputs: list[tuple[str, int]] = field(default_factory=list)
    layer_names: list[str] = field(default_factory=list)

    def producers(self) -> dict[int, list[int]]:
        result: dict[int, list[int]] = {}
        for s in self.slices:
            result.setdefault(s.output, []).append(s.index)
        return result


def slice_bytes(spec: SliceSpec, in_dtypes: list[str], out_dtype: str) -> int:
    """SRAM bytes one slice needs: descriptor, input buffers, output buffer, parameters."""
    total = DESCRIPTOR_BYTES
    for (_, box), dtype in zip(spec.inputs, in_dtypes):
        total += PORT_BYTES + align(box.size * np.dtype(dtype).itemsize)
    total += align(spec.out_box.size * np.dtype(out_dtype).itemsize)
    for _, array in spec.params:
        total += PARAM_BYTES + align(array.nbytes)
    return total


# -- search ---------------------------------------------------------------------------------------
def _chunk_count(extent: int, granule: int, count: int) -> int:
    """How many chunks `_chunks(extent, granule, count)` gives (at most `count`)."""
    granules = -(-extent // granule)
    per = -(-granules // count)
    return -(-granules // per)


def _chunk(extent: int, granule: int, count: int, index: int) -> tuple[int, int]:
    """Chunk `index` of `_chunks(extent, granule, count)`, computed alone."""
    granules = -(-extent // granule)
    per = -(-granules // count)
    start, stop = index * per, min((index + 1) * per, granules)
    return start * granule, min(stop * granule, extent)


@functools.lru_cache(maxsize=65536)
def _chunks(extent: int, granule: int, count: int) -> list[tuple[int, int]]:
    """`count` near-equal ranges of [0, extent), cut at multiples of `granule`."""
    chunks = _chunk_count(extent, granule, count)
    return [_chunk(extent, granule, count, index) for index in range(chunks)]


def _count_options(extent: int, granule: int) -> list[int]:
    """Split counts giving distinct chunk sizes, smallest first.

    The counts are ceil(g / per) = floor((g - 1) / per) + 1 for chunk sizes per = 1..g (g
    granules). floor(n / per) takes O(sqrt(n)) distinct values, each on a run of consecutive
    `per` ending at n // (n // per), so the runs are enumerated instead of every `per`: a
    layer of 2^30 rows costs microseconds, not a loop of 2^30 steps.
    """
    last = -(-extent // granule) - 1
    counts = {1}
    per = 1
    while per <= last:
        quotient = last // per
        counts.add(quotient + 1)
        per = last // quotient + 1
    return sorted(counts)


@dataclass(frozen=True)
class Plan:
    """Split counts for a layer: per split axis, and input-channel parts (1 = no partial sums)."""

    counts: tuple[int, ...]
    parts: int

    def slice_count(self, boxes: int) -> int:
        return boxes * self.parts + (boxes if self.parts > 1 else 0)


class LayerPartitioner:
    """Finds the plan with the fewest slices for one layer under an SRAM budget."""

    def __init__(self, layer: Layer, budget: int) -> None:
        self.layer = layer
        self.budget = budget
        shape = layer.out_shape
        # The first two axes that can actually be cut (more than one granule).
        self.axes = [(a, g) for a, g in split_axes(layer) if -(-shape[a] // g) > 1][:2]
        self.channel_counts = _grouped_channel_counts(layer)
        if self.channel_counts:  # grouped conv: chunks inside a group, or whole groups
            self.axes = [(1, 1), *[a for a in self.axes if a[0] != 1][:1]]
        self.in_dtypes = [v.type.dtype for v in layer.node.inputs if not v.is_constant]
        self.out_dtype = layer.node.outputs[0].type.dtype
        self.partial_ok = layer.op in ("dense", "conv") and (
            layer.op == "dense" or layer.attrs["group"] == 1
        )
        self._size_cache: dict[tuple, int] = {}
        self.sparse_weight = _has_sparse_weight(layer)
        # a reshape or permute slice reads the bounding box of its elements' sources, whose
        # size depends on where its output box lies, not only on its extent
        self.positional = layer.op in POSITIONAL_OPS
        self.rejected: set[Plan] = set()  # plans whose probes fit but some slice does not

    def boxes(self, counts: tuple[int, ...]) -> list[Box]:
        shape = self.layer.out_shape
        ranges = [[(0, d)] for d in shape]
        for (axis, granule), count in zip(self.axes, counts):
            ranges[axis] = _chunks(shape[axis], granule, count)
        return [
            Box(tuple(r[0] for r in combo), tuple(r[1] for r in combo))
            for combo in _product(ranges)
        ]

    def in_channel_ranges(self, parts: int) -> list[tuple[int, int]]:
        axis = -1 if self.layer.op == "dense" else 1
        return _chunks(self.layer.in_shape(0)[axis], 1, parts)

    def fits(self, plan: Plan) -> bool:
        """True when every slice of the plan fits the budget.

        Probes the boxes that can be largest and, for partial sums, the first (largest) range
        of input channels and the summing slice. A sparse weight stored compressed takes bytes
        that depend on the non-zeros of each chunk, not only on its extent, so `best_plan`
        checks every slice of the plan it found and searches again without it when one does
        not fit (`rejected`); so does a reshape or permute, whose slices read the bounding box
        of their elements' sources (a size that depends on the box's position).
        """
        if plan in self.rejected:
            return False
        channels = self.in_channel_ranges(plan.parts)[0] if plan.parts > 1 else None
        for box in self._probe_boxes(plan.counts):
            if self.size(box, channels, plan.parts) > self.budget:
                return False
        return True

    def every_slice_fits(self, plan: Plan) -> bool:
        """True when every slice of the plan, not only the probed ones, fits the budget."""
        ranges: list[tuple[int, int] | None] = [None]
        if plan.parts > 1:
            ranges = list(self.in_channel_ranges(plan.parts))
        return all(
            self.size(box, channels, plan.parts) <= self.budget
            for box in self.boxes(plan.counts)
            for channels in ranges
        )

    def size(self, box: Box, channels: tuple[int, int] | None, parts: int) -> int:
        """SRAM bytes of the slice computing `box` (memoised: plans share boxes)."""
        key = (box.start, box.stop, channels, parts)
        if key not in self._size_cache:
            if channels is None:
                need = self._bytes(slice_layer(self.layer, box))
            else:
                need = max(
                    self._bytes(slice_layer(self.layer, box, channels), partial=True),
                    self._bytes(partial_sum_slice(self.layer, box, parts)),
                )
            self._size_cache[key] = need
        return self._size_cache[key]

    def _probe_boxes(self, counts: tuple[int, ...]) -> list[Box]:
        """The boxes that can be largest: first, middle and last chunk of every cut axis.

        Chunks are equal but for the last; an interior chunk has the full halo of a window op,
        an edge chunk the padding, so these combinations bound every slice of the plan.
        """
        shape = self.layer.out_shape
        choices: list[list[tuple[int, int]]] = [[(0, d)] for d in shape]
        for (axis, granule), count in zip(self.axes, counts):
            chunks = _chunk_count(shape[axis], granule, count)
            picked = {0, chunks // 2, chunks - 1}
            choices[axis] = [_chunk(shape[axis], granule, count, i) for i in sorted(picked)]
        return [
            Box(tuple(r[0] for r in combo), tuple(r[1] for r in combo))
            for combo in _product(choices)
        ]

    def _bytes(self, spec: SliceSpec, partial: bool = False) -> int:
        """Bytes of a slice; partial sums of an int8 layer travel as int32."""
        part_dtype = "int32" if self.out_dtype == "int8" else self.out_dtype
        if spec.opcode == "partial_sum":
            dtypes = [part_dtype] * len(spec.inputs)
        else:
            dtypes = self.in_dtypes[: len(spec.inputs)] or ["float32"] * len(spec.inputs)
            dtypes += [dtypes[-1]] * (len(spec.inputs) - len(dtypes))
        return slice_bytes(spec, dtypes, part_dtype if partial else self.out_dtype)

    def best_plan(self) -> Plan:
        """The plan with the fewest slices all of which fit (see `fits`)."""
        while True:
            plan = self._search()
            if not (self.sparse_weight or self.positional) or self.every_slice_fits(plan):
                return plan
            self.rejected.add(plan)

    def _search(self) -> Plan:
        parts_options = [1]
        if self.partial_ok:
            k = self.layer.in_shape(0)[-1 if self.layer.op == "dense" else 1]
            parts_options += [p for p in _ladder(k) if 1 < p <= MAX_PARTS]
        best: Plan | None = None
        for parts in parts_options:
            plan = self._best_counts(parts)
            if plan is None:
                continue
            if best is None or self._total(plan) < self._total(best):
                best = plan
            elif best is not None and parts > 2 * best.parts:
                break
        if best is None:
            raise ResourceError(self._too_big_message())
        return best

    def _total(self, plan: Plan) -> int:
        return plan.slice_count(math.prod(plan.counts) if plan.counts else 1)

    def _best_counts(self, parts: int) -> Plan | None:
        shape = self.layer.out_shape
        if not self.axes:
            whole = Plan((), parts)
            return whole if self.fits(whole) else None
        first_axis, first_granule = self.axes[0]
        granules = -(-shape[first_axis] // first_granule)
        best: Plan | None = None
        options = _count_options(shape[first_axis], first_granule)
        candidates = {*options[:24], *_ladder(granules), granules}
        if self.channel_counts:
            candidates = set(self.channel_counts)
        for first in sorted(candidates):
            if best is not None and first > self._total(best):
                break
            plan = self._fit_second(first, parts)
            if plan is not None and (best is None or self._total(plan) < self._total(best)):
                best = plan
        return best

    def _fit_second(self, first: int, parts: int) -> Plan | None:
        """With `first` cuts on the first axis, the fewest cuts on the second axis that fit."""
        if len(self.axes) == 1:
            plan = Plan((first,), parts)
            return plan if self.fits(plan) else None
        axis, granule = self.axes[1]
        options = _count_options(self.layer.out_shape[axis], granule)
        if not self.fits(Plan((first, options[-1]), parts)):
            return None
        low, high = 0, len(options) - 1
        while low < high:
            middle = (low + high) // 2
            if self.fits(Plan((first, options[middle]), parts)):
                high = middle
            else:
                low = middle + 1
        return Plan((first, options[low]), parts)

    def _too_big_message(self) -> str:
        smallest = self._probe_boxes(
            tuple(_count_options(self.layer.out_shape[a], g)[-1] for a, g in self.axes)
        )
        need = max(self._bytes(slice_layer(self.layer, b)) for b in smallest[:3])
        return (
            f"'{self.layer.node.name}' ({self.layer.op}): even its smallest slice needs {need} "
            f"bytes of SRAM, a PE has {self.budget} for data (on every machine: a bigger "
            "machine has more PEs, not more SRAM per PE)"
        )


def _has_sparse_weight(layer: Layer) -> bool:
    """A conv/dense weight with zeros, which a slice may store compressed."""
    if not layer.compress_weights or layer.op not in ("conv", "dense"):
        return False
    weight = layer.node.inputs[1]
    return weight.is_constant and not np.all(weight.constant_data)


def _grouped_channel_counts(layer: Layer) -> list[int]:
    """Channel split counts of a grouped conv whose chunks never straddle a group boundary.

    With m output channels per group, a chunk of c channels works when c divides m (a chunk
    inside one group reads that group's input channels) or m divides c and c divides all
    channels (whole groups). Counts are all channels / c.
    """
    if layer.op != "conv" or layer.attrs["group"] == 1:
        return []
    channels = layer.out_shape[1]
    per_group = channels // layer.attrs["group"]
    sizes = {c for c in range(1, per_group + 1) if per_group % c == 0}
    sizes |= {c for c in range(per_group, channels + 1, per_group) if channels % c == 0}
    return sorted(channels // c for c in sizes)


def _ladder(extent: int) -> list[int]:
    """Split counts 2, 3, 4, 6, 8, 12, 16, ... up to `extent`: a coarse search for part counts."""
    counts, step = [], 2
    while step <= extent:
        counts.append(step)
        if step * 3 // 2 <= extent and step >= 2:
            counts.append(step * 3 // 2)
        step *= 2
    return sorted(set(counts))


def _product(ranges: list[list[tuple[int, int]]]) -> Iterator[tuple[tuple[int, int], ...]]:
    if not ranges:
        yield ()
        return
    for first in ranges[0]:
        for rest in _product(ranges[1:]):
            yield (first, *rest)


# -- whole graph ----------------------------------------------------------------------------------
class _Builder:
    def __init__(self, graph: Graph, budget: int, compress_weights: bool = True) -> None:
        self.graph = graph
        self.budget = budget
        self.compress_weights = compress_weights
        self.result = Partition()
        self.tensor_of: dict[int, int] = {}

    def tensor(self, value: Value) -> int:
        key = id(value)
        if key not in self.tensor_of:
            tensor_id = len(self.result.tensors)
            quant = value.type.quant
            per_tensor = (
                (quant.scale[0], quant.zero_point[0])
                if quant is not None and quant.axis is None
                else None
            )
            self.result.tensors[tensor_id] = TensorInfo(
                tensor_id, value.name, value.type.shape, value.type.dtype, per_tensor
            )
            self.tensor_of[key] = tensor_id
        return self.tensor_of[key]

    def new_tensor(self, name: str, shape: tuple[int, ...], dtype: str) -> int:
        tensor_id = len(self.result.tensors)
        self.result.tensors[tensor_id] = TensorInfo(tensor_id, name, shape, dtype)
        return tensor_id

    def add_slice(
        self, layer: Layer, layer_index: int, spec: SliceSpec, output: int, inputs: list[int]
    ) -> None:
        in_dtypes = [self.result.tensors[t].dtype for t in inputs]
        out_dtype = self.result.tensors[output].dtype
        self.result.slices.append(
            Slice(
                len(self.result.slices),
                layer.node.name,
                layer_index,
                spec,
                output,
                inputs,
                slice_bytes(spec, in_dtypes, out_dtype),
            )
        )

    def add_layer(self, partitioner: LayerPartitioner, plan: Plan, layer_index: int) -> None:
        layer = partitioner.layer
        node = layer.node
        output = self.tensor(node.outputs[0])
        operand_tensors = [-1 if v.is_constant else self.tensor(v) for v in node.inputs]
        operand_tensors.append(output)  # a recurrent slice's state port reads the layer's result
        if plan.parts > 1 and layer.spiking is not None:
            raise UnsupportedError(
                f"'{node.name}' ({node.op}): needs partial sums over input channels to fit a "
                "PE; a spiking layer must hold all its synapses of an output on one PE"
            )
        for box in partitioner.boxes(plan.counts):
            if plan.parts == 1:
                spec = slice_layer(layer, box)
                self.add_slice(
                    layer, layer_index, spec, output, [operand_tensors[i] for i, _ in spec.inputs]
                )
                continue
            self.add_partial(layer, layer_index, partitioner, plan, box, output, operand_tensors[0])

    def add_partial(
        self,
        layer: Layer,
        layer_index: int,
        partitioner: LayerPartitioner,
        plan: Plan,
        box: Box,
        output: int,
        source: int,
    ) -> None:
        info = self.result.tensors[output]
        part_tensors = []
        for part, channels in enumerate(partitioner.in_channel_ranges(plan.parts)):
            name = f"{layer.node.name}.part{part}@{box.start}"
            dtype = "int32" if info.dtype == "int8" else info.dtype  # int8: int32 partial sums
            part_tensor = self.new_tensor(name, info.shape, dtype)
            part_tensors.append(part_tensor)
            spec = slice_layer(layer, box, channels)
            self.add_slice(layer, layer_index, spec, part_tensor, [source])
        spec = partial_sum_slice(layer, box, plan.parts)
        self.add_slice(layer, layer_index, spec, output, part_tensors)


def _check_layer(node: Node) -> None:
    """The backend places single-result layers whose operands and result hold elements."""
    if len(node.outputs) != 1:
        raise UnsupportedError(
            f"'{node.name}' ({node.op}): {len(node.outputs)} results; the backend places "
            "single-result layers (split is lowered to slices first)"
        )
    for value in (*node.inputs, *node.outputs):
        if 0 in value.type.shape:
            raise UnsupportedError(
                f"'{node.name}' ({node.op}): tensor '{value.name}' of shape {value.type.shape} "
                "holds no elements; s2c compiles tensors of at least one element"
            )


def partition(
    graph: Graph,
    budget: int,
    spiking: Mapping[str, SpikingLayer] | None = None,
    compress_weights: bool = True,
) -> Partition:
    """Cut every node of a canonical graph into slices of at most `budget` SRAM bytes each.

    `spiking` (snn mode) says how each node runs as neurons (`passes.ann_to_snn`);
    `compress_weights` lets a slice store a sparse weight compressed (`backend.sparse_weights`).

    Every layer's plan is found before any slice is made, so that a layer that cannot be cut
    to fit is reported before the work of cutting the layers before it.
    """
    for node in graph.nodes:
        _check_layer(node)
    plans = []
    for node in graph.nodes:
        layer = Layer.of(node, (spiking or {}).get(node.name), compress_weights)
        partitioner = LayerPartitioner(layer, budget)
        plans.append((partitioner, partitioner.best_plan()))
    builder = _Builder(graph, budget, compress_weights)
    for value in graph.inputs:
        builder.result.graph_inputs.append((value.name, builder.tensor(value)))
    for index, (node, (partitioner, plan)) in enumerate(zip(graph.nodes, plans)):
        builder.result.layer_names.append(node.name)
        builder.add_layer(partitioner, plan, index)
    for value in graph.outputs:
        if value.is_constant:
            raise UnsupportedError(f"graph output '{value.name}' is a constant")
        builder.result.graph_outputs.append((value.name, builder.tensor(value)))
    return prune_unread_slices(builder.result)


def prune_unread_slices(parts: Partition) -> Partition:
    """Drop slices whose output box no live slice reads and that feed no graph output.

    A window op may never read the last rows of its input (a 3x3 stride-2 pool without padding
    skips row 111 of 112), so the slices computing only those rows would send packets nowhere.
    Consumers come after producers, so one pass from the last slice backwards finds them all.
    The slices of a recurrent layer read one another's state every step: they stay or go together
    (all stay when any part of the layer's result is read).
    """
    outputs = {tensor for _, tensor in parts.graph_outputs}
    wanted: dict[int, list] = {}
    live: list[Slice] = []
    for s in reversed(parts.slices):
        read = s.output in outputs or any(
            box.intersect(s.spec.out_box) for box in wanted.get(s.output, [])
        )
        if s.spec.opcode in RECURRENT_OPCODES:
            read = read or bool(wanted.get(s.output))
        if not read:
            continue
        live.append(s)
        for (_, box), tensor in zip(s.spec.inputs, s.inputs):
            wanted.setdefault(tensor, []).append(box)
    live.reverse()
    for index, s in enumerate(live):
        s.index = index
    parts.slices = live
    return parts
