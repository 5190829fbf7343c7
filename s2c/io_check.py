"""Checking the user's input arrays against an image's I/O map."""

from __future__ import annotations

import numpy as np

from backend.program import IOTensor
from ir.errors import InputError


def stack_inputs(
    io_inputs: list[IOTensor], arrays: dict[str, np.ndarray], source: str
) -> dict[str, np.ndarray]:
    """Inputs shaped (samples, *compiled shape).

    An array may have exactly the compiled shape (one sample), or a leading axis that is a
    multiple of the compiled batch (n samples stacked along the batch axis).
    """
    missing = [io.name for io in io_inputs if io.name not in arrays]
    if missing:
        have = ", ".join(sorted(arrays)) or "nothing"
        raise InputError(f"{source}: no entry for input '{missing[0]}' (it holds: {have})")
    result = {}
    samples = None
    for io in io_inputs:
        array = np.asarray(arrays[io.name])
        stacked = _stack_one(io, array, source)
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


def _stack_one(io: IOTensor, array: np.ndarray, source: str) -> np.ndarray:
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
        raise InputError(
            f"{source}: input '{io.name}' has shape {tuple(array.shape)}, the model takes "
            f"{expected} (or a stack of them along axis 0)"
        )
    return array.reshape(array.shape[0] // batch, *expected)


def unstack_outputs(outputs: dict[str, np.ndarray], single: bool) -> dict[str, np.ndarray]:
    """Outputs back in the user's layout: (samples*batch, ...) or the plain shape for one sample."""
    if single:
        return {name: array[0] for name, array in outputs.items()}
    return {name: array.reshape(-1, *array.shape[2:]) for name, array in outputs.items()}
