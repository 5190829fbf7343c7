"""Tests of placement, key allocation and multicast routing.

Routes are checked by walking packets through the tables (`simulate_delivery`) and comparing the
PEs and host they reach with the flows' targets; expected tables for small cases are written out
from the SpiNN-5 board geometry (the chips one hop from (0, 0) are (0, 1), (1, 0) and (1, 1)).
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterable, Mapping, Sequence

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from backend.hardware import Machine, machine_from_name
from backend.keys import allocate_keys, block_size
from backend.place import PlacementSummary, chip_order, place_greedy, suggest_machine
from backend.program import LINK_NAMES, PECoord, RouterEntry
from backend.route import HOST, Flow, TableIndex, Target, route_flows, simulate_delivery
from ir.errors import InternalError, ResourceError

BOARD = machine_from_name("board")
FOUR_BOARDS = machine_from_name("2x2-boards")
TORUS = machine_from_name("3x1-boards")  # three boards tile a 12x12 torus: every chip has 6 links
BUDGET = BOARD.chip_spec.data_bytes  # 92 KiB of SRAM data per PE
FULL_MASK = 0xFFFFFFFF
EAST, NORTH_EAST, NORTH, WEST = (LINK_NAMES.index(name) for name in ("E", "NE", "N", "W"))
RouterTables = Mapping[tuple[int, int], Sequence[RouterEntry]]


def small_machine(name: str = "board", **overrides: object) -> Machine:
    return machine_from_name(name, overrides)


# -- placement ----------------------------------------------------------------------------------


@st.composite
def slices(draw: st.DrawFn) -> tuple[list[int], list[int]]:
    """Slice sizes and layers in a topological order: layers in runs, sizes up to one PE."""
    run_lengths = draw(st.lists(st.integers(1, 12), min_size=1, max_size=8))
    sizes, layers = [], []
    for layer, length in enumerate(run_lengths):
        sizes += draw(st.lists(st.integers(0, BUDGET), min_size=length, max_size=length))
        layers += [layer] * length
    return sizes, layers


@settings(max_examples=60, deadline=None)
@given(slices(), st.booleans())
def test_placement_respects_capacity_and_layers(
    sliced: tuple[list[int], list[int]], share: bool
) -> None:
    sizes, layers = sliced
    placement = place_greedy(sizes, BOARD, layers, share_pe_across_layers=share)
    assert len(placement) == len(sizes)
    used: dict[PECoord, int] = {}
    layers_on: dict[PECoord, set[int]] = {}
    for pe, size, layer in zip(placement, sizes, layers, strict=True):
        assert BOARD.has_chip(pe.chip) and pe.core in BOARD.usable_cores(pe.chip)
        used[pe] = used.get(pe, 0) + size
        layers_on.setdefault(pe, set()).add(layer)
    assert max(used.values()) <= BUDGET
    if not share:
        assert all(len(on_pe) == 1 for on_pe in layers_on.values())
    assert place_greedy(sizes, BOARD, layers, share_pe_across_layers=share) == placement


def test_placement_fills_pes_in_raster_order() -> None:
    machine = small_machine(usable_cores=2)
    half = BUDGET // 2
    # Two halves share core 0; a third half opens core 1; a new layer opens the next chip, which
    # is the lowest (x, y) one hop from the host: (0, 1).
    placement = place_greedy([half, half, half, 10, 10], machine, [0, 0, 0, 1, 1])
    assert placement == [
        PECoord((0, 0), 0),
        PECoord((0, 0), 0),
        PECoord((0, 0), 1),
        PECoord((0, 1), 0),
        PECoord((0, 1), 0),
    ]
    assert chip_order(machine)[:4] == [(0, 0), (0, 1), (1, 0), (1, 1)]


def test_placement_shares_pes_across_layers_when_asked() -> None:
    separate = place_greedy([100, 100, 100], BOARD, [0, 1, 2])
    shared = place_greedy([100, 100, 100], BOARD, [0, 1, 2], share_pe_across_layers=True)
    assert len(set(separate)) == 3
    assert set(shared) == {PECoord((0, 0), 0)}


def test_placement_summary_counts_pes_per_chip() -> None:
    machine = small_machine(usable_cores=2)
    placement = place_greedy([BUDGET] * 5, machine, [0] * 5)
    summary = PlacementSummary.of(placement)
    assert summary.pes_by_chip == {(0, 0): 2, (0, 1): 2, (1, 0): 1}
    assert (summary.chips_used, summary.pes_used) == (3, 5)
    assert summary.describe().startswith("5 PEs on 3 chips")


def test_slice_larger_than_a_pe_is_a_resource_error() -> None:
    with pytest.raises(ResourceError) as error:
        place_greedy([10, 20, BUDGET + 1], BOARD, [0, 0, 3])
    message = str(error.value)
    assert f"slice 2 of layer 3 needs {BUDGET + 1} bytes of SRAM, a PE has {BUDGET}" in message
    names = ["a", "b", "slice 0 of 'conv_3'"]
    with pytest.raises(ResourceError, match=f"^slice 0 of 'conv_3' needs {BUDGET + 1} bytes"):
        place_greedy([10, 20, BUDGET + 1], BOARD, [0, 0, 3], slice_names=names)


def test_too_few_pes_names_need_capacity_and_a_machine_that_fits() -> None:
    chip = machine_from_name("chip")
    usable = chip.chip_spec.usable_core_count
    with pytest.raises(ResourceError) as error:
        place_greedy([BUDGET] * (usable + 1), chip, [0] * (usable + 1))
    message = str(error.value)
    assert f"needs {usable + 1} PEs" in message and f"has {usable}" in message
    assert "--machine board" in message


def test_pe_count_includes_the_layer_rule() -> None:
    # Six tiny slices of six layers need six PEs when PEs keep to one layer.
    machine = small_machine("chip", usable_cores=4)
    with pytest.raises(ResourceError, match="needs 6 PEs, machine 'chip' has 4"):
        place_greedy([1] * 6, machine, list(range(6)))
    assert len(place_greedy([1] * 6, machine, list(range(6)), share_pe_across_layers=True)) == 6


@pytest.mark.parametrize("boards_needed", [2, 3, 4, 6, 7])
def test_suggested_machine_exists_and_fits(boards_needed: int) -> None:
    usable = BOARD.chip_spec.usable_core_count
    pes_needed = (boards_needed - 1) * 48 * usable + 1
    name = suggest_machine(pes_needed, usable)
    assert name is not None
    suggested = machine_from_name(name)
    assert len(suggested.boards) == boards_needed
    assert suggested.pe_count >= pes_needed


def test_suggestions_for_small_and_impossible_needs() -> None:
    usable = BOARD.chip_spec.usable_core_count
    assert suggest_machine(usable, usable) == "chip"
    assert suggest_machine(usable + 1, usable) == "board"
    assert suggest_machine(48 * usable + 1, usable) == "1x2-boards"
    assert suggest_machine(3 * 48 * usable + 1, usable) == "2x2-boards"
    assert suggest_machine(720 * 48 * usable + 1, usable) is None


# -- keys ---------------------------------------------------------------------------------------


def test_keys_of_a_small_example() -> None:
    # Sizes 4, 1, 8, 1: the 8-block first at 0, then the 4-block at 8, then the ones in order.
    assert allocate_keys([3, 1, 8, 0]) == [
        (8, 0xFFFFFFFC),
        (12, 0xFFFFFFFF),
        (0, 0xFFFFFFF8),
        (13, 0xFFFFFFFF),
    ]


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(0, 5000), max_size=60))
def test_key_blocks_are_aligned_disjoint_and_in_order(packet_counts: list[int]) -> None:
    blocks = allocate_keys(packet_counts)
    assert len(blocks) == len(packet_counts)
    spans = []
    for count, (key, mask) in zip(packet_counts, blocks, strict=True):
        size = (FULL_MASK & ~mask) + 1
        assert size & (size - 1) == 0, "block size is a power of two"
        assert max(count, 1) <= size < 2 * max(count, 1)
        assert key % size == 0 and key & ~mask == 0
        spans.append((key, key + size))
    spans.sort()
    assert all(stop <= start for (_, stop), (start, _) in itertools.pairwise(spans))
    assert allocate_keys(packet_counts) == blocks


def test_block_size_is_the_next_power_of_two() -> None:
    assert [block_size(count) for count in (0, 1, 2, 3, 4, 5, 1000)] == [1, 1, 2, 4, 4, 8, 1024]


def test_key_space_overflow_is_a_resource_error() -> None:
    assert allocate_keys([2**31, 2**31])[1] == (2**31, 0x80000000)
    with pytest.raises(ResourceError, match="3 senders need 4294967297 keys"):
        allocate_keys([2**31, 2**31, 1])
    with pytest.raises(ResourceError, match="a 4-bit key holds 16"):
        allocate_keys([5, 5, 5], key_bits=4)


# -- routes -------------------------------------------------------------------------------------


def all_pes(machine: Machine) -> list[PECoord]:
    return [PECoord(chip, core) for chip in machine.chips for core in machine.usable_cores(chip)]


def random_flows(machine: Machine, rng: random.Random, count: int) -> list[Flow]:
    """Flows from random PEs (or the host) to 1-6 random PEs (sometimes also the host)."""
    pes = all_pes(machine)
    blocks = allocate_keys([rng.randint(0, 300) for _ in range(count)])
    flows = []
    for key, mask in blocks:
        source = None if rng.random() < 0.1 else rng.choice(pes)
        targets: set[Target] = set(rng.sample(pes, rng.randint(1, 6)))
        if rng.random() < 0.1:
            targets.add(HOST)
        flows.append(Flow(key, mask, source, frozenset(targets)))
    return flows


def assert_exact_delivery(flows: list[Flow], tables: RouterTables, machine: Machine) -> None:
    """Every flow's first and last key reach exactly its targets, with no problem on the way."""
    index = TableIndex(tables)
    for flow in flows:
        for key in (flow.key, flow.key | (FULL_MASK & ~flow.mask)):
            delivery = simulate_delivery(index, machine, key, flow.source)
            assert delivery.problems == ()
            assert delivery.pes == {target for target in flow.targets if target != HOST}
            assert delivery.host == (HOST in flow.targets)


