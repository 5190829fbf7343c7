"""Output files under interrupts and name clashes: complete or absent, never an input overwritten.

Ctrl-C is a real SIGINT sent to `python -m s2c.cli` in a subprocess:
- during `compile` of the golden multi_chip model (27 MB image): the signal goes out when the
  process prints the IR after its first pass (`--print-after constant-fold`), so it lands while
  partition, placement, assembly, encoding or the write are still to come;
- during `run` of that image on a stack of 1500 samples: the signal goes out once the process has
  used 2 s of CPU (past start-up, decoding and loading; the run itself takes several seconds).
Either way: exit code 130, one line `error: interrupted; no output file was written`, no output
and no temporary file in the folder. A slow sweep sends the signal at later and later moments
until a compile completes: the signals land during encoding, writing and after, and each leaves
the image whole or absent, with a message that says which (a Ctrl-C once the command is over is
ignored, so the exit status is then 0).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import onnx
import pytest
from cli_runner import invoke

from backend.image import decode_image
from golden.cases import build_model

ROOT = Path(__file__).resolve().parents[2]
INTERRUPTED = "error: interrupted; no output file was written"
POSIX = pytest.mark.skipif(not hasattr(signal, "SIGINT") or os.name != "posix", reason="POSIX")


@pytest.fixture(scope="module")
def multi_chip(tmp_path_factory) -> dict[str, Path]:
    """The multi_chip model with its seeded weights, its image and a stack of 1500 inputs."""
    folder = tmp_path_factory.mktemp("multi_chip")
    model = folder / "multi_chip.onnx"
    onnx.save(build_model("multi_chip"), str(model))
    image = folder / "multi_chip.bin"
    assert cli(["compile", "--mode", "float", model, "-o", image, "--quiet"]).returncode == 0
    inputs = folder / "stack.npz"
    np.savez(inputs, input=np.random.default_rng(0).standard_normal((1500, 1024), np.float32))
    return {"model": model, "image": image, "inputs": inputs}


def cli(args, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(command(args), capture_output=True, text=True, env=env(), **kwargs)


def command(args) -> list[str]:
    return [sys.executable, "-m", "s2c.cli", *(str(a) for a in args)]


def env() -> dict[str, str]:
    path = os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])
    return {**os.environ, "PYTHONPATH": path}


def default_sigint() -> None:
    """In the child before exec: SIGINT at its default, even when this test run ignores it (a
    job started in the background by a non-interactive shell inherits SIGINT ignored, and
    Python then never raises KeyboardInterrupt)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def spawn(args: list) -> subprocess.Popen:
    """`s2c ARGS...` in a child process that Ctrl-C (SIGINT) interrupts; text pipes."""
    return subprocess.Popen(
        command(args),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env(),
        preexec_fn=default_sigint,
    )


def leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".tmp"))


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process (Linux /proc), 0 when unknown."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def interrupt_compile(model: Path, image: Path, delay: float) -> tuple[int, str]:
    """Compile, SIGINT `delay` seconds after the first pass printed; (exit code, stderr)."""
    args = ["compile", "--mode", "float", model, "-o", image]
    args += ["--print-after", "constant-fold", "--quiet"]
    with spawn(args) as process:
        assert process.stdout is not None
        first = process.stdout.readline()
        assert first.startswith("// after constant-fold"), first
        time.sleep(delay)
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=120)
        return process.returncode, stderr


@POSIX
def test_ctrl_c_during_compile_leaves_no_file(multi_chip, tmp_path):
    image = tmp_path / "out.bin"
    code, stderr = interrupt_compile(multi_chip["model"], image, 0.0)
    assert code == 130, stderr
    assert stderr.splitlines() == [INTERRUPTED]
    assert not image.exists()
    assert leftovers(tmp_path) == []


@POSIX
@pytest.mark.slow
def test_ctrl_c_at_any_moment_of_a_compile_leaves_a_whole_image_or_none(multi_chip, tmp_path):
    """Later and later signals (every 80 ms of the compile), until one comes after the end: each
    leaves a whole image or none, and the message says which."""
    outcomes = []
    for step in range(200):
        image = tmp_path / f"out{step}.bin"
        code, stderr = interrupt_compile(multi_chip["model"], image, 0.08 * step)
        assert leftovers(tmp_path) == []
        if image.exists():
            assert image.read_bytes() == multi_chip["image"].read_bytes()
        if code == 0:
            assert image.exists(), stderr
            break
        assert code == 130, stderr
        written = f"error: interrupted; only {image} was written, in full"
        assert stderr.splitlines() == [written if image.exists() else INTERRUPTED]
        outcomes.append("written" if image.exists() else "none")
    assert code == 0 and "none" in outcomes, outcomes


