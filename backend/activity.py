"""Sparsity counts of a run: weight bytes, MACs, packets and activation zeros, dense vs actual.

Per kernel firing (S samples at once):
- activation elements and zeros of its output box; a zero is the output tensor's zero point
  (`event_zero`: 0 for float and int32, z_y for int8), the value an event-based kernel does not
  send;
- packets: `packets_elements` = one per output element (every element sent as an event),
  `packets_packed` = every element packed into 16-byte payloads (16 int8 or 4 float32 values
  per packet: dense transmission); sent = the non-zero elements for a kernel of a layer that
  sends events (`event_zero`), else its packed packets; link hops follow the packets sent;
- MACs: dense = every weight for every output (`stats.dense_mac_count`); performed = the kernel's
  MACs with its stored weights (`stats.mac_count`: csr walks only non-zeros), and, for a kernel
  whose first input comes as events (`event_input_zeros`), only for inputs that arrived: a dense
  kernel processes the synaptic row of each
  non-zero input (sum over arrived inputs k of the stored non-zeros of row k); a conv kernel the
  same fraction of its work as of its input elements that arrived (exact up to the taps that
  fall on padding).
Execution: an event-based dense kernel multiplies only the synaptic rows of the inputs that
arrived (`backend.kernels.arrived_rows`; over the samples fired together, the union of their
arrived inputs); a conv kernel computes with its whole buffer, where an element that was not sent
is the zero its port starts from. Both give the same values as dense transmission.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from backend.assemble import PAYLOAD_BYTES
from backend.program import Kernel
from backend.stats import dense_mac_count, mac_count, weight_bytes


@dataclass
class LayerSparsity:
    """Counts of one layer over a run (all samples)."""

    activation_elements: int = 0
    activation_zeros: int = 0
    packets_elements: int = 0
    packets_packed: int = 0
    packets_sent: int = 0
    macs_dense: int = 0
    macs_performed: int = 0

    def add(self, other: LayerSparsity) -> None:
        for name in self.__dataclass_fields__:
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def as_dict(self) -> dict[str, int | float]:
        counts: dict[str, int | float] = dict(self.__dict__)
        counts["activation_sparsity"] = round(
            self.activation_zeros / max(self.activation_elements, 1), 6
        )
        return counts


@dataclass
class SparsityStats:
    """Sparsity counts of a run: totals, per layer, and the image's weight bytes."""

    event_layers: tuple[str, ...] = ()
    weight_bytes_dense: int = 0
    weight_bytes_stored: int = 0
    per_layer: dict[str, LayerSparsity] = field(default_factory=dict)

    def total(self) -> LayerSparsity:
        result = LayerSparsity()
        for layer in self.per_layer.values():
            result.add(layer)
        return result

    def merged(self, other: SparsityStats) -> SparsityStats:
        """These counts and `other`'s (more samples of the same image) together."""
        per_layer: dict[str, LayerSparsity] = {}
        for source in (self.per_layer, other.per_layer):
            for name, layer in source.items():
                per_layer.setdefault(name, LayerSparsity()).add(layer)
        return SparsityStats(
            self.event_layers, self.weight_bytes_dense, self.weight_bytes_stored, per_layer
        )

    def as_dict(self) -> dict:
        total = self.total().as_dict()
        return {
            "event_activations": bool(self.event_layers),
            "event_layers": list(self.event_layers),
            "weight_bytes_dense": self.weight_bytes_dense,
            "weight_bytes_stored": self.weight_bytes_stored,
            "macs_dense": total["macs_dense"],
            "macs_performed": total["macs_performed"],
            "packets_elements": total["packets_elements"],
            "packets_packed": total["packets_packed"],
            "packets_sent": total["packets_sent"],
            "activation_sparsity": total["activation_sparsity"],
            "per_layer": {name: layer.as_dict() for name, layer in self.per_layer.items()},
        }


def image_weight_bytes(kernels: list[Kernel]) -> tuple[int, int]:
    """(dense, stored) weight bytes of every kernel of an image."""
    pairs = [weight_bytes(kernel) for kernel in kernels]
    return sum(d for d, _ in pairs), sum(s for _, s in pairs)


