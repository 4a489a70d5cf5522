"""The periodic audit-trail review finds each planted anomaly, one test per kind (issue 21).

A small site is filled contemporaneously (the clock pinned to the ward's day,
11:00 in Wuhan): its review finds nothing. Each test then plants one kind of
anomaly and checks that the review finds exactly it, linked to its events.
The thresholds come from the protocol's `[audit_review]` (defaults, or a
protocol version that states them).
"""

from __future__ import annotations

import json

import pytest
from typed_support import assert_shape
from wf_support import PASSWORD, make_ward
from wf_support import site as site  # the workflow template site: a protocol, users of every role

from wardcrf import protocol, signatures, workflow
from wardcrf.errors import AuthError, Refused, UsageError
from wardcrf.protocol import ProtocolFileError
from wardcrf.reports import audit_review as rev

DAY = "2026-03-16"
MORNING = "2026-03-16T03:00:00Z"  # 11:00 at the ward (Asia/Shanghai)


@pytest.fixture
def ward(session_for, tmp_path, monkeypatch):
    monkeypatch.setenv("WARDCRF_FAKE_NOW", MORNING)
    return make_ward(session_for, tmp_path)


def _clean(ward) -> str:
    """One participant consented and screened as it happened; returns the participant id."""
    pid = ward.consent(time=f"{DAY}T10:30:00+08:00")
    ward.screen(pid, date=DAY)
    return pid


def _review(ward, who: str = "auditor") -> rev.Review:
    return rev.review(ward.session(who), "2026-03-01", "2026-03-31")


def _only(found: rev.Review, kind: str) -> list[rev.Finding]:
    others = [f for f in found.findings if f.kind != kind]
    assert not others, others
    return [f for f in found.findings if f.kind == kind]


def _at(monkeypatch, when: str) -> None:
    monkeypatch.setenv("WARDCRF_FAKE_NOW", when)


def test_a_site_filled_as_it_happened_has_no_findings(ward):
    _clean(ward)
    found = _review(ward)
    assert found.findings == [] and found.checked > 0
    assert set(found.counts()) == set(rev.KINDS)


def test_the_clean_demo_has_no_findings(tmp_path, monkeypatch):
    """`wardcrf demo` seeds two weeks as if typed as they happened: a monitor's first review of it
    finds nothing, so what a review finds is always something to look at (issue 21)."""
    from wardcrf.site import Site
    from wardcrf.workflow import demo

    monkeypatch.setenv("WARDCRF_FAKE_NOW", "2026-03-20T07:30:00Z")  # 15:30 at the ward
    made = demo.seed(tmp_path / "demo")
    s = Site.open(made.data_dir).unlock("monitor", demo.DEMO_PASSWORD)
    try:
        found = rev.review(s, "2026-01-01", "2026-03-20")
        entries = s.store.scalar("SELECT count(*) FROM events")
    finally:
        s.close()
    assert found.findings == [], [(f.kind, f.what) for f in found.findings[:5]]
    assert found.checked == entries == made.events  # every seeded event falls inside the period


def test_unusual_hours(ward, monkeypatch):
    pid = _clean(ward)
    _at(monkeypatch, "2026-03-16T18:40:00Z")  # 02:40 at the ward
    e = ward.submit("labs", participant=pid, timepoint="baseline", date=DAY, crp=12)
    (f,) = _only(_review(ward), "unusual_hours")
    assert f.events == (e.id,) and "02:40 site time" in f.what and f.who == "clinician"


def test_late_entry(ward):
    pid = ward.consent(time="2026-03-12T09:00:00+08:00")  # entered four days later
    ward.screen(pid, date=DAY)
    (f,) = _only(_review(ward), "late_entry")
    assert "consent record entered 98 h after" in f.what


def test_critical_change_as_the_protocol_names_it(ward):
    pid = _clean(ward)
    src = protocol.default_source().replace('version = "1.0"', 'version = "1.1"', 1)
    src += '\n[audit_review]\ncritical = ["screening.severity"]\n'
    protocol.load(ward.inv, protocol.parse(src, "mexcovid-1.1.toml"))
    screening = ward.clin.store.scalar(
        "SELECT event_id FROM records WHERE form = 'screening' AND subject = ?", (f"participant:{pid}",)
    )
    workflow.amend(ward.clin, screening, {"severity": "critical"}, reason="worse on review")
    (f,) = _only(_review(ward), "critical_change")
    assert "screening: severity changed (worse on review)" in f.what and screening in f.events