@pytest.mark.parametrize("merge", [True, False])
@pytest.mark.parametrize("machine", [BOARD, FOUR_BOARDS, TORUS], ids=lambda m: m.name)
def test_random_flows_reach_exactly_their_targets(machine: Machine, merge: bool) -> None:
    flows = random_flows(machine, random.Random(7), 300)
    result = route_flows(flows, machine, merge=merge)
    assert_exact_delivery(flows, result.tables, machine)
    for flow, hops in zip(flows[:50], result.hops_by_flow, strict=False):
        assert simulate_delivery(result.tables, machine, flow.key, flow.source).hops == hops
    for entries in result.tables.values():
        assert entries == sorted(entries, key=lambda entry: (entry.key, entry.mask))
    assert route_flows(flows, machine, merge=merge).tables == result.tables


@st.composite
def flow_groups(draw: st.DrawFn, machine: Machine) -> list[Flow]:
    """Groups of flows with one source, one target set and one packet count, so that their key
    blocks are often siblings and their entries mergeable."""
    pes = st.sampled_from(all_pes(machine))
    groups = draw(
        st.lists(
            st.tuples(
                st.none() | pes,
                st.sets(pes, min_size=0, max_size=5),
                st.booleans(),
                st.integers(0, 40),
                st.integers(1, 4),
            ),
            min_size=1,
            max_size=12,
        )
    )
    counts, routes = [], []
    for source, targets, to_host, packets, size in groups:
        chosen: set[Target] = set(targets)
        if to_host or not targets:
            chosen.add(HOST)
        counts += [packets] * size
        routes += [(source, frozenset(chosen))] * size
    blocks = allocate_keys(counts)
    return [
        Flow(key, mask, source, targets)
        for (key, mask), (source, targets) in zip(blocks, routes, strict=True)
    ]


