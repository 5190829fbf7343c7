"""Frontend fuzzing: broken models give a one-line InputError or UnsupportedError, never a crash.

Random part: S2C_FUZZ_MODELS mutated golden models (`fuzz_models.model_case`: protobuf byte
mutations and structured edits) are lowered by `load_onnx` from a file; each case must give an
IR graph or an S2CError with exit code 2 and a one-line message, within a time limit and under
an address-space cap. The same models are then compiled end to end (passes, partition,
placement, image), which must succeed or refuse the same way.

Hand-made part: a table of broken models, each compiled by the `s2c compile` command, whose one
error line must name the thing that is wrong (the node, op, input, initializer or file).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import pytest
from cli_runner import invoke
from fuzz_limits import (
    CHUNK,
    COMPILE_SECONDS,
    MODEL_CASES,
    SEED,
    check_cases,
    chunks,
)
from fuzz_models import model_case
from onnx import TensorProto, helper, numpy_helper

from backend.image import encode_image
from s2c.driver import CompileOptions, compile_model
from s2c.frontend import load_onnx


def _case_folder(root: Path, index: int) -> Path:
    folder = root / f"case{index}" / "model"  # a folder inside another: room for "../" escapes
    folder.mkdir(parents=True)
    return folder


def _write_case(models: dict[str, onnx.ModelProto], root: Path, index: int) -> tuple[str, Path]:
    return model_case(models, SEED, index, _case_folder(root, index))


def _compile(path: Path) -> None:
    result = compile_model(
        path, CompileOptions(mode="float"), emit=lambda text: None, warn=lambda text: None
    )
    encode_image(result.program)


def _model_cases(start: int, models, root: Path, stage: Callable[[Path], object]):
    for index in range(start, min(start + CHUNK, MODEL_CASES)):
        description, path = _write_case(models, root, index)
        yield f"case {index} [{description}]", lambda path=path: stage(path)


@pytest.mark.parametrize("start", chunks(MODEL_CASES))
def test_frontend_refuses_mutated_models_in_one_line(start, golden_models, tmp_path):
    check_cases("frontend", _model_cases(start, golden_models, tmp_path, load_onnx))


@pytest.mark.parametrize("start", chunks(MODEL_CASES))
def test_compiler_compiles_or_refuses_mutated_models_in_one_line(start, golden_models, tmp_path):
    cases = _model_cases(start, golden_models, tmp_path, _compile)
    check_cases("compile", cases, COMPILE_SECONDS)


def test_model_cases_are_a_pure_function_of_seed_and_index(golden_models, tmp_path):
    for index in range(0, 200, 9):
        first = model_case(golden_models, SEED, index, _case_folder(tmp_path / "a", index))
        again = model_case(golden_models, SEED, index, _case_folder(tmp_path / "b", index))
        assert first[0] == again[0]
        assert first[1].read_bytes() == again[1].read_bytes()


# --- Hand-made broken models: the one error line names the culprit ---


def base_model() -> onnx.ModelProto:
    """x[1, 3, 8, 8] -> Conv 'conv' (W, B) -> Relu 'relu' -> Flatten 'flatten' -> Gemm 'dense'."""
    rng = np.random.default_rng(0)
    initializers = [
        numpy_helper.from_array(rng.standard_normal((4, 3, 3, 3)).astype(np.float32), "W"),
        numpy_helper.from_array(np.zeros(4, np.float32), "B"),
        numpy_helper.from_array(rng.standard_normal((256, 10)).astype(np.float32), "W2"),
    ]
    nodes = [
        helper.make_node("Conv", ["x", "W", "B"], ["c"], name="conv", pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["c"], ["r"], name="relu"),
        helper.make_node("Flatten", ["r"], ["f"], name="flatten"),
        helper.make_node("Gemm", ["f", "W2"], ["y"], name="dense"),
    ]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 8])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 10])
    graph = helper.make_graph(nodes, "base", [x], [y], initializers)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def edited(edit: Callable[[onnx.ModelProto], object]) -> Callable[[Path], Path]:
    """A writer of the base model changed by `edit`, saved as folder/model/model.onnx."""

    def write(folder: Path) -> Path:
        model = base_model()
        edit(model)
        (folder / "model").mkdir()
        path = folder / "model" / "model.onnx"
        path.write_bytes(model.SerializeToString())
        return path

    return write


def node(model: onnx.ModelProto, name: str) -> onnx.NodeProto:
    return next(n for n in model.graph.node if n.name == name)


def initializer(model: onnx.ModelProto, name: str) -> onnx.TensorProto:
    return next(t for t in model.graph.initializer if t.name == name)


def set_input_dims(dims: list[int]) -> Callable[[onnx.ModelProto], None]:
    def edit(model: onnx.ModelProto) -> None:
        shape = model.graph.input[0].type.tensor_type.shape
        for dim, value in zip(shape.dim, dims):
            dim.dim_value = value

    return edit


def write_weight(value: float) -> Callable[[onnx.ModelProto], None]:
    def edit(model: onnx.ModelProto) -> None:
        tensor = initializer(model, "W2")
        array = numpy_helper.to_array(tensor).copy()
        array[17, 3] = value
        tensor.CopyFrom(numpy_helper.from_array(array, "W2"))

    return edit


def external(location: str) -> Callable[[onnx.ModelProto], None]:
    def edit(model: onnx.ModelProto) -> None:
        tensor = initializer(model, "W2")
        tensor.ClearField("raw_data")
        entry = tensor.external_data.add()
        entry.key, entry.value = "location", location
        tensor.data_location = TensorProto.EXTERNAL

    return edit


def int8_input(model: onnx.ModelProto) -> None:
    """x is int8 without quantisation parameters (valid ONNX; float mode cannot read it)."""
    model.graph.input[0].type.tensor_type.elem_type = TensorProto.INT8


def cycle(model: onnx.ModelProto) -> None:
    """relu reads dense's output; dense reads flatten, which reads relu: a loop."""
    node(model, "relu").input[0] = "y"


