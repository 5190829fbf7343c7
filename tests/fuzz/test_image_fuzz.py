"""Image fuzzing: mutated real images give InputError, never a crash, a hang or a memory blow-up.

Each case mutates one of the golden images (`fuzz_images.image_case`: raw byte flips,
truncations, splices, insertions and deletions; payload, container and Program edits with the
CRC-32s and the SHA-256 recomputed so they reach the record parsers) and checks, within a time
limit per case and under an address-space cap for the whole chunk:

- the reader (`decode_image`) returns a Program or raises an S2CError with exit code 2 and a
  one-line message;
- the interpreter's load (`Interpreter(program)`, which checks every kernel descriptor) and a
  run on seeded inputs do the same, on S2C_FUZZ_LOADS images the reader accepts
  (`fuzz_images.accepted_case`: sealed payload and program edits drawn until one decodes).

Sizes: S2C_FUZZ_CASES images (800 in CI; the nightly run sets 10000), S2C_FUZZ_LOADS accepted
images (300 in CI; the nightly run sets 10000), S2C_FUZZ_SEED (0).
"""

from __future__ import annotations

import time

import numpy as np
import pytest
from fuzz_images import HEADER_SIZE, accepted_case, image_case, seal, split
from fuzz_limits import (
    CHUNK,
    IMAGE_CASES,
    LOAD_CASES,
    MEMORY_HEADROOM,
    SEED,
    TALLY,
    address_space_bytes,
    check_cases,
    chunks,
    memory_cap,
    resource,
    run_case,
)

from backend.image import decode_image
from backend.interpreter import Interpreter
from backend.program import Program
from ir.errors import InputError, InternalError
from s2c.io_check import stack_inputs
from s2c.validate import seeded_inputs


@pytest.mark.parametrize("start", chunks(IMAGE_CASES))
def test_reader_refuses_mutated_images_with_input_errors(start, golden_images, golden_programs):
    def cases():
        for index in range(start, min(start + CHUNK, IMAGE_CASES)):
            case = image_case(golden_images, golden_programs, SEED, index)
            yield case.label(index), lambda data=case.data: decode_image(data)

    check_cases("reader", cases())


def _load_and_run(program: Program) -> None:
    interpreter = Interpreter(program)
    interpreter.run(stack_inputs(program.inputs, seeded_inputs(program.inputs), "seeded inputs"))


@pytest.mark.parametrize("start", chunks(LOAD_CASES))
def test_interpreter_loads_and_runs_or_refuses_mutated_images(
    start, golden_images, golden_programs
):
    """Every case is an image the reader accepts; its kernel descriptors are checked at load."""

    def cases():
        for index in range(start, min(start + CHUNK, LOAD_CASES)):
            found = accepted_case(golden_images, golden_programs, SEED, index)
            if found is None:
                TALLY["interpreter:not reached"] += 1
                continue
            label, program = found
            yield label, lambda program=program: _load_and_run(program)

    check_cases("interpreter", cases())


# --- The fuzzer itself: a test that would pass with the mutations broken is not a test ---


def test_cases_are_a_pure_function_of_seed_and_index(golden_images, golden_programs):
    for index in range(0, 400, 7):
        first = image_case(golden_images, golden_programs, SEED, index)
        assert image_case(golden_images, golden_programs, SEED, index) == first


def test_every_golden_image_decodes_and_runs(golden_images):
    for data in golden_images.values():
        _load_and_run(decode_image(data))


def test_sealing_reproduces_the_writer_and_sealed_cases_pass_the_checksums(
    golden_images, golden_programs
):
    """`seal` of an image's own sections gives the image back; sealed mutations reach the
    record parsers (their errors are about records, not checksums)."""
    for data in golden_images.values():
        assert seal(split(data)) == data
    reasons = []
    for index in range(600):
        case = image_case(golden_images, golden_programs, SEED, index)
        if not case.family.startswith("sealed") or len(case.data) < HEADER_SIZE:
            continue
        try:
            decode_image(case.data)
            reasons.append("decoded")
        except InputError as error:
            reasons.append("checksum" if "checksum" in str(error) or "SHA" in str(error) else "x")
    assert len(reasons) > 250
    # A few sealed header edits rewrite a table CRC on purpose; broken sealing would fail them all.
    assert reasons.count("checksum") < len(reasons) * 0.05, reasons.count("checksum")
    assert reasons.count("decoded") > len(reasons) * 0.1


@pytest.mark.skipif(resource is None or address_space_bytes() is None, reason="Linux only")
def test_the_memory_cap_turns_a_huge_allocation_into_a_failed_case():
    def allocate() -> None:
        np.ones(MEMORY_HEADROOM // 4, dtype=np.float64)  # twice the headroom

    before = resource.getrlimit(resource.RLIMIT_AS)
    with memory_cap():
        problem = run_case("harness", allocate)
    assert problem is not None and problem.startswith("MemoryError"), problem
    assert resource.getrlimit(resource.RLIMIT_AS) == before  # the cap is lifted afterwards


def test_the_time_limit_turns_a_hang_into_a_failed_case():
    problem = run_case("harness", lambda: time.sleep(5), seconds=0.2)
    assert problem is not None and problem.startswith("CaseTimeout"), problem


def test_an_internal_error_or_a_multi_line_message_fails_a_case():
    def internal() -> None:
        raise InternalError("a wrapped crash")

    def two_lines() -> None:
        raise InputError("first\nsecond")

    assert "InternalError" in (run_case("harness", internal) or "")
    assert "one-line" in (run_case("harness", two_lines) or "")
    assert run_case("harness", lambda: None) is None
