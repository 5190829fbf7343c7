"""Layer plans: the slices of one float layer fired as one computation over the region they tile.

A float layer is cut into PEs by output rows, output channels and input channels
(`backend.slicing`); each PE's kernel computes its output box from its input boxes. When the
kernels of one layer are the same computation at different positions and their output boxes
tile a region R of the layer's output exactly (no gap, no overlap), the interpreter computes R
at once and each kernel's payload is its output box, a view of R:

- conv, per input-channel chunk. Kernel k reads input box B_k with local begin padding b_k and
  computes output box O_k. Along a spatial axis, its output o reads global input position

      B_k.start - b_k + (o - O_k.start) * stride + t * dilation      (taps t)

  which is the global conv with begin padding P = O_k.start * stride - B_k.start + b_k. When P
  is the same for every kernel, and every position a kernel's window reads outside its own
  input box (its zero padding) holds no data in any other kernel's box either, the kernels
  together compute the conv of X over R, where X is what the senders send within the bounding
  box of the input boxes, zero elsewhere, and the weight is the kernels' weights joined along
  the output channels (kernels with the same channel range hold the same weights: checked).
- pool: the same with the pool's global window positions (window_start, input_start).
- element-wise kernels (partial_sum, add, sub, mul, activation) whose input boxes are their
  output box: the op on the input regions (partial_sum's bias joined along its channel axis).

An input region is copied from the senders' payloads, as fill plans fill ports; when all its
senders are members of one plan whose region holds it, it is a view of that plan's result (no
copy), and when that plan's result has no other reader, an element-wise plan writes over it.
A member's payload is published (a view of the region) only if a kernel outside the plans, the
host, or a copied region reads it. Routing is what it was: every key's delivery was checked at
load, and the run's packet counts are the image's.

Conv products: float32 BLAS, or float64 for a head layer (see `head_kernels`), rounded once.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import numpy as np

from backend.kernels import PreparedKernel, pool
from backend.program import Box, Kernel
from ir.reference.activation import apply_activation
from ir.reference.conv import window_view

ELEMENTWISE = frozenset({"partial_sum", "add", "sub", "mul", "activation"})
# Attributes that depend on where a kernel's boxes lie (checked against one another by the plan).
POSITIONAL = {"conv": ("pads",), "pool": ("window_start", "input_start")}
Copy = tuple[int, tuple[slice, ...], tuple[slice, ...]]


@dataclass(frozen=True)
class Gather:
    """An input region: its box (of the layer's input tensor) and where each sender's part goes."""

    box: Box
    copies: tuple[Copy, ...]  # (sender key, where in the region, which part of its payload)
    keys: tuple[int, ...]  # the senders' keys, in the order of `copies`
    complete: bool  # whether the senders cover the box (else the rest is zero)


def gather_for(box: Box, senders: dict[int, Box], partial: bool = False) -> Gather | None:
    """The gather of `box` from `senders` (key -> box), or None when they do not cover it
    (unless `partial`: then what they do not cover is zero)."""
    copies = []
    for key, sender in sorted(senders.items()):
        common = box.intersect(sender)
        if common is not None:
            copies.append((key, common.relative_to(box), common.relative_to(sender)))
    if not copies:
        return None
    complete = bool(_filled(box, copies).all())
    if not (complete or partial):
        return None
    return Gather(box, tuple(copies), tuple(key for key, _, _ in copies), complete)


def filled_mask(gather: Gather) -> np.ndarray:
    """Which elements of the gather's box some sender fills."""
    return _filled(gather.box, gather.copies)


def _filled(box: Box, copies) -> np.ndarray:
    filled = np.zeros(box.shape, dtype=bool)
    for _, target, _ in copies:
        filled[target] = True
    return filled


Results = list  # per plan (its position in the plans' list): its region's result in this run


def assemble(
    gather: Gather,
    source: tuple[int, tuple[slice, ...]] | None,
    payloads: dict[int, np.ndarray],
    results: Results,
    samples: int,
) -> np.ndarray:
    """The gather's box (samples, *box shape): a view of the one plan result that holds it
    (`source`: that plan's position and where the box lies in its region), else copied from
    the senders' payloads."""
    if source is not None:
        plan, where = source
        return results[plan][where]
    allocate = np.empty if gather.complete else np.zeros
    result = allocate((samples, *gather.box.shape), dtype=np.float32)
    for key, target, part in gather.copies:
        result[(slice(None), *target)] = payloads[key][(slice(None), *part)]
    return result


def exact_cover(boxes: list[Box]) -> Box | None:
    """The bounding box of `boxes` when they tile it exactly (no gap, no overlap), else None."""
    bound = _bounding(boxes)
    if sum(b.size for b in boxes) != bound.size:
        return None
    count = np.zeros(bound.shape, dtype=np.uint8)
    for b in boxes:
        count[b.relative_to(bound)] += 1
    return bound if bool((count == 1).all()) else None


@dataclass
class Member:
    """One kernel of a plan: its index in the interpreter's firing order and its kernel."""

    index: int
    kernel: Kernel
    params: dict[str, np.ndarray]


class LayerPlan:
    """Kernels of one layer fired as one computation over the region their outputs tile.

    `link_plans` completes a plan at load: its position, where each input region comes from,
    and which members' payloads other kernels (or the host) read.
    """

    def __init__(self, members: list[Member], region: Box, gathers: list[Gather]) -> None:
        self.members = members
        self.region = region
        self.gathers = gathers
        self.indices = tuple(m.index for m in members)
        self.position = -1
        self.sources: list[tuple[int, tuple[slice, ...]] | None] = [None] * len(gathers)
        # whether input region i is a view this plan alone reads, which it may overwrite
        self.owned = [False] * len(gathers)
        self.views: list[tuple[int, tuple[slice, ...]]] = []

    def fire(self, payloads: dict[int, np.ndarray], results: Results, samples: int) -> np.ndarray:
        """Compute the region from its inputs and record it; publish the payloads read."""
        inputs = [
            assemble(gather, source, payloads, results, samples)
            for gather, source in zip(self.gathers, self.sources)
        ]
        result = self.compute(inputs, samples)
        results[self.position] = result
        for key, where in self.views:
            payloads[key] = result[where]
        return result

    def compute(self, inputs: list[np.ndarray], samples: int) -> np.ndarray:
        """The region (samples, *region shape), float32, from the input regions."""
        raise NotImplementedError


def link_plans(plans: list[LayerPlan], read_keys: set[int]) -> None:
    """Number the plans; point each input region at the plan whose result holds it (every
    sender a member of that plan, the box inside its region, nothing left as zero); publish
    payloads only for members whose key some other reader (`read_keys`) or a copied input
    region reads."""
    owner: dict[int, LayerPlan] = {}
    for position, plan in enumerate(plans):
        plan.position = position
        for member in plan.members:
            owner[member.kernel.output.key] = plan
    copied: set[int] = set()
    readers = [0] * len(plans)  # input regions sourced from each plan's result
    for plan in plans:
        for number, gather in enumerate(plan.gathers):
            producers = {id(owner.get(key)) for key in gather.keys}
            producer = owner.get(gather.keys[0])
            if producer is None or len(producers) != 1 or not gather.complete:
                copied.update(gather.keys)
                continue
            if gather.box.intersect(producer.region) != gather.box:
                copied.update(gather.keys)
                continue
            where = (slice(None), *gather.box.relative_to(producer.region))
            plan.sources[number] = (producer.position, where)
            readers[producer.position] += 1
    for plan in plans:
        for number, source in enumerate(plan.sources):
            if source is None or readers[source[0]] != 1:
                continue
            producer = plans[source[0]]
            keys = {m.kernel.output.key for m in producer.members}
            plan.owned[number] = not keys & (read_keys | copied)
    for plan in plans:
        plan.views = [
            (m.kernel.output.key, (slice(None), *m.kernel.output.box.relative_to(plan.region)))
            for m in plan.members
            if m.kernel.output.key in read_keys or m.kernel.output.key in copied
        ]


def _joined(members: list[Member], role: str, axis_of_box: int, axis_of_param: int, region: Box):
    """A parameter joined along one box axis over the region, or None when members with the
    same range along that axis disagree (the axis is the output channels for weights)."""
    low = region.start[axis_of_box]
    joined: dict[tuple[int, int], np.ndarray] = {}
    for m in members:
        box = m.kernel.output.box
        span = (box.start[axis_of_box] - low, box.stop[axis_of_box] - low)
        array = m.params[role]
        if span in joined:
            if joined[span] is not array and not np.array_equal(joined[span], array):
                return None
            continue
        joined[span] = array
    spans = sorted(joined)
    extent = region.shape[axis_of_box]
    if spans[0][0] != 0 or spans[-1][1] != extent:
        return None
    if any(a[1] != b[0] for a, b in itertools.pairwise(spans)):
        return None
    return np.concatenate([joined[s] for s in spans], axis=axis_of_param)


class ConvPlan(LayerPlan):
    """conv kernels of one input-channel chunk (group 1) fired as one product (module doc)."""

    def __init__(
        self,
        members: list[Member],
        region: Box,
        gather: Gather,
        padded: Box,
        weight: np.ndarray,
        bias: np.ndarray | None,
        attrs: dict,
    ) -> None:
        super().__init__(members, region, [gather])
        self.gather = gather
        self.padded = padded  # the zero-padded input X (global coordinates)
        self.inner = gather.box.relative_to(padded)
        self.weight = weight.reshape(weight.shape[0], -1)
        self.bias = None if bias is None else bias.reshape(-1, 1)
        self.window = tuple(weight.shape[2:])
        self.attrs = attrs
        self.out = tuple(region.shape[2:])

    def compute(self, inputs: list[np.ndarray], samples: int) -> np.ndarray:
        batch = samples * self.region.shape[0]
        x = self._padded(inputs[0], samples).reshape(batch, *self.padded.shape[1:])
        columns = self._columns(x, batch)
        y = np.matmul(self.weight, columns)
        if self.bias is not None:
            y += self.bias
        function = self.attrs["activation"]
        if function == "relu":
            np.maximum(y, 0, out=y)
        elif function != "none":
            y = apply_activation(function, self.attrs["activation_params"], y)
        return y.astype(np.float32, copy=False).reshape(samples, *self.region.shape)

    def _padded(self, source: np.ndarray, samples: int) -> np.ndarray:
        if self.padded == self.gather.box:
            return source
        x = np.zeros((samples, *self.padded.shape), dtype=np.float32)
        x[(slice(None), *self.inner)] = source
        return x

    def _columns(self, x: np.ndarray, batch: int) -> np.ndarray:
        """[B, C prod(K), prod(out)] in the product's type (the input itself for 1x1, stride 1)."""
        dtype = self.weight.dtype
        if math.prod(self.window) == 1 and all(s == 1 for s in self.attrs["strides"]):
            return x.reshape(batch, x.shape[1], -1).astype(dtype, copy=False)
        view = window_view(x, self.window, self.out, self.attrs)  # [B, C, *K, *out]
        return np.ascontiguousarray(view, dtype=dtype).reshape(batch, self.weight.shape[1], -1)


class PoolPlan(LayerPlan):
    """Pool kernels of one layer fired once over their region (global window positions)."""

    def __init__(self, members: list[Member], region: Box, gather: Gather, attrs: dict) -> None:
        super().__init__(members, region, [gather])
        self.attrs = attrs

    def compute(self, inputs: list[np.ndarray], samples: int) -> np.ndarray:
        return pool(self.attrs, inputs[0], self.region.shape)


class ElementwisePlan(LayerPlan):
    """Element-wise kernels of one layer fired once over their region (module doc)."""

    def __init__(self, members: list[Member], region: Box, gathers: list[Gather], function) -> None:
        super().__init__(members, region, gathers)
        self.function = function  # (inputs over the region, owned) -> result over the region

    def compute(self, inputs: list[np.ndarray], samples: int) -> np.ndarray:
        return self.function(inputs, self.owned[0]).astype(np.float32, copy=False)


# -- building plans at load ----------------------------------------------------------------------
def head_kernels(kernels: list[Kernel], output_keys: set[int]) -> set[int]:
    """The conv and dense kernels whose outputs reach a graph output without passing through
    another conv or dense layer: the network's head (logits), whose products sum in float64 and
    round once, so that equal sums give equal logits bit for bit (classes compared by argmax or
    softmax never depend on BLAS blocking). Other conv and dense layers' products are float32."""
    producer = {kernel.output.key: index for index, kernel in enumerate(kernels)}
    stack = [producer[key] for key in output_keys if key in producer]
    seen: set[int] = set()
    heads = set()
    while stack:
        index = stack.pop()
        if index in seen:
            continue
        seen.add(index)
        kernel = kernels[index]
        if kernel.opcode in ("conv", "dense"):
            heads.add(index)
            continue
        for port in kernel.inputs:
            stack.extend(producer[s.key] for s in port.sources if s.key in producer)
    return heads


def build_plans(
    kernels: list[Kernel],
    params: list[dict[str, np.ndarray]],
    heads: set[int],
    skip: set[int],
    prepared: list[PreparedKernel],
) -> list[LayerPlan]:
    """Plans for every layer (conv: per input-channel chunk) whose kernels qualify; the other
    kernels fire as before. `skip`: kernels that must fire alone (event-based dataflow);
    `prepared`: the kernels ready to fire (an element-wise plan computes as its first does)."""
    candidates: dict[tuple, list[Member]] = {}
    for index, kernel in enumerate(kernels):
        if index in skip or not _plannable(kernel, params[index]):
            continue
        candidates.setdefault(_plan_key(kernel), []).append(Member(index, kernel, params[index]))
    plans: list[LayerPlan] = []
    for members in candidates.values():
        if len(members) < 2:
            continue
        plan: LayerPlan | None
        if members[0].kernel.opcode == "conv":
            plan = _conv_plan(members, any(m.index in heads for m in members))
        elif members[0].kernel.opcode == "pool":
            plan = _pool_plan(members)
        else:
            plan = _elementwise_plan(members, prepared[members[0].index])
        if plan is not None:
            plans.append(plan)
    return plans


def _plannable(kernel: Kernel, params: dict[str, np.ndarray]) -> bool:
    attrs = kernel.attrs
    if attrs.get("int8") or attrs.get("float_island") or "event_input_zeros" in attrs:
        return False
    if kernel.output.dtype != "float32" or any(p.dtype != "float32" for p in kernel.inputs):
        return False
    if kernel.opcode == "conv":
        return (
            len(kernel.inputs) == 1
            and int(attrs.get("group", 1)) == 1
            and set(params) <= {"weight", "bias"}
            and "weight" in params
        )
    if kernel.opcode == "pool":
        return len(kernel.inputs) == 1 and not params
    if kernel.opcode not in ELEMENTWISE:
        return False
    if set(params) - ({"bias"} if kernel.opcode == "partial_sum" else set()):
        return False
    if any(int(o) < 0 for o in attrs.get("operands", ())):
        return False
    return all(port.box == kernel.output.box for port in kernel.inputs)


def _plan_key(kernel: Kernel) -> tuple:
    positional = POSITIONAL.get(kernel.opcode, ())
    attrs = {k: v for k, v in kernel.attrs.items() if k not in positional}
    key: tuple = (kernel.layer, kernel.opcode, repr(sorted(attrs.items())), len(kernel.inputs))
    if kernel.opcode == "conv":  # one plan per input-channel chunk
        box = kernel.inputs[0].box
        key += (box.start[:2], box.stop[:2])
    return key


def _senders(ports) -> dict[int, Box] | None:
    """key -> box of every sender of `ports`, or None when a key comes with two boxes."""
    senders: dict[int, Box] = {}
    for port in ports:
        for source in port.sources:
            if senders.setdefault(source.key, source.box) != source.box:
                return None
    return senders


def _conv_plan(members: list[Member], head: bool) -> ConvPlan | None:
    first = members[0].kernel
    attrs = first.attrs
    strides, dilations = tuple(attrs["strides"]), tuple(attrs["dilations"])
    window = members[0].params["weight"].shape[2:]
    rank = len(window)
    if any(m.params["weight"].shape[1:] != members[0].params["weight"].shape[1:] for m in members):
        return None
    region = exact_cover([m.kernel.output.box for m in members])
    if region is None:
        return None
    extents = [(k - 1) * d + 1 for k, d in zip(window, dilations)]
    begin = _global_padding(members, strides, rank)
    if begin is None:
        return None
    port = first.inputs[0].box
    padded = Box(
        (*port.start[:2], *(region.start[2 + i] * strides[i] - begin[i] for i in range(rank))),
        (
            *port.stop[:2],
            *((region.stop[2 + i] - 1) * strides[i] - begin[i] + extents[i] for i in range(rank)),
        ),
    )
    gather = _window_gather(members, padded, begin, strides, extents)
    if gather is None or not all(
        _inside_local_padding(m, begin, strides, extents) for m in members
    ):
        return None
    weight = _joined(members, "weight", 1, 0, region)
    has_bias = {"bias" in m.params for m in members}
    if weight is None or len(has_bias) != 1:
        return None
    bias = None
    if has_bias.pop():
        bias = _joined(members, "bias", 1, 0, region)
        if bias is None:
            return None
    dtype = np.float64 if head else np.float32
    plan_attrs = {"strides": strides, "dilations": dilations, **_activation(attrs)}
    return ConvPlan(
        members,
        region,
        gather,
        padded,
        weight.astype(dtype),
        None if bias is None else bias.astype(dtype),
        plan_attrs,
    )


def _activation(attrs: dict) -> dict:
    return {
        "activation": str(attrs.get("activation", "none")),
        "activation_params": tuple(attrs.get("activation_params", ())),
    }


def _global_padding(members: list[Member], strides, rank: int) -> tuple[int, ...] | None:
    """The global begin padding P (module doc), when every kernel implies the same."""
    implied = set()
    for m in members:
        out, box, pads = m.kernel.output.box, m.kernel.inputs[0].box, m.kernel.attrs["pads"]
        implied.add(
            tuple(out.start[2 + i] * strides[i] - box.start[2 + i] + pads[i] for i in range(rank))
        )
    return implied.pop() if len(implied) == 1 else None


def _bounding(boxes: list[Box]) -> Box:
    return Box(
        tuple(min(b.start[d] for b in boxes) for d in range(len(boxes[0].start))),
        tuple(max(b.stop[d] for b in boxes) for d in range(len(boxes[0].start))),
    )


def _window_span(member: Member, begin, strides, extents) -> tuple[list[int], list[int]]:
    """The global input positions [start, stop) a kernel's windows span, per spatial axis."""
    out = member.kernel.output.box
    rank = len(extents)
    start = [out.start[2 + i] * strides[i] - begin[i] for i in range(rank)]
    stop = [(out.stop[2 + i] - 1) * strides[i] - begin[i] + extents[i] for i in range(rank)]
    return start, stop


def _window_gather(
    members: list[Member], padded: Box | None, begin, strides, extents
) -> Gather | None:
    """The gather of the members' inputs over the bounding box of their input boxes (within
    `padded`, a conv's zero-padded input, where what the senders do not cover is zero; a pool's
    must be covered), when every member's windows read only their own data in it."""
    bound: Box | None = _bounding([m.kernel.inputs[0].box for m in members])
    if padded is not None and bound is not None:
        bound = bound.intersect(padded)
    senders = _senders([m.kernel.inputs[0] for m in members])
    if bound is None or senders is None:
        return None
    gather = gather_for(bound, senders, partial=padded is not None)
    if gather is None:
        return None
    filled = filled_mask(gather)
    if not all(
        _reads_only_own_data(m, gather.box, filled, begin, strides, extents) for m in members
    ):
        return None
    return gather


def _reads_only_own_data(
    member: Member, data: Box, filled: np.ndarray, begin, strides, extents
) -> bool:
    """Whether every position of the kernel's window span that holds data in the plan's input
    (`filled` over `data`) lies in its own input box, so that what the kernel sees as padding
    (outside its box) is padding in the plan's input too."""
    box = member.kernel.inputs[0].box
    start, stop = _window_span(member, begin, strides, extents)
    read = Box((*box.start[:2], *start), (*box.stop[:2], *stop)).intersect(data)
    if read is None:
        return True
    holding = int(filled[read.relative_to(data)].sum())
    own = read.intersect(box)
    if own is None:
        return holding == 0
    return holding == own.size == int(filled[own.relative_to(data)].sum())


def _inside_local_padding(member: Member, begin, strides, extents) -> bool:
    """Whether a conv kernel's window span stays inside its zero-padded input box."""
    box, pads = member.kernel.inputs[0].box, member.kernel.attrs["pads"]
    rank = len(extents)
    _, stop = _window_span(member, begin, strides, extents)
    return all(stop[i] <= box.stop[2 + i] + pads[rank + i] for i in range(rank))


def _pool_plan(members: list[Member]) -> PoolPlan | None:
    first = members[0].kernel
    attrs = first.attrs
    strides, dilations = tuple(attrs["strides"]), tuple(attrs["dilations"])
    extents = [(k - 1) * d + 1 for k, d in zip(attrs["kernel"], dilations)]
    rank = len(extents)
    region = exact_cover([m.kernel.output.box for m in members])
    implied = {
        tuple(
            m.kernel.output.box.start[2 + i] * strides[i] - m.kernel.attrs["window_start"][i]
            for i in range(rank)
        )
        for m in members
    }
    inputs_start = {
        tuple(m.kernel.attrs["input_start"]) == m.kernel.inputs[0].box.start[2:] for m in members
    }
    if region is None or len(implied) != 1 or inputs_start != {True}:
        return None
    begin = implied.pop()
    gather = _window_gather(members, None, begin, strides, extents)
    if gather is None:
        return None
    plan_attrs = dict(
        attrs,
        window_start=tuple(region.start[2 + i] * strides[i] - begin[i] for i in range(rank)),
        input_start=tuple(gather.box.start[2:]),
    )
    return PoolPlan(members, region, gather, plan_attrs)


def _elementwise_plan(
    members: list[Member], first_prepared: PreparedKernel
) -> ElementwisePlan | None:
    first = members[0].kernel
    region = exact_cover([m.kernel.output.box for m in members])
    if region is None:
        return None
    gathers = []
    for port in range(len(first.inputs)):
        senders = _senders([m.kernel.inputs[port] for m in members])
        gather = None if senders is None else gather_for(region, senders)
        if gather is None:
            return None
        gathers.append(gather)
    attrs = first.attrs
    if first.opcode == "partial_sum":
        bias = None
        if "bias" in members[0].params:
            axis = int(attrs["channel_axis"])
            bias = _joined(members, "bias", axis, 0, region)
            if bias is None:
                return None
        return ElementwisePlan(
            members, region, gathers, _partial_sum(attrs, bias, len(region.start))
        )
    operands = tuple(int(o) for o in attrs.get("operands", range(len(first.inputs))))
    in_place = _IN_PLACE.get(first.opcode)
    if first.opcode == "activation":
        in_place = np.maximum if attrs.get("function") == "relu" else None
    completed = first_prepared.attrs

    def compute(inputs: list[np.ndarray], owned: bool) -> np.ndarray:
        """The op; when the first operand is a view this plan alone reads, written over it."""
        if in_place is not None and owned and operands[0] == 0:
            second = inputs[operands[1]] if len(operands) > 1 else np.float32(0)
            return in_place(inputs[0], second, out=inputs[0])
        return first_prepared.reference(first.opcode, completed, [inputs[o] for o in operands])

    return ElementwisePlan(members, region, gathers, compute)


# Element-wise ops that may write their result over their first operand (same values).
_IN_PLACE = {"add": np.add, "sub": np.subtract, "mul": np.multiply}


def _partial_sum(attrs: dict, bias: np.ndarray | None, rank: int):
    """sum of the parts in port order, plus bias along the channel axis, then the activation
    (as `backend.kernels` computes a partial_sum kernel)."""
    shape = [1] * (rank + 1)
    if bias is not None:
        shape[int(attrs["channel_axis"]) + 1] = -1
        bias = bias.reshape(shape)
    function, parameters = str(attrs["activation"]), tuple(attrs["activation_params"])

    def compute(inputs: list[np.ndarray], owned: bool) -> np.ndarray:
        total = inputs[0] if owned else inputs[0].copy()
        for part in inputs[1:]:
            total += part
        if bias is not None:
            total += bias
        if function == "relu":
            return np.maximum(total, 0, out=total)
        return apply_activation(function, parameters, total)

    return compute
