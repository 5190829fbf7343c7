"""Correction of pruned conv/dense layers from calibration data (closed form, no training).

Magnitude pruning alone shifts each output's pre-activation; a correction changes the kept
weights and the bias so that, on the calibration inputs, the pruned layer's output stays as
close as possible to the unpruned layer's. For one output o, let a be the layer input one
weight row multiplies (dense: the input vector x[K]; conv: the patch of one output position, the
C/g x prod(kernel) inputs of its group, zero padding included) extended by a 1 for the bias, and
u = [w_o; b_o] its unpruned weights and bias. Over all calibration samples and positions:

    G = sum a a^T  (the Gram matrix, one per layer and group),   m = sum a / count  (mean input)

- `refit`: the kept weights S (the non-zeros after pruning, and the bias) become the least-squares
  fit of the unpruned output: v_S = argmin sum (a_S . v_S - a . u)^2, i.e. G[S, S] v_S = G[S, :] u
  (pruned weights stay 0). A small ridge (1e-6 x the mean diagonal) keeps G[S, S] invertible when an
  input never varies (an always-zero channel). One |S| x |S| solve per output; a layer with more
  than REFIT_INPUTS inputs per output (its Gram would exceed 8 MiB) gets `bias` instead.
- `bias`: only the bias moves, by the mean of what pruning removed:
  b_o += sum_{k pruned} w_o[k] m_k, so the output's mean over the calibration data is unchanged.
- `none`: magnitude pruning as is.

The statistics are of the unpruned graph (one calibration pass before pruning), so every layer is
fitted to the inputs it saw in the original model.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from ir.graph import Graph, Node
from ir.reference.conv import im2col, pad_zero
from ir.reference.window import output_spatial
from passes.calibration import sample_activations

CORRECTIONS = ("refit", "bias", "none")
REFIT_INPUTS = 1024  # inputs per output (plus the bias) up to which `refit` solves exactly
RIDGE = 1e-6


@dataclass
class InputStatistics:
    """Sums over the calibration data of one layer's input patches a (with a trailing 1):
    `gram[g]` = sum a a^T per group g (None when only the mean is kept), `total[g]` = sum a."""

    gram: np.ndarray | None
    total: np.ndarray

    def add(self, patches: np.ndarray) -> None:
        """patches[g, n, P]: P patches of n inputs per group."""
        ones = np.ones((*patches.shape[:1], 1, patches.shape[2]), dtype=np.float64)
        extended = np.concatenate([patches.astype(np.float64), ones], axis=1)
        self.total += extended.sum(axis=2)
        if self.gram is not None:
            self.gram += extended @ extended.transpose(0, 2, 1)


def groups_of(node: Node) -> int:
    return int(node.attrs.get("group", 1)) if node.op == "conv" else 1


def patches(node: Node, x: np.ndarray) -> np.ndarray:
    """The inputs each weight row multiplies, as [groups, inputs per output, positions]."""
    weight = node.inputs[1].constant_data
    if node.op == "dense":
        rows = x.reshape(-1, weight.shape[0])
        return rows.T[None]
    kernel = tuple(weight.shape[2:])
    columns = im2col(
        pad_zero(x, node.attrs["pads"]),
        kernel,
        output_spatial(x.shape, kernel, node.attrs),
        node.attrs,
    )
    group = groups_of(node)
    per_group = weight.shape[1] * int(np.prod(kernel))
    samples = columns.shape[0]
    grouped = columns.reshape(samples, group, per_group, -1).transpose(1, 2, 0, 3)
    return grouped.reshape(group, per_group, -1)


def inputs_per_output(node: Node) -> int:
    weight = node.inputs[1].constant_data
    return weight.shape[0] if node.op == "dense" else int(np.prod(weight.shape[1:]))


def input_statistics(
    graph: Graph, nodes: list[Node], samples: Mapping[str, np.ndarray], correction: str
) -> dict[str, InputStatistics]:
    """Each node's input statistics over the calibration samples of the (unpruned) graph."""
    statistics = {}
    for node in nodes:
        size = inputs_per_output(node) + 1
        refit = correction == "refit" and size - 1 <= REFIT_INPUTS
        group = groups_of(node)
        gram = np.zeros((group, size, size)) if refit else None
        statistics[node.name] = InputStatistics(gram, np.zeros((group, size)))
    for env in sample_activations(graph, samples):
        for node in nodes:
            statistics[node.name].add(patches(node, env[id(node.inputs[0])]))
    return statistics


def correct(node: Node, original: np.ndarray, statistics: InputStatistics) -> str:
    """Refit (or bias-correct) one pruned layer in place; returns the correction applied."""
    pruned = node.inputs[1].constant_data
    rows_original, rows_pruned = _rows(node, original), _rows(node, pruned)
    bias = _bias(node)
    if statistics.gram is not None:
        weights, bias = _refit(rows_original, rows_pruned, bias, statistics.gram)
        applied = "refit"
    else:
        weights, bias = rows_pruned, _bias_corrected(rows_original, rows_pruned, bias, statistics)
        applied = "bias"
    node.inputs[1].data = _from_rows(node, weights).astype(pruned.dtype)
    node.inputs[2].data = bias.astype(node.inputs[2].constant_data.dtype)
    return applied


def _rows(node: Node, weight: np.ndarray) -> np.ndarray:
    """One row of inputs-per-output weights per output: [outputs, n]."""
    if node.op == "dense":
        return weight.T.astype(np.float64)
    return weight.reshape(weight.shape[0], -1).astype(np.float64)


def _from_rows(node: Node, rows: np.ndarray) -> np.ndarray:
    if node.op == "dense":
        return rows.T
    return rows.reshape(node.inputs[1].constant_data.shape)


def _bias(node: Node) -> np.ndarray:
    return node.inputs[2].constant_data.astype(np.float64)


def _group_of_outputs(outputs: int, groups: int) -> np.ndarray:
    return np.arange(outputs) // (outputs // groups)


def _bias_corrected(
    original: np.ndarray, pruned: np.ndarray, bias: np.ndarray, statistics: InputStatistics
) -> np.ndarray:
    """b_o + sum over pruned k of w_o[k] E[a_k]."""
    total = statistics.total
    mean = total[:, :-1] / np.maximum(total[:, -1:], 1.0)  # [groups, n]
    groups = _group_of_outputs(original.shape[0], total.shape[0])
    return bias + ((original - pruned) * mean[groups]).sum(axis=1)


def _refit(
    original: np.ndarray, pruned: np.ndarray, bias: np.ndarray, gram: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares refit of each output's kept weights and bias (module docstring)."""
    weights = np.zeros_like(pruned)
    fitted_bias = bias.copy()
    groups = _group_of_outputs(original.shape[0], gram.shape[0])
    for output in range(original.shape[0]):
        g = gram[groups[output]]
        kept = np.append(pruned[output] != 0, True)
        target = np.append(original[output], bias[output])
        system = g[np.ix_(kept, kept)]
        ridge = RIDGE * max(float(np.trace(system)) / system.shape[0], 1e-12)
        solution = np.linalg.solve(system + ridge * np.eye(system.shape[0]), g[kept] @ target)
        weights[output, kept[:-1]] = solution[:-1]
        fitted_bias[output] = solution[-1]
    return weights, fitted_bias
