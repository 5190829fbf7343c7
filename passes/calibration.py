"""Calibration: run the float graph on sample inputs and record each activation's range.

The graph is evaluated node by node with `ir.reference`, one sample at a time. Each value keeps
its exact minimum and maximum and a strided subsample of its values (at most `RESERVOIR` per
value) from which the percentile and MSE observers pick a clipping range:

- minmax: [min, max];
- percentile P: [percentile(100 - P), percentile(P)] of the values;
- mse: the symmetric-in-quantiles range [q(1 - t), q(t)] over a grid of t that minimises the
  mean squared error of quantise-dequantise with 256 levels on the subsample.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field

import numpy as np

from ir.errors import InputError, ResourceError
from ir.graph import Graph
from ir.reference import evaluate
from ir.registry import get_op

RESERVOIR = 1 << 18
# The largest tensor calibration evaluates per sample: 2^27 float32 elements (512 MiB) is far
# beyond any activation a PE array holds, and stops a graph with a huge intermediate from eating
# the host's memory before the partitioner could name the layer that does not fit.
CALIBRATION_ELEMENT_LIMIT = 1 << 27
METHODS = ("minmax", "percentile", "mse")


@dataclass
class ValueStats:
    """Running statistics of one value over the calibration samples."""

    low: float = np.inf
    high: float = -np.inf
    samples: list[np.ndarray] = field(default_factory=list)
    zeros: int = 0  # elements exactly 0.0, over all samples
    elements: int = 0

    def add(self, array: np.ndarray, budget: int) -> None:
        flat = np.asarray(array, dtype=np.float32).ravel()
        if flat.size == 0:
            return
        self.zeros += int(flat.size - np.count_nonzero(flat))
        self.elements += flat.size
        self.low = min(self.low, float(flat.min()))
        self.high = max(self.high, float(flat.max()))
        stride = max(1, flat.size // max(budget, 1))
        self.samples.append(flat[::stride])

    def values(self) -> np.ndarray:
        return np.concatenate(self.samples) if self.samples else np.zeros(1, np.float32)


def calibrate(
    graph: Graph,
    inputs: Mapping[str, np.ndarray],
    progress: Callable[[str], None] | None = None,
) -> dict[int, ValueStats]:
    """Statistics per value (keyed by id(value)) over the samples of `inputs`.

    `inputs[name]` has a leading sample axis; each sample has the graph input's shape.
    `progress`, when given, hears "calibrating: sample i of n" before each sample.
    """
    inputs = _stacked(graph, inputs)
    budget = max(RESERVOIR // _sample_count(graph, inputs), 1)
    stats: dict[int, ValueStats] = {}
    for env in sample_activations(graph, inputs, progress):
        for value in graph.inputs:
            stats.setdefault(id(value), ValueStats()).add(env[id(value)], budget)
        for node in graph.nodes:
            for value in node.outputs:
                if value.type.dtype.startswith("float"):
                    stats.setdefault(id(value), ValueStats()).add(env[id(value)], budget)
    return stats


def sample_activations(
    graph: Graph,
    inputs: Mapping[str, np.ndarray],
    progress: Callable[[str], None] | None = None,
) -> Iterator[dict[int, np.ndarray]]:
    """Every value of the float graph (keyed by id(value)), one calibration sample at a time.

    `progress`, when given, hears "calibrating: sample i of n" before each sample.
    """
    _check_sizes(graph)
    inputs = _stacked(graph, inputs)
    count = _sample_count(graph, inputs)
    for index in range(count):
        if progress is not None:
            progress(f"calibrating: sample {index + 1} of {count}")
        env: dict[int, np.ndarray] = {}
        for value in graph.inputs:
            env[id(value)] = inputs[value.name][index].astype(value.type.dtype)
        for node in graph.nodes:
            operands = [v.constant_data if v.is_constant else env[id(v)] for v in node.inputs]
            results = evaluate(node.op, get_op(node.op).with_defaults(node.attrs), operands)
            for value, result in zip(node.outputs, results):
                env[id(value)] = result
        yield env


def _check_sizes(graph: Graph) -> None:
    """Refuse, before evaluating anything, a tensor too large to calibrate on the host."""
    for node in graph.nodes:
        for value in node.outputs:
            if value.type.size > CALIBRATION_ELEMENT_LIMIT:
                raise ResourceError(
                    f"'{node.name}' ({node.op}): calibration would evaluate '{value.name}' of "
                    f"shape {value.type.shape} ({value.type.size} elements); the limit is "
                    f"{CALIBRATION_ELEMENT_LIMIT} elements per tensor"
                )


def _stacked(graph: Graph, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Samples along a new leading axis; a stack along a batch axis of 1 is accepted too."""
    result = dict(inputs)
    for value in graph.inputs:
        array = np.asarray(inputs.get(value.name, np.zeros(0)))
        shape = value.type.shape
        batch_stack = (
            bool(shape)
            and shape[0] == 1
            and array.ndim == len(shape)
            and tuple(array.shape[1:]) == shape[1:]
        )
        if batch_stack:
            result[value.name] = array.reshape(array.shape[0], *shape)
    return result


