"""Finding 2: one kit, one participant. Ids differing in case or blanks are the same kit, everywhere.

`wardcrf submit dose` stored `kit-x1` as typed while the custody gate upper-cased
it, so `KIT-X1` was accepted for a second participant. "Kit already used" was
checked three times against two sources. Now one rule normalises ids
(`wardcrf.ids`) and one query answers "already used" (`dosing.kit_use`), and
records stored as typed before still compare equal.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from hub_engines import ledger
from synckit import connect, make_hub, open_
from test_sync_roundtrip import export, hub_import
from wardcrf.sync import hub
from wf_support import Staff, _copy_site, at, ready_kit_on, today

from wardcrf import audit, projections, protocol, records
from wardcrf.site import Site
from wardcrf.workflow import dose_visit
from wardcrf.workflow.dosing import kit_use

P1, P2 = "WUH01-001", "WUH01-002"


@pytest.fixture
def site(data_dir: Path, _wf_sentinel_template) -> Site:
    return _copy_site(_wf_sentinel_template[0], data_dir)


@pytest.fixture
def ward(site: Site, session_for, tmp_path: Path):
    w = Staff(session_for, tmp_path)
    pid, _ = w.enrolled_participant(10)
    assert pid == P2
    return w


def _dose_args(pid: str, kit: str, start: str, end: str) -> tuple[str, ...]:
    return (
        "submit",
        "dose",
        "--participant",
        pid,
        f"kit_id={kit}",
        "lot=lot-a1",
        "particles=2e8",
        "volume=6",
        f"start={start}",
        f"end={end}",
    )


def test_cli_dose_of_kit_x1_then_KIT_X1_for_another_participant_is_refused(cli, site, ward, tmp_path):
    day = today() - timedelta(days=9)  # dose 1 of both participants
    ready_kit_on(site, "kit-x1", at(day), tmp_path)  # at the bedside 08:15, thawed: dosable until 10:15
    first = cli(*_dose_args(P1, "kit-x1", at(day), at(day, 9, 25)), user="clinician")
    assert first.code == 0, first.err
    stored = records.load(ward.clin.store, first.out.strip())
    assert stored is not None and stored.data["kit_id"] == "KIT-X1" and stored.data["lot"] == "LOT-A1"

    second = cli(*_dose_args(P2, "KIT-X1 ", at(day, 9, 30), at(day, 9, 55)), user="clinician")
    assert second.code == 1
    assert f"kit KIT-X1 was already used for {P1} dose 1 ({first.out.strip()})" in second.err
    assert second.err.count("\n") == 1  # one line
    assert ward.clin.store.scalar("SELECT count(*) FROM doses WHERE participant = ?", (P2,)) == 0

    # the scan step of the ward app's dose wizard says the same, for any spelling
    got = dose_visit.check_kit(ward.clin, P2, "\x1d kit-x1\r")
    assert not got.ok and got.kit == "KIT-X1" and f"already used for {P1} dose 1" in (got.reason or "")
    # and the cold chain: the kit's state and its custody report
    r = cli("coldchain", "custody", " kit-x1 ", "--json", user="auditor")
    assert json.loads(r.out)[0]["kit"] == "KIT-X1"
    from wardcrf.coldchain import reports

    states = {k["kit"]: k["state"] for k in reports.kit_states(ward.clin.store)}
    assert states["KIT-X1"] == "used"


def test_a_dose_stored_as_typed_by_an_older_version_still_counts(ward, site):
    """Existing data: an event holding `kit-x1` is never rewritten, and compares equal."""
    day = today() - timedelta(days=9)
    old = records.submit(
        ward.clin,
        "dose",
        {"kit_id": " kit-x1", "lot": "lot-a1", "start": at(day), "end": at(day, 9, 30), "dose_number": 1},
        subject=f"participant:{P1}",
    )
    assert old.body["data"]["kit_id"] == " kit-x1"  # the log keeps what was typed
    use = kit_use(ward.clin.store, "KIT-X1")
    assert use is not None and (use.participant, use.event_id) == (P1, old.id)
    assert kit_use(ward.clin.store, "ｋｉｔ－ｘ１") == use
    assert kit_use(ward.clin.store, "KIT-X1", exclude=old.id) is None
    with pytest.raises(Exception, match=f"kit KIT-X1 was already used for {P1} dose 1"):
        ward.dose(P2, 1, day, hh=9, mm=30, kit="KIT-X1")
    # the projection holds the key; replaying the log derives the same
    assert ward.clin.store.scalar("SELECT kit_id FROM doses WHERE event_id = ?", (old.id,)) == "KIT-X1"
    assert projections.check(ward.admin.store)[1] == []


def test_the_migration_rekeys_doses_projected_before_it(ward):
    store = ward.admin.store
    store.execute(
        "INSERT INTO doses (event_id, participant, dose_number, kit_id, lot) VALUES ('EV-OLD', ?, 1, 'kit-x9', ' lot-9')",
        (P1,),
    )
    store.execute("DELETE FROM schema_migrations WHERE name = '0090-id-keys'")
    assert store.migrate() == ["0090-id-keys"]
    assert store.rows("SELECT kit_id, lot FROM doses WHERE event_id = 'EV-OLD'") == [
        {"kit_id": "KIT-X9", "lot": "LOT-9"}
    ]


def test_audit_verify_names_a_kit_given_twice(ward):
    """What the ward could not refuse before the fix (`kit-x1` then `KIT-X1`) is found by `audit verify`."""
    day = today() - timedelta(days=9)
    for pid, kit, hh in ((P1, "kit-x1", 9), (P2, "KIT-X1", 10)):
        records.submit(
            ward.clin,
            "dose",
            {"kit_id": kit, "start": at(day, hh), "end": at(day, hh, 30), "dose_number": 1},
            subject=f"participant:{pid}",
        )
    report = audit.verify(ward.aud)
    assert not report.ok
    assert [p for p in report.problems if p.startswith("kits used once: kit KIT-X1 was given 2 times")]


def _legacy_dose(site: Site, pid: str, kit: str, hh: int) -> None:
    """A dose record as a ward running the old code wrote it: the kit id as typed."""
    s = open_(site, "clinician")
    day = today() - timedelta(days=2)
    try:
        records.submit(
            s,
            "dose",
            {"kit_id": kit, "start": at(day, hh), "end": at(day, hh, 30), "dose_number": 1},
            subject=f"participant:{pid}",
        )
    finally:
        s.close()


def _runs_engine(site) -> bool:
    """Whether the site's MEXCOVID 1.0 is run by the engine (on its format-2 file) or by format 1."""
    s = open_(site, "auditor")
    try:
        return protocol.active(s.store).engine is not None
    finally:
        s.close()


