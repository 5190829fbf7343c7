"""Guards on the golden data itself (not on s2c): files valid, reproducible and still right.

For every case under `golden/`: the model passes the ONNX checker, onnxruntime today still
gives the stored outputs on the stored inputs, the builders reproduce the stored model and
input bytes, and the stored tolerances admit a float64 evaluation of the graph.
"""

from __future__ import annotations

import json
import shutil
import sys
from functools import cache
from pathlib import Path

import numpy as np
import onnx
import pytest

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from golden import cases, make_golden  # noqa: E402
from golden.recurrent import RECURRENT_CASES  # noqa: E402

CHIP_BYTES = 148 * 92 * 1024  # usable data memory of one SpiNNaker2 chip
VERSION_KEYS = {"onnx_version", "onnxruntime_version", "numpy_version"}


@cache
def _loaded(name: str):
    return cases.load_case(name)


@cache
def _rendered(name: str) -> dict[str, bytes]:
    return make_golden.render_case(name, check=False)


def _stored_case_dirs() -> set[str]:
    return {p.parent.name for p in cases.GOLDEN_DIR.glob("*/case.json")}


def test_case_directories_match_case_table():
    assert _stored_case_dirs() == set(cases.CASES) | set(RECURRENT_CASES)


@pytest.mark.parametrize("name", cases.CASES)
def test_model_passes_checker(name):
    model, _, _, _ = _loaded(name)
    onnx.checker.check_model(model, full_check=True)
    assert model.opset_import[0].version == cases.OPSET


@pytest.mark.parametrize("name", cases.CASES)
def test_stored_outputs_match_onnxruntime_today(name):
    model, inputs, expected, _ = _loaded(name)
    actual = cases.run_onnxruntime(model, inputs)
    assert list(actual) == list(expected)
    for key, value in expected.items():
        assert actual[key].dtype == value.dtype
        np.testing.assert_allclose(actual[key], value, rtol=1e-6, atol=1e-6, err_msg=key)


@pytest.mark.parametrize("name", cases.CASES)
def test_inputs_keyed_by_onnx_input_names(name):
    model, inputs, expected, _ = _loaded(name)
    assert list(inputs) == [v.name for v in model.graph.input]
    assert list(expected) == [v.name for v in model.graph.output]


@pytest.mark.parametrize("name", cases.CASES)
@pytest.mark.parametrize("file_name", ["model.onnx", "inputs.npz"])
def test_builders_reproduce_stored_bytes(name, file_name):
    stored = (cases.case_dir(name) / file_name).read_bytes()
    assert _rendered(name)[file_name] == stored


@pytest.mark.parametrize("name", cases.CASES)
def test_case_json_reproduced_apart_from_versions(name):
    stored = json.loads((cases.case_dir(name) / "case.json").read_text())
    fresh = json.loads(_rendered(name)["case.json"])
    for meta in (stored, fresh):
        for key in VERSION_KEYS:
            meta.pop(key)
    assert fresh == stored


@pytest.mark.parametrize("name", cases.CASES)
def test_tolerances_admit_float64_reference(name):
    model, inputs, expected, tol = _loaded(name)
    assert tol.why
    reference = cases.run_float64_reference(model, inputs)
    for key, value in expected.items():
        np.testing.assert_allclose(value, reference[key], rtol=tol.rtol, atol=tol.atol)


def test_npz_writer_is_deterministic_and_loadable(tmp_path):
    arrays = {"a": np.arange(6, dtype=np.float32).reshape(2, 3), "b": np.zeros(0, np.int64)}
    data = make_golden.npz_bytes(arrays)
    assert make_golden.npz_bytes(arrays) == data
    (tmp_path / "x.npz").write_bytes(data)
    with np.load(tmp_path / "x.npz") as loaded:
        assert list(loaded.files) == ["a", "b"]
        np.testing.assert_array_equal(loaded["a"], arrays["a"])


def test_multi_chip_weights_exceed_one_chip_but_file_is_small():
    model, _, _, _ = _loaded("multi_chip")
    weight_bytes = sum(len(t.raw_data) for t in model.graph.initializer)
    assert weight_bytes > CHIP_BYTES
    assert (cases.case_dir("multi_chip") / "model.onnx").stat().st_size < 1 << 20
    assert model.SerializeToString() == cases.build_model("multi_chip").SerializeToString()


def test_load_case_rejects_seeded_weights_that_changed(tmp_path, monkeypatch):
    shutil.copytree(cases.case_dir("multi_chip"), tmp_path / "multi_chip")
    meta_path = tmp_path / "multi_chip" / "case.json"
    meta = json.loads(meta_path.read_text())
    first = next(iter(meta["seeded_initializers"]))
    meta["seeded_initializers"][first] = "0" * 64
    meta_path.write_text(json.dumps(meta))
    monkeypatch.setattr(cases, "case_dir", lambda name: tmp_path / name)
    with pytest.raises(ValueError, match="digest"):
        cases.load_case("multi_chip")


def test_unknown_case_is_reported():
    with pytest.raises(KeyError, match="unknown golden case"):
        cases.load_case("no_such_case")
