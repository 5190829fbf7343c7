"""Normalisations: softmax, local response, batch and instance normalisation (float32).

softmax (ONNX Softmax-13 / LogSoftmax-13), along one axis, with m = max(x) for stability:
    softmax(x) = exp(x - m) / sum(exp(x - m));  log-softmax(x) = x - m - log(sum(exp(x - m)))
lrn (ONNX LRN), over channels (axis 1) of x[N, C, ...]:
    square_sum[c] = sum of x[i]^2 for i in [c - floor((size-1)/2), c + ceil((size-1)/2)] within
    [0, C); y = x / (bias + alpha / size * square_sum)^beta
batch_norm (ONNX BatchNormalization, inference), per channel c (axis 1):
    y = (x - mean[c]) / sqrt(var[c] + epsilon) * scale[c] + bias[c]
instance_norm (ONNX InstanceNormalization), per sample n and channel c over the spatial axes:
    y = (x - mean_nc) / sqrt(var_nc + epsilon) * scale[c] + bias[c], var the biased variance
"""

from __future__ import annotations

from typing import Any

import numpy as np

Attrs = dict[str, Any]


def _per_channel(parameter: np.ndarray, rank: int) -> np.ndarray:
    """A [C] parameter shaped [C, 1, ...] to broadcast against x[N, C, ...]."""
    return parameter.reshape(-1, *(1,) * (rank - 2))


def softmax(attrs: Attrs, inputs: list[np.ndarray]) -> list[np.ndarray]:
    """Softmax or log-softmax along `axis` (see module docstring)."""
    x = inputs[0]
    axis = attrs["axis"]
    shifted = x - x.max(axis=axis, keepdims=True)
    if attrs["log"]:
        return [shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))]
    exps = np.exp(shifted, out=shifted)  # in place: `shifted` is this call's own array
    exps /= exps.sum(axis=axis, keepdims=True)
    return [exps]


def lrn(attrs: Attrs, inputs: list[np.ndarray]) -> list[np.ndarray]:
    """Local response normalisation across channels (see module docstring)."""
    x = inputs[0]
    size = attrs["size"]
    channels = x.shape[1]
    before, after = (size - 1) // 2, size - 1 - (size - 1) // 2
    squares = np.square(x)
    square_sum = np.zeros_like(x)
    for offset in range(-before, after + 1):
        low, high = max(0, -offset), min(channels, channels - offset)
        square_sum[:, low:high] += squares[:, low + offset : high + offset]
    dtype = x.dtype.type
    scale = dtype(attrs["bias"]) + dtype(attrs["alpha"] / size) * square_sum
    return [x / np.power(scale, dtype(attrs["beta"]))]


def batch_norm(attrs: Attrs, inputs: list[np.ndarray]) -> list[np.ndarray]:
    """Inference batch normalisation with per-channel statistics (see module docstring)."""
    x, scale, bias, mean, var = inputs
    rank = x.ndim
    inv_std = 1 / np.sqrt(var + x.dtype.type(attrs["epsilon"]))
    y = (x - _per_channel(mean, rank)) * _per_channel(inv_std * scale, rank)
    return [y + _per_channel(bias, rank)]


def instance_norm(attrs: Attrs, inputs: list[np.ndarray]) -> list[np.ndarray]:
    """Instance normalisation over the spatial axes (see module docstring)."""
    x, scale, bias = inputs
    axes = tuple(range(2, x.ndim))
    mean = x.mean(axis=axes, keepdims=True, dtype=np.float64)
    centred = x - mean
    var = np.mean(np.square(centred), axis=axes, keepdims=True)
    normalised = centred / np.sqrt(var + attrs["epsilon"])
    y = normalised * _per_channel(scale, x.ndim) + _per_channel(bias, x.ndim)
    return [y.astype(x.dtype)]


KERNELS = {
    "softmax": softmax,
    "lrn": lrn,
    "batch_norm": batch_norm,
    "instance_norm": instance_norm,
}