@dataclass(frozen=True)
class GroupCounts:
    """Per-sample counts of kernels that fire together with dense dataflow (none sends or
    receives events): packets (as sent, and packed), output elements, link hops (packets x hops
    of each), dense and stored MACs, summed over the kernels."""

    packets: int
    packets_packed: int
    link_hops: int
    macs_dense: int
    macs_stored: int


class SparsityPlan:
    """What the counts of a firing need from the image alone, computed once at load: weight
    bytes, stored weights per synaptic row, and per kernel its zero value, whether it sends
    events, packets per sample (sent as its key block says, and packed), dense and stored MACs
    per sample."""

    def __init__(self, kernels: list[Kernel], params: list[dict[str, np.ndarray]]):
        self.kernels = kernels
        self.event_layers = event_layers(kernels)
        self.weight_bytes = image_weight_bytes(kernels)
        self.row_counts = [_row_counts(k, p) for k, p in zip(kernels, params)]
        self.zeros = [k.attrs.get("event_zero", 0) for k in kernels]
        self.sends_events = ["event_zero" in k.attrs for k in kernels]
        self.packets = [k.output.packet_count for k in kernels]
        self.packets_packed = [packed_packets(k) for k in kernels]
        self.macs_dense = [dense_mac_count(k) for k in kernels]
        self.macs_stored = [mac_count(k) for k in kernels]

    def group_counts(self, members: tuple[int, ...], hops: list[int]) -> GroupCounts | None:
        """The summed counts of `members` (whose packets take `hops` link hops each), or None
        when one of them sends or receives events (its counts depend on the values) or they
        belong to several layers (each layer counts its own)."""
        if any(
            self.sends_events[m] or "event_input_zeros" in self.kernels[m].attrs for m in members
        ):
            return None
        if len({self.kernels[m].layer for m in members}) > 1:
            return None
        return GroupCounts(
            packets=sum(self.packets[m] for m in members),
            packets_packed=sum(self.packets_packed[m] for m in members),
            link_hops=sum(self.packets[m] * h for m, h in zip(members, hops)),
            macs_dense=sum(self.macs_dense[m] for m in members),
            macs_stored=sum(self.macs_stored[m] for m in members),
        )


class SparsityCounter:
    """Counts a run's firings; one per run. A firing is recorded as a few numbers per layer
    and the per-layer counts are summed when `stats` is read (once, after the run)."""

    def __init__(self, plan: SparsityPlan):
        self.plan = plan
        # per firing: (layer, output elements, zeros, packets packed, packets sent,
        # dense MACs, MACs performed)
        self.firings: list[tuple[str, int, int, int, int, int, int]] = []
        self.packets = 0  # packets the kernels sent
        self.link_hops = 0  # and their chip-to-chip hops

    def fired(self, index: int, inputs: list[np.ndarray], output: np.ndarray, hops: int) -> None:
        """Count one kernel's firing on S samples: its input buffers, its output, and the
        link hops of each of its packets."""
        plan = self.plan
        samples = output.shape[0]
        zeros = int(np.count_nonzero(output == plan.zeros[index]))
        sent = output.size - zeros if plan.sends_events[index] else plan.packets[index] * samples
        self.packets += sent
        self.link_hops += sent * hops
        self.firings.append(
            (
                plan.kernels[index].layer,
                output.size,
                zeros,
                plan.packets_packed[index] * samples,
                sent,
                plan.macs_dense[index] * samples,
                self._performed(index, inputs, samples),
            )
        )

    def fired_dense(
        self, first: int, counts: GroupCounts, output: np.ndarray, samples: int
    ) -> None:
        """Count the firing of kernels of one layer with dense dataflow: `counts` summed over
        them, their outputs stacked in `output` (first: the first kernel). The same sums as
        `fired` per kernel, with one zero count for the stack."""
        plan = self.plan
        packets = counts.packets * samples
        self.packets += packets
        self.link_hops += counts.link_hops * samples
        self.firings.append(
            (
                plan.kernels[first].layer,
                output.size,
                int(np.count_nonzero(output == plan.zeros[first])),
                counts.packets_packed * samples,
                packets,
                counts.macs_dense * samples,
                counts.macs_stored * samples,
            )
        )

    @property
    def stats(self) -> SparsityStats:
        """The run's counts per layer (each firing added to its layer)."""
        stats = SparsityStats(self.plan.event_layers, *self.plan.weight_bytes)
        for layer_name, elements, zeros, packed, sent, dense, performed in self.firings:
            layer = stats.per_layer.get(layer_name)
            if layer is None:
                layer = stats.per_layer[layer_name] = LayerSparsity()
            layer.activation_elements += elements
            layer.activation_zeros += zeros
            layer.packets_elements += elements
            layer.packets_packed += packed
            layer.packets_sent += sent
            layer.macs_dense += dense
            layer.macs_performed += performed
        return stats

    def _performed(self, index: int, inputs: list[np.ndarray], samples: int) -> int:
        plan = self.plan
        kernel = plan.kernels[index]
        stored = plan.macs_stored[index] * samples
        if "event_input_zeros" not in kernel.attrs or stored == 0 or not inputs:
            return stored
        zero = kernel.attrs.get("event_input_zeros", (0,))[0]
        arrived = inputs[0] != zero
        rows = plan.row_counts[index]
        if rows is not None:  # dense: the stored row of every input that arrived
            return int(arrived.reshape(-1, rows.size).sum(axis=0) @ rows)
        return stored * int(np.count_nonzero(arrived)) // max(arrived.size, 1)


