"""Each shipped protocol end to end through the CLI, as far as the wiring goes (issue 17, step 6).

MEXCOVID, format 2: the re-encoding loaded on a site (what `init --protocol`
records), then consent, eligibility pass and fail (the failed criterion named
by code and label from the format-2 file), enrollment, the pre-dose check,
administrations, a missed dose, an AE, `today`, and `audit verify`; the
engine's answers over the format-2 model equal the ward's at every step.
PALM and PALM007: checked by `protocol check` here; each runs a ward end to
end through the CLI from `wardcrf init --protocol` (consent to `audit verify`,
tests/unit/test_engine_ward_cli.py), their demos are tests/unit/test_engine_demo.py,
and an unknown demo is refused in one line, nothing created.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from wf_support import PASSWORD, TZ, at, photo_file, ready_kit_on, today
from wf_support import site as site  # the workflow template site: format-1 MEXCOVID, users of every role

from wardcrf.engine import due, eligibility, loading, model
from wardcrf.engine.schedule import Given
from wardcrf.site import Site

WITNESSES = {"WARDCRF_PASSWORD_INVESTIGATOR": PASSWORD, "WARDCRF_PASSWORD_CLINICIAN2": PASSWORD}


def _consent(cli, tmp_path: Path, n: int) -> str:
    r = cli(
        "submit",
        "consent",
        "consenter=participant",
        "form_version=1.0",
        "witness_1=investigator",
        "witness_2=clinician2",
        f"photos=@{photo_file(tmp_path, f'signed consent {n}')}",
        f"time={at(today() - timedelta(days=12), 8)}",
        "--json",
        user="clinician",
        env=WITNESSES,
    )
    assert r.code == 0, r.err
    return str(json.loads(r.out)["participant"])


def _screen(cli, pid: str, severity: str) -> None:
    r = cli(
        "submit",
        "screening",
        "--participant",
        pid,
        f"date={(today() - timedelta(days=11)).isoformat()}",
        "dob=1965-05-01",
        "sex=F",
        "pcr_confirmed=yes",
        f"severity={severity}",
        user="clinician",
    )
    assert r.code == 0, r.err


def _dose(cli, site: Site, tmp_path: Path, pid: str, day: date, kit: str):
    ready_kit_on(site, kit, at(day), tmp_path)
    return cli(
        "submit",
        "dose",
        "--participant",
        pid,
        f"kit_id={kit}",
        "lot=L1",
        "particles=2e8",
        "volume=6",
        f"start={at(day)}",
        f"end={at(day, 9, 30)}",
        user="clinician",
    )


def test_mexcovid_format_2_end_to_end_through_the_cli(cli, site, tmp_path):
    m2 = model.shipped("mexcovid.toml")
    path = tmp_path / "mexcovid-2.toml"
    path.write_text(m2.source, "utf-8")
    assert cli("protocol", "check", str(path)).code == 0
    r = cli("protocol", "load", str(path), user="investigator")
    assert r.code == 0, r.err
    s = Site.open(site.data_dir).unlock("auditor", PASSWORD)
    try:
        assert loading.model_of(s.store, None).sha256 == m2.sha256  # the engine reads format 2
    finally:
        s.close()

    # eligibility fails: the criterion is named by its code and label from the format-2 file
    failing = _consent(cli, tmp_path, 1)
    _screen(cli, failing, "moderate")
    shown = json.loads(cli("participant", "show", failing, "--json", user="auditor").out)
    assert shown["status"] == "screen failure" and shown["failed_criteria"] == ["severity"]
    r = cli("submit", "enrollment", "--participant", failing, f"date={today().isoformat()}", user="clinician")
    assert r.code == 1 and "screen failure" in r.err and len(r.err.strip().splitlines()) == 1
    s = Site.open(site.data_dir).unlock("auditor", PASSWORD)
    try:
        assessed = eligibility.assess(
            m2, eligibility.snapshot(s.store, m2, failing, now=datetime.now(UTC), zone=TZ)
        )
        assert assessed.failed_codes == ["severity"]
        assert "severity (Severe or critical): not met" in assessed.refusal(failing)
    finally:
        s.close()

    # eligibility passes; enrollment; the pre-dose check; two doses; dose 3 is missed
    pid = _consent(cli, tmp_path, 2)
    _screen(cli, pid, "severe")
    day0 = today() - timedelta(days=10)
    r = cli("submit", "enrollment", "--participant", pid, f"date={day0.isoformat()}", user="clinician")
    assert r.code == 0, r.err
    r = _dose(cli, site, tmp_path, pid, day0 + timedelta(days=1), "EXO-0101")
    assert r.code == 1 and "skin test" in r.err  # the pre-dose check gate
    r = cli(
        "submit",
        "skin_test",
        "--participant",
        pid,
        f"time={at(day0, 15)}",
        "result=negative",
        user="clinician",
    )
    assert r.code == 0, r.err
    for n in (1, 2):
        r = _dose(cli, site, tmp_path, pid, day0 + timedelta(days=n), f"EXO-01{n:02d}")
        assert r.code == 0, r.err
    shown = json.loads(cli("participant", "show", pid, "--json", user="auditor").out)
    assert shown["doses_given"] == 2 and shown["doses_planned"] == 5
    missing = [d["dose"] for d in shown["deviations"] if d["kind"] == "missing dose"]
    assert missing == [3, 4, 5]  # enrolled ten days ago: every dose after the second is past its window
    assert shown["next_dose"]["dose"] == 3 and shown["next_dose"]["state"] == "overdue"

    # the engine over the format-2 model says the same as the ward. The starts are read from the dose
    # records as stored (the `doses` projection); `participant show` lists the same doses, with their kit
    # and amount, on the engine as on format 1. The ward's next dose is format 2's: `due`'s keys, the same
    # values, and the two keys a format-2 `NextDose` adds (`what`, `regimen`: the worklist's words and the
    # regimen it belongs to).
    s = Site.open(site.data_dir).unlock("auditor", PASSWORD)
    try:
        recorded = s.store.rows(
            "SELECT start, kit_id, dose_number FROM doses WHERE participant = ? ORDER BY start", (pid,)
        )
    finally:
        s.close()
    assert len(recorded) == 2
    lines = [(d["dose"], d["start"], d["kit_id"]) for d in shown["doses"]]
    assert lines == [(r["dose_number"], r["start"], r["kit_id"]) for r in recorded], lines
    assert all(d["amount"] == 2.0e8 and d["unit"] == "particles" for d in shown["doses"]), shown["doses"]
    starts = [Given(datetime.fromisoformat(r["start"])) for r in recorded]
    nxt, missed = due.next_and_missing(m2, {"enrollment": day0}, starts, [], datetime.now(UTC))
    assert shown["next_dose"] == {**nxt, "what": "dose 3", "regimen": "exo_inhalation"}
    assert [d["dose"] for d in missed] == missing

    r = cli("today", "--json", user="clinician")
    items = [i for i in json.loads(r.out)["items"] if i.get("participant") == pid]
    assert any(i["what"] == "dose 3" and i["state"] == "overdue" for i in items)

    # an AE, then the audit
    r = cli(
        "submit",
        "ae",
        "--participant",
        pid,
        "term=Fever",
        f"onset={(day0 + timedelta(days=2)).isoformat()}",
        "grade=2",
        "serious=no",
        "causality=possible",
        "action=none",
        "outcome=recovering",
        f"first_known={(day0 + timedelta(days=2)).isoformat()}",
        user="clinician",
    )
    assert r.code == 0, r.err
    assert json.loads(cli("participant", "show", pid, "--json", user="auditor").out)["adverse_events"] == 1
    r = cli("audit", "verify", "--json", user="auditor")
    assert r.code == 0 and json.loads(r.out)["ok"] is True, r.out


@pytest.mark.parametrize("name", ["palm", "palm007"])
def test_palm_protocols_are_checked_and_an_unknown_demo_is_refused(cli, tmp_path, name, monkeypatch):
    path = tmp_path / f"{name}.toml"
    path.write_text(model.shipped_source(f"{name}.toml"), "utf-8")
    r = cli("protocol", "check", str(path), "--json")
    assert r.code == 0 and json.loads(r.out)["format"] == 2
    target = tmp_path / "demo"
    r = cli("demo", "--protocol", "ebola", "--no-tui", "--data-dir", str(target))
    assert r.code == 2 and "shipped: mexcovid, palm, palm007" in r.err
    assert len(r.err.strip().splitlines()) == 1 and not target.exists()
    for hostile in (f"{name}\x1b[2J", f"../{name}", name * 500):  # control characters, a path, oversized
        r = cli("demo", "--protocol", hostile, "--no-tui", "--data-dir", str(target))
        assert r.code == 2 and "not a shipped protocol" in r.err and "\x1b" not in r.err  # spelled out
        assert len(r.err.strip().splitlines()) == 1 and len(r.err) < 300 and not target.exists()
    # their demos: tests/unit/test_engine_demo.py


def test_demo_with_the_format_2_mexcovid_seeds_a_site_the_engine_reads_in_format_2(cli, tmp_path):
    target = tmp_path / "demo"
    r = cli("demo", "--protocol", "mexcovid", "--no-tui", "--data-dir", str(target), "--password", PASSWORD)
    assert r.code == 0, r.err
    s = Site.open(target).unlock("auditor", PASSWORD)
    try:
        assert loading.model_of(s.store, None).sha256 == model.shipped("mexcovid.toml").sha256
        rows = s.store.rows("SELECT id FROM participants")
        assert len(rows) == 7
    finally:
        s.close()
    r = cli("audit", "verify", "--json", user="auditor", env={"WARDCRF_DATA_DIR": str(target)})
    assert r.code == 0 and json.loads(r.out)["ok"] is True
