"""Builders and loader for the golden cases.

Every case is a small ONNX model (opset 17, batch 1) built with `onnx.helper`. Weights are
drawn from `np.random.default_rng(seed)` in graph order (He-normal for Conv/Gemm weights);
inputs come from a separate stream, `np.random.default_rng([seed, 1])`, so the two never
interfere. `golden/make_golden.py` runs each model in onnxruntime and writes, per case,
`golden/<case>/{model.onnx, inputs.npz, outputs.npz, case.json}`.

Cases whose weights are too large to store (`multi_chip`) are written with those initializers
marked as external data that is never stored; `case.json` records `"weights": "seeded"` and a
SHA-256 per such initializer. `load_case` regenerates the data from the seed and checks it.

Public API:
    CASES                           names of all cases, in a fixed order
    Tolerances(rtol, atol, why)     float-mode comparison tolerances of a case
    case_dir(name)                  directory of a case's files
    case_tolerances(name)           Tolerances of a case (from the builder table)
    case_spec_info(name)            (description, seed, seeded_weights) of a case
    build_case(name)                (full ModelProto, inputs) regenerated from the seed
    build_model(name)               full ModelProto regenerated from the seed
    stored_form(name, model)        the ModelProto as written to model.onnx
    seeded_digests(name, model)     {initializer name: sha256} of the data not stored
    load_case(name)                 (ModelProto, inputs, expected outputs, Tolerances)
    run_onnxruntime(model, inputs)  outputs of onnxruntime, graph optimisations disabled
    run_float64_reference(model, inputs)  outputs of onnx.reference evaluated in float64
"""

from __future__ import annotations

import copy
import hashlib
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper
from onnx.external_data_helper import set_external_data
from onnx.reference import ReferenceEvaluator

GOLDEN_DIR = Path(__file__).resolve().parent
OPSET = 17
IR_VERSION = 8  # the IR version that introduced opset 17 support; fixed for stable bytes
PRODUCER = "s2c-golden"
SEEDED_MIN_BYTES = 1 << 20  # initializers at least this large are regenerated, not stored
SEEDED_LOCATION = "seeded_weights.data"  # external-data location that is never written

Arrays = dict[str, np.ndarray]


class Tolerances(NamedTuple):
    """Float-mode tolerances for `np.allclose(actual, expected, rtol, atol)`."""

    rtol: float
    atol: float
    why: str


# --------------------------------------------------------------------------- graph building


