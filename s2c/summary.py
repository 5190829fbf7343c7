"""What an image holds, computed from the program read back from its bytes (`s2c inspect`)."""

from __future__ import annotations

import json
from collections import Counter

from backend.activity import image_sparsity
from backend.cost import Estimate
from backend.hardware import Machine
from backend.program import Program


def sram_used(pe, base: int) -> int:
    """Bytes of the data region in use: up to the end of the last buffer or parameter."""
    end = base
    for kernel in pe.kernels:
        for port in kernel.inputs:
            end = max(end, port.buffer_address + port.box.size * _itemsize(port.dtype))
        out = kernel.output
        end = max(end, out.buffer_address + out.box.size * _itemsize(out.dtype))
        for ref in kernel.params:
            end = max(end, ref.address + ref.nbytes)
    return end - base


def _itemsize(dtype: str) -> int:
    import numpy as np

    return np.dtype(dtype).itemsize


def summarise(program: Program, image_bytes: int, sram: list[int] | None = None) -> dict:
    """A JSON-ready summary: format, machine, resources used, I/O.

    `sram` may give each PE's SRAM use, in `program.pes` order, when the caller has it.
    """
    machine = Machine.from_description(program.machine)
    base = machine.chip_spec.code_bytes
    if sram is None:
        sram = [sram_used(pe, base) for pe in program.pes]
    pes_per_chip = Counter(pe.pe.chip for pe in program.pes)
    entries = [len(chip.router) for chip in program.chips]
    kernels = sum(len(pe.kernels) for pe in program.pes)
    return {
        "mode": program.mode,
        "machine": machine.name,
        "machine_chips": machine.chip_count,
        "machine_pes": machine.pe_count,
        "chips_used": len(pes_per_chip),
        "pes_used": len(program.pes),
        "pes_used_per_chip": {f"{x},{y}": n for (x, y), n in sorted(pes_per_chip.items())},
        "kernels": kernels,
        "sram_bytes_per_pe_max": max(sram, default=0),
        "sram_bytes_total": sum(sram),
        "sram_data_bytes_per_pe": machine.chip_spec.data_bytes,
        "dram_bytes_total": sum(len(d) for chip in program.chips for _, d in chip.dram_blocks),
        "router_entries_max": max(entries, default=0),
        "router_entries_total": sum(entries),
        "router_capacity": machine.chip_spec.router_entries,
        "inputs": [_io(io) for io in program.inputs],
        "outputs": [_io(io) for io in program.outputs],
        "image_bytes": image_bytes,
        "metadata": dict(program.metadata),
        "placement": _placement(program.metadata),
        "sparsity": _sparsity(program),
    }


def _sparsity(program: Program) -> dict:
    """Weight bytes and MACs dense vs stored, and pruning as the compiler recorded it."""
    summary = image_sparsity([kernel for pe in program.pes for kernel in pe.kernels])
    summary["prune"] = _metadata_json(program, "prune")
    choice = _metadata_json(program, "event_activations")
    summary["event_choice"] = choice if isinstance(choice, dict) else None
    return summary


def _metadata_json(program: Program, key: str):
    """A JSON metadata entry of the image, or None when absent or not JSON."""
    try:
        return json.loads(program.metadata.get(key, "null"))
    except ValueError:
        return None


def _placement(metadata: dict[str, str]) -> dict | None:
    """The placement report the compiler stored (`backend.place_cpsat`), or None."""
    try:
        report = json.loads(metadata.get("placement", "null"))
    except ValueError:
        return None
    return report if isinstance(report, dict) else None


def _io(io) -> dict:
    return {"name": io.name, "shape": list(io.shape), "dtype": io.dtype, "boxes": len(io.boxes)}


