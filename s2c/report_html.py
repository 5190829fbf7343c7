"""The report as one self-contained HTML file: inline CSS and SVG, no script, no network.

Sections: headline figures; the estimate beside onnxruntime on this machine and the H200
reference; the board map (chips and PEs coloured by layer); SRAM use per PE (same map, coloured
by fill); router entries per chip; the per-layer table; spikes per layer over time (spiking
images; a marked placeholder otherwise).
"""

from __future__ import annotations

import html

from backend.cost import LayerCost
from s2c.report import Report
from s2c.summary import format_joules, format_seconds

MAP_WIDTH = 1100  # pixels the board map may take
PE_GRID = (14, 12)  # PE cells per chip: 7 x 6 QPEs of 2 x 2 PEs
MAX_CELL = 24  # pixels per PE cell at most (a one-chip map)

CSS = """
body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222;background:#fff}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #ddd}
.cards{display:flex;flex-wrap:wrap;gap:10px}
.card{border:1px solid #ccd;border-radius:6px;padding:8px 12px;min-width:150px;background:#f7f8fc}
.card b{display:block;font-size:18px}.card span{color:#555;font-size:12px}
table{border-collapse:collapse;font-size:12px}td,th{border:1px solid #ddd;padding:3px 6px}
th{background:#eef}td.n{text-align:right;font-variant-numeric:tabular-nums}
.swatch{display:inline-block;width:10px;height:10px;margin-right:4px;border:1px solid #999}
.note{color:#555;font-size:12px;max-width:1000px}
.placeholder{border:2px dashed #bbb;padding:10px;color:#666;max-width:1000px}
"""


def render_html(report: Report) -> str:
    """The whole report page."""
    colours = layer_colours([layer.name for layer in report.estimate.layers])
    body = [
        f"<h1>s2c report: {_e(report.image_name)}</h1>",
        f"<p class=note>{_e(_subtitle(report))}</p>",
        "<h2>Headline (one inference)</h2>",
        _headline(report),
        "<h2>Beside measured alternatives</h2>",
        _comparison(report),
        "<h2>Board map: PEs coloured by layer</h2>",
        _board_map(report, lambda pe: colours[_first_layer(report, pe)], "layer"),
        "<h2>SRAM use per PE</h2>",
        _board_map(report, lambda pe: _fill_colour(report, pe), "sram"),
        "<p class=note>White 0 % to dark red 100 % of the PE's data SRAM "
        f"({report.machine.chip_spec.data_bytes} bytes).</p>",
        "<h2>Router entries per chip</h2>",
        _router_bars(report),
        "<h2>Per layer</h2>",
        _layer_table(report, colours),
        "<h2>Spikes per layer over time</h2>",
        _spikes_section(report, colours),
    ]
    return (
        "<!DOCTYPE html><html lang=en><head><meta charset=utf-8>"
        f"<title>s2c report: {_e(report.image_name)}</title><style>{CSS}</style></head><body>"
        + "\n".join(body)
        + "</body></html>\n"
    )


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def layer_colours(names: list[str]) -> dict[str, str]:
    """A distinct colour per layer: hues spaced by the golden angle, in layer order."""
    return {name: f"hsl({(i * 137.508) % 360:.1f},62%,52%)" for i, name in enumerate(names)}


def _subtitle(report: Report) -> str:
    s = report.summary
    return (
        f"mode {s['mode']}; machine {s['machine']} ({s['machine_chips']} chips); "
        f"{s['chips_used']} chips, {s['pes_used']} PEs, {s['kernels']} slices used; "
        f"batch {s['metadata'].get('batch', '1')}; image {s['image_bytes']} bytes. "
        "Estimates from the cost model (docs/cost-model.md), not measurements."
    )


def format_rate(per_second: float) -> str:
    """Inferences per second: whole numbers with thousands separators from 100 up."""
    return f"{per_second:,.0f}/s" if per_second >= 100 else f"{per_second:.3g}/s"


