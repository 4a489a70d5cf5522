"""Photos pending at the hub, from an indexed summary: the right number, and the same work at any backlog.

`sync.ward.status` (the dashboard's sync panel, `sync status`) says how many
photos this laptop's unreceipted events bring to the hub. It used to read
every unreceipted event line for it. `sync.pending` keeps, per device, the
first event referencing each photo, numbered: the answer is two index
lookups. Checked here: the number against the event lines themselves, the
work (SQLite VM steps, not time) at 10 and at 400 pending events, the
queries' plans, and `db rebuild --check` over the index.
"""

from __future__ import annotations

import io

import pytest
from wardcrf.photos import importing
from wardcrf.sync import bundle, pending
from wardcrf.sync import ward as sync_ward

from wardcrf import projections, records

pytestmark = pytest.mark.usefixtures("hub_engine")  # each test at a SQLCipher and a PostgreSQL hub


def _jpeg(i: int) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", (16, 12), ((i * 40) % 256, (i * 90) % 256, 7)).save(out, "JPEG")
    return out.getvalue()


def _consent(s, n: int, refs: list[str]) -> str:
    return records.submit(
        s,
        "consent",
        {
            "consenter": "participant",
            "form_version": "1.0",
            "time": "2020-03-01T08:00:00+08:00",
            "witness_1": "a",
            "witness_2": "b",
            "photos": refs,
        },
        subject=f"participant:WUH01-{n:03d}",
    ).id


def _vitals(s, n: int, k: int) -> None:
    with s.store.transaction():
        for i in range(k):
            records.submit(
                s,
                "vitals",
                {"timepoint": "unscheduled", "time": "2020-03-02T09:00:00+08:00", "temp": 36.6 + i % 3},
                subject=f"participant:WUH01-{n:03d}",
            )


def _reference(store, device: str, receipted: int) -> int:
    """Photos referenced after `receipted` that no event up to it referenced, read from the lines."""
    lines = [r[0] for r in store.execute("SELECT line FROM events WHERE device = ? ORDER BY seq", (device,))]
    seqs = [r[0] for r in store.execute("SELECT seq FROM events WHERE device = ? ORDER BY seq", (device,))]
    before = set(bundle.photo_refs([ln for ln, q in zip(lines, seqs, strict=True) if q <= receipted]))
    after = set(bundle.photo_refs([ln for ln, q in zip(lines, seqs, strict=True) if q > receipted]))
    return len(after - before)


def test_photos_pending_match_the_event_lines_at_every_receipt(session_for):
    s = session_for("clinician")
    refs = [importing.import_bytes(s, f"p{i}.jpg", _jpeg(i)).ref for i in range(6)]
    c1 = _consent(s, 1, refs[:2])
    _vitals(s, 1, 3)
    _consent(s, 2, [refs[2]])
    # A later record references an old photo again: it is at the hub once the first reference is.
    records.amend(s, c1, {"photos": [refs[0], refs[3]]}, reason="page 2 retaken")
    _consent(s, 3, refs[4:])
    device = s.ctx.device
    head = s.store.scalar("SELECT max(seq) FROM events WHERE device = ?", (device,))
    for r in range(head + 1):
        assert pending.photos_after(s.store, device, r) == _reference(s.store, device, r), r
    assert pending.photos_after(s.store, device, 0) == 6
    assert pending.photos_after(s.store, device, head) == 0
    assert sync_ward.status(s)["photos_pending"] == 6


def _vm_steps(store, fn) -> int:
    steps = [0]

    def tick() -> int:
        steps[0] += 1
        return 0

    store.conn.set_progress_handler(tick, 50)
    try:
        fn()
    finally:
        store.conn.set_progress_handler(None, 0)
    return steps[0]


