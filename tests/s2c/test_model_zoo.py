"""The nine model-zoo graphs with seeded random weights: s2c against onnxruntime on the logits.

onnx's light model-zoo graphs make every weight with ConstantOfShape(0.02), so all logits are
equal and the Softmax output is a flat 0.001. `benchmarks.zoo_models` rebuilds each graph with
seeded random weights (He-scaled conv and dense weights, positive BatchNorm variances), and the
comparison is made on the logits, the input of the final Softmax, where errors are not squashed.

Each model compiles for `machine="auto"` (ResNet-50 in float needs more than one board). The CI
slice leaves out VGG-19 and ZFNet-512, whose huge dense layers take three and a half minutes and
test nothing AlexNet does not; `S2C_ZOO_ALL=1` runs all nine (docs/testing.md, nightly run). The
ONNX backend suite runs all nine graphs with their shipped weights in every run.
"""

from __future__ import annotations

import os

import numpy as np
import pytest

from backend.image import encode_image
from benchmarks.zoo_models import MODEL_NAMES, cut_at_softmax, randomised_model, seeded_input
from s2c.driver import CompileOptions, compile_model
from s2c.validate import interpreter_outputs, run_onnxruntime

# Numerics only: the greedy placer keeps these large compiles short (placement is tested apart).
OPTIONS = CompileOptions(mode="float", machine="auto", placer="greedy")

# Tolerance, per element: |s2c - onnxruntime| <= ATOL_SCALE * max|logits| + RTOL * |onnxruntime|.
# Both compute in float32, but a logit here is the end of a chain of sums over thousands of
# products (a 3x3 conv over 512 channels adds 4608 terms; VGG's first dense layer 25088), which
# s2c adds in another order (slices, partial sums over input channels) than onnxruntime's
# blocked kernels. Each such sum carries a rounding error of order sqrt(n) * 2^-24 of its
# magnitude, and the errors of fifty layers compound: about 1e-5 relative, so 1e-3 leaves a wide
# margin while a wrong weight, window or channel gives errors of order 1. A logit near zero is a
# difference of large terms, so its error is bounded by the logits' scale, not by its own size:
# hence the absolute part, 1e-4 of the largest logit.
RTOL = 1e-3
ATOL_SCALE = 1e-4
NIGHTLY_ONLY = ("vgg19", "zfnet512")
MODELS = (
    MODEL_NAMES
    if os.environ.get("S2C_ZOO_ALL") == "1"
    else tuple(name for name in MODEL_NAMES if name not in NIGHTLY_ONLY)
)


def _compile(model):
    return compile_model(model, OPTIONS, emit=lambda text: None)


@pytest.mark.slow
@pytest.mark.parametrize("name", MODELS)
def test_random_weight_logits_match_onnxruntime(name: str) -> None:
    model = cut_at_softmax(randomised_model(name))
    inputs = seeded_input(model)
    (expected,) = run_onnxruntime(model, inputs).values()
    image = encode_image(_compile(model).program)
    outputs, _ = interpreter_outputs(image, inputs)
    (actual,) = outputs.values()

    assert actual.shape == expected.shape
    assert np.isfinite(expected).all()
    scale = float(np.abs(expected).max())
    error = np.abs(actual.astype(np.float64) - expected)
    bad = ~(error <= ATOL_SCALE * scale + RTOL * np.abs(expected))
    relative = error / np.maximum(np.abs(expected), np.finfo(np.float32).tiny)
    print(
        f"{name}: max abs error {error.max():.3g}, max rel error {relative.max():.3g}, "
        f"max error / logit scale {error.max() / scale:.3g} (scale {scale:.3g})"
    )
    assert not bad.any(), (
        f"{name}: {int(bad.sum())} of {expected.size} logits out of tolerance; "
        f"max abs error {error.max():.3g} (logit scale {scale:.3g}), "
        f"max error / scale {error.max() / scale:.3g}"
    )


@pytest.mark.slow
def test_compiling_twice_gives_identical_image_bytes() -> None:
    model = randomised_model("squeezenet")
    first = encode_image(_compile(model).program)
    second = encode_image(_compile(model).program)
    assert first == second


def test_randomised_weights_are_seeded_and_keep_the_graph() -> None:
    first = randomised_model("squeezenet")
    second = randomised_model("squeezenet")
    assert first.SerializeToString() == second.SerializeToString()
    assert not any(node.op_type == "ConstantOfShape" for node in first.graph.node)
    logits = cut_at_softmax(first)
    assert [n.op_type for n in logits.graph.node].count("Softmax") == 0
    assert len(logits.graph.node) == len(first.graph.node) - 1
