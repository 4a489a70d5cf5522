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
