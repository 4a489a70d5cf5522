"""Import runs the protocol's sequencing rules: a bundle that breaks them is held, never applied silently.

Issue 15, finding 6: a key holder deleted an event (a consent signature),
renumbered and re-chained the rest and re-signed; the hub applied it and its
own `audit verify` then failed on consent sequencing. The rule `audit verify`
checks (every participant record follows a consent signed by three distinct
people) now runs on each bundle's records at import: a bundle that breaks it
is held for the coordinator with the reason, like a fork or a clash.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from forge import append_raw
from hub_engines import ledger
from synckit import PASSWORD, connect, make_hub, open_
from wardcrf.sync import hub, ward

from wardcrf import audit, devicekeys
from wardcrf.site import Site

pytestmark = pytest.mark.usefixtures("hub_engine")  # each test at a SQLCipher and a PostgreSQL hub


@pytest.fixture
def demo_pair(tmp_path: Path) -> dict[str, Any]:
    from wardcrf.workflow import demo

    root = tmp_path / "rules"
    demo.seed(root / "lap1", PASSWORD)
    w = Site.open(root / "lap1")
    h = make_hub(root)
    connect(w, h)
    for f in export(w, root / "first"):
        assert hub_import(h, f).outcome.status == "applied"
    return {"ward": w, "hub": h, "root": root}


def export(w: Site, to: Path) -> list[Path]:
    to.mkdir(exist_ok=True)
    s = open_(w)
    try:
        return ward.export(s, to).files
    finally:
        s.close()


def hub_import(h: Site, f: Path) -> hub.ImportResult:
    s = open_(h)
    try:
        return hub.import_file(s, f)
    finally:
        s.close()


def test_records_before_a_signed_consent_are_held_with_the_reason(demo_pair, tmp_path: Path) -> None:
    w, h = demo_pair["ward"], demo_pair["hub"]
    # A consent with two signatures instead of three (one deleted), then a record on it.
    consent = append_raw(w, "record.submitted",
                         {"form": "consent", "data": {"consenter": "participant"}, "creates_participant": True},
                         subject="participant:WUH01-090", role="clinician", user="clinician")  # fmt: skip
    for signer in ("clinician", "clinician2"):
        append_raw(w, "signature.applied",
                   {"target": consent, "signed_hash": "0" * 64, "meaning": "witnessed", "signer": signer,
                    "full_name": signer}, subject="participant:WUH01-090", role="clinician", user=signer)  # fmt: skip
    append_raw(w, "record.submitted", {"form": "vitals", "data": {"timepoint": "baseline"}},
               subject="participant:WUH01-090", role="clinician", user="clinician")  # fmt: skip
    (f,) = export(w, tmp_path / "usb")[-1:]
    res = hub_import(h, f)
    assert res.outcome.status == "sequencing", res.outcome.message
    assert (
        "WUH01-090: vitals record" in res.outcome.message
        and "no signed consent before it" in res.outcome.message
    )
    with ledger(h) as (s, store):  # the wards' data where the hub keeps it
        assert store.scalar("SELECT count(*) FROM participants WHERE id = 'WUH01-090'") == 0
        st = hub.status(s)
        assert [x["bundle_seq"] for x in st["held_rules"]] == [res.outcome.bundle_seq]
        assert audit.verify(s).ok, audit.verify(s).problems
        device = store.scalar("SELECT device FROM sync_devices WHERE kind != 'hub' LIMIT 1")
        _name, data, _sig = hub.receipts.make(store, device, devicekeys.signer(s))
    assert b'"held_rules"' in data and b"no signed consent before it" in data


def test_genuine_records_after_their_consent_still_apply(demo_pair, tmp_path: Path) -> None:
    """Accept side: the demo's whole history (consents, then records) was applied by the fixture,
    and a new record on an enrolled participant, after its signed consent, applies."""
    w, h = demo_pair["ward"], demo_pair["hub"]
    with ledger(h) as (_s, store):
        pid = store.scalar(
            "SELECT id FROM participants WHERE enrollment_event IS NOT NULL ORDER BY id LIMIT 1"
        )
        assert store.scalar("SELECT count(*) FROM participants") >= 7
    append_raw(w, "record.submitted", {"form": "vitals", "data": {"timepoint": "extra"}},
               subject=f"participant:{pid}", role="clinician", user="clinician")  # fmt: skip
    res = hub_import(h, export(w, tmp_path / "usb")[-1])
    assert res.outcome.status == "applied", res.outcome.message
    s = open_(h)
    try:
        assert audit.verify(s).ok, audit.verify(s).problems
    finally:
        s.close()


def _consented(w: Site, pid: str) -> None:
    """A consent signed by three people: what consent-first asks, so only the next rule can hold."""
    consent = append_raw(w, "record.submitted",
                         {"form": "consent", "data": {"consenter": "participant"}, "creates_participant": True},
                         subject=f"participant:{pid}", role="clinician", user="clinician")  # fmt: skip
    for signer in ("clinician", "clinician2", "clinician3"):
        append_raw(w, "signature.applied",
                   {"target": consent, "signed_hash": "0" * 64, "meaning": "witnessed", "signer": signer,
                    "full_name": signer}, subject=f"participant:{pid}", role="clinician", user=signer)  # fmt: skip


def _record(w: Site, pid: str, form: str, data: dict[str, Any]) -> str:
    return append_raw(w, "record.submitted", {"form": form, "data": data},
                      subject=f"participant:{pid}", role="clinician", user="clinician")  # fmt: skip


def _held_for(h: Site, f: Path, pid: str, words: str) -> None:
    res = hub_import(h, f)
    assert res.outcome.status == "sequencing", res.outcome.message
    assert f"{pid}: " in res.outcome.message and words in res.outcome.message, res.outcome.message
    with ledger(h) as (s, store):
        assert store.scalar("SELECT count(*) FROM participants WHERE id = ?", (pid,)) == 0
        assert [x["bundle_seq"] for x in hub.status(s)["held_rules"]] == [res.outcome.bundle_seq]
        assert audit.verify(s).ok, audit.verify(s).problems


@pytest.mark.parametrize("screening", [None, {"date": "2026-11-01", "eligible": False}])
def test_an_enrollment_without_an_eligible_screening_before_it_is_held(
    demo_pair, tmp_path: Path, screening
) -> None:
    w, h = demo_pair["ward"], demo_pair["hub"]
    _consented(w, "WUH01-091")
    if screening is not None:
        _record(w, "WUH01-091", "screening", screening)
    _record(w, "WUH01-091", "enrollment", {"date": "2026-11-02"})
    words = "has no screening before it" if screening is None else "did not find them eligible"
    _held_for(h, export(w, tmp_path / "usb")[-1], "WUH01-091", words)


def test_a_dose_before_enrollment_is_held(demo_pair, tmp_path: Path) -> None:
    w, h = demo_pair["ward"], demo_pair["hub"]
    _consented(w, "WUH01-092")
    _record(w, "WUH01-092", "screening", {"date": "2026-11-01", "eligible": True})
    _record(w, "WUH01-092", "dose", {"dose_number": 1})
    _held_for(h, export(w, tmp_path / "usb")[-1], "WUH01-092", "dose record")


def test_a_dose_before_consent_is_held_by_consent_first(demo_pair, tmp_path: Path) -> None:
    w, h = demo_pair["ward"], demo_pair["hub"]
    pid = "WUH01-093"
    _record(w, pid, "dose", {"dose_number": 1})
    res = hub_import(h, export(w, tmp_path / "usb")[-1])
    assert res.outcome.status == "sequencing" and "no signed consent before it" in res.outcome.message


def test_the_enrollment_rule_runs_in_audit_verify_and_passes_on_genuine_data(demo_pair) -> None:
    w = demo_pair["ward"]
    s = open_(w)
    try:
        report = audit.verify(s)
        assert "enrollment sequencing" in {c.name for c in report.results}
        assert report.ok, report.problems
        from wardcrf.workflow import sequencing

        checked, problems = sequencing.order_problems(s.store)
        assert checked > 7 and problems == []
    finally:
        s.close()


@pytest.mark.parametrize(("eligible", "status"), [(True, "applied"), (False, "sequencing")])
def test_an_enrollment_is_judged_on_a_screening_from_an_earlier_bundle(
    demo_pair, tmp_path: Path, eligible: bool, status: str
) -> None:
    # The import reads the screened participants' eligibility by id, for those its bundle touches:
    # a screening the hub took in an earlier bundle still decides the enrollment in this one.
    w, h = demo_pair["ward"], demo_pair["hub"]
    pid = "WUH01-094"
    _consented(w, pid)
    _record(w, pid, "screening", {"date": "2026-11-01", "eligible": eligible})
    assert hub_import(h, export(w, tmp_path / "usb1")[-1]).outcome.status == "applied"
    _record(w, pid, "enrollment", {"date": "2026-11-02"})
    res = hub_import(h, export(w, tmp_path / "usb2")[-1])
    assert res.outcome.status == status, res.outcome.message
    if not eligible:
        assert f"{pid}: " in res.outcome.message and "did not find them eligible" in res.outcome.message


def test_the_check_on_some_participants_finds_what_the_whole_log_finds_for_them(demo_pair) -> None:
    from wardcrf import projections
    from wardcrf.workflow import sequencing

    w = demo_pair["ward"]
    for pid, eligible in (("WUH01-095", True), ("WUH01-096", False)):
        _consented(w, pid)
        _record(w, pid, "screening", {"date": "2026-11-01", "eligible": eligible})
        _record(w, pid, "enrollment", {"date": "2026-11-02"})
    _consented(w, "WUH01-097")
    _record(w, "WUH01-097", "dose", {"dose_number": 1})
    s = open_(w)
    try:
        projections.rebuild(s.store)  # the forged records, projected as the log has them
        _all, everyone = sequencing.order_problems(s.store)
        assert len(everyone) == 2  # WUH01-096's enrollment, WUH01-097's dose
        for pid in ("WUH01-095", "WUH01-096", "WUH01-097"):
            subject = f"participant:{pid}"
            _n, some = sequencing.order_problems(s.store, [subject])
            assert some == [p for p in everyone if p[1].startswith(f"{pid}: ")]
        _n, both = sequencing.order_problems(s.store, ["participant:WUH01-096", "participant:WUH01-097"])
        assert both == everyone
    finally:
        s.close()


def test_the_eligibility_read_at_import_looks_participants_up_by_id(demo_pair) -> None:
    # Per bundle the check reads only the participants the bundle touches (their primary key),
    # never every screened participant: its cost follows the bundle, not the hub (issue 19).
    from wardcrf.workflow import sequencing

    s = open_(demo_pair["ward"])
    try:
        sql, params = sequencing.eligibility_query(["participant:WUH01-001", "participant:WUH01-002"])
        assert params == ("WUH01-001", "WUH01-002")
        plan = " | ".join(str(r[3]) for r in s.store.conn.execute("EXPLAIN QUERY PLAN " + sql, params))
        assert "SEARCH participants USING" in plan and "(id=?)" in plan, plan
        assert "SCAN participants" not in plan, plan
        whole, none = sequencing.eligibility_query(None)  # `audit verify`: every participant, once
        assert none == ()
        assert "SCAN participants" in " ".join(
            str(r[3]) for r in s.store.conn.execute("EXPLAIN QUERY PLAN " + whole)
        )
    finally:
        s.close()
