"""A ward whose database was copied back over a newer one hears it plainly at its next sync (issue 15, finding 8).

Before: the receipt said "the hub holds a different event 471 for this
device (fork)" and `sync status` showed "events pending: -1". The hub holds
events this laptop no longer has: that is a rollback of this database, and
the ward must say so, with what to do, and never count negative events.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from synckit import add_notes, connect, make_hub, make_ward, open_
from wardcrf.sync import hub, ward

pytestmark = pytest.mark.usefixtures("hub_engine")  # each test at a SQLCipher and a PostgreSQL hub


def test_an_older_copy_of_the_database_is_reported_as_a_rollback(tmp_path: Path) -> None:
    h = make_hub(tmp_path)
    w = make_ward(tmp_path)
    connect(w, h)
    add_notes(w, 3)
    older = tmp_path / "older"
    shutil.copytree(w.data_dir, older)
    add_notes(w, 2)  # recorded, exported and receipted, then lost with the newer file
    (tmp_path / "usb").mkdir()
    s = open_(w)
    try:
        files = ward.export(s, tmp_path / "usb").files
        head = s.store.scalar("SELECT seq FROM chain_heads WHERE device = ?", (s.ctx.device,))
    finally:
        s.close()
    hs = open_(h)
    try:
        res = hub.import_file(hs, files[-1])
    finally:
        hs.close()
    name, data, sig = res.receipt
    (tmp_path / name).write_bytes(data)
    (tmp_path / (name + ".minisig")).write_bytes(sig)
    shutil.rmtree(w.data_dir)
    shutil.copytree(older, w.data_dir)  # the older file copied back over the newer one
    s = open_(w)
    try:
        mine = s.store.scalar("SELECT seq FROM chain_heads WHERE device = ?", (s.ctx.device,))
        msg = ward.import_file(s, tmp_path / name)
        st = ward.status(s)
    finally:
        s.close()
    assert f"this database ends at event {mine}" in msg and f"the hub holds events 1-{head}" in msg, msg
    assert "older copy" in msg and "fork" not in msg, msg
    assert st["events_pending"] == 0, st
    assert st["events_only_at_hub"] == head - mine
    assert any("older copy" in n for n in st["hub_notices"]), st["hub_notices"]


def _rolled_back_ward_with_receipt(tmp_path: Path):
    """A ward synced up to event `head`, then its whole data folder copied back from an older copy."""
    h = make_hub(tmp_path)
    w = make_ward(tmp_path)
    connect(w, h)
    add_notes(w, 3)
    older = tmp_path / "older"
    shutil.copytree(w.data_dir, older)
    add_notes(w, 2)
    (tmp_path / "usb").mkdir()
    s = open_(w)
    try:
        files = ward.export(s, tmp_path / "usb").files
    finally:
        s.close()
    hs = open_(h)
    try:
        name, data, sig = hub.import_file(hs, files[-1]).receipt
    finally:
        hs.close()
    (tmp_path / name).write_bytes(data)
    (tmp_path / (name + ".minisig")).write_bytes(sig)
    shutil.rmtree(w.data_dir)
    shutil.copytree(older, w.data_dir)
    return h, w, tmp_path / name


def test_the_receipt_stops_the_older_copy_before_its_next_append_in_that_session_and_later(
    tmp_path: Path,
) -> None:
    import pytest

    from wardcrf.behind import BehindDetected

    _, w, receipt = _rolled_back_ward_with_receipt(tmp_path)
    s = open_(w)
    try:
        head = s.store.scalar("SELECT seq FROM chain_heads WHERE device = ?", (s.ctx.device,))
        ward.import_file(s, receipt)
        with pytest.raises(BehindDetected, match="the hub holds its events up to"):
            s.append(type="note.added", subject="site:WUH01", body={"text": "would fork"})
        assert s.store.scalar("SELECT seq FROM chain_heads WHERE device = ?", (s.ctx.device,)) == head
    finally:
        s.close()
    with pytest.raises(BehindDetected) as exc:
        open_(w)
    assert "\n" not in str(exc.value) and "accept-rollback" in str(exc.value)


def test_an_admin_keeps_the_older_copy_with_a_reason_and_the_hub_is_told(tmp_path: Path) -> None:
    import pytest

    from wardcrf.errors import Refused, UsageError
    from wardcrf.site import Site

    h, w, receipt = _rolled_back_ward_with_receipt(tmp_path)
    s = open_(w)
    try:
        ward.import_file(s, receipt)
    finally:
        s.close()
    from synckit import PASSWORD

    site = Site.open(w.data_dir)
    with pytest.raises(UsageError):
        site.unlock("admin", PASSWORD, accept_rollback="  ")
    kept = site.unlock("admin", PASSWORD, accept_rollback="the newer laptop disk failed; hub holds 4-5")
    try:
        (line,) = kept.store.rows("SELECT line FROM events WHERE type = 'db.behind_accepted'")
        assert "the newer laptop disk failed" in line["line"]
        kept.append(type="note.added", subject="site:WUH01", body={"text": "after the decision"})
        (tmp_path / "usb2").mkdir()
        files = ward.export(kept, tmp_path / "usb2").files
    finally:
        kept.close()
    with pytest.raises(Refused, match="no rollback to accept"):
        Site.open(w.data_dir).unlock("admin", PASSWORD, accept_rollback="again")
    hs = open_(h)
    try:
        for f in files:
            hub.import_file(hs, f)
        with hub.ledger_store(hs) as store:
            told = store.scalar(
                "SELECT count(*) FROM sync_held WHERE device = ? AND reason = 'fork'",
                (w.slots.device,),
            )
    finally:
        hs.close()
    assert told, "the hub holds the kept copy's bundle as a fork, with the decision inside it"
