"""Tensor types of the IR: frozen dataclasses that check themselves on construction.

A `TensorType` is a static shape (every dimension known, batch included), an element type and, for
quantised tensors, `QuantParams`: real = scale * (stored - zero_point), per tensor (`axis` None) or
per channel along `axis` (one scale and zero point per index of that axis).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

DTYPES: tuple[str, ...] = ("float32", "int8", "uint8", "int16", "int32", "int64", "bool")


@dataclass(frozen=True)
class QuantParams:
    """Affine quantisation: real = scale * (stored - zero_point)."""

    scale: tuple[float, ...]
    zero_point: tuple[int, ...]
    axis: int | None = None

    def __post_init__(self) -> None:
        if not self.scale or len(self.scale) != len(self.zero_point):
            raise ValueError(f"quantisation needs one zero point per scale: {self}")
        if any(not (s > 0 and np.isfinite(s)) for s in self.scale):
            raise ValueError(f"quantisation scales must be positive and finite: {self.scale}")
        if self.axis is None and len(self.scale) != 1:
            raise ValueError("per-tensor quantisation has exactly one scale")


@dataclass(frozen=True)
class TensorType:
    """A static tensor type: shape (batch axis included), element type, optional quantisation."""

    shape: tuple[int, ...]
    dtype: str = "float32"
    quant: QuantParams | None = None

    def __post_init__(self) -> None:
        if self.dtype not in DTYPES:
            raise ValueError(f"unknown dtype {self.dtype!r}; known: {', '.join(DTYPES)}")
        if any((not isinstance(d, int)) or d < 0 for d in self.shape):
            raise ValueError(f"shape must be non-negative integers: {self.shape}")
        if self.quant is not None and self.quant.axis is not None:
            axis = self.quant.axis
            if not 0 <= axis < len(self.shape):
                raise ValueError(f"quantisation axis {axis} outside rank {len(self.shape)}")
            if len(self.quant.scale) != self.shape[axis]:
                raise ValueError(
                    f"per-channel quantisation has {len(self.quant.scale)} scales "
                    f"for {self.shape[axis]} channels"
                )

    @property
    def rank(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def nbytes(self) -> int:
        return self.size * np.dtype(self.dtype).itemsize

    def with_shape(self, shape: tuple[int, ...]) -> TensorType:
        return TensorType(tuple(int(d) for d in shape), self.dtype, None)

    def __str__(self) -> str:
        dims = "x".join(str(d) for d in self.shape)
        text = f"tensor<{dims}x{self.dtype}>" if dims else f"tensor<{self.dtype}>"
        if self.quant is not None:
            text += f"{{q axis={self.quant.axis} n={len(self.quant.scale)}}}"
        return text
