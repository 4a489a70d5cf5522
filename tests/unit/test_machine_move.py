"""A site's data used on another computer is stopped before it writes, until an admin says why (issue 21).

Before: a ward laptop's data directory copied to a second computer signed in
and recorded as if nothing had happened; the two laptops forked the site's
chain and the hub found out days later. The rollback counter travels with the
copy, so it cannot tell. Now the database remembers the computer it was last
used on (`wardcrf.machine`): another computer is refused at sign-in, in one
line, before anything is written; an admin's `accept-move` with a reason is
an event the hub receives.
"""

from __future__ import annotations

import pytest
from conftest import PASSWORD
from hub_engines import ledger
from synckit import add_notes, connect, make_hub, make_ward, open_
from wardcrf.sync import hub, ward

from wardcrf import machine
from wardcrf.errors import PermissionDenied, Refused, UsageError
from wardcrf.site import Site

pytestmark = pytest.mark.usefixtures("hub_engine")  # each test at a SQLCipher and a PostgreSQL hub


def _elsewhere(monkeypatch) -> None:
    monkeypatch.setattr(machine, "machine_id", lambda: "another-computer-0123456789abcdef")


def _events(site: Site) -> int:
    s = site.unlock("admin", PASSWORD)
    try:
        return int(s.store.scalar("SELECT count(*) FROM events"))
    finally:
        s.close()


def test_the_same_computer_signs_in_as_before(site):
    site.unlock("clinician", PASSWORD).close()
    s = site.unlock("clinician", PASSWORD)
    try:
        assert machine.stored(s.store) == machine.fingerprint(s.ctx.site, s.ctx.device)
    finally:
        s.close()


def test_another_computer_is_refused_before_anything_is_written(site, monkeypatch):
    before = _events(site)
    _elsewhere(monkeypatch)
    for user in ("clinician", "admin"):
        with pytest.raises(machine.MachineChanged) as e:
            site.unlock(user, PASSWORD)
        assert "\n" not in str(e.value) and "accept-move" in str(e.value)
    monkeypatch.undo()
    assert _events(site) == before


def test_an_admin_records_why_and_the_site_goes_on_there(site, monkeypatch):
    _elsewhere(monkeypatch)
    with pytest.raises(PermissionDenied):
        site.unlock("clinician", PASSWORD, accept_move="moved the disk")
    with pytest.raises(UsageError, match="needs a reason"):
        site.unlock("admin", PASSWORD, accept_move="  ")
    s = site.unlock("admin", PASSWORD, accept_move="laptop 2 died; its disk is in laptop 5 now")
    try:
        (e,) = s.store.rows("SELECT type, line FROM events WHERE type = 'device.moved'")
        assert "laptop 2 died" in e["line"]
    finally:
        s.close()
    site.unlock("clinician", PASSWORD).close()  # the new computer is the reference now
    with pytest.raises(Refused, match="no move to accept"):
        site.unlock("admin", PASSWORD, accept_move="again")
    monkeypatch.undo()  # and the old computer is now "another computer"
    with pytest.raises(machine.MachineChanged):
        site.unlock("clinician", PASSWORD)


def test_the_cli_refuses_in_one_line_and_accepts_with_a_reason(cli, monkeypatch):
    _elsewhere(monkeypatch)
    r = cli("log", user="clinician")
    assert r.code == 1 and r.err.count("\n") == 1 and "another computer" in r.err, r.err
    r = cli("db", "accept-move", "--reason", "disk moved to the spare laptop")
    assert r.code == 0, r.err
    assert cli("log", user="clinician").code == 0


def test_the_hub_is_told(tmp_path, monkeypatch):
    h, w = make_hub(tmp_path), make_ward(tmp_path)
    connect(w, h)
    add_notes(w, 1)
    _elsewhere(monkeypatch)
    w.unlock("admin", PASSWORD, accept_move="restored onto a new laptop").close()
    (tmp_path / "usb").mkdir()
    s = open_(w)
    try:
        files = ward.export(s, tmp_path / "usb").files
    finally:
        s.close()
    monkeypatch.undo()  # the hub is its own computer
    with ledger(h) as (hs, store):
        hub.import_file(hs, files[-1])
        assert store.scalar("SELECT count(*) FROM events WHERE type = 'device.moved'") == 1
