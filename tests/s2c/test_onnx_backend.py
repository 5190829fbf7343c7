"""ONNX's own backend test suite, run through `s2c.onnx_backend` (compile, image, interpreter).

Categories: "real" (the nine model-zoo graphs, run from onnx's local light models: the runner
feeds a deterministic ramp input and compares with the expected outputs onnx ships), "simple",
"pytorch-converted" and "pytorch-operator". Every case runs at the tolerances the suite itself
gives it (rtol 1e-3, atol 1e-7 unless the case's data.json says otherwise).

Cases whose operators or types s2c does not compile are listed in `EXPECTED_UNSUPPORTED` with the
reason; they are strict xfails that must raise `ir.errors.UnsupportedError` from `prepare`, so a
case that starts compiling, or fails in any other way, shows up. Every other case must pass.

The model-zoo cases compile for `machine="auto"` (ResNet-50 in float needs more PEs than one
board) and are marked `slow`: CI runs them; `pytest -m 'not slow'` leaves them out locally.
"""

from __future__ import annotations

from typing import Any
from unittest import mock

import onnx
import onnx.backend.test
import onnx.backend.test.runner as runner
import pytest
from onnx.backend.test.loader import load_model_tests

from ir.errors import ResourceError, UnsupportedError
from s2c.onnx_backend import S2CBackend, S2CRep


class AutoMachineBackend(S2CBackend):
    """`S2CBackend` in float mode (the suite compares with fp32 outputs) that compiles for the
    smallest machine that holds the model by default."""

    @classmethod
    def prepare(cls, model: onnx.ModelProto, device: str = "CPU", **kwargs: Any) -> S2CRep:
        kwargs.setdefault("mode", "float")
        kwargs.setdefault("machine", "auto")
        kwargs.setdefault("placer", "greedy")  # numerics only; placement is tested apart
        return super().prepare(model, device, **kwargs)


CATEGORIES = ("Real", "Simple", "PyTorchConverted", "PyTorchOperator")

_EXPAND = "Expand whose shape operand is a graph input (not a compile-time constant)"
_GRADIENT = "Gradient (ai.onnx.preview.training domain)"
_SEQUENCE = "sequence ops (SequenceEmpty / SequenceConstruct / SplitToSequence)"
_STRING = "string tensors (StringNormalizer)"
_CONV_TRANSPOSE = "ConvTranspose"
_DOUBLE = "float64 graph inputs and outputs (SpiNNaker2 computes in float32 and int8)"

# Case name (without the device suffix) -> what s2c does not compile.
EXPECTED_UNSUPPORTED: dict[str, str] = {
    **{f"test_expand_shape_model{i}": _EXPAND for i in range(1, 5)},
    "test_gradient_of_add": _GRADIENT,
    "test_gradient_of_add_and_mul": _GRADIENT,
    **{f"test_sequence_model{i}": _SEQUENCE for i in range(1, 9)},
    **{
        f"test_strnorm_model_{case}": _STRING
        for case in (
            "monday_casesensintive_lower",
            "monday_casesensintive_nochangecase",
            "monday_casesensintive_upper",
            "monday_empty_output",
            "monday_insensintive_upper_twodim",
            "nostopwords_nochangecase",
        )
    },
    "test_ConvTranspose2d": _CONV_TRANSPOSE,
    "test_ConvTranspose2d_no_bias": _CONV_TRANSPOSE,
    "test_operator_convtranspose": _CONV_TRANSPOSE,
    **{
        f"test_operator_{case}": _DOUBLE
        for case in (
            "add_broadcast",
            "add_size1_broadcast",
            "add_size1_right_broadcast",
            "add_size1_singleton_broadcast",
            "addconstant",
        )
    },
}

# Case name -> the resource it exceeds; strict xfails that must raise ResourceError.
EXPECTED_RESOURCE: dict[str, str] = {
    "test_MaxPool2d_stride_padding_dilation": (
        "a 60x80 max-pool window at dilation 10 spans 591 x 791 input elements for a single "
        "output (1.8 MB); an input port holds a dense box and a PE has 92 KiB"
    ),
}


def _load_model_tests_without_node(*args: Any, kind: str | None = None, **kwargs: Any) -> list:
    """The runner's loader, except that the "node" kind (not run here) loads nothing.

    Building the node cases generates data for some 1500 operator tests: over ten seconds of
    every collection of this file, for cases this file does not run.
    """
    if kind == "node":
        return []
    return load_model_tests(*args, kind=kind, **kwargs)


def _build_test_classes() -> dict[str, type]:
    """The suite's unittest classes for CATEGORIES: CPU cases only, with pytest marks."""
    with mock.patch.object(runner, "load_model_tests", _load_model_tests_without_node):
        cases = onnx.backend.test.BackendTest(AutoMachineBackend, __name__).test_cases
    classes = {}
    found = set()
    for category in CATEGORIES:
        name = f"OnnxBackend{category}ModelTest"
        test_class = cases[name]
        for attribute in [a for a in vars(test_class) if a.startswith("test_")]:
            if not attribute.endswith("_cpu"):
                # The interpreter runs on the host CPU; the suite's CUDA twins would only skip.
                delattr(test_class, attribute)
                continue
            function = getattr(test_class, attribute)
            case = attribute.removesuffix("_cpu")
            if case in EXPECTED_RESOURCE:
                function = pytest.mark.xfail(
                    raises=ResourceError, strict=True, reason=EXPECTED_RESOURCE[case]
                )(function)
            if case in EXPECTED_UNSUPPORTED:
                found.add(case)
                function = pytest.mark.xfail(
                    raises=UnsupportedError,
                    strict=True,
                    reason=f"s2c does not compile {EXPECTED_UNSUPPORTED[case]}",
                )(function)
            if category == "Real":
                function = pytest.mark.slow(function)
            setattr(test_class, attribute, function)
        classes[name] = test_class
    missing = set(EXPECTED_UNSUPPORTED) - found
    if missing:
        raise RuntimeError(f"EXPECTED_UNSUPPORTED names cases the suite lacks: {sorted(missing)}")
    return classes


globals().update(_build_test_classes())


@pytest.fixture(autouse=True)
def _private_onnx_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch) -> None:
    """The runner writes the model-zoo inputs and expected outputs under $ONNX_HOME: keep them
    in this session's temporary directory instead of the user's ~/.onnx."""
    home = tmp_path_factory.getbasetemp() / "onnx_home"
    home.mkdir(exist_ok=True)
    monkeypatch.setenv("ONNX_HOME", str(home))
    monkeypatch.delenv("ONNX_MODELS", raising=False)
