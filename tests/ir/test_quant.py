"""Fixed-point requantisation against exact rational arithmetic."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from ir.quant import (
    multiply_by_quantized_multiplier,
    quantize_multiplier,
)


@pytest.mark.parametrize("real", [0.0003, 0.1234, 0.5, 0.9, 1.0, 1.7, 37.5])
def test_multiplier_represents_the_real_value(real: float) -> None:
    multiplier, shift = quantize_multiplier(real)
    assert 2**30 <= multiplier < 2**31
    represented = Fraction(multiplier) * Fraction(2) ** (shift - 31)
    assert abs(float(represented) - real) <= real * 2**-30


@pytest.mark.parametrize("real", [0.0003, 0.1234, 0.9, 1.7])
def test_requantisation_is_within_rounding_of_the_exact_product(real: float) -> None:
    rng = np.random.default_rng(1)
    acc = rng.integers(-(2**20), 2**20, 5000)
    multiplier, shift = quantize_multiplier(real)
    result = multiply_by_quantized_multiplier(acc, multiplier, shift)
    exact = np.array([float(Fraction(int(a)) * Fraction(real)) for a in acc])
    # One rounding of acc * M', where M' differs from M by at most 2^-31 relative.
    assert np.abs(result - exact).max() <= 0.5 + 2**20 * real * 2**-30


def test_rounding_shift_rounds_half_away_from_zero() -> None:
    # M = 1/4: the high multiply halves even x exactly, the shift by 1 then meets the ties.
    multiplier, shift = quantize_multiplier(0.25)
    ties = np.array([2, -2, 6, -6])  # x / 4 = +-0.5, +-1.5
    assert multiply_by_quantized_multiplier(ties, multiplier, shift).tolist() == [1, -1, 2, -2]


def test_single_rounding_rounds_ties_away_from_zero() -> None:
    multiplier, shift = quantize_multiplier(0.5)
    ties = np.array([1, 3, -1, -3])  # x / 2 = +-0.5, +-1.5
    assert multiply_by_quantized_multiplier(ties, multiplier, shift).tolist() == [1, 2, -1, -2]