@settings(max_examples=40, deadline=None)
@given(st.data())
def test_property_every_key_reaches_exactly_its_targets(data: st.DataObject) -> None:
    machine = data.draw(st.sampled_from([BOARD, TORUS]), label="machine")
    flows = data.draw(flow_groups(machine), label="flows")
    merged = route_flows(flows, machine)
    assert_exact_delivery(flows, merged.tables, machine)
    unmerged = route_flows(flows, machine, merge=False)
    assert_exact_delivery(flows, unmerged.tables, machine)
    assert merged.entry_count <= unmerged.entry_count == merged.entries_before_merge


def test_straight_line_needs_entries_only_at_its_ends() -> None:
    # (0, 0) to (4, 0) runs east along row 0: chips (1..3, 0) only pass the packet straight on.
    flow = Flow(0, FULL_MASK, PECoord((0, 0), 0), frozenset({PECoord((4, 0), 5)}))
    result = route_flows([flow], BOARD)
    assert result.hops_by_flow == [4]
    assert result.tables == {
        (0, 0): [RouterEntry(0, FULL_MASK, frozenset({EAST}), frozenset())],
        (4, 0): [RouterEntry(0, FULL_MASK, frozenset(), frozenset({5}))],
    }
    assert result.entry_count < result.hops_by_flow[0]
    assert result.default_routed == 3
    delivery = simulate_delivery(result.tables, BOARD, 0, flow.source)
    assert delivery.pes == {PECoord((4, 0), 5)} and delivery.hops == 4


