"""fuse-attention: attention's head splits, matmuls, softmax and head merge become one
attention node (float only), checked on the layouts exporters write and against onnxruntime."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import helper

from backend.image import decode_image, encode_image
from passes.base import PassManager
from passes.pipeline import canonicalisation
from s2c.frontend import load_onnx
from tests.s2c.test_sequence_ops import _check, _compile, _init, _model, _random, _value


def _ops(model, mode: str = "float") -> list[str]:
    graph = load_onnx(model)
    PassManager(canonicalisation(mode)).run(graph)
    return [n.op for n in graph.nodes]


def _shape(name: str, values) -> object:
    return _init(name, np.array(values, dtype="int64"))


def _batch_first(batch, queries, keys, heads, d_k, d_v, k_view=None, k_perm=None, mask=False):
    """q [B, Lq, H d_k], k [B, Lk, H d_k], v [B, Lk, H d_v] (Relu'd: activations), heads split
    by Reshape [B, L, H, d] and Transpose (k to [B, H, d, Lk]), merged back to [B, Lq, H d_v].
    `k_view` and `k_perm` split k another way; `mask` adds a constant to the scores."""
    nodes = [helper.make_node("Relu", [name], [f"{name}r"]) for name in ("q", "k", "v")]
    nodes += [
        helper.make_node("Reshape", ["qr", "q_view"], ["qh"]),
        helper.make_node("Transpose", ["qh"], ["qt"], perm=[0, 2, 1, 3]),
        helper.make_node("Reshape", ["kr", "k_view"], ["kh"]),
        helper.make_node("Transpose", ["kh"], ["kt"], perm=k_perm or [0, 2, 3, 1]),
        helper.make_node("Reshape", ["vr", "v_view"], ["vh"]),
        helper.make_node("Transpose", ["vh"], ["vt"], perm=[0, 2, 1, 3]),
        helper.make_node("MatMul", ["qt", "kt"], ["raw" if mask else "scores"]),
        *([helper.make_node("Add", ["raw", "mask"], ["scores"])] if mask else []),
        helper.make_node("Softmax", ["scores"], ["weights"], axis=-1),
        helper.make_node("MatMul", ["weights", "vt"], ["mixed"]),
        helper.make_node("Transpose", ["mixed"], ["merged"], perm=[0, 2, 1, 3]),
        helper.make_node("Reshape", ["merged", "y_shape"], ["y"]),
    ]
    initializers = [
        _shape("q_view", [batch, queries, heads, d_k]),
        _shape("k_view", k_view or [batch, keys, heads, d_k]),
        _shape("v_view", [batch, keys, heads, d_v]),
        _shape("y_shape", [batch, queries, heads * d_v]),
    ]
    if mask:
        scores = np.triu(np.full((queries, keys), -1e4, np.float32), 1)
        initializers.append(_init("mask", scores))
    inputs = [
        _value("q", (batch, queries, heads * d_k)),
        _value("k", (batch, keys, heads * d_k)),
        _value("v", (batch, keys, heads * d_v)),
    ]
    model = _model(nodes, inputs, [_value("y", (batch, queries, heads * d_v))], initializers)
    feeds = {
        "q": _random(batch, queries, heads * d_k, seed=1),
        "k": _random(batch, keys, heads * d_k, seed=2),
        "v": _random(batch, keys, heads * d_v, seed=3),
    }
    return model, feeds


def _sequence_first(positions, batch, heads, d):
    """torch.nn.MultiheadAttention's export: x [L, B, H d] reshaped to [L, B H, d], transposed
    to [B H, L, d] (k to [B H, d, L]), merged back through [L, B H, d] to [L, B, H d]."""
    nodes = [helper.make_node("Relu", [name], [f"{name}r"]) for name in ("q", "k", "v")]
    for name in ("q", "k", "v"):
        nodes.append(helper.make_node("Reshape", [f"{name}r", "view"], [f"{name}h"]))
        perm = [1, 2, 0] if name == "k" else [1, 0, 2]
        nodes.append(helper.make_node("Transpose", [f"{name}h"], [f"{name}t"], perm=perm))
    nodes += [
        helper.make_node("MatMul", ["qt", "kt"], ["scores"]),
        helper.make_node("Softmax", ["scores"], ["weights"], axis=-1),
        helper.make_node("MatMul", ["weights", "vt"], ["mixed"]),
        helper.make_node("Transpose", ["mixed"], ["merged"], perm=[1, 0, 2]),
        helper.make_node("Reshape", ["merged", "y_shape"], ["y"]),
    ]
    shape = (positions, batch, heads * d)
    initializers = [
        _shape("view", [positions, batch * heads, d]),
        _shape("y_shape", list(shape)),
    ]
    inputs = [_value(name, shape) for name in ("q", "k", "v")]
    model = _model(nodes, inputs, [_value("y", shape)], initializers)
    feeds = {name: _random(*shape, seed=seed) for seed, name in enumerate(("q", "k", "v"))}
    return model, feeds


def _attention_kernels(model) -> int:
    program = decode_image(encode_image(_compile(model).program))
    return sum(k.opcode == "attention" for pe in program.pes for k in pe.kernels)


@pytest.mark.parametrize(
    ("batch", "queries", "keys", "heads", "d_k", "d_v"),
    [
        (1, 16, 16, 4, 16, 16),  # the golden transformer's shape
        (2, 5, 9, 3, 4, 6),  # cross attention: other key count, other value width
        (1, 7, 7, 1, 8, 8),  # one head
    ],
)
def test_a_batch_first_attention_fuses_into_one_node(batch, queries, keys, heads, d_k, d_v):
    model, feeds = _batch_first(batch, queries, keys, heads, d_k, d_v)
    assert _ops(model) == ["activation"] * 3 + ["attention"]
    _check(model, feeds)


def test_a_sequence_first_attention_fuses_with_positions_on_axis_0() -> None:
    model, feeds = _sequence_first(positions=12, batch=3, heads=4, d=8)
    graph = load_onnx(model)
    PassManager(canonicalisation("float")).run(graph)
    (node,) = [n for n in graph.nodes if n.op == "attention"]
    assert node.attrs == {"heads": 4, "axis": 0}
    assert [n.op for n in graph.nodes] == ["activation"] * 3 + ["attention"]
    _check(model, feeds)


def test_a_large_attention_is_cut_into_slices_of_batch_entries_and_heads() -> None:
    # q, k, v of 4 x 64 x 128 float32 are 128 KiB each: more than one PE's SRAM
    model, feeds = _batch_first(4, 64, 64, 8, 16, 16)
    assert _attention_kernels(model) > 1
    _check(model, feeds)


@pytest.mark.parametrize(
    ("change", "why"),
    [
        ({"mask": True}, "a mask between the scores and the softmax"),
        ({"k_view": [1, 16, 16, 4], "k_perm": [0, 3, 2, 1]}, "k's heads interleaved, not q's"),
    ],
)
def test_what_is_not_attention_stays_as_it_is(change, why) -> None:
    model, feeds = _batch_first(1, 16, 16, 4, 16, 16, **change)
    ops = _ops(model)
    assert "attention" not in ops and ops.count("matmul") == 2, why
    _check(model, feeds)


def test_int8_keeps_the_matmuls() -> None:
    model, _ = _batch_first(1, 16, 16, 4, 16, 16)
    ops = _ops(model, mode="int8")
    assert "attention" not in ops and ops.count("matmul") == 2
