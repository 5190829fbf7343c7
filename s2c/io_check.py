"""Checking the user's input arrays against an image's I/O map."""

from __future__ import annotations

import json

import numpy as np

from backend.program import IOTensor
from ir.errors import InputError


def stack_inputs(
    io_inputs: list[IOTensor],
    arrays: dict[str, np.ndarray],
    source: str,
    metadata: dict[str, str] | None = None,
) -> dict[str, np.ndarray]:
    """Inputs shaped (samples, *compiled shape).

    An array may have exactly the compiled shape (one sample), or a leading axis that is a
    multiple of the compiled batch (n samples stacked along the batch axis). `metadata` (the
    image's) names the recurrent layers' sequence axes, for the message of a wrong length.
    """
    missing = [io.name for io in io_inputs if io.name not in arrays]
    if missing:
        have = ", ".join(sorted(arrays)) or "nothing"
        raise InputError(f"{source}: no entry for input '{missing[0]}' (it holds: {have})")
    result = {}
    samples = None
    for io in io_inputs:
        array = np.asarray(arrays[io.name])
        stacked = _stack_one(io, array, source, _sequence_axes(metadata or {}, io.name))
        if samples is not None and stacked.shape[0] != samples:
            raise InputError(
                f"{source}: input '{io.name}' holds {stacked.shape[0]} samples, others {samples}"
            )
        samples = stacked.shape[0]
        result[io.name] = stacked
    return result


def host_dtype(io: IOTensor) -> str:
    """The dtype the user gives or gets: float32 for tensors the host (de)quantises."""
    return "float32" if io.quant is not None else io.dtype


def _sequence_axes(metadata: dict[str, str], name: str) -> dict[int, str]:
    """Axis -> recurrent layer of the input's axes that are sequence axes (METADATA)."""
    entries = json.loads(metadata.get("sequence_axes", "{}")).get(name, [])
    return {int(axis): str(layer) for axis, _, layer in entries}


def _shape_message(io: IOTensor, shape: tuple[int, ...], sequence: dict[int, str]) -> str:
    """What is wrong with an input's shape: the first axis (past the batch) whose length
    differs, with the recurrent layer whose sequence length it fixes."""
    expected = tuple(io.shape)
    text = f"input '{io.name}' has shape {shape}, the model takes {expected}"
    if len(shape) != len(expected):
        return f"{text} (or a stack of them along axis 0)"
    axis = next((a for a in range(1, len(shape)) if shape[a] != expected[a]), 0)
    if axis == 0:
        return f"{text} (or a stack of them along axis 0)"
    text += f": axis {axis} has length {shape[axis]}, the image was compiled for {expected[axis]}"
    if axis in sequence:
        text += (
            f" (the sequence length of recurrent layer '{sequence[axis]}', fixed at compile "
            "time: compile the model again for this length)"
        )
    return text


def _stack_one(
    io: IOTensor, array: np.ndarray, source: str, sequence: dict[int, str]
) -> np.ndarray:
    expected = tuple(io.shape)
    dtype = host_dtype(io)
    if not np.can_cast(array.dtype, dtype, casting="same_kind"):
        raise InputError(
            f"{source}: input '{io.name}' has dtype {array.dtype}, the model takes {dtype}"
        )
    array = array.astype(dtype, copy=False)
    if tuple(array.shape) == expected:
        return array[None]
    batch = expected[0] if expected else 1
    fits = (
        len(array.shape) == len(expected)
        and array.shape[1:] == expected[1:]
        and array.shape[0] % max(batch, 1) == 0
        and array.shape[0] > 0
    )
    if not fits:
        raise InputError(f"{source}: {_shape_message(io, tuple(array.shape), sequence)}")
    return array.reshape(array.shape[0] // batch, *expected)


def unstack_outputs(outputs: dict[str, np.ndarray], single: bool) -> dict[str, np.ndarray]:
    """Outputs back in the user's layout: (samples*batch, ...) or the plain shape for one sample."""
    if single:
        return {name: array[0] for name, array in outputs.items()}
    return {name: array.reshape(-1, *array.shape[2:]) for name, array in outputs.items()}
