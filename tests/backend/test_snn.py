"""snn mode: conversion, spiking kernels, routing of spikes, determinism, bad input.

Expected values come from onnxruntime (fp32), from closed forms of integrate-and-fire neurons
(an IF neuron with constant input current I <= theta, reset by subtraction and initial membrane
V0 fires floor((V0 + t I) / theta) times in t steps) or from a direct loop implementation of
the documented max-pool gating rule, never from the interpreter itself.
"""

from __future__ import annotations

import copy
import dataclasses
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from backend.image import decode_image, encode_image
from backend.interpreter import Interpreter
from backend.program import Program
from backend.spiking import MaxPoolGate
from ir.errors import InputError, UnsupportedError
from s2c.driver import CompileOptions, compile_model
from s2c.validate import interpreter_outputs, run_onnxruntime

DIGITS = Path(__file__).resolve().parents[2] / "golden" / "digits"
MLP_CALIB = str(DIGITS / "calib_mlp.npz")


def _quiet_compile(model, options: CompileOptions):
    return compile_model(model, options, emit=lambda t: None, warn=lambda t: None)


@pytest.fixture(scope="module")
def mlp_program() -> Program:
    options = CompileOptions(mode="snn", calib=MLP_CALIB, timesteps=8)
    return decode_image(encode_image(_quiet_compile(DIGITS / "mlp.onnx", options).program))


def _model(nodes, inputs, outputs, initializers) -> onnx.ModelProto:
    graph = helper.make_graph(nodes, "g", inputs, outputs, initializers)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _tensor(name: str, array: np.ndarray) -> onnx.TensorProto:
    return numpy_helper.from_array(array.astype(np.float32), name)


def _io(name: str, shape) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)


def _dense_model(rng: np.random.Generator, activation: str = "Relu") -> onnx.ModelProto:
    """x[1, 6] -> Gemm(6 -> 5) -> activation -> Gemm(5 -> 3)."""
    nodes = [
        helper.make_node("Gemm", ["x", "w1", "b1"], ["h"]),
        helper.make_node(activation, ["h"], ["a"]),
        helper.make_node("Gemm", ["a", "w2", "b2"], ["y"]),
    ]
    weights = [
        _tensor("w1", rng.standard_normal((6, 5))),
        _tensor("b1", 0.1 * rng.standard_normal(5)),
        _tensor("w2", rng.standard_normal((5, 3))),
        _tensor("b2", np.zeros(3)),
    ]
    return _model(nodes, [_io("x", [1, 6])], [_io("y", [1, 3])], weights)


def _calib(tmp_path: Path, arrays: dict[str, np.ndarray]) -> str:
    path = tmp_path / "calib.npz"
    np.savez(path, **arrays)
    return str(path)


