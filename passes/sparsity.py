"""Magnitude pruning of conv and dense weights, and detection of weights that are already sparse.

Pruning (no fine-tuning): with a fraction p in [0, 1), the k = floor(p * n) weights of smallest
magnitude |w| become exactly 0.
- per layer (default): each prunable layer loses k = floor(p * n_layer) of its own n_layer weights;
- global (`global_threshold`): one ranking over the weights of every prunable layer together; the
  k = floor(p * n_all) smallest go, so layers with small weights lose more than others.
A quantised weight (a model that arrives quantised) is ranked by its real magnitude
|scale[c] x (q - z[c])| and a pruned code becomes the zero point. Ties at the cut are broken by
position (a stable sort of |w| in row-major order), so exactly k
weights go and the result is deterministic. The first and last conv/dense layers (in graph order)
are exempt unless `first_last`: they see the raw input and produce the logits, and pruning them
costs the most accuracy for the fewest weights.

Correction (`passes.prune_correction`): with calibration samples (the user's --calib), each
pruned float layer's kept weights and bias are refit by least squares to its unpruned output on
those samples (`refit`, the default), or only its bias is shifted by the mean removed (`bias`);
without calibration samples, or with `none`, the magnitude-pruned weights stay as they are.

Detection: every conv/dense layer's zero weights are counted before and after pruning, so a model
that arrives sparse (pruned by its trainer) is reported, and the backend stores any sparse weight
compressed whenever that is smaller (`backend.sparse_weights`). The pass runs before quantisation
and spiking conversion: a zero weight quantises to the code 0 (weights are symmetric) and a zero
synapse stays a zero synapse, so pruning means the same in float, int8 and snn modes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from ir.errors import InputError
from ir.graph import Graph, Node, Value
from passes.base import Pass
from passes.prune_correction import CORRECTIONS, correct, input_statistics

PRUNABLE_OPS = ("conv", "dense")


@dataclass
class LayerSparsity:
    """Weights of one layer and how many of them are zero, as given and after pruning."""

    weights: int
    zeros_given: int
    zeros: int
    correction: str = "none"  # how the kept weights were corrected (passes.prune_correction)

    def as_dict(self) -> dict[str, int | str]:
        return {
            "weights": self.weights,
            "zeros_given": self.zeros_given,
            "zeros": self.zeros,
            "correction": self.correction,
        }


def check_fraction(fraction: float) -> None:
    """--prune must be in [0, 1): pruning every weight leaves nothing to compute."""
    if not 0.0 <= fraction < 1.0:
        raise InputError(f"--prune must be in [0, 1), got {fraction}")


def check_correction(correction: str) -> None:
    if correction not in CORRECTIONS:
        raise InputError(f"--prune-correction {correction!r}: choose from {', '.join(CORRECTIONS)}")


def weighted_layers(graph: Graph) -> list[Node]:
    """conv and dense nodes with a constant weight, in graph order."""
    return [n for n in graph.nodes if n.op in PRUNABLE_OPS and n.inputs[1].is_constant]


@dataclass(frozen=True)
class Prune(Pass):
    """Zero the smallest-magnitude fraction of conv/dense weights; record every layer's zeros."""

    name: ClassVar[str] = "prune"
    fraction: float = 0.0
    global_threshold: bool = False
    first_last: bool = False
    calibration: Mapping[str, np.ndarray] | None = field(default=None, compare=False)
    correction: str = "refit"
    report: dict[str, LayerSparsity] = field(default_factory=dict, compare=False)

    def run(self, graph: Graph) -> bool:
        check_fraction(self.fraction)
        check_correction(self.correction)
        layers = weighted_layers(graph)
        for node in layers:
            zeros = zero_count(node.inputs[1])
            self.report[node.name] = LayerSparsity(node.inputs[1].constant_data.size, zeros, zeros)
        prunable = self._prunable(layers)
        if self.fraction == 0.0 or not prunable:
            return False
        corrected = [node for node in prunable if self._correctable(node)]
        statistics = (
            input_statistics(graph, corrected, self.calibration, self.correction)
            if corrected and self.calibration is not None
            else {}
        )
        originals = {node.name: node.inputs[1].constant_data.copy() for node in corrected}
        if self.global_threshold:
            _prune_global(prunable, self.fraction)
        else:
            for node in prunable:
                _prune_layer(node, self.fraction)
        for node in prunable:
            _check_not_empty(node, self)
        for node in corrected:
            if node.name in statistics:
                _ensure_bias(graph, node)
                applied = correct(node, originals[node.name], statistics[node.name])
                self.report[node.name].correction = applied
        for node in layers:
            self.report[node.name].zeros = zero_count(node.inputs[1])
        return True

    def _prunable(self, layers: list[Node]) -> list[Node]:
        return layers if self.first_last else layers[1:-1]

    def _correctable(self, node: Node) -> bool:
        """A float layer whose weight and bias no other node shares."""
        if self.correction == "none" or node.inputs[1].type.quant is not None:
            return False
        return all(len(value.uses) == 1 for value in node.inputs[1:])


