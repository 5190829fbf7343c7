"""Running an snn image: T timesteps of integrate-and-fire kernels exchanging spikes.

One timestep (docs/snn.md): the host injects the input (a constant current: int8 values sent
once, at the first step; Poisson: fresh spikes every step); then kernel groups fire in the
firing schedule's order, each one: deliver the spikes its senders emitted (routed by the image's
router tables, checked at load: every key block reaches exactly the PEs whose ports claim it),
integrate, fire, reset, emit its spikes as keys without payload. Producers fire before their
consumers within a step, so a spike reaches the next layer in the step it was emitted (no
synaptic delay). After the last step the integrators' membranes go to the host as int32 values,
which it dequantises to the ONNX output names.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from backend.activity import image_weight_bytes
from backend.cost import LayerActivity
from backend.program import Box
from backend.spiking import (
    DESCRIPTOR_CHECKS,
    ROUTING_OPCODES,
    SPIKING_OPCODES,
    MaxPoolGate,
    SpikingKernel,
    poisson_generator,
    poisson_spikes,
    snn_settings,
)
from ir.errors import InputError
from ir.quant import quantise

if TYPE_CHECKING:
    from backend.interpreter import Interpreter


@dataclass
class SpikeStats:
    """Counts of one snn run (all samples together)."""

    samples: int = 0
    timesteps: int = 0
    spikes: int = 0
    synaptic_events: int = 0
    packets: int = 0
    link_hops: int = 0
    seconds: float = 0.0
    spikes_per_layer: dict[str, list[int]] = field(default_factory=dict)
    synaptic_events_per_layer: dict[str, list[int]] = field(default_factory=dict)
    weight_bytes: tuple[int, int] = (0, 0)  # (dense, stored) synapse bytes of the image

    def merged(self, other: SpikeStats) -> SpikeStats:
        """The counts of this run and `other` (more samples of the same image) together."""
        return SpikeStats(
            self.samples + other.samples,
            max(self.timesteps, other.timesteps),
            self.spikes + other.spikes,
            self.synaptic_events + other.synaptic_events,
            self.packets + other.packets,
            self.link_hops + other.link_hops,
            self.seconds + other.seconds,
            _add_per_layer(self.spikes_per_layer, other.spikes_per_layer),
            _add_per_layer(self.synaptic_events_per_layer, other.synaptic_events_per_layer),
            self.weight_bytes,
        )

    def activity(self) -> dict[str, LayerActivity]:
        """Spikes and synaptic events of each layer per timestep in one inference (the mean over
        the run's samples, rounded), as the cost model takes them."""
        samples = max(self.samples, 1)
        return {
            layer: LayerActivity(
                tuple(round(count / samples) for count in spikes),
                tuple(
                    round(count / samples)
                    for count in self.synaptic_events_per_layer.get(layer, [0] * len(spikes))
                ),
            )
            for layer, spikes in self.spikes_per_layer.items()
        }

    @property
    def synaptic_events_per_second(self) -> float:
        return self.synaptic_events / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self) -> dict:
        return {
            "samples": self.samples,
            "timesteps": self.timesteps,
            "spikes": self.spikes,
            "synaptic_events": self.synaptic_events,
            "packets": self.packets,
            "link_hops": self.link_hops,
            "seconds": self.seconds,
            "synaptic_events_per_second": self.synaptic_events_per_second,
            "spikes_per_layer_per_timestep": self.spikes_per_layer,
            "synaptic_events_per_layer_per_timestep": self.synaptic_events_per_layer,
            "sparsity": {
                "weight_bytes_dense": self.weight_bytes[0],
                "weight_bytes_stored": self.weight_bytes[1],
            },
        }


def _add_per_layer(
    first: dict[str, list[int]], second: dict[str, list[int]]
) -> dict[str, list[int]]:
    total = {layer: list(counts) for layer, counts in first.items()}
    for layer, counts in second.items():
        mine = total.setdefault(layer, [0] * len(counts))
        total[layer] = [a + b for a, b in zip(mine, counts)]
    return total


def prepare_spiking(interpreter: Interpreter) -> list[SpikingKernel | MaxPoolGate | None]:
    """Check every spiking kernel's descriptor against the image and prepare it to run."""
    settings = snn_settings(interpreter.program.metadata)
    prepared: list[SpikingKernel | MaxPoolGate | None] = []
    for (_, kernel), params in zip(interpreter.kernels, interpreter.params):
        check = DESCRIPTOR_CHECKS.get(kernel.opcode)
        if check is None and kernel.opcode not in ROUTING_OPCODES:
            raise InputError(
                f"image: {kernel.layer}#{kernel.slice_index} ({kernel.opcode}) cannot run in an "
                f"snn image; spiking opcodes: {', '.join(sorted(DESCRIPTOR_CHECKS))}, routing: "
                f"{', '.join(sorted(ROUTING_OPCODES))}"
            )
        if check is None:
            prepared.append(None)
            continue
        check(kernel, params)
        if kernel.opcode == "spike_max_pool":
            prepared.append(MaxPoolGate(kernel, params))
        else:
            prepared.append(SpikingKernel(kernel, params, settings.timesteps))
    return prepared


