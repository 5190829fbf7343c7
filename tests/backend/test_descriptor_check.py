"""Kernel descriptor validation (backend/descriptor_check.py, backend/descriptor_rules.py).

Real images of golden models are compiled once; each case edits one field of one kernel the way
a corrupted or hand-made image could, and the interpreter's load must refuse it with one line
naming the PE, the kernel's index in the PE, its opcode, the field and the limit. Without the
validator these edits crash the kernels (IndexError, KeyError, StopIteration, MemoryError, ...)
or are reported as a bug in s2c.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable
from pathlib import Path

import pytest

from backend import descriptor_rules, kernels, slicing
from backend.image import decode_image, encode_image
from backend.interpreter import Interpreter
from backend.program import Box, Kernel, Program
from golden.cases import case_dir
from ir.errors import InputError
from s2c.driver import CompileOptions, compile_model


@pytest.fixture(scope="module")
def programs() -> dict[str, Program]:
    built = {}
    for case in ("conv_pool_dense", "concat_branches", "pool_variants", "residual_add"):
        for mode in ("float", "int8"):
            options = CompileOptions(mode=mode, machine="chip")
            result = compile_model(
                case_dir(case) / "model.onnx", options, emit=lambda t: None, warn=lambda t: None
            )
            built[f"{case}/{mode}"] = decode_image(encode_image(result.program))  # as read
    return built


def _edited(program: Program, opcode: str, change: Callable[[Kernel], Kernel]):
    """A copy of `program` with its first `opcode` kernel changed; (program, 'PE c:n kernel i')."""
    program = copy.deepcopy(program)
    for pe in program.pes:
        for index, kernel in enumerate(pe.kernels):
            if kernel.opcode == opcode:
                pe.kernels[index] = change(kernel)
                return program, f"PE {pe.pe.chip}:{pe.pe.core} kernel {index} ({opcode}"
    raise AssertionError(f"no {opcode} kernel")


def _attrs(**changes) -> Callable[[Kernel], Kernel]:
    def change(kernel: Kernel) -> Kernel:
        attrs = dict(kernel.attrs, **changes)
        return dataclasses.replace(kernel, attrs={k: v for k, v in attrs.items() if v is not None})

    return change


def _param(which: str, **changes) -> Callable[[Kernel], Kernel]:
    def change(kernel: Kernel) -> Kernel:
        params = tuple(
            dataclasses.replace(p, **changes) if p.role == which else p for p in kernel.params
        )
        return dataclasses.replace(kernel, params=params)

    return change


def _output_box(stop: tuple[int, ...]) -> Callable[[Kernel], Kernel]:
    def change(kernel: Kernel) -> Kernel:
        box = Box(tuple(0 for _ in stop), stop)
        return dataclasses.replace(kernel, output=dataclasses.replace(kernel.output, box=box))

    return change


def _source_box(kernel: Kernel) -> Kernel:
    port = kernel.inputs[0]
    source = port.sources[0]
    grown = Box(source.box.start, (*source.box.stop[:-1], source.box.stop[-1] + 1))
    sources = (dataclasses.replace(source, box=grown), *port.sources[1:])
    inputs = (dataclasses.replace(port, sources=sources), *kernel.inputs[1:])
    return dataclasses.replace(kernel, inputs=inputs)


# (golden program, opcode, edit, words the message must hold: field, value, limit)
CASES = [
    ("conv_pool_dense/float", "conv", _attrs(strides=(1,)), ["'strides'", "(1,)", "2 integers"]),
    ("conv_pool_dense/float", "conv", _attrs(group=0), ["'group'", "= 0", "1.."]),
    ("conv_pool_dense/float", "conv", _attrs(group=3), ["'group'", "does not fit"]),
    ("conv_pool_dense/float", "conv", _attrs(pads=(1 << 40, 0, 0, 0)), ["zero-padded input"]),
    ("conv_pool_dense/float", "conv", _attrs(activation="relu_"), ["'activation'", "unknown"]),
    ("conv_pool_dense/float", "conv", _param("weight", role="w"), ["parameter", "'weight'"]),
    ("conv_pool_dense/float", "conv", _param("bias", shape=(2,)), ["'bias' shape", "(2,)"]),
    ("conv_pool_dense/float", "conv", _output_box((1, 8, 16, 17)), ["output box", "computes"]),
    ("conv_pool_dense/float", "conv", _source_box, ["source", "box", "sent"]),
    ("conv_pool_dense/float", "dense", _param("weight", dtype="float16"), ["dtype", "float32"]),
    ("conv_pool_dense/float", "pool", _attrs(kernel=(2, 2, 2)), ["'kernel'", "2 integers"]),
    ("conv_pool_dense/float", "pool", _attrs(valid_lo=(0,)), ["'valid_lo'"]),
    ("conv_pool_dense/float", "pool", _attrs(input_start=(0, 1)), ["'input_start'", "start"]),
    ("conv_pool_dense/float", "reshape", _attrs(out_shape=(1, 145)), ["'out_shape'"]),
    ("conv_pool_dense/float", "reshape", _attrs(in_shape=(1, 16, 9, 1)), ["'in_shape'", "box"]),
    ("conv_pool_dense/int8", "conv", _param("shift", role="x"), ["parameter", "'shift'"]),
    ("conv_pool_dense/int8", "conv", _attrs(input_zero_point=300), ["zero_point", "-128..127"]),
    ("conv_pool_dense/int8", "dense", _attrs(clamp_low=5, clamp_high=4), ["'clamp_high'"]),
    ("concat_branches/float", "concat", _attrs(axis=0), ["piece 0 shape"]),
    ("concat_branches/float", "concat", _attrs(offsets=(16, 4, 10)), ["'offsets'", "start at 0"]),
    ("concat_branches/int8", "concat", _attrs(rescale=(1, 2)), ["'rescale'", "9 integers"]),
    ("pool_variants/int8", "transpose", _attrs(perm=(0, 2, 3, 3)), ["'perm'", "permutation"]),
    ("pool_variants/float", "reshape", _attrs(perm=(0, 2, 3, 3)), ["'perm'", "permutation"]),
    ("pool_variants/float", "reshape", _attrs(view=(1, 4, 15, 16)), ["'view'", "900 elements"]),
    ("pool_variants/float", "reshape", _attrs(view=(1,) * 40), ["'view'", "1..32"]),
    ("pool_variants/float", "softmax", _attrs(axis=4), ["'axis'", "0..3"]),
    ("residual_add/float", "add", _attrs(operands=(0, 1, 1)), ["'operands'", "increase"]),
    ("residual_add/float", "add", _attrs(operands=(0, 1, 2)), ["'operands'", "more than 2"]),
    ("residual_add/int8", "global_pool", _attrs(input_scales=()), ["'input_scales'", "[0]"]),
    ("residual_add/int8", "global_pool", _attrs(output_scale=1e-300), ["'output_scale'", "1e-300"]),
    ("residual_add/float", "global_pool", _attrs(kind="sum"), ["'kind'", "max, avg"]),
    ("residual_add/int8", "add", _attrs(rescale=(1, 0, 1, 0, 1, 99)), ["'rescale'", "shifts"]),
    ("residual_add/int8", "lookup", _param("table", shape=(255,)), ["'table' shape", "(256,)"]),
    ("residual_add/float", "add", lambda k: dataclasses.replace(k, opcode="add_"), ["opcode"]),
]


def assert_refused_edit(program: Program, opcode: str, edit, words: list[str]) -> None:
    """The program with its first `opcode` kernel edited is refused at load in one line that
    names the PE and kernel and holds every one of `words`."""
    program, where = _edited(program, opcode, edit)
    with pytest.raises(InputError) as error:
        Interpreter(program)
    message = str(error.value)
    assert "\n" not in message
    assert message.startswith(f"image: {where}"), message
    for word in words:
        assert word in message, message


@pytest.mark.parametrize(("name", "opcode", "edit", "words"), CASES)
def test_a_hostile_descriptor_is_refused_in_one_line_naming_it(programs, name, opcode, edit, words):
    assert_refused_edit(programs[name], opcode, edit, words)


def test_golden_programs_pass_the_checks(programs):
    for program in programs.values():
        Interpreter(program)


def test_an_output_part_must_come_from_a_kernel(programs):
    program = copy.deepcopy(programs["conv_pool_dense/float"])
    output = program.outputs[0]
    wrong_key = program.inputs[0].keys[0]
    program.outputs[0] = dataclasses.replace(output, keys=(wrong_key,))
    with pytest.raises(InputError, match=r"output '\w+' part 0 key .* from a kernel"):
        Interpreter(program)


def test_a_quantised_output_needs_sound_parameters(programs):
    program = copy.deepcopy(programs["conv_pool_dense/int8"])
    program.outputs[0] = dataclasses.replace(program.outputs[0], quant=(0.1, 1 << 40))
    with pytest.raises(InputError, match=r"graph output .* zero point 1099511627776"):
        Interpreter(program)


def test_every_kernel_the_interpreter_runs_has_a_rule():
    """A new opcode family needs its rule in descriptor_rules.CHECKS before images use it."""
    element_wise = [op for op, rule in slicing._RULES.items() if rule is slicing._same_box_rule]
    opcodes = {*kernels._HANDLERS, *element_wise}
    assert opcodes <= set(descriptor_rules.CHECKS), opcodes - set(descriptor_rules.CHECKS)


def test_the_image_format_lists_every_opcode():
    """docs/image-format.md names each opcode a reader must know (the rules state the rest)."""
    text = (Path(__file__).resolve().parents[2] / "docs" / "image-format.md").read_text()
    section = text[text.index("### Kernel descriptors") : text.index("## Writing")]
    missing = [opcode for opcode in descriptor_rules.CHECKS if f"`{opcode}`" not in section]
    assert not missing, missing
