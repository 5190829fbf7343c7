"""Determinism: the same model and options give byte-identical images, in any process.

Python randomises string hashing per process (PYTHONHASHSEED), so any set or dict iterated in
hash order on the way to the image would show up as different bytes between processes. Each
process below compiles every small golden model in float mode (one chip, and a board whose chips
offer 2 PEs so that slices spread over several chips) and in int8 mode, and reports the SHA-256
of each image; the command line writes one image file too.
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
digests = {}
for case in json.loads(sys.argv[1]):
    for mode, machine in (("float", "chip"), ("float", sys.argv[2]), ("int8", "board")):
        options = CompileOptions(mode=mode, machine=machine)
        result = compile_model(case_dir(case) / "model.onnx", options, emit=lambda text: None,
                               warn=lambda text: None)
        image = encode_image(result.program)
        digests[f"{case}/{mode}/{machine}"] = hashlib.sha256(image).hexdigest()
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
    assert len(digests[0]) == 3 * len(SMALL_CASES)
    assert digests[0] == digests[1]


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