def _sample_count(graph: Graph, inputs: Mapping[str, np.ndarray]) -> int:
    counts = set()
    for value in graph.inputs:
        if value.name not in inputs:
            have = ", ".join(sorted(inputs)) or "nothing"
            raise InputError(f"calibration data has no entry for input '{value.name}' ({have})")
        array = np.asarray(inputs[value.name])
        if tuple(array.shape[1:]) != value.type.shape:
            raise InputError(
                f"calibration data for '{value.name}' has shape {tuple(array.shape)}; expected "
                f"(samples, {', '.join(str(d) for d in value.type.shape)})"
            )
        if not np.all(np.isfinite(array)):
            raise InputError(f"calibration data for '{value.name}' contains NaN or Inf")
        counts.add(array.shape[0])
    if len(counts) != 1 or 0 in counts:
        raise InputError("calibration inputs must hold the same, non-zero number of samples")
    return counts.pop()


def zero_fractions(graph: Graph, stats: dict[int, ValueStats]) -> dict[str, float]:
    """Per node (by name): the fraction of its first output's elements that were exactly 0."""
    fractions = {}
    for node in graph.nodes:
        entry = stats.get(id(node.outputs[0]))
        if entry is not None and entry.elements:
            fractions[node.name] = entry.zeros / entry.elements
    return fractions


def value_range(stats: ValueStats, method: str, percentile: float) -> tuple[float, float]:
    """The clipping range an observer picks for one value."""
    if method == "minmax":
        return stats.low, stats.high
    values = stats.values()
    if method == "percentile":
        low, high = np.percentile(values, [100.0 - percentile, percentile])
        return float(low), float(high)
    if method == "mse":
        return _mse_range(values, stats.low, stats.high)
    raise InputError(f"unknown calibration method {method!r}; choose from {', '.join(METHODS)}")


def _mse_range(values: np.ndarray, low: float, high: float) -> tuple[float, float]:
    best = (low, high)
    best_error = np.inf
    for tail in (1.0, 0.99999, 0.9999, 0.999, 0.995, 0.99, 0.98):
        lo = min(float(np.quantile(values, 1.0 - tail)), 0.0)
        hi = max(float(np.quantile(values, tail)), 0.0)
        if hi - lo <= 0:
            continue
        scale = (hi - lo) / 255.0
        zero = np.round(-128 - lo / scale)
        q = np.clip(np.round(values / scale) + zero, -128, 127)
        error = float(np.mean(((q - zero) * scale - values) ** 2))
        if error < best_error:
            best, best_error = (lo, hi), error
    return best


def synthetic_inputs(graph: Graph, samples: int = 8, seed: int = 0) -> dict[str, np.ndarray]:
    """Seeded standard-normal calibration inputs of the graph's input shapes."""
    rng = np.random.default_rng(seed)
    return {
        v.name: rng.standard_normal((samples, *v.type.shape)).astype(np.float32)
        for v in graph.inputs
    }
