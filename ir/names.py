"""Unique names: the namespace of a graph's values and of an exported ONNX model's tensors."""

from __future__ import annotations


class UniqueNames:
    """A namespace where `fresh(base)` is `base` if unused, else `base_1`, `base_2`, ...

    Deterministic: the names depend only on the order of the calls.
    """

    def __init__(self) -> None:
        self._taken: set[str] = set()

    def taken(self, name: str) -> bool:
        return name in self._taken

    def fresh(self, base: str) -> str:
        if base not in self._taken:
            self._taken.add(base)
            return base
        index = 1
        while f"{base}_{index}" in self._taken:
            index += 1
        name = f"{base}_{index}"
        self._taken.add(name)
        return name
