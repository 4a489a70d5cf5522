"""The DSMG board flags a participant on a protocol version not loaded here, as the ward list does.

Found: `dsmg.review` read such a participant under the ACTIVE version (`protocols_of` leaves them out, the
board fell back to the active one), so the DSMG saw doses planned by a schedule that is not theirs
("2/5" for a participant whose version may plan 3 or 7). Now their line names the version, plans nothing
(doses given and the cumulative dose are the administrations recorded), and keeps every safety fact: AEs,
SAEs, vital-sign flags, decisions. Loading the version brings their line back under it.
"""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pytest
from record_version_support import arrived_under, version_source
from wf_support import _copy_site, make_ward, today

from wardcrf.site import Site
from wardcrf.workflow import dsmg

P1 = "WUH01-001"
TODAY = date(2020, 3, 16)  # the suite's clock
NOTICE = (
    "version MEXCOVID 1.2 not loaded here: sync or load it (`wardcrf protocol load FILE`); "
    "nothing due is shown for them until then"
)
SAFETY = (
    "doses_given",
    "cumulative_dose",
    "aes",
    "aes_total",
    "aes_by_grade",
    "saes",
    "sae_reports_overdue",
    "saes_awaiting_review",
    "vitals_flags",
    "decisions",
    "latest_decision",
    "sentinel",
)


@pytest.fixture
def site(data_dir: Path, _wf_sentinel_template) -> Site:
    """WUH01-001 enrolled under MEXCOVID 1.0 and dosed, the sentinel gate open."""
    return _copy_site(_wf_sentinel_template[0], data_dir)


def _applied_elsewhere(session_for, version: str = "1.2") -> None:
    body = {"participant": P1, "protocol_id": "MEXCOVID", "from_version": "1.0", "to_version": version}
    arrived_under(
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


def _board(session_for) -> dict[str, dsmg.BoardParticipant]:
    return {p["participant"]: p for p in dsmg.review(session_for("dsmg"), today=TODAY)["participants"]}


def test_the_board_flags_them_plans_nothing_and_keeps_their_safety_facts(session_for, tmp_path):
    make_ward(session_for, tmp_path).dose(P1, 1, today() - timedelta(days=9))  # the day after enrollment
    before = _board(session_for)
    mine = before[P1]
    assert mine["version_not_loaded"] is None and mine["notice"] is None  # accept: on 1.0, loaded
    assert mine["cumulative_dose"][0]["value"] > 0
    assert mine["doses_planned"] == 5 and mine["doses_given"] == 1  # 1.0's schedule: what must not be guessed
    _applied_elsewhere(session_for)
    after = _board(session_for)
    flagged = after[P1]
    assert flagged["version_not_loaded"] == "MEXCOVID 1.2"
    assert flagged["notice"] == NOTICE
    assert flagged["doses_planned"] == 0  # nothing planned under another version's schedule
    # the facts stored, all kept. The cumulative dose by value and unit: on the engine (MEXCOVID 1.0 since the
    # flip) 1.0's entry also names the ward list's column its version declares (`column`, "cumulative
    # particles"): a declaration of the version, not a stored fact, and not guessed for 1.2, not loaded here
    assert [(c["value"], c["unit"]) for c in flagged["cumulative_dose"]] == [
        (c["value"], c["unit"]) for c in mine["cumulative_dose"]
    ]
    assert "column" not in flagged["cumulative_dose"][0]
    facts = [k for k in SAFETY if k != "cumulative_dose"]
    assert {k: flagged[k] for k in facts} == {k: mine[k] for k in facts}
    assert {k: v for k, v in after.items() if k != P1} == {k: v for k, v in before.items() if k != P1}


def test_once_the_version_is_loaded_their_line_is_read_under_it(session_for, cli, tmp_path):
    _applied_elsewhere(session_for)
    path = tmp_path / "mexcovid-1.2.toml"
    path.write_text(version_source("1.2"), "utf-8")
    r = cli("protocol", "load", str(path), user="investigator")
    assert r.code == 0, r.err
    mine = _board(session_for)[P1]
    assert mine["version_not_loaded"] is None and mine["notice"] is None
    assert mine["doses_planned"] > 0


def test_a_hostile_version_name_reaches_the_board_as_text(session_for):
    _applied_elsewhere(session_for, version="1.2[bold red]\x1b[2J")
    mine = _board(session_for)[P1]
    assert mine["version_not_loaded"] is not None and "\x1b" not in mine["version_not_loaded"]
    assert mine["notice"] is not None and "\x1b" not in mine["notice"] and "[bold red]" in mine["notice"]
