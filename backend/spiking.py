"""Spiking kernels: integrate-and-fire neurons of an snn image, one timestep at a time.

A spiking kernel holds, in its PE's SRAM, the int32 membrane of each neuron of its output box
(`membrane`, the initial state), an int32 threshold and bias current per output channel and its
int8 synapses (`weight`). One timestep of one kernel (docs/numerics.md, "snn"):

    current  = (sum over delivered spikes of their synaptic weights) << F  + bias
               (conv: the shared kernel applied around each spike's position; dense: the
               synaptic row of each spiking source neuron; add: one weight per operand and
               channel; a "current" input port reads int8 input minus its zero point instead of
               spikes, computed once because the input is constant)
    membrane = saturate_int32(membrane + current)
    spike    = membrane >= threshold;  membrane -= threshold where spike   (reset by subtraction)

A non-spiking integrator (`fire` = 0, the output layer) only integrates; after T steps its
membrane is the result. The sums are exact integer arithmetic: int8 weights times 0/1 spikes or
int8 inputs, summed in float64 (exact below 2^53) by BLAS, then converted to int64.

`DESCRIPTOR_CHECKS` maps each opcode to a function that validates one kernel's descriptor and
parameters against the image when the image is loaded; each raises `InputError` naming the kernel.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

from backend.program import Kernel
from backend.sparse_weights import is_sparse
from backend.stats import weight_shape
from ir.errors import InputError
from ir.reference import evaluate

SPIKING_OPCODES = frozenset({"spike_conv", "spike_dense", "spike_add", "spike_max_pool"})
ROUTING_OPCODES = frozenset({"reshape", "transpose", "concat"})
ENCODINGS = ("current", "poisson")
MAX_TIMESTEPS = 4096
MAX_FRACTION_BITS = 8
INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1


@dataclass(frozen=True)
class SnnSettings:
    """How an snn image runs, from its metadata: timesteps, input encoding, PRNG seed."""

    timesteps: int
    encoding: str
    seed: int


def snn_settings(metadata: Mapping[str, str]) -> SnnSettings:
    """The run settings stored in an snn image, checked."""
    try:
        timesteps = int(metadata["snn_timesteps"])
        encoding = metadata["snn_encoding"]
        seed = int(metadata["snn_seed"])
    except (KeyError, ValueError) as error:
        raise InputError(f"image: snn metadata missing or malformed ({error})") from None
    if not 1 <= timesteps <= MAX_TIMESTEPS:
        raise InputError(f"image: snn_timesteps {timesteps} is outside 1..{MAX_TIMESTEPS}")
    if encoding not in ENCODINGS:
        raise InputError(f"image: snn_encoding {encoding!r} is not one of {', '.join(ENCODINGS)}")
    if not 0 <= seed < 2**63:
        raise InputError(f"image: snn_seed {seed} is outside 0..2^63-1")
    return SnnSettings(timesteps, encoding, seed)


# -- decode-time checks -------------------------------------------------------------------------
def _name(kernel: Kernel) -> str:
    return f"image: {kernel.layer}#{kernel.slice_index} ({kernel.opcode})"


def _expect(kernel: Kernel, params: Mapping[str, np.ndarray], role: str, dtype: str, shape):
    array = params.get(role)
    if array is None:
        raise InputError(f"{_name(kernel)}: no {role} parameter")
    if str(array.dtype) != dtype or tuple(array.shape) != tuple(shape):
        raise InputError(
            f"{_name(kernel)}: {role} is {array.dtype}{list(array.shape)}, "
            f"expected {dtype}{list(shape)}"
        )


def _check_neurons(kernel: Kernel, params: Mapping[str, np.ndarray]) -> int:
    """Attributes, thresholds and membranes every spiking kernel has; returns its channel count."""
    attrs = kernel.attrs
    for key in ("fire", "fraction_bits", "channel_axis"):
        if not isinstance(attrs.get(key), int):
            raise InputError(f"{_name(kernel)}: attribute {key} missing or not an integer")
    if attrs["fire"] not in (0, 1) or not 0 <= attrs["fraction_bits"] <= MAX_FRACTION_BITS:
        raise InputError(f"{_name(kernel)}: fire must be 0/1 and fraction_bits in 0..8")
    out = kernel.output.box.shape
    if not 0 <= attrs["channel_axis"] < len(out):
        raise InputError(f"{_name(kernel)}: channel_axis {attrs['channel_axis']} outside {out}")
    channels = out[attrs["channel_axis"]]
    _expect(kernel, params, "membrane", "int32", out)
    expected_out = "bool" if attrs["fire"] else "int32"
    if kernel.output.dtype != expected_out:
        raise InputError(f"{_name(kernel)}: output is {kernel.output.dtype}, not {expected_out}")
    if attrs["fire"]:
        _expect(kernel, params, "threshold", "int32", (channels,))
        if np.any(params["threshold"] < 1):
            raise InputError(f"{_name(kernel)}: thresholds must be at least 1")
    if "bias" in params:
        _expect(kernel, params, "bias", "int32", (channels,))
    return channels


def _check_input_coding(kernel: Kernel) -> None:
    coding = kernel.attrs.get("input_coding")
    zero = kernel.attrs.get("input_zero_point")
    if coding not in ("spikes", "current") or not isinstance(zero, int) or not -128 <= zero <= 127:
        raise InputError(
            f"{_name(kernel)}: input_coding must be spikes or current and input_zero_point "
            "an int8 value"
        )
    if kernel.attrs.get("relu_output", 0) not in (0, 1):
        raise InputError(f"{_name(kernel)}: relu_output must be 0 or 1")
    want = "bool" if coding == "spikes" else "int8"
    if len(kernel.inputs) != 1 or kernel.inputs[0].dtype != want:
        raise InputError(f"{_name(kernel)}: needs one {want} input port for {coding} input")


def check_spike_dense(kernel: Kernel, params: Mapping[str, np.ndarray]) -> None:
    """A dense slice: one synaptic row of int8 weights per source neuron of its input box."""
    channels = _check_neurons(kernel, params)
    _check_input_coding(kernel)
    sources = kernel.inputs[0].box.shape[-1]
    _expect(kernel, params, "weight", "int8", (sources, channels))


def check_spike_conv(kernel: Kernel, params: Mapping[str, np.ndarray]) -> None:
    """A conv slice: shared int8 kernels whose geometry maps its input box onto its output box."""
    channels = _check_neurons(kernel, params)
    _check_input_coding(kernel)
    attrs = kernel.attrs
    in_shape, out_shape = kernel.inputs[0].box.shape, kernel.output.box.shape
    rank = len(out_shape) - 2
    group = attrs.get("group")
    weight = params.get("weight")
    if weight is None or not isinstance(group, int) or group < 1 or in_shape[1] % group:
        raise InputError(f"{_name(kernel)}: weight or group missing or not matching the input")
    _expect(kernel, params, "weight", "int8", (channels, in_shape[1] // group, *weight.shape[2:]))
    for key, length in (("strides", rank), ("dilations", rank), ("pads", 2 * rank)):
        value = attrs.get(key)
        if not isinstance(value, tuple) or len(value) != length:
            raise InputError(f"{_name(kernel)}: {key} must hold {length} integers")
    for i in range(rank):
        extent = in_shape[2 + i] + attrs["pads"][i] + attrs["pads"][rank + i]
        span = attrs["dilations"][i] * (weight.shape[2 + i] - 1) + 1
        if (
            attrs["strides"][i] < 1
            or (extent - span) // attrs["strides"][i] + 1 != out_shape[2 + i]
        ):
            raise InputError(f"{_name(kernel)}: conv geometry does not give its output box")


def check_spike_add(kernel: Kernel, params: Mapping[str, np.ndarray]) -> None:
    """A residual add: two spike ports shaped like the output, a weight per port and channel."""
    channels = _check_neurons(kernel, params)
    out = kernel.output.box.shape
    if len(kernel.inputs) != 2 or any(
        p.dtype != "bool" or p.box.shape != out for p in kernel.inputs
    ):
        raise InputError(f"{_name(kernel)}: needs two bool input ports of shape {out}")
    _expect(kernel, params, "weight", "int8", (2, channels))


def check_spike_max_pool(kernel: Kernel, params: Mapping[str, np.ndarray]) -> None:
    """Max-pool gating: one spike port, a window geometry per spatial axis, a count per input."""
    if len(kernel.inputs) != 1 or kernel.inputs[0].dtype != "bool" or kernel.output.dtype != "bool":
        raise InputError(f"{_name(kernel)}: needs one bool input port and a bool output")
    in_shape, out_shape = kernel.inputs[0].box.shape, kernel.output.box.shape
    if len(in_shape) != len(out_shape) or in_shape[:2] != out_shape[:2]:
        raise InputError(f"{_name(kernel)}: input box {in_shape} does not pool to {out_shape}")
    rank = len(out_shape) - 2
    for key in POOL_GEOMETRY:
        value = kernel.attrs.get(key)
        if not isinstance(value, tuple) or len(value) != rank:
            raise InputError(f"{_name(kernel)}: {key} must hold {rank} integers")
    if min(kernel.attrs["kernel"] + kernel.attrs["strides"] + kernel.attrs["dilations"]) < 1:
        raise InputError(f"{_name(kernel)}: kernel, strides and dilations must be positive")
    _expect(kernel, params, "count", "int32", in_shape)
    _, valid = window_gather(kernel)
    if valid.size and not np.all(valid.any(axis=1)):
        raise InputError(f"{_name(kernel)}: a pooling window holds no input neuron")


POOL_GEOMETRY = (
    "kernel",
    "strides",
    "dilations",
    "window_start",
    "valid_lo",
    "valid_hi",
    "input_start",
)

DESCRIPTOR_CHECKS: dict[str, Callable[[Kernel, Mapping[str, np.ndarray]], None]] = {
    "spike_dense": check_spike_dense,
    "spike_conv": check_spike_conv,
    "spike_add": check_spike_add,
    "spike_max_pool": check_spike_max_pool,
}


def window_gather(kernel: Kernel) -> tuple[np.ndarray, np.ndarray]:
    """For each output position and window tap: the flat spatial index in the input box, valid.

    Tap t of local output o on axis i reads global position g = window_start[i] + o strides[i]
    + t dilations[i]; it is valid when valid_lo[i] <= g < valid_hi[i] and g lies in the box.
    """
    attrs = kernel.attrs
    in_spatial = kernel.inputs[0].box.shape[2:]
    out_spatial = kernel.output.box.shape[2:]
    taps = attrs["kernel"]
    rank = len(out_spatial)
    flat = np.zeros((*out_spatial, *taps), dtype=np.int64)
    valid = np.ones((*out_spatial, *taps), dtype=bool)
    stride_in = 1
    for i in reversed(range(rank)):
        outputs = np.arange(out_spatial[i])[:, None]
        tap = np.arange(taps[i])[None, :]
        g = attrs["window_start"][i] + outputs * attrs["strides"][i] + tap * attrs["dilations"][i]
        local = g - attrs["input_start"][i]
        ok = (g >= attrs["valid_lo"][i]) & (g < attrs["valid_hi"][i])
        ok &= (local >= 0) & (local < in_spatial[i])
        shape = [1] * (2 * rank)
        shape[i], shape[rank + i] = out_spatial[i], taps[i]
        flat = flat + (np.clip(local, 0, max(in_spatial[i] - 1, 0)) * stride_in).reshape(shape)
        valid = valid & ok.reshape(shape)
        stride_in *= in_spatial[i]
    positions = int(np.prod(out_spatial, dtype=np.int64))
    return flat.reshape(positions, -1), valid.reshape(positions, -1)


class MaxPoolGate:
    """Spiking max pooling by accumulated spike counts.

    Each input neuron's count of spikes so far (this step included) is kept; each output
    forwards this step's spike of the input in its window with the largest count (ties: the
    first in window order), so over T steps it passes the spike train of the highest-rate input.
    """

    fire = True
    current_input = False

    def __init__(self, kernel: Kernel, params: Mapping[str, np.ndarray]) -> None:
        self.kernel = kernel
        self.initial = params["count"].astype(np.int64)
        self.flat, self.valid = window_gather(kernel)
        self.out_shape = kernel.output.box.shape

    def current(self, buffers: list[np.ndarray]) -> np.ndarray:
        return buffers[0]

    def synaptic_events(self, buffers: list[np.ndarray]) -> int:
        return int(np.count_nonzero(buffers[0]))

    def step(self, counts: np.ndarray, spikes: np.ndarray) -> np.ndarray:
        counts += spikes
        rows = counts.shape[0] * counts.shape[1]
        channels = counts.shape[2]
        windows = counts.reshape(rows, channels, -1)[:, :, self.flat]
        windows = np.where(self.valid, windows, -1)
        choice = windows.argmax(axis=-1)
        chosen = self.flat[np.arange(self.flat.shape[0]), choice]
        out = np.take_along_axis(spikes.reshape(rows, channels, -1), chosen, axis=2)
        return out.reshape(counts.shape[0], *self.out_shape)


# -- neurons ------------------------------------------------------------------------------------
class SpikingKernel:
    """One spiking kernel prepared to run: widened weights, channel-shaped bias and threshold."""

    def __init__(self, kernel: Kernel, params: Mapping[str, np.ndarray], timesteps: int) -> None:
        self.kernel = kernel
        attrs = kernel.attrs
        self.fire = bool(attrs["fire"])
        self.shift = int(attrs["fraction_bits"])
        self.current_input = attrs.get("input_coding") == "current"
        self.zero_point = int(attrs.get("input_zero_point", 0))
        out = kernel.output.box.shape
        shape = [1] * (len(out) + 1)
        shape[int(attrs["channel_axis"]) + 1] = -1
        self.channel_shape = tuple(shape)
        weight = params["weight"]
        largest = _largest_sum(kernel.opcode, weight) * (255 if self.current_input else 1)
        # Sums of int8 products are exact in float32 below 2^24 (else float64, exact below 2^53).
        self.weight = weight.astype(np.float32 if largest < 2**24 else np.float64)
        bias = params["bias"] if "bias" in params else np.zeros(1, dtype=np.int32)
        initial = params["membrane"]
        self.fanout = _fanout(kernel, params["weight"])
        self.relu_output = bool(attrs.get("relu_output", 0))
        # Saturation can only bite when T steps of the largest current can leave int32; when
        # they cannot, the membrane is computed in int32 directly (the same numbers, faster).
        reach = int(np.abs(initial).max(initial=0)) + timesteps * (
            (largest << self.shift) + int(np.abs(bias.astype(np.int64)).max(initial=0))
        )
        self.saturates = reach > INT32_MAX
        self.state = np.dtype(np.int64 if self.saturates else np.int32)
        self.bias = bias.astype(self.state).reshape(shape)
        self.threshold = (
            params["threshold"].astype(self.state).reshape(shape) if self.fire else None
        )
        self.initial = initial.astype(self.state)
        self.tiled = kernel.opcode == "spike_conv" and _is_tiled_depthwise(kernel, weight)

    def current(self, buffers: list[np.ndarray]) -> np.ndarray:
        """Input current of one timestep, bias included, shaped (S, *output box)."""
        return (self._synaptic_sum(buffers).astype(self.state) << self.shift) + self.bias

    def _synaptic_sum(self, buffers: list[np.ndarray]) -> np.ndarray:
        """The sum of int8 weights over the spiking (or current) inputs, exact."""
        opcode = self.kernel.opcode
        if opcode == "spike_add":
            a, b = (x.astype(np.int64) for x in buffers)
            w = self.weight.astype(np.int64)
            shape = self.channel_shape
            return a * w[0].reshape(shape) + b * w[1].reshape(shape)
        x = buffers[0].astype(self.weight.dtype)
        if self.current_input:
            x -= self.zero_point
        if opcode == "spike_dense":
            acc = x @ self.weight
        elif self.tiled:
            acc = _tiled_depthwise(x, self.weight)
        else:
            attrs = dict(self.kernel.attrs, activation="none", activation_params=())
            merged = x.reshape(x.shape[0] * x.shape[1], *x.shape[2:])
            (acc,) = evaluate("conv", attrs, [merged, self.weight])
            acc = acc.reshape(x.shape[0], -1, *acc.shape[1:])
        return acc  # exact integers in the float type

    def synaptic_events(self, buffers: list[np.ndarray]) -> int:
        """(spike, target neuron) pairs this step integrates: spikes per input times fan-out."""
        if self.current_input:
            return 0
        events = 0
        for x, fanout in zip(buffers, self.fanout):
            per_input = x.reshape(x.shape[0], -1).sum(axis=0, dtype=np.int64)
            events += int(per_input.sum()) if fanout is None else int(per_input @ fanout.ravel())
        return events

    def step(self, membrane: np.ndarray, current: np.ndarray) -> np.ndarray | None:
        """Integrate, fire, reset by subtraction (in place); the spikes, or None (integrator)."""
        np.add(membrane, current, out=membrane)
        if self.saturates:
            np.clip(membrane, INT32_MIN, INT32_MAX, out=membrane)
        if self.threshold is None:
            return None
        spikes = membrane >= self.threshold
        # (a masked subtract with a broadcast threshold is ten times slower in numpy)
        membrane -= np.multiply(spikes, self.threshold, dtype=self.state)
        return spikes

    def result(self, membrane: np.ndarray) -> np.ndarray:
        """An integrator's output after the last step: its membrane (ReLU'd when fused)."""
        out = np.maximum(membrane, 0) if self.relu_output else membrane
        return out.astype(np.int32)


def _is_tiled_depthwise(kernel: Kernel, weight: np.ndarray) -> bool:
    """A 2-D depthwise conv whose windows tile its input (stride = kernel, no padding)."""
    attrs = kernel.attrs
    in_shape, out_shape = kernel.inputs[0].box.shape, kernel.output.box.shape
    return (
        len(out_shape) == 4
        and weight.shape[1] == 1
        and attrs["group"] == in_shape[1] == out_shape[1]
        and not any(attrs["pads"])
        and tuple(attrs["dilations"]) == (1, 1)
        and tuple(attrs["strides"]) == tuple(weight.shape[2:])
        and all(o * k == i for o, k, i in zip(out_shape[2:], weight.shape[2:], in_shape[2:]))
    )


def _tiled_depthwise(x: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """The same sums as the conv (an average pool's), each window summed in place."""
    samples, batch, channels, height, width = x.shape
    kh, kw = weight.shape[2:]
    tiles = x.reshape(samples, batch, channels, height // kh, kh, width // kw, kw)
    taps = weight[:, 0].reshape(1, 1, channels, 1, kh, 1, kw)
    return (tiles * taps).sum(axis=(4, 6))


def _largest_sum(opcode: str, weight: np.ndarray) -> int:
    """The largest sum of |weights| into one output neuron (its current per unit input)."""
    magnitude = np.abs(weight.astype(np.int64))
    if opcode == "spike_dense" or opcode == "spike_add":
        return int(magnitude.sum(axis=0).max(initial=0))
    return int(magnitude.reshape(magnitude.shape[0], -1).sum(axis=1).max(initial=0))


def _fanout(kernel: Kernel, weight: np.ndarray) -> list[np.ndarray | None]:
    """Per input element, how many output neurons of the kernel one spike there reaches.

    dense: every output neuron (a count times N), or with a csr weight the non-zeros of the
    source's synaptic row (only those are stored and walked); add: one; conv: the output channels
    of its group times, per spatial axis, the (output, kernel tap) pairs that read the position.
    """
    out = kernel.output.box.shape
    if kernel.opcode == "spike_add":
        return [None, None]
    if kernel.opcode == "spike_dense" and is_sparse(kernel):
        row = np.count_nonzero(weight, axis=1).astype(np.int64)
        return [np.broadcast_to(row, kernel.inputs[0].box.shape)]
    if kernel.opcode == "spike_dense":
        return [np.full(kernel.inputs[0].box.shape, out[-1], dtype=np.int64)]
    attrs = kernel.attrs
    in_shape = kernel.inputs[0].box.shape
    rank = len(out) - 2
    taps = (weight_shape(kernel) or ())[2:]
    fanout = np.full((1,) * (rank + 2), out[1] // attrs["group"], dtype=np.int64)
    for i in range(rank):
        counts = np.zeros(in_shape[2 + i], dtype=np.int64)
        for o in range(out[2 + i]):
            for tap in range(taps[i]):
                p = o * attrs["strides"][i] - attrs["pads"][i] + tap * attrs["dilations"][i]
                if 0 <= p < len(counts):
                    counts[p] += 1
        shape = [1] * (rank + 2)
        shape[2 + i] = -1
        fanout = fanout * counts.reshape(shape)
    return [np.broadcast_to(fanout, in_shape)]


def poisson_spikes(
    generator: np.random.Generator, data: np.ndarray, full_rate: float
) -> np.ndarray:
    """Spikes with probability clip(x / full_rate, 0, 1): one uniform draw per element."""
    probability = np.clip(data / full_rate, 0.0, 1.0)
    return generator.random(data.shape) < probability


def poisson_generator(seed: int) -> np.random.Generator:
    """numpy's PCG64 seeded with the image's seed: one stream for the whole run."""
    return np.random.Generator(np.random.PCG64(seed))
