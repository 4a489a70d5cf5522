"""The hub's transparency log end to end: leaves, checkpoints, receipts, and a rewritten hub caught (issue 21).

Each test drives a real ward and hub through export, import and receipt, as
`wardcrf sync` does over USB. The attack is the issue's: someone holding the
hub's raw database key rewrites its history (drops a bundle, re-grows the
tree) and the hub, still holding its signing key, signs a fresh checkpoint.
The ward that kept the hub's earlier checkpoint must say so at its next sync.
"""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hub_engines import ledger
from insider import raw_key
from synckit import add_notes, connect, make_hub, make_ward, open_
from wardcrf.sync import hub, hublog, ward

from wardcrf import devicekeys
from wardcrf.errors import Refused
from wardcrf.store import Store
from wardcrf.tlog import checkpoint, merkle, note


def _round(tmp: Path, w, h, n: int = 2, tag: str = "r") -> str:
    """Ward adds notes, exports; hub imports; ward applies the receipt. Returns the ward's summary."""
    add_notes(w, n, text=tag)
    usb = tmp / f"usb-{tag}"
    usb.mkdir()
    s = open_(w)
    try:
        files = ward.export(s, usb).files
    finally:
        s.close()
    hs = open_(h)
    try:
        res = hub.import_file(hs, files[-1])
    finally:
        hs.close()
    name, data, sig = res.receipt
    (usb / name).write_bytes(data)
    (usb / (name + ".minisig")).write_bytes(sig)
    s = open_(w)
    try:
        return ward.import_file(s, usb / name)
    finally:
        s.close()


def _seen(w) -> tuple[int, str] | None:
    s = open_(w)
    try:
        row = s.store.one("SELECT size, root FROM tlog_seen")
        return None if row is None else (int(row[0]), str(row[1]))
    finally:
        s.close()


def _hub_verifier(h) -> note.Verifier:
    hs = open_(h)
    try:
        return hublog.own_verifier(hs.store)
    finally:
        hs.close()


@pytest.mark.usefixtures("hub_engine")  # at a SQLCipher and a PostgreSQL hub
def test_every_import_is_a_leaf_and_every_receipt_carries_a_verified_checkpoint(tmp_path):
    h, w = make_hub(tmp_path), make_ward(tmp_path)
    connect(w, h)
    msg1 = _round(tmp_path, w, h, tag="one")
    assert "hub's" not in msg1 and "rewritten" not in msg1, msg1
    assert _seen(w) is not None and _seen(w)[0] == 1
    msg2 = _round(tmp_path, w, h, tag="two")
    assert "rewritten" not in msg2 and "did not prove" not in msg2, msg2
    assert _seen(w)[0] == 2
    with ledger(h) as (_hs, store):
        leaves = store.rows("SELECT idx, device, bundle_seq, status FROM tlog_leaves ORDER BY idx")
        chain = hublog.export_chain(store)
    assert [(r["idx"], r["bundle_seq"], r["status"]) for r in leaves] == [
        (0, 1, "applied"),
        (1, 2, "applied"),
    ]
    v = _hub_verifier(h)
    got = hublog.verify_chain(hublog.dumps_chain(chain), v)
    assert [c.size for c in got] == [1, 2]


@pytest.mark.usefixtures("hub_engine")  # at a SQLCipher and a PostgreSQL hub
def test_a_replayed_bundle_adds_no_leaf(tmp_path):
    h, w = make_hub(tmp_path), make_ward(tmp_path)
    connect(w, h)
    add_notes(w, 2)
    (tmp_path / "usb").mkdir()
    s = open_(w)
    try:
        files = ward.export(s, tmp_path / "usb").files
    finally:
        s.close()
    with ledger(h) as (hs, store):
        hub.import_file(hs, files[-1])
        again = hub.import_file(hs, files[-1])
        assert again.outcome.status == "already"
        assert store.scalar("SELECT count(*) FROM tlog_leaves") == 1
        assert store.scalar("SELECT count(*) FROM tlog_checkpoints") == 1


