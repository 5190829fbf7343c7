"""Layer by layer: where the image's int8 codes and onnxruntime's plain QDQ model part.

For one model-zoo graph, compiled as `benchmarks.zoo_int8` compiles it, onnxruntime (graph
optimisations off) runs on one seeded input:

- the exact integer export (`--emit-qdq`); its codes `<v>/quantized` are the image's (its logits
  are checked to equal the interpreter's);
- the plain QDQ form (`integer_ops=False`: DequantizeLinear -> float op -> QuantizeLinear) with
  every `<v>/quantized` as an extra output: *chained*, each layer reads the plain model's own
  codes, so a difference carries into every later layer;
- the same plain form with every QuantizeLinear's result cut off and the codes it would feed read
  from the exact export instead: *local*, each layer computes from the image's own input codes,
  so its count is the differences that layer makes itself.

For each conv and dense layer it also evaluates the plain QDQ semantics in float64 from the
exact accumulator and the model's own float32 scales (s_x, s_w[c], bias scale s_b[c], s_y):
code = clip(round_half_even((s_x s_w acc + s_b q_b) / s_y) + z_y), the *exact* code, and counts
where the image and onnxruntime each differ from it, and how many of the image's fixed-point
roundings are exact ties (p mod 2^r = 2^(r-1), where rounding half away from zero and half to
even part). An element where onnxruntime differs from the exact code is onnxruntime's fp32
rounding (summation and the division by s_y); one where the image does is the image's.

Last, onnxruntime against itself: the plain form against the same model with the input
channels of every ungrouped Conv reversed (a Gather on the input, the weights' axis 1 reversed),
which is the same function with another fp32 summation order.

    python -m benchmarks.qdq_trace vgg19 [shufflenet ...]
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from backend.image import decode_image, encode_image  # noqa: E402
from backend.interpreter import Interpreter  # noqa: E402
from benchmarks.reordered import reversed_channels  # noqa: E402
from benchmarks.zoo_int8 import compile_zoo_int8  # noqa: E402
from benchmarks.zoo_models import seeded_input  # noqa: E402
from s2c.export import export_onnx  # noqa: E402
from s2c.validate import run_onnxruntime  # noqa: E402

CODES = "/quantized"  # suffix of a value's int8 codes in both export forms
LOCAL = "/local"  # suffix of a plain-form code computed from the image's input codes


@dataclass
class Layer:
    """The counts of one quantised value (elements; differences in LSB)."""

    name: str
    op: str
    elements: int
    chained: np.ndarray  # |plain - image| histogram: 1, 2, > 2 LSB
    local: int = 0
    image_vs_exact: int = -1  # -1: not a conv or dense layer
    ort_vs_exact: int = -1
    ties: int = -1


def _producers(model: onnx.ModelProto) -> dict[str, onnx.NodeProto]:
    return {out: node for node in model.graph.node for out in node.output}


def _initializers(model: onnx.ModelProto) -> dict[str, np.ndarray]:
    return {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}


def _code_names(model: onnx.ModelProto) -> list[str]:
    """Every computed `<v>/quantized`, in graph order (the graph input's codes excluded)."""
    inputs = {f"{i.name}{CODES}" for i in model.graph.input}
    names = [o for node in model.graph.node for o in node.output if o.endswith(CODES)]
    return [name for name in names if name not in inputs]


def _with_outputs(model: onnx.ModelProto, outputs: dict[str, int]) -> onnx.ModelProto:
    """A copy of `model` that also outputs each tensor name -> ONNX element type of `outputs`."""
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    copy.graph.output.extend(helper.make_tensor_value_info(n, t, None) for n, t in outputs.items())
    return copy


def _local_form(plain: onnx.ModelProto, names: list[str]) -> onnx.ModelProto:
    """The plain model with each code in `names` read from a graph input of that name, and the
    QuantizeLinear that made it writing `<code>/local` (an output) instead."""
    local = onnx.ModelProto()
    local.CopyFrom(plain)
    wanted = set(names)
    for node in local.graph.node:
        if node.op_type == "QuantizeLinear" and node.output[0] in wanted:
            name = node.output[0]
            node.output[0] = name + LOCAL
            local.graph.input.append(helper.make_tensor_value_info(name, TensorProto.INT8, None))
            local.graph.output.append(
                helper.make_tensor_value_info(name + LOCAL, TensorProto.INT8, None)
            )
    return local


def _accumulator(exact: onnx.ModelProto, code: str) -> tuple[str, str, str] | None:
    """(accumulator, product p, divisor d) names behind an integer conv/dense code, else None."""
    producers = _producers(exact)
    node = producers.get(code)
    chain = []
    while node is not None and node.op_type not in ("ConvInteger", "MatMulInteger"):
        chain.append(node)
        if node.op_type in ("Gather", "QuantizeLinear") or not node.input:
            return None
        if len(chain) > 1 and node.output[0].endswith(CODES):
            return None  # reached the codes of the layer before: not a conv or dense
        node = producers.get(node.input[0])
    divides = [n for n in chain if n.op_type == "Div"]
    if node is None or not divides:
        return None
    divide = divides[0]
    absolute = producers[divide.input[0]]
    absolute = producers[absolute.input[0]]  # Add(|p|, d/2) <- Abs(p)
    return node.output[0], absolute.input[0], divide.input[1]


def _plain_layer(plain: onnx.ModelProto, code: str) -> tuple[onnx.NodeProto, onnx.NodeProto]:
    """(the Conv/Gemm/MatMul, the QuantizeLinear) writing `code` in the plain form."""
    producers = _producers(plain)
    quantize = producers[code]
    node = producers[quantize.input[0]]
    while node.op_type not in ("Conv", "Gemm", "MatMul"):
        node = producers[node.input[0]]
    return node, quantize


def _exact_codes(plain, code, accumulator, clip_range) -> np.ndarray:
    """round_half_even((s_x s_w acc + s_b q_b) / s_y) + z_y, clipped, in float64."""
    arrays = _initializers(plain)
    producers = _producers(plain)
    product, quantize = _plain_layer(plain, code)
    dequantizers = [producers[name] for name in product.input]
    s_x, s_w = (arrays[d.input[1]].astype(np.float64) for d in dequantizers[:2])
    channel = [1] * accumulator.ndim
    channel[1 if product.op_type == "Conv" else -1] = -1
    total = accumulator.astype(np.float64) * s_x * s_w.reshape(channel)
    if len(dequantizers) > 2:
        q_b, s_b = (arrays[name].astype(np.float64) for name in dequantizers[2].input[:2])
        total += (q_b * s_b).reshape(channel)
    s_y = np.float64(arrays[quantize.input[1]])
    z_y = int(arrays[quantize.input[2]])
    return np.clip(np.rint(total / s_y) + z_y, *clip_range)


def trace(name: str) -> list[Layer]:
    model, result = compile_zoo_int8(name)
    x = seeded_input(model, seed=7)
    exact, plain = export_onnx(result.graph), export_onnx(result.graph, integer_ops=False)
    exact_names = set(_code_names(exact))
    names = [n for n in _code_names(plain) if n in exact_names]
    accumulators = {n: a for n in names if (a := _accumulator(exact, n)) is not None}
    outputs = dict.fromkeys(names, TensorProto.INT8)
    for accumulator, product, _ in accumulators.values():
        outputs.update({accumulator: TensorProto.INT32, product: TensorProto.INT64})
    image = run_onnxruntime(_with_outputs(exact, outputs), x)
    _check_logits(result, x, image)
    chained = run_onnxruntime(_with_outputs(plain, dict.fromkeys(names, TensorProto.INT8)), x)
    local = run_onnxruntime(_local_form(plain, names), {**x, **{n: image[n] for n in names}})
    arrays = _initializers(exact)
    layers = []
    for code in names:
        ours = image[code].astype(np.int64)
        histogram = _histogram(np.abs(chained[code].astype(np.int64) - ours))
        theirs = local[code + LOCAL].astype(np.int64)
        layer = Layer(
            code, _plain_op(plain, code), ours.size, histogram, int((theirs != ours).sum())
        )
        if code in accumulators:
            accumulator, product, divisor = accumulators[code]
            clip_range = _clip_range(exact, code, arrays)
            reference = _exact_codes(plain, code, image[accumulator], clip_range)
            layer.image_vs_exact = int((reference != ours).sum())
            layer.ort_vs_exact = int((reference != theirs).sum())
            d = np.broadcast_to(arrays[divisor], image[product].shape)
            layer.ties = int((np.abs(image[product]) % d == d // 2).sum())
        layers.append(layer)
    reordered = run_onnxruntime(reversed_channels(plain), x)
    original = run_onnxruntime(plain, x)
    for io in result.program.outputs:
        steps = np.rint(np.abs(reordered[io.name] - original[io.name]) / io.quant[0])
        layers.append(Layer(f"{io.name} (self)", "reversed sums", steps.size, _histogram(steps)))
    return layers


def _histogram(steps: np.ndarray) -> np.ndarray:
    """How many differences of 1, 2 and more than 2 LSB."""
    return np.array([(steps == 1).sum(), (steps == 2).sum(), (steps > 2).sum()])


def _plain_op(plain: onnx.ModelProto, code: str) -> str:
    """The op writing `code` in the plain form; a fused Relu/Clip is named by its product."""
    producers = _producers(plain)
    node = producers[producers[code].input[0]]
    inner = producers.get(node.input[0]) if node.op_type in ("Relu", "Clip") else None
    if inner is not None and inner.op_type != "DequantizeLinear":
        return inner.op_type
    return node.op_type


def _clip_range(exact: onnx.ModelProto, code: str, arrays: dict) -> tuple[int, int]:
    producers = _producers(exact)
    clip = producers[producers[code].input[0]]
    return int(arrays[clip.input[1]]), int(arrays[clip.input[2]])


def _check_logits(result, x: dict, image: dict) -> None:
    """The exact export's logits equal the interpreter's (so its codes stand for the image's)."""
    interpreter = Interpreter(decode_image(encode_image(result.program)))
    outputs, _ = interpreter.run({k: v[None] for k, v in x.items()})
    for io in result.program.outputs:
        if not np.array_equal(outputs[io.name][0], image[io.name]):
            raise SystemExit(f"{io.name}: the exact export differs from the interpreter")


def report(name: str, layers: list[Layer]) -> None:
    print(
        f"{name}: chained = plain QDQ model end to end; local = each layer from the image's codes"
    )
    print(
        f"{'value':24s} {'op':16s} {'elements':>9s}  chained 1/2/>2 LSB   local  img!=exact"
        f"  ort!=exact  ties"
    )
    for layer in layers:
        one, two, more = layer.chained
        extra = ""
        if layer.ties >= 0:
            extra = f" {layer.image_vs_exact:10d} {layer.ort_vs_exact:11d} {layer.ties:5d}"
        print(
            f"{layer.name:24s} {layer.op:16s} {layer.elements:9d} {one:8d} {two:6d} {more:5d}"
            f" {layer.local:7d}{extra}"
        )
    local = sum(layer.local for layer in layers)
    total = sum(layer.elements for layer in layers if layer.op != "reversed sums")
    print(f"local differences: {local} of {total} codes ({1e6 * local / total:.1f} ppm)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="+")
    for name in parser.parse_args().names:
        report(name, trace(name))


if __name__ == "__main__":
    main()
