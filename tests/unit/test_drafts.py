"""Drafts (wardcrf.drafts): nothing typed is ever lost, and a draft never becomes data.

A draft is kept per user and form context after each field, offered back at
the same user's next sign-in, and never leaves the laptop: no event, no
bundle, no export, no backup. An admin lists them (never their content) and
purges them; the purge is an event. Saving is atomic under SIGKILL.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import tarfile
from datetime import timedelta

import pytest
from conftest import PASSWORD

from wardcrf import backup, drafts, eventlog, projections
from wardcrf.errors import PermissionDenied, Refused, UsageError
from wardcrf.site import Site

MARK = "DRAFT-MARKER-7f3a"
CTX = "participant:WUH01-001"


def test_a_draft_is_saved_after_each_field_and_offered_back_at_the_next_sign_in(site, session_for):
    clin = session_for("clinician")
    d1 = drafts.save(clin, "vitals", {"temp": "37.1"}, context=CTX, focus="pulse")
    assert d1 is not None and d1.saves == 1 and d1.user == "clinician"
    d2 = drafts.save(clin, "vitals", {"temp": "37.1", "pulse": "88"}, context=CTX, focus="resp")
    assert d2 is not None
    assert (d2.fields, d2.focus, d2.saves) == ({"temp": "37.1", "pulse": "88"}, "resp", 2)
    assert d2.created_at == d1.created_at and d2.saved_at >= d1.saved_at
    assert d2.protocol == {"id": "MEXCOVID", "version": "1.0"}
    # saving the same again writes nothing
    assert drafts.save(clin, "vitals", {"pulse": "88", "temp": "37.1"}, context=CTX, focus="resp") == d2
    drafts.save(clin, "coldchain.receipt", {"kits": ["EXO-0101", "EXO-0102"], "dry_ice": True, "qty": 2})
    clin.close()

    # the laptop was switched off; the same user signs in again
    again = Site.open(site.data_dir).unlock("clinician", PASSWORD)
    try:
        mine = drafts.mine(again)
        assert [(d.form, d.context) for d in mine] == [("coldchain.receipt", ""), ("vitals", CTX)]
        assert drafts.latest(again) == mine[0]
        assert mine[0].fields == {"kits": ["EXO-0101", "EXO-0102"], "dry_ice": True, "qty": 2}
        assert drafts.get(again, "vitals", context=CTX) == mine[1]
        assert drafts.age(mine[1]) >= timedelta(0)
        # saved or discarded: the draft ends
        assert drafts.discard(again, "vitals", context=CTX) is True
        assert drafts.discard(again, "vitals", context=CTX) is False
        assert drafts.get(again, "vitals", context=CTX) is None
    finally:
        again.close()


def test_each_person_sees_only_their_own_drafts(session_for):
    clin, inv = session_for("clinician"), session_for("investigator")
    drafts.save(clin, "vitals", {"temp": MARK}, context=CTX)
    assert drafts.get(inv, "vitals", context=CTX) is None and drafts.mine(inv) == []
    drafts.save(inv, "vitals", {"temp": "36.5"}, context=CTX)
    assert drafts.get(clin, "vitals", context=CTX).fields == {"temp": MARK}  # type: ignore[union-attr]
    assert [i.user for i in drafts.listing(inv)] == ["investigator"]
    with pytest.raises(PermissionDenied, match="may not list other people's drafts"):
        drafts.listing(inv, user="clinician")


def test_a_form_with_nothing_typed_has_no_draft(session_for):
    clin = session_for("clinician")
    drafts.save(clin, "vitals", {"temp": "37"}, context=CTX)
    assert drafts.save(clin, "vitals", {"temp": " ", "photos": [], "x": None}, context=CTX) is None
    assert drafts.mine(clin) == []


def test_auditors_keep_no_drafts_and_only_admins_purge(session_for):
    aud, clin = session_for("auditor"), session_for("clinician")
    with pytest.raises(PermissionDenied, match="role auditor may not keep drafts of forms"):
        drafts.save(aud, "vitals", {"temp": "37"})
    assert drafts.mine(aud) == [] and drafts.latest(aud) is None  # asked at every sign-in: nothing to offer
    with pytest.raises(PermissionDenied, match="role clinician may not purge drafts"):
        drafts.purge(clin, user="clinician")


def test_admin_lists_without_content_and_purge_is_an_event_without_content(session_for, admin):
    clin, inv = session_for("clinician"), session_for("investigator")
    drafts.save(clin, "vitals", {"temp": MARK, "pulse": "88"}, context=CTX)
    drafts.save(clin, "ae", {"term": MARK}, context=CTX)
    drafts.save(inv, "labs", {"crp": MARK})
    infos = drafts.listing(admin)
    assert [(i.user, i.form, i.field_count) for i in infos] == [
        ("clinician", "ae", 1),
        ("clinician", "vitals", 2),
        ("investigator", "labs", 1),
    ]
    assert MARK not in json.dumps([i.as_json() for i in infos])
    with pytest.raises(UsageError, match=r"--user NAME\) or purge everyone's \(--all\)"):
        drafts.purge(admin)
    # nothing old enough: nothing purged, no event
    before = eventlog.count(admin.store)
    assert drafts.purge(admin, everyone=True, older_than=timedelta(days=1)) == []
    assert eventlog.count(admin.store) == before
    done = drafts.purge(admin, user="clinician")
    assert [(p.owner, p.count) for p in done] == [("clinician", 2)]
    ev = done[0].event
    assert ev.type == "draft.purged" and ev.subject == "user:clinician" and ev.user == "admin"
    assert ev.body == {"owner": "clinician", "count": 2, "forms": {"ae": 1, "vitals": 1}}
    assert MARK not in ev.line
    assert drafts.mine(clin) == [] and len(drafts.mine(inv)) == 1
    done = drafts.purge(admin, everyone=True, older_than=timedelta(0))
    assert [(p.owner, p.count, p.event.body["older_than_days"]) for p in done] == [("investigator", 1, 0)]
    assert drafts.listing(admin) == []


@pytest.mark.parametrize(
    ("form", "fields", "context", "why"),
    [
        ("vitals", {"temp": "x" * (drafts.MAX_BYTES + 1)}, "", "too large"),
        ("vitals", {"te\x00mp": "37"}, "", "draft field name"),
        ("vitals", {"": "37"}, "", "draft field name"),
        ("vitals", {"n" * 65: "37"}, "", "draft field name"),
        ("vitals", {"password": "hunter2"}, "", "drafts never keep passwords"),
        ("coldchain.handover", {"passwords": {"pharmacist": "x"}}, "", "drafts never keep passwords"),
        ("vitals", {"temp": float("nan")}, "", "not a finite number"),
        ("vitals", {"temp": object()}, "", "holds a object"),
        ("vitals", {"temp": b"37"}, "", "holds a bytes"),
        ("vitals", {"x": [[[[["deep"]]]]]}, "", "nested too deep"),
        ("vitals", {"x": {1: "a"}}, "", "non-text key"),
        ("vitals; DROP TABLE drafts", {"temp": "37"}, "", "draft form"),
        ("Vitals", {"temp": "37"}, "", "draft form"),
        ("vitals", {"temp": "37"}, "p" * 201, "draft context"),
        ("vitals", {"temp": "37"}, "line\nbreak", "draft context"),
    ],
)
def test_hostile_drafts_are_refused_and_nothing_is_saved(session_for, form, fields, context, why):
    clin = session_for("clinician")
    with pytest.raises((UsageError, Refused), match=why):
        drafts.save(clin, form, fields, context=context)
    assert drafts.mine(clin) == []
    with pytest.raises(UsageError):
        drafts.save(clin, "vitals", "temp=37")  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="focus"):
        drafts.save(clin, "vitals", {"temp": "37"}, focus="a\tb")


def test_text_is_kept_exactly_as_typed(session_for):
    clin = session_for("clinician")
    typed = {"note": "line 1\r\nline 2\ttab \x1b[31m 体温 \ud800 end", "n": 0, "yes": False, "big": 1e300}
    drafts.save(clin, "ae", typed)
    assert drafts.get(clin, "ae").fields == typed  # type: ignore[union-attr]


def test_one_person_keeps_at_most_so_many_drafts(session_for, monkeypatch):
    clin = session_for("clinician")
    monkeypatch.setattr(drafts, "MAX_PER_USER", 3)
    for i in range(3):
        drafts.save(clin, "vitals", {"temp": "37"}, context=f"participant:{i}")
    with pytest.raises(Refused, match="clinician already has 3 unsaved drafts; save or discard some first"):
        drafts.save(clin, "vitals", {"temp": "37"}, context="participant:9")
    drafts.save(clin, "vitals", {"temp": "38"}, context="participant:1")  # updating one is fine


def test_drafts_never_become_events_exports_or_backups(site, session_for, admin, tmp_path, cli):
    clin = session_for("clinician")
    events = eventlog.count(clin.store)
    drafts.save(clin, "vitals", {"temp": MARK}, context=CTX)
    assert eventlog.count(clin.store) == events  # not an event: nothing to sync in a bundle
    assert not clin.store.scalar("SELECT count(*) FROM events WHERE line LIKE ?", (f"%{MARK}%",))
    # db rebuild re-derives projections and leaves drafts alone
    projections.rebuild(admin.store)
    assert drafts.get(clin, "vitals", context=CTX) is not None

    # exports: CSV, ODM, SDTM and the plain SQLite copy carry no draft
    out = tmp_path / "exports"
    out.mkdir()
    for args in (("csv", str(out / "csv")), ("odm", str(out / "x.xml")), ("sdtm", str(out / "sdtm"))):
        r = cli("export", args[0], "--out", args[1], "--quiet", user="coordinator")
        assert r.code == 0, r.err
    r = cli("export", "sqlite", "--out", str(out / "plain.db"), "--yes", user="coordinator")
    assert r.code == 0, r.err
    for f in out.rglob("*"):
        if f.is_file():
            assert MARK.encode() not in f.read_bytes(), f
    import sqlite3

    with sqlite3.connect(out / "plain.db") as plain:
        assert "drafts" not in {r[0] for r in plain.execute("SELECT name FROM sqlite_master")}

    # backups: the copy has none, the laptop keeps its own
    stick = tmp_path / "stick"
    stick.mkdir()
    made = backup.backup(admin, stick)
    with tarfile.open(made.path) as tar:
        db = tar.extractfile("wardcrf.db")
        assert db is not None and MARK.encode() not in db.read()
    restored = tmp_path / "restored"
    backup.restore(made.path, restored, username="clinician", password=PASSWORD)
    s = Site.open(restored).unlock("clinician", PASSWORD)
    try:
        assert drafts.mine(s) == []
    finally:
        s.close()
    assert drafts.get(clin, "vitals", context=CTX) is not None


def test_cli_draft_list_and_purge(cli, session_for):
    drafts.save(session_for("clinician"), "vitals", {"temp": MARK}, context=CTX)
    r = cli("draft", "list", "--json")
    assert r.code == 0, r.err
    rows = json.loads(r.out)
    assert [(x["user"], x["form"], x["context"], x["field_count"]) for x in rows] == [
        ("clinician", "vitals", CTX, 1)
    ]
    assert MARK not in r.out
    assert "vitals" in cli("draft", "list").out
    assert json.loads(cli("draft", "list", "--json", user="clinician").out)[0]["form"] == "vitals"
    r = cli("draft", "purge")
    assert r.code == 2 and r.err.count("\n") == 1 and "--user NAME" in r.err
    r = cli("draft", "purge", "--user", "clinician", user="clinician")
    assert r.code == 1 and "role clinician may not purge drafts" in r.err
    r = cli("draft", "purge", "--user", "clinician", "--older-than", "-1")
    assert r.code == 2
    r = cli("draft", "purge", "--user", "clinician")
    assert r.code == 0 and "Purged 1 draft(s) of clinician — event" in r.out
    assert "No drafts on this laptop." in cli("draft", "list").out
    r = cli("log", "--json", "--type", "draft.purged", user="auditor")
    assert json.loads(r.out)[0]["body"] == {"owner": "clinician", "count": 1, "forms": {"vitals": 1}}


SAVER = r"""
import sys
from wardcrf import drafts, features
from wardcrf.site import Site
features.install()
s = Site.open(sys.argv[1]).unlock("clinician", sys.argv[2])
print("ready", flush=True)
i = 0
while True:
    i += 1
    fields = {f"f{k}": f"{i}-" + "x" * ((i * 37 + k) % 400) for k in range(1 + i % 25)}
    fields["n"] = i
    drafts.save(s, "vitals", fields, context="participant:WUH01-001", focus=f"f{i % 25}")
    print(i, flush=True)
