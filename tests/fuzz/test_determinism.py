"""Determinism: the same model and options give byte-identical images, in any process.

Python randomises string hashing per process (PYTHONHASHSEED), so any set or dict iterated in
hash order on the way to the image would show up as different bytes between processes. Each
process below compiles every small golden model in float mode (one chip, and a board whose chips
offer 2 PEs so that slices spread over several chips) and in int8 mode, and reports the SHA-256
of each image; the command line writes one image file too. On the spread board, both placers
run with two placement time limits that the small models never reach: the images must not
change (the CP-SAT runs all end OPTIMAL well inside the shorter limit).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from golden.cases import CASES

ROOT = Path(__file__).resolve().parents[2]
SMALL_CASES = [case for case in CASES if case != "multi_chip"]

SCRIPT = """
import hashlib, json, sys
from backend.image import encode_image
from golden.cases import case_dir
from s2c.driver import CompileOptions, compile_model
VARIANTS = (("float", "chip", "greedy", 10.0), ("float", sys.argv[2], "greedy", 10.0),
            ("int8", "board", "greedy", 10.0), ("float", sys.argv[2], "greedy", 40.0),
            ("float", sys.argv[2], "cpsat", 5.0), ("float", sys.argv[2], "cpsat", 40.0))
digests = {}
for case in json.loads(sys.argv[1]):
    for mode, machine, placer, limit in VARIANTS:
        options = CompileOptions(mode=mode, machine=machine, placer=placer, place_time=limit)
        result = compile_model(case_dir(case) / "model.onnx", options, emit=lambda text: None,
                               warn=lambda text: None)
        image = encode_image(result.program)
        report = json.loads(result.program.metadata.get("placement", "{}"))
        statuses = sorted(report.get("solver", {}).get("statuses", {}))
        key = f"{case}/{mode}/{machine}/{placer}/{limit}"
        digests[key] = [hashlib.sha256(image).hexdigest(), statuses]
print(json.dumps(digests))
"""


def run_with_hash_seed(seed: str, *args: str) -> subprocess.CompletedProcess:
    path = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    env = {**os.environ, "PYTHONPATH": path, "PYTHONHASHSEED": seed}
    return subprocess.run(
        [sys.executable, *args], capture_output=True, text=True, env=env, cwd=ROOT, check=True
    )


def test_images_are_identical_across_hash_seeds(tmp_path):
    machine = tmp_path / "spread.json"
    machine.write_text(json.dumps({"machine": "board", "usable_cores": 2}))
    digests = [
        json.loads(
            run_with_hash_seed(seed, "-c", SCRIPT, json.dumps(SMALL_CASES), str(machine)).stdout
        )
        for seed in ("0", "12345")
    ]
    assert len(digests[0]) == 6 * len(SMALL_CASES)
    assert digests[0] == digests[1]
    for case in SMALL_CASES:  # placement time limits that are not reached change nothing
        for placer, limits in (("greedy", (10.0, 40.0)), ("cpsat", (5.0, 40.0))):
            short, long = (digests[0][f"{case}/float/{machine}/{placer}/{t}"] for t in limits)
            assert short[1] in ([], ["OPTIMAL"]), short  # every CP-SAT run proved its optimum
            assert short == long, (case, placer)


def test_the_command_line_writes_identical_files_across_hash_seeds(tmp_path):
    model = ROOT / "golden" / "conv_pool_dense" / "model.onnx"
    images = []
    for seed in ("0", "12345"):
        image = tmp_path / f"seed{seed}.bin"
        run_with_hash_seed(seed, "-m", "s2c.cli", "compile", str(model), "-o", str(image))
        images.append(image.read_bytes())
    assert images[0] == images[1]


def quiet(text: str) -> None:
    pass


def test_compiling_twice_in_one_process_gives_the_same_bytes():
    from backend.image import encode_image
    from golden.cases import case_dir
    from s2c.driver import CompileOptions, compile_model

    for mode in ("float", "int8"):
        options = CompileOptions(mode=mode)
        model = case_dir("residual_add") / "model.onnx"
        images = [
            encode_image(compile_model(model, options, emit=quiet, warn=quiet).program)
            for _ in range(2)
        ]
        assert images[0] == images[1]
