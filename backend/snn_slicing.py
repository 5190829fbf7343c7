"""The spiking part of a slice: opcode, neuron state, thresholds and synapses of its neurons.

Applied after the geometric rule of `backend.slicing` when the layer runs as spiking neurons
(see `passes.ann_to_snn`, docs/snn.md). A conv slice keeps its conv geometry (the shared kernel
applied around each spike's position), a dense slice its weight columns (row j of the slice's
weight is the synaptic row of source neuron j); thresholds, bias currents and initial membranes
are cut to the slice's output channels. Routing ops (reshape, transpose, concat) keep their
kernels: they forward spikes unchanged.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from backend.slicing import Layer, SliceSpec
from passes.ann_to_snn import SpikingLayer

SPIKING_OPCODES = {"conv": "spike_conv", "dense": "spike_dense", "add": "spike_add"}
# Max pooling keeps the pool geometry of `backend.slicing` (window_start, kernel, strides,
# dilations, valid_lo / valid_hi, input_start) and an int32 spike count per input neuron.


def add_snn(layer: Layer, spec: SliceSpec, spiking: SpikingLayer, partial: bool) -> SliceSpec:
    """Make `spec` (a slice of a converted layer) a spiking kernel."""
    if spiking.kind == "routing" or partial:  # partial sums: refused by the partitioner
        return spec
    if spiking.kind == "max_pool":
        spec.opcode = "spike_max_pool"
        spec.params = [("count", np.zeros(spec.inputs[0][1].shape, dtype=np.int32))]
        return spec
    axis = len(spec.out_box.start) - 1 if layer.op == "dense" else 1
    c0, c1 = spec.out_box.start[axis], spec.out_box.stop[axis]
    spec.opcode = SPIKING_OPCODES[layer.op]
    spec.attrs = _spiking_attrs(spec, spiking, axis)
    if layer.op == "add":
        assert spiking.synapses is not None
        spec.params = [("weight", spiking.synapses[:, c0:c1])]
    if spiking.kind == "integrator":
        spec.params.append(("membrane", np.zeros(spec.out_box.shape, dtype=np.int32)))
        return spec
    assert spiking.threshold is not None
    threshold = spiking.threshold[c0:c1]
    spec.params.append(("threshold", threshold))
    shape = [1] * len(spec.out_box.shape)
    shape[axis] = -1
    initial = np.broadcast_to((threshold // 2).reshape(shape), spec.out_box.shape)
    spec.params.append(("membrane", np.ascontiguousarray(initial, dtype=np.int32)))
    return spec


def _spiking_attrs(spec: SliceSpec, spiking: SpikingLayer, axis: int) -> dict[str, Any]:
    attrs: dict[str, Any] = {
        key: spec.attrs[key]
        for key in ("strides", "dilations", "pads", "group")
        if key in spec.attrs
    }
    attrs.update(
        fire=int(spiking.kind == "spiking"),
        fraction_bits=spiking.fraction_bits,
        input_coding=spiking.input_coding,
        input_zero_point=spiking.input_zero_point,
        relu_output=spiking.relu_output,
        channel_axis=axis,
    )
    return attrs
