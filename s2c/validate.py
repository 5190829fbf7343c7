"""Validation: the interpreter's outputs against onnxruntime's on the same inputs.

Float mode compares with numpy's allclose rule, |actual - expected| <= atol + rtol * |expected|,
per element, and reports the worst absolute and relative errors per output.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnx
import onnxruntime

from backend.image import decode_image, encode_image
from backend.interpreter import Interpreter
from backend.program import IOTensor
from ir.errors import InputError
from passes.quantise_recurrent import RECURRENT_OPS
from s2c.driver import CompileOptions, compile_model
from s2c.files import atomic_write_bytes, read_npz
from s2c.io_check import stack_inputs, unstack_outputs

# fp32 kernels sum in another order than onnxruntime (sliced partial sums, other BLAS blocking);
# 1e-4 relative with 1e-5 absolute leaves room for that on activations of order 1.
DEFAULT_RTOL = 1e-4
DEFAULT_ATOL = 1e-5


def seeded_inputs(io_inputs: list[IOTensor], seed: int = 0) -> dict[str, np.ndarray]:
    """Standard-normal float inputs (zeros for integer inputs) of the compiled shapes.

    Spike inputs (Poisson coding, dtype bool) get the absolute values: rates are never negative.
    """
    rng = np.random.default_rng(seed)
    arrays = {}
    for io in io_inputs:
        if io.quant is not None and io.dtype == "bool":
            arrays[io.name] = np.abs(rng.standard_normal(io.shape)).astype(np.float32)
        elif io.quant is not None or io.dtype.startswith("float"):
            arrays[io.name] = rng.standard_normal(io.shape).astype(np.float32)
        else:
            arrays[io.name] = np.zeros(io.shape, dtype=io.dtype)
    return arrays


def run_onnxruntime(model: onnx.ModelProto | str | Path, inputs: dict[str, np.ndarray]):
    """onnxruntime's outputs (CPU, graph optimisations off, so the graph runs as written)."""
    session = onnxruntime_session(model)
    names = [o.name for o in session.get_outputs()]
    feed = {i.name: inputs[i.name] for i in session.get_inputs() if i.name in inputs}
    return dict(zip(names, session.run(names, feed)))


def onnxruntime_session(
    model: onnx.ModelProto | str | Path, optimise: bool = False
) -> onnxruntime.InferenceSession:
    """A CPU session, one thread; graph optimisations off unless `optimise` (for timing).

    InputError when onnxruntime cannot load the model.
    """
    options = onnxruntime.SessionOptions()
    if not optimise:
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.intra_op_num_threads = 1
    payload = model.SerializeToString() if isinstance(model, onnx.ModelProto) else str(model)
    try:
        session = onnxruntime.InferenceSession(payload, options, providers=["CPUExecutionProvider"])
    except Exception as error:  # onnxruntime raises its own exception types
        raise InputError(
            f"onnxruntime cannot load the model: {str(error).splitlines()[0]}"
        ) from None
    return session


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


PROGRESS_CHUNK = 64  # samples per interpreter run when progress is shown


def interpreter_outputs(
    image: bytes,
    arrays: dict[str, np.ndarray],
    progress: Callable[[str], None] | None = None,
    activity: bool = True,
    threads: int = 1,
):
    """Run image bytes on user arrays: (outputs in the user's layout, run stats).

    With `progress`, more than `PROGRESS_CHUNK` samples run in chunks of that many (samples are
    independent, so the result is the same) and each chunk is announced. `activity`: count the
    value-dependent figures too (`Interpreter.run`). `threads`: BLAS threads.
    """
    program = decode_image(image)
    interpreter = Interpreter(program, threads=threads)
    stacked = stack_inputs(program.inputs, arrays, "inputs", program.metadata)
    single = all(tuple(arrays[io.name].shape) == tuple(io.shape) for io in program.inputs)
    samples = next(iter(stacked.values())).shape[0] if stacked else 1
    if progress is None or samples <= PROGRESS_CHUNK:
        outputs, stats = interpreter.run(stacked, activity)
        return unstack_outputs(outputs, single), stats
    parts, stats = [], None
    for start in range(0, samples, PROGRESS_CHUNK):
        stop = min(start + PROGRESS_CHUNK, samples)
        progress(f"running inputs {start + 1}-{stop} of {samples}")
        chunk = {name: array[start:stop] for name, array in stacked.items()}
        part, chunk_stats = interpreter.run(chunk, activity)
        parts.append(part)
        # spike counts, activation zeros and event packets depend on the inputs
        stats = chunk_stats if stats is None else chunk_stats.merged(stats)
    outputs = {name: np.concatenate([part[name] for part in parts]) for name in parts[0]}
    return unstack_outputs(outputs, single), stats


