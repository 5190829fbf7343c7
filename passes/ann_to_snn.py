"""ANN-to-SNN rate coding: a ReLU network becomes integrate-and-fire neurons over T timesteps.

Runs after BatchNorm folding and ReLU fusion (docs/snn.md has the method, docs/numerics.md the
integer semantics):

1. Accepted ops: conv and dense with a fused ReLU (spiking neurons), average and global-average
   pooling (rewritten here as depthwise convolutions with weights 1/k, the same function), max
   pooling (gated by accumulated spike counts: each window forwards the spikes of its input
   neuron that has spiked most so far, ties to the first in window order), residual
   add (spiking neurons with two inputs), concat, reshape/flatten and transpose (spikes routed
   unchanged), standalone ReLU on spikes (an identity: rates are never negative). The conv or dense
   that produces a graph output becomes a non-spiking integrator. Anything else is unsupported.
2. Threshold balancing: lambda[c] = the P-th percentile (`--snn-percentile`) of channel c's
   calibration activations (per layer: of all its activations). A neuron's spike then stands for
   lambda of its channel, and its rate approximates min(a / lambda, 1).
3. Normalised synapses: W'[c, j] = w[c, j] * lambda_in[j] / lambda_out[c], b'[c] = b[c] /
   lambda_out[c]; the first layer reads the int8-quantised input as a constant current, so
   lambda_in is the input's scale s_x there (Poisson input: the input's calibration maximum).
4. int8 weights per output channel, s[c] = max |W'[c]| / 127, folded into integer thresholds:
   theta[c] = round(2^F / s[c]) and bias current round(2^F b'[c] / s[c]) in membrane units of
   s[c] / 2^F, with F (<= 8 fraction bits) chosen so that T steps of the largest current cannot
   overflow an int32 membrane. Membranes start at floor(theta / 2) (the half-threshold shift that
   centres the rate quantisation error) and reset by subtraction.
5. The output integrator uses one scale for the layer, so the host decodes logits =
   membrane * s / (2^F T).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from ir.errors import InputError, InternalError, UnsupportedError
from ir.graph import Graph, Node, Value
from ir.reference import evaluate
from ir.types import QuantParams, TensorType
from passes.base import Pass
from passes.calibration import sample_activations
from passes.quantise import activation_parameters
from passes.rewrite import attrs_of, is_graph_output, replace_value

ENCODINGS = ("current", "poisson")
MAX_FRACTION_BITS = 8
INT32_MAX = 2**31 - 1
ROUTING_OPS = frozenset({"reshape", "transpose", "concat"})
ACCEPTED = (
    "conv, dense, average / global-average / max pool, add, concat, reshape/flatten, "
    "transpose, ReLU"
)


@dataclass(frozen=True)
class SpikingLayer:
    """How one IR node runs as spiking neurons (weights and biases are the node's constants).

    kind: "spiking" (integrate-and-fire, emits spikes), "integrator" (non-spiking output layer,
    its membrane is the result), "routing" (spikes pass unchanged), "max_pool" (each window
    passes the spikes of the input with the most spikes so far).
    """

    kind: str
    threshold: np.ndarray | None = None  # int32 per output channel
    fraction_bits: int = 0
    input_coding: str = "spikes"  # "spikes" or "current" (int8 input with a zero point)
    input_zero_point: int = 0
    relu_output: int = 0  # integrator with a fused ReLU: the host reads max(membrane, 0)
    synapses: np.ndarray | None = None  # add: int8 [operands, channels] synapse weights


@dataclass
class SpikingNetwork:
    """What the conversion decided, keyed by node name (results of a pass, not IR attributes)."""

    layers: dict[str, SpikingLayer] = field(default_factory=dict)


@dataclass(frozen=True)
class AnnToSnn(Pass):
    """Convert a ReLU network to integrate-and-fire neurons (thresholds from calibration data)."""

    name: ClassVar[str] = "ann-to-snn"
    calibration: Mapping[str, np.ndarray] = field(default_factory=dict, compare=False)
    timesteps: int = 32
    percentile: float = 99.9
    per_layer: bool = False
    encoding: str = "current"
    bias_correction: bool = False
    network: SpikingNetwork = field(default_factory=SpikingNetwork, compare=False)

    def run(self, graph: Graph) -> bool:
        _check_supported(graph)
        for node in list(graph.nodes):
            _pool_as_depthwise_conv(graph, node)
        _drop_relu_on_spikes(graph)
        peaks, excess = self._channel_peaks(graph)
        coding = _Coding(peaks, excess)
        for value in graph.inputs:
            coding.scale[id(value)] = self._encode_input(value)
        for node in graph.nodes:
            self.network.layers[node.name] = self._convert(graph, node, coding)
        return True

    # -- calibration ------------------------------------------------------------------------------
    def _channel_peaks(self, graph: Graph) -> tuple[dict[int, np.ndarray], dict[int, np.ndarray]]:
        """lambda per value, broadcast to the value's shape: a percentile per channel (or layer),
        and the mean activation above lambda per element (what clipping at lambda loses)."""
        stacks: dict[int, list[np.ndarray]] = {}
        wanted = [n.outputs[0] for n in graph.nodes if n.op in ("conv", "dense", "add")]
        for env in sample_activations(graph, self.calibration):
            for value in wanted:
                stacks.setdefault(id(value), []).append(env[id(value)])
        peaks, excess = {}, {}
        for value in wanted:
            samples = np.concatenate(stacks[id(value)])
            peaks[id(value)] = self._peak(value, samples)
            excess[id(value)] = np.maximum(samples - peaks[id(value)], 0).mean(axis=0)[None]
        return peaks, excess

    def _peak(self, value: Value, samples: np.ndarray) -> np.ndarray:
        """P-th percentile per channel (axis 1; the last axis of a rank-2 value), kept > 0."""
        axis = 1 if samples.ndim > 2 else samples.ndim - 1
        channels = np.moveaxis(samples, axis, 0).reshape(samples.shape[axis], -1)
        if self.per_layer:
            peak = np.full(len(channels), np.percentile(channels, self.percentile))
        else:
            peak = np.percentile(channels, self.percentile, axis=1)
        # A channel silent at the percentile falls back to its maximum; a channel never active
        # on the calibration data gets 1 (it stays silent whatever its threshold).
        top = channels.max(axis=1) if not self.per_layer else np.full(len(peak), channels.max())
        peak = np.where(peak > 0, peak, top).astype(np.float64)
        peak = np.where(peak > 0, peak, 1.0)
        shape = [1] * len(value.type.shape)
        shape[axis] = -1
        return np.broadcast_to(peak.reshape(shape), value.type.shape).copy()

    def _encode_input(self, value: Value) -> np.ndarray:
        """The input's type in the image and the real value one input unit stands for."""
        data = np.asarray(self.calibration[value.name], dtype=np.float64)
        low, high = float(data.min()), float(data.max())
        if self.encoding == "poisson":
            if low < 0:
                raise InputError(
                    f"input '{value.name}': Poisson coding needs non-negative inputs, the "
                    f"calibration data reaches {low:g}"
                )
            full_rate = max(high, 1e-6)
            value.type = TensorType(value.type.shape, "bool", QuantParams((full_rate,), (0,)))
            return np.full(value.type.shape, full_rate)
        scale, zero = activation_parameters(low, high)
        value.type = TensorType(value.type.shape, "int8", QuantParams((scale,), (zero,)))
        return np.full(value.type.shape, scale)

    # -- per node ---------------------------------------------------------------------------------
    def _convert(self, graph, node: Node, coding: _Coding) -> SpikingLayer:
        out = node.outputs[0]
        if node.op in ROUTING_OPS:
            coding.scale[id(out)] = _route(node, coding.scale)
            coding.excess[id(out)] = _route(node, coding.excess)
            out.type = TensorType(out.type.shape, "bool")
            return SpikingLayer("routing")
        if node.op == "add":
            return self._add(node, coding)
        if node.op == "pool":  # max pooling (average pooling became a conv)
            lam_in = _per_channel(coding.scale[id(node.inputs[0])])
            shape = [1] * len(out.type.shape)
            shape[1] = -1
            coding.scale[id(out)] = np.broadcast_to(lam_in.reshape(shape), out.type.shape).copy()
            coding.excess[id(out)] = np.zeros(out.type.shape)  # not corrected through a gate
            out.type = TensorType(out.type.shape, "bool")
            return SpikingLayer("max_pool")
        return self._synapses(graph, node, coding)

    def _synapses(self, graph, node: Node, coding: _Coding) -> SpikingLayer:
        """conv / dense: normalised int8 weights, integer thresholds and bias currents."""
        x, out = node.inputs[0], node.outputs[0]
        integrator = is_graph_output(graph, out)
        lam_out = np.ones(_channels(out)) if integrator else _per_channel(coding.peaks[id(out)])
        lam_in = coding.scale[id(x)]
        weight = _normalised_weight(node, lam_in, lam_out)
        bias = _bias(node)
        if self.bias_correction and id(x) in coding.excess:
            bias = bias + _clipping_loss(node, coding.excess[id(x)])
        bias = bias / lam_out
        scales = _weight_scales(node.op, weight, per_layer=integrator)
        q_weight = np.clip(np.rint(weight / _along(node.op, weight, scales)), -127, 127)
        current = x.type.dtype == "int8"
        input_max = 255 if current else 1
        fraction_bits = _fraction_bits(node.op, q_weight, scales, bias, input_max, self.timesteps)
        unit = 2.0**fraction_bits / scales
        threshold = np.maximum(np.rint(unit), 1).astype(np.int32)
        graph.set_input(
            node, 1, graph.constant(node.inputs[1].name + "_snn", q_weight.astype(np.int8))
        )
        bias_value = graph.constant(node.name + "_bias_snn", np.rint(bias * unit).astype(np.int32))
        if len(node.inputs) == 3:
            graph.set_input(node, 2, bias_value)
        else:
            node.inputs.append(bias_value)
            bias_value.uses.append((node, 2))
        relu = int(attrs_of(node)["activation"] == "relu")
        zero = x.type.quant.zero_point[0] if current and x.type.quant else 0
        if integrator:
            step = float(scales[0]) / 2.0**fraction_bits / self.timesteps
            out.type = TensorType(out.type.shape, "int32", QuantParams((step,), (0,)))
            return SpikingLayer("integrator", None, fraction_bits, _coding(current), zero, relu)
        coding.scale[id(out)] = coding.peaks[id(out)]
        out.type = TensorType(out.type.shape, "bool")
        return SpikingLayer("spiking", threshold, fraction_bits, _coding(current), zero)

    def _add(self, node: Node, coding: _Coding) -> SpikingLayer:
        """Residual add: per channel synapse weights lambda_a / lambda_y and lambda_b / lambda_y."""
        out = node.outputs[0]
        lam_out = _per_channel(coding.peaks[id(out)])
        weight = np.stack([_per_channel(coding.scale[id(v)]) / lam_out for v in node.inputs])
        scales = np.maximum(np.abs(weight).max(axis=0), 1e-12) / 127.0
        q_weight = np.clip(np.rint(weight / scales), -127, 127)
        fraction_bits = _fraction_bits(
            "add", q_weight, scales, np.zeros_like(scales), 1, self.timesteps
        )
        threshold = np.maximum(np.rint(2.0**fraction_bits / scales), 1).astype(np.int32)
        coding.scale[id(out)] = coding.peaks[id(out)]
        out.type = TensorType(out.type.shape, "bool")
        return SpikingLayer("spiking", threshold, fraction_bits, synapses=q_weight.astype(np.int8))


@dataclass
class _Coding:
    """Per-value arrays of the conversion, keyed by id(value), each shaped like the value.

    peaks: lambda from calibration (conv, dense and add results); scale: what one spike (or
    input unit) of a value stands for; excess: the mean activation above lambda, which the rate
    code clips away (`--snn-bias-correction` adds it back through the next layer's bias).
    """

    peaks: dict[int, np.ndarray]
    excess: dict[int, np.ndarray]
    scale: dict[int, np.ndarray] = field(default_factory=dict)


def _clipping_loss(node: Node, excess: np.ndarray) -> np.ndarray:
    """The mean current per output channel that clipping the input at lambda removes.

    dense: excess @ w; conv: the conv of the excess map (linear part), averaged over positions.
    """
    weight = node.inputs[1].constant_data.astype(np.float64)
    if node.op == "dense":
        return excess.reshape(-1) @ weight
    attrs = dict(attrs_of(node), activation="none", activation_params=())
    (current,) = evaluate("conv", attrs, [excess.astype(np.float64), weight])
    return current.reshape(current.shape[1], -1).mean(axis=1)


def _coding(current: bool) -> str:
    return "current" if current else "spikes"


# -- checks -------------------------------------------------------------------------------------
def _problem(graph: Graph, node: Node) -> str | None:
    """Why `node` cannot become spiking neurons, or None when it can."""
    where = f"'{node.name}' ({node.op})"
    attrs = attrs_of(node)
    output = is_graph_output(graph, node.outputs[0])
    if node.op in ("conv", "dense"):
        if attrs["activation"] not in ("relu", "none") or (
            attrs["activation"] == "none" and not output
        ):
            found = attrs["activation"] if attrs["activation"] != "none" else "no ReLU"
            return (
                f"{where}: {found} before the next spiking layer; a spike rate is a ReLU of "
                "the input current, so only ReLU networks can be converted"
            )
        return None
    if node.op in ("pool", "global_pool"):
        if attrs.get("kind", "avg") != "avg":
            return None if node.op == "pool" else f"{where}: global max pooling cannot spike"
        if node.op == "pool" and attrs["ceil_mode"]:
            return f"{where}: ceil_mode pooling cannot be expressed as one spiking kernel"
        if node.op == "pool" and any(attrs["pads"]) and not attrs["count_include_pad"]:
            return f"{where}: padded average pooling that excludes the padding has no fixed weights"
        return None
    if node.op == "activation":
        if attrs["function"] == "relu":
            return None
        return (
            f"{where}: activation {attrs['function']!r}; a spike rate is a ReLU of the membrane "
            "input, so only ReLU networks can be converted"
        )
    if node.op == "add":
        shapes = {v.type.shape for v in node.inputs}
        if len(shapes) != 1 or any(v.is_constant for v in node.inputs):
            return f"{where}: only residual adds of two activations of one shape can spike"
        return None
    if node.op in ROUTING_OPS:
        if any(v.is_constant for v in node.inputs):
            return f"{where}: a constant operand cannot send spikes"
        return None
    return f"{where}: cannot spike; the snn mode converts {ACCEPTED}"


def _check_supported(graph: Graph) -> None:
    problems = [p for node in graph.nodes if (p := _problem(graph, node)) is not None]
    for value in graph.outputs:
        producer = value.producer
        if producer is None or producer.op not in ("conv", "dense"):
            problems.append(
                f"graph output '{value.name}': must come from a conv or dense layer, which "
                "becomes the non-spiking integrator the host reads"
            )
        elif value.uses:
            problems.append(
                f"'{producer.name}' ({producer.op}): its result is a graph output and feeds "
                "other layers; an output layer integrates without spiking, so nothing can read it"
            )
    for node in graph.nodes:
        for value in node.inputs:
            if any(value is v for v in graph.inputs) and node.op not in ("conv", "dense"):
                problems.append(
                    f"'{node.name}' ({node.op}): reads graph input '{value.name}'; the input "
                    "current or spikes must go straight into a conv or dense layer"
                )
    if problems:
        raise UnsupportedError(
            f"cannot convert to spiking neurons: {'; '.join(problems)}", problems
        )


# -- rewrites -----------------------------------------------------------------------------------
def _pool_as_depthwise_conv(graph: Graph, node: Node) -> None:
    """Average pooling is a depthwise conv with weights 1/k (padding counted as zeros)."""
    if node.op not in ("pool", "global_pool"):
        return
    attrs = attrs_of(node)
    if attrs.get("kind", "avg") != "avg":
        return
    shape = node.inputs[0].type.shape
    channels, spatial = shape[1], shape[2:]
    if node.op == "global_pool":
        kernel = tuple(spatial)
        conv = {"strides": (1,) * len(spatial), "pads": (0,) * 2 * len(spatial)}
        conv["dilations"] = (1,) * len(spatial)
    else:
        kernel = tuple(attrs["kernel"])
        conv = {k: tuple(attrs[k]) for k in ("strides", "pads", "dilations")}
    weight = np.full((channels, 1, *kernel), 1.0 / math.prod(kernel), dtype=np.float32)
    node.op = "conv"
    node.attrs = dict(conv, group=channels, activation="none", activation_params=())
    value = graph.constant(node.name + "_window", weight)
    node.inputs.append(value)
    value.uses.append((node, 1))


def _drop_relu_on_spikes(graph: Graph) -> None:
    """ReLU of a spiking value is the identity (rates are never negative)."""
    for node in list(graph.nodes):
        if node.op != "activation":
            continue
        replace_value(graph, node.outputs[0], node.inputs[0])
        graph.remove_node(node)


# -- arithmetic ---------------------------------------------------------------------------------
def _channels(value: Value) -> int:
    shape = value.type.shape
    return shape[1] if len(shape) > 2 else shape[-1]


def _per_channel(scales: np.ndarray) -> np.ndarray:
    """Channel values of a broadcast per-channel array (axis 1, or the last axis of rank 2)."""
    if scales.ndim == 2:
        return scales[0]
    flat = np.moveaxis(scales, 1, 0).reshape(scales.shape[1], -1)
    if not np.all(flat == flat[:, :1]):
        raise InternalError("a spiking layer's input scales vary within a channel")
    return flat[:, 0]


def _route(node: Node, arrays: Mapping[int, np.ndarray]) -> np.ndarray:
    """A per-element array (lambda, excess) of a routing op's result: the op applied to its
    inputs' arrays."""
    attrs = attrs_of(node)
    sources = [arrays[id(v)] for v in node.inputs]
    if node.op == "reshape":
        return sources[0].reshape(node.outputs[0].type.shape)
    if node.op == "transpose":
        return np.transpose(sources[0], attrs["perm"])
    return np.concatenate(sources, axis=attrs["axis"])


def _normalised_weight(node: Node, lam_in: np.ndarray, lam_out: np.ndarray) -> np.ndarray:
    """W' = w * lambda_in / lambda_out (conv: [M, C/g, *k]; dense: [K, N])."""
    weight = node.inputs[1].constant_data.astype(np.float64)
    if node.op == "dense":
        if lam_in.ndim != 2:
            raise UnsupportedError(f"'{node.name}' (dense): only rank-2 dense layers can spike")
        return weight * lam_in[0][:, None] / lam_out[None, :]
    group = attrs_of(node)["group"]
    per_in = weight.shape[1]
    in_scales = _per_channel(lam_in)
    per_out = weight.shape[0] // group
    rows = np.arange(weight.shape[0]) // per_out
    source = in_scales[rows[:, None] * per_in + np.arange(per_in)[None, :]]
    shape = (*source.shape, *([1] * (weight.ndim - 2)))
    return weight * source.reshape(shape) / lam_out.reshape(-1, *([1] * (weight.ndim - 1)))


def _bias(node: Node) -> np.ndarray:
    if len(node.inputs) == 3:
        return node.inputs[2].constant_data.astype(np.float64)
    return np.zeros(_channels(node.outputs[0]))


def _along(op: str, weight: np.ndarray, scales: np.ndarray) -> np.ndarray:
    """Per output channel scales shaped to broadcast against the weight."""
    if op == "dense":
        return scales[None, :]
    return scales.reshape(-1, *([1] * (weight.ndim - 1)))


def _weight_scales(op: str, weight: np.ndarray, per_layer: bool) -> np.ndarray:
    """s[c] = max |W'[c]| / 127 per output channel (one for the layer when `per_layer`)."""
    moved = weight if op != "dense" else weight.T
    peak = np.abs(moved.reshape(moved.shape[0], -1)).max(axis=1)
    if per_layer:
        peak = np.full_like(peak, peak.max())
    return np.where(peak > 0, peak, 1.0) / 127.0


def _fraction_bits(
    op: str, q_weight: np.ndarray, scales: np.ndarray, bias: np.ndarray, input_max: int, steps: int
) -> int:
    """The most fraction bits (<= 8) for which T steps cannot overflow an int32 membrane.

    In units of s[c] (F = 0): theta = 1 / s[c], the bias current is |b'[c]| / s[c] and an
    input current at most sum_j |q[c, j]| * input_max; the membrane stays within
    theta + T * (input + bias) (at most one reset per step), so that times 2^F must fit.
    """
    if op == "add":
        synapses = np.abs(q_weight).sum(axis=0)
    else:
        moved = q_weight.T if op == "dense" else q_weight
        synapses = np.abs(moved.reshape(moved.shape[0], -1)).sum(axis=1)
    bound = float(np.max(1.0 / scales + steps * (synapses * input_max + np.abs(bias) / scales)))
    for bits in range(MAX_FRACTION_BITS, -1, -1):
        if bound * 2**bits <= INT32_MAX:
            return bits
    return 0
