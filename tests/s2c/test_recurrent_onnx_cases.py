"""ONNX's own GRU and LSTM node cases (onnx.backend.test.case.node), through the whole pipeline.

The cases feed W, R, B (and sequence_lens, initial states, peepholes) as graph inputs; s2c needs
weights at compile time, so every input but X becomes an initializer with the case's data. The
default-domain opset is capped at 21 (the newest s2c reads; GRU-14 and LSTM-14 are unchanged
since). Expected outputs are the ones onnx ships with each case.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

# Importing the gru and lstm case modules registers their cases (12) in the node-case table;
# `collect_testcases()` would build all ~1,500 node cases first (12 s on the CI machine).
from onnx.backend.test.case import node as node_cases
from onnx.backend.test.case.node import gru, lstm  # noqa: F401

from s2c.onnx_backend import S2CBackend

CASES = {
    case.name: case
    for case in node_cases._NodeTestCases
    if case.name.startswith(("test_gru", "test_lstm"))
}


def with_constant_weights(case) -> tuple[onnx.ModelProto, list[np.ndarray], list[np.ndarray]]:
    """The case's model with every input but X as an initializer; (model, [X], outputs)."""
    model = onnx.ModelProto()
    model.CopyFrom(case.model)
    inputs, outputs = case.data_sets[0]
    for opset in model.opset_import:
        if opset.domain in ("", "ai.onnx"):
            opset.version = min(opset.version, 21)
    for value, array in zip(list(model.graph.input), inputs):
        if value.name != "X":
            model.graph.initializer.append(numpy_helper.from_array(np.asarray(array), value.name))
            model.graph.input.remove(value)
    return model, [inputs[0]], list(outputs)


def test_the_suite_has_the_recurrent_cases():
    assert {"test_gru_bidirectional", "test_lstm_with_peepholes", "test_lstm_batchwise"} <= set(
        CASES
    )


@pytest.mark.parametrize("name", sorted(CASES))
def test_onnx_recurrent_case(name):
    model, inputs, expected = with_constant_weights(CASES[name])
    rep = S2CBackend.prepare(model, mode="float", machine="chip", placer="greedy")
    for actual, reference in zip(rep.run(inputs), expected, strict=True):
        np.testing.assert_allclose(np.asarray(actual), reference, rtol=1e-5, atol=1e-6)