def rename_op(op_type: str, domain: str = "") -> Callable[[onnx.ModelProto], None]:
    def edit(model: onnx.ModelProto) -> None:
        relu = node(model, "relu")
        relu.op_type, relu.domain = op_type, domain
        if domain:
            model.opset_import.append(helper.make_opsetid(domain, 1))

    return edit


def opset(version: int) -> Callable[[onnx.ModelProto], None]:
    def edit(model: onnx.ModelProto) -> None:
        model.opset_import[0].version = version

    return edit


def set_attribute(node_name: str, attribute: str, value) -> Callable[[onnx.ModelProto], None]:
    def edit(model: onnx.ModelProto) -> None:
        attributes = node(model, node_name).attribute
        kept = [a for a in attributes if a.name != attribute]
        del attributes[:]
        attributes.extend([*kept, helper.make_attribute(attribute, value)])

    return edit


def truncated(folder: Path) -> Path:
    path = folder / "cut.onnx"
    data = base_model().SerializeToString()
    path.write_bytes(data[: len(data) // 2])
    return path


def non_utf8_node_name(model: onnx.ModelProto) -> None:
    """The node name "relu" (a 4-byte string field) becomes 4 bytes that are not UTF-8."""
    data = model.SerializeToString().replace(b"\x04relu", b"\x04r\xffl\xfe", 1)
    model.ParseFromString(data)


def string_input(model: onnx.ModelProto) -> None:
    model.graph.input[0].type.tensor_type.elem_type = TensorProto.STRING


def double_initializer(model: onnx.ModelProto) -> None:
    """W2's 4-byte floats declared as 8-byte doubles: the bytes do not fill the dims."""
    initializer(model, "W2").data_type = TensorProto.DOUBLE


def undefined_initializer_type(model: onnx.ModelProto) -> None:
    initializer(model, "B").data_type = 99


def negative_initializer_dim(model: onnx.ModelProto) -> None:
    initializer(model, "W").dims[1] = -3


def float8_initializer(model: onnx.ModelProto) -> None:
    """W2's float32 bytes declared as 1-byte floats: four times too many (the checker passes)."""
    initializer(model, "W2").data_type = TensorProto.FLOAT8E4M3FN


def nan_constant(model: onnx.ModelProto) -> None:
    """A Constant node whose value holds a NaN, added to the result."""
    value = numpy_helper.from_array(np.array([np.nan] + [0.0] * 9, np.float32))
    model.graph.node.append(helper.make_node("Constant", [], ["k"], name="offsets", value=value))
    model.graph.node.append(helper.make_node("Add", ["y", "k"], ["z"], name="add"))
    model.graph.output[0].name = "z"


def non_utf8_attribute(model: onnx.ModelProto) -> None:
    node(model, "conv").attribute.append(helper.make_attribute("auto_pad", b"\xff\xfe"))


def dangling(model: onnx.ModelProto) -> None:
    node(model, "relu").input[0] = "nowhere"


def unused_input(model: onnx.ModelProto) -> None:
    model.graph.input.append(helper.make_tensor_value_info("spare", TensorProto.FLOAT, [1, 3]))


# case: (writer, expected exception class name, words the one error line must contain)
BAD_MODELS = {
    "truncated protobuf": (truncated, "InputError", ["cut.onnx", "truncated"]),
    "input of element type STRING": (
        edited(string_input),
        "UnsupportedError",
        ["input 'x'", "STRING"],
    ),
    "initializer bytes of the wrong type": (
        edited(double_initializer),
        "InputError",
        ["W2"],
    ),
    "initializer of an unknown element type": (
        edited(undefined_initializer_type),
        "InputError",
        ["initializer 'B'", "element type 99"],
    ),
    "initializer bytes that do not fill its dims": (
        edited(float8_initializer),
        "InputError",
        ["initializer 'W2'", "FLOAT8E4M3FN", "[256, 10]", "does not match"],
    ),
    "negative input dimension": (
        edited(set_input_dims([1, -3, 8, 8])),
        "InputError",
        ["input 'x'", "axis 1", "-3"],
    ),
    "negative initializer dimension": (
        edited(negative_initializer_dim),
        "InputError",
        ["W", "Negative dimension"],
    ),
    "huge input dimension": (
        edited(set_input_dims([1 << 40, 3, 8, 8])),
        "ResourceError",
        ["'conv'", "bytes of SRAM", "machine 'board' has"],
    ),
    "a cycle": (edited(cycle), "InputError", ["topologically sorted", "relu"]),
    "a dangling input": (edited(dangling), "InputError", ["'nowhere'"]),
    "NaN in a weight": (
        edited(write_weight(float("nan"))),
        "InputError",
        ["initializer 'W2'", "NaN", "(17, 3)"],
    ),
    "Inf in a weight": (
        edited(write_weight(float("-inf"))),
        "InputError",
        ["initializer 'W2'", "infinite", "(17, 3)"],
    ),
    "NaN in a Constant node": (
        edited(nan_constant),
        "InputError",
        ["'offsets' (Constant) value", "NaN", "(0,)"],
    ),
    "external data outside the folder": (
        edited(external("../w2.bin")),
        "InputError",
        ["tensor 'W2'", "'../w2.bin'", "outside"],
    ),
    "external data in a missing file": (
        edited(external("w2.bin")),
        "InputError",
        ["tensor 'W2'", "'w2.bin'", "does not exist"],
    ),
    "opset below 6": (edited(opset(5)), "InputError", ["opset 5", "minimum 6"]),
    "opset above 21": (edited(opset(22)), "InputError", ["opset 22", "21"]),
    "an unknown domain": (
        edited(rename_op("Relu", "com.example")),
        "UnsupportedError",
        ["'relu' (Relu, com.example opset 1)", "default ONNX domain"],
    ),
    "an op without lowering": (
        edited(rename_op("Hardmax")),
        "UnsupportedError",
        ["'relu' (Hardmax, opset 17)", "no lowering"],
    ),
    "a required attribute missing": (
        edited(rename_op("LRN")),
        "InputError",
        ["node 'relu' (LRN)", "Required attribute 'size'"],
    ),
    "an attribute of the wrong type": (
        edited(set_attribute("conv", "pads", "one")),
        "InputError",
        ["node 'conv' (Conv)", "pads", "INTS"],
    ),
    "a name that is not UTF-8": (
        edited(non_utf8_node_name),
        "InputError",
        ["node 1 name", "not valid UTF-8"],
    ),
    "a zero-sized batch": (
        edited(set_input_dims([0, 3, 8, 8])),
        "UnsupportedError",
        ["'conv' (conv)", "'x'", "(0, 3, 8, 8)", "no elements"],
    ),
    "an int8 input in float mode": (
        edited(int8_input),
        "UnsupportedError",
        ["'conv' (conv)", "int8 tensor 'x'", "no per-tensor scale", "--mode int8"],
    ),
    "a text attribute that is not UTF-8": (
        edited(non_utf8_attribute),
        "InputError",
        ["'conv' (Conv)", "attribute 'auto_pad'", "UTF-8"],
    ),
}


def test_the_unbroken_model_compiles(tmp_path):
    result = invoke(
        "compile",
        "--mode",
        "float",
        edited(lambda model: None)(tmp_path),
        "-o",
        tmp_path / "out.bin",
    )
    assert result.exit_code == 0, result.stderr


@pytest.mark.parametrize("case", list(BAD_MODELS))
def test_a_broken_model_gets_one_error_line_naming_the_culprit(tmp_path, case):
    write, kind, words = BAD_MODELS[case]
    model = write(tmp_path)
    image = tmp_path / "out.bin"
    result = invoke("compile", "--mode", "float", model, "-o", image)
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert result.exit_code == 2, result.output + result.stderr
    assert len(errors) == 1 and "Traceback" not in result.stderr, result.stderr
    for word in words:
        assert word in errors[0], errors[0]
    assert not image.exists()
    with pytest.raises(Exception) as raised:
        compile_model(
            model, CompileOptions(mode="float"), emit=lambda text: None, warn=lambda text: None
        )
    assert type(raised.value).__name__ == kind, raised.value


def test_an_unused_input_compiles(tmp_path):
    """An input no node reads is valid ONNX (onnxruntime runs it): it compiles."""
    model = edited(unused_input)(tmp_path)
    assert load_onnx(model).inputs[1].name == "spare"
    result = invoke("compile", "--mode", "float", model, "-o", tmp_path / "out.bin")
    assert result.exit_code == 0, result.stderr
