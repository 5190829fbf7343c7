"""Recurrent layers on PEs: sliced by hidden units, state exchanged every step through the
routers, descriptors checked at load; results compared with the stored onnxruntime outputs."""

from __future__ import annotations

import dataclasses

import numpy as np
import onnx
import pytest

import s2c.driver
from backend.image import decode_image, encode_image
from backend.interpreter import Interpreter
from backend.partition import partition
from backend.program import Box, Kernel, Program
from backend.recurrent import step_values_per_packet
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