@POSIX
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc for CPU time")
def test_ctrl_c_during_run_leaves_no_file(multi_chip, tmp_path):
    out, stats = tmp_path / "y.npz", tmp_path / "stats.json"
    args = ["run", multi_chip["image"], "--inputs", multi_chip["inputs"], "-o", out]
    with spawn([*args, "--stats-json", stats]) as process:
        deadline = time.monotonic() + 60
        while cpu_seconds(process.pid) < 2.0 and process.poll() is None:
            assert time.monotonic() < deadline
            time.sleep(0.02)
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=120)
    assert process.returncode == 130, stderr
    assert stderr.splitlines() == [INTERRUPTED]
    assert not out.exists() and not stats.exists()
    assert leftovers(tmp_path) == []


# --- Outputs never replace inputs ---


@pytest.fixture(scope="module")
def small(tmp_path_factory) -> dict[str, Path]:
    """The golden mlp model, its image and an inputs file, in one folder."""
    folder = tmp_path_factory.mktemp("small")
    model = folder / "mlp.onnx"
    model.write_bytes((ROOT / "golden" / "mlp" / "model.onnx").read_bytes())
    image = folder / "mlp.bin"
    assert invoke("compile", "--mode", "float", model, "-o", image, "--quiet").exit_code == 0
    inputs = folder / "x.npz"
    program = decode_image(image.read_bytes())
    np.savez(inputs, **{io.name: np.zeros(io.shape, np.float32) for io in program.inputs})
    return {"model": model, "image": image, "inputs": inputs}


def refused(result, *words: str) -> None:
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, result.stderr
    for word in words:
        assert word in lines[0], lines[0]


def test_run_output_never_replaces_the_image_or_the_inputs(small):
    image_bytes = small["image"].read_bytes()
    inputs_bytes = small["inputs"].read_bytes()
    for option in ("-o", "--stats-json"):
        result = invoke("run", small["image"], "--inputs", small["inputs"], option, small["image"])
        refused(result, option, "would overwrite the input image")
        result = invoke("run", small["image"], "--inputs", small["inputs"], option, small["inputs"])
        refused(result, option, "would overwrite the input inputs file")
    assert small["image"].read_bytes() == image_bytes
    assert small["inputs"].read_bytes() == inputs_bytes


def test_run_output_and_stats_must_be_different_files(small, tmp_path):
    out = tmp_path / "both.json"
    result = invoke("run", small["image"], "-o", out, "--stats-json", out)
    refused(result, "-o and --stats-json", "both.json")
    assert not out.exists()


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="needs symbolic links")
def test_compile_output_never_replaces_the_model_even_through_a_link(small, tmp_path):
    link = tmp_path / "link.bin"
    link.symlink_to(small["model"])
    model_bytes = small["model"].read_bytes()
    refused(
        invoke("compile", "--mode", "float", small["model"], "-o", link),
        "-o",
        "would overwrite the input model",
    )
    qdq = ("--mode", "int8", "--emit-qdq")
    refused(invoke("compile", small["model"], *qdq, small["model"]), "--emit-qdq", "input model")
    both = tmp_path / "both.onnx"
    refused(invoke("compile", small["model"], "-o", both, *qdq, both), "-o and --emit-qdq")
    assert small["model"].read_bytes() == model_bytes
    assert not both.exists()


def test_an_interrupt_after_the_image_names_what_was_written(small, tmp_path, monkeypatch):
    """Ctrl-C between the image and the QDQ model: the message says the image is complete."""
    import s2c.export

    def interrupted(graph):
        raise KeyboardInterrupt

    monkeypatch.setattr(s2c.export, "export_onnx", interrupted)
    image, qdq = tmp_path / "m.bin", tmp_path / "m.qdq.onnx"
    args = ("-o", image, "--mode", "int8", "--emit-qdq", qdq, "--quiet")
    result = invoke("compile", small["model"], *args)
    assert result.exit_code == 130, result.output
    assert result.stderr.splitlines() == [f"error: interrupted; only {image} was written, in full"]
    decode_image(image.read_bytes())
    assert not qdq.exists()
    assert leftovers(tmp_path) == []


def test_an_interrupted_demo_names_the_files_it_wrote(tmp_path, monkeypatch):
    import s2c.demo

    def interrupted(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(s2c.demo, "run_onnxruntime", interrupted)  # after both files
    folder = tmp_path / "demo"
    result = invoke("demo", "--output-dir", folder)
    assert result.exit_code == 130, result.output
    image, outputs = folder / "digits_float.bin", folder / "outputs_float.npz"
    message = f"error: interrupted; only {image}, {outputs} were written, in full"
    assert result.stderr.splitlines() == [message]