# -- conversion ---------------------------------------------------------------------------------
def test_hidden_neurons_fire_as_closed_form_of_integrate_and_fire(tmp_path: Path) -> None:
    """Spike counts per neuron after T steps equal floor((theta // 2 + T I) / theta)."""
    rng = np.random.default_rng(3)
    model = _dense_model(rng)
    samples = np.abs(rng.standard_normal((32, 6))).astype(np.float32)
    options = CompileOptions(mode="snn", calib=_calib(tmp_path, {"x": samples}), timesteps=16)
    program = decode_image(encode_image(_quiet_compile(model, options).program))
    interpreter = Interpreter(program)
    first = next(i for i, (_, k) in enumerate(interpreter.kernels) if k.attrs.get("fire") == 1)
    kernel, params = interpreter.kernels[first][1], interpreter.params[first]
    io = program.inputs[0]
    x = samples[:4]
    q = (
        np.clip(np.rint(x / io.quant[0]) + io.quant[1], -128, 127)
        - kernel.attrs["input_zero_point"]
    )
    current = (q @ params["weight"].astype(np.int64)) * 2 ** kernel.attrs["fraction_bits"]
    current = current + params["bias"]
    theta = params["threshold"].astype(np.int64)
    # At most one spike per step: a neuron with I >= theta fires at every step.
    below = np.maximum(np.floor((theta // 2 + 16 * current) / theta), 0)
    expected = np.where(current >= theta, 16, below).astype(np.int64)
    _, stats = interpreter.run({"x": x[:, None]})
    assert expected.sum() > 0
    assert sum(stats.spikes_per_layer[kernel.layer]) == int(expected.sum())


def test_thresholds_balance_each_channel_at_the_percentile(tmp_path: Path) -> None:
    """theta[c] = round(2^F / s[c]) with s[c] = max_j |w[j, c] s_x / lambda[c]| / 127."""
    rng = np.random.default_rng(4)
    model = _dense_model(rng)
    samples = np.abs(rng.standard_normal((64, 6))).astype(np.float32)
    options = CompileOptions(mode="snn", calib=_calib(tmp_path, {"x": samples}), timesteps=8)
    program = _quiet_compile(model, options).program
    kernel, params = _kernel_and_params(program, "spike_dense", fire=1)
    weight = numpy_helper.to_array(model.graph.initializer[0]).astype(np.float64)
    bias = numpy_helper.to_array(model.graph.initializer[1]).astype(np.float64)
    hidden = np.maximum(samples @ weight + bias, 0)
    lam = np.maximum(np.percentile(hidden, 99.9, axis=0), 1e-6)
    s_x = program.inputs[0].quant[0]
    scale = np.abs(weight * s_x / lam).max(axis=0) / 127
    expected = np.rint(2.0 ** kernel.attrs["fraction_bits"] / scale)
    # The compiler takes the percentile of float32 activations; one unit of rounding apart.
    np.testing.assert_allclose(params["threshold"], expected, rtol=0, atol=1)
    np.testing.assert_array_equal(params["membrane"][0], params["threshold"] // 2)


def _kernel_and_params(program: Program, opcode: str, fire: int | None = None):
    interpreter = Interpreter(decode_image(encode_image(program)))
    for (_, kernel), params in zip(interpreter.kernels, interpreter.params):
        if kernel.opcode == opcode and (fire is None or kernel.attrs.get("fire") == fire):
            return kernel, params
    raise AssertionError(f"no {opcode} kernel")


def test_non_relu_activation_is_unsupported_naming_the_node(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    samples = np.abs(rng.standard_normal((8, 6))).astype(np.float32)
    options = CompileOptions(mode="snn", calib=_calib(tmp_path, {"x": samples}))
    with pytest.raises(UnsupportedError, match=r"\(activation\): activation 'sigmoid'"):
        _quiet_compile(_dense_model(rng, "Sigmoid"), options)


def test_poisson_coding_refuses_negative_calibration_inputs(tmp_path: Path) -> None:
    rng = np.random.default_rng(6)
    samples = rng.standard_normal((8, 6)).astype(np.float32)
    options = CompileOptions(
        mode="snn", calib=_calib(tmp_path, {"x": samples}), snn_encoding="poisson"
    )
    with pytest.raises(InputError, match="Poisson coding needs non-negative inputs"):
        _quiet_compile(_dense_model(rng), options)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"timesteps": 0}, "--timesteps must be in 1..4096"),
        ({"timesteps": 100_000}, "--timesteps must be in 1..4096"),
        ({"calib": None}, "--mode snn needs --calib"),
        ({"snn_percentile": 20.0}, "--snn-percentile"),
        ({"snn_encoding": "burst"}, "--snn-encoding"),
    ],
)
def test_bad_snn_options_are_input_errors(change: dict, message: str) -> None:
    options = dataclasses.replace(CompileOptions(mode="snn", calib=MLP_CALIB), **change)
    with pytest.raises(InputError, match=message):
        options.check()


def test_residual_add_and_concat_agree_with_onnxruntime(tmp_path: Path) -> None:
    """conv-relu -> conv-relu, add, relu, concat, global average pool, flatten, dense."""
    rng = np.random.default_rng(7)
    nodes = [
        helper.make_node("Conv", ["x", "k1", "c1"], ["a0"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["a0"], ["a"]),
        helper.make_node("Conv", ["a", "k2", "c2"], ["b0"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["b0"], ["b"]),
        helper.make_node("Add", ["a", "b"], ["s0"]),
        helper.make_node("Relu", ["s0"], ["s"]),
        helper.make_node("Concat", ["s", "a"], ["c"], axis=1),
        helper.make_node("GlobalAveragePool", ["c"], ["g"]),
        helper.make_node("Flatten", ["g"], ["f"]),
        helper.make_node("Gemm", ["f", "w", "bw"], ["y"]),
    ]
    weights = [
        _tensor("k1", 0.5 * rng.standard_normal((4, 2, 3, 3))),
        _tensor("c1", 0.1 * rng.standard_normal(4)),
        _tensor("k2", 0.3 * rng.standard_normal((4, 4, 3, 3))),
        _tensor("c2", 0.1 * rng.standard_normal(4)),
        _tensor("w", rng.standard_normal((8, 5))),
        _tensor("bw", np.zeros(5)),
    ]
    model = _model(nodes, [_io("x", [1, 2, 6, 6])], [_io("y", [1, 5])], weights)
    samples = np.abs(rng.standard_normal((48, 2, 6, 6))).astype(np.float32)
    options = CompileOptions(mode="snn", calib=_calib(tmp_path, {"x": samples}), timesteps=64)
    result = _quiet_compile(model, options)
    opcodes = {k.opcode for pe in result.program.pes for k in pe.kernels}
    assert {"spike_add", "concat", "spike_conv", "spike_dense"} <= opcodes
    actual, _ = interpreter_outputs(encode_image(result.program), {"x": samples})
    expected = np.concatenate([run_onnxruntime(model, {"x": s[None]})["y"] for s in samples])
    # A rate code at T = 64 approximates each activation to about 1/64 of its threshold; on
    # this untrained network the logits then correlate above 0.98 with fp32.
    assert np.corrcoef(actual["y"].ravel(), expected.ravel())[0, 1] > 0.98


def test_max_pool_gate_follows_the_input_with_most_spikes_so_far(tmp_path: Path) -> None:
    """The gate against a direct loop over windows of the documented rule."""
    rng = np.random.default_rng(8)
    program = _maxpool_program(rng, tmp_path)
    kernel = next(k for pe in program.pes for k in pe.kernels if k.opcode == "spike_max_pool")
    params = {"count": np.zeros(kernel.inputs[0].box.shape, dtype=np.int32)}
    gate = MaxPoolGate(kernel, params)
    in_shape = kernel.inputs[0].box.shape
    counts = np.zeros((2, *in_shape), dtype=np.int64)
    loop_counts = np.zeros_like(counts)
    for _ in range(6):
        spikes = rng.random((2, *in_shape)) < 0.4
        out = gate.step(counts, spikes)
        loop_counts += spikes
        for s in range(2):
            for c in range(in_shape[1]):
                for i in range(out.shape[3]):
                    for j in range(out.shape[4]):
                        window = loop_counts[s, 0, c, 2 * i : 2 * i + 2, 2 * j : 2 * j + 2]
                        r, q = np.unravel_index(np.argmax(window), window.shape)
                        assert out[s, 0, c, i, j] == spikes[s, 0, c, 2 * i + r, 2 * j + q]


def _maxpool_program(rng: np.random.Generator, tmp_path: Path) -> Program:
    nodes = [
        helper.make_node("Conv", ["x", "k"], ["a0"], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["a0"], ["a"]),
        helper.make_node("MaxPool", ["a"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Flatten", ["p"], ["f"]),
        helper.make_node("Gemm", ["f", "w"], ["y"]),
    ]
    weights = [
        _tensor("k", rng.standard_normal((3, 1, 3, 3))),
        _tensor("w", rng.standard_normal((3 * 2 * 2, 2))),
    ]
    model = _model(nodes, [_io("x", [1, 1, 4, 4])], [_io("y", [1, 2])], weights)
    samples = np.abs(rng.standard_normal((16, 1, 4, 4))).astype(np.float32)
    options = CompileOptions(mode="snn", calib=_calib(tmp_path, {"x": samples}), timesteps=8)
    return decode_image(encode_image(_quiet_compile(model, options).program))


# -- image and interpreter ----------------------------------------------------------------------
def test_snn_images_are_deterministic(tmp_path: Path) -> None:
    options = CompileOptions(mode="snn", calib=MLP_CALIB, timesteps=8, snn_encoding="poisson")
    first = encode_image(_quiet_compile(DIGITS / "mlp.onnx", options).program)
    second = encode_image(_quiet_compile(DIGITS / "mlp.onnx", options).program)
    assert first == second


def test_poisson_runs_repeat_with_the_seed_in_the_image() -> None:
    test = np.load(DIGITS / "test.npz")["input_mlp"][:8]
    options = CompileOptions(mode="snn", calib=MLP_CALIB, timesteps=8, snn_encoding="poisson")
    image = encode_image(_quiet_compile(DIGITS / "mlp.onnx", options).program)
    again, _ = interpreter_outputs(image, {"input": test})
    first, _ = interpreter_outputs(image, {"input": test})
    other = encode_image(
        _quiet_compile(DIGITS / "mlp.onnx", dataclasses.replace(options, snn_seed=1)).program
    )
    reseeded, _ = interpreter_outputs(other, {"input": test})
    np.testing.assert_array_equal(first["logits"], again["logits"])
    assert not np.array_equal(first["logits"], reseeded["logits"])
    with pytest.raises(InputError, match="non-negative"):
        interpreter_outputs(image, {"input": -test})


def test_a_missing_router_entry_fails_loudly(mlp_program: Program) -> None:
    chips = [dataclasses.replace(chip, router=list(chip.router)) for chip in mlp_program.chips]
    chip = next(c for c in chips if c.router)
    chip.router.pop(0)
    broken = dataclasses.replace(mlp_program, chips=chips)
    with pytest.raises(InputError, match="dropped"):
        Interpreter(decode_image(encode_image(broken)))


def test_a_spike_routed_to_the_wrong_pe_fails_loudly(mlp_program: Program) -> None:
    chips = [dataclasses.replace(chip, router=list(chip.router)) for chip in mlp_program.chips]
    chip = next(c for c in chips if any(entry.pes for entry in c.router))
    index = next(i for i, entry in enumerate(chip.router) if entry.pes)
    entry = chip.router[index]
    wrong = frozenset({max(entry.pes) + 1})
    chip.router[index] = dataclasses.replace(entry, pes=wrong)
    with pytest.raises(InputError, match="never deliver"):
        Interpreter(decode_image(encode_image(dataclasses.replace(mlp_program, chips=chips))))


def test_a_threshold_of_wrong_shape_is_refused_at_load(mlp_program: Program) -> None:
    mlp_program = copy.deepcopy(mlp_program)
    pe = next(p for p in mlp_program.pes if any(k.opcode == "spike_dense" for k in p.kernels))
    kernel = next(k for k in pe.kernels if k.attrs.get("fire") == 1)
    params = tuple(
        dataclasses.replace(ref, shape=(ref.shape[0] - 1,)) if ref.role == "threshold" else ref
        for ref in kernel.params
    )
    pe.kernels[pe.kernels.index(kernel)] = dataclasses.replace(kernel, params=params)
    with pytest.raises(InputError, match="threshold is int32"):
        Interpreter(mlp_program)


def test_synaptic_events_are_spikes_times_fan_out(mlp_program: Program) -> None:
    """Each spike of the 64-neuron layer reaches 32 neurons, each of the 32-neuron layer 10."""
    test = np.load(DIGITS / "test.npz")["input_mlp"][:16]
    _, stats = Interpreter(mlp_program).run({"input": test[:, None]})
    layers = stats.spikes_per_layer
    assert sorted(layers) == ["/0/Gemm", "/2/Gemm"]  # the 64- and 32-neuron layers
    total = sum(layers["/0/Gemm"]) * 32 + sum(layers["/2/Gemm"]) * 10
    assert total > 0
    assert stats.synaptic_events == total
    assert stats.packets >= stats.spikes


def test_every_node_that_cannot_spike_is_named_at_once() -> None:
    """golden/residual_add: a conv without ReLU before the add, and an add reading the input."""
    model = DIGITS.parent / "residual_add" / "model.onnx"
    options = CompileOptions(mode="snn", calib=MLP_CALIB)
    with pytest.raises(UnsupportedError) as caught:
        _quiet_compile(model, options)
    problems = caught.value.problems
    assert any("(conv): no ReLU before the next spiking layer" in p for p in problems)
    assert any("(add): reads graph input 'input'" in p for p in problems)


def test_tiled_average_pool_sums_equal_the_reference_conv() -> None:
    """The fast path for stride = kernel depthwise convs gives the ir.reference conv's sums."""
    from backend.spiking import _tiled_depthwise
    from ir.reference import evaluate

    rng = np.random.default_rng(9)
    spikes = (rng.random((5, 1, 6, 8, 8)) < 0.3).astype(np.float32)
    weight = rng.integers(-127, 128, (6, 1, 2, 2)).astype(np.float32)
    attrs = {"strides": (2, 2), "pads": (0, 0, 0, 0), "dilations": (1, 1), "group": 6}
    attrs.update(activation="none", activation_params=())
    (expected,) = evaluate("conv", attrs, [spikes.reshape(5, 6, 8, 8), weight])
    np.testing.assert_array_equal(_tiled_depthwise(spikes, weight).reshape(5, 6, 4, 4), expected)


def test_spikes_cross_chips_with_the_same_result(tmp_path: Path, mlp_program: Program) -> None:
    """One usable core per chip spreads the MLP over three chips: same logits, link hops > 0."""
    machine = tmp_path / "machine.json"
    machine.write_text('{"machine": "board", "usable_cores": 1}')
    options = CompileOptions(mode="snn", calib=MLP_CALIB, timesteps=8, machine=str(machine))
    spread = _quiet_compile(DIGITS / "mlp.onnx", options).program
    assert len({pe.pe.chip for pe in spread.pes}) == 3
    x = np.load(DIGITS / "test.npz")["input_mlp"][:16]
    here, local = interpreter_outputs(encode_image(mlp_program), {"input": x})
    there, travelled = interpreter_outputs(encode_image(spread), {"input": x})
    np.testing.assert_array_equal(here["logits"], there["logits"])
    assert local.link_hops == 0 and travelled.link_hops > 0
    assert travelled.spikes == local.spikes


def test_bias_correction_adds_back_the_current_clipping_removes(tmp_path: Path) -> None:
    """Output bias = b + E[max(h - lambda, 0)] @ w2, decoded from the image's integers."""
    rng = np.random.default_rng(10)
    model = _dense_model(rng)
    samples = np.abs(rng.standard_normal((64, 6))).astype(np.float32)
    options = CompileOptions(
        mode="snn",
        calib=_calib(tmp_path, {"x": samples}),
        timesteps=8,
        snn_percentile=90.0,
        snn_bias_correction=True,
    )
    program = _quiet_compile(model, options).program
    _, params = _kernel_and_params(program, "spike_dense", fire=0)
    # The integrator's membrane unit is s / 2^F = output scale * T (docs/numerics.md).
    bias = params["bias"] * program.outputs[0].quant[0] * 8
    w1, b1, w2, b2 = (numpy_helper.to_array(t).astype(np.float64) for t in model.graph.initializer)
    hidden = np.maximum(samples @ w1 + b1, 0)
    lam = np.percentile(hidden, 90.0, axis=0)
    lam = np.where(lam > 0, lam, hidden.max(axis=0))  # a channel silent at P: its maximum
    expected = b2 + np.maximum(hidden - lam, 0).mean(axis=0) @ w2
    assert np.abs(expected - b2).max() > 0.05  # the correction is not negligible here
    # One integer bias step is s / 2^F; float32 percentiles move lambda by a few ulp.
    np.testing.assert_allclose(bias, expected, atol=program.outputs[0].quant[0] * 8)