def _card(value: str, label: str) -> str:
    return f"<div class=card><b>{_e(value)}</b><span>{_e(label)}</span></div>"


def _headline(report: Report) -> str:
    e = report.estimate
    cards = [_card(f"{e.chips_used} / {e.pes_used}", "chips / PEs used")]
    for level in reversed(e.levels):
        where = f"at {level.clock_hz / 1e6:g} MHz, {level.voltage:g} V"
        cards += [
            _card(format_seconds(level.latency_seconds), f"latency {where}"),
            _card(format_rate(level.throughput_per_second), f"pipelined throughput {where}"),
            _card(format_joules(level.energy_joules), f"energy {where}"),
            _card(format_joules(level.pipelined_joules), f"energy pipelined {where}"),
        ]
    cards += [
        _card(f"{e.macs:,}", "MACs"),
        _card(f"{e.packets:,}", "packets"),
        _card(f"{e.link_hops:,}", "packets x chip-to-chip links"),
        _card(e.bottleneck_layer or "-", "bottleneck layer (busiest PE)"),
    ]
    return "<div class=cards>" + "".join(cards) + "</div>"


def _comparison(report: Report) -> str:
    rows = []
    for level in reversed(report.estimate.levels):
        rows.append(
            _row(
                f"s2c estimate, SpiNNaker2 at {level.clock_hz / 1e6:g} MHz",
                format_seconds(level.latency_seconds),
                format_joules(level.energy_joules),
                format_joules(level.dynamic_joules),
                format_joules(level.pipelined_joules),
            )
        )
    ort = report.onnxruntime
    if ort is None:
        rows.append(_row("onnxruntime, this machine", "not measured (pass --model)", "", "", ""))
    else:
        rows.append(
            _row(
                f"onnxruntime, this machine (CPU, {ort.threads} thread, median of {ort.runs})",
                format_seconds(ort.seconds),
                "not measured",
                "",
                "",
            )
        )
    for name, model in report.gpu["models"].items():
        one, many = model["batch1"], model["batch256"]
        rows.append(
            _row(
                f"{report.gpu['gpu']}: {name} (reference workload)",
                format_seconds(one["latency_ms"] / 1e3),
                format_joules(one["energy_mj_per_inference"] / 1e3),
                format_joules(one["dynamic_energy_mj_per_inference"] / 1e3),
                format_joules(many["energy_mj_per_inference"] / 1e3),
            )
        )
    head = _header_row(
        "what",
        "latency, batch 1",
        "energy / inference (board)",
        "above idle",
        "pipelined or batch 256",
    )
    note = (
        "<p class=note>SpiNNaker2 energy = dynamic energy + the idle baseline of the chips in use "
        "for one latency; it compares with the GPU's whole-board column, the dynamic energy with "
        "its above-idle column; pipelined = one period of the busiest PE per inference, beside "
        "the GPU at batch 256. GPU rows: stored H200 measurements of reference workloads "
        "(s2c/reference/README.md), not of this image's model unless the names match.</p>"
    )
    return f"<table>{head}{''.join(rows)}</table>{note}"


def _row(label: str, *numbers: str) -> str:
    """A table row: a label cell, then right-aligned number cells."""
    cells = "".join(f"<td class=n>{_e(number)}</td>" for number in numbers)
    return f"<tr><td>{_e(label)}</td>{cells}</tr>"


def _header_row(*titles: str) -> str:
    return "<tr>" + "".join(f"<th>{_e(title)}</th>" for title in titles) + "</tr>"


def _first_layer(report: Report, pe) -> str:
    return report.layer_by_pe[pe]


def _fill_colour(report: Report, pe) -> str:
    fraction = min(report.sram_by_pe.get(pe, 0) / report.machine.chip_spec.data_bytes, 1.0)
    lightness = 96 - 66 * fraction
    return f"hsl(0,75%,{lightness:.0f}%)"