@pytest.mark.usefixtures("hub_engine")  # at a SQLCipher and a PostgreSQL hub (`hub_engines.ledger`)
def test_at_the_hub_a_second_dose_of_one_kit_is_held_whatever_its_spelling(
    site: Site, ward: Staff, tmp_path: Path
) -> None:
    """Two bundles dose `kit-x1 ` and `KIT-X1` to two participants: the second is held, not merged.

    Before, the hub applied both (each laptop's check had passed) and only
    `audit verify` found the kit given twice. The doses are written as a ward
    running the old code wrote them (ids as typed); both participants are
    genuinely consented and enrolled (the hub holds records before a consent).
    """
    h = make_hub(tmp_path)
    connect(site, h)
    _legacy_dose(site, P1, "kit-x1 ", 9)
    for f in export(site, tmp_path / "usb1"):
        assert hub_import(h, f).outcome.status == "applied"
    _legacy_dose(site, P2, " KIT-X1 ", 10)
    *_, second = export(site, tmp_path / "usb2")
    res = hub_import(h, second)
    assert res.outcome.status == "kit" and not res.ok
    if not _runs_engine(site):  # format 1's dose records
        assert (
            "gives kit KIT-X1 to WUH01-002; the same kit was given to WUH01-001 dose 1" in res.outcome.message
        )
        assert "one kit, one dose; not merged" in res.outcome.message
    else:  # MEXCOVID 1.0 run on its format-2 file: its dose records are administration records
        assert "gives kit KIT-X1 to WUH01-002; the same kit was given to WUH01-001 (" in res.outcome.message
        assert "a kit is never given to two participants; not merged" in res.outcome.message
    with ledger(h) as (s, store):  # the wards' data where the hub keeps it; its own log in its file
        # nothing of the second bundle merged; the first dose is the kit's one use
        rows = store.rows("SELECT participant, kit_id FROM doses ORDER BY participant")
        assert rows == [{"participant": P1, "kit_id": "KIT-X1"}]
        use = kit_use(store, " kit-X1")
        assert use is not None and use.participant == P1
        # kept and loud: held for the coordinator, in hub status, an event in the hub's log
        [held] = store.rows("SELECT reason, file, resolved_at FROM sync_held")
        assert held["reason"] == "kit" and held["resolved_at"] is None
        assert Path(held["file"]).read_bytes() == second.read_bytes()
        assert [x["reason"] for x in hub.status(s)["held_rules"]] == ["kit"]
        [ev] = s.store.rows("SELECT line FROM events WHERE type = 'sync.bundle_held'")
        body = json.loads(ev["line"])["body"]
        assert (body["kit"], body["participant"], body["used_by_participant"]) == ("KIT-X1", P2, P1)
        assert not [p for p in audit.verify(s).problems if p.startswith("kits used once")]
    assert hub_import(h, second).outcome.status == "kit"  # the same file again: still held, once
    with ledger(h) as (_s, store):
        assert store.scalar("SELECT count(*) FROM sync_held") == 1


