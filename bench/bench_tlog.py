"""The hub's transparency log: what a checkpoint and a proof cost at 10k and 1M leaves (issue 21).

Real operations, on a real site database (SQLCipher) holding a log of N
leaves, each alternated in one loop with a baseline doing the same
cryptographic work without wardcrf's storage:

- log + checkpoint: `hublog.log_bundle` (one bundle's leaf and the perfect
  subtrees it completes, inserted) then `hublog.sign_checkpoint` (the root
  from stored subtree hashes, the C2SP note signed with Ed25519, stored) —
  what every import adds — vs the floor: the same leaf hash and node hashes
  in memory (`merkle.Tree`), the root from it and an Ed25519 signature of the
  same note text with `cryptography` directly;
- inclusion proof: `merkle.inclusion_proof` over the stored subtrees plus its
  verification, for a random leaf, vs the same proof from the in-memory tree;
- consistency proof: from a random earlier size to N, made and verified, vs
  the same from the in-memory tree.

The set-up (N leaves hashed and stored with executemany) is reported, not
compared.
"""

from __future__ import annotations

import random
import tempfile
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from generate import PASSWORD
from measure import alternate, once, row, single_row
from wardcrf.sync import hublog

from wardcrf import devicekeys, features
from wardcrf.site import Site
from wardcrf.tlog import checkpoint, merkle


def _fill(store, tree: merkle.Tree, n: int) -> None:
    """N applied bundles, their leaves and every perfect subtree, stored as the hub would have them."""
    sha = "ab" * 32
    rows = [(f"DEV{i % 100:03d}", i // 100 + 1, sha) for i in range(n)]
    for dev, seq, _ in rows:
        tree.append_hash(merkle.leaf_hash(hublog.leaf_text(dev, seq, sha, "applied")))
    with store.transaction():
        store.conn.executemany(
            "INSERT INTO sync_applied (device, bundle_seq, manifest_sha, first_seq, last_seq, chain_last, applied_at)"
            " VALUES (?,?,?,1,1,'', '2026-01-01T00:00:00Z')",
            rows,
        )
        store.conn.executemany(
            "INSERT INTO tlog_leaves (idx, leaf, device, bundle_seq, manifest_sha, status, logged_at)"
            " VALUES (?,?,?,?,?, 'applied', '2026-01-01T00:00:00Z')",
            ((i, tree.levels[0][i].hex(), d, s, h) for i, (d, s, h) in enumerate(rows)),
        )
        store.conn.executemany(
            "INSERT INTO tlog_nodes (level, idx, hash) VALUES (?,?,?)",
            ((lv, i, h) for lv, level in enumerate(tree.levels) for i, h in enumerate(level)),
        )


def run(quick: bool = False) -> list[dict]:
    features.install()  # a benchmark is a program: it installs the features before it opens a site
    sizes = (10_000, 100_000) if quick else (10_000, 1_000_000)
    rows: list[dict] = []
    rng = random.Random(21)
    for n in sizes:
        with tempfile.TemporaryDirectory() as tmp:
            init = Site.init(
                Path(tmp) / "hub", site="HUB", device_name="hub", admin="admin", password=PASSWORD
            )
            s = init.site.unlock("admin", PASSWORD)
            signer = devicekeys.signer(s)
            mirror = merkle.Tree()
            sample, _ = once(lambda s=s, mirror=mirror, n=n: _fill(s.store, mirror, n))
            rows.append(
                single_row(f"set-up: {n:,} leaves hashed and stored", sample, unit="s", note="set-up")
            )
            hublog.sign_checkpoint(s.store, signer)
            key = Ed25519PrivateKey.generate()
            origin = hublog.origin(s.store)
            state = {"seq": 10**9}

            def ours_append(_: int, s=s, signer=signer, state=state) -> None:
                state["seq"] += 1
                with s.store.transaction():
                    s.store.execute(
                        "INSERT INTO sync_applied (device, bundle_seq, manifest_sha, first_seq, last_seq,"
                        " chain_last, applied_at) VALUES ('NEW', ?, ?, 1, 1, '', '2026-01-01T00:00:00Z')",
                        (state["seq"], "cd" * 32),
                    )
                    hublog.log_bundle(s.store, "NEW", state["seq"], "applied")
                hublog.sign_checkpoint(s.store, signer)

            def base_append(_: int, mirror=mirror, key=key, origin=origin, state=state) -> None:
                state["seq"] += 1
                mirror.append_hash(
                    merkle.leaf_hash(hublog.leaf_text("NEW", state["seq"], "cd" * 32, "applied"))
                )
                cp = checkpoint.Checkpoint(origin, mirror.size, merkle.root(mirror))
                key.sign(cp.text().encode())

            pair = alternate(ours_append, base_append, 40)
            rows.append(
                row(
                    f"log one bundle + sign a checkpoint, {n:,} leaves",
                    pair,
                    unit="ms",
                    scale=1000,
                    baseline_name="in-memory tree: leaf + nodes + root, Ed25519 sign of the same note",
                )
            )
            nodes = hublog.StoreNodes(s.store)
            size = nodes.size

            def ours_incl(_: int, nodes=nodes, size=size) -> None:
                i = rng.randrange(size)
                p = merkle.inclusion_proof(nodes, i, size)
                merkle.verify_inclusion(i, size, nodes.perfect(0, i), p, merkle.root(nodes, size))

            def base_incl(_: int, mirror=mirror, size=size) -> None:
                i = rng.randrange(size)
                p = merkle.inclusion_proof(mirror, i, size)
                merkle.verify_inclusion(i, size, mirror.perfect(0, i), p, merkle.root(mirror, size))

            pair = alternate(ours_incl, base_incl, 200)
            rows.append(
                row(
                    f"inclusion proof, made and verified, {n:,} leaves",
                    pair,
                    unit="µs",
                    scale=1e6,
                    baseline_name="the same proof from the in-memory tree",
                )
            )

            def ours_cons(_: int, nodes=nodes, size=size) -> None:
                m = rng.randrange(1, size)
                p = merkle.consistency_proof(nodes, m, size)
                merkle.verify_consistency(m, size, merkle.root(nodes, m), merkle.root(nodes, size), p)

            def base_cons(_: int, mirror=mirror, size=size) -> None:
                m = rng.randrange(1, size)
                p = merkle.consistency_proof(mirror, m, size)
                merkle.verify_consistency(m, size, merkle.root(mirror, m), merkle.root(mirror, size), p)

            pair = alternate(ours_cons, base_cons, 200)
            rows.append(
                row(
                    f"consistency proof, made and verified, {n:,} leaves",
                    pair,
                    unit="µs",
                    scale=1e6,
                    baseline_name="the same proof from the in-memory tree",
                )
            )
            s.close()
    return rows


if __name__ == "__main__":
    import sys

    for r in run(quick="--quick" in sys.argv):
        print(r)