def test_the_log_tables_are_append_only(tmp_path):
    h, w = make_hub(tmp_path), make_ward(tmp_path)
    connect(w, h)
    _round(tmp_path, w, h)
    hs = open_(h)
    try:
        for sql in (
            "UPDATE tlog_leaves SET status = 'held'",
            "DELETE FROM tlog_leaves",
            "DELETE FROM tlog_nodes",
            "UPDATE tlog_checkpoints SET note = ''",
        ):
            with pytest.raises(Exception, match="append-only"):
                hs.store.execute(sql)
    finally:
        hs.close()


def _rewrite_hub_history(h) -> None:
    """The attack: with the raw key, drop the first leaf, re-grow the tree, re-sign a checkpoint."""
    hs = open_(h)
    try:
        key = raw_key(hs)
        signer = devicekeys.signer(hs)
    finally:
        hs.close()
    st = Store(h.db_path, key)
    try:
        rows = st.rows("SELECT device, bundle_seq, manifest_sha, status FROM tlog_leaves ORDER BY idx")
        for t in ("tlog_leaves", "tlog_nodes", "tlog_checkpoints"):
            st.execute(f"DROP TRIGGER IF EXISTS {t}_no_update")
            st.execute(f"DROP TRIGGER IF EXISTS {t}_no_delete")
            st.execute(f"DELETE FROM {t}")
        tree = merkle.Tree()
        for i, r in enumerate(rows[1:]):  # history without the first bundle
            leaf = merkle.leaf_hash(
                hublog.leaf_text(r["device"], r["bundle_seq"], r["manifest_sha"], r["status"])
            )
            st.execute(
                "INSERT INTO tlog_leaves (idx, leaf, device, bundle_seq, manifest_sha, status, logged_at)"
                " VALUES (?,?,?,?,?,?, '2026-01-01T00:00:00Z')",
                (i, leaf.hex(), r["device"], r["bundle_seq"], r["manifest_sha"], r["status"]),
            )
            tree.append_hash(leaf)
        for level, row in enumerate(tree.levels):
            for i, node in enumerate(row):
                st.execute("INSERT INTO tlog_nodes (level, idx, hash) VALUES (?,?,?)", (level, i, node))
        hublog.sign_checkpoint(st, signer)
    finally:
        st.close()


def test_a_hub_whose_history_was_rewritten_is_caught_by_the_ward_at_its_next_sync(tmp_path):
    h, w = make_hub(tmp_path), make_ward(tmp_path)
    connect(w, h)
    _round(tmp_path, w, h, tag="one")
    _round(tmp_path, w, h, tag="two")
    before = _seen(w)
    assert before is not None and before[0] == 2
    _rewrite_hub_history(h)
    msg = _round(tmp_path, w, h, tag="three")
    assert "history" in msg and ("rewritten" in msg or "did not prove" in msg), msg
    assert _seen(w) == before, "the ward keeps the checkpoint it trusts, not the rewritten one"
    s = open_(w)
    try:
        st = ward.status(s)
    finally:
        s.close()
    assert any("history" in n for n in st["hub_notices"]), st["hub_notices"]


def test_an_auditors_kept_checkpoint_catches_a_rewritten_chain_offline(tmp_path):
    h, w = make_hub(tmp_path), make_ward(tmp_path)
    connect(w, h)
    _round(tmp_path, w, h, tag="one")
    _round(tmp_path, w, h, tag="two")
    hs = open_(h)
    try:
        kept = hs.store.scalar("SELECT note FROM tlog_checkpoints WHERE size = 2")
    finally:
        hs.close()
    v = _hub_verifier(h)
    _rewrite_hub_history(h)
    _round(tmp_path, w, h, tag="three")
    hs = open_(h)
    try:
        chain = hublog.dumps_chain(hublog.export_chain(hs.store))
    finally:
        hs.close()
    with pytest.raises(Refused, match=r"rewritten|no tree of 2"):
        hublog.verify_chain(chain, v, since=kept)


