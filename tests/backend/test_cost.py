"""The cost model against figures computed here by hand from the hardware parameters.

The model: x[1, 16] -> MatMul(16x8) 'first' -> Relu -> MatMul(8x4) 'second' -> y[1, 4], compiled
for one chip and read back from its image bytes. Both layers are one slice each, on cores 0 and
1 of chip (0, 0), the host's chip. Packets carry 4 float32 values (float mode) or 16 int8 values
(int8 mode). Every expected value below is arithmetic on `ChipSpec()` fields and those counts.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from backend.cost import LayerActivity, estimate
from backend.hardware import ChipSpec
from backend.image import decode_image, encode_image
from s2c.driver import CompileOptions, compile_model

SPEC = ChipSpec()
TOP, LOW = 1, 0  # indices of 300 MHz / 0.8 V and 150 MHz / 0.5 V in the default levels


def two_layer_model():
    rng = np.random.default_rng(0)
    first = numpy_helper.from_array(rng.standard_normal((16, 8)).astype(np.float32), "W1")
    second = numpy_helper.from_array(rng.standard_normal((8, 4)).astype(np.float32), "W2")
    nodes = [
        helper.make_node("MatMul", ["x", "W1"], ["h"], name="first"),
        helper.make_node("Relu", ["h"], ["r"], name="relu"),
        helper.make_node("MatMul", ["r", "W2"], ["y"], name="second"),
    ]
    graph = helper.make_graph(
        nodes,
        "two_layers",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4])],
        [first, second],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def program(mode: str):
    options = CompileOptions(mode=mode, machine="chip")
    result = compile_model(two_layer_model(), options, emit=lambda _: None, warn=lambda _: None)
    return decode_image(encode_image(result.program))


@pytest.fixture(scope="module")
def float_program():
    return program("float")


@pytest.fixture(scope="module")
def int8_program():
    return program("int8")


def layer(estimated, name: str):
    return next(layer for layer in estimated.layers if layer.name == name)


def noc_seconds(clock: float) -> float:
    """The on-chip network hops from core 0 to core 1, at `clock`."""
    return SPEC.noc_hops(0, 1) * SPEC.noc_cycles_per_hop / clock


def test_the_placement_is_the_one_the_hand_figures_assume(float_program) -> None:
    placed = {k.layer: pe.pe for pe in float_program.pes for k in pe.kernels}
    assert {name: (pe.chip, pe.core) for name, pe in placed.items()} == {
        "first": ((0, 0), 0),
        "second": ((0, 0), 1),
    }


def test_float_layers_run_on_the_arm_core(float_program) -> None:
    estimated = estimate(float_program)
    element, mac, packet = (
        SPEC.arm_cycles_per_element,
        SPEC.arm_cycles_per_fp32_mac,
        SPEC.arm_cycles_per_packet,
    )
    # first: 16 x 8 MACs, 8 outputs, sends 8/4 = 2 packets, receives the host's 16/4 = 4.
    first = 128 * mac + 8 * element + (2 + 4) * packet
    # second: 8 x 4 MACs, 4 outputs, sends 1 packet, receives 2.
    second = 32 * mac + 4 * element + (1 + 2) * packet
    assert layer(estimated, "first").arm_cycles == pytest.approx(first)
    assert layer(estimated, "second").arm_cycles == pytest.approx(second)
    assert layer(estimated, "first").mac_array_cycles == 0
    assert estimated.macs == 160
    assert estimated.packets == 3
    for level, clock in enumerate(SPEC.clock_levels_hz):
        figures = estimated.levels[level]
        assert figures.latency_seconds == pytest.approx(
            (first + second) / clock + noc_seconds(clock)
        )
        assert figures.period_seconds == pytest.approx(first / clock)
        voltage_squared = (SPEC.level_voltages[level] / SPEC.level_voltages[TOP]) ** 2
        dynamic = (first + second) * SPEC.arm_joules_per_cycle * voltage_squared
        assert figures.dynamic_joules == pytest.approx(dynamic)
        assert figures.energy_joules == pytest.approx(
            dynamic + SPEC.idle_power_watts * figures.latency_seconds
        )
        assert figures.pipelined_joules == pytest.approx(
            dynamic + SPEC.idle_power_watts * figures.period_seconds
        )


def test_int8_layers_run_on_the_mac_array(int8_program) -> None:
    estimated = estimate(int8_program)
    per_cycle = SPEC.macs_per_pe * SPEC.mac_utilisation_dense
    assert layer(estimated, "first").mac_array_cycles == pytest.approx(128 / per_cycle)
    assert layer(estimated, "second").mac_array_cycles == pytest.approx(32 / per_cycle)
    # Requantisation per output; one packet each way (16 int8 values per packet).
    first_arm = 8 * SPEC.arm_cycles_per_element + 2 * SPEC.arm_cycles_per_packet
    second_arm = 4 * SPEC.arm_cycles_per_element + 2 * SPEC.arm_cycles_per_packet
    assert layer(estimated, "first").arm_cycles == pytest.approx(first_arm)
    assert layer(estimated, "second").arm_cycles == pytest.approx(second_arm)
    top = estimated.levels[TOP]
    clock = SPEC.clock_levels_hz[TOP]
    cycles = 160 / per_cycle + first_arm + second_arm
    assert top.latency_seconds == pytest.approx(cycles / clock + noc_seconds(clock))
    # At full MAC load: 4.56 TOPS draw 4.56 / 2.06 W; above idle, per op.
    full_load_watts = SPEC.measured_tops / SPEC.tops_per_watt[TOP]
    per_op = (full_load_watts - SPEC.idle_power_watts) / (SPEC.measured_tops * 1e12)
    dynamic = 2 * 160 * per_op + (first_arm + second_arm) * SPEC.arm_joules_per_cycle
    assert top.dynamic_joules == pytest.approx(dynamic)
    # At 150 MHz the MAC array does half the ops per second at 2.77 TOPS/W.
    low_ops = SPEC.measured_tops * 1e12 / 2
    low_per_op = (low_ops / (SPEC.tops_per_watt[LOW] * 1e12) - SPEC.idle_power_watts) / low_ops
    low_cycle = SPEC.arm_joules_per_cycle * (0.5 / 0.8) ** 2
    assert estimated.levels[LOW].dynamic_joules == pytest.approx(
        2 * 160 * low_per_op + (first_arm + second_arm) * low_cycle
    )


def test_spiking_activity_adds_synaptic_events_and_spikes(float_program) -> None:
    activity = {"first": LayerActivity(spikes=(3, 5), synaptic_events=(100, 200))}
    plain = layer(estimate(float_program), "first")
    spiking = estimate(float_program, activity)
    first = layer(spiking, "first")
    per_event = SPEC.pe_count * max(SPEC.clock_levels_hz) / SPEC.synaptic_events_per_second
    extra = 300 * per_event + 8 * SPEC.arm_cycles_per_packet
    assert first.arm_cycles == pytest.approx(plain.arm_cycles + extra)
    assert (first.spikes, first.synaptic_events) == (8, 300)
    assert first.packets == plain.packets + 8
    assert layer(spiking, "second").spikes is None
    assert spiking.spiking


def test_a_machine_override_in_the_image_changes_the_estimate(int8_program) -> None:
    halved = dict(int8_program.machine, mac_utilisation_dense=SPEC.mac_utilisation_dense / 2)
    int8_program_copy = type(int8_program)(**{**vars(int8_program), "machine": halved})
    before = layer(estimate(int8_program), "first").mac_array_cycles
    after = layer(estimate(int8_program_copy), "first").mac_array_cycles
    assert math.isclose(after, 2 * before)


@pytest.mark.parametrize("value", [0.0, 1.5])
def test_a_utilisation_outside_0_to_1_is_refused(value: float) -> None:
    from ir.errors import InputError

    with pytest.raises(InputError, match="mac_utilisation_conv"):
        ChipSpec(mac_utilisation_conv=value)
