"""`s2c report`, the compile summary's estimate, and progress output.

The image is the golden MLP (three dense layers) compiled for one board. The HTML must stand
alone: no http(s) reference, no script, no external resource, and it must parse.
"""

from __future__ import annotations

import io
import json
from html.parser import HTMLParser
from pathlib import Path

import pytest

from backend.cost import LayerActivity
from backend.image import decode_image
from s2c.progress import Progress, terminal_progress
from s2c.report import build_report
from s2c.report_html import render_html
from tests.s2c.test_cli import GOLDEN_MLP, assert_refused, invoke

VOID = {"meta", "br", "img", "input", "link", "hr", "line", "rect", "polyline", "path"}


class TagChecker(HTMLParser):
    """Collects tags and attributes; checks that every non-void element is closed in order."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.tags: list[str] = []
        self.attributes: list[tuple[str, str | None]] = []
        self.errors: list[str] = []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.attributes += attrs
        if tag not in VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag):
        if tag in VOID:
            return
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes {self.stack[-1:] or 'nothing'}")
            return
        self.stack.pop()


@pytest.fixture(scope="module")
def image(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("report")
    path = folder / "mlp.bin"
    result = invoke("compile", GOLDEN_MLP, "-o", path, "--quiet")
    assert result.exit_code == 0, result.output
    return path


def parsed(html: str) -> TagChecker:
    checker = TagChecker()
    checker.feed(html)
    checker.close()
    return checker


def test_report_html_is_self_contained_and_parses(image: Path, tmp_path: Path) -> None:
    output = tmp_path / "report.html"
    result = invoke("report", image, "-o", output)
    assert result.exit_code == 0, result.output
    html = output.read_text(encoding="utf-8")
    assert "http://" not in html and "https://" not in html
    checker = parsed(html)
    assert checker.errors == [] and checker.stack == []
    assert not {"script", "link", "img", "iframe", "object"} & set(checker.tags)
    assert not [name for name, _ in checker.attributes if name in ("src", "href")]
    assert checker.tags.count("svg") >= 3  # board map, SRAM map, router entries
    program = decode_image(image.read_bytes())
    layers = {kernel.layer for pe in program.pes for kernel in pe.kernels}
    for name in layers:  # one row per layer in the per-layer table
        assert f"</span>{name}</td>" in html
    assert 'id="snn-spikes"' in html  # the marked place of the spiking plot


def test_report_json_holds_both_performance_levels(image: Path) -> None:
    result = invoke("report", image, "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    levels = report["estimate"]["levels"]
    assert [level["clock_hz"] for level in levels] == [150_000_000, 300_000_000]
    assert levels[0]["latency_seconds"] > levels[1]["latency_seconds"] > 0
    assert report["onnxruntime"] is None  # not measured without --model, never invented
    assert report["gpu_reference"]["gpu"] == "NVIDIA H200"
    assert not image.with_suffix(".html").exists()  # --json alone writes no HTML


def test_report_with_model_times_onnxruntime(image: Path) -> None:
    result = invoke("report", image, "--json", "--model", GOLDEN_MLP)
    assert result.exit_code == 0, result.output
    timing = json.loads(result.stdout)["onnxruntime"]
    assert timing["runs"] == 10 and timing["seconds"] > 0


@pytest.mark.parametrize("damage", ["missing", "truncated", "not an image"])
def test_report_refuses_a_bad_image_in_one_line(tmp_path: Path, image: Path, damage: str) -> None:
    bad = tmp_path / "bad.bin"
    if damage == "truncated":
        bad.write_bytes(image.read_bytes()[:200])
    elif damage == "not an image":
        bad.write_bytes(b"hello, world\n" * 10)
    output = tmp_path / "bad.html"
    assert_refused(invoke("report", bad, "-o", output), "bad.bin", absent=(output,))


def test_spiking_activity_is_plotted(image: Path) -> None:
    program = decode_image(image.read_bytes())
    name = program.pes[0].kernels[0].layer
    activity = {name: LayerActivity(spikes=(1, 4, 2), synaptic_events=(10, 40, 20))}
    html = render_html(build_report(program, "mlp.bin", 1, activity=activity))
    checker = parsed(html)
    assert checker.errors == []
    assert checker.tags.count("polyline") == 1
    assert "Spiking images only" not in html
    assert "<td class=n>7</td>" in html  # the layer's spikes over all timesteps


def test_compile_ends_with_the_estimate(tmp_path: Path) -> None:
    result = invoke("compile", GOLDEN_MLP, "-o", tmp_path / "mlp.bin")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[-2].startswith("estimate          at 300 MHz: latency ")
    assert lines[-1].startswith("                  at 150 MHz: latency ")
    assert "per inference" in lines[-1] and "pipelined" in lines[-1]
    for label in ("used ", "SRAM per PE ", "router entries "):
        assert any(line.startswith(label) for line in lines), label


def test_compile_quiet_prints_nothing(tmp_path: Path) -> None:
    result = invoke("compile", GOLDEN_MLP, "-o", tmp_path / "mlp.bin", "--quiet")
    assert result.exit_code == 0
    assert (result.stdout, result.stderr) == ("", "")


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_shows_on_a_terminal_only() -> None:
    terminal, pipe = Terminal(), io.StringIO()
    terminal_progress(stream=terminal)("placing 3 slices (greedy)")
    terminal_progress(stream=pipe)("placing 3 slices (greedy)")
    terminal_progress(quiet=True, stream=Terminal())("placing")
    assert "placing 3 slices (greedy)" in terminal.getvalue()
    assert pipe.getvalue() == ""
    quiet = Terminal()
    progress = Progress(quiet, enabled=False)
    progress("x")
    progress.done()
    assert quiet.getvalue() == ""


def test_chunked_runs_with_progress_give_the_same_outputs(tmp_path: Path) -> None:
    import numpy as np

    from s2c.validate import PROGRESS_CHUNK, interpreter_outputs

    image = tmp_path / "mlp.bin"
    assert invoke("compile", GOLDEN_MLP, "-o", image, "--quiet").exit_code == 0
    data = image.read_bytes()
    samples = PROGRESS_CHUNK + 6  # two chunks, the second one short
    inputs = {"input": np.random.default_rng(0).standard_normal((samples, 64), np.float32)}
    seen: list[str] = []
    chunked, stats = interpreter_outputs(data, inputs, seen.append)
    whole, whole_stats = interpreter_outputs(data, inputs)
    assert seen == [
        f"running inputs 1-{PROGRESS_CHUNK} of {samples}",
        f"running inputs {PROGRESS_CHUNK + 1}-{samples} of {samples}",
    ]
    for name in whole:
        np.testing.assert_array_equal(chunked[name], whole[name])
    assert stats.as_dict() == whole_stats.as_dict()


def test_compile_announces_its_long_steps(tmp_path: Path) -> None:
    import numpy as np

    from s2c.driver import CompileOptions, compile_model

    calibration = tmp_path / "calib.npz"
    np.savez(calibration, input=np.random.default_rng(0).standard_normal((3, 1, 64), np.float32))
    seen: list[str] = []
    options = CompileOptions(mode="int8", calib=str(calibration))
    compile_model(GOLDEN_MLP, options, emit=lambda _: None, progress=seen.append)
    assert [line for line in seen if line.startswith("calibrating: ")] == [
        f"calibrating: sample {i} of 3" for i in (1, 2, 3)
    ]
    assert any(line.startswith("placing ") for line in seen)
