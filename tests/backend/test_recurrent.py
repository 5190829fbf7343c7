"""Recurrent layers on PEs: sliced by hidden units, state exchanged every step through the
routers, descriptors checked at load; results compared with the stored onnxruntime outputs."""

from __future__ import annotations

import dataclasses

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

import s2c.driver
from backend.image import decode_image, encode_image
from backend.interpreter import Interpreter
from backend.partition import Partition, Slice, TensorInfo, partition, prune_unread_slices
from backend.program import Box, Kernel, Program
from backend.recurrent import step_values_per_packet
from backend.slicing import SliceSpec
from golden.recurrent import load_recurrent_case
from ir.errors import InputError
from s2c.driver import CompileOptions, compile_model
from s2c.validate import interpreter_outputs

# A PE budget small enough that each recurrent layer of these cases needs 3-4 slices.
SMALL_BUDGET = {"gru_bidirectional": 3000, "lstm_classifier": 12000}


def compiled(case: str, monkeypatch, budget: int | None = None) -> Program:
    model_bytes, _, _, _ = load_recurrent_case(case)
    if budget is not None:
        monkeypatch.setattr(s2c.driver, "partition", lambda g, _b, *a: partition(g, budget, *a))
    options = CompileOptions(mode="float", machine="chip")
    result = compile_model(onnx.load_from_string(model_bytes), options, emit=lambda t: None)
    return decode_image(encode_image(result.program))


def recurrent_kernels(program: Program) -> list[Kernel]:
    return [k for pe in program.pes for k in pe.kernels if k.opcode in ("gru", "lstm")]


@pytest.mark.parametrize("case", sorted(SMALL_BUDGET))
def test_sliced_layers_exchange_their_state_and_match_onnxruntime(case, monkeypatch):
    _, inputs, expected, tolerances = load_recurrent_case(case)
    program = compiled(case, monkeypatch, SMALL_BUDGET[case])
    kernels = recurrent_kernels(program)
    layers = {k.layer for k in kernels}
    assert len(kernels) >= 3 * len(layers)  # every layer is cut into several slices
    for kernel in kernels:  # each slice receives every slice's hidden state, itself included
        state_port = kernel.inputs[-1]
        siblings = {k.output.key for k in kernels if k.layer == kernel.layer}
        assert {source.key for source in state_port.sources} == siblings
    outputs, stats = interpreter_outputs(encode_image(program), inputs)
    for name, reference in expected.items():
        np.testing.assert_allclose(
            outputs[name], reference, rtol=tolerances.rtol, atol=tolerances.atol, err_msg=name
        )
    for layer in layers:
        counts = stats.per_layer[layer]
        steps = next(k.output.box.shape[0] for k in kernels if k.layer == layer)
        assert counts["packets"] == steps * counts["packets_per_timestep"]


def test_a_step_travels_in_whole_packets():
    """hidden 10, batch 1 in 3 slices of 4/4/2 units: 4 floats per packet where 4 divides the
    row, 2 where it does not, so step t's packets carry step t's values only."""
    assert step_values_per_packet(Box((0, 0, 0), (6, 1, 4)), 4) == 4
    assert step_values_per_packet(Box((0, 0, 8), (6, 1, 10)), 4) == 2
    assert step_values_per_packet(Box((0, 0, 0), (6, 1, 7)), 4) == 1
    assert step_values_per_packet(Box((0, 0, 0), (6, 2, 32)), 16) == 16


def _edit(kernel: Kernel, **attrs) -> Kernel:
    return dataclasses.replace(kernel, attrs=dict(kernel.attrs, **attrs))


def _drop_state_port(kernel: Kernel) -> Kernel:
    return dataclasses.replace(
        kernel, inputs=kernel.inputs[:-1], attrs=dict(kernel.attrs, exchange=0)
    )