class _Net:
    """Accumulates graph inputs, nodes, initializers and outputs of one model."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[TensorProto] = []
        self.inputs: list[onnx.ValueInfoProto] = []
        self.outputs: list[onnx.ValueInfoProto] = []
        self.input_scales: dict[str, float] = {}
        self._counts: dict[str, int] = {}

    def fresh(self, prefix: str) -> str:
        index = self._counts.get(prefix, 0)
        self._counts[prefix] = index + 1
        return f"{prefix}{index}"

    def input(self, name: str, shape: Sequence[int], scale: float = 1.0) -> str:
        self.inputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, list(shape)))
        self.input_scales[name] = scale
        return name

    def output(self, name: str, shape: Sequence[int]) -> None:
        self.outputs.append(helper.make_tensor_value_info(name, TensorProto.FLOAT, list(shape)))

    def const(self, name: str, array: np.ndarray) -> str:
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(array), name))
        return name

    def op(self, op_type: str, inputs: Sequence[str], out: str | None = None, **attrs) -> str:
        name = self.fresh(op_type.lower())
        out = out or name
        self.nodes.append(helper.make_node(op_type, list(inputs), [out], name=name, **attrs))
        return out

    def he(self, shape: Sequence[int], fan_in: int) -> np.ndarray:
        std = math.sqrt(2.0 / fan_in)
        return (self.rng.standard_normal(tuple(shape)) * std).astype(np.float32)

    def small(self, shape: Sequence[int], std: float = 0.1) -> np.ndarray:
        return (self.rng.standard_normal(tuple(shape)) * std).astype(np.float32)

    def conv(
        self,
        x: str,
        cin: int,
        cout: int,
        kernel: Sequence[int],
        *,
        group: int = 1,
        bias: bool = True,
        **attrs,
    ) -> str:
        name = self.fresh("conv")
        fan_in = cin // group * math.prod(kernel)
        inputs = [x, self.const(f"{name}.weight", self.he((cout, cin // group, *kernel), fan_in))]
        if bias:
            inputs.append(self.const(f"{name}.bias", self.small((cout,))))
        if group != 1:
            attrs["group"] = group
        node = helper.make_node(
            "Conv", inputs, [name], name=name, kernel_shape=list(kernel), **attrs
        )
        self.nodes.append(node)
        return name

    def gemm(
        self,
        x: str,
        nin: int,
        nout: int,
        *,
        out: str | None = None,
        trans_b: bool = False,
        alpha: float = 1.0,
        beta: float = 1.0,
    ) -> str:
        name = self.fresh("gemm")
        shape = (nout, nin) if trans_b else (nin, nout)
        weight = (self.he(shape, nin) / np.float32(alpha)).astype(np.float32)
        bias = (self.small((nout,)) / np.float32(beta)).astype(np.float32)
        attrs = {"transB": 1} if trans_b else {}
        if alpha != 1.0:
            attrs["alpha"] = alpha
        if beta != 1.0:
            attrs["beta"] = beta
        inputs = [x, self.const(f"{name}.weight", weight), self.const(f"{name}.bias", bias)]
        self.nodes.append(helper.make_node("Gemm", inputs, [out or name], name=name, **attrs))
        return out or name

    def batchnorm(self, x: str, channels: int, epsilon: float = 1e-5) -> str:
        name = self.fresh("bn")
        params = {
            "scale": self.rng.uniform(0.5, 1.5, channels),
            "bias": self.rng.normal(0.0, 0.2, channels),
            "mean": self.rng.normal(0.0, 0.5, channels),
            "var": self.rng.uniform(0.5, 2.0, channels),
        }
        inputs = [x] + [self.const(f"{name}.{k}", v.astype(np.float32)) for k, v in params.items()]
        node = helper.make_node("BatchNormalization", inputs, [name], name=name, epsilon=epsilon)
        self.nodes.append(node)
        return name


# --------------------------------------------------------------------------- the cases


def _conv_pool_dense(net: _Net) -> None:
    x = net.input("input", [1, 3, 16, 16])
    h = net.op("Relu", [net.conv(x, 3, 8, (3, 3), pads=[1, 1, 1, 1])])
    h = net.op("MaxPool", [h], kernel_shape=[2, 2], strides=[2, 2])
    h = net.op("Relu", [net.conv(h, 8, 16, (3, 3), strides=[2, 2])])  # 8x8 -> 3x3
    h = net.op("Flatten", [h])
    net.output(net.gemm(h, 16 * 3 * 3, 10, out="logits"), [1, 10])


def _residual_add(net: _Net) -> None:
    x = net.input("input", [1, 8, 12, 12])
    h = net.conv(x, 8, 8, (3, 3), bias=False, pads=[1, 1, 1, 1])
    h = net.op("Relu", [net.batchnorm(h, 8)])
    h = net.conv(h, 8, 8, (3, 3), bias=False, pads=[1, 1, 1, 1])
    h = net.op("Add", [net.batchnorm(h, 8, epsilon=1e-3), x])
    h = net.op("GlobalAveragePool", [net.op("Relu", [h])])
    h = net.op("Flatten", [h])
    net.output(net.gemm(h, 8, 10, out="logits"), [1, 10])


def _concat_branches(net: _Net) -> None:
    x = net.input("input", [1, 8, 12, 12])
    b1 = net.conv(x, 8, 4, (1, 1))
    b2 = net.conv(x, 8, 6, (3, 3), pads=[1, 1, 1, 1])
    b3 = net.op("MaxPool", [x], kernel_shape=[3, 3], strides=[1, 1], pads=[1, 1, 1, 1])
    b3 = net.conv(b3, 8, 4, (1, 1))
    h = net.op("Concat", [b1, b2, b3], axis=1)  # 14 channels
    h = net.op("AveragePool", [h], kernel_shape=[2, 2], strides=[2, 2])
    h = net.op("Flatten", [h])
    net.output(net.gemm(h, 14 * 6 * 6, 10, out="logits"), [1, 10])


def _depthwise_separable(net: _Net) -> None:
    # input scale 3 so that Clip's upper bound 6 is reached by some activations
    x = net.input("input", [1, 8, 16, 16], scale=3.0)
    h = net.conv(x, 8, 8, (3, 3), group=8, strides=[2, 2], pads=[1, 1, 1, 1])
    lo = net.const("clip.min", np.array(0.0, np.float32))
    hi = net.const("clip.max", np.array(6.0, np.float32))
    h = net.op("Clip", [h, lo, hi])
    h = net.op("HardSwish", [net.conv(h, 8, 16, (1, 1))])
    h = net.op("Flatten", [net.op("GlobalAveragePool", [h])])
    net.output(net.gemm(h, 16, 10, out="logits"), [1, 10])


def _mlp(net: _Net) -> None:
    x = net.input("input", [1, 64])
    h = net.op("Relu", [net.gemm(x, 64, 128, trans_b=True)])
    h = net.op("Relu", [net.gemm(h, 128, 64, alpha=0.5, beta=2.0)])
    net.output(net.gemm(h, 64, 10, out="logits"), [1, 10])


def _multi_chip(net: _Net) -> None:
    x = net.input("input", [1, 1024])
    h = net.op("Relu", [net.gemm(x, 1024, 2048, trans_b=True)])
    h = net.op("Relu", [net.gemm(h, 2048, 2048, trans_b=True)])
    net.output(net.gemm(h, 2048, 10, out="logits", trans_b=True), [1, 10])


def _conv1d_leaky(net: _Net) -> None:
    x = net.input("input", [1, 4, 32])
    h = net.conv(x, 4, 8, (5,), dilations=[2], pads=[4, 4])  # 32 -> 32
    h = net.op("LeakyRelu", [h], alpha=0.1)
    h = net.op(  # 32 -> 16
        "AveragePool", [h], kernel_shape=[3], strides=[2], pads=[1, 1], count_include_pad=1
    )
    h = net.conv(h, 8, 16, (3,), strides=[2], auto_pad="SAME_UPPER")  # 16 -> 8
    h = net.op("Flatten", [net.op("Sigmoid", [h])])
    net.output(net.gemm(h, 16 * 8, 10, out="logits"), [1, 10])


def _pool_variants(net: _Net) -> None:
    x = net.input("input", [1, 4, 15, 15])
    # pads are [h_begin, w_begin, h_end, w_end]; with one-sided padding ceil_mode adds a
    # last window that overhangs the padded input (floor would give 7x7, ceil gives 8x8)
    avg = net.op(
        "AveragePool",
        [x],
        kernel_shape=[3, 3],
        strides=[2, 2],
        pads=[1, 1, 0, 0],
        ceil_mode=1,
        count_include_pad=0,
    )
    mx = net.op("MaxPool", [x], kernel_shape=[3, 3], strides=[2, 2], pads=[0, 0, 1, 1], ceil_mode=1)
    h = net.op("Concat", [avg, mx], axis=1)
    net.output(net.op("Softmax", [h], out="probs", axis=1), [1, 8, 8, 8])
    t = net.op("Transpose", [x], perm=[0, 2, 3, 1])  # [1, 15, 15, 4]
    shape = net.const("reshape.shape", np.array([0, -1, 4], np.int64))
    t = net.op("Reshape", [t, shape])  # [1, 225, 4]
    net.output(net.op("Tanh", [t], out="tanh"), [1, 225, 4])


def _layer_norm_decomposed(net: _Net, x: str, width: int) -> str:
    """ReduceMean, Sub, Pow 2, ReduceMean, Add eps, Sqrt, Div, Mul gamma, Add beta (last axis)."""
    mean = net.op("ReduceMean", [x], axes=[-1])
    centred = net.op("Sub", [x, mean])
    square = net.op("Pow", [centred, net.const("ln.two", np.array(2.0, np.float32))])
    var = net.op("ReduceMean", [square], axes=[-1])
    eps = net.const("ln.eps", np.array(1e-5, np.float32))
    normalised = net.op("Div", [centred, net.op("Sqrt", [net.op("Add", [var, eps])])])
    gamma = net.const("ln.gamma", (1 + net.small((width,))).astype(np.float32))
    return net.op(
        "Add", [net.op("Mul", [normalised, gamma]), net.const("ln.beta", net.small((width,)))]
    )


def _sequence_block(net: _Net) -> None:
    # x [1, 8, 16] -> MatMul + bias -> decomposed layer norm -> Gelu as exporters write it at
    # opset 17 (erf form on one half of the features, tanh approximation on the other) ->
    # Where with a constant mask (attention-style masking) -> plus the Expand of the mean over
    # positions.
    x = net.input("input", [1, 8, 16])
    weight = net.const("proj.weight", net.he((16, 16), 16))
    h = net.op("Add", [net.op("MatMul", [x, weight]), net.const("proj.bias", net.small((16,)))])
    h = _layer_norm_decomposed(net, h, 16)
    half = net.const("gelu.half", np.array(0.5, np.float32))
    one = net.const("gelu.one", np.array(1.0, np.float32))
    erf = net.op(
        "Erf", [net.op("Div", [h, net.const("gelu.sqrt2", np.array(1.4142135, np.float32))])]
    )
    exact = net.op("Mul", [net.op("Mul", [h, net.op("Add", [erf, one])]), half])
    cube = net.op("Pow", [h, net.const("gelu.three", np.array(3.0, np.float32))])
    inner = net.op(
        "Add", [h, net.op("Mul", [cube, net.const("gelu.c", np.array(0.044715, np.float32))])]
    )
    scaled = net.op("Mul", [inner, net.const("gelu.k", np.array(0.7978846, np.float32))])
    approximate = net.op(
        "Mul", [net.op("Mul", [h, net.op("Add", [net.op("Tanh", [scaled]), one])]), half]
    )
    mixed = net.op(
        "Concat",
        [
            net.op(
                "Slice",
                [
                    exact,
                    *(
                        net.const(f"first.{k}", np.array(v, np.int64))
                        for k, v in (("starts", [0]), ("ends", [8]), ("axes", [2]))
                    ),
                ],
            ),
            net.op(
                "Slice",
                [
                    approximate,
                    *(
                        net.const(f"second.{k}", np.array(v, np.int64))
                        for k, v in (("starts", [8]), ("ends", [16]), ("axes", [2]))
                    ),
                ],
            ),
        ],
        axis=2,
    )
    mask = net.const("mask", np.tril(np.ones((8, 16), dtype=bool), k=4))
    masked = net.op("Where", [mask, mixed, net.const("mask.fill", np.array(-1.0, np.float32))])
    pooled = net.op("ReduceMean", [masked], axes=[1])  # [1, 1, 16]
    spread = net.op("Expand", [pooled, net.const("expand.shape", np.array([1, 8, 16], np.int64))])
    net.output(net.op("Add", [masked, spread], out="output"), [1, 8, 16])


# --------------------------------------------------------------------------- case table

_WHY_SMALL = (
    "float mode computes in fp32 like onnxruntime but may sum in another order, without FMA "
    "and with its own exp/tanh; an fp32 evaluation of this graph (dot products of at most "
    "{k} terms, outputs of order 1) differs from float64 by about 1e-6, so rtol 1e-4 and "
    "atol 1e-5 leave a 10x margin over that (checked when the files are made) while a real "
    "fault such as a wrong pad, layout or bias shows up far above 1e-3"
)
_WHY_BIG = (
    "dot products of up to 2048 terms, possibly split over several chips whose partial sums "
    "are added in another order; fp32 rounding grows like sqrt(K)*eps*sum|x*w|, measured "
    "about 1e-6 against float64 for one order and larger for others, so rtol and atol "
    "1e-4; a real fault (a missing or duplicated partial sum) is of order 1e-1"
)


def _tol(k: int) -> Tolerances:
    return Tolerances(rtol=1e-4, atol=1e-5, why=_WHY_SMALL.format(k=k))


@dataclass(frozen=True)
class _Spec:
    build: Callable[[_Net], None]
    description: str
    seed: int
    tolerances: Tolerances
    seeded_weights: bool = False


_SPECS: dict[str, _Spec] = {
    "conv_pool_dense": _Spec(
        _conv_pool_dense,
        "Conv3x3(8)+bias, Relu, MaxPool2x2, Conv3x3/s2(16), Relu, Flatten, Gemm(10)",
        101,
        _tol(144),
    ),
    "residual_add": _Spec(
        _residual_add,
        "Conv-BN-Relu-Conv-BN plus identity skip (Add), Relu, GlobalAveragePool, Gemm(10)",
        102,
        _tol(144),
    ),
    "concat_branches": _Spec(
        _concat_branches,
        "inception-like 1x1 / 3x3 / MaxPool+1x1 branches, Concat(axis 1), AveragePool, Gemm",
        103,
        _tol(504),
    ),
    "depthwise_separable": _Spec(
        _depthwise_separable,
        "depthwise Conv3x3/s2 (group 8), Clip(0, 6) via inputs, 1x1 Conv(16), HardSwish, "
        "GlobalAveragePool, Gemm",
        104,
        _tol(64),
    ),
    "mlp": _Spec(
        _mlp,
        "MLP 64-128-64-10 with Relu; Gemm transB=1 on layer 1, alpha=0.5 beta=2 on layer 2",
        105,
        _tol(128),
    ),
    "multi_chip": _Spec(
        _multi_chip,
        "MLP 1024-2048-2048-10 with Relu, ~24 MiB of fp32 weights (more than one chip holds)",
        106,
        Tolerances(rtol=1e-4, atol=1e-4, why=_WHY_BIG),
        seeded_weights=True,
    ),
    "conv1d_leaky": _Spec(
        _conv1d_leaky,
        "Conv1d k5 dilation 2, LeakyRelu(0.1), AveragePool k3/s2 count_include_pad=1, "
        "Conv1d k3/s2 SAME_UPPER, Sigmoid, Gemm",
        107,
        _tol(128),
    ),
    "pool_variants": _Spec(
        _pool_variants,
        "AveragePool 3x3/s2 begin pads 1 count_include_pad=0 and MaxPool 3x3/s2 end pads 1, "
        "both ceil_mode=1 with an overhanging last window, Concat, Softmax(axis 1); "
        "second output Tanh(Reshape(Transpose(input)))",
        108,
        _tol(9),
    ),
    "sequence_block": _Spec(
        _sequence_block,
        "MatMul+bias, decomposed layer norm (ReduceMean/Sub/Pow/Sqrt/Div/Mul/Add), Gelu in erf "
        "and tanh forms, Where with a constant mask, Expand of a ReduceMean, Add",
        109,
        _tol(16),
    ),
}

CASES: tuple[str, ...] = tuple(_SPECS)


def _spec(name: str) -> _Spec:
    if name not in _SPECS:
        raise KeyError(f"unknown golden case {name!r}; known: {', '.join(CASES)}")
    return _SPECS[name]


def case_dir(name: str) -> Path:
    return GOLDEN_DIR / name


def case_tolerances(name: str) -> Tolerances:
    return _spec(name).tolerances


def case_spec_info(name: str) -> tuple[str, int, bool]:
    """(description, seed, seeded_weights) of a case."""
    spec = _spec(name)
    return spec.description, spec.seed, spec.seeded_weights


# --------------------------------------------------------------------------- building


def _assemble(name: str, net: _Net) -> onnx.ModelProto:
    graph = helper.make_graph(
        net.nodes,
        name,
        net.inputs,
        net.outputs,
        net.initializers,
        doc_string=_spec(name).description,
    )
    return helper.make_model(
        graph,
        opset_imports=[helper.make_opsetid("", OPSET)],
        ir_version=IR_VERSION,
        producer_name=PRODUCER,
    )


def _make_inputs(net: _Net, seed: int) -> Arrays:
    rng = np.random.default_rng([seed, 1])
    arrays = {}
    for value in net.inputs:
        shape = [d.dim_value for d in value.type.tensor_type.shape.dim]
        scale = net.input_scales[value.name]
        arrays[value.name] = (rng.standard_normal(shape) * scale).astype(np.float32)
    return arrays


def build_case(name: str) -> tuple[onnx.ModelProto, Arrays]:
    """The full model (all weights inline) and its inputs, regenerated from the seed."""
    spec = _spec(name)
    net = _Net(np.random.default_rng(spec.seed))
    spec.build(net)
    return _assemble(name, net), _make_inputs(net, spec.seed)


def build_model(name: str) -> onnx.ModelProto:
    return build_case(name)[0]


def _seeded_tensors(name: str, model: onnx.ModelProto) -> list[TensorProto]:
    if not _spec(name).seeded_weights:
        return []
    return [t for t in model.graph.initializer if len(t.raw_data) >= SEEDED_MIN_BYTES]


def seeded_digests(name: str, model: onnx.ModelProto) -> dict[str, str]:
    """SHA-256 of the raw data of each initializer that is regenerated instead of stored."""
    return {t.name: hashlib.sha256(t.raw_data).hexdigest() for t in _seeded_tensors(name, model)}


def stored_form(name: str, model: onnx.ModelProto) -> onnx.ModelProto:
    """The model as stored: large seeded initializers become never-written external data."""
    stored = copy.deepcopy(model)
    offset = 0
    for tensor in _seeded_tensors(name, stored):
        length = len(tensor.raw_data)
        set_external_data(tensor, SEEDED_LOCATION, offset=offset, length=length)
        tensor.ClearField("raw_data")
        offset += length
    return stored


# --------------------------------------------------------------------------- loading


def _load_npz(path: Path) -> Arrays:
    with np.load(path, allow_pickle=False) as data:
        return {key: data[key] for key in data.files}


def _fill_seeded(name: str, stored: onnx.ModelProto, digests: dict[str, str]) -> None:
    rebuilt = {t.name: t for t in build_model(name).graph.initializer}
    for tensor in stored.graph.initializer:
        if tensor.data_location != TensorProto.EXTERNAL:
            continue
        data = rebuilt[tensor.name].raw_data
        if hashlib.sha256(data).hexdigest() != digests.get(tensor.name):
            raise ValueError(
                f"{name}: regenerated {tensor.name} does not match the digest in case.json "
                "(numpy's random stream changed?); re-run golden/make_golden.py"
            )
        tensor.raw_data = data
        del tensor.external_data[:]
        tensor.ClearField("data_location")


def load_case(name: str) -> tuple[onnx.ModelProto, Arrays, Arrays, Tolerances]:
    """(model with all weights, inputs, onnxruntime outputs, float-mode tolerances)."""
    _spec(name)
    directory = case_dir(name)
    meta = json.loads((directory / "case.json").read_text())
    model = onnx.load(directory / "model.onnx", load_external_data=False)
    if meta["weights"] == "seeded":
        _fill_seeded(name, model, meta["seeded_initializers"])
    tol = meta["tolerances"]["float"]
    tolerances = Tolerances(rtol=tol["rtol"], atol=tol["atol"], why=tol["why"])
    inputs = _load_npz(directory / "inputs.npz")
    return model, inputs, _load_npz(directory / "outputs.npz"), tolerances


def load_int8_outputs(name: str) -> Arrays:
    """The stored int8 expectation of a case (onnxruntime on its QDQ export; make_golden.py)."""
    _spec(name)
    return _load_npz(case_dir(name) / "outputs_int8.npz")


# --------------------------------------------------------------------------- evaluation


def run_onnxruntime(model: onnx.ModelProto, inputs: Arrays) -> Arrays:
    """Outputs of onnxruntime's CPU provider evaluating the graph as written."""
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(
        model.SerializeToString(), options, providers=["CPUExecutionProvider"]
    )
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, inputs), strict=True))