@pytest.mark.usefixtures("hub_engine")  # at a SQLCipher and a PostgreSQL hub (`hub_engines.ledger`)
def test_one_bundle_dosing_one_kit_twice_is_held_whole(site: Site, ward: Staff, tmp_path: Path) -> None:
    h = make_hub(tmp_path)
    connect(site, h)
    _legacy_dose(site, P1, "kit-x1 ", 9)
    _legacy_dose(site, P2, "KIT-X1", 10)
    outcomes = [hub_import(h, f).outcome.status for f in export(site, tmp_path / "usb")]
    assert "kit" in outcomes
    with ledger(h) as (_s, store):
        assert store.scalar("SELECT count(*) FROM doses WHERE kit_id = 'KIT-X1'") <= 1


@pytest.mark.usefixtures("hub_engine")  # at a SQLCipher and a PostgreSQL hub (`hub_engines.ledger`)
def test_at_the_hub_an_amendment_giving_a_used_kit_is_held(site: Site, ward: Staff, tmp_path: Path) -> None:
    h = make_hub(tmp_path)
    connect(site, h)
    _legacy_dose(site, P1, "KIT-A1", 9)
    _legacy_dose(site, P2, "KIT-B1", 10)
    for f in export(site, tmp_path / "usb1"):
        assert hub_import(h, f).outcome.status == "applied"
    s = open_(site, "clinician")
    try:
        dose_p2 = s.store.scalar("SELECT event_id FROM doses WHERE participant = ?", (P2,))
        records.amend(s, dose_p2, {"kit_id": "kit-a1"}, "kit id misread (as an older version allowed)")
    finally:
        s.close()
    *_, amended = export(site, tmp_path / "usb2")
    assert hub_import(h, amended).outcome.status == "kit"


def test_exports_give_the_stored_id_whatever_was_typed(ward, tmp_path):
    """A dose stored as typed by an older version is exported with the canonical kit id and lot."""
    from wardcrf.exports.csv_export import export_csv
    from wardcrf.exports.dataset import Dataset
    from wardcrf.exports.sdtm import export_sdtm

    day = today() - timedelta(days=9)
    old = records.submit(
        ward.clin,
        "dose",
        {"kit_id": " kit-x1", "lot": "lot-a1 ", "start": at(day), "end": at(day, 9, 30), "dose_number": 1},
        subject=f"participant:{P1}",
    )
    ds = Dataset.for_session(ward.inv)
    [rec] = [r for r in ds.records("dose") if r.event_id == old.id]
    assert (rec.data["kit_id"], rec.data["lot"]) == ("KIT-X1", "LOT-A1")
    assert [r.event_id for r in ds.records_naming_kit("Kit-X1 ")] == [old.id]
    export_csv(ds, tmp_path / "csv")
    text = "".join(f.read_text("utf-8") for f in (tmp_path / "csv").rglob("*dose*.csv"))
    assert "KIT-X1" in text and "kit-x1" not in text
    export_sdtm(ds, tmp_path / "sdtm")
    ex = next((tmp_path / "sdtm").rglob("ex*.csv")).read_text("utf-8")
    assert "LOT-A1" in ex and "lot-a1" not in ex


def test_the_custody_record_finds_a_kit_whatever_its_spelling(ward):
    from wardcrf.reports import custody_record

    day = today() - timedelta(days=9)
    ward.dose(P1, 1, day, kit="kit-r1")
    record = custody_record.build(
        ward.aud.store, printed_by="auditor", kit=" ｋｉｔ－Ｒ１\r"
    )  # full width, a scanner suffix
    text = json.dumps(record, default=str)
    assert record["kit"] == "KIT-R1" or "KIT-R1" in text
    assert "kit-r1" not in text


def test_already_used_is_one_query_per_check(ward, site, tmp_path, monkeypatch):
    """ "Kit already used" was asked by the dose rule, the scan step AND the custody gate: now once."""
    from wardcrf import ids
    from wardcrf.workflow import dosing

    day = today() - timedelta(days=9)
    ready_kit_on(site, "kit-q1", at(day), tmp_path)
    asked: list[str] = []
    real = dosing.kit_use

    def counted(store, kit, **kw):
        asked.append(ids.key(kit))
        return real(store, kit, **kw)

    monkeypatch.setattr(dosing, "kit_use", counted)
    monkeypatch.setattr(dose_visit, "kit_use", counted)
    got = dose_visit.check_kit(ward.clin, P1, "kit-q1", datetime.fromisoformat(at(day)))
    assert got.ok, got.reason
    assert asked == ["KIT-Q1"]  # the scan step asked; the custody gate did not ask again
    asked.clear()
    ward.dose(P1, 1, day, kit="kit-q1")
    assert asked and set(asked) == {"KIT-Q1"}
    per_check = len(asked)
    asked.clear()
    dose_visit.check_kit(ward.clin, P2, "KIT-Q1", datetime.fromisoformat(at(day)))
    assert asked == ["KIT-Q1"]
    assert per_check == 2  # the dose rule runs twice (before the write lock, then under it), once each