def validate(
    model: str | Path | onnx.ModelProto,
    options: CompileOptions,
    inputs: dict[str, np.ndarray] | None = None,
    rtol: float = DEFAULT_RTOL,
    atol: float = DEFAULT_ATOL,
) -> list[OutputComparison]:
    """Compile, encode, decode, interpret; compare every output with onnxruntime (fp32)."""
    result = compile_model(model, options, emit=lambda text: None, warn=lambda text: None)
    image = encode_image(result.program)
    arrays = inputs if inputs is not None else seeded_inputs(result.program.inputs)
    actual, _ = interpreter_outputs(image, arrays)
    reference_model = model if not isinstance(model, (str, Path)) else str(model)
    if options.prune > 0:  # the pruned graph is the reference: pruning changes the model
        from s2c.export import export_onnx

        reference_model = export_onnx(result.graph)
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


@dataclass
class LsbComparison:
    """int8 outputs against the QDQ model, in steps of the output's quantisation scale."""

    name: str
    elements: int
    within_one: int
    max_steps: int

    @property
    def fraction_within_one(self) -> float:
        return self.within_one / max(self.elements, 1)

    def as_dict(self) -> dict:
        return {
            "name": self.name,
            "elements": self.elements,
            "within_1_lsb": self.within_one,
            "fraction_within_1_lsb": self.fraction_within_one,
            "max_lsb": self.max_steps,
        }


def compare_lsb(name: str, expected: np.ndarray, actual: np.ndarray, scale: float):
    steps = np.rint(np.abs(np.asarray(actual, np.float64) - expected) / scale).astype(np.int64)
    return LsbComparison(name, int(steps.size), int((steps <= 1).sum()), int(steps.max(initial=0)))


def qdq_model(model: onnx.ModelProto | str | Path, options: CompileOptions) -> onnx.ModelProto:
    """The int8 graph s2c compiles, as a QDQ ONNX model that onnxruntime runs."""
    from s2c.export import export_onnx

    result = compile_model(model, options, emit=lambda text: None, warn=lambda text: None)
    return export_onnx(result.graph)


# int8 acceptance: as issue-level figures, >= 99.5 % within 1 LSB of the QDQ model, none beyond 2.
QDQ_MIN_FRACTION = 0.995
QDQ_MAX_STEPS = 2


# int8 acceptance without a QDQ model (recurrent layers, whose per-step requantisation of the
# hidden state no ONNX GRU / LSTM node expresses): the logits against fp32, by the figures of
# sequence models: mean cosine similarity over samples >= 0.99, top-1 agreement >= 95 %.
FP32_MIN_COSINE = 0.99
FP32_MIN_AGREEMENT = 0.95


@dataclass
class Int8Report:
    """int8 validation: against the QDQ model (LSB) and against the fp32 model; a model with
    recurrent layers has no QDQ model and is judged by `cosine` against fp32 instead."""

    qdq: list[LsbComparison]
    fp32: list[OutputComparison]
    cosine: list[CosineComparison] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        if self.cosine:
            return all(c.ok for c in self.cosine)
        return all(
            c.fraction_within_one >= QDQ_MIN_FRACTION and c.max_steps <= QDQ_MAX_STEPS
            for c in self.qdq
        )


def validate_int8(
    model: str | Path | onnx.ModelProto,
    options: CompileOptions,
    inputs: dict[str, np.ndarray] | None = None,
    qdq_path: str | Path | None = None,
    warn: Callable[[str], None] | None = None,
) -> Int8Report:
    """Interpreter int8 outputs against the QDQ export of the same graph and the fp32 model.

    `warn` receives compile warnings (the calibration warning without --calib); default: none.
    """
    from s2c.export import export_onnx

    result = compile_model(model, options, emit=lambda text: None, warn=warn or (lambda text: None))
    arrays = inputs if inputs is not None else seeded_inputs(result.program.inputs)
    actual, _ = interpreter_outputs(encode_image(result.program), arrays)
    reference_model = model if not isinstance(model, (str, Path)) else str(model)
    io_inputs = result.program.inputs
    floats = onnxruntime_per_sample(reference_model, io_inputs, arrays)
    against_fp32 = [compare(n, floats[n], actual[n], 0.0, 0.0) for n in floats]
    if qdq_path is None and any(node.op in RECURRENT_OPS for node in result.graph.nodes):
        cosine = [compare_cosine(n, floats[n], actual[n]) for n in floats]
        return Int8Report([], against_fp32, cosine)
    qdq = export_onnx(result.graph)
    if qdq_path is not None:
        atomic_write_bytes(qdq_path, qdq.SerializeToString())
    quantised = onnxruntime_per_sample(qdq, io_inputs, arrays)
    scales = {io.name: io.quant[0] if io.quant else 1.0 for io in result.program.outputs}
    return Int8Report(
        [compare_lsb(n, quantised[n], actual[n], scales[n]) for n in quantised], against_fp32
    )


