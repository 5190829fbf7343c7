"""The command line run in-process for the hardening tests, with stderr kept apart."""

from __future__ import annotations

from click.testing import CliRunner, Result

from s2c.cli import main


def invoke(*args: object) -> Result:
    """`s2c ARGS...` in this process; `result.stderr` holds the error lines."""
    try:
        runner = CliRunner(mix_stderr=False)  # type: ignore[call-arg]
    except TypeError:  # click 8.2 keeps stderr apart by itself
        runner = CliRunner()
    return runner.invoke(main, [str(a) for a in args])
