"""The named pass pipelines the compiler driver runs."""

from __future__ import annotations

from passes.activation_zeros import MeasureActivationZeros
from passes.ann_to_snn import AnnToSnn
from passes.base import Pass
from passes.constant_fold import ConstantFold
from passes.dead_code import DeadCode
from passes.fold_batchnorm import DecomposeBatchNorm, FoldBatchNorm
from passes.fold_bias import FoldBias
from passes.fold_movement import FoldMovement
from passes.fold_projection import FoldProjection
from passes.fuse_activation import FuseActivation
from passes.fuse_attention import FuseAttention
from passes.fuse_layer_norm import FuseLayerNorm
from passes.fuse_permute import FusePermute
from passes.fuse_residual import FuseResidual
from passes.lower_split import LowerSplit
from passes.quantise import Quantise
from passes.remove_identity import RemoveIdentity
from passes.sparsity import Prune

CLAMPS = frozenset({"relu", "clip"})


def canonicalisation(mode: str = "float") -> list[Pass]:
    """Folding, identity removal, dense bias folding and the split and scaling of packed
    attention projections (float only: in int8 the add's and the mul's requantisation are part
    of the QDQ semantics), movement chains, layer-norm and BatchNorm folding, fusion, dead code,
    transposes fused with their reshapes, attention's head splits, matmuls, softmax and head
    merge fused into attention nodes and residual adds with the layer norms after them (float
    only), split lowering."""
    return [
        ConstantFold(),
        RemoveIdentity(),
        *([FoldBias(), FoldProjection()] if mode == "float" else []),  # first: the reshapes
        # around a dense layer then fold
        FoldMovement(),
        FuseLayerNorm(),
        FoldBatchNorm(),
        DecomposeBatchNorm(),
        ConstantFold(),
        FuseActivation() if mode == "float" else FuseActivation(functions=CLAMPS),
        DeadCode(),
        *([FusePermute(), FuseAttention(), FuseResidual()] if mode == "float" else []),
        LowerSplit(),
    ]


def pass_names() -> list[str]:
    """Every pass name a user can give to --print-after."""
    later = {Quantise.name, AnnToSnn.name, Prune.name, MeasureActivationZeros.name}
    return sorted({p.name for p in canonicalisation()} | later)
