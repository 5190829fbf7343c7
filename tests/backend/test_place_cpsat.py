"""Tests of the constraint-solving placer, router table compression and zoned keys.

Placements are checked against every capacity directly (SRAM per PE, PEs per chip, one layer per
PE), against the greedy placement (never worse on the objective), and by routing flows built from
them and walking every flow's keys through the tables. Compression is checked by enumerating
every key of a small key space, independently of the compressor's own check.
"""

from __future__ import annotations

import functools
import json
import random
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import backend.assemble
from backend.hardware import Machine, machine_from_name
from backend.keys import allocate_keys
from backend.place import pack_next_fit, place_greedy
from backend.place_cpsat import CpsatOptions, greedy_outcome, place_cpsat
from backend.placement.bisection import split_chips
from backend.placement.cut import fits, subset_split
from backend.placement.problem import hop_matrix
from backend.placement.traffic import HOST, Traffic, placement_cost, slice_traffic
from backend.program import PECoord, RouterEntry
from backend.route import HOST as HOST_TARGET
from backend.route import Flow, TableIndex, route_flows, simulate_delivery
from backend.table_compress import check_equivalent, compress_table, cover
from golden.cases import load_case
from ir.errors import InputError, InternalError, ResourceError
from s2c.driver import CompileOptions, compile_model
from s2c.validate import interpreter_outputs

BOARD = machine_from_name("board")
BUDGET = BOARD.chip_spec.data_bytes
FULL_MASK = 0xFFFFFFFF
QUICK = CpsatOptions(time_limit=0.5)


# -- random slice graphs ------------------------------------------------------------------------


