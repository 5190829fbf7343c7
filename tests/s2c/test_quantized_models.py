"""Models quantised by onnxruntime's `quantize_static` compile with their own parameters.

Golden models (and `qlinear_ops`, a small model whose QOperator form uses every QLinear op s2c
lowers) are quantised (QDQ and QOperator, per-channel weights, MinMax, 16 seeded calibration
samples), compiled with `--mode int8` and run in the interpreter; onnxruntime runs the same
quantised model with graph optimisations disabled. Figures: >= 99.5 % of output elements within
1 LSB (of the output scale), none beyond 2, over the golden input and 7 seeded extra samples.

QOperator models are quantised with int8 activations: with uint8 activations onnxruntime's
u8 x s8 kernels (QLinearConv, QGemm) saturate 16-bit pair sums on CPUs without VNNI and disagree
with its own QDQ form of the same model by up to ~10 LSB, so they are no reference there.
"""

from __future__ import annotations

import functools
import tempfile
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from backend.image import encode_image
from golden.cases import load_case
from ir.errors import InputError, UnsupportedError
from s2c.driver import CompileOptions, compile_model
from s2c.frontend import load_onnx
from s2c.validate import QDQ_MAX_STEPS, QDQ_MIN_FRACTION, interpreter_outputs, run_onnxruntime

quantization = pytest.importorskip("onnxruntime.quantization")

CALIBRATION_SAMPLES = 16
EXTRA_SAMPLES = 7  # seeded inputs besides the golden one
MIN_FRACTION, MAX_STEPS = QDQ_MIN_FRACTION, QDQ_MAX_STEPS  # 99.5 % within 1 LSB, none > 2

Arrays = dict[str, np.ndarray]


def _samples(inputs: Arrays, count: int, seed: int) -> list[Arrays]:
    """Seeded inputs with the shapes and spread of `inputs`."""
    rng = np.random.default_rng(seed)
    return [
        {
            name: (rng.standard_normal(x.shape) * max(float(x.std()), 1e-3)).astype(np.float32)
            for name, x in inputs.items()
        }
        for _ in range(count)
    ]


class _Reader(quantization.CalibrationDataReader):
    def __init__(self, samples: list[Arrays]) -> None:
        self._samples = iter(samples)

    def get_next(self) -> Arrays | None:
        return next(self._samples, None)