@pytest.mark.usefixtures("hub_engine")  # at a SQLCipher and a PostgreSQL hub
def test_a_chain_with_a_broken_step_is_refused(tmp_path):
    h, w = make_hub(tmp_path), make_ward(tmp_path)
    connect(w, h)
    for tag in ("a", "b", "c"):
        _round(tmp_path, w, h, tag=tag)
    with ledger(h) as (_hs, store):
        doc = hublog.export_chain(store)
    v = _hub_verifier(h)
    hublog.verify_chain(hublog.dumps_chain(doc), v)
    doc["checkpoints"][2]["consistency"] = [base64.b64encode(b"\0" * 32).decode()]
    with pytest.raises(Refused, match="2 -> 3"):
        hublog.verify_chain(hublog.dumps_chain(doc), v)
    doc["checkpoints"][2]["checkpoint"] = doc["checkpoints"][2]["checkpoint"].replace("\n3\n", "\n4\n")
    with pytest.raises(Refused, match="does not verify"):
        hublog.verify_chain(hublog.dumps_chain(doc), v)
    for bad in (b"", b"[]", b'{"format": "x"}', json.dumps({"format": "wardcrf-tlog-chain/1"}).encode()):
        with pytest.raises(Refused):
            hublog.verify_chain(bad, v)


@pytest.mark.usefixtures("hub_engine")  # at a SQLCipher and a PostgreSQL hub
def test_a_receipt_proof_is_an_offline_tlog_proof(tmp_path):
    """The proof in a receipt verifies with the C2SP format alone: leaf text, hub key, nothing else."""
    h, w = make_hub(tmp_path), make_ward(tmp_path)
    connect(w, h)
    _round(tmp_path, w, h, tag="one")
    s = open_(w)
    try:
        body = json.loads(s.store.scalar("SELECT body FROM sync_receipts ORDER BY id DESC LIMIT 1"))
        sha = s.store.scalar("SELECT manifest_sha FROM sync_outbox WHERE bundle_seq = 1")
        device = s.ctx.device
    finally:
        s.close()
    (b,) = body["tlog"]["bundles"]
    leaf = merkle.leaf_hash(hublog.leaf_text(device, 1, sha, "applied"))
    got = checkpoint.verify_proof(b["proof"], leaf, _hub_verifier(h))
    assert got.checkpoint.size == 1