def test_sync_panel_work_does_not_grow_with_unreceipted_events(session_for):
    s = session_for("clinician")
    _consent(s, 1, [importing.import_bytes(s, "p.jpg", _jpeg(1)).ref])
    _vitals(s, 1, 10)
    small = _vm_steps(s.store, lambda: sync_ward.status(s))
    before = sync_ward.status(s)
    _vitals(s, 1, 400)
    large = _vm_steps(s.store, lambda: sync_ward.status(s))
    after = sync_ward.status(s)
    assert after["events_pending"] == before["events_pending"] + 400
    assert after["photos_pending"] == before["photos_pending"] == 1
    assert large <= small * 1.2 + 5, (small, large)
    for sql in (
        "SELECT ordinal FROM photo_first_refs WHERE device = 'X' ORDER BY seq DESC, ordinal DESC LIMIT 1",
        "SELECT ordinal FROM photo_first_refs WHERE device = 'X' AND seq <= 5 ORDER BY seq DESC, ordinal DESC LIMIT 1",
    ):
        plan = " ".join(r[3] for r in s.store.conn.execute("EXPLAIN QUERY PLAN " + sql))
        assert "photo_first_refs_seq" in plan and "TEMP B-TREE" not in plan, plan


def test_rebuild_check_covers_the_photo_index(session_for):
    s = session_for("clinician")
    _consent(
        s,
        1,
        [importing.import_bytes(s, "p.jpg", _jpeg(1)).ref, importing.import_bytes(s, "q.jpg", _jpeg(2)).ref],
    )
    assert not projections.check(s.store)[1]
    s.store.execute("UPDATE photo_first_refs SET ordinal = ordinal + 5 WHERE ordinal = 2")
    diffs = projections.check(s.store)[1]
    assert [d.table for d in diffs] == ["photo_first_refs"]
    projections.rebuild(s.store)
    assert not projections.check(s.store)[1]
    assert pending.photos_after(s.store, s.ctx.device, 0) == 2


def _plans(store, statements: list[str]) -> list[str]:
    """The query plan of every SELECT run (bound values are inlined by the trace)."""
    return [
        sql + " => " + " | ".join(r[3] for r in store.conn.execute("EXPLAIN QUERY PLAN " + sql))
        for sql in statements
        if sql.lstrip().upper().startswith("SELECT")
    ]


def test_sync_panel_with_a_hub_reads_no_backlog(tmp_path):
    """A laptop whose hub has receipted nothing for many exports: the panel's work stays the same,
    every statement reads through an index (no scan of the events or of the outbox)."""
    from synckit import add_notes, connect, make_hub, make_ward, open_

    w = make_ward(tmp_path)
    connect(w, make_hub(tmp_path))

    def export_some(n: int, k: int) -> None:
        for i in range(n):
            add_notes(w, k)
            usb = tmp_path / f"usb-{i}-{k}"
            usb.mkdir()
            s = open_(w)
            try:
                sync_ward.export(s, usb)
            finally:
                s.close()

    def measured() -> tuple[dict, int, list[str]]:
        s = open_(w)
        try:
            seen: list[str] = []
            s.store.conn.set_trace_callback(seen.append)
            try:
                st = sync_ward.status(s)
            finally:
                s.store.conn.set_trace_callback(None)
            return st, _vm_steps(s.store, lambda: sync_ward.status(s)), _plans(s.store, seen)
        finally:
            s.close()

    export_some(2, 5)
    small, small_steps, _ = measured()
    export_some(6, 100)
    large, large_steps, plans = measured()
    assert large["bundles_unreceipted"] == small["bundles_unreceipted"] + 6 == 8
    assert large["events_pending"] >= small["events_pending"] + 600
    # 600 more unreceipted events and six more bundles: the same work (the bundles are counted
    # from their own index; the last receipt is one lookup, not a walk back through them all).
    assert large_steps <= small_steps * 1.2 + 5, (small_steps, large_steps)
    for plan in plans:
        for table in ("events", "sync_outbox", "photo_first_refs", "sync_receipts"):
            assert f"SCAN {table} " not in plan + " " or f"SCAN {table} USING" in plan, plan