def test_a_turn_and_a_branch_need_entries() -> None:
    # (0, 0) to (2, 1): east to (1, 0), where the packet turns north-east. From the host, a flow
    # to (0, 1) and (1, 1) branches at the host chip.
    turn = Flow(0, FULL_MASK, PECoord((0, 0), 0), frozenset({PECoord((2, 1), 0)}))
    branch = Flow(1, FULL_MASK, None, frozenset({PECoord((0, 1), 0), PECoord((1, 1), 0)}))
    result = route_flows([turn, branch], BOARD)
    assert result.tables[(1, 0)] == [
        RouterEntry(0, FULL_MASK, frozenset({NORTH_EAST}), frozenset())
    ]
    assert result.tables[(0, 0)][1] == RouterEntry(
        1, FULL_MASK, frozenset({NORTH, NORTH_EAST}), frozenset()
    )
    assert result.hops_by_flow == [2, 2]


def test_host_delivery_is_flagged_on_the_host_chip() -> None:
    flow = Flow(0, FULL_MASK, PECoord((3, 3), 7), frozenset({HOST}))
    result = route_flows([flow], BOARD)
    host_entry = result.tables[BOARD.host_chip]
    assert host_entry == [RouterEntry(0, FULL_MASK, frozenset(), frozenset(), host=True)]
    delivery = simulate_delivery(result.tables, BOARD, 0, flow.source)
    assert delivery.host and delivery.pes == frozenset()


def test_sibling_blocks_with_one_route_merge() -> None:
    source, target = PECoord((0, 0), 0), frozenset({PECoord((2, 1), 3)})
    other_target = frozenset({PECoord((2, 1), 4)})
    flows = [
        Flow(0, FULL_MASK, source, target),
        Flow(1, FULL_MASK, source, target),  # sibling of key 0, same route: merged
        Flow(2, FULL_MASK, source, target),  # sibling is key 3, which routes elsewhere
        Flow(3, FULL_MASK, source, other_target),
    ]
    result = route_flows(flows, BOARD)
    assert [(entry.key, entry.mask) for entry in result.tables[(1, 0)]] == [(0, 0xFFFFFFFC)]
    assert [(entry.key, entry.mask) for entry in result.tables[(2, 1)]] == [
        (0, 0xFFFFFFFE),
        (2, FULL_MASK),
        (3, FULL_MASK),
    ]
    # (0, 0) and (1, 0) route all four keys alike: one entry each; (2, 1) delivers to two PEs.
    assert result.entries_before_merge == 12 and result.entry_count == 5
    assert_exact_delivery(flows, result.tables, BOARD)
    unmerged = route_flows(flows, BOARD, merge=False)
    assert unmerged.entry_count == 12


def test_router_capacity_is_checked() -> None:
    machine = small_machine(router_entries=2)
    source = PECoord((0, 0), 0)
    flows = [Flow(key, FULL_MASK, source, frozenset({PECoord((0, 0), key)})) for key in range(3)]
    with pytest.raises(
        ResourceError, match=r"router of chip \(0, 0\) needs 3 entries, capacity is 2"
    ):
        route_flows(flows, machine)
    assert route_flows(flows[:2], machine).entry_count == 2


@pytest.mark.parametrize(
    ("flow", "problem"),
    [
        (Flow(1, 0xFFFFFFFE, None, frozenset({PECoord((0, 0), 0)})), "bits outside the mask"),
        (Flow(0, FULL_MASK, None, frozenset()), "no targets"),
        (Flow(0, FULL_MASK, None, frozenset({PECoord((9, 9), 0)})), "not a usable PE"),
        (Flow(0, FULL_MASK, PECoord((0, 0), 148), frozenset({HOST})), "not a usable PE"),
    ],
)
def test_malformed_flows_are_internal_errors(flow: Flow, problem: str) -> None:
    with pytest.raises(InternalError, match=problem):
        route_flows([flow], BOARD)


