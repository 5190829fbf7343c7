"""Magnitude pruning (passes/sparsity.py) on the golden MLP (three dense layers, 64-128-64-10)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from ir.errors import InputError
from ir.types import QuantParams
from passes.sparsity import Prune, weighted_layers
from s2c.frontend import load_onnx

MLP = Path(__file__).resolve().parents[2] / "golden" / "mlp" / "model.onnx"


def _weights(graph) -> list[np.ndarray]:
    return [node.inputs[1].constant_data.copy() for node in weighted_layers(graph)]


def test_per_layer_pruning_zeroes_the_smallest_fraction_of_middle_layers_only() -> None:
    graph = load_onnx(MLP)
    before = _weights(graph)
    assert Prune(0.7).run(graph)
    after = _weights(graph)
    # first and last layers are exempt by default
    np.testing.assert_array_equal(after[0], before[0])
    np.testing.assert_array_equal(after[2], before[2])
    middle, original = after[1], before[1]
    assert np.count_nonzero(middle == 0) == int(0.7 * original.size)
    # every kept weight is at least as large as every pruned one (independent check by sorting)
    kept = np.abs(original[middle != 0])
    pruned = np.abs(original[middle == 0])
    assert kept.min() >= pruned.max()
    np.testing.assert_array_equal(middle[middle != 0], original[middle != 0])


def test_first_last_and_global_ranking() -> None:
    graph = load_onnx(MLP)
    before = _weights(graph)
    Prune(0.5, global_threshold=True, first_last=True).run(graph)
    after = _weights(graph)
    magnitudes = np.sort(np.concatenate([np.abs(w).ravel() for w in before]))
    cut = magnitudes[int(0.5 * magnitudes.size) - 1]
    total_zeros = sum(int(np.count_nonzero(w == 0)) for w in after)
    assert total_zeros == int(0.5 * magnitudes.size)
    for old, new in zip(before, after):
        assert np.all(np.abs(old[new == 0]) <= cut)
        assert np.all(np.abs(old[new != 0]) >= cut)
    # one ranking: layers lose different fractions (all three lose some: first/last included)
    fractions = [np.count_nonzero(w == 0) / w.size for w in after]
    assert min(fractions) > 0 and max(fractions) - min(fractions) > 0.01


def test_already_sparse_weights_are_detected() -> None:
    graph = load_onnx(MLP)
    value = weighted_layers(graph)[0].inputs[1]
    weight = value.constant_data.copy()
    weight[:, ::4] = 0
    value.data = weight
    prune = Prune(0.0)
    assert not prune.run(graph)
    first = prune.report[weighted_layers(graph)[0].name]
    assert first.zeros_given == first.zeros == int(np.count_nonzero(weight == 0)) > 0


@pytest.mark.parametrize("fraction", [1.0, -0.1, 1.5])
def test_fraction_outside_zero_one_is_refused(fraction: float) -> None:
    with pytest.raises(InputError, match=r"--prune must be in \[0, 1\)"):
        Prune(fraction).run(load_onnx(MLP))


def test_global_pruning_that_empties_a_layer_is_refused() -> None:
    graph = load_onnx(MLP)
    middle = weighted_layers(graph)[1].inputs[1]
    middle.data = middle.constant_data * 1e-6  # this layer's weights rank below all others
    with pytest.raises(InputError, match="leaves it no non-zero weight"):
        Prune(0.6, global_threshold=True, first_last=True).run(graph)


def test_quantised_weights_are_ranked_by_real_magnitude() -> None:
    graph = load_onnx(MLP)
    value = weighted_layers(graph)[1].inputs[1]  # dense weight [128, 64]: channels on axis 1
    rng = np.random.default_rng(4)
    codes = rng.integers(1, 127, size=value.constant_data.shape).astype(np.int8)
    scales = np.where(np.arange(64) < 32, 1e-3, 1.0)  # half the channels hold tiny real values
    value.data = codes
    value.type = replace(
        value.type, dtype="int8", quant=QuantParams(tuple(scales), (0,) * 64, axis=1)
    )
    Prune(0.5).run(graph)
    # the real magnitudes of the small-scale channels are all below the others': they all go
    assert np.all(value.constant_data[:, :32] == 0)
    assert np.all(value.constant_data[:, 32:] != 0)