def _qlinear_ops_case() -> tuple[onnx.ModelProto, Arrays]:
    """A float model whose QOperator form uses every QLinear op s2c lowers (and Reshape and
    Transpose on quantised tensors): QLinearConv, QLinearMul, QLinearSigmoid,
    QLinearGlobalAveragePool, QLinearLeakyRelu, QLinearAveragePool, QLinearMatMul, QLinearAdd
    (with a constant), QLinearConcat, QLinearSoftmax."""
    rng = np.random.default_rng(7)

    def constant(name: str, array, dtype=np.float32) -> onnx.TensorProto:
        return numpy_helper.from_array(np.asarray(array).astype(dtype), name)

    node = helper.make_node
    nodes = [
        node("Conv", ["x", "K", "Kb"], ["c"], pads=[1, 1, 1, 1]),
        node("Relu", ["c"], ["r"]),
        node("Sigmoid", ["x"], ["s"]),
        node("Mul", ["r", "s"], ["m"]),
        node("GlobalAveragePool", ["m"], ["g"]),
        node("LeakyRelu", ["m"], ["l"], alpha=0.2),
        node("AveragePool", ["l"], ["a"], kernel_shape=[2, 2], strides=[2, 2]),
        node("Reshape", ["a", "shape"], ["rs"]),
        node("Transpose", ["rs"], ["t"], perm=[0, 2, 1]),
        node("MatMul", ["v", "W"], ["mm"]),
        node("Add", ["mm", "addc"], ["ad"]),
        node("Concat", ["ad", "ad"], ["cc"], axis=1),
        node("Softmax", ["cc"], ["sm"], axis=1),
    ]
    initializers = [
        constant("K", rng.standard_normal((4, 4, 3, 3)) * 0.3),
        constant("Kb", rng.standard_normal(4) * 0.1),
        constant("W", rng.standard_normal((8, 16)) * 0.3),
        constant("addc", rng.standard_normal((1, 16)) * 0.5),
        constant("shape", [1, 4, 9], np.int64),
    ]

    def info(name: str, shape: list[int]) -> onnx.ValueInfoProto:
        return helper.make_tensor_value_info(name, TensorProto.FLOAT, shape)

    graph = helper.make_graph(
        nodes,
        "qlinear_ops",
        [info("x", [1, 4, 6, 6]), info("v", [1, 8])],
        [info("g", [1, 4, 1, 1]), info("t", [1, 9, 4]), info("sm", [1, 32])],
        initializers,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    inputs = {
        "x": rng.standard_normal((1, 4, 6, 6)).astype(np.float32),
        "v": rng.standard_normal((1, 8)).astype(np.float32),
    }
    return model, inputs


def _case(case: str) -> tuple[onnx.ModelProto, Arrays]:
    if case == "qlinear_ops":
        return _qlinear_ops_case()
    model, inputs, _, _ = load_case(case)
    return model, inputs


def _calibration(case: str) -> list[Arrays]:
    _, inputs = _case(case)
    return _samples(inputs, CALIBRATION_SAMPLES, seed=1234)


@functools.cache
def _quantised_bytes(case: str, form: str, activations: str, per_channel: bool) -> bytes:
    model, _ = _case(case)
    with tempfile.TemporaryDirectory() as folder:
        source, target = Path(folder) / "float.onnx", Path(folder) / "quantised.onnx"
        onnx.save(model, source)
        quantization.quantize_static(
            str(source),
            str(target),
            _Reader(_calibration(case)),
            quant_format=quantization.QuantFormat.QDQ
            if form == "qdq"
            else quantization.QuantFormat.QOperator,
            per_channel=per_channel,
            activation_type=quantization.QuantType.QInt8
            if activations == "int8"
            else quantization.QuantType.QUInt8,
            weight_type=quantization.QuantType.QInt8,
            calibrate_method=quantization.CalibrationMethod.MinMax,
        )
        return target.read_bytes()


def quantised(
    case: str, form: str = "qdq", activations: str = "int8", per_channel: bool = True
) -> onnx.ModelProto:
    """A fresh copy of the case quantised by onnxruntime."""
    return onnx.load_from_string(_quantised_bytes(case, form, activations, per_channel))


def _compile(model: onnx.ModelProto, warnings: list[str] | None = None, **options):
    sink = warnings if warnings is not None else []
    return compile_model(
        model, CompileOptions(mode="int8", **options), emit=lambda t: None, warn=sink.append
    )


def _lsb_steps(model: onnx.ModelProto, result, inputs: Arrays) -> np.ndarray:
    """|interpreter - onnxruntime| in LSBs of the output scale, golden and extra inputs pooled."""
    image = encode_image(result.program)
    steps = []
    for arrays in [inputs, *_samples(inputs, EXTRA_SAMPLES, seed=99)]:
        actual, _ = interpreter_outputs(image, arrays)
        expected = run_onnxruntime(model, arrays)
        for io in result.program.outputs:
            difference = np.abs(actual[io.name].astype(np.float64) - expected[io.name])
            steps.append(np.rint(difference / io.quant[0]).astype(np.int64).ravel())
    return np.concatenate(steps)


def _assert_agrees(steps: np.ndarray) -> None:
    """The figure of `s2c.validate.Int8Report.ok`, over every sample."""
    fraction = float(np.mean(steps <= 1))
    histogram = np.bincount(steps).tolist()
    assert fraction >= MIN_FRACTION and steps.max() <= MAX_STEPS, (fraction, histogram)


AGREEMENT_CASES = [
    ("conv_pool_dense", "qdq", "int8"),
    ("residual_add", "qdq", "int8"),
    ("concat_branches", "qdq", "int8"),
    ("mlp", "qdq", "int8"),
    ("depthwise_separable", "qdq", "int8"),
    ("conv_pool_dense", "qdq", "uint8"),
    ("mlp", "qdq", "uint8"),
    ("conv_pool_dense", "qop", "int8"),
    ("residual_add", "qop", "int8"),
    ("concat_branches", "qop", "int8"),  # QLinearAveragePool: other output parameters
    ("mlp", "qop", "int8"),
    ("qlinear_ops", "qdq", "int8"),
    ("qlinear_ops", "qop", "int8"),
]


@pytest.mark.parametrize("case, form, activations", AGREEMENT_CASES)
def test_quantised_model_agrees_with_onnxruntime(case: str, form: str, activations: str) -> None:
    model = quantised(case, form, activations)
    _, inputs = _case(case)
    warnings: list[str] = []
    result = _compile(model, warnings)
    assert warnings == []  # the model's own parameters: no calibration
    _assert_agrees(_lsb_steps(model, result, inputs))


def test_qlinear_ops_case_uses_every_qoperator_op() -> None:
    ops = {n.op_type for n in quantised("qlinear_ops", "qop").graph.node}
    assert ops >= {
        "QLinearConv",
        "QLinearMatMul",
        "QLinearAdd",
        "QLinearMul",
        "QLinearConcat",
        "QLinearAveragePool",
        "QLinearGlobalAveragePool",
        "QLinearSigmoid",
        "QLinearLeakyRelu",
        "QLinearSoftmax",
        "Reshape",
        "Transpose",
    }
    assert "QGemm" in {n.op_type for n in quantised("mlp", "qop").graph.node}


def test_per_tensor_weights_agree_with_onnxruntime() -> None:
    model = quantised("conv_pool_dense", per_channel=False)
    _, inputs, _, _ = load_case("conv_pool_dense")
    _assert_agrees(_lsb_steps(model, _compile(model), inputs))


def test_concat_branches_agrees_up_to_the_pool() -> None:
    """Cut after the average pool: every element within 1 LSB (see CONCAT_BRANCHES_WHY)."""
    model = quantised("concat_branches")
    inferred = onnx.shape_inference.infer_shapes(model)
    pooled = next(
        v
        for v in inferred.graph.value_info
        if v.name.startswith("averagepool0") and v.name.endswith("DequantizeLinear_Output")
    )
    del model.graph.output[:]
    model.graph.output.append(pooled)
    _, inputs, _, _ = load_case("concat_branches")
    steps = _lsb_steps(model, _compile(model), inputs)
    assert steps.max() <= 1


def _initializers(model: onnx.ModelProto) -> Arrays:
    return {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}


@pytest.mark.parametrize("activations", ["int8", "uint8"])
def test_compiled_graph_carries_the_models_own_parameters(activations: str) -> None:
    model = quantised("conv_pool_dense", activations=activations)
    weights = _initializers(model)
    result = _compile(model)
    program, graph = result.program, result.graph
    shift = 128 if activations == "uint8" else 0
    (io_in,), (io_out,) = program.inputs, program.outputs
    assert io_in.quant == pytest.approx(
        (float(weights["input_scale"]), int(weights["input_zero_point"]) - shift)
    )
    assert io_out.quant == pytest.approx(
        (float(weights["logits_scale"]), int(weights["logits_zero_point"]) - shift)
    )
    convs = [n for n in graph.nodes if n.op == "conv"]
    for node, name in zip(convs, ["conv0.weight", "conv1.weight"], strict=True):
        weight = node.inputs[1]
        np.testing.assert_array_equal(weight.constant_data, weights[f"{name}_quantized"])
        assert weight.type.quant is not None
        np.testing.assert_allclose(weight.type.quant.scale, weights[f"{name}_scale"])


def test_uint8_and_int8_activations_compute_the_same_integers() -> None:
    """q_int8 = q_uint8 - 128 with zero point z - 128 is exact: identical outputs."""
    _, inputs, _, _ = load_case("mlp")
    outputs = []
    for activations in ("int8", "uint8"):
        result = _compile(quantised("mlp", activations=activations))
        outputs.append(interpreter_outputs(encode_image(result.program), inputs)[0]["logits"])
    np.testing.assert_array_equal(outputs[0], outputs[1])


def test_partially_quantised_model_calibrates_the_float_values(tmp_path: Path) -> None:
    """QOperator leaves HardSwish and the pooling after it in float: s2c calibrates those
    values on the samples given (here onnxruntime's own), and warns when it has to guess."""
    model = quantised("depthwise_separable", form="qop")
    assert any(n.op_type == "HardSwish" for n in model.graph.node)
    with pytest.raises(UnsupportedError, match="hardswish0"):
        load_onnx(model)  # no calibration: the float values are listed
    warnings: list[str] = []
    _compile(model, warnings)
    assert any("no --calib given" in w for w in warnings)
    samples = _calibration("depthwise_separable")
    calib = tmp_path / "calib.npz"
    np.savez(calib, **{n: np.stack([s[n] for s in samples]) for n in samples[0]})
    result = _compile(model, calib=str(calib))
    _, inputs, _, _ = load_case("depthwise_separable")
    _assert_agrees(_lsb_steps(model, result, inputs))


def test_quantised_model_in_float_mode_is_refused() -> None:
    with pytest.raises(UnsupportedError, match="compile it with --mode int8"):
        compile_model(quantised("mlp"), CompileOptions(mode="float"), emit=lambda t: None)


# -- bad input ------------------------------------------------------------------------------------
def _replace_initializer(model: onnx.ModelProto, name: str, array: np.ndarray) -> None:
    (tensor,) = [t for t in model.graph.initializer if t.name == name]
    tensor.CopyFrom(numpy_helper.from_array(array, name))


@pytest.mark.parametrize("scale", [0.0, -0.25])
def test_activation_scale_not_positive_is_an_input_error(scale: float) -> None:
    model = quantised("conv_pool_dense")
    _replace_initializer(model, "input_scale", np.array(scale, np.float32))
    with pytest.raises(InputError, match=r"'input_QuantizeLinear' .*'input_scale'") as info:
        _compile(model)
    assert "\n" not in str(info.value)


def test_weight_scale_not_positive_is_an_input_error() -> None:
    model = quantised("conv_pool_dense")
    scales = _initializers(model)["conv0.weight_scale"].copy()
    scales[3] = 0.0
    _replace_initializer(model, "conv0.weight_scale", scales)
    with pytest.raises(InputError, match=r"DequantizeLinear\).*'conv0.weight_scale'"):
        _compile(model)


def test_zero_point_outside_int8_and_uint8_is_an_input_error() -> None:
    model = quantised("mlp")
    _replace_initializer(model, "input_zero_point", np.array(300, np.int32))
    with pytest.raises(InputError, match=r"'input_QuantizeLinear' .*'input_zero_point'.*int32"):
        _compile(model)


def test_asymmetric_weights_that_fit_int8_are_exact() -> None:
    """q - z is the int8 weight: exact when it fits (here q' = q // 2 + 3 with z = 3)."""
    model = quantised("qlinear_ops")
    weights = _initializers(model)
    _replace_initializer(model, "K_quantized", (weights["K_quantized"] // 2 + 3).astype(np.int8))
    _replace_initializer(model, "K_zero_point", np.full(4, 3, np.int8))
    _, inputs = _case("qlinear_ops")
    _assert_agrees(_lsb_steps(model, _compile(model), inputs))


def test_asymmetric_weights_are_unsupported() -> None:
    model = quantised("conv_pool_dense")
    zeros = _initializers(model)["conv1.weight_zero_point"].copy()
    zeros[0] = 3
    _replace_initializer(model, "conv1.weight_zero_point", zeros)
    with pytest.raises(UnsupportedError, match=r"'conv1' \(Conv\).*asymmetric"):
        _compile(model)