"""


@pytest.mark.slow
def test_sigkill_mid_save_never_corrupts_a_draft(site):
    """Kill the saving process at random moments: the draft is the last acknowledged save or a later one."""
    rng = random.Random(20200316)
    for _round in range(8):
        proc = subprocess.Popen(
            [sys.executable, "-c", SAVER, str(site.data_dir), PASSWORD],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == "ready", proc.stderr.read() if proc.stderr else ""
        target = rng.randint(3, 60)
        acknowledged = 0
        while acknowledged < target:  # wait on the saves themselves, never on the clock
            line = proc.stdout.readline()
            assert line, proc.stderr.read() if proc.stderr else "saver died"
            acknowledged = int(line)
        os.kill(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=60)
        s = Site.open(site.data_dir).unlock("clinician", PASSWORD)
        try:
            assert s.store.integrity_check() == "ok"
            d = drafts.get(s, "vitals", context="participant:WUH01-001")
            assert d is not None
            n = d.fields["n"]
            assert n >= acknowledged  # nothing acknowledged is lost
            # and the draft is whole: exactly the fields of save number n
            assert d.fields == {
                **{f"f{k}": f"{n}-" + "x" * ((n * 37 + k) % 400) for k in range(1 + n % 25)},
                "n": n,
            }
            assert d.focus == f"f{n % 25}"
            drafts.discard(s, "vitals", context="participant:WUH01-001")
        finally:
            s.close()