class SpikingRun:
    """The state of one run: membranes per firing group, cached constant currents, counts."""

    def __init__(self, interpreter: Interpreter, samples: int) -> None:
        self.interpreter = interpreter
        self.samples = samples
        self.settings = snn_settings(interpreter.program.metadata)
        self.membranes: dict[int, np.ndarray] = {}
        self.constant_currents: dict[int, np.ndarray] = {}
        self.payloads: dict[int, np.ndarray] = {}  # the latest payload of each key block
        self.stats = SpikeStats(
            samples=samples,
            timesteps=self.settings.timesteps,
            weight_bytes=image_weight_bytes([kernel for _, kernel in interpreter.kernels]),
        )

    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        start = time.perf_counter()
        interpreter = self.interpreter
        generator = poisson_generator(self.settings.seed)
        for step in range(self.settings.timesteps):
            self._inject(inputs, step, generator)
            for group in interpreter.schedule:
                self._fire(group.members, step)
        for group in interpreter.schedule:
            self._emit_results(group.members)
        self.stats.seconds = time.perf_counter() - start
        from backend.interpreter import _assemble

        return {
            io.name: _assemble(io, plan, self.payloads, self.samples)
            for io, plan in zip(interpreter.program.outputs, interpreter.output_plans)
        }

    # -- host ---------------------------------------------------------------------------------
    def _inject(self, inputs, step: int, generator: np.random.Generator) -> None:
        """Constant current: int8 values at the first step; Poisson: new spikes every step."""
        for io in self.interpreter.program.inputs:
            data = inputs[io.name]
            if io.quant is None:
                raise InputError(f"image: snn input '{io.name}' has no scale")
            if io.dtype == "bool":
                if step == 0 and np.any(data < 0):
                    raise InputError(
                        f"input '{io.name}': Poisson coding needs non-negative inputs, got "
                        f"{float(data.min()):g}"
                    )
                data = poisson_spikes(generator, data, io.quant[0])
            elif step == 0:
                data = quantise(data, *io.quant)
            else:
                continue
            for box, (key, _) in zip(io.boxes, io.keys):
                if key not in self.interpreter.deliveries:
                    continue
                part = data[(slice(None), *box.relative_to(Box.full(io.shape)))]
                self._send(key, np.ascontiguousarray(part, dtype=io.dtype))

    # -- kernels ------------------------------------------------------------------------------
    def _fire(self, members: tuple[int, ...], step: int) -> None:
        interpreter = self.interpreter
        first = members[0]
        neurons = interpreter.spiking[first]
        kernel = interpreter.kernels[first][1]
        if neurons is not None and neurons.current_input and step > 0:
            current = self.constant_currents[first]
        else:
            buffers = interpreter.buffers(members, self.payloads, self.samples)
            if neurons is None:  # routing: spikes pass unchanged, re-keyed
                self._emit(members, interpreter.prepared[first](buffers, interpreter.params[first]))
                return
            current = neurons.current(buffers)
            events = neurons.synaptic_events(buffers)
            self.stats.synaptic_events += events
            per_layer = self.stats.synaptic_events_per_layer.setdefault(
                kernel.layer, [0] * self.settings.timesteps
            )
            per_layer[step] += events
            if neurons.current_input:
                self.constant_currents[first] = current
        membrane = self.membranes.get(first)
        if membrane is None:
            membrane = self._initial_membranes(members)
            self.membranes[first] = membrane
        spikes = neurons.step(membrane, current)
        if spikes is None:
            return
        counts = self.stats.spikes_per_layer.setdefault(kernel.layer, [0] * self.settings.timesteps)
        fired = int(np.count_nonzero(spikes))
        counts[step] += fired
        self.stats.spikes += fired
        self._emit(members, spikes)

    def _emit(self, members: tuple[int, ...], result: np.ndarray) -> None:
        """Each member's part of `result` becomes the spikes (payloads) of its key block."""
        for position, member in enumerate(members):
            part = result[position * self.samples : (position + 1) * self.samples]
            self._send(self.interpreter.kernels[member][1].output.key, part)

    def _initial_membranes(self, members: tuple[int, ...]) -> np.ndarray:
        """The members' membranes from the image, one copy per sample, stacked like buffers."""
        states = []
        for member in members:
            neurons = self.interpreter.spiking[member]
            assert neurons is not None
            states.append(np.broadcast_to(neurons.initial, (self.samples, *neurons.initial.shape)))
        return np.concatenate(states)

    def _send(self, key: int, part: np.ndarray) -> None:
        """A payload for key block `key`, counted: packets (one per spike) and link hops."""
        self.payloads[key] = part
        delivery = self.interpreter.deliveries[key]
        if part.dtype == np.bool_:
            packets = int(np.count_nonzero(part))
        else:
            packets = delivery.packets * self.samples
        self.stats.packets += packets
        self.stats.link_hops += packets * delivery.hops

    def _emit_results(self, members: tuple[int, ...]) -> None:
        """After the last step: each integrator sends its membrane to the host."""
        neurons = self.interpreter.spiking[members[0]]
        if not isinstance(neurons, SpikingKernel) or neurons.fire:
            return
        result = neurons.result(self.membranes[members[0]])
        for position, member in enumerate(members):
            part = result[position * self.samples : (position + 1) * self.samples]
            self._send(self.interpreter.kernels[member][1].output.key, part)


__all__ = ["SPIKING_OPCODES", "SpikeStats", "SpikingRun", "prepare_spiking"]