def _as_float64(model: onnx.ModelProto) -> onnx.ModelProto:
    wide = copy.deepcopy(model)
    graph = wide.graph
    for i, tensor in enumerate(graph.initializer):
        if tensor.data_type == TensorProto.FLOAT:
            array = numpy_helper.to_array(tensor).astype(np.float64)
            graph.initializer[i].CopyFrom(numpy_helper.from_array(array, tensor.name))
    for value in [*graph.input, *graph.output, *graph.value_info]:
        if value.type.tensor_type.elem_type == TensorProto.FLOAT:
            value.type.tensor_type.elem_type = TensorProto.DOUBLE
    for node in graph.node:  # Constant nodes (exporters' zeros states, ...)
        for attribute in node.attribute:
            if attribute.name == "value" and attribute.t.data_type == TensorProto.FLOAT:
                array = numpy_helper.to_array(attribute.t).astype(np.float64)
                attribute.t.CopyFrom(numpy_helper.from_array(array, attribute.t.name))
    return wide


def run_float64_reference(model: onnx.ModelProto, inputs: Arrays) -> Arrays:
    """Outputs of onnx's numpy reference evaluator on a float64 copy of the model."""
    evaluator = ReferenceEvaluator(_as_float64(model))
    wide = {k: v.astype(np.float64) for k, v in inputs.items()}
    names = [o.name for o in model.graph.output]
    return dict(zip(names, evaluator.run(names, wide), strict=True))
