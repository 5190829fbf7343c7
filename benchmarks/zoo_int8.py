"""int8 on the nine model-zoo graphs: the image against its own QDQ model, and run time.

Each light model-zoo graph gets seeded random weights (`benchmarks/zoo_models.py`) and is cut at
its Softmax input; s2c compiles it in int8, calibrated on 4 seeded standard-normal inputs, and
exports the same quantised graph (`--emit-qdq`: QDQ with the integer ops written as their exact
integer computation, docs/numerics.md). On a fresh seeded input, it prints the fraction of
logits within 1 LSB of onnxruntime running that model with graph optimisations disabled, the
largest difference in LSB, and (with --time) the run times, in the same process, of the
interpreter, of onnxruntime on that model, and of onnxruntime on the plain QDQ form of the same
graph (DequantizeLinear -> float op -> QuantizeLinear everywhere, `integer_ops=False`, which
onnxruntime runs faster in fp32 but which is not bit-exact with the image). With --plain, the
agreement is measured against that plain QDQ form instead (an independent reference: it shares
no multiplier or table with the image), and also onnxruntime's agreement with itself on that
form with every conv's input channels reversed (`benchmarks.reordered`: the same function, another
fp32 summation order), the spread any exact implementation must expect. Issue figures:
>= 99.5 % within 1 LSB, none beyond 2 LSB; on ResNet-50 the interpreter within 3x of
onnxruntime's run of the same QDQ model.

    python -m benchmarks.zoo_int8 [names...] [--time] [--plain]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import onnx
import onnxruntime

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from backend.image import decode_image, encode_image  # noqa: E402
from backend.interpreter import Interpreter  # noqa: E402
from benchmarks.reordered import reversed_channels  # noqa: E402
from benchmarks.zoo import wall_times  # noqa: E402
from benchmarks.zoo_models import (  # noqa: E402
    MODEL_NAMES,
    cut_at_softmax,
    randomised_model,
    seeded_input,
)
from s2c.driver import CompileOptions, CompileResult, compile_model  # noqa: E402
from s2c.export import export_onnx  # noqa: E402
from s2c.files import write_npz  # noqa: E402
from s2c.validate import run_onnxruntime  # noqa: E402


def calibration(model, samples: int = 4) -> dict[str, np.ndarray]:
    draws = [seeded_input(model, seed=100 + i) for i in range(samples)]
    return {name: np.stack([d[name] for d in draws]) for name in draws[0]}


def compile_zoo_int8(name: str) -> tuple[onnx.ModelProto, CompileResult]:
    """The graph `name` cut at its Softmax input, and its int8 compile (seeded calibration)."""
    model = cut_at_softmax(randomised_model(name))
    with tempfile.TemporaryDirectory() as folder:
        calib = Path(folder) / "calib.npz"
        write_npz(calib, calibration(model))
        options = CompileOptions(mode="int8", machine="auto", calib=str(calib))
        result = compile_model(model, options, emit=lambda t: None, warn=lambda t: None)
    return model, result


def measure(name: str, timing: bool, plain: bool = False) -> dict:
    model, result = compile_zoo_int8(name)
    interpreter = Interpreter(decode_image(encode_image(result.program)))
    qdq = export_onnx(result.graph, integer_ops=not plain)
    x = seeded_input(model, seed=7)
    outputs, _ = interpreter.run({k: v[None] for k, v in x.items()})
    reference = run_onnxruntime(qdq, x)
    report = {}
    for io in result.program.outputs:
        steps = np.rint(np.abs(outputs[io.name][0] - reference[io.name]) / io.quant[0])
        report.update(within=float((steps <= 1).mean()), max_lsb=int(steps.max()), n=steps.size)
    if plain:
        reordered = run_onnxruntime(reversed_channels(qdq), x)
        for io in result.program.outputs:
            steps = np.rint(np.abs(reordered[io.name] - reference[io.name]) / io.quant[0])
            report.update(self_within=float((steps <= 1).mean()), self_max_lsb=int(steps.max()))
    if timing:
        session = _session(qdq)
        plain = _session(export_onnx(result.graph, integer_ops=False))
        stacked = {k: v[None] for k, v in x.items()}
        report["interpreter_s"] = _best(lambda: interpreter.run(stacked))
        report["onnxruntime_s"] = _best(lambda: session.run(None, x))
        report["plain_qdq_s"] = _best(lambda: plain.run(None, x))
    return report


def _session(model) -> onnxruntime.InferenceSession:
    """onnxruntime on the QDQ model as written (optimisations off, so Q/DQ are not fused)."""
    options = onnxruntime.SessionOptions()
    options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_DISABLE_ALL
    return onnxruntime.InferenceSession(
        model.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )


def _best(function, runs: int = 3) -> float:
    """Fastest wall time of `runs` calls, after one warm-up call."""
    return min(wall_times(function, runs))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", default=list(MODEL_NAMES))
    parser.add_argument("--time", action="store_true", help="also time interpreter and ORT")
    parser.add_argument(
        "--plain",
        action="store_true",
        help="compare with the plain QDQ form (integer_ops=False) instead of the exact export",
    )
    args = parser.parse_args()
    for name in args.names:
        r = measure(name, args.time, args.plain)
        line = f"{name:14s} logits {r['n']:5d}  within 1 LSB {100 * r['within']:6.2f} %"
        line += f"  max {r['max_lsb']} LSB"
        if args.plain:
            line += f"  (ORT vs ORT reordered: {100 * r['self_within']:6.2f} %"
            line += f"  max {r['self_max_lsb']} LSB)"
        if args.time:
            ratio = r["interpreter_s"] / r["onnxruntime_s"]
            plain = r["interpreter_s"] / r["plain_qdq_s"]
            line += f"  run {r['interpreter_s']:.3f} s vs ORT QDQ {r['onnxruntime_s']:.3f} s"
            line += f" ({ratio:.2f}x), vs ORT plain QDQ {r['plain_qdq_s']:.3f} s ({plain:.2f}x)"
        print(line, flush=True)


if __name__ == "__main__":
    main()
