"""Progress lines for long steps, shown only on a terminal.

`terminal_progress(quiet)` returns a callable that takes a short status ("placing 9174 slices",
"running 200/540 inputs") and rewrites one line of stderr with it, or does nothing when stderr
is not a terminal or the user asked for quiet. `done()` on the returned object clears the line.
"""

from __future__ import annotations

import math
import sys
import time
from typing import TextIO

INTERVAL = 0.1  # seconds between two updates of the line


class Progress:
    """Rewrites one status line on `stream`; silent when `enabled` is false."""

    def __init__(self, stream: TextIO, enabled: bool) -> None:
        self.stream = stream
        self.enabled = enabled
        self.start = time.monotonic()
        self.shown = -math.inf  # when the line was last written

    def __call__(self, status: str) -> None:
        """Show `status`, at most every `INTERVAL` seconds (fast loops would flood the line)."""
        now = time.monotonic()
        if not self.enabled or now - self.shown < INTERVAL:
            return
        self.shown = now
        self.stream.write(f"\r\033[K[{now - self.start:6.1f} s] {status}")
        self.stream.flush()

    def done(self) -> None:
        """Clear the status line."""
        if self.enabled:
            self.stream.write("\r\033[K")
            self.stream.flush()


def terminal_progress(quiet: bool = False, stream: TextIO | None = None) -> Progress:
    """Progress on stderr when it is a terminal and not `quiet`; silent otherwise."""
    stream = stream or sys.stderr
    return Progress(stream, enabled=not quiet and stream.isatty())


def silent() -> Progress:
    """Progress that shows nothing."""
    return Progress(sys.stderr, enabled=False)
