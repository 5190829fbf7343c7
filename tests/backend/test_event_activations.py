"""Event-based activations and the sparsity counts of a run (backend/activity.py)."""

from __future__ import annotations

import numpy as np
import pytest

from backend.image import decode_image, encode_image
from backend.interpreter import Interpreter
from golden.cases import load_case
from s2c.driver import CompileOptions, compile_model
from s2c.summary import summarise
from s2c.validate import interpreter_outputs


def _image(model, **options) -> bytes:
    result = compile_model(model, CompileOptions(**options), emit=lambda t: None, warn=None)
    return encode_image(result.program)


def _samples(inputs: dict, count: int = 8) -> dict:
    rng = np.random.default_rng(3)
    return {
        n: rng.standard_normal((count, *a.shape[1:])).astype(a.dtype) for n, a in inputs.items()
    }


def _assert_same(mode: str, actual: np.ndarray, expected: np.ndarray) -> None:
    """int8 sums are exact integers: bit for bit. Float products are float32 BLAS sums, and
    the arrived rows make a shorter sum, which BLAS may block differently: float32 rounding."""
    if mode == "int8":
        np.testing.assert_array_equal(actual, expected)
    else:
        np.testing.assert_allclose(actual, expected, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("mode", ["int8", "float"])
def test_events_send_only_non_zeros_and_compute_the_same(mode: str) -> None:
    model, inputs, _, _ = load_case("mlp")
    x = _samples(inputs)
    options = dict(mode=mode, prune=0.5, prune_first_last=True)
    events = _image(model, **options, event_activations=True)
    dense = _image(model, **options, event_activations=False)
    event_out, event_stats = interpreter_outputs(events, x)
    dense_out, dense_stats = interpreter_outputs(dense, x)
    _assert_same(mode, event_out["logits"], dense_out["logits"])
    # one key per element with events; packed values without
    kernels = [k for pe in decode_image(events).pes for k in pe.kernels]
    assert all(k.output.values_per_packet == 1 for k in kernels)
    sparsity = event_stats.sparsity.as_dict()
    last = sparsity["per_layer"][kernels[-1].layer]
    # the last layer's packets are its non-zero outputs (zero codes dequantise to exactly 0)
    assert last["packets_sent"] == int(np.count_nonzero(event_out["logits"]))
    assert sparsity["packets_sent"] < sparsity["packets_elements"]
    # hidden ReLU layers: the next layer only walks synaptic rows of non-zero inputs
    assert sparsity["macs_performed"] < dense_stats.sparsity.as_dict()["macs_performed"]
    # run totals count packets sent; the host's input packets are the same in both images
    dense_sparsity = dense_stats.sparsity.as_dict()
    assert dense_sparsity["packets_sent"] == dense_sparsity["packets_packed"]
    host = dense_stats.packets - dense_sparsity["packets_sent"]
    assert event_stats.packets == host + sparsity["packets_sent"]


def test_activation_sparsity_of_a_relu_layer_matches_an_independent_count() -> None:
    model, inputs, _, _ = load_case("mlp")
    x = _samples(inputs, 16)
    image = _image(model, mode="float", event_activations=True)
    _, stats = interpreter_outputs(image, x)
    first = next(iter(stats.sparsity.per_layer.values()))
    # the first layer is Gemm + Relu: recompute it with numpy from the model's initialisers
    import onnx.numpy_helper as helper

    weights = {t.name: helper.to_array(t) for t in model.graph.initializer}
    gemm = model.graph.node[0]
    w, b = weights[gemm.input[1]], weights[gemm.input[2]]
    transposed = any(a.name == "transB" and a.i == 1 for a in gemm.attribute)
    hidden = np.maximum(x["input"].reshape(16, -1) @ (w.T if transposed else w) + b, 0)
    assert first.activation_elements == hidden.size
    assert first.activation_zeros == int(np.count_nonzero(hidden == 0))


def test_inspect_reports_weight_bytes_and_macs_dense_vs_stored() -> None:
    model, _, _, _ = load_case("mlp")
    image = _image(model, mode="int8", prune=0.9, prune_first_last=True)
    summary = summarise(decode_image(image), len(image))["sparsity"]
    assert summary["csr_kernels"] >= 1
    assert summary["weight_bytes_stored"] < 0.35 * summary["weight_bytes_dense"]
    assert summary["macs_stored"] < 0.2 * summary["macs_dense"]
    assert summary["prune"]["fraction"] == 0.9


def _silenced(image: bytes, poison: bool) -> dict:
    """Run the float MLP with hidden units 0..31 of the first layer always 0 (weights 0, bias
    -1, so ReLU gives 0), and with `poison` NaN in the second layer's rows of those inputs."""
    interpreter = Interpreter(decode_image(image))
    layers = sorted(
        {k.layer for _, k in interpreter.kernels},
        key=lambda name: min(k.order for _, k in interpreter.kernels if k.layer == name),
    )
    for params, (_, kernel) in zip(interpreter.params, interpreter.kernels):
        if kernel.layer == layers[0]:
            start = kernel.output.box.start[-1]
            silent = slice(max(0, -start), max(0, 32 - start))
            params["weight"] = params["weight"].copy()
            params["weight"][:, silent] = 0.0
            params["bias"] = params["bias"].copy()
            params["bias"][silent] = -1.0
        if kernel.layer == layers[1] and poison:
            start = kernel.inputs[0].box.start[-1]
            params["weight"] = params["weight"].copy()
            params["weight"][max(0, -start) : max(0, 32 - start)] = np.nan
    x = _samples({"input": np.zeros((1, 64), np.float32)})
    outputs, _ = interpreter.run({"input": x["input"][:, None]})
    return outputs


def test_an_event_dense_kernel_reads_only_the_synaptic_rows_of_inputs_that_arrived() -> None:
    """Rows of inputs that never arrive hold NaN: events never touch them (output finite and
    equal to the unpoisoned run); dense transmission multiplies them (0 x NaN = NaN)."""
    model, _, _, _ = load_case("mlp")
    events = _image(model, mode="float", event_activations=True)
    packed = _image(model, mode="float", event_activations=False)
    expected = _silenced(packed, poison=False)["logits"]
    assert np.isfinite(expected).all()
    _assert_same("float", _silenced(events, poison=True)["logits"], expected)
    assert np.isnan(_silenced(packed, poison=True)["logits"]).all()


@pytest.mark.parametrize("case", ["conv_pool_dense", "concat_branches"])
def test_event_and_dense_transmission_give_bit_identical_int8_outputs(case: str) -> None:
    model, inputs, _, _ = load_case(case)
    x = _samples(inputs, 4)
    options = dict(mode="int8", prune=0.7, prune_first_last=True)
    events, _ = interpreter_outputs(_image(model, **options, event_activations=True), x)
    dense, _ = interpreter_outputs(_image(model, **options, event_activations=False), x)
    for name in dense:
        np.testing.assert_array_equal(events[name], dense[name])


@pytest.mark.parametrize("events", [False, True])
def test_a_run_without_activity_counts_keeps_outputs_and_the_fixed_counts(events: bool) -> None:
    """`activity=False` (`s2c run` without --stats) skips the value-dependent counts only: the
    outputs, and the packets of an image whose layers send events, are those of a counted run."""
    model, inputs, _, _ = load_case("mlp")
    x = _samples(inputs)
    image = _image(model, mode="int8", event_activations=events)
    counted_out, counted = interpreter_outputs(image, x)
    quiet_out, quiet = interpreter_outputs(image, x, activity=False)
    np.testing.assert_array_equal(counted_out["logits"], quiet_out["logits"])
    assert counted.sparsity is not None
    assert (quiet.sparsity is not None) == events  # event packets depend on the values
    assert (quiet.packets, quiet.link_hops, quiet.macs) == (
        counted.packets,
        counted.link_hops,
        counted.macs,
    )
