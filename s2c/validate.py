"""Validation: the interpreter's outputs against onnxruntime's on the same inputs.

Float mode compares with numpy's allclose rule, |actual - expected| <= atol + rtol * |expected|,
per element, and reports the worst absolute and relative errors per output.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import onnxruntime

from backend.image import decode_image, encode_image
from backend.interpreter import Interpreter
from backend.program import IOTensor
from ir.errors import InputError
from s2c.driver import CompileOptions, compile_model
from s2c.io_check import stack_inputs, unstack_outputs

# fp32 kernels sum in another order than onnxruntime (sliced partial sums, other BLAS blocking);
# 1e-4 relative with 1e-5 absolute leaves room for that on activations of order 1.
DEFAULT_RTOL = 1e-4
DEFAULT_ATOL = 1e-5


def seeded_inputs(io_inputs: list[IOTensor], seed: int = 0) -> dict[str, np.ndarray]:
    """Standard-normal float inputs (zeros for integer inputs) of the compiled shapes."""
    rng = np.random.default_rng(seed)
    arrays = {}
    for io in io_inputs:
        if io.dtype.startswith("float"):
            arrays[io.name] = rng.standard_normal(io.shape).astype(io.dtype)
        else:
            arrays[io.name] = np.zeros(io.shape, dtype=io.dtype)
    return arrays


def run_onnxruntime(model: onnx.ModelProto | str | Path, inputs: dict[str, np.ndarray]):
    """onnxruntime's outputs (CPU, graph optimisations off, so the graph runs as written)."""
    options = onnxruntime.SessionOptions()
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.intra_op_num_threads = 1
    payload = model.SerializeToString() if isinstance(model, onnx.ModelProto) else str(model)
    try:
        session = onnxruntime.InferenceSession(payload, options, providers=["CPUExecutionProvider"])
    except Exception as error:  # onnxruntime raises its own exception types
        raise InputError(
            f"onnxruntime cannot load the model: {str(error).splitlines()[0]}"
        ) from None
    names = [o.name for o in session.get_outputs()]
    feed = {i.name: inputs[i.name] for i in session.get_inputs() if i.name in inputs}
    return dict(zip(names, session.run(names, feed)))


@dataclass
class OutputComparison:
    """How one output compares: worst errors, elements outside tolerance."""

    name: str
    max_abs_error: float
    max_rel_error: float
    mismatched: int
    elements: int

    @property
    def ok(self) -> bool:
        return self.mismatched == 0

    def as_dict(self) -> dict:
        return {
            "name": self.name,
            "max_abs_error": self.max_abs_error,
            "max_rel_error": self.max_rel_error,
            "mismatched": self.mismatched,
            "elements": self.elements,
            "ok": self.ok,
        }


def compare(name: str, expected: np.ndarray, actual: np.ndarray, rtol: float, atol: float):
    expected = np.asarray(expected, dtype=np.float64)
    actual = np.asarray(actual, dtype=np.float64).reshape(expected.shape)
    error = np.abs(actual - expected)
    relative = error / np.maximum(np.abs(expected), np.finfo(np.float32).tiny)
    bad = ~(error <= atol + rtol * np.abs(expected))
    return OutputComparison(
        name,
        float(error.max(initial=0.0)),
        float(relative.max(initial=0.0)),
        int(bad.sum()),
        int(expected.size),
    )


def interpreter_outputs(image: bytes, arrays: dict[str, np.ndarray]):
    """Run image bytes on user arrays: (outputs in the user's layout, run stats)."""
    program = decode_image(image)
    interpreter = Interpreter(program)
    stacked = stack_inputs(program.inputs, arrays, "inputs")
    single = all(tuple(arrays[io.name].shape) == tuple(io.shape) for io in program.inputs)
    outputs, stats = interpreter.run(stacked)
    return unstack_outputs(outputs, single), stats


def validate(
    model: str | Path | onnx.ModelProto,
    options: CompileOptions,
    inputs: dict[str, np.ndarray] | None = None,
    rtol: float = DEFAULT_RTOL,
    atol: float = DEFAULT_ATOL,
) -> list[OutputComparison]:
    """Compile, encode, decode, interpret; compare every output with onnxruntime."""
    result = compile_model(model, options, emit=lambda text: None)
    image = encode_image(result.program)
    arrays = inputs if inputs is not None else seeded_inputs(result.program.inputs)
    actual, _ = interpreter_outputs(image, arrays)
    reference_model = model if not isinstance(model, (str, Path)) else str(model)
    expected = onnxruntime_per_sample(reference_model, result.program.inputs, arrays)
    return [compare(name, expected[name], actual[name], rtol, atol) for name in expected]


def onnxruntime_per_sample(
    model: onnx.ModelProto | str, io_inputs: list[IOTensor], arrays: dict[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """onnxruntime's outputs in the interpreter's layout: one run per stacked sample."""
    stacked = stack_inputs(io_inputs, arrays, "inputs")
    samples = next(iter(stacked.values())).shape[0] if stacked else 1
    runs = [
        run_onnxruntime(model, {name: array[i] for name, array in stacked.items()})
        for i in range(samples)
    ]
    single = all(tuple(arrays[io.name].shape) == tuple(io.shape) for io in io_inputs)
    merged = {name: np.stack([run[name] for run in runs]) for name in runs[0]}
    return unstack_outputs(merged, single)