def test_overlapping_key_blocks_are_internal_errors() -> None:
    target = frozenset({PECoord((0, 0), 0)})
    with pytest.raises(InternalError, match="share keys"):
        route_flows([Flow(0, 0xFFFFFFF0, None, target), Flow(4, 0xFFFFFFFC, None, target)], BOARD)
    with pytest.raises(InternalError, match="share keys"):  # a mask that is not a prefix
        route_flows([Flow(0, 0xFFFFFFFD, None, target), Flow(2, 0xFFFFFFFF, None, target)], BOARD)
    route_flows([Flow(0, 0xFFFFFFFD, None, target), Flow(1, 0xFFFFFFFF, None, target)], BOARD)


# -- simulate_delivery on hand-made tables ------------------------------------------------------


def entry(
    key: int, links: Iterable[int] = (), pes: Iterable[int] = (), host: bool = False
) -> RouterEntry:
    return RouterEntry(key, FULL_MASK, frozenset(links), frozenset(pes), host)


def test_no_entry_on_the_source_chip_drops_the_packet() -> None:
    delivery = simulate_delivery({}, BOARD, 0, PECoord((0, 0), 0))
    assert delivery.pes == frozenset() and "dropped" in delivery.problems[0]


def test_loops_missing_links_and_misplaced_host_are_reported() -> None:
    loop = {(0, 0): [entry(0, {EAST})], (1, 0): [entry(0, {WEST})]}
    assert "reaches chip (0, 0) twice" in simulate_delivery(loop, BOARD, 0, None).problems[0]
    missing = {(0, 0): [entry(0, {WEST})]}  # the board has no chip west of (0, 0)
    assert "missing link W" in simulate_delivery(missing, BOARD, 0, None).problems[0]
    misplaced = {(1, 0): [entry(0, host=True)]}
    delivery = simulate_delivery(misplaced, BOARD, 0, PECoord((1, 0), 0))
    assert not delivery.host and "not the host chip" in delivery.problems[0]


def test_default_routing_runs_straight_until_an_entry_matches() -> None:
    tables = {(0, 0): [entry(0, {EAST})], (3, 0): [entry(0, pes={2})]}
    delivery = simulate_delivery(tables, BOARD, 0, None)
    assert delivery.pes == {PECoord((3, 0), 2)} and delivery.hops == 3
    # Without the entry at (3, 0) the packet runs off the board's edge after (4, 0).
    edge = simulate_delivery({(0, 0): [entry(0, {EAST})]}, BOARD, 0, None)
    assert "missing link E" in edge.problems[0]


def test_first_matching_entry_wins() -> None:
    wide = RouterEntry(0, 0xFFFFFFF0, frozenset(), frozenset({1}))  # keys 0..15
    narrow = RouterEntry(0, FULL_MASK, frozenset(), frozenset({2}))  # key 0
    for table, core_for_key_0 in (([wide, narrow], 1), ([narrow, wide], 2)):
        for tables in ({(0, 0): table}, TableIndex({(0, 0): table})):
            delivered = simulate_delivery(tables, BOARD, 0, None).pes
            assert delivered == {PECoord((0, 0), core_for_key_0)}
            assert simulate_delivery(tables, BOARD, 5, None).pes == {PECoord((0, 0), 1)}


@settings(max_examples=100, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 255), st.integers(0, 255)), min_size=1, max_size=30),
    st.lists(st.integers(0, 255), min_size=1, max_size=20),
)
def test_table_index_finds_the_first_match(blocks: list[tuple[int, int]], keys: list[int]) -> None:
    entries = [
        RouterEntry(key & mask, mask, frozenset(), frozenset({position}))
        for position, (key, mask) in enumerate(blocks)
    ]
    index = TableIndex({(0, 0): entries})
    for key in keys:
        expected = next((e for e in entries if key & e.mask == e.key), None)
        assert index.first_match((0, 0), key) == expected


# -- scale --------------------------------------------------------------------------------------


def test_ten_thousand_flows_on_a_board_route_exactly() -> None:
    # Scale check; its speed is measured in benchmarks/, never asserted here.
    flows = random_flows(BOARD, random.Random(1), 10_000)
    result = route_flows(flows, BOARD)
    assert_exact_delivery(flows[::50], result.tables, BOARD)
