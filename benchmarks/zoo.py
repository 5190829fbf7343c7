"""Compile and run model-zoo networks with s2c and onnxruntime; print times, sizes and ratios.

Models: ResNet-50, VGG-19 and SqueezeNet by default, the light model-zoo graphs shipped with
onnx with seeded random weights (`benchmarks.zoo_models`). For each model it prints

- compile time (`s2c.driver.compile_model`, machine "auto") with its stages, and the image size;
- the machine chosen, and the chips and PEs the image uses;
- interpreter load time (decode the image bytes, build the interpreter);
- interpreter run time: median of N runs after one warm-up run, without the value-dependent
  activity counts (as `s2c run` without --stats runs), on one BLAS thread (the default) and on
  as many as the host has cores (`s2c run --threads`);
- onnxruntime run time in the same process, median of N after a warm-up, with default session
  options (a thread per core) and with intra_op_num_threads=1, and the interpreter /
  onnxruntime ratios: threads against the same number of threads, and one against default;
- the same for CPU time (this process's), interpreter against onnxruntime with one thread: other
  work on the host stretches wall times (onnxruntime's two default threads most), much less
  CPU times;
- the largest difference between the two outputs, as a sanity check.

It asserts nothing. Run from the repository root:

    python -m benchmarks.zoo                       # resnet50, vgg19, squeezenet; 5 runs each
    python -m benchmarks.zoo squeezenet --runs 3   # any of the nine light models
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnxruntime

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from backend.image import decode_image, encode_image  # noqa: E402
from backend.interpreter import Interpreter  # noqa: E402
from benchmarks.zoo_models import MODEL_NAMES, randomised_model, seeded_input  # noqa: E402
from s2c.driver import CompileOptions, compile_model  # noqa: E402
from s2c.io_check import stack_inputs  # noqa: E402

DEFAULT_MODELS = ("resnet50", "vgg19", "squeezenet")
TARGET_RATIO = 3.0  # interpreter / onnxruntime on ResNet-50
TARGET_COMPILE_SECONDS = 30.0


def wall_times(
    function: Callable[[], object], runs: int, clock: Callable[[], float] = time.perf_counter
) -> list[float]:
    """Times of `runs` calls on `clock` (wall time by default), after one warm-up call."""
    function()
    times = []
    for _ in range(runs):
        start = clock()
        function()
        times.append(clock() - start)
    return times


def median_seconds(function: Callable[[], object], runs: int) -> float:
    """Median wall time of `runs` calls, after one warm-up call."""
    return statistics.median(wall_times(function, runs))


def median_cpu_seconds(function: Callable[[], object], runs: int) -> float:
    """Median CPU time of this process over `runs` calls, after one warm-up call."""
    return statistics.median(wall_times(function, runs, time.process_time))


def onnxruntime_session(payload: bytes, threads: int | None) -> onnxruntime.InferenceSession:
    options = onnxruntime.SessionOptions()
    if threads is not None:
        options.intra_op_num_threads = threads
    return onnxruntime.InferenceSession(payload, options, providers=["CPUExecutionProvider"])


def benchmark(name: str, runs: int) -> dict[str, float]:
    print(f"== {name}", flush=True)
    start = time.perf_counter()
    model = randomised_model(name)
    inputs = seeded_input(model)
    print(f"  random weights             {time.perf_counter() - start:8.2f} s", flush=True)

    start = time.perf_counter()
    result = compile_model(model, CompileOptions(mode="float", machine="auto"), emit=lambda t: 0)
    compile_seconds = time.perf_counter() - start
    stages = ", ".join(f"{stage} {seconds:.2f}" for stage, seconds in result.seconds.items())
    print(f"  compile                    {compile_seconds:8.2f} s  ({stages})", flush=True)

    start = time.perf_counter()
    image = encode_image(result.program)
    encode_seconds = time.perf_counter() - start
    print(f"  encode image               {encode_seconds:8.2f} s", flush=True)
    print(f"  image size                 {len(image) / 2**20:8.1f} MiB ({len(image)} bytes)")
    program = result.program
    chips = {pe.pe.chip for pe in program.pes}
    print(
        f"  machine                    {result.machine.name}: uses {len(chips)} of "
        f"{result.machine.chip_count} chips, {len(program.pes)} of {result.machine.pe_count} PEs"
    )

    start = time.perf_counter()
    interpreter = Interpreter(decode_image(image))
    load_seconds = time.perf_counter() - start
    print(f"  interpreter load           {load_seconds:8.2f} s", flush=True)

    stacked = stack_inputs(interpreter.program.inputs, inputs, "inputs")
    outputs: dict[str, np.ndarray] = {}
    cores = os.cpu_count() or 1

    def run_interpreter() -> None:
        outputs.update(interpreter.run(stacked, activity=False)[0])

    # The interpreter first: onnxruntime's thread pool (and BLAS's) keep spinning for a while
    # after a run, and would steal the core from whichever runs next.
    interpreter_seconds = {}
    for threads in sorted({1, cores}):
        interpreter.threads = threads
        interpreter_seconds[threads] = median_seconds(run_interpreter, runs)
        label = f"{threads} thread{'s' * (threads > 1)}"
        seconds = interpreter_seconds[threads]
        print(f"  interpreter run, {label:9s} {seconds:8.3f} s  (median of {runs})", flush=True)
    interpreter.threads = 1
    payload = model.SerializeToString()
    # CPU times before any onnxruntime session with a thread pool exists: its threads count in
    # this process's CPU time while they are alive.
    interpreter_cpu = median_cpu_seconds(run_interpreter, runs)
    one_thread = onnxruntime_session(payload, 1)
    feed = {i.name: inputs[i.name] for i in one_thread.get_inputs() if i.name in inputs}
    ort_cpu = median_cpu_seconds(lambda: one_thread.run(None, feed), runs)
    ort = {}
    for label, threads in (("default", None), ("1 thread", 1)):
        session = onnxruntime_session(payload, threads)
        feed = {i.name: inputs[i.name] for i in session.get_inputs() if i.name in inputs}
        reference = session.run(None, feed)
        ort[label] = median_seconds(lambda s=session, f=feed: s.run(None, f), runs)
        print(f"  onnxruntime run, {label:9s} {ort[label]:8.3f} s  (median of {runs})")
    ratios = {
        "1 thread vs 1 thread": interpreter_seconds[1] / ort["1 thread"],
        f"{cores} threads vs default": interpreter_seconds[cores] / ort["default"],
        "1 thread vs default": interpreter_seconds[1] / ort["default"],
    }
    for label, ratio in ratios.items():
        print(f"  interpreter / ort, {label:22s}{ratio:6.1f}x")
    print(f"  interpreter run, CPU time  {interpreter_cpu:8.3f} s  (one thread, median of {runs})")
    print(f"  ort 1 thread, CPU time     {ort_cpu:8.3f} s  (median of {runs})")
    print(f"  interpreter / ort 1 thread, CPU time {interpreter_cpu / ort_cpu:5.1f}x")

    (actual,) = (outputs[o.name][0] for o in interpreter.program.outputs)
    expected = reference[0]
    error = float(np.abs(actual.reshape(expected.shape) - expected).max())
    print(f"  max |s2c - onnxruntime|    {error:8.2e}  (output max {np.abs(expected).max():.3g})")
    return {
        "compile": compile_seconds,
        "ratios": ratios,
        "ratio_1thread_cpu": interpreter_cpu / ort_cpu,
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "models", nargs="*", help=f"default: {' '.join(DEFAULT_MODELS)}; any of {MODEL_NAMES}"
    )
    parser.add_argument("--runs", type=int, default=5, help="timed runs per measurement")
    args = parser.parse_args(argv)
    unknown = [m for m in args.models if m not in MODEL_NAMES]
    if unknown:
        parser.error(f"unknown model {unknown[0]!r}; choose from {', '.join(MODEL_NAMES)}")
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"host: {os.cpu_count()} CPUs, load average {load} (other load skews the timings)")
    results = {name: benchmark(name, args.runs) for name in args.models or DEFAULT_MODELS}
    if "resnet50" in results:
        r = results["resnet50"]
        ratios = ", ".join(f"{ratio:.1f}x {label}" for label, ratio in r["ratios"].items())
        print(
            f"targets (ResNet-50): interpreter/onnxruntime <= {TARGET_RATIO:.0f}x: {ratios} "
            f"({r['ratio_1thread_cpu']:.1f}x in CPU time, one thread each); "
            f"compile <= {TARGET_COMPILE_SECONDS:.0f} s: {r['compile']:.1f} s"
        )


if __name__ == "__main__":
    main()
