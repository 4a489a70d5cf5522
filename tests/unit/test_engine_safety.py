"""`[safety] check` and `[safety] dsmg_review` run on a format-2 ward, by their declaration (issue 17).

The trial is PALM with a post-infusion check and a DSMB review form added
(`tests/palm_safety.py`; the shipped PALM declares neither), the names not
format 1's: `post_infusion_check.reactions` with `nothing` for none, linked by
`infusion`; `dsmb_sae_review.sae`. Everything goes through the CLI
(`wardcrf submit`, `participant show`, `today`), the hub's import, or
`wardcrf protocol check` for the hostile files.

* the check: asked after an infusion given (one per infusion, not before the
  infusion); `nothing` with a reaction refused; each reaction named is an open
  item (`participant show`, `today`) blocking the casebook sign-off until an
  AE with that prespecified code names the infusion, or was ongoing that day;
* the review: a serious AE stays on the DSMG list until a review record names
  it; a review naming no serious AE of that participant is refused; only the
  DSMG may write it, on the ward and at the hub.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

import palm_safety
import pytest
from forge import append_raw
from site_users import PASSWORD
from test_engine_ward_cli import Ward, _infusion, _to_the_hub, _vitals, _ward
from wf_support import ready_kit_on

from wardcrf.engine import model, schedule
from wardcrf.errors import Refused


@pytest.fixture
def ward(cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Ward:
    return _ward(cli, tmp_path, monkeypatch, "palm-safety", palm_safety.source())


def _enrolled(w: Ward) -> tuple[str, schedule.Slot]:
    """A participant randomized, and the first infusion slot of their arm."""
    pid = w.consent()
    assert w.screen(pid).code == 0
    r = w.run("submit", "enrollment", "--participant", pid, f"date={w.now.date().isoformat()}")
    assert r.code == 0, r.err
    r = w.run("randomize", pid, "--stratum", "ct_np=HIGH")
    assert r.code == 0, r.err
    arm = r.out.split("randomized: arm ", 1)[1].split()[0]
    plan = schedule.plan(
        palm_safety.trial(),
        {"randomization": w.now},
        arm=arm,
        zone="Africa/Kinshasa",
        conditions={"exists(disposition where stage == 'end_of_treatment')": False},
    )
    return pid, next(s for adms in plan.values() for _adm, ss in adms for s in ss)


def _product(slot: schedule.Slot) -> str:
    """The product the slot's administration gives: the vial the cold chain must have received."""
    regimen = palm_safety.trial().regimens[slot.regimen]
    return next(a.product for a in regimen.administrations if a.code == slot.administration)


def _given(w: Ward, monkeypatch: pytest.MonkeyPatch, kit: str = "VIAL-0001") -> tuple[str, int, datetime]:
    """A participant whose first infusion is given, with its vitals before and after."""
    pid, slot = _enrolled(w)
    start = max(slot.opens, w.now) + timedelta(minutes=30)
    w.at(start + timedelta(hours=3))
    monkeypatch.setenv("WARDCRF_FAKE_NOW", w.now.isoformat())
    ready_kit_on(w.site(), kit, start.isoformat(), w.root, _product(slot))
    assert _vitals(w, pid, "pre_infusion", slot.number, start - timedelta(minutes=20)).code == 0
    r = _infusion(w, pid, kit, start, "3100")
    assert r.code == 0, r.err
    assert _vitals(w, pid, "post_infusion", slot.number, start + timedelta(hours=2, minutes=15)).code == 0
    return pid, slot.number, start


def _check(w: Ward, pid: str, n: int, reactions: str, at: datetime):
    return w.run(
        "submit",
        palm_safety.CHECK_FORM,
        "--participant",
        pid,
        f"infusion={n}",
        f"asked_at={at.isoformat()}",
        f"reactions={reactions}",
    )


def _ae(w: Ward, pid: str, *more: str):
    day = w.now.date().isoformat()
    values = {"onset": day, "first_known": day, "causality": "possibly_related"}
    values.update(dict(m.split("=", 1) for m in more))
    return w.run("submit", "ae", "--participant", pid, *(f"{k}={v}" for k, v in values.items()))


