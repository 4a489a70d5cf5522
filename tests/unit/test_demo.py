"""`wardcrf demo`: a seeded site that passes its own integrity checks."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from wardcrf import protocol, workflow
from wardcrf.reports import audit_review
from wardcrf.site import Site
from wardcrf.workflow import demo

# 10:00 on the ward: the mid-course participant's dose 3 is due now. Pinned so the
# module reads the same story every run (test_seeded_demo_is_consistent_at_any_hour covers other hours).
FAKE_NOW = "2026-03-16T02:00:00Z"


@pytest.fixture(scope="module")
def demo_site(tmp_path_factory) -> Path:
    """Seeded once for the module (read-only tests)."""
    from wardcrf.cli import main

    target = tmp_path_factory.mktemp("demo") / "site"
    with pytest.MonkeyPatch.context() as mp, pytest.raises(SystemExit) as info:
        mp.setenv("WARDCRF_FAKE_NOW", FAKE_NOW)
        main(["demo", "--data-dir", str(target), "--no-tui"])
    assert info.value.code in (0, None)
    return target


def run(target: Path, user: str, *args: str, monkeypatch) -> tuple[int, str, str]:
    import contextlib
    import io

    from wardcrf.cli import main

    monkeypatch.setenv("WARDCRF_DATA_DIR", str(target))
    monkeypatch.setenv("WARDCRF_USER", user)
    monkeypatch.setenv("WARDCRF_PASSWORD", "demo-password")
    monkeypatch.setenv("WARDCRF_FAKE_NOW", FAKE_NOW)
    out, err = io.StringIO(), io.StringIO()
    code = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            main(list(args))
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 0
    return code, out.getvalue(), err.getvalue()


def test_demo_seeds_a_cohort_that_verifies_and_rebuilds(demo_site, monkeypatch):
    code, out, err = run(demo_site, "auditor", "audit", "verify", monkeypatch=monkeypatch)
    assert code == 0, err
    code, out, err = run(demo_site, "admin", "db", "rebuild", "--check", monkeypatch=monkeypatch)
    assert code == 0, err
    code, out, err = run(demo_site, "auditor", "participant", "list", "--json", monkeypatch=monkeypatch)
    assert code == 0, err
    rows = json.loads(out)
    assert len(rows) == 7
    assert sorted(r["sex"] for r in rows) == ["F", "F", "F", "M", "M", "M", "M"]
    ages = sorted(r["age"] for r in rows)
    assert ages[0] >= 43 and ages[-1] <= 70 and ages[3] == 57
    complete = [r for r in rows if r["status"] == "treatment complete"]
    assert len(complete) == 6 and all(r["cumulative_particles"] == pytest.approx(1.0e9) for r in complete)
    mid = [r for r in rows if r["status"] == "in treatment"]
    assert len(mid) == 1 and mid[0]["doses_given"] == 2 and mid[0]["next_dose"]["dose"] == 3
    code, out, err = run(demo_site, "clinician", "today", "--json", monkeypatch=monkeypatch)
    items = json.loads(out)["items"]
    assert any(
        i["what"] == "dose 3" and i["participant"] == mid[0]["id"] and i["state"] == "due now" for i in items
    )
    assert rows[0]["signoff"] == "signed"


def test_demo_records_the_cohort_story(demo_site):
    s = Site.open(demo_site).unlock("auditor", "demo-password")
    try:
        store = s.store
        oxygen = [
            (r[0], json.loads(r[1]))
            for r in store.execute(
                "SELECT subject, data FROM records WHERE form = 'oxygen' ORDER BY subject, json_extract(data, '$.date')"
            )
        ]
        stepdown_days = {}
        for subject, data in oxygen:
            seq = stepdown_days.setdefault(subject, [])
            seq.append(data["support"])
        steps = sorted(
            seq.index("nasal_cannula") + 1
            for seq in stepdown_days.values()
            if seq[0] == "hfnc" and "nasal_cannula" in seq
        )
        assert steps == [3, 4]
        aes = store.rows("SELECT * FROM adverse_events")
        assert len(aes) == 1 and aes[0]["serious"] == 0
        decisions = store.rows("SELECT data FROM records WHERE form = 'dsmg_decision'")
        assert len(decisions) == 1 and '"continue"' in decisions[0]["data"]
        labs = store.rows("SELECT json_extract(data, '$.timepoint') AS tp FROM records WHERE form = 'labs'")
        assert sorted({r["tp"] for r in labs}) == ["baseline", "post_treatment"]
        cts = store.rows("SELECT json_extract(data, '$.total') AS total FROM records WHERE form = 'ct_score'")
        assert len(cts) == 13 and all(0 <= r["total"] <= 72 for r in cts)
        deviations = store.rows("SELECT * FROM doses WHERE window != 'on_time'")
        assert len(deviations) == 1
        users = {r["id"] for r in store.rows("SELECT id FROM users")}
        assert {
            "admin",
            "clinician",
            "pharmacist",
            "investigator",
            "dsmg",
            "coordinator",
            "auditor",
        } <= users
    finally:
        s.close()


def test_demo_refuses_an_existing_site(demo_site, monkeypatch):
    code, _out, err = run(
        demo_site,
        "admin",
        "demo",
        "--data-dir",
        str(demo_site),
        "--no-tui",
        monkeypatch=monkeypatch,
    )
    assert code == 2 and "already holds a wardcrf site" in err


def test_demo_cold_chain_is_complete_for_every_dosed_kit(demo_site, monkeypatch):
    code, out, err = run(demo_site, "auditor", "audit", "handovers", "--json", monkeypatch=monkeypatch)
    assert code == 0, err
    report = json.loads(out)
    kinds = [t["kind"] for t in report["transfers"]]
    assert kinds.count("receipt") == 1 and kinds.count("handover") >= 2
    assert all(t["photos"] and all(p["state"] == "ok" for p in t["photos"]) for t in report["transfers"])
    receipt = report["transfers"][0]
    assert receipt["from"]["user"] is None and receipt["logger_file"]["state"] == "ok"
    code, out, err = run(demo_site, "auditor", "coldchain", "excursions", "--json", monkeypatch=monkeypatch)
    excursions = json.loads(out)
    assert len(excursions) == 1 and excursions[0]["duration_min"] == 15
    assert excursions[0]["awaiting_disposition"] == []
    assert all(k["disposition"]["decision"] == "release" for k in excursions[0]["kits"])
    s = Site.open(demo_site).unlock("auditor", "demo-password")
    try:
        dosed = [r[0] for r in s.store.execute("SELECT kit_id FROM doses ORDER BY kit_id")]
    finally:
        s.close()
    code, out, err = run(
        demo_site, "auditor", "coldchain", "custody", "HAMSC-2003-01", "--json", monkeypatch=monkeypatch
    )
    assert code == 0, err
    chains = {c["kit"]: c for c in json.loads(out)}
    assert dosed and all(chains[k]["complete"] for k in dosed)
    code, out, err = run(demo_site, "auditor", "coldchain", "status", "--json", monkeypatch=monkeypatch)
    assert json.loads(out)["range_source"].startswith("protocol MEXCOVID")


def test_demo_ward_list_equals_per_participant_summaries(demo_site):
    """The set-based ward list (`status.list_rows`) agrees with `summary` on every demo participant."""
    from datetime import UTC, datetime, timedelta

    from wardcrf.workflow import demo, status

    s = Site.open(demo_site).unlock("auditor", demo.DEMO_PASSWORD)
    try:
        ids = [r[0] for r in s.store.execute("SELECT id FROM participants ORDER BY number")]
        for at in (
            datetime.now(UTC),
            datetime(2020, 3, 16, 1, 0, tzinfo=UTC),
            datetime.now(UTC) - timedelta(days=400),
        ):
            reference = [status.list_row(status.summary(s.store, pid, at)) for pid in ids]
            assert status.list_rows(s.store, at) == reference
    finally:
        s.close()


# -- the same story whatever the hour the demo is seeded ---------------------------------------------
# Participant 7 was "overdue" when seeded after 11:00 Asia/Shanghai. The clock is pinned with
# WARDCRF_FAKE_NOW.


TZ = ZoneInfo("Asia/Shanghai")


@pytest.mark.parametrize(
    ("local", "days_ago"),
    [
        ("2026-03-16T00:05", 3),  # just after midnight: dose 3 today, upcoming
        ("2026-03-16T06:59", 3),
        ("2026-03-16T10:29", 3),  # 31 min of the window left: dose 3 is still today's
        ("2026-03-16T10:30", 2),  # from here dose 2 was this morning, dose 3 tomorrow
        ("2026-03-16T15:00", 2),
        ("2026-03-16T23:59", 2),
    ],
)
def test_mid_course_enrollment_follows_the_hour(local, days_ago):
    schedule = protocol.default_protocol().schedule
    now = datetime.fromisoformat(local).replace(tzinfo=TZ)
    cohort = demo.cohort()  # the shipped demo file's (wardcrf/protocols/demo/mexcovid.toml)
    mid, first = cohort[-1], cohort[0]
    assert "enrolled_days_ago" not in mid and len(mid["doses"]) == 2
    assert demo._enrolled_days_ago(mid, now, schedule) == days_ago
    assert demo._enrolled_days_ago(first, now, schedule) == first["enrolled_days_ago"]


@pytest.mark.parametrize(
    ("fake_now", "state", "in_today"),
    [
        ("2026-03-15T21:00:00Z", "upcoming", True),  # 05:00 on the ward
        ("2026-03-16T01:30:00Z", "due now", True),  # 09:30
        ("2026-03-16T07:00:00Z", "upcoming", False),  # 15:00: dose 3 is tomorrow morning
    ],
)
def test_seeded_demo_is_consistent_at_any_hour(tmp_path, monkeypatch, fake_now, state, in_today):
    monkeypatch.setenv("WARDCRF_FAKE_NOW", fake_now)
    result = demo.seed(tmp_path / "site")
    s = Site.open(tmp_path / "site").unlock("auditor", demo.DEMO_PASSWORD)
    try:
        rows = {r["id"]: r for r in workflow.list_participants(s)}
        mid = rows[result.participants[-1]]
        assert mid["status"] == "in treatment" and mid["doses_given"] == 2
        assert mid["next_dose"]["dose"] == 3 and mid["next_dose"]["state"] == state
        # the only deviation in the demo is participant 5's late dose 4; nothing is missing
        deviations = {pid: workflow.show(s, pid)["deviations"] for pid in rows}
        assert [(pid, d["kind"], d["dose"]) for pid, ds in deviations.items() for d in ds] == [
            (result.participants[4], "late dose", 4)
        ]
        items = workflow.today(s)["items"]
        assert all(i["state"] != "overdue" for i in items), items
        assert any(i["what"] == "dose 3" for i in items) is in_today
        assert all(r["ae_expected"] == 0 for r in rows.values())
    finally:
        s.close()
    # Seeded at any hour, the history reads as typed when it happened: nothing for a monitor to find.
    m = Site.open(tmp_path / "site").unlock("monitor", demo.DEMO_PASSWORD)
    try:
        found = audit_review.review(m, "2026-01-01", "2026-03-17")
    finally:
        m.close()
    assert found.findings == [], [(f.kind, f.what) for f in found.findings[:5]]


def test_a_format1_ward_list_keeps_mexcovids_cumulative_particles(demo_site, monkeypatch):
    """The MEXCOVID ward list is as it always was: its one product is counted in exosome particles,
    under the column its protocol names ("cumulative particles", `dose.cumulative`), and its rows have
    no `cumulative_dose` (the per-unit key of a version naming no column)."""
    code, out, err = run(demo_site, "clinician", "participant", "list", "--json", monkeypatch=monkeypatch)
    assert code == 0, err
    rows = json.loads(out)
    assert rows and all("cumulative_dose" not in r and "cumulative_particles" in r for r in rows)
    monkeypatch.setenv("COLUMNS", "250")
    code, out, err = run(demo_site, "clinician", "participant", "list", monkeypatch=monkeypatch)
    assert code == 0, err
    assert "cumulative particles" in out and "cumulative dose" not in out, out
    complete = next(r for r in rows if r["status"] == "treatment complete")
    line = next(x for x in out.splitlines() if complete["id"] in x)
    assert "1.0e9" in line and " mg" not in line, line  # every amount as `amounts.shown` writes it
