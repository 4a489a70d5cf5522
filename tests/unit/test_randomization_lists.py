"""The allocation-list generator: ratio, blocks, strata, reproducibility (issue 20, bullet 1)."""

from __future__ import annotations

import collections
import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import stats

from wardcrf.engine import model
from wardcrf.errors import Refused
from wardcrf.randomization import lists
from wardcrf.randomization.design import Design, Factor, design_of

SEED = bytes(range(32))


def _design(arms: tuple[tuple[str, int], ...], sizes: tuple[int, ...], factors=(), reveal="arm") -> Design:
    return Design(
        protocol_id="T",
        protocol_version="1",
        protocol_sha256="0" * 64,
        arms=arms,
        block_sizes=sizes,
        stratify_by=("site", *(f.code for f in factors)),
        factors=tuple(factors),
        reveal=reveal,
        unblinding={},
    )


ONE_ONE = _design((("A", 1), ("B", 1)), (2, 4))
TWO_ONE = _design((("ACTIVE", 2), ("PLACEBO", 1)), (3, 6), reveal="kit")
FOUR = _design(
    (("ZMAPP", 1), ("RDV", 1), ("MAB114", 1), ("REGNEB3", 1)),
    (4, 8),
    factors=(Factor("ct_np", ("HIGH", "LOW")),),
)