def _one_line(r) -> None:
    assert r.code == 1, r.out
    assert len(r.err.strip().splitlines()) == 1 and "Traceback" not in r.err, r.err


def _show(w: Ward, pid: str) -> dict:
    r = w.run("participant", "show", pid, "--json", user="auditor")
    assert r.code == 0, r.err
    return json.loads(r.out)


def _worklist_words(w: Ward, pid: str, n: int) -> str:
    """The worklist's words for the participant's administration `n` given: its `worklist` text, {n} filled."""
    [line] = [a for a in _show(w, pid)["administrations"] if a["number"] == n and a["state"] == "given"]
    regimen = palm_safety.trial().regimens[line["regimen"]]
    adm = next(a for a in regimen.administrations if a.code == line["administration"])
    assert adm.worklist
    return adm.worklist.replace("{n}", str(n))


def _signoff(w: Ward, pid: str):
    return w.run("submit", "signoff", "--participant", pid, user="investigator", WARDCRF_PASSWORD=PASSWORD)


# -- the check after each infusion ------------------------------------------------------------


def test_the_check_follows_an_infusion_given_once_and_none_stands_alone(
    ward: Ward, monkeypatch: pytest.MonkeyPatch
) -> None:
    w = ward
    waiting, _slot = _enrolled(w)
    r = _check(w, waiting, 1, "nothing", w.now)  # no infusion yet: nothing to ask after
    _one_line(r)
    assert "administration 1 is not recorded as given" in r.err
    pid, n, start = _given(w, monkeypatch)
    after = start + timedelta(hours=2, minutes=30)
    r = _check(w, pid, n, "nothing,infusion_reaction", after)
    _one_line(r)
    assert "'nothing' cannot be combined with events" in r.err
    r = _check(w, pid, n, "fever", after)  # not one of the check's codes
    _one_line(r)
    assert "reactions" in r.err and "fever" in r.err
    r = w.run(
        "submit",
        palm_safety.CHECK_FORM,
        "--participant",
        pid,
        f"infusion={n}",
        f"asked_at={after.isoformat()}\x07",  # a control character
        "reactions=nothing",
    )
    _one_line(r)
    assert "asked_at" in r.err and "\x07" not in r.err
    r = _check(w, pid, n, "nothing", start + timedelta(hours=1))  # before the infusion ended
    _one_line(r)
    assert f"before administration {n} ended" in r.err
    r = _check(w, pid, n, "nothing", after)
    assert r.code == 0, r.err
    r = _check(w, pid, n, "infusion_reaction", after)  # once per infusion
    _one_line(r)
    assert "already recorded" in r.err
    shown = _show(w, pid)
    assert shown["ae_expected"] == []
    assert _signoff(w, pid).code == 0


