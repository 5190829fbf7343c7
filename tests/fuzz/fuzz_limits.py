"""Sizes and bounds of the fuzz runs: case counts, a time limit per case, an address-space cap.

Sizes come from the environment so that CI runs a slice and a nightly job the full run:
S2C_FUZZ_CASES mutated images for the reader (default 800), S2C_FUZZ_LOADS mutated images the
reader accepts, for the interpreter (default 3/8 of S2C_FUZZ_CASES), S2C_FUZZ_MODELS mutated
models (default the larger of 200 and S2C_FUZZ_CASES / 5), S2C_FUZZ_SEED the base seed
(default 0). Case i of a run is a
pure function of (seed, i), so a failure names its case and reproduces alone.

`time_limit(seconds)` raises `CaseTimeout` (a BaseException, so that no `except Exception` in the
code under test can swallow it) when a case runs too long; the caller also measures the time, since
a signal only lands between Python bytecodes. `memory_cap(extra_bytes)` lowers the soft
RLIMIT_AS to the process's current size plus `extra_bytes` and restores it afterwards, so that an
allocation a hostile input asks for fails with MemoryError instead of taking the machine.
Both are POSIX-only (Linux, macOS); elsewhere they do nothing.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from ir.errors import S2CError

try:
    import resource
except ImportError:  # Windows
    resource = None  # type: ignore[assignment]

CASE_SECONDS = 5.0  # per case; a good image decodes, loads and runs in well under 0.1 s
COMPILE_SECONDS = 10.0  # per model compiled end to end; a golden model compiles in under 0.2 s
MEMORY_HEADROOM = 2 << 30  # bytes of address space above the process's size at the start
CHUNK = 100  # cases per test, so that progress shows and a failure report stays short


def _count(name: str, default: int) -> int:
    text = os.environ.get(name, "")
    return int(text) if text.strip() else default


IMAGE_CASES = _count("S2C_FUZZ_CASES", 800)
LOAD_CASES = _count("S2C_FUZZ_LOADS", IMAGE_CASES * 3 // 8)
MODEL_CASES = _count("S2C_FUZZ_MODELS", max(200, IMAGE_CASES // 5))
SEED = _count("S2C_FUZZ_SEED", 0)

# "stage:outcome" -> cases, printed at the end of the session by conftest.pytest_terminal_summary.
TALLY: Counter[str] = Counter()


def chunks(total: int) -> list[int]:
    """First case index of each chunk of a run of `total` cases."""
    return list(range(0, total, CHUNK))


class CaseTimeout(BaseException):
    """A fuzz case ran past its time limit."""


@contextlib.contextmanager
def time_limit(seconds: float = CASE_SECONDS) -> Iterator[None]:
    if not hasattr(signal, "setitimer"):
        yield
        return

    def expire(signum, frame):
        raise CaseTimeout(f"no result after {seconds} s")

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def address_space_bytes() -> int | None:
    """The process's current virtual size (Linux: /proc/self/statm), or None when unknown."""
    try:
        pages = int(open("/proc/self/statm").read().split()[0])  # noqa: SIM115
    except (OSError, ValueError, IndexError):
        return None
    return pages * os.sysconf("SC_PAGE_SIZE")


@contextlib.contextmanager
def memory_cap(extra_bytes: int = MEMORY_HEADROOM) -> Iterator[int | None]:
    """Cap the address space at its current size plus `extra_bytes`; yields the cap (or None)."""
    size = address_space_bytes()
    if resource is None or size is None:
        yield None
        return
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    cap = size + extra_bytes
    if hard != resource.RLIM_INFINITY:
        cap = min(cap, hard)
    resource.setrlimit(resource.RLIMIT_AS, (cap, hard))
    try:
        yield cap
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def run_case(stage: str, call: Callable[[], object], seconds: float = CASE_SECONDS) -> str | None:
    """Run one case; None when it succeeded or was refused properly, else what went wrong.

    Proper refusal: an S2CError with exit code 2 (InputError, UnsupportedError, ResourceError)
    whose message is one non-empty line. Anything else fails the case: another exception (a
    crash), an InternalError (a bug, or a crash the reader wrapped), MemoryError or an "out of
    memory" refusal (an allocation the input size did not bound), or more than `seconds`.
    """
    start = time.perf_counter()
    try:
        with time_limit(seconds):
            call()
        outcome, problem = "ok", None
    except S2CError as error:
        outcome, problem = type(error).__name__, _refusal_problem(error)
    except (Exception, CaseTimeout) as error:
        outcome, problem = "crash", _crash(error)
    elapsed = time.perf_counter() - start
    if problem is None and elapsed > seconds:
        problem = f"took {elapsed:.1f} s (limit {seconds} s)"
    TALLY[f"{stage}:{'failure' if problem else outcome}"] += 1
    return problem


def _refusal_problem(error: S2CError) -> str | None:
    text = str(error)
    if error.exit_code != 2:
        return f"{type(error).__name__}: {text}"
    if not text.strip() or "\n" in text:
        return f"{type(error).__name__} without a one-line message: {text!r}"
    if "memory" in text and "not enough" in text:
        return f"allocation not bounded by the input: {text}"
    return None


def _crash(error: BaseException) -> str:
    frames = traceback.extract_tb(error.__traceback__)
    ours = [f for f in frames if "site-packages" not in f.filename] or frames
    where = f"{Path(ours[-1].filename).name}:{ours[-1].lineno} in {ours[-1].name}" if ours else "?"
    return f"{type(error).__name__} at {where}: {str(error)[:200]}"


def check_cases(
    stage: str, cases: Iterable[tuple[str, Callable[[], object]]], seconds: float = CASE_SECONDS
) -> None:
    """Run each (label, call) case, made and run under the memory cap; report every failure."""
    failures = []
    with memory_cap():
        for label, call in cases:
            problem = run_case(stage, call, seconds)
            if problem:
                failures.append(f"{label}: {problem}")
    assert not failures, failure_report(failures)


def failure_report(failures: list[str], limit: int = 20) -> str:
    shown = "\n".join(failures[:limit])
    more = f"\n... and {len(failures) - limit} more" if len(failures) > limit else ""
    return f"{len(failures)} failing case(s):\n{shown}{more}"