@pytest.mark.usefixtures("hub_engine")  # at a SQLCipher and a PostgreSQL hub
def test_hub_log_and_audit_verify_log_through_the_cli(tmp_path, monkeypatch):
    """The auditor's commands: `hub log --out` at the hub, `audit verify-log` anywhere, offline."""
    from test_sync_cli import run

    h, w = make_hub(tmp_path), make_ward(tmp_path)
    connect(w, h)
    for tag in ("a", "b"):
        _round(tmp_path, w, h, tag=tag)
    chain = tmp_path / "chain.json"
    code, out, err = run("hub", "log", "--out", str(chain), "-d", str(h.data_dir), monkeypatch=monkeypatch)
    assert code == 0, err
    vkey = out.split("verifier key: ")[1].strip()
    kept = tmp_path / "kept.note"
    with ledger(h) as (_hs, store):
        kept.write_text(store.scalar("SELECT note FROM tlog_checkpoints WHERE size = 1"))
    code, out, err = run(
        "audit", "verify-log", str(chain), "--key", vkey, "--since", str(kept), monkeypatch=monkeypatch
    )
    assert code == 0, err
    assert "2 checkpoint(s)" in out and "agrees with the kept checkpoint" in out
    # At the ward, the registered hub's key is the default.
    code, out, err = run("audit", "verify-log", str(chain), data_dir=w.data_dir, monkeypatch=monkeypatch)
    assert code == 0, err
    # A chain whose step was tampered with: exit 1, one line on stderr, nothing on stdout.
    doc = json.loads(chain.read_text())
    doc["checkpoints"][1]["consistency"] = [base64.b64encode(b"\1" * 32).decode()]
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(doc))
    code, out, err = run("audit", "verify-log", str(bad), "--key", vkey, monkeypatch=monkeypatch)
    assert code == 1 and out == "" and err.count("\n") == 1 and "1 -> 2" in err, (code, out, err)
    # A key that is not a vkey, a file that is not there.
    code, out, err = run("audit", "verify-log", str(chain), "--key", "nonsense", monkeypatch=monkeypatch)
    assert code == 1 and "verifier key" in err and err.count("\n") == 1, err
    code, out, err = run(
        "audit", "verify-log", str(tmp_path / "missing.json"), "--key", vkey, monkeypatch=monkeypatch
    )
    assert code == 2 and "cannot read" in err, err
    # Hostile chain files: control characters, deep nesting, garbage, huge numbers.
    for junk in (
        b"\x1b[2J",
        b"[" * 5000,
        b'{"format":"wardcrf-tlog-chain/1","checkpoints":[{"checkpoint":"x\\u0007\\n"}]}',
        b'{"format":"wardcrf-tlog-chain/1","checkpoints":[1e999]}',
    ):
        bad.write_bytes(junk)
        code, out, err = run("audit", "verify-log", str(bad), "--key", vkey, monkeypatch=monkeypatch)
        assert code == 1 and err.count("\n") == 1 and "Traceback" not in err, (junk[:20], code, err)


def test_a_witness_cosigns_only_a_history_that_extends_what_it_signed(tmp_path, monkeypatch):
    """`audit witness`: co-signs the newest checkpoint; refuses a hub that rewrote its history since."""
    from test_sync_cli import run

    monkeypatch.setenv("WARDCRF_WITNESS_PASSPHRASE", "a long witness passphrase")
    h, w = make_hub(tmp_path), make_ward(tmp_path)
    connect(w, h)
    key = tmp_path / "w.key"
    code, out, err = run(
        "audit", "witness-key", "auditor.example/jane", "--out", str(key), monkeypatch=monkeypatch
    )
    assert code == 0, err
    wvkey = out.split("witness verifier key: ")[1].strip()
    code, _, err = run(
        "audit", "witness-key", "auditor.example/jane", "--out", str(key), monkeypatch=monkeypatch
    )
    assert code == 1 and "never overwritten" in err
    state, chain = tmp_path / "w.state", tmp_path / "chain.json"

    def cosign() -> tuple[int, str, str]:
        chain.unlink(missing_ok=True)  # `hub log` never writes over a file
        code, out, err = run(
            "hub", "log", "--out", str(chain), "-d", str(h.data_dir), monkeypatch=monkeypatch
        )
        assert code == 0, err
        hub_vkey = out.split("verifier key: ")[1].strip()
        return run(
            "audit",
            "witness",
            str(chain),
            "--key",
            hub_vkey,
            "--witness-key",
            str(key),
            "--state",
            str(state),
            monkeypatch=monkeypatch,
        )

    _round(tmp_path, w, h, tag="a")
    code, out, err = cosign()
    assert code == 0 and "first checkpoint" in out, err
    _round(tmp_path, w, h, tag="b")
    code, out, err = cosign()
    assert code == 0 and "consistent with the checkpoint co-signed before" in out, err
    # The state is the hub's checkpoint with the witness's cosignature: both verify.
    opened = note.open_note(state.read_text(), [_hub_verifier(h), note.Verifier.parse(wvkey)])
    assert len(opened.verified) == 2 and "auditor.example/jane" in opened.timestamps
    signed_state = state.read_text()
    # The hub rewrites its history; the witness refuses and keeps its state.
    _rewrite_hub_history(h)
    _round(tmp_path, w, h, tag="c")
    code, out, err = cosign()
    assert code == 1 and "rewritten" in err and err.count("\n") == 1, (code, out, err)
    assert state.read_text() == signed_state
    # A tampered state file (not this witness's own signature) is refused.
    state.write_text(signed_state.replace("auditor.example/jane", "auditor.example/jan"))
    code, out, err = cosign()
    assert code == 1 and "no signature by a known key" in err, err
    # A wrong passphrase is an authentication error.
    monkeypatch.setenv("WARDCRF_WITNESS_PASSPHRASE", "not the passphrase at all")
    state.write_text(signed_state)
    code, out, err = cosign()
    assert code == 2 and "wrong passphrase" in err, err


