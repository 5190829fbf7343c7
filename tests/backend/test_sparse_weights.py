"""Compressed weight storage (backend/sparse_weights.py): format, load checks, bit-identical runs.

The same pruned weights compiled with `--sparse-weights` (csr where smaller) and `--dense-weights`
must give bit-identical outputs: both images are run from their bytes by the interpreter.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import helper, numpy_helper

from backend.cost import estimate
from backend.image import decode_image, encode_image
from backend.interpreter import Interpreter
from backend.program import Box, Kernel, OutputPort
from backend.sparse_weights import check_sparse_weight, compress, decode
from backend.stats import weight_bytes
from golden.cases import load_case
from ir.errors import InputError
from s2c.driver import CompileOptions, compile_model
from s2c.validate import interpreter_outputs

DIGITS = Path(__file__).resolve().parents[2] / "golden" / "digits"


def _image(model, **options) -> bytes:
    result = compile_model(model, CompileOptions(**options), emit=lambda t: None, warn=None)
    return encode_image(result.program)


def _csr_kernels(image: bytes) -> list[Kernel]:
    program = decode_image(image)
    return [k for pe in program.pes for k in pe.kernels if k.attrs.get("weight_format") == "csr"]


def _stored_and_dense(image: bytes) -> tuple[int, int]:
    program = decode_image(image)
    pairs = [weight_bytes(k) for pe in program.pes for k in pe.kernels]
    return sum(s for _, s in pairs), sum(d for d, _ in pairs)


@pytest.mark.parametrize("case", ["mlp", "conv_pool_dense"])
def test_int8_sparse_and_dense_storage_give_identical_outputs(case: str) -> None:
    model, inputs, _, _ = load_case(case)
    rng = np.random.default_rng(5)
    samples = {
        n: np.concatenate([a, rng.standard_normal((6, *a.shape[1:]), a.dtype)])
        for n, a in inputs.items()
    }
    options = dict(mode="int8", prune=0.8, prune_first_last=True)
    sparse = _image(model, **options)
    dense = _image(model, **options, sparse_weights=False)
    assert _csr_kernels(sparse) and not _csr_kernels(dense)
    stored, whole = _stored_and_dense(sparse)
    assert stored < 0.6 * whole  # 80 % zeros: values + 1-2 byte indices + row lengths
    sparse_out, _ = interpreter_outputs(sparse, samples)
    dense_out, _ = interpreter_outputs(dense, samples)
    for name in dense_out:
        np.testing.assert_array_equal(sparse_out[name], dense_out[name])


def test_snn_sparse_and_dense_storage_give_identical_outputs() -> None:
    test = np.load(DIGITS / "test.npz")
    x = {"input": test["input_mlp"][:40]}
    options = dict(
        mode="snn",
        calib=str(DIGITS / "calib_mlp.npz"),
        timesteps=8,
        prune=0.7,
        prune_first_last=True,
    )
    sparse = _image(DIGITS / "mlp.onnx", **options)
    dense = _image(DIGITS / "mlp.onnx", **options, sparse_weights=False)
    assert _csr_kernels(sparse) and not _csr_kernels(dense)
    sparse_out, sparse_stats = interpreter_outputs(sparse, x)
    dense_out, dense_stats = interpreter_outputs(dense, x)
    np.testing.assert_array_equal(sparse_out["logits"], dense_out["logits"])
    # a spike walks only the non-zeros of its synaptic row when the row is stored compressed
    assert sparse_stats.synaptic_events < dense_stats.synaptic_events
    stored = sparse_stats.as_dict()["sparsity"]
    assert stored["weight_bytes_dense"] == dense_stats.as_dict()["sparsity"]["weight_bytes_stored"]
    assert stored["weight_bytes_stored"] < 0.7 * stored["weight_bytes_dense"]


def test_compress_layout_matches_a_hand_made_example() -> None:
    weight = np.array([[0, 3, 0, -2], [0, 0, 0, 0], [5, 0, 0, 1]], dtype=np.int8)
    (_, values), (_, columns), (_, lengths) = compress(weight)
    np.testing.assert_array_equal(values, np.array([3, -2, 5, 1], dtype=np.int8))
    np.testing.assert_array_equal(columns, np.array([1, 3, 0, 3], dtype=np.uint8))
    np.testing.assert_array_equal(lengths, np.array([2, 0, 2], dtype=np.uint16))
    assert compress(np.zeros((2, 300), np.int8))[1][1].dtype == np.uint16
    assert compress(np.ones((2, 65536), np.int8)) is None  # index would overflow: stays dense


def _kernel(shape=(3, 4)) -> Kernel:
    box = Box((0, 0), (1, shape[1]))
    output = OutputPort(1, box, "int8", 0, 0, 0xFFFFFFF0, 16)
    attrs = {"weight_format": "csr", "weight_shape": shape}
    return Kernel("dense", "fc", 0, attrs, (), output)


def _params(values, columns, lengths) -> dict[str, np.ndarray]:
    return {
        "weight_values": np.array(values, np.int8),
        "weight_columns": np.array(columns, np.uint8),
        "weight_row_lengths": np.array(lengths, np.uint16),
    }


def test_decode_rebuilds_the_dense_weight() -> None:
    params = decode(_kernel(), _params([3, -2, 5, 1], [1, 3, 0, 3], [2, 0, 2]))
    expected = np.array([[0, 3, 0, -2], [0, 0, 0, 0], [5, 0, 0, 1]], dtype=np.int8)
    np.testing.assert_array_equal(params["weight"], expected)


@pytest.mark.parametrize(
    "params, words",
    [
        (_params([3, -2, 5], [1, 3, 0, 3], [2, 0, 2]), "row lengths sum to 4"),
        (_params([3, -2, 5, 1], [1, 4, 0, 3], [2, 0, 2]), "column is 4 >= 4"),
        (_params([3, -2, 5, 1], [3, 1, 0, 3], [2, 0, 2]), "not increasing"),
        (_params([3, -2, 5, 1], [1, 3, 0, 3], [2, 2]), "uint16 \\[3\\]"),
    ],
)
def test_bad_csr_weights_are_refused_at_load(params, words) -> None:
    with pytest.raises(InputError, match=words):
        check_sparse_weight(_kernel(), params)


def test_a_csr_weight_that_would_decode_to_gigabytes_is_refused() -> None:
    huge = _kernel((1 << 20, 65535))  # 68 G weights from a few bytes
    with pytest.raises(InputError, match="holds more than"):
        check_sparse_weight(huge, _params([], [], [0] * 3))


def test_interpreter_refuses_a_corrupted_csr_weight() -> None:
    model, _, _, _ = load_case("mlp")
    program = decode_image(_image(model, mode="int8", prune=0.8, prune_first_last=True))
    pe = next(p for p in program.pes if any("weight_format" in k.attrs for k in p.kernels))
    index = next(i for i, k in enumerate(pe.kernels) if "weight_format" in k.attrs)
    kernel = pe.kernels[index]
    shape = tuple(kernel.attrs["weight_shape"])
    pe.kernels[index] = replace(
        kernel, attrs={**kernel.attrs, "weight_shape": (shape[0] + 1, *shape[1:])}
    )
    # The descriptor check sees the row lengths no longer match the weight's rows.
    with pytest.raises(InputError, match=r"parameter 'weight_row_lengths' shape = \(\d+,\)"):
        Interpreter(decode_image(encode_image(program)))


def _wide_mlp() -> onnx.ModelProto:
    """256 -> 1024 -> 10 with ReLU: the first layer's weight alone fills several PEs in float."""
    rng = np.random.default_rng(9)
    w1 = numpy_helper.from_array(rng.standard_normal((256, 1024)).astype(np.float32), "w1")
    w2 = numpy_helper.from_array(rng.standard_normal((1024, 10)).astype(np.float32), "w2")
    nodes = [
        helper.make_node("MatMul", ["x", "w1"], ["h"]),
        helper.make_node("Relu", ["h"], ["r"]),
        helper.make_node("MatMul", ["r", "w2"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes,
        "wide",
        [helper.make_tensor_value_info("x", onnx.TensorProto.FLOAT, [1, 256])],
        [helper.make_tensor_value_info("y", onnx.TensorProto.FLOAT, [1, 10])],
        [w1, w2],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_compressed_weights_need_fewer_pes() -> None:
    model = _wide_mlp()
    options = dict(mode="float", prune=0.9, prune_first_last=True, machine="chip")
    sparse = _image(model, **options)
    dense = _image(model, **options, sparse_weights=False)
    # 1 MiB of float weights at 96 KiB per PE; 10 % non-zeros at 4 + 1 bytes each: 1/8 of that
    dense_pes, sparse_pes = (len(decode_image(image).pes) for image in (dense, sparse))
    assert dense_pes >= 11
    assert sparse_pes <= 0.7 * dense_pes


def test_cost_model_counts_the_macs_of_stored_non_zeros() -> None:
    model, _, _, _ = load_case("mlp")
    image = _image(model, mode="int8", prune=0.8, prune_first_last=True)
    program = decode_image(image)
    interpreter = Interpreter(program)
    expected = 0
    for (_, kernel), params in zip(interpreter.kernels, interpreter.params):
        if kernel.opcode != "dense":
            continue
        weight = params["weight"]  # decoded: count the non-zeros independently of the format
        stored = np.count_nonzero(weight) if "weight_format" in kernel.attrs else weight.size
        expected += stored * kernel.output.box.size // weight.shape[1]
    assert estimate(program).macs == expected
    dense = decode_image(
        _image(model, mode="int8", prune=0.8, prune_first_last=True, sparse_weights=False)
    )
    assert estimate(program).macs < 0.3 * estimate(dense).macs


def test_every_slice_fits_when_non_zeros_cluster_in_one_chunk() -> None:
    """Compressed bytes depend on each chunk's non-zeros: the partitioner must probe them all."""
    model = _wide_mlp()
    w1 = numpy_helper.to_array(model.graph.initializer[0]).copy()
    # Only columns 256..511 stay dense (256 KiB of floats): with 4 chunks of 256 columns, the
    # first, middle and last chunks are all zeros, and only the second holds non-zeros.
    w1[:, :256] = 0
    w1[:, 512:] = 0
    model.graph.initializer[0].CopyFrom(numpy_helper.from_array(w1, "w1"))
    result = compile_model(model, CompileOptions(machine="chip"), emit=lambda t: None)
    budget = result.machine.chip_spec.data_bytes
    assert max(s.sram_bytes for s in result.partition.slices) <= budget
    assert any(
        k.attrs.get("weight_format") == "csr" for pe in result.program.pes for k in pe.kernels
    )


def test_pruned_compressed_images_are_byte_identical_across_compiles() -> None:
    model, _, _, _ = load_case("conv_pool_dense")
    options = dict(mode="int8", prune=0.6, prune_global=True, event_activations=True)
    assert _image(model, **options) == _image(model, **options)