@st.composite
def slice_graphs(draw: st.DrawFn) -> tuple[list[int], list[int], Traffic]:
    """Layers of slices in topological order; each slice of a layer receives from a random
    subset of the previous layer's slices (the first layer from the host); the last layer sends
    to the host."""
    layer_sizes = draw(st.lists(st.integers(1, 14), min_size=1, max_size=6))
    sizes, layers, sources, targets, packets = [], [], [], [], []
    previous: list[int] = [HOST]
    for layer, count in enumerate(layer_sizes):
        mine = list(range(len(sizes), len(sizes) + count))
        sizes += draw(st.lists(st.integers(BUDGET // 8, BUDGET), min_size=count, max_size=count))
        layers += [layer] * count
        for slice_index in mine:
            senders = draw(st.lists(st.sampled_from(previous), min_size=1, max_size=4))
            for sender in set(senders):
                sources.append(sender)
                targets.append(slice_index)
                packets.append(draw(st.integers(1, 500)))
        previous = mine
    for sender in previous:
        sources.append(sender)
        targets.append(HOST)
        packets.append(draw(st.integers(1, 50)))
    return sizes, layers, Traffic.of(sources, targets, packets)


MACHINES = {
    "chip": machine_from_name("chip", {"usable_cores": 6}),
    "board-3": machine_from_name("board", {"usable_cores": 3}),
    "board-2-routers": machine_from_name("board", {"usable_cores": 2, "router_entries": 12}),
    "two-boards-1": machine_from_name("1x2-boards", {"usable_cores": 1}),
    "torus-2": machine_from_name("3x1-boards", {"usable_cores": 2}),
}


def assert_respects_capacities(
    placement: list[PECoord], sizes: list[int], layers: list[int], machine: Machine
) -> None:
    used: dict[PECoord, int] = defaultdict(int)
    layers_on: dict[PECoord, set[int]] = defaultdict(set)
    for pe, size, layer in zip(placement, sizes, layers, strict=True):
        assert machine.has_chip(pe.chip) and pe.core in machine.usable_cores(pe.chip)
        used[pe] += size
        layers_on[pe].add(layer)
    assert max(used.values()) <= machine.chip_spec.data_bytes
    assert all(len(on_pe) == 1 for on_pe in layers_on.values())


def flows_of(placement: list[PECoord], traffic: Traffic) -> list[Flow]:
    """One multicast flow per sender (each slice, and the host) to the PEs it sends to."""
    targets: dict[int, set] = defaultdict(set)
    counts: dict[int, int] = defaultdict(lambda: 1)
    for source, target, packets in zip(
        traffic.sources.tolist(), traffic.targets.tolist(), traffic.packets.tolist()
    ):
        targets[source].add(HOST_TARGET if target == HOST else placement[target])
        counts[source] = max(counts[source], packets)
    senders = sorted(targets)
    blocks = allocate_keys([counts[sender] for sender in senders])
    return [
        Flow(key, mask, None if sender == HOST else placement[sender], frozenset(targets[sender]))
        for sender, (key, mask) in zip(senders, blocks, strict=True)
    ]


def assert_exact_delivery(flows: list[Flow], tables, machine: Machine) -> None:
    index = TableIndex(tables)
    for flow in flows:
        for key in (flow.key, flow.key | (FULL_MASK & ~flow.mask)):
            delivery = simulate_delivery(index, machine, key, flow.source)
            assert delivery.problems == ()
            assert delivery.pes == {t for t in flow.targets if t != HOST_TARGET}
            assert delivery.host == (HOST_TARGET in flow.targets)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(slice_graphs(), st.sampled_from(sorted(MACHINES)))
def test_property_placement_respects_capacities_and_routes_exactly(graph, machine_name) -> None:
    sizes, layers, traffic = graph
    machine = MACHINES[machine_name]
    bins = pack_next_fit(sizes, layers, machine.chip_spec.data_bytes, False)
    assume(max(bins) < machine.pe_count)
    outcome = place_cpsat(sizes, layers, traffic, machine, QUICK)
    placement, report = outcome.placement, outcome.report
    assert_respects_capacities(placement, sizes, layers, machine)
    # Never worse than greedy; the bound is below both; the same inputs, the same placement.
    assert report.objective <= report.greedy_objective
    assert report.best_bound <= report.objective + 1e-6
    assert 0 <= report.gap <= 1
    cost = placement_cost(traffic, placement, machine)
    assert report.figures["inter_chip_traffic"] == cost.inter_chip
    assert place_cpsat(sizes, layers, traffic, machine, QUICK).placement == placement
    # Every routed key reaches exactly its targets (compressed tables included).
    flows = flows_of(placement, traffic)
    try:
        routing = route_flows(flows, machine)
    except ResourceError:
        assume(False)  # too many routes for this router even compressed
        return
    assert max(len(t) for t in routing.tables.values()) <= machine.chip_spec.router_entries
    assert_exact_delivery(flows, routing.tables, machine)


def test_placement_of_a_chain_beats_greedy_and_stays_deterministic() -> None:
    # Eight layers of 20 full-PE slices; each slice talks to its neighbour rows in the next
    # layer. Greedy fills chips layer after layer; bisection keeps rows of consecutive layers
    # together.
    machine = machine_from_name("board", {"usable_cores": 16})
    sizes, layers, sources, targets, packets = [], [], [], [], []
    for layer in range(8):
        for row in range(20):
            index = layer * 20 + row
            sizes.append(BUDGET)
            layers.append(layer)
            if layer:
                for other in (row - 1, row, row + 1):
                    if 0 <= other < 20:
                        sources.append((layer - 1) * 20 + other)
                        targets.append(index)
                        packets.append(100)
    traffic = Traffic.of(sources, targets, packets)
    outcome = place_cpsat(sizes, layers, traffic, machine, CpsatOptions(time_limit=2))
    report = outcome.report
    assert report.placer == "cpsat" and report.status in ("feasible", "optimal")
    assert report.figures["inter_chip_traffic"] < 0.7 * report.greedy["inter_chip_traffic"]
    assert_respects_capacities(outcome.placement, sizes, layers, machine)
    again = place_cpsat(sizes, layers, traffic, machine, CpsatOptions(time_limit=2))
    assert again.placement == outcome.placement
    assert again.report.as_dict(wall_clock=False) == report.as_dict(wall_clock=False)


def test_everything_on_one_chip_is_proven_optimal() -> None:
    sizes, layers = [1000] * 4, [0, 0, 1, 1]
    traffic = Traffic.of([HOST, 0, 1, 2, 3], [0, 2, 3, HOST, HOST], [5, 5, 5, 5, 5])
    report = place_cpsat(sizes, layers, traffic, BOARD, QUICK).report
    assert report.figures["chips_used"] == 1 and report.figures["inter_chip_traffic"] == 0
    assert report.best_bound == 0


def test_tiny_routers_name_the_binding_limit_and_fall_back_to_greedy() -> None:
    machine = machine_from_name("board", {"usable_cores": 2, "router_entries": 2})
    sizes, layers = [BUDGET] * 12, [0] * 6 + [1] * 6
    sources = [a for a in range(6) for _ in range(6)]
    targets = [b for _ in range(6) for b in range(6, 12)]
    traffic = Traffic.of(sources, targets, [10] * 36)
    outcome = place_cpsat(sizes, layers, traffic, machine, QUICK)
    assert outcome.report.status == "infeasible"
    assert outcome.report.binding_limits == ("router entries per chip",)
    assert "router entries per chip" in outcome.report.note
    assert outcome.placement == place_greedy(sizes, machine, layers)


def test_greedy_outcome_reports_the_greedy_placement() -> None:
    sizes, layers = [BUDGET] * 300, [0] * 150 + [1] * 150
    traffic = Traffic.of(range(150), range(150, 300), [7] * 150)
    outcome = greedy_outcome(sizes, layers, traffic, BOARD)
    assert outcome.placement == place_greedy(sizes, BOARD, layers)
    assert outcome.report.placer == "greedy"
    assert outcome.report.objective == outcome.report.greedy_objective


@pytest.mark.parametrize("limit", [0.0, -1.0])
def test_time_limit_must_be_positive(limit: float) -> None:
    with pytest.raises(InputError, match="--place-time must be > 0"):
        place_cpsat([1], [0], Traffic.of([], [], []), BOARD, CpsatOptions(time_limit=limit))


def test_a_slice_larger_than_a_pe_is_the_greedy_resource_error() -> None:
    with pytest.raises(ResourceError, match="needs 94209 bytes of SRAM"):
        place_cpsat([BUDGET + 1], [0], Traffic.of([], [], []), BOARD, QUICK)


# -- pieces of the placer -----------------------------------------------------------------------


def test_traffic_matches_the_flows_the_assembler_routes() -> None:
    model, _, _, _ = load_case("concat_branches")
    parts = compile_model(
        model, CompileOptions(mode="float", placer="greedy"), emit=lambda t: None
    ).partition
    traffic = slice_traffic(parts)
    senders = backend.assemble._senders(parts)
    sources = backend.assemble._sources_by_port(parts, senders)
    expected = set()
    for (consumer, _), port_senders in sources.items():
        for sender in port_senders:
            expected.add((HOST if sender.slice_index is None else sender.slice_index, consumer))
    outputs = {tensor for _, tensor in parts.graph_outputs}
    expected |= {(s.index, HOST) for s in parts.slices if s.output in outputs}
    assert set(zip(traffic.sources.tolist(), traffic.targets.tolist())) == expected


def test_placement_cost_counts_hops_and_qpe_hops() -> None:
    # Slice 0 on (0, 0) core 0 (QPE (2, 1)), slice 1 on (2, 1) two hops away, slice 2 on
    # (0, 0) core 4 (QPE (3, 1)), one QPE hop from core 0.
    placement = [PECoord((0, 0), 0), PECoord((2, 1), 0), PECoord((0, 0), 4)]
    traffic = Traffic.of([0, 0, HOST], [1, 2, 1], [10, 3, 1])
    cost = placement_cost(traffic, placement, BOARD)
    assert BOARD.hop_distance((0, 0), (2, 1)) == 2
    assert cost.inter_chip == 10 * 2 + 1 * 2
    assert cost.on_chip == 3 * BOARD.chip_spec.noc_hops(0, 4) == 3
    assert cost.chips_used == 2


def test_chip_halves_are_compact_and_cover_the_region() -> None:
    chips = list(BOARD.chips)
    distances = hop_matrix(BOARD, chips)
    first, second = split_chips(range(len(chips)), distances)
    assert sorted(first + second) == list(range(48)) and len(first) == len(second) == 24
    inside = distances[np.ix_(first, first)].mean()
    assert inside < distances.mean()  # a half is tighter than the board


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(1, 20), max_size=12), st.integers(0, 60), st.integers(0, 60))
def test_subset_sum_check_and_split_agree_with_brute_force(
    sizes: list[int], first: int, second: int
):
    import itertools

    total = sum(sizes)
    expected = any(
        total - sum(chosen) <= second and sum(chosen) <= first
        for count in range(len(sizes) + 1)
        for chosen in itertools.combinations(sizes, count)
    )
    array = np.array(sizes, dtype=np.int64)
    assert fits(array, first, second) == expected
    if expected:  # the table also gives such a split
        sides = subset_split(array, first, second)
        assert array[sides == 0].sum() <= first and array[sides == 1].sum() <= second


# -- table compression --------------------------------------------------------------------------

SMALL_BITS = 8  # keys 0..255 under a mask whose high 24 bits are set


def route(number: int) -> tuple[frozenset[int], frozenset[int], bool]:
    return frozenset({number % 6}), frozenset({number // 6}), False


def first_match_route(table: list[RouterEntry], key: int):
    for entry in table:
        if key & entry.mask == entry.key:
            return entry.links, entry.pes, entry.host
    return None


@st.composite
def small_tables(draw: st.DrawFn) -> tuple[list[RouterEntry], list[tuple[int, int]]]:
    """Disjoint aligned blocks of a 256-key space, each with one of a few routes or default
    routing (forbidden), as one chip's table sees them."""
    sizes = draw(st.lists(st.sampled_from([1, 2, 4, 8]), min_size=1, max_size=40))
    blocks = allocate_keys(sizes, key_bits=SMALL_BITS + 2)
    entries, forbidden = [], []
    high = FULL_MASK & ~((1 << (SMALL_BITS + 2)) - 1)
    for key, mask in blocks:
        mask |= high
        kind = draw(st.integers(0, 4))
        if kind == 4:
            forbidden.append((key, mask))
        else:
            entries.append(RouterEntry(key, mask, *route(kind)))
    return entries, forbidden


@settings(max_examples=150, deadline=None)
@given(small_tables())
def test_property_compression_routes_every_key_as_before(table) -> None:
    entries, forbidden = table
    compressed = compress_table(entries, forbidden)
    assert len(compressed) <= len(entries)
    assert len(compressed) >= len({(e.links, e.pes, e.host) for e in entries})
    check_equivalent(entries, compressed, forbidden)
    forbidden_keys = {
        key for base, mask in forbidden for key in range(1 << 10) if key & mask == base
    }
    for key in range(1 << (SMALL_BITS + 2)):
        before = first_match_route(entries, key)
        after = first_match_route(compressed, key)
        if key in forbidden_keys:
            assert after is None
        elif before is not None:
            assert after == before


def test_compression_covers_same_route_blocks_across_a_default_routed_hole() -> None:
    # Keys 0-3 go east, key 4 crosses by default routing, keys 5-7 go east: ordered covering
    # cannot take 0-7 (it would catch key 4), but keeps it to fewer entries than the blocks.
    east = (frozenset({0}), frozenset(), False)
    entries = [RouterEntry(0, 0xFFFFFFFC, *east)] + [
        RouterEntry(key, FULL_MASK, *east) for key in (5, 6, 7)
    ]
    compressed = compress_table(entries, [(4, FULL_MASK)])
    check_equivalent(entries, compressed, [(4, FULL_MASK)])
    assert len(compressed) < len(entries)
    assert all(4 & entry.mask != entry.key for entry in compressed)


def test_more_specific_entries_come_first() -> None:
    east, north = (frozenset({0}), frozenset(), False), (frozenset({2}), frozenset(), False)
    entries = [RouterEntry(key, FULL_MASK, *east) for key in (0, 1, 2)]
    entries.append(RouterEntry(3, FULL_MASK, *north))
    compressed = compress_table(entries)
    # 0..3 covered east with 3 north before it: two entries.
    assert compressed == [
        RouterEntry(3, FULL_MASK, *north),
        RouterEntry(*cover([(0, FULL_MASK), (1, FULL_MASK), (2, FULL_MASK)]), *east),
    ]
    check_equivalent(entries, compressed)


def test_the_check_catches_a_wrong_order_a_lost_key_and_a_caught_default_key() -> None:
    east, north = (frozenset({0}), frozenset(), False), (frozenset({2}), frozenset(), False)
    original = [RouterEntry(0, 0xFFFFFFFE, *east), RouterEntry(3, FULL_MASK, *north)]
    general = RouterEntry(0, 0xFFFFFFFC, *east)
    with pytest.raises(InternalError, match="another route"):
        check_equivalent(original, [general, original[1]])
    with pytest.raises(InternalError, match="match no entry"):
        check_equivalent(original, [original[0]])
    with pytest.raises(InternalError, match="default routing"):
        check_equivalent(original[:1], [general], [(2, FULL_MASK)])


def test_tiny_router_fits_only_with_compression() -> None:
    # 40 PEs of chip (0, 0) send to PE 0 or PE 1 of chip (1, 1), alternately: at (1, 1) two
    # routes, but 40 interleaved key blocks that sibling merging cannot join.
    machine = machine_from_name("board", {"router_entries": 3})
    senders = [PECoord((0, 0), core) for core in range(40)]
    blocks = allocate_keys([3] * 40)
    flows = [
        Flow(key, mask, pe, frozenset({PECoord((1, 1), core % 2)}))
        for (key, mask), pe, core in zip(blocks, senders, range(40), strict=True)
    ]
    with pytest.raises(ResourceError, match="capacity is 3"):
        route_flows(flows, machine, compress=False)
    routing = route_flows(flows, machine)
    assert routing.compressed[(1, 1)] == 40
    assert max(len(table) for table in routing.tables.values()) <= 3
    assert_exact_delivery(flows, routing.tables, machine)


def test_zones_keep_a_layers_blocks_in_one_aligned_range() -> None:
    # Three senders of 4 packets, then one of 1: the first three share a zone of 4 x 4 keys.
    blocks = allocate_keys([4, 4, 4, 1])
    assert blocks[:3] == [(0, 0xFFFFFFFC), (4, 0xFFFFFFFC), (8, 0xFFFFFFFC)]
    assert blocks[3] == (16, FULL_MASK)
    # Zones that would overflow the key space fall back to packing without holes.
    assert allocate_keys([2, 2, 2, 8], key_bits=4) == [(0, 14), (2, 14), (4, 14), (8, 8)]
    # Zones of 8 + 8 + 1 keys overflow 4 bits: then blocks are packed without holes.
    assert allocate_keys([2, 2, 2, 8, 1], key_bits=4) == [
        (8, 14),
        (10, 14),
        (12, 14),
        (0, 8),
        (14, 15),
    ]


# -- end to end ---------------------------------------------------------------------------------


def test_compression_lets_a_tiny_router_run_the_multi_chip_model(tmp_path: Path, monkeypatch):
    model, inputs, expected, tolerances = load_case("multi_chip")
    machine_file = tmp_path / "tiny-routers.json"
    machine_file.write_text(json.dumps({"machine": "board", "router_entries": 5}))
    options = CompileOptions(mode="float", machine=str(machine_file), placer="cpsat")
    result = compile_model(model, options, emit=lambda text: None)
    assert max(len(chip.router) for chip in result.program.chips) <= 5
    outputs, _ = interpreter_outputs(backend.image.encode_image(result.program), inputs)
    for name, reference in expected.items():  # the interpreter errs on any misrouted packet
        np.testing.assert_allclose(
            outputs[name], reference, rtol=tolerances.rtol, atol=tolerances.atol
        )
    # The solver's estimate (entries where flows start or end, before merging) cannot meet five
    # entries: the report names the limit, and the greedy placement was used and compressed.
    report = json.loads(result.program.metadata["placement"])
    assert report["status"] == "infeasible"
    assert report["binding_limits"] == ["router entries per chip"]
    assert report["router_entries_max"] <= 5
    # Without compression, the same compile does not fit.
    uncompressed = functools.partial(backend.route.route_flows, compress=False)
    monkeypatch.setattr(backend.assemble, "route_flows", uncompressed)
    with pytest.raises(ResourceError, match="capacity is 5"):
        compile_model(model, options, emit=lambda text: None)


def test_cpsat_compile_is_deterministic_and_reported() -> None:
    model, _, _, _ = load_case("multi_chip")
    first = compile_model(model, CompileOptions(mode="float", placer="cpsat"), emit=lambda t: None)
    second = compile_model(model, CompileOptions(mode="float", placer="cpsat"), emit=lambda t: None)
    assert backend.image.encode_image(first.program) == backend.image.encode_image(second.program)
    report = json.loads(first.program.metadata["placement"])
    assert report["placer"] == "cpsat"
    assert report["objective"] <= report["greedy"]["objective"]
    assert "solve_seconds" not in report  # wall time would make images differ
    assert report["router_entries_max"] == max(len(c.router) for c in first.program.chips)


def test_placer_options_are_checked() -> None:
    with pytest.raises(InputError, match="--placer 'best'"):
        CompileOptions(mode="float", placer="best").check()
    with pytest.raises(InputError, match="--place-time must be > 0"):
        CompileOptions(mode="float", place_time=0).check()


def test_random_placements_never_beat_the_bound() -> None:
    # One PE per chip: every group is one bin, so any placement keeps the groups whole.
    rng = random.Random(3)
    machine = machine_from_name("board", {"usable_cores": 1})
    sizes, layers = [BUDGET] * 40, [i // 10 for i in range(40)]
    traffic = Traffic.of(
        [rng.randrange(40) for _ in range(200)],
        [rng.randrange(40) for _ in range(200)],
        [rng.randint(1, 99) for _ in range(200)],
    )
    bound = place_cpsat(sizes, layers, traffic, machine, QUICK).report.best_bound
    pes = [PECoord(chip, 0) for chip in machine.chips]
    for _ in range(20):
        placement = rng.sample(pes, 40)
        assert placement_cost(traffic, placement, machine).inter_chip >= bound


def test_cli_reports_the_placement_and_refuses_a_zero_time_limit(tmp_path: Path) -> None:
    import onnx
    from click.testing import CliRunner

    from s2c.cli import main

    model, _, _, _ = load_case("mlp")
    path = tmp_path / "mlp.onnx"
    onnx.save(model, str(path))
    runner = CliRunner()
    refused = runner.invoke(main, ["compile", str(path), "--place-time", "0"])
    assert refused.exit_code == 2
    assert refused.output.strip() == "error: --place-time must be > 0 seconds, got 0.0"
    image = tmp_path / "mlp.bin"
    compiled = runner.invoke(main, ["compile", str(path), "-o", str(image), "--placer", "cpsat"])
    assert compiled.exit_code == 0, compiled.output
    assert "placement         cpsat" in compiled.output
    inspected = runner.invoke(main, ["inspect", str(image), "--json"])
    report = json.loads(inspected.output)["placement"]
    for key in ("objective", "best_bound", "gap", "chips_used", "pes_per_chip", "greedy"):
        assert key in report
    assert report["inter_chip_traffic"] == 0 and report["router_entries_max"] >= 1
    assert report["greedy"]["chips_used"] == report["chips_used"] == 1
