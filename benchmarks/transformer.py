"""Interpreter float run of the golden transformer encoder against onnxruntime (target <= 5x).

Compiles golden/transformer/model.onnx (made by golden/make_transformer.py) in float mode, then
times, in this process, the reference interpreter's run and onnxruntime's run of the same
sequences (median of `--runs` after a warm-up). First at batch 1: one sequence on each side.
With `--stack N`, also N sequences: the interpreter runs them as N stacked samples in one run;
the golden model's batch axis is fixed at 1 (the exporter writes it into the attention's
reshapes), so onnxruntime runs the same N sequences one after another through one session: the
same work on both sides, not the same batching. It prints the ratios against onnxruntime with
default options and with one thread, and the largest output difference; `--profile` prints
where the batch-1 run spends its time. It asserts nothing.

    python benchmarks/transformer.py [--runs 20] [--stack 32] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from backend.image import decode_image, encode_image  # noqa: E402
from backend.interpreter import Interpreter  # noqa: E402
from benchmarks.zoo import median_seconds, onnxruntime_session  # noqa: E402
from s2c.driver import CompileOptions, compile_model  # noqa: E402
from s2c.io_check import stack_inputs  # noqa: E402

CASE = ROOT / "golden" / "transformer"
TARGET_RATIO = 5.0


def interpreter_for_case() -> Interpreter:
    options = CompileOptions(mode="float")
    result = compile_model(CASE / "model.onnx", options, emit=lambda t: None)
    return Interpreter(decode_image(encode_image(result.program)))


def measure(interpreter: Interpreter, tokens: np.ndarray, runs: int) -> None:
    """Time both sides on `tokens` [N, 16] and print the ratios."""
    stacked = stack_inputs(interpreter.program.inputs, {"tokens": tokens}, "inputs")
    outputs: dict[str, np.ndarray] = {}

    def run_interpreter() -> None:
        outputs.update(interpreter.run(stacked)[0])

    seconds = median_seconds(run_interpreter, runs)
    print(f"  interpreter run              {1e3 * seconds:8.2f} ms  (median of {runs})")
    payload = (CASE / "model.onnx").read_bytes()
    expected = None
    for label, threads in (("default", None), ("1 thread", 1)):
        session = onnxruntime_session(payload, threads)

        def run_onnxruntime(s=session) -> list:
            return [s.run(None, {"tokens": row[None]})[0] for row in tokens]

        expected = np.concatenate(run_onnxruntime())
        reference = median_seconds(run_onnxruntime, runs)
        print(f"  onnxruntime run, {label:9s}   {1e3 * reference:8.2f} ms  (median of {runs})")
        print(f"  interpreter / ort {label:9s}  {seconds / reference:8.2f}x  (target <= "
              f"{TARGET_RATIO:g}x)")  # fmt: skip
    actual = outputs["logits"].reshape(expected.shape)
    print(f"  max |s2c - onnxruntime|      {np.abs(actual - expected).max():8.2e}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20, help="timed runs per measurement")
    parser.add_argument("--stack", type=int, default=0, help="also time N sequences at once")
    parser.add_argument("--profile", action="store_true", help="profile the batch-1 run")
    args = parser.parse_args(argv)
    print(f"host: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}")
    interpreter = interpreter_for_case()
    tokens = np.load(CASE / "eval.npz")["tokens"]
    print("== batch 1 (one sequence)")
    measure(interpreter, tokens[:1], args.runs)
    if args.stack:
        print(f"== {args.stack} sequences (stacked samples; onnxruntime one after another)")
        measure(interpreter, tokens[: args.stack], args.runs)
    if args.profile:
        stacked = stack_inputs(interpreter.program.inputs, {"tokens": tokens[:1]}, "inputs")
        profile = cProfile.Profile()
        profile.enable()
        for _ in range(args.runs):
            interpreter.run(stacked)
        profile.disable()
        pstats.Stats(profile).sort_stats("tottime").print_stats(25)


if __name__ == "__main__":
    main()
