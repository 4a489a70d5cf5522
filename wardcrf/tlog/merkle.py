"""RFC 9162 (RFC 6962) Merkle trees: hashes, inclusion and consistency proofs.

The hub's transparency log (issue 21) makes every bundle it applies or holds a
leaf of one append-only tree. A ward, a witness or an auditor then needs two
things from the hub, and nothing else, to know the hub never rewrote history:
an *inclusion proof* (this bundle is leaf i of the tree of size n whose root
the hub signed) and a *consistency proof* (the tree of size n the hub signs
today extends the tree of size m it signed before). Both are the RFC's
algorithms exactly, so any RFC 6962 verifier (Go's transparency-dev/merkle,
sigstore's, Trillian's) agrees with ours; `tests/data/tlog/` holds the Go
package's own probes and every one of them is run against this module.

Generating proofs needs the hashes of subtrees. Every range the RFC's
recursion asks for starts at a multiple of its own largest power of two, so
it splits into O(log n) *perfect* subtrees; a `Nodes` source that can hand out
perfect-subtree hashes (an in-memory `Tree` here, the hub's table later) makes
any proof O(log² n) lookups, never a pass over the leaves.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Protocol

from ..errors import Refused

HASH_SIZE = 32
EMPTY_ROOT = hashlib.sha256(b"").digest()
"""The root of the tree with no leaves (RFC 9162 §2.1.1: the hash of the empty string)."""


def leaf_hash(data: bytes) -> bytes:
    """SHA-256(0x00 || data): a leaf, domain-separated from inner nodes."""
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """SHA-256(0x01 || left || right): an inner node."""
    return hashlib.sha256(b"\x01" + left + right).digest()


def _split(n: int) -> int:
    """The largest power of two smaller than n (n > 1): where the RFC splits a tree of n leaves."""
    return 1 << ((n - 1).bit_length() - 1)


class Nodes(Protocol):
    """Where a proof's hashes come from: the hash of a perfect subtree.

    `perfect(level, index)` is the root of the 2**level leaves starting at
    leaf index * 2**level; it is only asked for subtrees that lie wholly
    inside the tree.
    """

    @property
    def size(self) -> int: ...

    def perfect(self, level: int, index: int) -> bytes: ...


def subtree_root(nodes: Nodes, start: int, end: int) -> bytes:
    """MTH(D[start:end]) for a range the RFC's recursion produces (start a multiple of its split)."""
    n = end - start
    if n <= 0:
        return EMPTY_ROOT
    if n & (n - 1) == 0 and start % n == 0:
        return nodes.perfect(n.bit_length() - 1, start // n)
    k = _split(n)
    return node_hash(subtree_root(nodes, start, start + k), subtree_root(nodes, start + k, end))


def root(nodes: Nodes, size: int | None = None) -> bytes:
    """The root of the first `size` leaves (default: all of them)."""
    return subtree_root(nodes, 0, nodes.size if size is None else size)


def inclusion_proof(nodes: Nodes, index: int, size: int) -> list[bytes]:
    """PATH(index, D[size]) (RFC 9162 §2.1.3.1): from the leaf's sibling up to the root's child."""
    if not 0 <= index < size <= nodes.size:
        raise Refused(f"no inclusion proof for leaf {index} in a tree of {size} (the log holds {nodes.size})")
    path: list[bytes] = []
    start, end = 0, size
    while end - start > 1:
        k = _split(end - start)
        if index < start + k:
            path.append(subtree_root(nodes, start + k, end))
            end = start + k
        else:
            path.append(subtree_root(nodes, start, start + k))
            start += k
    path.reverse()
    return path


def consistency_proof(nodes: Nodes, old: int, new: int) -> list[bytes]:
    """PROOF(old, D[new]) (RFC 9162 §2.1.4.1): the tree of `new` leaves extends the one of `old`."""
    if not 0 <= old <= new <= nodes.size:
        raise Refused(f"no consistency proof from {old} to {new} leaves (the log holds {nodes.size})")
    if old == 0 or old == new:
        return []
    path: list[bytes] = []
    start, end, m, complete = 0, new, old, True
    while m != end - start:
        k = _split(end - start)
        if m <= k:
            path.append(subtree_root(nodes, start + k, end))
            end = start + k
        else:
            path.append(subtree_root(nodes, start, start + k))
            start, m, complete = start + k, m - k, False
    if not complete:
        path.append(subtree_root(nodes, start, end))
    path.reverse()
    return path


def _check_hashes(what: str, hashes: Sequence[bytes]) -> None:
    for h in hashes:
        if len(h) != HASH_SIZE:
            raise Refused(f"{what}: a hash of {len(h)} bytes (every hash is {HASH_SIZE})")


def root_from_inclusion(index: int, size: int, leaf: bytes, proof: Sequence[bytes]) -> bytes:
    """The root that `proof` binds leaf `index` of a tree of `size` to (RFC 9162 §2.1.3.2)."""
    _check_hashes("inclusion proof", [leaf, *proof])
    if not 0 <= index < size:
        raise Refused(f"inclusion proof: leaf {index} is not in a tree of {size}")
    fn, sn, r = index, size - 1, leaf
    for p in proof:
        if sn == 0:
            raise Refused(f"inclusion proof: {len(proof)} hashes, more than a tree of {size} needs")
        if fn & 1 or fn == sn:
            r = node_hash(p, r)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            r = node_hash(r, p)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise Refused(f"inclusion proof: {len(proof)} hashes, fewer than a tree of {size} needs")
    return r


def verify_inclusion(
    index: int, size: int, leaf: bytes, proof: Sequence[bytes], expected_root: bytes
) -> None:
    """Refuse unless `proof` shows leaf `index` is in the tree of `size` with `expected_root`."""
    if root_from_inclusion(index, size, leaf, proof) != expected_root:
        raise Refused(f"inclusion proof: leaf {index} is not in the signed tree of {size} (the roots differ)")


def verify_consistency(old: int, new: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]) -> None:
    """Refuse unless `proof` shows the tree of `new` leaves extends the tree of `old` (RFC 9162 §2.1.4.2).

    A hub that rewrote, dropped or re-grew anything in its first `old`
    leaves cannot produce one: this is how a ward or a witness catches it.
    """
    _check_hashes("consistency proof", proof)  # roots come from checkpoints, which check their own
    if not 0 <= old <= new:
        raise Refused(f"consistency proof: the log shrank from {old} to {new} leaves")
    if old == 0:
        # As Go's verifier: nothing was signed before, so there is nothing to be consistent
        # with; a caller that saw no checkpoint yet skips the check rather than asking.
        raise Refused("consistency proof: from the empty tree it proves nothing (no earlier checkpoint)")
    if old == new:
        if proof:
            raise Refused("consistency proof: a tree is consistent with itself by an empty proof")
        if old_root != new_root:
            raise Refused(f"consistency proof: two different roots for the same {old} leaves (a fork)")
        return
    if not proof:
        raise Refused(f"consistency proof: empty, from {old} to {new} leaves")
    path = list(proof)
    if old & (old - 1) == 0:
        path.insert(0, old_root)
    fn, sn = old - 1, new - 1
    while fn & 1:
        fn, sn = fn >> 1, sn >> 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise Refused(f"consistency proof: more hashes than {old} to {new} leaves needs")
        if fn & 1 or fn == sn:
            fr, sr = node_hash(c, fr), node_hash(c, sr)
            while not fn & 1 and fn != 0:
                fn, sn = fn >> 1, sn >> 1
        else:
            sr = node_hash(sr, c)
        fn, sn = fn >> 1, sn >> 1
    if sn != 0:
        raise Refused(f"consistency proof: fewer hashes than {old} to {new} leaves needs")
    if fr != old_root:
        raise Refused(
            f"consistency proof: the log's first {old} leaves are not the ones signed before (rewritten)"
        )
    if sr != new_root:
        raise Refused(f"consistency proof: does not lead to the signed root of {new} leaves")