def _board_map(report: Report, colour, what: str) -> str:
    """The used chips' bounding box at their coordinates (y up), each chip a 14 x 12 grid of PE
    cells at (qx, qy, p); chips in the box that the image does not use are drawn pale."""
    machine, spec = report.machine, report.machine.chip_spec
    used_chips = {pe.chip for pe in report.sram_by_pe} or {machine.host_chip}
    low_x, low_y = min(x for x, _ in used_chips), min(y for _, y in used_chips)
    span_x = max(x for x, _ in used_chips) - low_x + 1
    span_y = max(y for _, y in used_chips) - low_y + 1
    columns, rows = PE_GRID
    cell = max(1, min(MAX_CELL, MAP_WIDTH // (span_x * (columns + 2))))
    chip_w, chip_h = (columns + 2) * cell, (rows + 2) * cell

    def corner(chip: tuple[int, int]) -> tuple[int, int]:
        return (chip[0] - low_x) * chip_w, (low_y + span_y - 1 - chip[1]) * chip_h

    parts = [f'<svg width="{span_x * chip_w}" height="{span_y * chip_h}">']
    for chip in machine.chips:
        if not (0 <= chip[0] - low_x < span_x and 0 <= chip[1] - low_y < span_y):
            continue
        left, top = corner(chip)
        fill = "#e8e8ee" if chip in used_chips else "#f6f6f6"
        parts.append(
            f'<rect x="{left + cell / 2}" y="{top + cell / 2}" width="{chip_w - cell}" '
            f'height="{chip_h - cell}" fill="{fill}" stroke="#aaa">'
            f"<title>chip {chip[0]},{chip[1]}</title></rect>"
        )
    for pe in sorted(report.sram_by_pe, key=lambda p: (p.chip, p.core)):
        qx, qy, p = spec.core_map[pe.core]
        column, row = 2 * (qx - 1) + p % 2, 2 * (spec.qpe_grid_height - qy) + p // 2
        left, top = corner(pe.chip)
        title = f"chip {pe.chip[0]},{pe.chip[1]} core {pe.core}: {_first_layer(report, pe)}"
        if what == "sram":
            title += f", {report.sram_by_pe[pe]} bytes"
        parts.append(
            f'<rect x="{left + (1 + column) * cell}" y="{top + (1 + row) * cell}" '
            f'width="{cell}" height="{cell}" fill="{colour(pe)}"><title>{_e(title)}</title></rect>'
        )
    parts.append("</svg>")
    span = f"chips x {low_x}..{low_x + span_x - 1}, y {low_y}..{low_y + span_y - 1}"
    return "".join(parts) + f"<p class=note>{_e(span)} (the used chips' bounding box).</p>"


def _router_bars(report: Report) -> str:
    """One bar per chip with router entries, against the chip's capacity."""
    capacity = report.machine.chip_spec.router_entries
    chips = [(chip, n) for chip, n in sorted(report.router_entries.items()) if n > 0]
    if not chips:
        return "<p class=note>No chip has router entries.</p>"
    bar_height, label, scale = 14, 70, 400
    height = bar_height * len(chips) + 20
    parts = [f'<svg width="{label + scale + 140}" height="{height}">']
    for i, ((x, y), n) in enumerate(chips):
        top = i * bar_height
        length = max(1.0, scale * n / capacity)
        parts.append(
            f'<text x="0" y="{top + 11}" font-size="11">chip {x},{y}</text>'
            f'<rect x="{label}" y="{top + 2}" width="{length:.1f}" height="{bar_height - 4}" '
            f'fill="#4a7bd0"/><text x="{label + length + 4:.1f}" y="{top + 11}" '
            f'font-size="11">{n} of {capacity}</text>'
        )
    parts.append(
        f'<line x1="{label + scale}" y1="0" x2="{label + scale}" y2="{height - 16}" '
        'stroke="#c33" stroke-dasharray="3,3"/>'
        f'<text x="{label + scale - 40}" y="{height - 4}" font-size="11" fill="#c33">'
        "capacity</text>"
    )
    parts.append("</svg>")
    return "".join(parts)


def _layer_table(report: Report, colours: dict[str, str]) -> str:
    levels = report.estimate.levels
    top = len(levels) - 1
    head = (
        "<tr><th>layer</th><th>kind</th><th>slices</th><th>PEs</th><th>MACs</th>"
        "<th>MAC-array cycles</th><th>ARM cycles</th><th>parameter bytes</th><th>packets</th>"
        "<th>packets x links</th><th>spikes</th>"
        f"<th>time at {levels[top].clock_hz / 1e6:g} MHz</th>"
        f"<th>energy at {levels[top].clock_hz / 1e6:g} MHz</th></tr>"
    )
    rows = [_layer_row(layer, colours[layer.name], top) for layer in report.estimate.layers]
    return f"<table>{head}{''.join(rows)}</table>"


def _layer_row(layer: LayerCost, colour: str, level: int) -> str:
    spikes = "-" if layer.spikes is None else f"{layer.spikes:,}"
    cells = [
        f"{layer.macs:,}",
        f"{layer.mac_array_cycles:,.0f}",
        f"{layer.arm_cycles:,.0f}",
        f"{layer.parameter_bytes:,}",
        f"{layer.packets:,}",
        f"{layer.link_hops:,}",
        spikes,
        format_seconds(layer.seconds[level]),
        format_joules(layer.energy_joules[level]),
    ]
    numbers = "".join(f"<td class=n>{_e(c)}</td>" for c in cells)
    return (
        f'<tr><td><span class=swatch style="background:{colour}"></span>{_e(layer.name)}</td>'
        f"<td>{_e(layer.opcode)}</td><td class=n>{layer.slices}</td><td class=n>{layer.pes}</td>"
        f"{numbers}</tr>"
    )


def _spikes_section(report: Report, colours: dict[str, str]) -> str:
    """Spikes per layer per timestep as lines (the snn hook); a placeholder for ANN images."""
    if not report.activity and report.program.mode == "snn":
        return (
            '<div class=placeholder id="snn-spikes">Spikes not measured: spiking activity '
            "depends on the inputs. Run the image with <code>s2c run --stats-json STATS.json"
            "</code> and give the file to <code>s2c report --activity</code>; until then the "
            "estimate leaves synaptic events out.</div>"
        )
    if not report.activity:
        return (
            '<div class=placeholder id="snn-spikes">Spiking images only: this image is '
            f"{_e(report.program.mode)} mode, where every kernel fires once per inference. "
            "For an snn image this section plots spikes per layer per timestep.</div>"
        )
    width, height, margin = 700, 260, 40
    steps = max(len(a.spikes) for a in report.activity.values())
    peak = max((max(a.spikes, default=0) for a in report.activity.values()), default=0) or 1
    parts = [f'<svg id="snn-spikes" width="{width + 200}" height="{height + margin}">']
    parts.append(
        f'<line x1="{margin}" y1="{height}" x2="{width}" y2="{height}" stroke="#333"/>'
        f'<line x1="{margin}" y1="10" x2="{margin}" y2="{height}" stroke="#333"/>'
        f'<text x="{margin}" y="{height + 16}" font-size="11">timestep 0</text>'
        f'<text x="{width - 60}" y="{height + 16}" font-size="11">{steps - 1}</text>'
        f'<text x="0" y="16" font-size="11">{peak}</text>'
    )
    for i, (name, layer) in enumerate(sorted(report.activity.items())):
        points = " ".join(
            f"{margin + (width - margin) * t / max(steps - 1, 1):.1f},"
            f"{height - (height - 10) * count / peak:.1f}"
            for t, count in enumerate(layer.spikes)
        )
        colour = colours.get(name, "#333")
        parts.append(f'<polyline fill="none" stroke="{colour}" points="{points}"/>')
        parts.append(
            f'<text x="{width + 10}" y="{20 + 14 * i}" font-size="11" fill="{colour}">'
            f"{_e(name)}</text>"
        )
    parts.append("</svg>")
    return "".join(parts)
