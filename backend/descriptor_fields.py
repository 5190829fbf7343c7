"""Field checks for kernel descriptors: one kernel's attributes, ports and parameters.

A `Descriptor` wraps one kernel of one PE as the image holds it and offers one small check per
kind of field (an integer attribute in a range, a tuple of a given length, a parameter of a given
role, dtype and shape, the output box a kernel computes, ...). Each check either returns the
value, now known to be sound, or raises `InputError` with one line naming the PE (chip, core),
the kernel's index in the PE, its opcode and layer, the field, the value found and the limit it
breaks. The per-opcode rules in `backend.descriptor_check` are written with these checks.

Numeric regimes (docs/numerics.md): a kernel computes in float32 ("float"), on int8 codes with
integer accumulators ("int8", attribute `int8` = 1), or as an fp32 island between int8 tensors
("island", attribute `float_island` = 1: inputs dequantised with `input_scales` and
`input_zero_points` per IR operand, the float result quantised with `output_scale` and
`output_zero_point`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any, NoReturn

import numpy as np

from backend.program import InputPort, Kernel, PECoord, TensorRef
from ir.errors import InputError
from ir.quant import INT8_MAX, INT8_MIN

# Bound on any coordinate, extent, stride or offset in a descriptor. An image's tensors hold at
# most 2^28 bytes per I/O tensor and a box must fit one PE's SRAM, so real values are far below.
COORDINATE_LIMIT = 1 << 40
# Bound on the elements of any temporary array the interpreter makes to fire one kernel (a
# zero-padded input, im2col columns, pooling windows, a whole-operand result): 2^24 elements,
# 128 MiB as float64. A slice of a real layer, whose boxes fit 128 KiB of SRAM, needs far less.
WORK_LIMIT = 1 << 24
# Shifts of the fixed-point requantisation: real = multiplier * 2^(shift - 31) (ir.quant).
SHIFT_RANGE = (-31, 31)
MULTIPLIER_RANGE = (0, (1 << 31) - 1)
INT8_RANGE = (INT8_MIN, INT8_MAX)
# Quantisation scales are applied in float32 (ir.quant): they must be normal float32 numbers.
SCALE_RANGE = (float(np.finfo(np.float32).tiny), float(np.finfo(np.float32).max))


def is_scale(value: object) -> bool:
    """A quantisation scale: a float that float32 holds as a positive normal number."""
    return isinstance(value, float) and SCALE_RANGE[0] <= value <= SCALE_RANGE[1]


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


class Descriptor:
    """One kernel descriptor under check: where it is, and a check per kind of field."""

    def __init__(self, pe: PECoord, index: int, kernel: Kernel) -> None:
        self.pe = pe
        self.index = index
        self.kernel = kernel
        self.attrs = kernel.attrs
        self.params: dict[str, TensorRef] = {}
        for ref in kernel.params:
            if ref.role in self.params:
                self.fail("parameter role", ref.role, "appears twice")
            self.params[ref.role] = ref

    @property
    def opcode(self) -> str:
        return self.kernel.opcode

    @property
    def out_shape(self) -> tuple[int, ...]:
        return self.kernel.output.box.shape

    def fail(self, field: str, value: object, limit: str) -> NoReturn:
        """Refuse the image: PE, kernel index, opcode, layer, field, value and limit, one line."""
        kernel = self.kernel
        raise InputError(
            f"image: PE {self.pe.chip}:{self.pe.core} kernel {self.index} "
            f"({_show(kernel.opcode)[1:-1]}, layer {_show(kernel.layer)}#{kernel.slice_index}): "
            f"{field} = {_show(value)}: {limit}"
        )

    # -- attributes ---------------------------------------------------------------------------
    def attr(self, name: str, default: Any = None) -> Any:
        if name in self.attrs:
            return self.attrs[name]
        if default is None:
            self.fail(f"attribute '{name}'", "missing", f"{self.opcode} needs it")
        return default

    def flag(self, name: str) -> bool:
        """An optional 0/1 attribute (absent means 0)."""
        value = self.attrs.get(name, 0)
        if value not in (0, 1) or not isinstance(value, int):
            self.fail(f"attribute '{name}'", value, "must be 0 or 1")
        return bool(value)

    def int_attr(self, name: str, low: int, high: int, default: int | None = None) -> int:
        value = self.attr(name, default)
        if not _is_int(value) or not low <= value <= high:
            self.fail(f"attribute '{name}'", value, f"must be an integer in {low}..{high}")
        return value

    def ints_attr(self, name: str, length: int, low: int, high: int) -> tuple[int, ...]:
        value = self.attr(name)
        if not isinstance(value, tuple) or len(value) != length:
            self.fail(f"attribute '{name}'", value, f"must hold {length} integers")
        if not all(_is_int(v) and low <= v <= high for v in value):
            self.fail(f"attribute '{name}'", value, f"values must be integers in {low}..{high}")
        return value

    def float_attr(self, name: str) -> float:
        value = self.attr(name)
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            self.fail(f"attribute '{name}'", value, "must be a number")
        if not math.isfinite(value):
            self.fail(f"attribute '{name}'", value, "must be finite")
        return float(value)

    def str_attr(self, name: str, choices: Sequence[str], default: str | None = None) -> str:
        value = self.attr(name, default)
        if value not in choices:
            self.fail(f"attribute '{name}'", value, f"must be one of {', '.join(choices)}")
        return value

    # -- ports --------------------------------------------------------------------------------
    def ports(self, low: int, high: int | None = None) -> tuple[InputPort, ...]:
        """The input ports, between `low` and `high` (default: exactly `low`) of them."""
        inputs = self.kernel.inputs
        high = low if high is None else high
        if not low <= len(inputs) <= high:
            limit = f"{self.opcode} takes {low}" + (f"..{high}" if high != low else "")
            self.fail("input port count", len(inputs), limit)
        return inputs

    def rank_at_least(self, port: int, rank: int) -> tuple[int, ...]:
        shape = self.kernel.inputs[port].box.shape
        if len(shape) < rank:
            self.fail(f"input {port} box", shape, f"{self.opcode} needs rank >= {rank}")
        return shape

    def dtypes(self, inputs: str | None, output: str) -> None:
        """Every input port holds `inputs` (None: the output's dtype); the output is `output`."""
        for number, port in enumerate(self.kernel.inputs):
            expected = output if inputs is None else inputs
            if port.dtype != expected:
                self.fail(f"input {number} dtype", port.dtype, f"{self.opcode} reads {expected}")
        self.output_dtype(output)

    def output_dtype(self, dtype: str) -> None:
        if self.kernel.output.dtype != dtype:
            self.fail("output dtype", self.kernel.output.dtype, f"{self.opcode} writes {dtype}")

    def output_shape(self, computed: Sequence[int]) -> None:
        """The output box has the shape the kernel computes from its inputs and attributes."""
        if tuple(computed) != self.out_shape:
            self.fail("output box shape", self.out_shape, f"the kernel computes {tuple(computed)}")

    def work(self, elements: int, what: str) -> None:
        if elements > WORK_LIMIT:
            self.fail(what, f"{elements} elements", f"at most {WORK_LIMIT} per kernel")

    # -- parameters ---------------------------------------------------------------------------
    def roles(self, required: Sequence[str], optional: Sequence[str] = ()) -> None:
        for role in required:
            if role not in self.params:
                self.fail("parameters", sorted(self.params), f"{self.opcode} needs '{role}'")
        for role in self.params:
            if role not in required and role not in optional:
                allowed = ", ".join([*required, *optional]) or "none"
                self.fail("parameter role", role, f"{self.opcode} takes {allowed}")

    def param(self, role: str, dtype: str, shape: Sequence[int | None]) -> tuple[int, ...]:
        """The parameter's shape, checked against `shape` (None: any extent on that axis)."""
        ref = self.params[role]
        if ref.dtype != dtype:
            self.fail(f"parameter '{role}' dtype", ref.dtype, f"must be {dtype}")
        matches = len(ref.shape) == len(shape) and all(
            want is None or want == got for want, got in zip(shape, ref.shape)
        )
        if not matches:
            wanted = tuple("any" if s is None else s for s in shape)
            self.fail(f"parameter '{role}' shape", ref.shape, f"must be {wanted}")
        return ref.shape

    # -- numeric regime -----------------------------------------------------------------------
    def regime(self) -> str:
        """'float', 'int8' or 'island'; an island's scales and zero points are checked too.

        An island dequantises port p with `input_scales[o]` and `input_zero_points[o]`, where o
        is the IR operand the port holds (the non-negative entries of `operands`, in order, or
        the port's position), so each such o must index those tuples.
        """
        int8, island = self.flag("int8"), self.flag("float_island")
        if int8 and island:
            self.fail("attribute 'float_island'", 1, "excludes attribute 'int8'")
        if not island:
            return "int8" if int8 else "float"
        inputs = len(self.kernel.inputs)
        operands = self.attr("operands", tuple(range(inputs)))
        if not isinstance(operands, tuple) or not all(_is_int(o) for o in operands):
            self.fail("attribute 'operands'", operands, "must be a tuple of integers")
        ports = [o for o in operands if o >= 0] or list(range(inputs))
        if len(ports) != inputs:
            self.fail("attribute 'operands'", operands, f"must name the {inputs} input ports")
        scales = self.attr("input_scales")
        if not isinstance(scales, tuple) or len(scales) <= max(ports, default=-1):
            self.fail("attribute 'input_scales'", scales, f"needs a scale for operands {ports}")
        if not all(is_scale(s) or (isinstance(s, float) and math.isnan(s)) for s in scales):
            self.fail("attribute 'input_scales'", scales, f"must be in {SCALE_RANGE} or NaN")
        self.ints_attr("input_zero_points", len(scales), *INT8_RANGE)
        if not is_scale(self.attr("output_scale")):
            self.fail(
                "attribute 'output_scale'", self.attrs["output_scale"], f"not in {SCALE_RANGE}"
            )
        self.int_attr("output_zero_point", *INT8_RANGE)
        return "island"

    def requantisation(self, channels: int) -> None:
        """int8 result: per-channel multiplier and shift, output zero point and clamp bounds."""
        self.param("multiplier", "int32", (channels,))
        self.param("shift", "int32", (channels,))
        self.int_attr("output_zero_point", *INT8_RANGE)
        low = self.int_attr("clamp_low", *INT8_RANGE)
        self.int_attr("clamp_high", low, INT8_MAX)

    def fixed_point(self, name: str, count: int) -> None:
        """Attribute `name` holds `count` (multiplier, shift) pairs."""
        value = self.ints_attr(name, 2 * count, -COORDINATE_LIMIT, COORDINATE_LIMIT)
        for multiplier, shift in zip(value[::2], value[1::2]):
            if not MULTIPLIER_RANGE[0] <= multiplier <= MULTIPLIER_RANGE[1]:
                self.fail(
                    f"attribute '{name}'", value, f"multipliers must be in {MULTIPLIER_RANGE}"
                )
            if not SHIFT_RANGE[0] <= shift <= SHIFT_RANGE[1]:
                self.fail(f"attribute '{name}'", value, f"shifts must be in {SHIFT_RANGE}")