class Tree:
    """An append-only tree in memory, keeping every perfect subtree's hash (a `Nodes`).

    `levels[l][i]` is the root of leaves i*2**l .. (i+1)*2**l - 1; appending a
    leaf completes at most one node per level, so the tree costs O(1)
    amortised per leaf and about two hashes of memory per leaf. The hub's log
    keeps the same levels in its database.
    """

    def __init__(self, leaves: Sequence[bytes] = ()) -> None:
        self.levels: list[list[bytes]] = [[]]
        for leaf in leaves:
            self.append_hash(leaf)

    @property
    def size(self) -> int:
        return len(self.levels[0])

    def append(self, data: bytes) -> int:
        """Add a leaf's data; returns its index."""
        return self.append_hash(leaf_hash(data))

    def append_hash(self, leaf: bytes) -> int:
        """Add a leaf by its leaf hash; returns its index."""
        _check_hashes("leaf", [leaf])
        index = self.size
        h, level = leaf, 0
        while True:
            row = self.levels[level]
            row.append(h)
            if len(row) % 2:
                break
            h = node_hash(row[-2], row[-1])
            level += 1
            if level == len(self.levels):
                self.levels.append([])
        return index

    def perfect(self, level: int, index: int) -> bytes:
        return self.levels[level][index]