@pytest.mark.parametrize(
    ("edit", "words"),
    [
        (lambda k: _edit(k, reverse=2), ["'reverse'", "0..1"]),
        (lambda k: _edit(k, hidden_size=4), ["input 1 box", "stop=(1, 4)"]),
        (_drop_state_port, ["'exchange'", "exchanged every step"]),
        (lambda k: _edit(k, linear_before_reset=1), ["parameter role", "'reset_w'"]),
    ],
)
def test_a_hostile_recurrent_descriptor_is_refused_in_one_line(edit, words, monkeypatch):
    program = compiled("gru_bidirectional", monkeypatch, SMALL_BUDGET["gru_bidirectional"])
    for pe in program.pes:
        for index, kernel in enumerate(pe.kernels):
            if kernel.opcode == "gru":
                pe.kernels[index] = edit(kernel)
                break
        else:
            continue
        break
    with pytest.raises(InputError) as error:
        Interpreter(program)
    message = str(error.value)
    assert "\n" not in message and "(gru" in message, message
    for word in words:
        assert word in message, message


def test_every_slice_stays_when_consumers_read_only_some_units():
    """Units 2..3 reach no consumer, but their slice feeds the state of units 0..1."""
    full = Box((0, 0, 0), (4, 1, 4))
    parts = Partition(
        tensors={
            0: TensorInfo(0, "x", (4, 1, 3), "float32"),
            1: TensorInfo(1, "h", (4, 1, 4), "float32"),
            2: TensorInfo(2, "y", (4, 1, 2), "float32"),
        },
        graph_outputs=[("y", 2)],
    )
    x = (0, Box((0, 0, 0), (4, 1, 3)))
    for index, units in enumerate(((0, 2), (2, 4))):
        box = Box((0, 0, units[0]), (4, 1, units[1]))
        spec = SliceSpec("gru", {}, box, [x, (5, full)])
        parts.slices.append(Slice(index, "gru", 0, spec, 1, [0, 1], 0))
    consumer = SliceSpec("slice", {}, Box((0, 0, 0), (4, 1, 2)), [(0, Box((0, 0, 0), (4, 1, 2)))])
    parts.slices.append(Slice(2, "slice", 1, consumer, 2, [1], 0))
    kept = prune_unread_slices(parts).slices
    assert [s.layer for s in kept] == ["gru", "gru", "slice"]


def test_a_batch_of_two_through_sliced_lstm_layers_matches_onnxruntime(monkeypatch):
    """Batch 2, bidirectional, 6 units cut into slices: rows of B x U values per step."""
    rng = np.random.default_rng(12)
    steps, batch, features, hidden = 5, 2, 3, 6
    weights = {
        "W": rng.normal(0, 0.5, (2, 4 * hidden, features)),
        "R": rng.normal(0, 0.5, (2, 4 * hidden, hidden)),
        "B": rng.normal(0, 0.5, (2, 8 * hidden)),
    }
    node = helper.make_node(
        "LSTM", ["x", "W", "R", "B"], ["Y", "Y_h"], hidden_size=hidden, direction="bidirectional"
    )
    graph = helper.make_graph(
        [node],
        "batch_two",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [steps, batch, features])],
        [
            helper.make_tensor_value_info("Y", TensorProto.FLOAT, [steps, 2, batch, hidden]),
            helper.make_tensor_value_info("Y_h", TensorProto.FLOAT, [2, batch, hidden]),
        ],
        [numpy_helper.from_array(a.astype(np.float32), n) for n, a in weights.items()],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)
    inputs = {"x": rng.normal(0, 1, (steps, batch, features)).astype(np.float32)}
    monkeypatch.setattr(s2c.driver, "partition", lambda g, _b, *a: partition(g, 1600, *a))
    result = compile_model(model, CompileOptions(mode="float", machine="chip"), emit=lambda t: None)
    assert len(recurrent_kernels(result.program)) > 2
    outputs, _ = interpreter_outputs(encode_image(result.program), inputs)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    for name, expected in zip(("Y", "Y_h"), session.run(None, inputs)):
        np.testing.assert_allclose(outputs[name], expected, rtol=1e-5, atol=1e-6, err_msg=name)
