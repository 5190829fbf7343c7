"""Passes and the pass manager.

A pass is a small frozen dataclass: its fields are its options, `name` is its command-line name
(and its file's name), and `run(graph)` transforms the graph in place and says whether anything
changed. The `PassManager` runs a pipeline, verifies the graph after every pass, can time each
pass and print the graph after chosen ones, and wraps a failure with the pass that failed and the
passes that ran before it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import ClassVar

from ir.errors import InternalError, PassError, S2CError
from ir.graph import Graph
from ir.printer import print_graph
from ir.verifier import verify


@dataclass(frozen=True)
class Pass:
    """Base of every pass."""

    name: ClassVar[str] = "pass"

    def run(self, graph: Graph) -> bool:
        raise NotImplementedError


@dataclass
class PassRecord:
    """What one pass did: its name, whether it changed the graph, how long it took."""

    name: str
    changed: bool
    seconds: float


@dataclass
class PassManager:
    """Runs passes in order, verifying after each.

    `print_after` names passes after which `emit(text)` receives the printed graph ("all" for
    every pass).
    """

    passes: Sequence[Pass]
    verify_each: bool = True
    print_after: frozenset[str] = frozenset()
    emit: Callable[[str], None] = print
    records: list[PassRecord] = field(default_factory=list)

    def run(self, graph: Graph) -> bool:
        """Run the pipeline once; True when any pass changed the graph."""
        if self.verify_each:
            verify(graph)
        changed = False
        for index, pass_ in enumerate(self.passes):
            changed |= self._run_one(pass_, graph, [p.name for p in self.passes[:index]])
        return changed

    def _run_one(self, pass_: Pass, graph: Graph, before: list[str]) -> bool:
        start = time.perf_counter()
        try:
            changed = pass_.run(graph)
            if self.verify_each:
                verify(graph)
        except S2CError as error:
            if isinstance(error, InternalError):
                raise PassError(_context(pass_, before, error)) from error
            raise
        except Exception as error:  # a bug in a pass: report it with its context
            raise PassError(_context(pass_, before, error)) from error
        self.records.append(PassRecord(pass_.name, changed, time.perf_counter() - start))
        if pass_.name in self.print_after or "all" in self.print_after:
            self.emit(f"// after {pass_.name}\n{print_graph(graph)}")
        return changed


def _context(pass_: Pass, before: list[str], error: Exception) -> str:
    ran = ", ".join(before) or "none"
    detail = str(error) if isinstance(error, S2CError) else f"{type(error).__name__}: {error}"
    return f"pass '{pass_.name}' failed (passes run before it: {ran}): {detail}"
