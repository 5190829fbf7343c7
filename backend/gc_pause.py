"""Pausing Python's cyclic garbage collector while a step builds many objects.

Decoding a large image or costing it creates millions of small objects (boxes, ports, tuples)
and no reference cycles; each allocation burst triggers collections that walk every live object,
which for a ResNet-50 image costs about a third of the time. Reference counting still frees
everything; the collector resumes (if it was on) when the step ends.
"""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Turn the cyclic collector off for the `with` block, then back to what it was."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()
