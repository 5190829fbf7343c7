"""The int8 kernels' fast paths against the plain definitions they replace."""

from __future__ import annotations

import numpy as np

from backend.kernels_int8 import FLOAT32_EXACT, exact_weight, mbqm
from ir.quant import multiply_by_quantized_multiplier, quantize_multipliers


def test_mbqm_equals_the_definition_on_ties_negatives_and_per_channel_multipliers():
    rng = np.random.default_rng(3)
    acc = rng.integers(-(2**31), 2**31, (2, 4, 300), dtype=np.int64)
    acc[:, :, :8] = [32, -32, 96, -96, 31, -33, 0, -1]  # ties of 1/64 and their neighbours
    multipliers, shifts = quantize_multipliers(np.array([2.0**-6, 0.37, 1e-4, 0.999]))
    multipliers, shifts = multipliers.reshape(4, 1), shifts.reshape(4, 1)
    expected = multiply_by_quantized_multiplier(acc, multipliers, shifts)
    np.testing.assert_array_equal(mbqm(acc, multipliers, shifts), expected)
    assert expected[0, 0, 0] == 1 and expected[0, 0, 1] == -1  # 0.5 and -0.5 round away from 0
    for multiplier, shift in [(1 << 30, 1), (1 << 30, 3), (1 << 30, 32)]:  # M = 1, 4, 2^31
        small = acc >> 40
        np.testing.assert_array_equal(
            mbqm(small, multiplier, shift),
            multiply_by_quantized_multiplier(small, multiplier, shift),
        )


def test_exact_weight_uses_float32_only_below_the_exact_bound():
    # 255 * sum|w| per channel: 255 * 127 * 518 < 2^24 <= 255 * 127 * 519 (zero point -128)
    below = np.full((2, 518), 127, dtype=np.int8)
    above = np.full((2, 519), 127, dtype=np.int8)
    assert 255 * 127 * 518 < FLOAT32_EXACT <= 255 * 127 * 519
    assert exact_weight(below, -128, 0).dtype == np.float32
    assert exact_weight(above, -128, 0).dtype == np.float64
    assert exact_weight(above.T, 0, 1).dtype == np.float32  # |x - 0| <= 128 here
