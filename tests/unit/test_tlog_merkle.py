"""RFC 9162 Merkle trees: the transparency-dev probes, the reference roots, and properties."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wardcrf.errors import Refused
from wardcrf.tlog import merkle

DATA = Path(__file__).parent.parent / "data" / "tlog"

# transparency-dev/merkle testonly: the leaf inputs and the root of every prefix.
LEAVES = [
    bytes.fromhex(h)
    for h in (
        "",
        "00",
        "10",
        "2021",
        "3031",
        "40414243",
        "5051525354555657",
        "606162636465666768696a6b6c6d6e6f",
    )
]
ROOTS = [
    "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
]


def _probes(kind: str) -> list[tuple[str, dict]]:
    files = sorted((DATA / kind).rglob("*.json"))
    assert len(files) > 90, f"the {kind} probes are missing"
    return [(str(f.relative_to(DATA)), json.loads(f.read_text())) for f in files]


def _b(v: str | None) -> bytes:
    return base64.b64decode(v or "")


def _hashes(v: list[str] | None) -> list[bytes]:
    return [_b(h) for h in v or []]


def test_reference_roots_of_every_prefix():
    tree = merkle.Tree()
    assert merkle.root(tree).hex() == ROOTS[0]
    for i, leaf in enumerate(LEAVES):
        tree.append(leaf)
        assert merkle.root(tree).hex() == ROOTS[i + 1]
        for size in range(1, i + 2):
            assert merkle.root(tree, size).hex() == ROOTS[size]


@pytest.mark.parametrize(
    ("name", "probe"), _probes("inclusion"), ids=lambda v: v if isinstance(v, str) else ""
)
def test_inclusion_probe(name, probe):
    args = (
        probe["leafIdx"],
        probe["treeSize"],
        _b(probe["leafHash"]),
        _hashes(probe["proof"]),
        _b(probe["root"]),
    )
    if probe["wantErr"]:
        with pytest.raises(Refused):
            merkle.verify_inclusion(*args)
    else:
        merkle.verify_inclusion(*args)


@pytest.mark.parametrize(
    ("name", "probe"), _probes("consistency"), ids=lambda v: v if isinstance(v, str) else ""
)
def test_consistency_probe(name, probe):
    args = (probe["size1"], probe["size2"], _b(probe["root1"]), _b(probe["root2"]), _hashes(probe["proof"]))
    if probe["wantErr"]:
        with pytest.raises(Refused):
            merkle.verify_consistency(*args)
    else:
        merkle.verify_consistency(*args)


def test_our_proofs_are_the_probes_proofs():
    """The happy-path probes were made by Go's generator: ours must produce the same hashes."""
    tree = merkle.Tree([merkle.leaf_hash(x) for x in LEAVES])
    seen = 0
    for _name, p in _probes("inclusion"):
        if p["wantErr"] or p["treeSize"] > tree.size or not p["proof"]:
            continue
        if merkle.root(tree, p["treeSize"]) != _b(p["root"]):
            continue
        assert merkle.inclusion_proof(tree, p["leafIdx"], p["treeSize"]) == _hashes(p["proof"])
        seen += 1
    for _name, p in _probes("consistency"):
        if p["wantErr"] or p["size2"] > tree.size or not p["proof"]:
            continue
        if merkle.root(tree, p["size2"]) != _b(p["root2"]):
            continue
        assert merkle.consistency_proof(tree, p["size1"], p["size2"]) == _hashes(p["proof"])
        seen += 1
    assert seen >= 5  # the probes over the reference leaves (8 today)


@settings(max_examples=150, deadline=None)
@given(st.lists(st.binary(max_size=8), min_size=1, max_size=70), st.data())
def test_every_proof_we_make_verifies_and_a_changed_leaf_does_not(leaves, data):
    tree = merkle.Tree()
    for x in leaves:
        tree.append(x)
    n = tree.size
    size = data.draw(st.integers(1, n))
    index = data.draw(st.integers(0, size - 1))
    root = merkle.root(tree, size)
    proof = merkle.inclusion_proof(tree, index, size)
    merkle.verify_inclusion(index, size, merkle.leaf_hash(leaves[index]), proof, root)
    with pytest.raises(Refused):
        merkle.verify_inclusion(index, size, merkle.leaf_hash(leaves[index] + b"!"), proof, root)
    old = data.draw(st.integers(1, size))
    cproof = merkle.consistency_proof(tree, old, size)
    merkle.verify_consistency(old, size, merkle.root(tree, old), root, cproof)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.binary(max_size=4), min_size=2, max_size=40), st.data())
def test_a_rewritten_history_has_no_consistency_proof(leaves, data):
    """A hub that changes any of its first `old` leaves and re-grows the tree is caught."""
    old = data.draw(st.integers(1, len(leaves) - 1))
    changed = data.draw(st.integers(0, old - 1))
    honest = merkle.Tree([merkle.leaf_hash(x) for x in leaves])
    forged_leaves = list(leaves)
    forged_leaves[changed] = forged_leaves[changed] + b"forged"
    forged = merkle.Tree([merkle.leaf_hash(x) for x in forged_leaves])
    signed_before = merkle.root(honest, old)
    proof = merkle.consistency_proof(forged, old, forged.size)
    with pytest.raises(Refused, match=r"rewritten|does not lead"):
        merkle.verify_consistency(old, forged.size, signed_before, merkle.root(forged), proof)


def test_refusals_are_one_line_and_name_the_problem():
    tree = merkle.Tree([merkle.leaf_hash(b"a"), merkle.leaf_hash(b"b")])
    with pytest.raises(Refused, match="shrank"):
        merkle.verify_consistency(2, 1, merkle.root(tree), merkle.root(tree, 1), [])
    with pytest.raises(Refused, match="fork"):
        merkle.verify_consistency(2, 2, merkle.root(tree), merkle.root(tree, 1), [])
    with pytest.raises(Refused, match="bytes"):
        merkle.verify_inclusion(0, 2, b"short", [], merkle.root(tree))
    with pytest.raises(Refused, match="no inclusion proof"):
        merkle.inclusion_proof(tree, 2, 2)
    with pytest.raises(Refused, match="no consistency proof"):
        merkle.consistency_proof(tree, 1, 3)
