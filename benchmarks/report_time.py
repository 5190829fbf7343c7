"""Time `s2c report` on the model-zoo ResNet-50 image (target: at most 5 s).

Builds the light ResNet-50 graph shipped with onnx with seeded random weights
(`benchmarks.zoo_models`), compiles it (machine "auto", float mode) unless `--image` names an
image already built, then runs `python -m s2c.cli report IMAGE -o REPORT.html` in a fresh
process `--runs` times and prints each run's wall time and CPU time (user + system of the child)
and the median, with the host's load average: on a loaded host the wall time grows while the
CPU time stays put. It asserts nothing. From the repository root:

    python benchmarks/report_time.py [--image resnet50.bin] [--keep DIR] [--runs 3]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

TARGET_SECONDS = 5.0


def build_image(folder: Path) -> Path:
    """Compile the seeded ResNet-50 into folder/resnet50.bin."""
    from backend.image import write_image
    from benchmarks.zoo_models import randomised_model
    from s2c.driver import CompileOptions, compile_model

    image = folder / "resnet50.bin"
    start = time.perf_counter()
    result = compile_model(randomised_model("resnet50"), CompileOptions(machine="auto"), emit=print)
    size = write_image(result.program, image)
    print(f"compiled ResNet-50 in {time.perf_counter() - start:.1f} s: {image} ({size} bytes)")
    return image


def time_report(image: Path, output: Path) -> tuple[float, float]:
    """(wall seconds, child CPU seconds) of one `s2c report` process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    environment = dict(os.environ, PYTHONPATH=str(ROOT))
    command = [sys.executable, "-m", "s2c.cli", "report", str(image), "-o", str(output)]
    subprocess.run(command, check=True, env=environment, capture_output=True)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", type=Path, help="an already compiled ResNet-50 image")
    parser.add_argument("--keep", type=Path, help="folder to keep the image and report in")
    parser.add_argument("--runs", type=int, default=3)
    arguments = parser.parse_args()
    print(f"host: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}")
    with tempfile.TemporaryDirectory() as scratch:
        folder = arguments.keep or Path(scratch)
        folder.mkdir(parents=True, exist_ok=True)
        image = arguments.image or build_image(folder)
        output = folder / "resnet50_report.html"
        walls, cpus = [], []
        for run in range(arguments.runs):
            wall, cpu = time_report(image, output)
            walls.append(wall)
            cpus.append(cpu)
            print(f"run {run + 1}: wall {wall:.2f} s, CPU {cpu:.2f} s")
        wall, cpu = statistics.median(walls), statistics.median(cpus)
        verdict = "met" if wall <= TARGET_SECONDS else "NOT met"
        print(
            f"median: wall {wall:.2f} s, CPU {cpu:.2f} s; target {TARGET_SECONDS} s wall: {verdict}"
        )
        print(f"load average after: {os.getloadavg()[0]:.2f}; report {output.stat().st_size} bytes")


if __name__ == "__main__":
    main()