def test_the_hubs_audit_review_lists_held_bundles(tmp_path):
    """At the hub, the periodic review's "gaps and forks" lists what it holds (issue 21)."""
    from wardcrf.reports import audit_review

    h, w = make_hub(tmp_path), make_ward(tmp_path)
    connect(w, h)
    usb = tmp_path / "usb"
    usb.mkdir()
    files = []
    for tag in ("one", "two"):
        add_notes(w, 2, text=tag)
        s = open_(w)
        try:
            files.append(ward.export(s, usb).files[-1])
        finally:
            s.close()
    hs = open_(h, "coordinator")
    try:
        assert hub.import_file(hs, files[1]).outcome.status == "held"  # bundle 2 before bundle 1: a gap
        found = audit_review.review(hs, "2000-01-01", "2100-01-01")
    finally:
        hs.close()
    gaps = [f for f in found.findings if f.kind == "gap_fork"]
    assert gaps and any("held (gap)" in f.what for f in gaps), found.findings


SCRIPT = Path(__file__).resolve().parents[2] / "docs" / "verify-checkpoint.sh"


@pytest.mark.usefixtures("hub_engine")  # at a SQLCipher and a PostgreSQL hub
def test_an_auditor_checks_a_checkpoint_with_openssl_alone(tmp_path):
    """docs/verify-checkpoint.sh: the hub's signed checkpoint verified with standard tools (issue 21)."""
    import shutil
    import subprocess

    if shutil.which("openssl") is None or shutil.which("xxd") is None:
        pytest.skip("openssl and xxd are installed by .ci/run")
    h, w = make_hub(tmp_path), make_ward(tmp_path)
    connect(w, h)
    _round(tmp_path, w, h, tag="a")
    with ledger(h) as (hs, store):
        signed = store.scalar("SELECT note FROM tlog_checkpoints ORDER BY size DESC LIMIT 1")
        vkey = hublog.own_verifier(hs.store).vkey

    def check(text: str, key: str = vkey) -> subprocess.CompletedProcess[str]:
        f = tmp_path / "cp.note"
        f.write_text(text)
        return subprocess.run(["bash", str(SCRIPT), str(f), key], capture_output=True, text=True, timeout=60)

    ok = check(signed)
    assert ok.returncode == 0 and ok.stdout.startswith("checkpoint OK: wardcrf.hub/"), (ok.stdout, ok.stderr)
    lines = signed.split("\n")
    tampered = "\n".join([lines[0], str(int(lines[1]) + 1), *lines[2:]])
    other = note.Signer("x.example/y", Ed25519PrivateKey.generate())
    for text, key, why in (
        (tampered, vkey, "does not verify"),
        (signed, other.verifier.vkey, "no signature by"),
        (signed.replace("\n\n", "\n"), vkey, "blank line|not a signature line"),
        (signed.replace(lines[0], lines[0] + "\x1b[2J", 1), vkey, "control characters"),
        (signed, vkey.replace("+", "+0", 1), "key id"),
    ):
        r = check(text, key)
        assert r.returncode == 1 and r.stdout.count("\n") == 1 and r.stdout.startswith("REFUSED"), (
            why,
            r.stdout,
            r.stderr,
        )
        assert re.search(why, r.stdout), (why, r.stdout)
