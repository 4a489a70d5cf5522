"""Who may write a format-2 form, at the hub as on the ward (issue 17).

A format-2 version names its own forms: PALM records an administration on
`infusion` and the DSMB's decision on `dsmg_decision`. The ward's services
require what `workflow.engine_rules.rule_for` says of each (`dose.record`,
`dsmg.decide`, `participant.screen`); sync's check on import asks the same of
the record's protocol version (`authority.form_actions_of`), so a record the
ward would have refused is refused at the hub too, naming the action, and
nothing is applied. Before, every undeclared name took `record.submit`.
"""

from __future__ import annotations

from typing import Any

import pytest
from forge import append_raw
from synckit import open_
from test_engine_ward_cli import Ward, _to_the_hub, _ward

from wardcrf.engine import model
from wardcrf.errors import Refused


@pytest.fixture
def palm(cli, tmp_path, monkeypatch: pytest.MonkeyPatch) -> Ward:
    return _ward(cli, tmp_path, monkeypatch, "palm")


@pytest.fixture
def palm_dsmb(cli, tmp_path, monkeypatch: pytest.MonkeyPatch) -> Ward:
    """PALM whose DSMB form is `dsmb_review`: a name no format-1 rule declares."""
    source = model.shipped_source("palm.toml").replace("dsmg_decision", "dsmb_review")
    return _ward(cli, tmp_path, monkeypatch, "palm-dsmb", source)


def _hub_rows(w: Ward, sql: str) -> list[dict[str, Any]]:
    assert w.hub is not None
    s = open_(w.hub, "admin")
    try:
        return s.store.rows(sql)
    finally:
        s.close()


def _participant(w: Ward) -> str:
    pid = w.consent()
    assert w.screen(pid).code == 0
    return pid


def test_an_administration_from_a_role_that_may_not_dose_is_refused_on_the_ward(palm: Ward) -> None:
    pid = _participant(palm)
    r = palm.run("submit", "infusion", "--participant", pid, "dose_mg=50", user="pharmacist")
    assert r.code == 1 and "role pharmacist may not submit infusion forms" in r.err, r.err
    assert len(r.err.strip().splitlines()) == 1
    r = palm.run("submit", "infusion", "--participant", pid, "dose_mg=50", user="coordinator")
    assert r.code == 1 and "role coordinator may not submit infusion forms" in r.err, r.err
    # (a clinician's infusions are accepted: test_engine_ward_cli.py, end to end)


def test_a_format_2_administration_from_a_role_that_may_not_dose_is_refused_at_the_hub(palm: Ward) -> None:
    pid = _participant(palm)
    assert all(r.ok for r in _to_the_hub(palm))  # type: ignore[attr-defined]
    append_raw(
        palm.site(),
        "record.submitted",
        {"form": "infusion", "data": {"dose_mg": {"value": 50, "unit": "mg"}}},
        subject=f"participant:{pid}",
        role="pharmacist",
        user="pharmacist",
    )
    with pytest.raises(
        Refused, match=r"role pharmacist may not submit 'infusion' records .*\(dose\.record\)"
    ):
        _to_the_hub(palm)
    assert _hub_rows(palm, "SELECT * FROM records WHERE form = 'infusion'") == []


def test_a_format_2_administration_from_a_role_that_may_dose_reaches_the_hub(palm: Ward) -> None:
    pid = _participant(palm)
    append_raw(
        palm.site(),
        "record.submitted",
        {"form": "infusion", "data": {"dose_mg": {"value": 50, "unit": "mg"}}},
        subject=f"participant:{pid}",
        role="clinician",
        user="clinician",
    )
    assert all(r.ok for r in _to_the_hub(palm))  # type: ignore[attr-defined]
    assert len(_hub_rows(palm, "SELECT * FROM records WHERE form = 'infusion'")) == 1


def test_the_dsmg_form_of_a_format_2_version_is_the_dsmgs_at_the_hub(palm_dsmb: Ward) -> None:
    """`[dsmg] form` takes `dsmg.decide`: the DSMG's record is applied (an undeclared name took
    `record.submit` before, which a DSMG may not), a clinician's is refused."""
    palm = palm_dsmb
    pid = _participant(palm)
    body = {"form": "dsmb_review", "data": {"decision": "continue", "rationale": "go on"}}
    append_raw(palm.site(), "record.submitted", body, subject=f"participant:{pid}", role="dsmg", user="dsmg")
    assert all(r.ok for r in _to_the_hub(palm))  # type: ignore[attr-defined]
    assert len(_hub_rows(palm, "SELECT * FROM records WHERE form = 'dsmb_review'")) == 1
    forged = {"form": "dsmb_review", "data": {"decision": "stop", "rationale": "forged"}}
    append_raw(
        palm.site(),
        "record.submitted",
        forged,
        subject=f"participant:{pid}",
        role="clinician",
        user="clinician",
    )
    with pytest.raises(Refused, match=r"role clinician may not submit 'dsmb_review' records .*dsmg\.decide"):
        _to_the_hub(palm)
    assert len(_hub_rows(palm, "SELECT * FROM records WHERE form = 'dsmb_review'")) == 1


def test_the_eligibility_form_of_a_format_2_version_is_amended_only_by_who_screens_at_the_hub(
    palm: Ward,
) -> None:
    """The eligibility form's amendments take `participant.screen`, as on the ward: a pharmacist's
    amendment (which `record.amend` would allow) is refused at the hub, a clinician's applied."""
    _participant(palm)
    assert all(r.ok for r in _to_the_hub(palm))  # type: ignore[attr-defined]
    held = _hub_rows(palm, "SELECT event_id FROM records WHERE form = 'screening'")
    assert len(held) == 1
    target = str(held[0]["event_id"])
    change = {"form": "screening", "changes": {"ct_np": {"old": 20, "new": 21}}}
    append_raw(palm.site(), "record.amended", change, role="pharmacist", user="pharmacist", amends=target)
    with pytest.raises(
        Refused, match=r"role pharmacist may not amend 'screening' records .*participant\.screen"
    ):
        _to_the_hub(palm)