def _ensure_bias(graph: Graph, node: Node) -> None:
    """Give a layer without a bias a zero one (a correction moves the bias)."""
    if len(node.inputs) == 3:
        return
    weight = node.inputs[1].constant_data
    outputs = weight.shape[1] if node.op == "dense" else weight.shape[0]
    bias = graph.constant(f"{node.name}_bias", np.zeros(outputs, dtype=weight.dtype))
    node.inputs.append(bias)
    bias.uses.append((node, 2))


def _zero_code(value: Value) -> np.ndarray:
    """The stored code of a real 0: 0 for float, the zero point (per channel) when quantised."""
    quant = value.type.quant
    weight = value.constant_data
    if quant is None:
        return np.zeros((), dtype=weight.dtype)
    zeros = np.asarray(quant.zero_point, dtype=weight.dtype)
    if quant.axis is None:
        return zeros.reshape(())
    shape = [1] * weight.ndim
    shape[quant.axis] = -1
    return zeros.reshape(shape)


def magnitudes(value: Value) -> np.ndarray:
    """|real weight| in float64: a quantised weight's codes scaled by their channel's scale."""
    weight = value.constant_data.astype(np.float64)
    quant = value.type.quant
    if quant is None:
        return np.abs(weight)
    scale = np.asarray(quant.scale, dtype=np.float64)
    if quant.axis is not None:
        shape = [1] * weight.ndim
        shape[quant.axis] = -1
        scale = scale.reshape(shape)
    else:
        scale = scale.reshape(())
    return np.abs((weight - _zero_code(value).astype(np.float64)) * scale)


def zero_count(value: Value) -> int:
    return int(np.count_nonzero(magnitudes(value) == 0))


def _smallest(magnitudes: np.ndarray, count: int) -> np.ndarray:
    """Flat indices of the `count` smallest magnitudes (ties: lower index first)."""
    return np.argsort(magnitudes, kind="stable")[:count]


def _prune(value: Value, mask: np.ndarray) -> None:
    """Set the weights under `mask` to the code of a real 0."""
    weight = value.constant_data
    value.data = np.where(mask, _zero_code(value), weight).astype(weight.dtype)


def _prune_layer(node: Node, fraction: float) -> None:
    value = node.inputs[1]
    flat = magnitudes(value).reshape(-1)
    mask = np.zeros(flat.size, dtype=bool)
    mask[_smallest(flat, int(fraction * flat.size))] = True
    _prune(value, mask.reshape(value.constant_data.shape))


def _prune_global(nodes: list[Node], fraction: float) -> None:
    """One ranking of |w| over all layers; each layer loses its share of the smallest."""
    values = [node.inputs[1] for node in nodes]
    flat = np.concatenate([magnitudes(value).reshape(-1) for value in values])
    pruned = np.zeros(flat.size, dtype=bool)
    pruned[_smallest(flat, int(fraction * flat.size))] = True
    offset = 0
    for value in values:
        shape = value.constant_data.shape
        size = value.constant_data.size
        _prune(value, pruned[offset : offset + size].reshape(shape))
        offset += size


def _check_not_empty(node: Node, prune: Prune) -> None:
    if zero_count(node.inputs[1]) < node.inputs[1].constant_data.size:
        return
    how = "--prune-global" if prune.global_threshold else "--prune"
    raise InputError(
        f"'{node.name}' ({node.op}): {how} {prune.fraction} leaves it no non-zero weight; "
        "prune less" + (" or per layer (without --prune-global)" if prune.global_threshold else "")
    )