def test_by_default_consent_and_kit_and_lot_ids_are_critical():
    p = protocol.parse(protocol.default_source(), "mexcovid.toml")
    plan = p.review
    assert plan.is_critical(p.forms["consent"], "consent", "time")
    assert plan.is_critical(p.forms["dose"], "dose", "kit_id") and plan.is_critical(
        p.forms["dose"], "dose", "lot"
    )
    assert not plan.is_critical(p.forms["screening"], "screening", "severity")


def test_many_amendments_to_one_participant(ward):
    pid = _clean(ward)
    screening = ward.session("clinician").store.scalar(
        "SELECT event_id FROM records WHERE form = 'screening' AND subject = ?",
        (f"participant:{pid}",),
    )
    for i in range(6):
        sev = "severe" if i % 2 else "critical"
        workflow.amend(ward.clin, screening, {"severity": sev}, reason=f"correction {i}")
    (f,) = _only(_review(ward), "many_amendments")
    assert f"{pid}'s records were amended 6 times" in f.what and len(f.events) == 6


def test_amended_after_signature(ward):
    pid = _clean(ward)
    screening = ward.clin.store.scalar(
        "SELECT event_id FROM records WHERE form = 'screening' AND subject = ?", (f"participant:{pid}",)
    )
    signatures.sign(ward.inv, target=screening, meaning="reviewed", password=PASSWORD)
    workflow.amend(ward.clin, screening, {"severity": "critical"}, reason="worse on review")
    (f,) = _only(_review(ward), "amended_after_signature")
    assert screening in f.events


def test_failed_and_locked_sign_ins(ward, site):
    _clean(ward)
    for _ in range(6):
        with pytest.raises(AuthError):
            site.unlock("clinician2", "not the password")
    found = _review(ward)
    kinds = {f.kind for f in found.findings}
    assert kinds == {"failed_login", "locked"}, found.findings
    assert sum(f.kind == "failed_login" for f in found.findings) >= 3


def test_raw_key_disclosed(ward, cli):
    _clean(ward)
    assert cli("db", "raw-key").code == 0
    (f,) = _only(_review(ward), "raw_key")
    assert "shown to admin" in f.what


def test_plaintext_export(ward, tmp_path):
    from wardcrf.exports.plaintext import export_sqlite

    _clean(ward)
    done = export_sqlite(ward.session("coordinator"), tmp_path / "plain.sqlite", confirmed=True)
    (f,) = _only(_review(ward), "plaintext_export")
    assert f.events == (done.event_id,) and "coordinator exported data unencrypted" in f.what


def test_a_clock_that_went_backwards(ward, monkeypatch):
    pid = _clean(ward)
    _at(monkeypatch, "2026-03-16T02:10:00Z")  # 50 minutes before the last entry
    ward.submit("labs", participant=pid, timepoint="baseline", date=DAY, crp=12)
    (f,) = _only(_review(ward), "clock")
    assert "before its previous entry" in f.what and len(f.events) == 2


def test_unexpected_role_as_the_protocol_states_it(ward):
    pid = _clean(ward)
    src = protocol.default_source().replace('version = "1.0"', 'version = "1.1"', 1)
    src += '\n[audit_review.roles]\nlabs = ["investigator"]\n'
    protocol.load(ward.inv, protocol.parse(src, "mexcovid-1.1.toml"))
    e = ward.submit("labs", participant=pid, timepoint="baseline", date=DAY, crp=12)
    (f,) = _only(_review(ward), "unexpected_role")
    assert f.events == (e.id,) and "by a clinician (expected: investigator)" in f.what


def test_the_review_is_signed_and_listed_and_written(ward, tmp_path):
    _clean(ward)
    done = _review(ward)
    e = rev.sign(ward.session("auditor"), done, password=PASSWORD, note="nothing to follow up")
    again = _review(ward)
    (past,) = again.past
    assert_shape(past, rev.PastReview)  # the typed model the PDF and JSON writers read (issue #16)
    assert past["event"] == e.id and past["reviewer"] == "auditor"
    assert "— reviewed —" in past["signed"] and past["note"] == "nothing to follow up"
    pdf = rev.write_pdf(again, tmp_path / "review.pdf")
    assert pdf.read_bytes().startswith(b"%PDF")
    doc = json.loads(rev.write_json(again, tmp_path / "review.json").read_text())
    assert doc["counts"]["unblinding"] == 0 and doc["past_reviews"][0]["event"] == e.id
    assert e.body["findings_sha256"] == done.sha256()


