"""Reading an ONNX model and checking that s2c may compile it.

In order: parse the protobuf (without external data); check that every external-data location
stays inside the model's folder and names an existing file; check the default-domain opset against
[MIN_OPSET, MAX_OPSET]; run the ONNX checker; finally load the external data. Every failure is an
`InputError` of one line that names the file, tensor or check that failed.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import onnx
from google.protobuf.message import DecodeError
from onnx import external_data_helper

from ir.errors import InputError

MIN_OPSET = 6
MAX_OPSET = 21
DEFAULT_DOMAINS = ("", "ai.onnx")


def load_model_proto(path: str | Path) -> onnx.ModelProto:
    """Read, check and return the model at `path`, its external data loaded.

    Raises:
        InputError: the file is missing, unreadable, not an ONNX model, truncated, refers to
            external data outside its folder or missing, has an unsupported opset, or fails the
            ONNX checker.
    """
    path = Path(path)
    model = _parse(path)
    check_external_data(model, path.parent)
    check_opset(model)
    _run_checker(str(path), path)
    _load_external_data(model, path)
    return model


def check_model_proto(model: onnx.ModelProto) -> None:
    """The checks of `load_model_proto` for a model already in memory (no external data)."""
    for tensor in _tensors(model.graph):
        if external_data_helper.uses_external_data(tensor):
            raise InputError(
                f"tensor '{tensor.name}' keeps its data in an external file; "
                "pass the model's path so that s2c can find it"
            )
    check_opset(model)
    _run_checker(model, None)


def default_opset(model: onnx.ModelProto) -> int:
    """The version of the default ONNX domain the model imports."""
    for entry in model.opset_import:
        if entry.domain in DEFAULT_DOMAINS:
            return int(entry.version)
    raise InputError("the model imports no opset of the default ONNX domain")


def check_opset(model: onnx.ModelProto) -> None:
    """Raise InputError unless the default-domain opset is in [MIN_OPSET, MAX_OPSET]."""
    opset = default_opset(model)
    if opset > MAX_OPSET:
        raise InputError(f"opset {opset} is newer than the supported {MAX_OPSET}")
    if opset < MIN_OPSET:
        raise InputError(f"opset {opset} is older than the supported minimum {MIN_OPSET}")


def check_text(model: onnx.ModelProto) -> None:
    """Every name s2c reads is valid UTF-8 (protobuf hands invalid text over as bytes).

    Raises:
        InputError: naming the graph field, node or value whose name is not UTF-8.
    """
    graph = model.graph
    named: list[tuple[str, str | bytes]] = [("the graph name", graph.name)]
    for kind, values in (
        ("graph input", graph.input),
        ("graph output", graph.output),
        ("value_info", graph.value_info),
        ("initializer", graph.initializer),
    ):
        named += [(f"{kind} {index}", value.name) for index, value in enumerate(values)]
    named += [
        (f"sparse initializer {index}", sparse.values.name)
        for index, sparse in enumerate(graph.sparse_initializer)
    ]
    for index, node in enumerate(graph.node):
        where = f"node {index}"
        named += [(f"{where} name", node.name), (f"{where} op_type", node.op_type)]
        named.append((f"{where} domain", node.domain))
        named += [(f"{where} input {i}", name) for i, name in enumerate(node.input)]
        named += [(f"{where} output {i}", name) for i, name in enumerate(node.output)]
        named += [(f"{where} attribute {i}", a.name) for i, a in enumerate(node.attribute)]
    for where, text in named:
        if isinstance(text, bytes):
            raise InputError(f"{where}: the name {text!r} is not valid UTF-8 text")


def check_external_data(model: onnx.ModelProto, folder: Path) -> None:
    """Every external-data location must resolve to an existing file inside `folder`."""
    base = folder.resolve()
    for tensor in _tensors(model.graph):
        if not external_data_helper.uses_external_data(tensor):
            continue
        try:
            location = external_data_helper.ExternalDataInfo(tensor).location
        except (ValueError, TypeError) as exc:
            raise InputError(f"tensor '{tensor.name}' has malformed external data: {exc}") from None
        where = f"tensor '{tensor.name}' keeps its data at '{location}'"
        if not location or os.path.isabs(location) or Path(location).is_absolute():
            raise InputError(f"{where}: it must be a relative path inside the model's folder")
        target = (base / location).resolve()
        if not target.is_relative_to(base):
            raise InputError(f"{where}, outside the model's folder {base}")
        if not target.is_file():
            raise InputError(f"{where}: the file {target} does not exist")


def _parse(path: Path) -> onnx.ModelProto:
    try:
        model = onnx.load(str(path), load_external_data=False)
    except FileNotFoundError:
        raise InputError(f"cannot read '{path}': no such file") from None
    except IsADirectoryError:
        raise InputError(f"cannot read '{path}': it is a directory") from None
    except OSError as exc:
        raise InputError(f"cannot read '{path}': {exc.strerror or exc}") from None
    except (DecodeError, ValueError, RuntimeError):
        raise InputError(
            f"cannot parse '{path}': not an ONNX protobuf file, or truncated"
        ) from None
    if not model.HasField("graph") or model.ir_version <= 0:
        raise InputError(f"'{path}' is not an ONNX model (no graph or IR version)")
    return model


def _run_checker(model: onnx.ModelProto | str, path: Path | None) -> None:
    try:
        onnx.checker.check_model(model, full_check=False)
    except (onnx.checker.ValidationError, ValueError, RuntimeError) as exc:
        raise InputError(f"model fails the ONNX checker: {_checker_message(exc)}") from None
    except OSError as exc:
        raise InputError(f"cannot read '{path}': {exc.strerror or exc}") from None


def _load_external_data(model: onnx.ModelProto, path: Path) -> None:
    if not any(external_data_helper.uses_external_data(t) for t in _tensors(model.graph)):
        return
    try:
        external_data_helper.load_external_data_for_model(model, str(path.parent))
    except (OSError, ValueError, RuntimeError) as exc:
        raise InputError(f"cannot load the external data of '{path}': {_first_line(exc)}") from None


def _checker_message(exc: BaseException) -> str:
    """The checker's message on one line, led by the node it names ("node 'relu' (LRN): ...")."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    context = _NODE_CONTEXT.search(text)
    if context is None:
        return text
    return f"node '{context['name']}' ({context['op']}): {text[: context.start()].strip()}"


_NODE_CONTEXT = re.compile(
    r"==> Context: Bad node spec for node\. Name: (?P<name>\S*) OpType: (?P<op>\S+)"
)


def _first_line(exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


def _tensors(graph: onnx.GraphProto) -> Iterator[onnx.TensorProto]:
    """Every tensor of a graph: initializers, sparse ones, and node attributes, subgraphs too."""
    yield from graph.initializer
    for sparse in graph.sparse_initializer:
        yield sparse.values
        yield sparse.indices
    for node in graph.node:
        for attribute in node.attribute:
            yield from _attribute_tensors(attribute)


def _attribute_tensors(attribute: onnx.AttributeProto) -> Iterator[onnx.TensorProto]:
    if attribute.HasField("t"):
        yield attribute.t
    yield from attribute.tensors
    if attribute.HasField("sparse_tensor"):
        yield attribute.sparse_tensor.values
        yield attribute.sparse_tensor.indices
    if attribute.HasField("g"):
        yield from _tensors(attribute.g)
    for graph in attribute.graphs:
        yield from _tensors(graph)
