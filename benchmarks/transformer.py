"""Interpreter float run of the golden transformer encoder against onnxruntime (target <= 5x).

Compiles golden/transformer/model.onnx (made by golden/make_transformer.py) in float mode and
times, in this process, the reference interpreter's run and onnxruntime's run of the same
sequence at batch 1 (medians of `--runs` runs, interleaved in blocks, after a warm-up; the
interpreter without the value-dependent activity counts, as `s2c run` without --stats). With
`--stack N` it also times N sequences on both sides, onnxruntime running golden/transformer/
model_batch.onnx (the same weights with a dynamic batch axis) on the batch of N: first the
one-sequence image run on the N sequences stacked as samples (as `s2c run` runs stacked
inputs), then the image compiled from model_batch.onnx for a batch of N. It prints the ratios
against onnxruntime with default options and with one thread, and the largest output
difference; and the CPU time of the calling thread for the interpreter and for one-thread
onnxruntime (which runs in that thread), a ratio that a loaded host disturbs less than wall
time. `--profile` prints where the batch-1 run spends its time. It asserts nothing.

    python benchmarks/transformer.py [--runs 20] [--stack 32] [--profile]
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from backend.image import decode_image, encode_image  # noqa: E402
from backend.interpreter import Interpreter  # noqa: E402
from benchmarks.zoo import onnxruntime_session  # noqa: E402
from s2c.driver import CompileOptions, compile_model  # noqa: E402
from s2c.io_check import stack_inputs  # noqa: E402

CASE = ROOT / "golden" / "transformer"
TARGET_RATIO = 5.0
THREADS = (("default", None), ("1 thread", 1))  # onnxruntime sessions: label, threads
ROUNDS = 5  # blocks of runs per side (see `measure`)


def interpreter_for(model: Path, batch: int = 1) -> Interpreter:
    options = CompileOptions(mode="float", batch=batch)
    result = compile_model(model, options, emit=lambda t: None)
    return Interpreter(decode_image(encode_image(result.program)))


def measure(interpreter: Interpreter, model: Path, tokens: np.ndarray, runs: int) -> None:
    """Time both sides on one batch `tokens` [N, 16] and print the ratios.

    The three timings (interpreter, onnxruntime default, onnxruntime one thread) interleave in
    ROUNDS blocks of consecutive runs, so that the load of a shared host weighs on all of them
    alike, while onnxruntime's default thread pool, which spins for a while after each run,
    slows only the first runs of the next block; each is the median of its `runs` times after a
    warm-up."""
    stacked = stack_inputs(interpreter.program.inputs, {"tokens": tokens}, "inputs")
    payload = model.read_bytes()
    sessions = {label: onnxruntime_session(payload, threads) for label, threads in THREADS}
    calls = {"interpreter": lambda: interpreter.run(stacked, activity=False)[0]}
    for label, session in sessions.items():
        calls[label] = lambda s=session: s.run(None, {"tokens": tokens})[0]
    results = {name: call() for name, call in calls.items()}  # warm-up
    times: dict[str, list[float]] = {name: [] for name in calls}
    thread_times: dict[str, list[float]] = {name: [] for name in calls}
    for block in range(ROUNDS):
        for name, call in calls.items():
            for _ in range(runs * (block + 1) // ROUNDS - runs * block // ROUNDS):
                start, start_thread = time.perf_counter(), time.thread_time()
                call()
                times[name].append(time.perf_counter() - start)
                thread_times[name].append(time.thread_time() - start_thread)
    seconds = {name: statistics.median(values) for name, values in times.items()}
    cpu = {name: statistics.median(values) for name, values in thread_times.items()}
    print(
        f"  interpreter run              {1e3 * seconds['interpreter']:8.2f} ms  (median of {runs})"
    )
    for label, _ in THREADS:
        ratio = seconds["interpreter"] / seconds[label]
        print(f"  onnxruntime run, {label:9s}   {1e3 * seconds[label]:8.2f} ms")
        print(f"  interpreter / ort {label:9s}  {ratio:8.2f}x  (target <= {TARGET_RATIO:g}x)")
    print(
        f"  CPU time of this thread      {1e3 * cpu['interpreter']:8.2f} ms against "
        f"{1e3 * cpu['1 thread']:.2f} ms (one thread): {cpu['interpreter'] / cpu['1 thread']:.2f}x"
    )
    expected = results["default"]
    actual = results["interpreter"]["logits"].reshape(expected.shape)
    print(f"  max |s2c - onnxruntime|      {np.abs(actual - expected).max():8.2e}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20, help="timed runs per measurement")
    parser.add_argument("--stack", type=int, default=0, help="also time N sequences at once")
    parser.add_argument("--profile", action="store_true", help="profile the batch-1 run")
    args = parser.parse_args(argv)
    print(f"host: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}")
    interpreter = interpreter_for(CASE / "model.onnx")
    tokens = np.load(CASE / "eval.npz")["tokens"]
    print("== batch 1 (one sequence)")
    measure(interpreter, CASE / "model.onnx", tokens[:1], args.runs)
    if args.stack:
        batch_model = CASE / "model_batch.onnx"
        print(f"== {args.stack} sequences stacked on the one-sequence image (onnxruntime: "
              f"model_batch.onnx at batch {args.stack})")  # fmt: skip
        measure(interpreter, batch_model, tokens[: args.stack], args.runs)
        print(f"== batch {args.stack} compiled (model_batch.onnx; the same batch on both sides)")
        batched = interpreter_for(CASE / "model_batch.onnx", args.stack)
        measure(batched, CASE / "model_batch.onnx", tokens[: args.stack], args.runs)
    if args.profile:
        stacked = stack_inputs(interpreter.program.inputs, {"tokens": tokens[:1]}, "inputs")
        profile = cProfile.Profile()
        profile.enable()
        for _ in range(args.runs):
            interpreter.run(stacked, activity=False)
        profile.disable()
        pstats.Stats(profile).sort_stats("tottime").print_stats(25)


if __name__ == "__main__":
    main()