def packed_packets(kernel: Kernel) -> int:
    """Packets of the kernel's output box sent packed: 16-byte payloads of whole values."""
    per_packet = max(PAYLOAD_BYTES // np.dtype(kernel.output.dtype).itemsize, 1)
    return -(-kernel.output.box.size // per_packet)


def event_layers(kernels: list[Kernel]) -> tuple[str, ...]:
    """The layers whose kernels send only non-zero activations, sorted."""
    return tuple(sorted({kernel.layer for kernel in kernels if "event_zero" in kernel.attrs}))


def _row_counts(kernel: Kernel, params: dict[str, np.ndarray]) -> np.ndarray | None:
    """Stored weights per synaptic row of a dense kernel (all N unless csr), else None."""
    if kernel.opcode != "dense" or "weight" not in params:
        return None
    weight = params["weight"]
    if kernel.attrs.get("weight_format") == "csr":
        return np.count_nonzero(weight, axis=1).astype(np.int64)
    return np.full(weight.shape[0], weight.shape[1], dtype=np.int64)


def image_sparsity(kernels: list[Kernel]) -> dict:
    """What the image alone says (no run): weight bytes, MACs per inference with the stored
    weights, packets per inference if every element were sent; per layer and in total.
    Packets: one per element, and packed (dense transmission). Activation sparsity and packets
    sent need a run (`s2c run --stats-json`)."""
    per_layer: dict[str, dict[str, int]] = {}
    for kernel in kernels:
        dense_bytes, stored_bytes = weight_bytes(kernel)
        layer = per_layer.setdefault(
            kernel.layer,
            {"weight_bytes_dense": 0, "weight_bytes_stored": 0, "macs_dense": 0, "macs_stored": 0},
        )
        layer["weight_bytes_dense"] += dense_bytes
        layer["weight_bytes_stored"] += stored_bytes
        layer["macs_dense"] += dense_mac_count(kernel)
        layer["macs_stored"] += mac_count(kernel)
        layer["packets_elements"] = layer.get("packets_elements", 0) + kernel.output.box.size
        layer["packets_packed"] = layer.get("packets_packed", 0) + packed_packets(kernel)
    totals = {
        key: sum(layer[key] for layer in per_layer.values())
        for key in ("weight_bytes_dense", "weight_bytes_stored", "macs_dense", "macs_stored")
    }
    return {
        "event_activations": any("event_zero" in kernel.attrs for kernel in kernels),
        "event_layers": list(event_layers(kernels)),
        "csr_kernels": sum(kernel.attrs.get("weight_format") == "csr" for kernel in kernels),
        **totals,
        "packets_elements": sum(kernel.output.box.size for kernel in kernels),
        "packets_packed": sum(packed_packets(kernel) for kernel in kernels),
        "per_layer": per_layer,
    }
