"""The named pass pipelines the compiler driver runs."""

from __future__ import annotations

from passes.base import Pass
from passes.constant_fold import ConstantFold
from passes.dead_code import DeadCode
from passes.fold_batchnorm import DecomposeBatchNorm, FoldBatchNorm
from passes.fuse_activation import FuseActivation
from passes.lower_split import LowerSplit
from passes.remove_identity import RemoveIdentity


def canonicalisation() -> list[Pass]:
    """Folding, identity removal, BatchNorm folding, fusion, dead code, split lowering."""
    return [
        ConstantFold(),
        RemoveIdentity(),
        FoldBatchNorm(),
        DecomposeBatchNorm(),
        ConstantFold(),
        FuseActivation(),
        DeadCode(),
        LowerSplit(),
    ]


def pass_names() -> list[str]:
    """Every pass name a user can give to --print-after."""
    return sorted({p.name for p in canonicalisation()})