def test_a_reaction_named_is_an_open_item_blocking_sign_off_until_its_ae(
    ward: Ward, monkeypatch: pytest.MonkeyPatch
) -> None:
    w = ward
    pid, n, start = _given(w, monkeypatch)
    after = start + timedelta(hours=2, minutes=30)
    r = _check(w, pid, n, "infusion_reaction", after)
    assert r.code == 0, r.err
    check_event = json.loads(w.run("participant", "show", pid, "--json", user="auditor").out)["ae_expected"][
        0
    ]["check"]
    # listed where the ward sees open items: participant show, the ward list, today
    expected = _show(w, pid)["ae_expected"]
    assert [(e["event"], e["dose"], e["check"]) for e in expected] == [("infusion_reaction", n, check_event)]
    assert "prespecified=infusion_reaction infusion=" in expected[0]["detail"]
    r = w.run("participant", "show", pid, user="auditor")
    assert r.code == 0 and "open item: AE form expected: infusion_reaction" in r.out, r.out
    rows = json.loads(w.run("participant", "list", "--json").out)
    assert next(x for x in rows if x["id"] == pid)["ae_expected"] == 1
    items = json.loads(w.run("today", "--json").out)["items"]
    words = _worklist_words(w, pid, n)  # the administration as the worklist names it ("ZMapp infusion 1")
    assert any(
        i["participant"] == pid
        and i["what"] == f"adverse event form for infusion_reaction reported after {words}"
        for i in items
    ), items
    # the casebook cannot be signed off
    r = _signoff(w, pid)
    _one_line(r)
    assert f"cannot sign off {pid}" in r.err and f"infusion_reaction after infusion {n}" in r.err
    # an AE of another code, or of this code after another infusion and not ongoing that day, covers nothing
    r = _ae(
        w,
        pid,
        "term=Headache",
        f"infusion={n}",
        "grade=1",
        "serious=no",
        "outcome=recovered",
        f"end={w.now.date().isoformat()}",
    )
    assert r.code == 0, r.err
    assert len(_show(w, pid)["ae_expected"]) == 1
    # the AE with the prespecified code naming the infusion: the item closes, the sign-off goes
    r = _ae(
        w,
        pid,
        "term=Infusion-related reaction",
        "prespecified=infusion_reaction",
        f"infusion={n}",
        "grade=2",
        "serious=no",
        "outcome=recovering",
    )
    assert r.code == 0, r.err
    assert _show(w, pid)["ae_expected"] == []
    items = json.loads(w.run("today", "--json").out)["items"]
    assert not any(i["participant"] == pid and "adverse event form" in i["what"] for i in items)
    r = _signoff(w, pid)
    assert r.code == 0, r.err
    assert _show(w, pid)["signoff"]["state"] == "signed"


def test_an_ae_ongoing_on_the_day_of_the_check_covers_it(ward: Ward, monkeypatch: pytest.MonkeyPatch) -> None:
    w = ward
    pid, n, start = _given(w, monkeypatch)
    # a reaction that began the day before (no infusion named) and is still going
    r = _ae(
        w,
        pid,
        "term=Infusion-related reaction",
        "prespecified=infusion_reaction",
        f"onset={(start.date() - timedelta(days=1)).isoformat()}",
        "grade=1",
        "serious=no",
        "outcome=recovering",
    )
    assert r.code == 0, r.err
    r = _check(w, pid, n, "infusion_reaction", start + timedelta(hours=2, minutes=30))
    assert r.code == 0, r.err
    assert _show(w, pid)["ae_expected"] == []


def test_the_check_keeps_its_role_at_the_hub(ward: Ward, monkeypatch: pytest.MonkeyPatch) -> None:
    """The check is a clinical record (`record.submit`), whatever its name: one made by a DSMG member (who
    may write the DSMG's forms only) is refused at the hub, naming the action, nothing applied."""
    w = ward
    pid, n, start = _given(w, monkeypatch)
    assert _check(w, pid, n, "nothing", start + timedelta(hours=2, minutes=30)).code == 0
    assert all(r.ok for r in _to_the_hub(w))  # type: ignore[attr-defined]
    append_raw(
        w.site(),
        "record.submitted",
        {"form": palm_safety.CHECK_FORM, "data": {"infusion": n, "reactions": ["nothing"]}},
        subject=f"participant:{pid}",
        role="dsmg",
        user="dsmg",
    )
    with pytest.raises(
        Refused, match=r"role dsmg may not submit 'post_infusion_check' records .*record\.submit"
    ):
        _to_the_hub(w)


# -- the DSMG review of a serious AE ------------------------------------------------------------


def _sae(w: Ward, pid: str, n: int):
    return _ae(
        w,
        pid,
        "term=Anaphylaxis",
        f"infusion={n}",
        "grade=4",
        "serious=yes",
        "life_threatening=yes",
        "outcome=recovering",
    )


def _review(w: Ward, pid: str, sae: str, user: str = "dsmg"):
    return w.run(
        "submit",
        palm_safety.REVIEW_FORM,
        "--participant",
        pid,
        f"sae={sae}",
        "judged=related",
        "unexpected=no",
        user=user,
    )


def _awaiting(w: Ward) -> list[str]:
    items = json.loads(w.run("today", "--json").out)["items"]
    return [i["what"].rsplit(" ", 1)[1] for i in items if i["what"].startswith("DSMG relatedness review")]


