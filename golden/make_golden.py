"""Write the golden cases: `python golden/make_golden.py [--only CASE ...]`.

For each case of `golden.cases` this builds the model from its seed, runs onnxruntime
(CPUExecutionProvider, graph optimisations disabled) on the seeded inputs and writes
`golden/<case>/{model.onnx, inputs.npz, outputs.npz, outputs_int8.npz, case.json}`.

`outputs_int8.npz` is the int8 regression expectation: s2c quantises the model as
`s2c compile --mode int8` does without `--calib` (seeded synthetic calibration), exports the
quantised graph (`--emit-qdq`, which writes conv/dense/add/concat/lookups as the exact integer
computation of docs/numerics.md), and onnxruntime runs that graph on the inputs. The values come
from onnxruntime's arithmetic, not from the interpreter, which the test compares with them
exactly. The files are
byte-for-byte reproducible: the model is serialized once from a fixed proto, and the npz
archives are written with fixed zip timestamps (`np.savez` stamps the current time).

Before writing, each case is checked: `onnx.checker.check_model(full_check=True)` passes,
and onnxruntime agrees with a float64 evaluation by onnx's reference evaluator to a tenth of
the case's tolerances, so a correct fp32 implementation passes the stored tolerances.
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import zipfile
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort

if __package__ in (None, ""):  # run as a script: make the repository root importable
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from golden import cases

_ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)
SANITY_MARGIN = 10.0  # onnxruntime vs float64 must agree to tolerance / SANITY_MARGIN


def npz_bytes(arrays: cases.Arrays) -> bytes:
    """An uncompressed .npz archive (readable by np.load) with fixed metadata."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_STORED) as archive:
        for key, array in arrays.items():
            member = io.BytesIO()
            np.lib.format.write_array(member, np.ascontiguousarray(array), allow_pickle=False)
            info = zipfile.ZipInfo(f"{key}.npy", date_time=_ZIP_EPOCH)
            info.create_system = 3  # same bytes whatever the host OS
            info.external_attr = 0o644 << 16
            archive.writestr(info, member.getvalue())
    return buffer.getvalue()


def _signature(arrays: cases.Arrays) -> dict[str, dict[str, object]]:
    return {k: {"shape": list(v.shape), "dtype": str(v.dtype)} for k, v in arrays.items()}


def case_json(
    name: str, model: onnx.ModelProto, inputs: cases.Arrays, outputs: cases.Arrays
) -> str:
    description, seed, seeded = cases.case_spec_info(name)
    tol = cases.case_tolerances(name)
    meta: dict[str, object] = {
        "name": name,
        "description": description,
        "opset": cases.OPSET,
        "ir_version": cases.IR_VERSION,
        "onnx_version": onnx.__version__,
        "onnxruntime_version": ort.__version__,
        "numpy_version": np.__version__,
        "seed": seed,
        "input_seed": [seed, 1],
        "inputs": _signature(inputs),
        "outputs": _signature(outputs),
        "weights": "seeded" if seeded else "inline",
        "tolerances": {"float": {"rtol": tol.rtol, "atol": tol.atol, "why": tol.why}},
        "int8": {
            "outputs": "outputs_int8.npz",
            "compile": "s2c compile --mode int8 (no --calib: seeded synthetic calibration)",
            "reference": "onnxruntime (graph optimisations off) on the --emit-qdq model",
            "compare": "exact",
        },
    }
    if seeded:
        meta["seeded_initializers"] = cases.seeded_digests(name, model)
    return json.dumps(meta, indent=2) + "\n"


def sanity_check(
    name: str, model: onnx.ModelProto, inputs: cases.Arrays, outputs: cases.Arrays
) -> None:
    """Raise if the model is invalid or onnxruntime strays from a float64 evaluation."""
    onnx.checker.check_model(model, full_check=True)
    check_float64(name, model, inputs, outputs, cases.case_tolerances(name))


def check_float64(
    name: str,
    model: onnx.ModelProto,
    inputs: cases.Arrays,
    outputs: cases.Arrays,
    tol: cases.Tolerances,
) -> None:
    """Raise if onnxruntime's outputs stray from a float64 evaluation by tol / SANITY_MARGIN."""
    reference = cases.run_float64_reference(model, inputs)
    for key, value in outputs.items():
        np.testing.assert_allclose(
            value,
            reference[key],
            rtol=tol.rtol / SANITY_MARGIN,
            atol=tol.atol / SANITY_MARGIN,
            err_msg=f"{name}/{key}: onnxruntime vs float64 reference",
        )


def int8_outputs(model: onnx.ModelProto, inputs: cases.Arrays) -> cases.Arrays:
    """onnxruntime's outputs on the QDQ export of the model as s2c quantises it by default."""
    from s2c.driver import CompileOptions, compile_model
    from s2c.export import export_onnx

    options = CompileOptions(mode="int8")
    result = compile_model(model, options, emit=lambda text: None, warn=lambda text: None)
    return cases.run_onnxruntime(export_onnx(result.graph), inputs)


def render_case(name: str, check: bool = True) -> dict[str, bytes]:
    """File name -> bytes of every file of a case."""
    model, inputs = cases.build_case(name)
    outputs = cases.run_onnxruntime(model, inputs)
    if check:
        sanity_check(name, model, inputs, outputs)
    return {
        "model.onnx": cases.stored_form(name, model).SerializeToString(),
        "inputs.npz": npz_bytes(inputs),
        "outputs.npz": npz_bytes(outputs),
        "outputs_int8.npz": npz_bytes(int8_outputs(model, inputs)),
        "case.json": case_json(name, model, inputs, outputs).encode(),
    }


def write_case(name: str) -> int:
    directory = cases.case_dir(name)
    directory.mkdir(exist_ok=True)
    files = render_case(name)
    for file_name, data in files.items():
        (directory / file_name).write_bytes(data)
    return sum(len(data) for data in files.values())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--only",
        action="append",
        choices=cases.CASES,
        metavar="CASE",
        help="write only this case (repeatable); default: all cases",
    )
    args = parser.parse_args(argv)
    for name in args.only or cases.CASES:
        size = write_case(name)
        print(f"{name:22s} {size / 1024:8.1f} KiB  -> {cases.case_dir(name)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
