"""The fast paths of sync: multi-file hub import (group commit, savepoint per bundle),
bundles spooled to disk while verified, one-pass prehash, and the events table
without a unique index on `hash`."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest
from synckit import add_notes, connect, make_hub, make_ward, open_
from test_sync_roundtrip import export, hub_events
from wardcrf.sync import bundle, engine, hub

from wardcrf import store as store_mod
from wardcrf.errors import Refused, UsageError
from wardcrf.store import Store

pytestmark = pytest.mark.usefixtures("hub_engine")  # each test at a SQLCipher and a PostgreSQL hub


@pytest.fixture
def pair(tmp_path: Path):
    h = make_hub(tmp_path)
    w = make_ward(tmp_path)
    connect(w, h)
    return w, h


def _bundles(w, tmp_path: Path, n: int) -> list[Path]:
    """`n` consecutive bundles of one ward, each receipted as if by USB so the next is new."""
    files = []
    for i in range(n):
        add_notes(w, 3, text=f"batch {i}")
        files.append(export(w, tmp_path / f"u{i}")[-1])
        s = open_(w)
        s.store.execute("UPDATE sync_outbox SET receipted_at = 'test'")
        s.close()
    return files


def _device_and_head(w) -> tuple[str, int]:
    s = open_(w)
    try:
        dev = s.ctx.device
        return dev, int(s.store.scalar("SELECT seq FROM chain_heads WHERE device = ?", (dev,)))
    finally:
        s.close()


def test_import_files_applies_consecutive_bundles_of_one_device_in_one_commit(pair, tmp_path: Path) -> None:
    w, h = pair
    files = _bundles(w, tmp_path, 3)
    device, head = _device_and_head(w)
    done = []
    hs = open_(h)
    try:
        # Given out of order: applied in name order, all three inside one group commit,
        # each one continuing the chain the previous one left uncommitted.
        items = hub.import_files(hs, list(reversed(files)), on_done=done.append)
        assert [i.result.outcome.status for i in items if i.result] == ["applied"] * 3
        assert [i.path.name for i in items] == sorted(f.name for f in files)
        assert done == items
        # Receipts are signed after the commit and name the last event held.
        _name, data, _sig = items[-1].result.receipt
        assert f'"seq":{head}' in data.decode()
        # chain_heads was written at commit, so the table agrees with the events.
        with hub.ledger_store(hs) as store:
            assert store.scalar("SELECT seq FROM chain_heads WHERE device = ?", (device,)) == head
    finally:
        hs.close()
    assert hub_events(h, device) == head
    assert not list((h.data_dir / "sync" / ".incoming").iterdir())


def test_import_files_refused_bundle_rolls_back_alone(pair, tmp_path: Path) -> None:
    w, h = pair
    files = _bundles(w, tmp_path, 3)
    device, _head = _device_and_head(w)
    bad = bytearray(files[1].read_bytes())
    bad[-10] ^= 0xFF
    files[1].write_bytes(bytes(bad))
    hs = open_(h)
    try:
        items = hub.import_files(hs, files)
        assert items[0].result is not None and items[0].result.outcome.status == "applied"
        assert items[1].result is None and "bad signature" in (items[1].refused or "")
        # The third waits for the second (a gap), it is not applied past the refused one.
        assert items[2].result is not None and items[2].result.outcome.status == "held"
        with hub.ledger_store(hs) as store:
            applied = store.scalar("SELECT count(*) FROM sync_applied WHERE device = ?", (device,))
        assert applied == 1
        first = items[0].result.outcome.events
    finally:
        hs.close()
    assert hub_events(h, device) == first  # the first bundle's events only, nothing of the refused one
    assert not list((h.data_dir / "sync" / ".incoming").iterdir())


def test_import_files_refuses_a_non_bundle_name_before_anything(pair, tmp_path: Path) -> None:
    w, h = pair
    files = _bundles(w, tmp_path, 1)
    other = tmp_path / "notes.txt"
    other.write_text("x")
    hs = open_(h)
    try:
        with pytest.raises(UsageError, match="not a bundle"):
            hub.import_files(hs, [files[0], other])
        with hub.ledger_store(hs) as store:
            assert store.scalar("SELECT count(*) FROM sync_applied") == 0
    finally:
        hs.close()


def test_import_files_groups_commit_by_time(pair, tmp_path: Path) -> None:
    """group_seconds=0 commits after every bundle: same outcome, one group each."""
    w, h = pair
    files = _bundles(w, tmp_path, 2)
    device, head = _device_and_head(w)
    hs = open_(h)
    try:
        items = hub.import_files(hs, files, group_seconds=0)
        assert [i.result.outcome.status for i in items if i.result] == ["applied", "applied"]
        assert all(i.result and i.result.receipt for i in items)
    finally:
        hs.close()
    assert hub_events(h, device) == head


def test_spool_is_placed_once_or_discarded(tmp_path: Path) -> None:
    sp = engine.Spool(tmp_path, b"cipher" * 1000, b"sig\n")
    target = tmp_path / "applied" / "x.tar.age"
    sp.place(target)
    assert target.read_bytes() == b"cipher" * 1000
    assert target.with_name("x.tar.age.minisig").read_bytes() == b"sig\n"
    with pytest.raises(RuntimeError):
        sp.place(tmp_path / "again.tar.age")
    sp.discard()  # after place: nothing to remove, the placed files stay
    assert target.exists()
    gone = engine.Spool(tmp_path, b"refused", b"sig\n")
    gone.discard()
    assert not list((tmp_path / ".incoming").iterdir())


def test_spool_sweeps_files_left_by_a_killed_importer(tmp_path: Path) -> None:
    incoming = tmp_path / ".incoming"
    incoming.mkdir()
    dead = 2**22 + 12345  # above Linux's default pid_max: no such process
    (incoming / f"{dead}-1-abc.tar.age").write_bytes(b"half")
    mine = incoming / f"{os.getpid()}-1-keep.tar.age"
    mine.write_bytes(b"in use")
    engine.Spool(tmp_path, b"c", b"s").discard()
    assert sorted(p.name for p in incoming.iterdir()) == [mine.name]


def test_prehash_computed_while_encrypting_matches_the_ciphertext() -> None:
    from wardcrf import devicekeys

    keys = devicekeys.generate("PREHASH1")
    # Larger than one hashing batch, so the worker thread hashes several.
    parts = [os.urandom(3 << 20) for _ in range(4)]
    cipher, digest = bundle.encrypt_parts(parts, [keys.age_recipient])
    assert digest == hashlib.blake2b(cipher).digest()
    assert bundle.decrypt(cipher, [keys.age_identity], "t") == b"".join(parts)


def test_encrypt_parts_refuses_bad_recipient_without_leaving_a_thread() -> None:
    import threading

    before = threading.active_count()
    with pytest.raises(Refused, match="not a valid age recipient"):
        bundle.encrypt_parts([b"x"], ["age1notarecipient"])
    assert threading.active_count() == before


def _columns(store: Store) -> list[tuple]:
    return store.execute(
        "SELECT pos, id, device, seq, prev, hash, hlc, ts, user, type, subject, amends, line"
        " FROM events ORDER BY pos"
    ).fetchall()


def test_events_migration_keeps_rows_and_drops_only_the_hash_index(tmp_path: Path) -> None:
    """A database created before 0070 keeps every event, its order, indexes and triggers."""
    from wardcrf import eventlog

    migs = store_mod.migrations()
    names = [n for n, _ in migs]
    cut = names.index("0070-events-hash-not-unique")
    st = Store(tmp_path / "old.db", os.urandom(32))
    try:
        for name, sql in migs[:cut]:  # the schema as it was before the migration
            st.apply_migration(name, sql)
        prev = "0" * 64
        for seq in range(1, 4):
            line = f'{{"prev":"{prev}","seq":{seq}}}'
            h = hashlib.sha256(line.encode()).hexdigest()
            st.execute(
                "INSERT INTO events (id, device, seq, prev, hash, hlc, ts, user, type, subject, amends, line)"
                " VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
                (f"D-{seq}", "D", seq, prev, h, f"{seq:015d}.00000", "t", "u", "note.added", "s", None, line),
            )
            prev = h
        before = _columns(st)
        assert st.migrate() == names[cut:]
        assert _columns(st) == before
        idx = {r[1]: r[2] for r in st.execute("PRAGMA index_list(events)")}
        indexed = {
            name: [c[2] for c in st.execute(f"PRAGMA index_info({name})")] for name in idx if idx[name]
        }
        assert ["hash"] not in indexed.values()  # no unique index on hash any more
        assert ["id"] in indexed.values() and ["device", "seq"] in indexed.values()
        for name in ("events_subject", "events_amends", "events_type"):
            assert name in idx
        # Still append-only, and (device, seq) and id still unique.
        with pytest.raises(store_mod.DatabaseError, match="append-only"):
            st.execute("UPDATE events SET user = 'x' WHERE seq = 1")
        with pytest.raises(store_mod.DatabaseError, match="append-only"):
            st.execute("DELETE FROM events WHERE seq = 1")
        with pytest.raises(store_mod.IntegrityError):
            st.execute(
                "INSERT INTO events (id, device, seq, prev, hash, hlc, ts, type, line)"
                " VALUES ('D-9', 'D', 1, 'p', 'h', 'x', 't', 'note.added', 'l')"
            )
        assert eventlog.head(st, "D")[0] == 0  # chain_heads was never written in this raw fixture
    finally:
        st.close()
