"""Activation zeros at calibration in float mode: the fraction of each layer's output that is 0.

An analysis pass (the graph is unchanged): the float graph runs on the calibration samples and
every node's output counts its elements equal to 0.0 (`passes.calibration.zero_fractions`; in
int8 the quantise pass counts them during its own calibration). The compiler uses the fractions
to choose, per producing layer, between event-based and packed transmission (docs/sparsity.md).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import ClassVar

import numpy as np

from ir.graph import Graph
from passes.base import Pass
from passes.calibration import calibrate, zero_fractions


@dataclass(frozen=True)
class MeasureActivationZeros(Pass):
    """Record `zeros[node name]` = zero elements / elements of the node's first output."""

    name: ClassVar[str] = "measure-activation-zeros"
    samples: Mapping[str, np.ndarray] = field(default_factory=dict, compare=False)
    zeros: dict[str, float] = field(default_factory=dict, compare=False)

    def run(self, graph: Graph) -> bool:
        self.zeros.update(zero_fractions(graph, calibrate(graph, self.samples)))
        return False
