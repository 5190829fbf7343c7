"""Data movement: reshape, transpose, permute, concat, split, slice, pad, gather, expand, tile,
identity, dropout and cast. Every op keeps its operand's dtype (cast excepted) and returns fresh
arrays that never share memory with the operands.

slice: attributes are clamped per axis by the frontend: for step > 0, 0 <= start, stop <= dim;
for step < 0, 0 <= start <= dim - 1 and -1 <= stop <= dim - 1, where stop = -1 means "past index
0" (ONNX's end = -dim - 1). Axis i takes x[slice(start, stop if stop >= 0 else None, step)].

pad: pads = (begin..., end...) per axis; negative values crop that side first, then the remaining
positive amounts are filled: constant (`value`), reflect (mirror without repeating the edge, as
numpy "reflect") or edge (repeat the edge value).

permute: y = reshape(transpose(reshape(x, view), perm), shape), one node for a chain that
exporters write as several (attention's head split and merge).
gather: y = take(data, indices, axis), negative indices counting from the end (i + dim).
expand: numpy broadcast of x to `shape`. tile: x repeated `repeats[i]` times along axis i.
cast: conversion to `to`; float to integer truncates toward zero (C semantics, as onnxruntime).
"""

from __future__ import annotations

from typing import Any

import numpy as np

Attrs = dict[str, Any]


def reshape(attrs: Attrs, inputs: list[np.ndarray]) -> list[np.ndarray]:
    """Row-major reshape to `shape`."""
    return [inputs[0].reshape(attrs["shape"]).copy()]


def transpose(attrs: Attrs, inputs: list[np.ndarray]) -> list[np.ndarray]:
    """y = x with axes permuted: y.shape[i] = x.shape[perm[i]]."""
    return [inputs[0].transpose(attrs["perm"]).copy()]


def permute(attrs: Attrs, inputs: list[np.ndarray]) -> list[np.ndarray]:
    """x viewed as `view`, its axes permuted by `perm`, the result viewed as `shape`."""
    moved = inputs[0].reshape(attrs["view"]).transpose(attrs["perm"])
    return [moved.reshape(attrs["shape"]).copy()]


def concat(attrs: Attrs, inputs: list[np.ndarray]) -> list[np.ndarray]:
    """Concatenation of the operands along `axis`."""
    return [np.concatenate(inputs, axis=attrs["axis"])]


def split(attrs: Attrs, inputs: list[np.ndarray]) -> list[np.ndarray]:
    """Consecutive pieces of `sizes[i]` entries along `axis`, one result per piece."""
    boundaries = np.cumsum(attrs["sizes"])[:-1]
    return [piece.copy() for piece in np.split(inputs[0], boundaries, axis=attrs["axis"])]


def slice_(attrs: Attrs, inputs: list[np.ndarray]) -> list[np.ndarray]:
    """Strided slice with clamped bounds (see module docstring for negative steps)."""
    index = tuple(
        slice(start, stop if stop >= 0 else None, step)
        for start, stop, step in zip(attrs["starts"], attrs["stops"], attrs["steps"], strict=True)
    )
    return [inputs[0][index].copy()]


def pad(attrs: Attrs, inputs: list[np.ndarray]) -> list[np.ndarray]:
    """Crop the negative pads, then fill the positive ones by `mode`."""
    x = inputs[0]
    rank = x.ndim
    pads = attrs["pads"]
    begins, ends = pads[:rank], pads[rank:]
    crop = tuple(
        slice(max(-begin, 0), dim - max(-end, 0))
        for dim, begin, end in zip(x.shape, begins, ends, strict=True)
    )
    cropped = x[crop]
    widths = [(max(begin, 0), max(end, 0)) for begin, end in zip(begins, ends, strict=True)]
    if attrs["mode"] == "constant":
        value = x.dtype.type(attrs["value"])
        return [np.pad(cropped, widths, mode="constant", constant_values=value)]
    return [np.pad(cropped, widths, mode=attrs["mode"])]


def gather(attrs: Attrs, inputs: list[np.ndarray]) -> list[np.ndarray]:
    """take(data, indices, axis) with negative indices wrapped."""
    data, indices = inputs
    axis = attrs["axis"]
    wrapped = np.where(indices < 0, indices + data.shape[axis], indices)
    return [np.take(data, wrapped, axis=axis)]


def expand(attrs: Attrs, inputs: list[np.ndarray]) -> list[np.ndarray]:
    """Broadcast x to `shape` (numpy rules)."""
    return [np.broadcast_to(inputs[0], attrs["shape"]).copy()]


def tile(attrs: Attrs, inputs: list[np.ndarray]) -> list[np.ndarray]:
    """x repeated `repeats[i]` times along each axis i."""
    return [np.tile(inputs[0], attrs["repeats"])]


def identity(attrs: Attrs, inputs: list[np.ndarray]) -> list[np.ndarray]:
    """A copy of x (identity, and dropout at inference)."""
    return [inputs[0].copy()]


def cast(attrs: Attrs, inputs: list[np.ndarray]) -> list[np.ndarray]:
    """x converted to the dtype `to`."""
    return [inputs[0].astype(np.dtype(attrs["to"]))]


KERNELS = {
    "reshape": reshape,
    "transpose": transpose,
    "permute": permute,
    "concat": concat,
    "split": split,
    "slice": slice_,
    "pad": pad,
    "gather": gather,
    "expand": expand,
    "tile": tile,
    "identity": identity,
    "dropout": identity,
    "cast": cast,
}
