"""The ward list and `today` flag a participant on a protocol version not loaded here (issue 17).

Found: a participant moved by an amendment applied on another laptop, to a version this laptop has not
loaded (the `protocol.applied` came by sync, the version's `protocol.loaded` did not), was listed by
`participant list`, the dashboard and the ward queue under the ACTIVE version: its schedule, its due doses,
silently; and `wardcrf today` refused as a whole (their summary is refused by name), so the ward saw no
worklist at all. Now their row says which version they are on and that it is not loaded here, shows only
what is stored (doses given, open AEs, sign-off) and nothing due; `today` lists one line for them and the
rest of the ward as before; the queue places nothing due for them. Loading the version brings their row
back under it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from record_version_support import arrived_under, version_source
from wf_support import _copy_site

from wardcrf.site import Site
from wardcrf.workflow import wardqueue

P1 = "WUH01-001"
NOTICE = (
    "version MEXCOVID 1.2 not loaded here: sync or load it (`wardcrf protocol load FILE`); "
    "nothing due is shown for them until then"
)


@pytest.fixture
def site(data_dir: Path, _wf_sentinel_template) -> Site:
    """WUH01-001 enrolled 10 days ago under MEXCOVID 1.0 (the `cli` fixture runs against it)."""
    return _copy_site(_wf_sentinel_template[0], data_dir)


def _applied_elsewhere(session_for, version: str = "1.2") -> str:
    """An investigator on the other laptop moved WUH01-001 to VERSION (loaded there, not here)."""
    body = {"participant": P1, "protocol_id": "MEXCOVID", "from_version": "1.0", "to_version": version}
    return arrived_under(
        session_for("admin"),
        "",
        {},
        subject=f"participant:{P1}",
        type="protocol.applied",
        body=body,
        version=version,
        user="investigator",
        role="investigator",
    )


def _rows(cli) -> dict[str, dict]:
    r = cli("participant", "list", "--json", user="clinician")
    assert r.code == 0, r.err
    return {row["id"]: row for row in json.loads(r.out)}


def _today(cli) -> list[dict]:
    r = cli("today", "--json", user="clinician")
    assert r.code == 0, r.err
    return json.loads(r.out)["items"]


def _queue(session_for) -> dict[str, tuple]:
    store = session_for("admin").store
    return {str(r[0]): tuple(r) for r in store.execute("SELECT * FROM ward_queue")}


def test_the_ward_list_flags_a_participant_on_a_version_not_loaded_and_computes_nothing_due(cli, session_for):
    before = _rows(cli)
    assert all("version_not_loaded" not in r for r in before.values())  # accept: all on 1.0, loaded
    assert before[P1]["next_dose"] is not None  # under 1.0 a dose is due: what the row must not guess at
    _applied_elsewhere(session_for)
    rows = _rows(cli)
    mine = rows[P1]
    assert mine["version_not_loaded"] == "MEXCOVID 1.2"
    assert mine["notice"] == NOTICE
    assert mine["status"] == "version not loaded"
    assert mine["next_dose"] is None and mine["post_dose_vitals_due"] == [] and mine["doses_planned"] == 0
    # what is stored stays as it was
    for key in ("doses_given", "open_aes", "signoff", "enrolled_on", "sex", "age", "cumulative_particles"):
        assert mine[key] == before[P1][key], key
    # everyone else as before
    assert {k: v for k, v in rows.items() if k != P1} == {k: v for k, v in before.items() if k != P1}


def test_the_ward_list_text_says_which_version_and_what_to_do(cli, session_for):
    _applied_elsewhere(session_for)
    r = cli("participant", "list", user="clinician")
    assert r.code == 0, r.err
    flat = " ".join(r.out.split())
    assert "version not loaded" in flat
    assert "MEXCOVID 1.2 not" in flat and "sync or load it" in flat


def test_once_the_version_is_loaded_the_row_is_read_under_it(cli, session_for, tmp_path):
    _applied_elsewhere(session_for)
    path = tmp_path / "mexcovid-1.2.toml"
    path.write_text(version_source("1.2"), "utf-8")
    r = cli("protocol", "load", str(path), user="investigator")
    assert r.code == 0, r.err
    mine = _rows(cli)[P1]
    assert "version_not_loaded" not in mine and "notice" not in mine
    assert mine["status"] != "version not loaded" and mine["doses_planned"] > 0
    assert not [i for i in _today(cli) if i["state"] == "version not loaded"]


def test_today_lists_one_line_for_them_and_the_ward_as_before(cli, session_for):
    before = _today(cli)
    assert not [i for i in before if i["state"] == "version not loaded"]
    assert [i for i in before if i["participant"] == P1 and i["what"].startswith("dose ")]  # 1.0's dose
    _applied_elsewhere(session_for)
    items = _today(cli)
    theirs = [i for i in items if i["participant"] == P1]
    flagged = [i for i in theirs if i["state"] == "version not loaded"]
    assert flagged == [{"participant": P1, "what": NOTICE, "due": None, "state": "version not loaded"}]
    # no dose or vitals computed for them under 1.0's schedule; the DSMG/SAE items stand (stored data)
    assert not [i for i in theirs if i["what"].startswith(("dose ", "pre-dose", "post-dose"))]
    others = [i for i in items if i["participant"] != P1]
    assert others == [i for i in before if i["participant"] != P1]
    r = cli("today", user="clinician")
    assert r.code == 0, r.err
    assert "version MEXCOVID 1.2 not loaded here" in " ".join(r.out.split())


def _derive(session_for) -> None:
    s = session_for("admin")
    with s.store.transaction():
        wardqueue.derive(s.store, s.store)


def test_the_ward_queue_places_nothing_due_for_them_and_a_rebuild_agrees(cli, session_for):
    _derive(session_for)
    assert _queue(session_for)[P1][1:3] != (None, None)  # under 1.0: dose 1 and its due time
    _applied_elsewhere(session_for)  # its projector recomputes their row
    row = _queue(session_for)[P1]
    assert row[1:] == (None, None, 0, 0, None, None)
    _derive(session_for)  # what `db rebuild` derives
    assert _queue(session_for)[P1] == row


def test_a_hostile_version_name_is_shown_as_text_not_markup(cli, session_for):
    _applied_elsewhere(session_for, version="1.2[bold red]\x1b[2J")
    mine = _rows(cli)[P1]
    assert "\x1b" not in mine["notice"] and "[bold red]" in mine["notice"]
    r = cli("participant", "list", user="clinician")
    assert r.code == 0 and "\x1b[2J" not in r.out
    assert "[bold" in r.out  # printed as typed, not read as a style


def test_a_format_2_participant_on_a_version_not_loaded_is_flagged_and_the_ward_computed(
    cli, tmp_path, monkeypatch
):
    """PALM (format 2): the engine's rows and worklist leave them out, flagged; the other participant's
    stand as the engine computes them."""
    from site_users import PASSWORD
    from test_engine_ward_cli import _ward

    w = _ward(cli, tmp_path, monkeypatch, "palm")
    people = []
    for _ in range(2):
        pid = w.consent()
        assert w.screen(pid).code == 0
        r = w.run("submit", "enrollment", "--participant", pid, f"date={w.now.date().isoformat()}")
        assert r.code == 0, r.err
        r = w.run("randomize", pid, "--stratum", "ct_np=HIGH")
        assert r.code == 0, r.err
        people.append(pid)
    moved, other = people

    def rows() -> dict[str, dict]:
        r = w.run("participant", "list", "--json")
        assert r.code == 0, r.err
        return {row["id"]: row for row in json.loads(r.out)}

    def today() -> list[dict]:
        r = w.run("today", "--json")
        assert r.code == 0, r.err
        return json.loads(r.out)["items"]

    before, items_before = rows(), today()
    assert before[moved]["doses_planned"] > 0 and [i for i in items_before if i["participant"] == moved]
    r = w.run("report", "visits", "--out", str(tmp_path / "before.md"), user="admin")
    assert r.code == 0, r.err  # accept: every participant's version is loaded
    s = Site.open(w.dir).unlock("admin", PASSWORD)
    try:
        body = {"participant": moved, "protocol_id": "PALM", "from_version": "1.0", "to_version": "1.3"}
        arrived_under(
            s,
            "",
            {},
            subject=f"participant:{moved}",
            type="protocol.applied",
            body=body,
            version="1.3",
            protocol_id="PALM",
            user="investigator",
            role="investigator",
            site="KIN01",  # the ward `_ward` made: another of its laptops
        )
    finally:
        s.close()
    after = rows()
    assert after[moved]["version_not_loaded"] == "PALM 1.3" and after[moved]["next_dose"] is None
    assert after[moved]["status"] == "version not loaded" and "visits_owed" not in after[moved]
    assert after[other] == before[other]
    items = today()
    assert [i for i in items if i["participant"] == moved] == [
        {
            "participant": moved,
            "what": NOTICE.replace("MEXCOVID 1.2", "PALM 1.3"),
            "due": None,
            "state": "version not loaded",
        }
    ]
    assert [i for i in items if i["participant"] == other] == [
        i for i in items_before if i["participant"] == other
    ]
    # the DSMG board flags them too: nothing planned under PALM 1.0's schedule, the other one's line as before
    from datetime import date

    from wardcrf.workflow import dsmg

    s = Site.open(w.dir).unlock("admin", PASSWORD)
    try:
        board = {p["participant"]: p for p in dsmg.review(s, today=date(2020, 3, 16))["participants"]}
    finally:
        s.close()
    assert board[moved]["version_not_loaded"] == "PALM 1.3" and board[moved]["doses_planned"] == 0
    assert board[other]["version_not_loaded"] is None and board[other]["doses_planned"] > 0
    # the visits report (their visits are their version's) refuses in one line, writing nothing
    out = tmp_path / "visits.md"
    r = w.run("report", "visits", "--out", str(out), user="admin")
    lines = [ln for ln in r.err.splitlines() if ln.strip()]
    assert r.code == 1 and len(lines) == 1 and "Traceback" not in r.err, (r.out, r.err)
    assert f"{moved} is on PALM 1.3, which is not loaded on this laptop" in lines[0]
    assert "nothing was written" in lines[0] and not out.exists()
    r = w.run("db", "rebuild", "--check", user="admin")
    assert r.code == 0, r.err
