"""Kernel descriptor validation: every field of every kernel checked before any kernel runs.

The interpreter calls `check_descriptors(program, machine)` when it loads an image, before it
reads a parameter or fires a kernel. It checks:
1. graph inputs and outputs: quantisation parameters (int8, finite scale > 0, int8 zero point;
   an snn image may also take bool Poisson spikes in and give int32 membranes out);
2. per kernel of each PE: the opcode is one this interpreter runs (a key of
   `backend.descriptor_rules.CHECKS`); the output's values per packet fit the machine's largest
   multicast payload; every input port's sources are keys that some kernel output or graph
   input sends, of the port's tensor, with the box and dtype that sender sends; then the
   opcode's own rule (attributes, ports, parameters, output box, temporary sizes);
3. every graph output part is a kernel's output of that tensor, box and dtype.
Any failure is an `InputError` whose one line names the PE (chip:core), the kernel's index in
the PE, its opcode and layer, the field, the value and the limit (`Descriptor.fail`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from backend.descriptor_fields import INT8_RANGE, SCALE_RANGE, Descriptor, is_scale
from backend.descriptor_rules import CHECKS
from backend.hardware import Machine
from backend.program import Box, Program
from backend.spiking import SPIKING_OPCODES
from ir.errors import InputError


# -- the program: senders, key ranges, outputs ------------------------------------------------
@dataclass(frozen=True)
class Sender:
    """What the packets of one key block carry: a box of a tensor, in a dtype."""

    tensor_id: int
    box: Box
    dtype: str
    from_kernel: bool


def _box_text(box: Box) -> str:
    return "[" + ", ".join(f"{a}:{b}" for a, b in zip(box.start, box.stop)) + "]"


def senders_by_key(program: Program) -> dict[int, Sender]:
    """Every key block's sender: graph input parts (the host) and kernel outputs."""
    senders: dict[int, Sender] = {}
    found: list[tuple[int, Sender]] = []
    for io in program.inputs:
        for box, (key, _) in zip(io.boxes, io.keys):
            found.append((key, Sender(io.tensor_id, box, io.dtype, False)))
    for pe in program.pes:
        for kernel in pe.kernels:
            out = kernel.output
            found.append((out.key, Sender(out.tensor_id, out.box, out.dtype, True)))
    for key, sender in found:
        if key in senders:
            raise InputError(f"image: key {key:#010x} is sent by two senders")
        senders[key] = sender
    return senders


def _check_sources(d: Descriptor, senders: dict[int, Sender]) -> None:
    """Each port source is a sender of the port's tensor, with the sender's box and dtype."""
    for number, port in enumerate(d.kernel.inputs):
        for source in port.sources:
            field = f"input {number} source {source.key:#010x}"
            sender = senders.get(source.key)
            if sender is None:
                d.fail(field, "no sender", "no kernel output or graph input sends this key")
            if sender.tensor_id != port.tensor_id:
                d.fail(
                    f"{field} tensor", port.tensor_id, f"the key sends tensor {sender.tensor_id}"
                )
            if source.box != sender.box:
                d.fail(f"{field} box", _box_text(source.box), f"sent: {_box_text(sender.box)}")
            if sender.dtype != port.dtype:
                d.fail(f"input {number} dtype", port.dtype, f"key sends {sender.dtype}")


def _check_packets(d: Descriptor, payload_bytes: int) -> None:
    output = d.kernel.output
    size = output.values_per_packet * np.dtype(output.dtype).itemsize
    if size > payload_bytes:
        d.fail("values per packet", output.values_per_packet, f"{payload_bytes}-byte payloads")


def _check_outputs(program: Program, senders: dict[int, Sender]) -> None:
    """Each graph output part is a kernel's output of that tensor, box and dtype."""
    for io in program.outputs:
        for number, (box, (key, _)) in enumerate(zip(io.boxes, io.keys)):
            sender = senders.get(key)
            expected = Sender(io.tensor_id, box, io.dtype, True)
            if sender != expected:
                found = "nothing" if sender is None else f"{_box_text(sender.box)} {sender.dtype}"
                raise InputError(
                    f"image: output '{io.name}' part {number} key {key:#010x}: expects "
                    f"{_box_text(box)} {io.dtype} of tensor {io.tensor_id} from a kernel, "
                    f"the key sends {found}"
                )


# An snn image's host-side tensors besides int8: Poisson input spikes as bool (scale 1, zero
# point 0) and the output integrators' int32 membranes.
SNN_IO_DTYPES = frozenset({("input", "bool"), ("output", "int32")})


def _check_io_quantisation(program: Program) -> None:
    """A quantised graph input or output is int8 with a positive finite scale, int8 zero point."""
    for kind, tensors in (("input", program.inputs), ("output", program.outputs)):
        for io in tensors:
            if io.quant is None:
                continue
            scale, zero = io.quant
            sound = is_scale(scale) and INT8_RANGE[0] <= zero <= INT8_RANGE[1]
            if sound and io.dtype == "int8":
                continue
            if sound and program.mode == "snn" and (kind, io.dtype) in SNN_IO_DTYPES:
                continue
            raise InputError(
                f"image: graph {kind} '{io.name}' quantisation: scale {scale}, zero point {zero}, "
                f"dtype {io.dtype}: needs a scale in {SCALE_RANGE}, a zero point in "
                f"{INT8_RANGE[0]}..{INT8_RANGE[1]} and dtype int8"
            )


def check_descriptors(program: Program, machine: Machine) -> None:
    """Refuse, with one line, an image whose kernel descriptors the kernels cannot trust."""
    _check_io_quantisation(program)
    senders = senders_by_key(program)
    payload_bytes = max(machine.chip_spec.packet_payload_bits, default=0) // 8
    for pe in program.pes:
        for index, kernel in enumerate(pe.kernels):
            d = Descriptor(pe.pe, index, kernel)
            rule = CHECKS.get(kernel.opcode)
            if rule is None:
                d.fail(
                    "opcode", kernel.opcode, f"this interpreter runs {', '.join(sorted(CHECKS))}"
                )
            if kernel.opcode in SPIKING_OPCODES and program.mode != "snn":
                d.fail("opcode", kernel.opcode, "spiking opcodes run in snn images only")
            _check_packets(d, payload_bytes)
            _check_sources(d, senders)
            rule(d)
    _check_outputs(program, senders)
