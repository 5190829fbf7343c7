"""Partition: slices fit the budget, unread slices are pruned, grouped convs split within groups."""

from __future__ import annotations

import numpy as np
from onnx import TensorProto, helper, numpy_helper

from backend.partition import partition
from passes.base import PassManager
from passes.pipeline import canonicalisation
from s2c.driver import CompileOptions
from s2c.frontend import load_onnx
from s2c.validate import validate

BUDGET = 94208


def _model(nodes, inputs, outputs, initializers):
    graph = helper.make_graph(nodes, "g", inputs, outputs, initializers)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _graph(model):
    graph = load_onnx(model)
    PassManager(canonicalisation()).run(graph)
    return graph


def test_slices_of_rows_no_consumer_reads_are_pruned() -> None:
    # Conv gives 10 rows; MaxPool 3x3 stride 2 without padding reads rows 0..8 only.
    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.standard_normal((8, 2, 1, 1)).astype(np.float32), "w")
    nodes = [
        helper.make_node("Conv", ["x", "w"], ["c"], name="conv"),
        helper.make_node("MaxPool", ["c"], ["y"], kernel_shape=[3, 3], strides=[2, 2]),
    ]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 2, 10, 10])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 8, 4, 4])
    model = _model(nodes, [x], [y], [w])
    parts = partition(_graph(model), budget=600)  # small budget: the conv is cut into rows
    conv_rows = [s.spec.out_box for s in parts.slices if s.layer == "conv"]
    assert conv_rows and all(box.start[2] <= 8 for box in conv_rows)
    assert max(box.stop[2] for box in conv_rows) >= 9  # row 8 is still computed
    assert [s.index for s in parts.slices] == list(range(len(parts.slices)))
    results = validate(model, CompileOptions(mode="float", machine="chip"))
    assert all(r.ok for r in results)


def test_grouped_conv_is_cut_inside_groups_when_a_group_does_not_fit() -> None:
    # group=2, 128 output channels per group of 48 input channels, 5x5: one group's weights
    # take 614 KB, far more than a PE holds.
    rng = np.random.default_rng(1)
    weight = (rng.standard_normal((256, 48, 5, 5)) * 0.05).astype(np.float32)
    w = numpy_helper.from_array(weight, "w")
    node = helper.make_node("Conv", ["x", "w"], ["y"], group=2, pads=[2, 2, 2, 2], name="conv")
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 96, 6, 6])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 256, 6, 6])
    model = _model([node], [x], [y], [w])
    parts = partition(_graph(model), BUDGET)
    per_group = 128
    for s in parts.slices:
        c0, c1 = s.spec.out_box.start[1], s.spec.out_box.stop[1]
        assert c0 // per_group == (c1 - 1) // per_group  # never straddles a group boundary
        assert s.sram_bytes <= BUDGET
    results = validate(model, CompileOptions(mode="float", machine="board"))
    assert all(r.ok for r in results)
