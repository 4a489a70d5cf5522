"""A ward whose database was copied back over a newer one hears it plainly at its next sync (issue 15, finding 8).

Before: the receipt said "the hub holds a different event 471 for this
device (fork)" and `sync status` showed "events pending: -1". The hub holds
events this laptop no longer has: that is a rollback of this database, and
the ward must say so, with what to do, and never count negative events.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from synckit import add_notes, connect, make_hub, make_ward, open_
from wardcrf.sync import hub, ward


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
