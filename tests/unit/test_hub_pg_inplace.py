# ruff: noqa: F811  (the twins fixture is imported from test_hub_pg_twins and named by each test)
"""The whole-hub reports at a PostgreSQL hub query its database where it is (issue 19; `sync.hubview.direct`,
`cli.common.in_place`), beside the hub's own events in its file, never a copy of the hub (`hubview.build`).

Each moved report is checked three ways: on one PostgreSQL hub, what it computes in place equals what it
computes over the whole copy (both ways are still callable: `cli.common.whole_hub` builds the copy); its
command at that hub, with the copy made to fail, prints what the SQLCipher twin prints; and the SQLCipher
hub, where `in_place` is the hub's own file, prints what it printed before.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from synckit import open_
from test_hub_pg_twins import _pushed, twins  # noqa: F401  (fixtures; `pg_server` is the conftest's)
from test_hub_pg_whole import _both, _palm_twins


def _both_ways(
    h, compute: Callable[..., Any], user: str = "admin", *, signed_in: bool = False
) -> tuple[Any, Any]:
    """`compute(session)` at hub `h` over the whole copy and in place: (copy's, in place's). `signed_in`:
    `compute(reading, session)`, the sign-in itself beside what it reads (a command that writes to the
    hub's file)."""
    from wardcrf.cli.common import in_place, whole_hub

    s = open_(h, user)
    try:
        with whole_hub(s) as copy:
            assert copy.store is not s.store  # a PostgreSQL hub: the copy was built
            copied = compute(copy, s) if signed_in else compute(copy)
        with in_place(s) as here:
            assert getattr(here.store, "beside", None) is s.store  # the database, beside the hub's file
            direct = compute(here, s) if signed_in else compute(here)
    finally:
        s.close()
    return copied, direct


def _safety(s) -> Any:
    from wardcrf.exports.dataset import Dataset
    from wardcrf.reports import safety

    return safety.compute(Dataset.for_session(s))


def test_report_safety_in_place_is_the_whole_copys_and_the_sqlcipher_twins(twins, tmp_path, monkeypatch):
    """`report safety` (exposure, AEs, deviations, unblindings) at a PostgreSQL hub: in place, the copy's
    report; its command (the copy made to fail) prints the SQLCipher twin's, as JSON and Markdown."""
    _w, hubs, _post = _pushed(twins, tmp_path)
    _printed_now(monkeypatch)  # a report says when it was made, to the minute
    copied, direct = _both_ways(hubs["postgresql"], _safety)
    assert direct == copied and direct["adverse_events"], direct
    _copy_fails(monkeypatch)
    for fmt in ("json", "md"):
        got = _both(hubs, tmp_path, monkeypatch, "report", "safety", "--format", fmt)
        assert got["sqlcipher"][0] == 0 and got["postgresql"] == got["sqlcipher"], (fmt, got)
        assert "WUH01-001" in got["postgresql"][1]


def _copy_fails(monkeypatch) -> None:
    """From here on the whole-hub copy fails: a command that still makes one is caught."""
    from wardcrf.sync import hubview

    def refuse(*_a, **_k):
        raise AssertionError("a report read in place copied the whole hub (hubview.build)")

    monkeypatch.setattr(hubview, "build", refuse)


def _outcomes(s) -> Any:
    """What `report outcomes` computes: from a format-2 version's declarations, else format 1's analyses."""
    from wardcrf import protocol
    from wardcrf.exports.dataset import Dataset
    from wardcrf.reports import engine_outcomes, outcomes

    if protocol.active(s.store).engine is not None:
        return engine_outcomes.compute(s)
    return outcomes.compute(Dataset.for_session(s))


def test_report_outcomes_in_place_is_the_whole_copys_and_the_sqlcipher_twins(twins, tmp_path, monkeypatch):
    """`report outcomes` (the participants, before/after per participant, the declared endpoints per arm):
    in place, the copy's numbers; its command (the copy made to fail) prints the SQLCipher twin's, as JSON
    and HTML."""
    _w, hubs, _post = _pushed(twins, tmp_path)
    _printed_now(monkeypatch)  # a report says when it was made, to the minute
    copied, direct = _both_ways(hubs["postgresql"], _outcomes)
    assert direct == copied and "WUH01-001" in json.dumps(direct), direct
    _copy_fails(monkeypatch)
    for fmt in ("json", "html"):
        got = _both(hubs, tmp_path, monkeypatch, "report", "outcomes", "--format", fmt)
        assert got["sqlcipher"][0] == 0 and got["postgresql"] == got["sqlcipher"], (fmt, got)


def test_the_format_2_reports_in_place_are_the_whole_copys_and_the_sqlcipher_twins(
    cli, tmp_path, monkeypatch, pg_server
):
    """A PALM hub (format 2: consent, eligibility, enrollment, an arm allocated from the hub's list, vitals,
    an infusion): `report endpoints`, `visits`, `outcomes` and `safety` computed in place are the copy's
    (the hub's own loads and list beside the wards' records); each command, the copy made to fail, prints
    the SQLCipher twin's."""
    from wardcrf.reports import engine_endpoints, engine_outcomes, visits

    hubs, _trial, pid = _palm_twins(cli, tmp_path, monkeypatch, pg_server)
    _printed_now(monkeypatch)  # a report says when it was made, to the minute
    for compute in (engine_endpoints.compute, visits.compute, engine_outcomes.compute, _safety):
        copied, direct = _both_ways(hubs["postgresql"], compute)
        assert direct == copied, compute
    _copy_fails(monkeypatch)
    for report in ("endpoints", "visits", "outcomes", "safety"):
        printed = _both(hubs, tmp_path, monkeypatch, "report", report, "--format", "json")
        assert printed["sqlcipher"][0] == 0, (report, printed["sqlcipher"])
        assert printed["postgresql"] == printed["sqlcipher"], report
        assert pid in printed["postgresql"][1] or report == "endpoints", report


@pytest.fixture
def at_site_night(monkeypatch: pytest.MonkeyPatch) -> None:
    """Everything from the sites' making on at one moment of the ward's night (02:30 at +08:00): the review's
    `unusual_hours` findings then come whatever hour the suite runs (it found none by day, and failed)."""
    monkeypatch.setenv("WARDCRF_FAKE_NOW", "2026-12-07T18:30:00+00:00")


def test_report_audit_review_in_place_is_the_whole_copys_and_the_sqlcipher_twins(
    at_site_night, twins, tmp_path, monkeypatch
):
    """The periodic audit-trail review reads the log in the order the hub received it: in place, the wards'
    events (its database) and the hub's own (its file) merged, the copy's findings and counts; a review
    signed then is listed by the next one read in place; the commands (the copy made to fail) print the
    SQLCipher twin's but for the signed review's event and time."""
    from wardcrf.reports import audit_review

    _w, hubs, _post = _pushed(twins, tmp_path)
    _printed_now(monkeypatch)  # a report says when it was made, to the minute
    copied, direct = _both_ways(
        hubs["postgresql"],
        lambda s: audit_review.review(s, "2000-01-01", "2099-12-31").as_json(),
        "coordinator",
    )
    assert direct == copied and direct["events_checked"] > 20 and direct["findings"], direct
    _copy_fails(monkeypatch)
    window = ("report", "audit-review", "--from", "2000-01-01", "--to", "2099-12-31", "--json")
    got = _both(hubs, tmp_path, monkeypatch, *window, user="coordinator")
    assert got["sqlcipher"][0] == 0 and got["postgresql"] == got["sqlcipher"], got
    signed = _both(hubs, tmp_path, monkeypatch, *window, "--sign", "--note", "seen", user="coordinator")
    again = _both(hubs, tmp_path, monkeypatch, *window, user="coordinator")
    for printed in (signed, again):
        past = {}
        for engine, (code, out, err) in printed.items():
            assert code == 0, (engine, out, err)
            past[engine] = [
                {k: v for k, v in p.items() if k not in ("event", "recorded_at", "signed")}
                for p in json.loads(out)["past_reviews"]
            ]
        assert past["postgresql"] == past["sqlcipher"] and [p["note"] for p in past["sqlcipher"]] == ["seen"]


def test_the_unblinded_randomization_export_in_place_is_the_whole_copys_and_the_sqlcipher_twins(
    cli, tmp_path, monkeypatch, pg_server
):
    """`hub randomization export` joins the wards' allocations (the database, in place) to the hub's sealed
    list (opened with the identity in its file): the copy's CSV; blinded, refused alike in one line; its
    command (the copy made to fail) writes the SQLCipher twin's CSV and logs it in the hub's file."""
    from test_sync_cli import run

    from wardcrf.errors import Refused
    from wardcrf.randomization import unblinded

    hubs, trial, pid = _palm_twins(cli, tmp_path, monkeypatch, pg_server)

    names = iter(range(100))

    def export(reading, s):
        out = tmp_path / f"arms-{next(names)}.csv"
        try:
            unblinded.export(s, trial.id, out, reading=reading)
        except Refused as exc:
            return f"refused: {exc}"
        return out.read_text()

    copied, direct = _both_ways(hubs["postgresql"], export, signed_in=True)
    assert direct == copied, (direct, copied)
    if direct.startswith("refused:"):  # a blinded list: unblinded first, at both hubs
        assert "still blinded" in direct
        for h in hubs.values():
            code, out, err = run("hub", "randomization", "unblind-trial", "-d", str(h.data_dir), "--protocol-id",
                                 trial.id, "--reason", "final analysis", monkeypatch=monkeypatch)  # fmt: skip
            assert code == 0, (out, err)
        copied, direct = _both_ways(hubs["postgresql"], export, signed_in=True)
        assert direct == copied
    assert pid in direct and len(direct.splitlines()) == 2, direct
    _copy_fails(monkeypatch)
    got = _both(hubs, tmp_path, monkeypatch, "hub", "randomization", "export", "--protocol-id", trial.id,
                out="arms.csv")  # fmt: skip
    assert got["postgresql"][0] == 0 == got["sqlcipher"][0], got
    assert (tmp_path / "postgresql" / "arms.csv").read_text() == (
        tmp_path / "sqlcipher" / "arms.csv"
    ).read_text()
    assert (tmp_path / "postgresql" / "arms.csv").read_text() == direct


def _pdf_text(path) -> str:
    """A PDF's text, up to its verification at printing time (which reads where each way's data is), with
    the moments stamped to the millisecond (when it was printed) put aside."""
    import re

    import pypdf

    text = "\n".join(page.extract_text() or "" for page in pypdf.PdfReader(path).pages)
    return re.sub(
        r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", "<stamp>", text.split("Verification at printing time")[0]
    )


def _printed_now(monkeypatch: pytest.MonkeyPatch) -> None:
    """One printing time for every PDF the test compares (their pages carry it to the minute): the app's
    clock pinned at now, after the data was pushed. Two prints a minute apart otherwise differ."""
    from wardcrf.clock import now_utc

    monkeypatch.setenv("WARDCRF_FAKE_NOW", now_utc().isoformat())


def test_report_audit_casebook_in_place_is_the_whole_copys_and_the_sqlcipher_twins(
    twins, tmp_path, monkeypatch
):
    """The auditor's casebook of one participant (`report audit --participant`): in place, the copy's pages
    (records, history, signatures, where each event came from, SDV state, photographs re-hashed) and counts;
    its command (the copy made to fail) writes what the SQLCipher twin writes; an unknown participant is
    refused alike, one line, no file."""
    from wardcrf.exports.dataset import Dataset
    from wardcrf.reports import audit_pdf

    _w, hubs, _post = _pushed(twins, tmp_path)
    _printed_now(monkeypatch)
    names = iter(("copy.pdf", "in-place.pdf"))

    def casebook(s):
        out = tmp_path / next(names)
        done = audit_pdf.build(
            Dataset.for_session(s), out, printed_by="Ada Admin (admin)", participant="WUH01-001"
        )
        return {k: v for k, v in done.as_json().items() if k not in ("path", "out", "sha256")}, _pdf_text(out)

    copied, direct = _both_ways(hubs["postgresql"], casebook)
    assert direct == copied and "WUH01-001" in direct[1] and direct[0]["records"], direct[0]
    _copy_fails(monkeypatch)
    got = _both(
        hubs, tmp_path, monkeypatch, "report", "audit", "-p", "WUH01-001", "--json", out="casebook.pdf"
    )
    result = {}
    for engine, (code, out, err) in got.items():
        assert code == 0, (engine, out, err)
        result[engine] = {k: v for k, v in json.loads(out).items() if k not in ("path", "out", "sha256")}
    assert result["postgresql"] == result["sqlcipher"] == copied[0], result
    pages = {e: _pdf_text(tmp_path / e / "casebook.pdf") for e in ("sqlcipher", "postgresql")}
    assert pages["postgresql"] == pages["sqlcipher"]
    refused = _both(hubs, tmp_path, monkeypatch, "report", "audit", "-p", "WUH01-999", out="none.pdf")
    assert refused["postgresql"] == refused["sqlcipher"] and refused["postgresql"][0] == 1, refused
    assert not (tmp_path / "postgresql" / "none.pdf").exists()


def test_report_audit_custody_records_in_place_are_the_whole_copys_and_the_sqlcipher_twins(
    twins, tmp_path, monkeypatch
):
    """The custody record of a kit, a lot and a shipment (`report audit --kit/--lot/--shipment`, as JSON and
    as PDF): in place, the copy's; each command (the copy made to fail) writes the SQLCipher twin's; an
    unknown kit and a hostile id are refused alike in one line, no file written."""
    from test_hub_pg_whole import _cold_chain_pushed, _timeless

    from wardcrf.exports.dataset import Dataset
    from wardcrf.reports import audit_pdf

    hubs = _cold_chain_pushed(twins, tmp_path)
    s = open_(hubs["sqlcipher"])
    try:
        receipt = str(
            s.store.scalar("SELECT event_id FROM cc_transfers WHERE kind = 'receipt' ORDER BY at LIMIT 1")
        )
    finally:
        s.close()
    _printed_now(monkeypatch)
    names = iter(range(1000))
    for subject in ({"kit": "KIT-1"}, {"lot": "LOT-A1"}, {"shipment": receipt}):

        def custody(s, subject=subject):
            base = tmp_path / f"custody-{next(names)}"
            ds = Dataset.for_session(s)
            audit_pdf.build(ds, base.with_suffix(".json"), printed_by="Ada Admin (admin)", **subject)
            pdf = audit_pdf.build(ds, base.with_suffix(".pdf"), printed_by="Ada Admin (admin)", **subject)
            record = json.loads(base.with_suffix(".json").read_text())
            return _timeless(record), _pdf_text(pdf.path)

        copied, direct = _both_ways(hubs["postgresql"], custody)
        assert direct[0] == copied[0] and "KIT-1" in json.dumps(direct[0]), subject
        assert direct[1] == copied[1], subject
    _copy_fails(monkeypatch)
    for flag, value in (("--kit", "KIT-1"), ("--lot", "LOT-A1"), ("--shipment", receipt)):
        got = _both(hubs, tmp_path, monkeypatch, "report", "audit", flag, value, out=f"{flag[2:]}.json")
        assert got["sqlcipher"][0] == 0 == got["postgresql"][0], got
        records = {
            e: json.loads((tmp_path / e / f"{flag[2:]}.json").read_text())
            for e in ("sqlcipher", "postgresql")
        }
        assert _timeless(records["postgresql"]) == _timeless(records["sqlcipher"]), flag
    for bad in ("KIT-404", "x\x1b[2J\u202e" * 300):
        refused = _both(hubs, tmp_path, monkeypatch, "report", "audit", "--kit", bad, out="bad.json")
        assert refused["postgresql"] == refused["sqlcipher"] and refused["postgresql"][0] == 1, refused
        assert refused["postgresql"][2].count("\n") == 1 and "\x1b" not in refused["postgresql"][2]
        assert not (tmp_path / "postgresql" / "bad.json").exists()