def test_a_serious_ae_stays_on_the_dsmg_list_until_a_review_names_it(
    ward: Ward, monkeypatch: pytest.MonkeyPatch
) -> None:
    w = ward
    pid, n, _start = _given(w, monkeypatch)
    other, _slot = _enrolled(w)
    r = _sae(w, pid, n)
    assert r.code == 0, r.err
    s = w.site().unlock("auditor", PASSWORD)
    try:
        sae, mild_row = s.store.one(
            "SELECT event_id, participant FROM adverse_events WHERE participant = ? AND serious = 1", (pid,)
        )
    finally:
        s.close()
    assert mild_row == pid
    r = _ae(w, pid, "term=Nausea", "grade=1", "serious=no", "outcome=recovered")
    assert r.code == 0, r.err
    s = w.site().unlock("auditor", PASSWORD)
    try:
        (mild,) = s.store.one(
            "SELECT event_id FROM adverse_events WHERE participant = ? AND serious = 0", (pid,)
        )
    finally:
        s.close()
    assert _awaiting(w) == [sae]
    assert next(a for a in _show(w, pid)["open_aes"] if a["event"] == sae)["dsmg_review_pending"] is True
    # refused: a clinician (the DSMG's permission), no serious AE of that participant, a non-record
    r = _review(w, pid, sae, user="clinician")
    _one_line(r)
    assert "role clinician may not submit dsmb_sae_review forms" in r.err
    r = _review(w, pid, mild)
    _one_line(r)
    assert f"{mild} is not a serious adverse event" in r.err and sae in r.err
    r = _review(w, other, sae)
    _one_line(r)
    assert f"{sae} is an adverse event of {pid}, not {other}" in r.err
    r = _review(w, pid, "EV-NOT-A-RECORD")
    _one_line(r)
    assert "is not an adverse event record of" in r.err
    for hostile in (f"{sae}\x1b[2J", "E" * 5000, f"{sae}\n{sae}"):  # control characters, oversized
        r = _review(w, pid, hostile)
        _one_line(r)
        assert "sae" in r.err and "\x1b" not in r.err and len(r.err) < 1000, r.err
    assert _awaiting(w) == [sae]
    # accepted: off the list
    r = _review(w, pid, sae)
    assert r.code == 0, r.err
    assert _awaiting(w) == []
    assert next(a for a in _show(w, pid)["open_aes"] if a["event"] == sae)["dsmg_review_pending"] is False
    # the DSMG board reads the review by its declaration
    from wardcrf.workflow import dsmg

    s = w.site().unlock("dsmg", PASSWORD)
    try:
        board = dsmg.review(s, today=w.now.date())
        assert dsmg.sae_review_form(s) == (palm_safety.REVIEW_FORM, "sae")
    finally:
        s.close()
    saes = next(p for p in board["participants"] if p["participant"] == pid)["saes"]
    assert [(x["event"], x["relatedness"], x["unexpected"], x["awaiting_review"]) for x in saes] == [
        (sae, "related", "no", False)
    ]
    # the exports read it too: SDTM SUPPAE's DSMG relatedness, the safety report's DSMG assessment
    out = w.root / "sdtm"
    r = w.run("export", "sdtm", "--out", str(out), user="auditor")
    assert r.code == 0, r.err
    supp = json.loads((out / "suppae.json").read_text("utf-8"))
    cols = [c["name"] for c in supp["columns"]]
    assert {"AERELDSM": "RELATED", "AEUNXDSM": "N"}.items() <= {
        row[cols.index("QNAM")]: row[cols.index("QVAL")] for row in supp["rows"]
    }.items()
    r = w.run("report", "safety", "--format", "json", user="auditor")
    assert r.code == 0, r.err
    reported = next(a for a in json.loads(r.out)["adverse_events"] if a["record"] == sae)
    assert [x["relatedness"] for x in reported["dsmg"]] == ["related"] and reported["dose"] == n


