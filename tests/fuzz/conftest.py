"""Fixtures of the fuzz tests: real images and models to mutate, and a tally of outcomes.

The images are compiled from the golden models (all but `multi_chip`, whose 27 MB image would
make each sealed mutation cost a second): in float mode for one chip, in float mode for a board
whose chips offer 2 PEs each (so slices spread over several chips and the router tables have
links), and in int8 mode for a board, 24 images in all.
"""

from __future__ import annotations

import json

import onnx
import pytest
from fuzz_limits import TALLY

from backend.image import decode_image, encode_image
from backend.program import Program
from golden.cases import CASES, case_dir
from s2c.driver import CompileOptions, compile_model

SMALL_CASES = tuple(case for case in CASES if case != "multi_chip")


@pytest.fixture(scope="session")
def golden_images(tmp_path_factory) -> dict[str, bytes]:
    folder = tmp_path_factory.mktemp("machines")
    spread = folder / "two-pes-per-chip.json"
    spread.write_text(json.dumps({"machine": "board", "usable_cores": 2}))
    variants = {"float@chip": ("float", "chip"), "float@spread": ("float", str(spread))}
    variants["int8@board"] = ("int8", "board")
    images = {}
    for case in SMALL_CASES:
        for label, (mode, machine) in variants.items():
            options = CompileOptions(mode=mode, machine=machine)
            result = compile_model(
                case_dir(case) / "model.onnx", options, emit=lambda text: None, warn=lambda t: None
            )
            images[f"{case}/{label}"] = encode_image(result.program)
    return images


@pytest.fixture(scope="session")
def golden_programs(golden_images: dict[str, bytes]) -> dict[str, Program]:
    return {name: decode_image(data) for name, data in golden_images.items()}


@pytest.fixture(scope="session")
def golden_models() -> dict[str, onnx.ModelProto]:
    return {case: onnx.load(str(case_dir(case) / "model.onnx")) for case in SMALL_CASES}


def pytest_terminal_summary(terminalreporter) -> None:
    """One line per fuzz stage: how many cases ended how (see fuzz_limits.TALLY)."""
    stages: dict[str, list[str]] = {}
    for key, count in sorted(TALLY.items()):
        stage, outcome = key.split(":", 1)
        stages.setdefault(stage, []).append(f"{outcome} {count}")
    for stage, outcomes in stages.items():
        terminalreporter.write_line(f"fuzz {stage}: {', '.join(outcomes)}")