def format_summary(summary: dict) -> str:
    """The summary as aligned text lines."""
    metadata = summary.get("metadata", {})
    mode = summary["mode"]
    if mode == "snn":
        mode += (
            f" (T = {metadata.get('snn_timesteps', '?')}, "
            f"{metadata.get('snn_encoding', '?')} input, seed {metadata.get('snn_seed', '?')})"
        )
    lines = [
        f"mode              {mode}",
        f"machine           {summary['machine']} ({summary['machine_chips']} chips, "
        f"{summary['machine_pes']} PEs)",
        f"used              {summary['chips_used']} chips, {summary['pes_used']} PEs, "
        f"{summary['kernels']} kernels",
        f"SRAM per PE       max {summary['sram_bytes_per_pe_max']} of "
        f"{summary['sram_data_bytes_per_pe']} bytes; total {summary['sram_bytes_total']} bytes",
        f"DRAM              {summary['dram_bytes_total']} bytes",
        f"router entries    max {summary['router_entries_max']} per chip of "
        f"{summary['router_capacity']}; total {summary['router_entries_total']}",
        f"image             {summary['image_bytes']} bytes",
    ]
    lines += _sparsity_lines(summary.get("sparsity"))
    lines += _placement_lines(summary.get("placement"))
    for kind in ("inputs", "outputs"):
        for io in summary[kind]:
            shape = "x".join(str(d) for d in io["shape"])
            lines.append(f"{kind[:-1]:<17} {io['name']}: {shape} {io['dtype']}")
    return "\n".join(lines)


def _sparsity_lines(sparsity: dict | None) -> list[str]:
    """Weight bytes stored against dense, MACs with the stored weights, how activations travel."""
    if not sparsity:
        return []
    layers = len(sparsity["per_layer"])
    chosen = len(sparsity["event_layers"])
    option = (sparsity.get("event_choice") or {}).get("option", "?")
    how = {"auto": "chosen by calibration zeros", "on": "--event-activations"}.get(
        option, "--no-event-activations"
    )
    if chosen == 0:
        events = f"packed from all {layers} layers ({how})"
    elif chosen == layers:
        events = f"events (non-zeros only) from all {layers} layers ({how})"
    else:
        events = f"events (non-zeros only) from {chosen} of {layers} layers, packed from the rest"
        events += f" ({how})"
    return [
        f"weights           {sparsity['weight_bytes_stored']} of "
        f"{sparsity['weight_bytes_dense']} dense bytes stored ({sparsity['csr_kernels']} "
        f"kernels compressed); MACs {sparsity['macs_stored']} of {sparsity['macs_dense']}",
        f"activations       {events}",
    ]


def _placement_lines(report: dict | None) -> list[str]:
    """Placer, objective against greedy's, bound and gap, inter-chip traffic."""
    if not report:
        return []
    try:
        greedy = report["greedy"]
        return [
            f"placement         {report['placer']} ({report['status']}): objective "
            f"{report['objective']:.6g} (greedy {greedy['objective']:.6g}), bound "
            f"{report['best_bound']:.6g}, gap {report['gap']:.1%}",
            f"inter-chip        {report['inter_chip_traffic']} packets x hops "
            f"(greedy {greedy['inter_chip_traffic']})",
        ]
    except (KeyError, TypeError, ValueError):
        return []


def _in_unit(value: float, units: tuple[str, str, str]) -> str:
    """`value` (in units[0]) in the unit that reads best: units[0], milli- or micro-units."""
    if value >= 1:
        return f"{value:.3g} {units[0]}"
    if value >= 1e-3:
        return f"{value * 1e3:.3g} {units[1]}"
    return f"{value * 1e6:.3g} {units[2]}"


def format_seconds(seconds: float) -> str:
    """Seconds in the unit that reads best: s, ms or us."""
    return _in_unit(seconds, ("s", "ms", "us"))


def format_joules(joules: float) -> str:
    """Joules as J, mJ or uJ."""
    return _in_unit(joules, ("J", "mJ", "uJ"))


def format_estimate(estimate: Estimate) -> str:
    """Estimated latency, throughput and energy per inference, one line per performance level."""
    lines = []
    for i, level in enumerate(reversed(estimate.levels)):
        label = "estimate" if i == 0 else ""
        lines.append(
            f"{label:<17} at {level.clock_hz / 1e6:g} MHz: latency "
            f"{format_seconds(level.latency_seconds)}, {format_joules(level.energy_joules)} per "
            f"inference ({format_joules(level.dynamic_joules)} above idle); pipelined "
            f"{level.throughput_per_second:.4g}/s"
        )
    return "\n".join(lines)