def test_a_review_keeps_the_dsmg_permission_at_the_hub(ward: Ward, monkeypatch: pytest.MonkeyPatch) -> None:
    w = ward
    pid, n, _start = _given(w, monkeypatch)
    assert _sae(w, pid, n).code == 0
    s = w.site().unlock("auditor", PASSWORD)
    try:
        (sae,) = s.store.one("SELECT event_id FROM adverse_events WHERE participant = ?", (pid,))
    finally:
        s.close()
    assert _review(w, pid, sae).code == 0
    assert all(r.ok for r in _to_the_hub(w))  # type: ignore[attr-defined]  # the DSMG's: applied
    append_raw(
        w.site(),
        "record.submitted",
        {"form": palm_safety.REVIEW_FORM, "data": {"sae": sae, "judged": "not_related", "unexpected": "no"}},
        subject=f"participant:{pid}",
        role="clinician",
        user="clinician",
    )
    with pytest.raises(
        Refused, match=r"role clinician may not submit 'dsmb_sae_review' records .*dsmg\.decide"
    ):
        _to_the_hub(w)


def test_without_a_declared_review_no_serious_ae_waits_for_one(palm: Ward, monkeypatch) -> None:
    """Shipped PALM declares no `dsmg_review`: its SAEs are not listed as awaiting a review no form can give."""
    w = palm
    pid, slot = _enrolled(w)
    r = _ae(
        w, pid, "term=Anaphylaxis", "grade=4", "serious=yes", "life_threatening=yes", "outcome=recovering"
    )
    assert r.code == 0, r.err
    assert _awaiting(w) == []
    assert [a["dsmg_review_pending"] for a in _show(w, pid)["open_aes"]] == [False]
    del slot, monkeypatch


