"""int8 mode: the interpreter against onnxruntime running the same quantised graph as QDQ.

onnxruntime runs the QDQ export with graph optimisations off, so it evaluates the graph as
written: conv, dense, add, concat and lookups as their exact integer computation, the fp32 islands
as dequantise -> float op -> quantise (docs/numerics.md); the bounds checked are the issue's.
"""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from backend.image import decode_image, encode_image
from backend.interpreter import Interpreter
from golden.cases import CASES, load_case
from ir.errors import InputError
from s2c.driver import CompileOptions, compile_model
from s2c.export import export_onnx
from s2c.validate import interpreter_outputs, run_onnxruntime


def _compile_int8(model, **options):
    options = CompileOptions(mode="int8", **options)
    return compile_model(model, options, emit=lambda text: None, warn=lambda text: None)


def _samples(inputs: dict, count: int = 7, seed: int = 11) -> list[dict]:
    """The golden inputs and `count` seeded normal samples of the same shapes."""
    rng = np.random.default_rng(seed)
    extra = [
        {name: rng.standard_normal(x.shape).astype(np.float32) for name, x in inputs.items()}
        for _ in range(count)
    ]
    return [inputs, *extra]


@pytest.mark.parametrize("case", CASES)
def test_int8_agrees_with_qdq_model_within_one_lsb(case: str) -> None:
    model, inputs, _, _ = load_case(case)
    result = _compile_int8(model)
    image = encode_image(result.program)
    qdq = export_onnx(result.graph)
    steps = {io.name: [] for io in result.program.outputs}
    for sample in _samples(inputs):
        outputs, _ = interpreter_outputs(image, sample)
        reference = run_onnxruntime(qdq, sample)
        for io in result.program.outputs:
            error = np.abs(outputs[io.name].astype(np.float64) - reference[io.name])
            steps[io.name].append(np.rint(error / io.quant[0]).ravel())
    for name, parts in steps.items():
        all_steps = np.concatenate(parts)
        assert all_steps.max() <= 2, (name, int(all_steps.max()))  # the bound
        assert (all_steps <= 1).mean() >= 0.995, (name, float((all_steps <= 1).mean()))


def test_int8_image_holds_int8_weights_and_int32_biases() -> None:
    model, _, _, _ = load_case("conv_pool_dense")
    program = _compile_int8(model).program
    roles = {(ref.role, ref.dtype) for pe in program.pes for k in pe.kernels for ref in k.params}
    assert ("weight", "int8") in roles
    assert ("bias", "int32") in roles
    assert ("multiplier", "int32") in roles and ("shift", "int32") in roles


def test_int8_weight_bytes_are_at_most_a_third_of_float() -> None:
    model, _, _, _ = load_case("mlp")

    def weight_bytes(program) -> int:
        return sum(
            ref.nbytes
            for pe in program.pes
            for k in pe.kernels
            for ref in k.params
            if ref.role == "weight"
        )

    float_program = compile_model(model, CompileOptions(mode="float"), emit=lambda t: None).program
    int8_program = _compile_int8(model).program
    assert weight_bytes(int8_program) <= 0.3 * weight_bytes(float_program)


def test_calibration_with_real_samples_is_used(tmp_path) -> None:
    model, inputs, _, _ = load_case("mlp")
    ((name, x),) = inputs.items()
    calib = tmp_path / "calib.npz"
    np.savez(calib, **{name: np.concatenate([x, 2 * x, -x])})  # 3 samples along batch axis
    a = _compile_int8(model, calib=str(calib)).program
    b = _compile_int8(model).program
    assert a.inputs[0].quant != b.inputs[0].quant  # ranges came from the file


@pytest.mark.parametrize(
    "arrays, words",
    [
        ({"other": np.zeros((4, 1, 64), np.float32)}, "no entry for input 'input'"),
        ({"input": np.zeros((4, 1, 63), np.float32)}, "has shape"),
        ({"input": np.full((4, 1, 64), np.nan, np.float32)}, "NaN or Inf"),
    ],
)
def test_bad_calibration_data_is_a_clear_error(tmp_path, arrays, words) -> None:
    model, _, _, _ = load_case("mlp")
    calib = tmp_path / "calib.npz"
    np.savez(calib, **arrays)
    with pytest.raises(InputError, match=words):
        _compile_int8(model, calib=str(calib))


def _exported_multipliers(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    """Per conv/dense node of a plain QDQ model: M[c] = s_x s_w[c] / s_y from its own scales.

    The scales are the model's float32 initializers, read by numpy (ONNX: real = s (q - z)),
    so M is what onnxruntime multiplies the integer accumulator by, up to its fp32 rounding.
    """
    arrays = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    producer = {out: node for node in model.graph.node for out in node.output}
    consumers: dict[str, list] = {}
    for node in model.graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    found = {}
    for node in model.graph.node:
        if node.op_type not in ("Conv", "Gemm", "MatMul"):
            continue
        x_scale, w_scale = (arrays[producer[i].input[1]] for i in node.input[:2])
        after = consumers[node.output[0]][0]
        while after.op_type != "QuantizeLinear":
            after = consumers[after.output[0]][0]
        y_scale = arrays[after.input[1]]
        real = x_scale.astype(np.float64) * w_scale.astype(np.float64) / np.float64(y_scale)
        found[node.name.split("/")[0]] = real
    return found


@pytest.mark.parametrize("case", ["conv_pool_dense", "mlp"])
def test_requantisation_multiplies_by_the_exported_models_scales(case: str) -> None:
    """The image's multiplier * 2^(shift - 31) is s_x s_w / s_y of the exported model's float32
    scales to the multiplier's 31 bits (relative error <= 2^-31), not of other, unrounded ones.
    """
    model, _, _, _ = load_case(case)
    result = _compile_int8(model)
    expected = _exported_multipliers(export_onnx(result.graph, integer_ops=False))
    interpreter = Interpreter(decode_image(encode_image(result.program)))
    checked = 0
    for (_, kernel), params in zip(interpreter.kernels, interpreter.params):
        if "multiplier" not in params:
            continue
        shift = params["shift"].astype(np.float64)
        real = params["multiplier"].astype(np.float64) * 2.0 ** (shift - 31)
        reference = expected[kernel.layer]
        np.testing.assert_array_less(np.abs(real / reference - 1), 2.0**-31, err_msg=kernel.layer)
        checked += 1
    assert checked >= 2