# snn acceptance: a rate code approximates the network, so outputs are compared by their top-1
# class (argmax over the last axis): the spiking network must agree with fp32 on >= 95 % of
# samples. Converted digits networks agree on 98-100 % from T = 8 (docs/snn.md).
SNN_MIN_AGREEMENT = 0.95


@dataclass
class AgreementComparison:
    """Spiking outputs against the fp32 model: top-1 agreement over samples, max abs error."""

    name: str
    samples: int
    agreeing: int
    max_abs_error: float

    @property
    def agreement(self) -> float:
        return self.agreeing / max(self.samples, 1)

    @property
    def ok(self) -> bool:
        return self.agreement >= SNN_MIN_AGREEMENT

    def as_dict(self) -> dict:
        return {
            "name": self.name,
            "samples": self.samples,
            "top1_agreeing": self.agreeing,
            "top1_agreement": self.agreement,
            "max_abs_error": self.max_abs_error,
            "ok": self.ok,
        }


def compare_top1(name: str, expected: np.ndarray, actual: np.ndarray) -> AgreementComparison:
    expected = np.asarray(expected, np.float64)
    actual = np.asarray(actual, np.float64)
    rows_expected = expected.reshape(-1, expected.shape[-1]).argmax(axis=1)
    rows_actual = actual.reshape(-1, actual.shape[-1]).argmax(axis=1)
    return AgreementComparison(
        name,
        int(rows_expected.size),
        int((rows_expected == rows_actual).sum()),
        float(np.abs(expected - actual).max(initial=0.0)),
    )


@dataclass
class CosineComparison(AgreementComparison):
    """int8 outputs against the fp32 model, per sample (rows of the last axis): top-1 agreement
    and cosine similarity."""

    mean_cosine: float = 1.0
    min_cosine: float = 1.0

    @property
    def ok(self) -> bool:
        return self.mean_cosine >= FP32_MIN_COSINE and self.agreement >= FP32_MIN_AGREEMENT

    def as_dict(self) -> dict:
        figures = super().as_dict()
        figures.update(mean_cosine=self.mean_cosine, min_cosine=self.min_cosine, ok=self.ok)
        return figures


def compare_cosine(name: str, expected: np.ndarray, actual: np.ndarray) -> CosineComparison:
    """cos = a . e / (|a| |e|) per row; two zero rows count as equal (cosine 1)."""
    top1 = compare_top1(name, expected, actual)
    expected = np.asarray(expected, np.float64)
    expected = expected.reshape(-1, expected.shape[-1])
    actual = np.asarray(actual, np.float64).reshape(expected.shape)
    norms = np.linalg.norm(expected, axis=1) * np.linalg.norm(actual, axis=1)
    dots = (expected * actual).sum(axis=1)
    cosine = np.where(norms > 0, dots / np.where(norms > 0, norms, 1.0), 1.0)
    return CosineComparison(
        name,
        top1.samples,
        top1.agreeing,
        top1.max_abs_error,
        float(cosine.mean()),
        float(cosine.min(initial=1.0)),
    )


def validate_snn(
    model: str | Path | onnx.ModelProto,
    options: CompileOptions,
    inputs: dict[str, np.ndarray] | None = None,
) -> list[AgreementComparison]:
    """The spiking image's outputs against fp32 onnxruntime, by top-1 class.

    Without `inputs` the calibration samples are used: they are real data, where random
    inputs would compare the two networks off the distribution the thresholds were set on.
    """
    result = compile_model(model, options, emit=lambda text: None, warn=lambda text: None)
    if inputs is None:
        assert options.calib is not None  # CompileOptions.check requires it in snn mode
        inputs = read_npz(options.calib)
    actual, _ = interpreter_outputs(encode_image(result.program), inputs)
    reference_model = model if not isinstance(model, (str, Path)) else str(model)
    floats = onnxruntime_per_sample(reference_model, result.program.inputs, inputs)
    return [compare_top1(name, floats[name], actual[name]) for name in floats]