@pytest.fixture
def palm(cli, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Ward:
    return _ward(cli, tmp_path, monkeypatch, "palm")


# -- hostile declarations: `protocol check` refuses in one line, FILE:LINE -------------------------


def _line_of(source: str, text: str) -> int:
    return next(i for i, line in enumerate(source.splitlines(), 1) if text in line)


CHECK_LINE = 'check = { form = "post_infusion_check"'


@pytest.mark.parametrize(
    ("old", "new", "problem"),
    [
        (
            'form = "post_infusion_check", field = "reactions"',
            'form = "post_infusion_chek", field = "reactions"',
            "form 'post_infusion_chek' is not declared",
        ),
        ('field = "reactions"', 'field = "reaction"', "has no field 'reaction'"),
        ('none = "nothing"', 'none = "none"', "'none' is not a code of post_infusion_check.reactions"),
        ('link = "infusion", expect_ae', 'link = "dose", expect_ae', "has no field 'dose'"),
        ('field = "reactions"', 'field = "asked_at"', "is not a multiple-choice field"),
    ],
)
def test_a_check_naming_what_does_not_exist_is_refused(cli, tmp_path: Path, old, new, problem) -> None:
    source = palm_safety.source()
    assert old in source
    bad = source.replace(old, new, 1)
    path = tmp_path / "bad.toml"
    path.write_text(bad, "utf-8")
    r = cli("protocol", "check", str(path))
    _one_line(r)
    assert f" bad.toml:{_line_of(bad, 'check = { form =')}: safety.check" in r.err and problem in r.err, r.err


@pytest.mark.parametrize(
    ("old", "new", "problem"),
    [
        ('dsmg_review = { form = "dsmb_sae_review"', 'dsmg_review = { form = "dsmb_review"', "not declared"),
        ('ae_field = "sae"', 'ae_field = "ae_event"', "has no field 'ae_event'"),
        ('relatedness = "judged"', 'relatedness = "relatedness"', "has no field 'relatedness'"),
        ('ae_field = "sae"', 'ae_field = "judged"', "names an AE record: a text field"),
    ],
)
def test_a_review_naming_what_does_not_exist_is_refused(cli, tmp_path: Path, old, new, problem) -> None:
    bad = palm_safety.source().replace(old, new, 1)
    path = tmp_path / "bad.toml"
    path.write_text(bad, "utf-8")
    r = cli("protocol", "check", str(path))
    _one_line(r)
    assert (
        f" bad.toml:{_line_of(bad, 'dsmg_review = {')}: safety.dsmg_review" in r.err and problem in r.err
    ), r.err


def test_a_check_that_is_not_a_dose_assessment_or_whose_codes_differ_is_refused(cli, tmp_path: Path) -> None:
    source = palm_safety.source()
    cases = {
        # not asked after each administration: its dose assessment removed
        "not-assessed": source.replace(
            'code = "post_infusion_check"', 'code = "post_infusion_check"', 1
        ).replace(
            'form = "post_infusion_check"\nlabel = "post-infusion check"\nwhen = "after"',
            'form = "post_infusion_check"\nlabel = "post-infusion check"\nwhen = "before"',
            1,
        ),
        # a reaction the check asks that is not a prespecified event
        "codes": source.replace(
            '  { code = "infusion_reaction", label = { en = "Infusion-related reaction", fr = "Réaction liée à la '
            'perfusion" } },\n]\n\n[forms.dsmb_sae_review]',
            '  { code = "infusion_reaction", label = { en = "Infusion-related reaction" } },\n'
            '  { code = "rash", label = { en = "Rash" } },\n]\n\n[forms.dsmb_sae_review]',
            1,
        ),
        # an expected AE with no prespecified field to carry the code
        "expect": source.replace("[forms.ae.fields.prespecified]", "[forms.ae.fields.prespecified_code]", 1),
    }
    words = {
        "not-assessed": "declare a [[dose_assessments]] with form = 'post_infusion_check', when = \"after\"",
        "codes": "differ from [safety] prespecified (infusion_reaction)",
        "expect": "form ae has no field 'prespecified'",
    }
    for name, bad in cases.items():
        assert bad != source, name
        path = tmp_path / f"{name}.toml"
        path.write_text(bad, "utf-8")
        r = cli("protocol", "check", str(path))
        assert r.code == 1, (name, r.out)
        assert words[name] in r.err and f" {name}.toml:" in r.err, (name, r.err)
        assert len(r.err.strip().splitlines()) == 1, r.err
        assert "Traceback" not in r.err


def test_the_shipped_files_load_with_their_declarations() -> None:
    """MEXCOVID's re-encoding declares both (format 1's names); PALM and PALM007 neither."""
    m = model.shipped("mexcovid.toml")
    assert m.data["safety"]["check"]["form"] == "post_dose_check"
    assert m.data["safety"]["dsmg_review"]["form"] == "dsmg_ae_review"
    for name in ("palm.toml", "palm007.toml"):
        assert "check" not in model.shipped(name).data["safety"]


def _after(source: str, header: str, old: str, new: str) -> str:
    """`old` replaced by `new` at its first occurrence after `header`."""
    at = source.index(header)
    return source[:at] + source[at:].replace(old, new, 1)


def test_the_ae_link_and_the_ae_codes_are_checked(cli, tmp_path: Path) -> None:
    source = palm_safety.source()
    cases = {
        "link": (
            source.replace('ae_link = "infusion"', 'ae_link = "infusion_no"', 1),
            "ae_link = ",
            "form ae has no field 'infusion_no'",
        ),
        "codes": (
            _after(
                source,
                "[forms.ae.fields.prespecified]",
                '  { code = "infusion_reaction"',
                '  { code = "rash", label = { en = "Rash" } },\n  { code = "infusion_reaction"',
            ),
            "prespecified = [",
            "differ from the choices of ae.prespecified besides 'no' (rash, infusion_reaction)",
        ),
    }
    for name, (bad, line, problem) in cases.items():
        assert bad != source, name
        path = tmp_path / f"{name}.toml"
        path.write_text(bad, "utf-8")
        r = cli("protocol", "check", str(path))
        _one_line(r)
        at = next(i for i, text in enumerate(bad.splitlines(), 1) if text.startswith(line))
        assert f" {name}.toml:{at}: safety." in r.err and problem in r.err, (name, r.err)
    path = tmp_path / "good.toml"
    path.write_text(source, "utf-8")
    r = cli("protocol", "check", str(path))
    assert r.code == 0, r.err
