"""Sparsity counts of a run: weight bytes, MACs, packets and activation zeros, dense vs actual.

Per kernel firing (S samples at once):
- activation elements and zeros of its output box; a zero is the output tensor's zero point
  (`event_zero`: 0 for float and int32, z_y for int8), the value an event-based kernel does not
  send;
- packets: dense = the key block's packets per sample (one per element with event-based
  activations, packed 16 bytes per packet without); sent = the non-zero elements with
  event-based activations, else the dense count; link hops follow the packets sent;
- MACs: dense = every weight for every output (`stats.dense_mac_count`); performed = the kernel's
  MACs with its stored weights (`stats.mac_count`: csr walks only non-zeros), and with event-based
  activations only for inputs that arrived: a dense kernel processes the synaptic row of each
  non-zero input (sum over arrived inputs k of the stored non-zeros of row k); a conv kernel the
  same fraction of its work as of its input elements that arrived (exact up to the taps that
  fall on padding).
The interpreter still computes with whole buffers: an element that was not sent is the zero its
port starts from, so the result is the same value for value.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from backend.program import Kernel
from backend.stats import dense_mac_count, mac_count, weight_bytes


@dataclass
class LayerSparsity:
    """Counts of one layer over a run (all samples)."""

    activation_elements: int = 0
    activation_zeros: int = 0
    packets_dense: int = 0
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

    events: bool = False
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
            self.events, self.weight_bytes_dense, self.weight_bytes_stored, per_layer
        )

    def as_dict(self) -> dict:
        total = self.total().as_dict()
        return {
            "event_activations": self.events,
            "weight_bytes_dense": self.weight_bytes_dense,
            "weight_bytes_stored": self.weight_bytes_stored,
            "macs_dense": total["macs_dense"],
            "macs_performed": total["macs_performed"],
            "packets_dense": total["packets_dense"],
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
    """Per-sample counts of kernels that fire together with dense dataflow: packets, link hops
    (packets x hops of each), dense and stored MACs, summed over the kernels."""

    packets: int
    link_hops: int
    macs_dense: int
    macs_stored: int


class SparsityPlan:
    """What the counts of a firing need from the image alone, computed once at load: per kernel
    its layer, zero value, packets, dense and stored MACs (per sample), synaptic row counts."""

    def __init__(self, kernels: list[Kernel], params: list[dict[str, np.ndarray]], events: bool):
        self.kernels = kernels
        self.events = events
        self.weight_bytes = image_weight_bytes(kernels)
        self.zeros = [kernel.attrs.get("event_zero", 0) for kernel in kernels]
        self.packets = [kernel.output.packet_count for kernel in kernels]
        self.macs_dense = [dense_mac_count(kernel) for kernel in kernels]
        self.macs_stored = [mac_count(kernel) for kernel in kernels]
        self.row_counts = [_row_counts(k, p) for k, p in zip(kernels, params)]

    def group_counts(self, members: tuple[int, ...], hops: list[int]) -> GroupCounts:
        """The summed counts of `members` (whose packets take `hops` link hops each)."""
        return GroupCounts(
            packets=sum(self.packets[member] for member in members),
            link_hops=sum(self.packets[member] * h for member, h in zip(members, hops)),
            macs_dense=sum(self.macs_dense[member] for member in members),
            macs_stored=sum(self.macs_stored[member] for member in members),
        )


class SparsityCounter:
    """Counts a run's firings; one per run."""

    def __init__(self, plan: SparsityPlan):
        self.plan = plan
        self.events = plan.events
        self.stats = SparsityStats(plan.events, *plan.weight_bytes)
        self.packets = 0  # packets the kernels sent
        self.link_hops = 0  # and their chip-to-chip hops

    def fired(self, index: int, inputs: list[np.ndarray], output: np.ndarray, hops: int) -> None:
        """Count one kernel's firing on S samples: its input buffers, its output, and the
        link hops of each of its packets."""
        plan = self.plan
        samples = output.shape[0]
        counts = LayerSparsity(
            activation_elements=output.size,
            activation_zeros=int(np.count_nonzero(output == plan.zeros[index])),
            packets_dense=plan.packets[index] * samples,
            macs_dense=plan.macs_dense[index] * samples,
        )
        sent = counts.activation_elements - counts.activation_zeros
        counts.packets_sent = sent if self.events else counts.packets_dense
        counts.macs_performed = self._performed(index, inputs, samples)
        self.packets += counts.packets_sent
        self.link_hops += counts.packets_sent * hops
        self.stats.per_layer.setdefault(plan.kernels[index].layer, LayerSparsity()).add(counts)

    def fired_dense(
        self, first: int, counts: GroupCounts, output: np.ndarray, samples: int
    ) -> None:
        """Count the firing of kernels of one layer that send every element (no event-based
        activations): `counts` summed over them, their outputs stacked in `output` (first: the
        first kernel). The same sums as `fired` per kernel, with one zero count for the stack."""
        if self.events:
            raise ValueError("fired_dense counts dense dataflow only")
        plan = self.plan
        packets = counts.packets * samples
        layer = LayerSparsity(
            activation_elements=output.size,
            activation_zeros=int(np.count_nonzero(output == plan.zeros[first])),
            packets_dense=packets,
            packets_sent=packets,
            macs_dense=counts.macs_dense * samples,
            macs_performed=counts.macs_stored * samples,
        )
        self.packets += packets
        self.link_hops += counts.link_hops * samples
        self.stats.per_layer.setdefault(plan.kernels[first].layer, LayerSparsity()).add(layer)

    def _performed(self, index: int, inputs: list[np.ndarray], samples: int) -> int:
        plan = self.plan
        stored = plan.macs_stored[index] * samples
        if not self.events or stored == 0 or not inputs:
            return stored
        zero = plan.kernels[index].attrs.get("event_input_zeros", (0,))[0]
        arrived = inputs[0] != zero
        rows = plan.row_counts[index]
        if rows is not None:  # dense: the stored row of every input that arrived
            return int(arrived.reshape(-1, rows.size).sum(axis=0) @ rows)
        return stored * int(np.count_nonzero(arrived)) // max(arrived.size, 1)


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
    Activation sparsity and packets sent need a run (`s2c run --stats-json`)."""
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
        layer["packets_dense"] = layer.get("packets_dense", 0) + kernel.output.packet_count
    totals = {
        key: sum(layer[key] for layer in per_layer.values())
        for key in ("weight_bytes_dense", "weight_bytes_stored", "macs_dense", "macs_stored")
    }
    return {
        "event_activations": any("event_zero" in kernel.attrs for kernel in kernels),
        "csr_kernels": sum(kernel.attrs.get("weight_format") == "csr" for kernel in kernels),
        **totals,
        "packets_dense": sum(kernel.output.packet_count for kernel in kernels),
        "per_layer": per_layer,
    }