def test_who_may_review_and_bad_periods(ward):
    _clean(ward)
    with pytest.raises(Refused, match="review the audit trail"):
        rev.review(ward.clin, "2026-03-01", "2026-03-31")
    for since, until in (
        ("yesterday", "2026-03-31"),
        ("2026-03-31", "2026-03-01"),
        ("2026-03-01T00:00", "2026-03-02"),
    ):
        with pytest.raises(UsageError):
            rev.review(ward.session("auditor"), since, until)


@pytest.mark.parametrize(
    ("table", "why"),
    [
        ('night = ["22:00"]', "two times"),
        ('night = ["25:00", "06:00"]', "two times"),
        ('night = ["06:00", "06:00"]', "the same time"),
        ("late_entry_hours = 0", "must be 1 to"),
        ("amendments_per_user = -3", "must be 1 to"),
        ('critical = ["nosuchform.x"]', "no form"),
        ('critical = ["consent.nosuchfield"]', "has no field"),
        ('critical = ["consent"]', "form.field"),
        ("surprise = 1", "unknown key"),
        ('roles = { labs = ["wizard"] }', "must list roles"),
    ],
)
def test_bad_review_tables_are_refused_with_their_line(table, why):
    src = protocol.default_source() + f"\n[audit_review]\n{table}\n"
    with pytest.raises(ProtocolFileError) as e:
        protocol.parse(src, "p.toml")
    assert any(why in p and "p.toml:" in p for p in e.value.problems), e.value.problems


@pytest.mark.parametrize("name", ["palm.toml", "palm007.toml", "mexcovid.toml"])
def test_a_format_2_protocol_states_its_review_thresholds(name):
    """Format 2 carries `[audit_review]` as format 1 does: same keys, same checks, same defaults."""
    from wardcrf.engine import model
    from wardcrf.protocol_review import ReviewPlan

    assert model.parse(model.shipped_source(name), name).review == ReviewPlan()  # silent: the defaults
    src = model.shipped_source(name) + (
        '\n[audit_review]\nnight = ["21:00", "07:00"]\nlate_entry_hours = 24\ncritical = ["consent.*"]\n'
    )
    stated = model.parse(src, name).review
    assert (stated.night, stated.late_entry_hours, stated.critical) == ((21 * 60, 7 * 60), 24, ("consent.*",))


@pytest.mark.parametrize(
    ("table", "why"),
    [
        ('night = ["06:00", "06:00"]', "the same time"),
        ('critical = ["nosuchform.x"]', "no form"),
        ('critical = ["consent.nosuchfield"]', "has no field"),
        ("surprise = 1", "unknown key"),
        ("late_entry_hours = 0", "must be 1 to"),
    ],
)
def test_bad_review_tables_in_format_2_are_refused_with_their_line(table, why):
    from wardcrf.engine import model

    src = model.shipped_source("palm.toml") + f"\n[audit_review]\n{table}\n"
    with pytest.raises(ProtocolFileError) as e:
        model.parse(src, "palm.toml")
    assert any(why in p and "palm.toml:" in p for p in e.value.problems), e.value.problems


def test_the_cli_writes_and_signs(ward, cli, tmp_path):
    _clean(ward)
    r = cli(
        "report",
        "audit-review",
        "--from",
        "2026-03-01",
        "--to",
        "2026-03-31",
        "--out",
        str(tmp_path / "r.pdf"),
        "--sign",
        user="auditor",
        env={"WARDCRF_FAKE_NOW": MORNING},
    )
    assert r.code == 0, r.err
    assert "0 finding(s)" in r.out and "signed" in r.out and (tmp_path / "r.pdf").exists()
    r = cli(
        "report",
        "audit-review",
        "--from",
        "2026-03-01",
        "--to",
        "2026-03-31",
        "--out",
        str(tmp_path / "r.pdf"),
        user="auditor",
    )
    assert r.code == 2 and "never written over" in r.err
    r = cli("report", "audit-review", "--from", "March", "--to", "2026-03-31", user="auditor")
    assert r.code == 2 and r.err.count("\n") == 1, r.err
    r = cli("report", "audit-review", "--from", "2026-03-01", "--to", "2026-03-31", user="clinician")
    assert r.code == 1 and "review the audit trail" in r.err