def _check_blocks(alloc: lists.AllocationList) -> None:
    """Every block is whole, of an allowed size, and holds the ratio exactly."""
    d = alloc.design
    for stratum, entries in alloc.by_stratum().items():
        assert [e.position for e in entries] == list(range(1, len(entries) + 1)), stratum
        blocks: dict[int, list[lists.Entry]] = collections.defaultdict(list)
        for e in entries:
            blocks[e.block].append(e)
        assert sorted(blocks) == list(range(1, len(blocks) + 1))
        for number, members in blocks.items():
            size = members[0].block_size
            assert size in d.block_sizes, (stratum, number)
            assert len(members) == size, (stratum, number)
            counts = collections.Counter(e.arm for e in members)
            assert counts == {arm: w * size // d.ratio_sum for arm, w in d.arms}, (stratum, number)
        assert len(entries) >= alloc.per_stratum
        assert len(entries) - alloc.per_stratum < max(d.block_sizes)


@pytest.mark.parametrize("design", [ONE_ONE, TWO_ONE, FOUR], ids=["1:1", "2:1", "1:1:1:1"])
def test_every_block_of_every_stratum_is_whole_allowed_and_holds_the_ratio(design: Design) -> None:
    alloc = lists.generate(design, "WUH01", 50, SEED, "L1")
    _check_blocks(alloc)
    assert set(alloc.by_stratum()) == set(design.strata("WUH01"))


def test_strata_are_the_product_of_site_and_the_protocol_factors() -> None:
    assert FOUR.strata("S1") == ["site=S1;ct_np=HIGH", "site=S1;ct_np=LOW"]
    assert FOUR.stratum_of("S1", {"ct_np": "LOW"}) == "site=S1;ct_np=LOW"
    with pytest.raises(Refused, match=r"stratum factor ct_np needs a level .*HIGH, LOW"):
        FOUR.stratum_of("S1", {})
    with pytest.raises(Refused, match="'MID' is not a level of stratum factor ct_np"):
        FOUR.stratum_of("S1", {"ct_np": "MID"})
    with pytest.raises(Refused, match="'age' is not a stratification factor"):
        FOUR.stratum_of("S1", {"ct_np": "LOW", "age": "OLD"})


@pytest.mark.parametrize("design", [ONE_ONE, TWO_ONE, FOUR], ids=["1:1", "2:1", "1:1:1:1"])
def test_chi_square_of_ten_thousand_allocations_sits_within_the_ratio(design: Design) -> None:
    """10,000 allocations (one stratum, a real CSPRNG seed): the counts fit the ratio (chi-square p > 0.001).

    Blocks force near-exact balance, so the test is a loose bound; it fails on a
    generator that ignores a weight or drops an arm, which is what it is for.
    """
    alloc = lists.generate(
        dataclasses.replace(design, stratify_by=(), factors=()), "S", 10_000, lists.new_seed(), "X"
    )
    counts = collections.Counter(e.arm for e in alloc.entries[:10_000])
    n = sum(counts.values())
    expected = [n * w / design.ratio_sum for _, w in design.arms]
    observed = [counts[a] for a, _ in design.arms]
    assert stats.chisquare(observed, expected).pvalue > 0.001
    # and no arm drifts from its share by more than one block's worth
    for (arm, _w), exp in zip(design.arms, expected, strict=True):
        assert abs(counts[arm] - exp) <= max(design.block_sizes)


def test_block_sizes_are_drawn_from_the_allowed_set_in_both_sizes() -> None:
    alloc = lists.generate(ONE_ONE, "S", 2000, lists.new_seed(), "L")
    sizes = collections.Counter(e.block_size for e in alloc.entries)
    assert set(sizes) == {2, 4}  # both sizes used: random sizes, not one fixed block


def test_the_same_seed_gives_the_same_list_and_another_seed_another() -> None:
    a = lists.generate(FOUR, "S", 40, SEED, "L1")
    b = lists.generate(FOUR, "S", 40, SEED, "L1")
    c = lists.generate(FOUR, "S", 40, bytes(32), "L1")
    assert a.document() == b.document() and a.sha256() == b.sha256()
    assert a.sha256() != c.sha256()
    assert [e.arm for e in a.entries] != [e.arm for e in c.entries]


def test_blinded_lists_carry_unique_kit_numbers_that_say_nothing_of_the_arm() -> None:
    alloc = lists.generate(TWO_ONE, "S", 300, SEED, "L")
    kits = [e.kit for e in alloc.entries]
    assert all(k is not None and k.startswith("K") for k in kits)
    assert len(set(kits)) == len(kits)
    assert lists.generate(ONE_ONE, "S", 4, SEED, "L").entries[0].kit is None


def test_seed_comes_from_the_os_csprng() -> None:
    seeds = {lists.new_seed() for _ in range(50)}
    assert len(seeds) == 50 and all(len(s) == 32 for s in seeds)


def test_stream_draws_are_uniform_without_modulo_bias() -> None:
    stream = lists.Stream(SEED, "uniformity")
    counts = collections.Counter(stream.below(3) for _ in range(30_000))
    assert stats.chisquare([counts[i] for i in range(3)]).pvalue > 0.001


def test_shipped_protocols_give_their_designs() -> None:
    palm = design_of(model.shipped("palm.toml"))
    assert palm.ratio_text() == "1:1:1:1" and palm.reveal == "arm"
    assert palm.strata("KIN") == ["site=KIN;ct_np=HIGH", "site=KIN;ct_np=LOW"]
    p007 = design_of(model.shipped("palm007.toml"))
    assert p007.blinded and p007.ratio_text() == "1:1"
    assert p007.unblinding["roles"] == ["investigator"] and p007.unblinding["witness"] is True


def test_a_block_size_that_cannot_hold_the_ratio_is_refused_naming_it() -> None:
    source = model.shipped_source("palm.toml").replace("block_sizes = [4, 8]", "block_sizes = [4, 6]")
    with pytest.raises(Refused, match="block size 6 is not a multiple of the ratio 1:1:1:1"):
        design_of(model.parse(source, "palm.toml"))


def test_a_protocol_without_randomization_is_refused() -> None:
    with pytest.raises(Refused, match="no \\[randomization\\] table"):
        design_of(model.shipped("mexcovid.toml"))


@settings(max_examples=60, deadline=None)
@given(
    weights=st.lists(st.integers(1, 3), min_size=2, max_size=4),
    multiples=st.lists(st.integers(1, 3), min_size=1, max_size=3, unique=True),
    levels=st.integers(1, 3),
    per_stratum=st.integers(1, 40),
    seed=st.binary(min_size=32, max_size=32),
)
def test_property_any_ratio_any_blocks_any_strata_keeps_the_block_structure(
    weights: list[int], multiples: list[int], levels: int, per_stratum: int, seed: bytes
) -> None:
    arms = tuple((f"ARM{i}", w) for i, w in enumerate(weights))
    total = sum(weights)
    factor = Factor("f", tuple(f"L{i}" for i in range(levels)))
    design = _design(arms, tuple(sorted(m * total for m in multiples)), factors=(factor,))
    alloc = lists.generate(design, "S", per_stratum, seed, "P")
    _check_blocks(alloc)
    assert len(alloc.by_stratum()) == levels
