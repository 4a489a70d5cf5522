"""Stratum levels computed from the participant's records, as the protocol declares (issue 20).

The ward runs PALM (`palm-levels`: its eligibility gate before enrollment
only, so a participant consented and not yet screened may be randomized);
the lists are PALM variants stratified by its screening's `sex` and `age`.
"""

from __future__ import annotations

import json

import pytest
from rand_support import SEX_AND_AGE, Trial, site, trial
from rand_support import palm_with_strata as _palm

from wardcrf.engine import model
from wardcrf.errors import Refused
from wardcrf.randomization import service

__all__ = ["site", "trial"]
pytestmark = pytest.mark.ward("palm-levels")

COMPUTED = model.parse(_palm(SEX_AND_AGE, '["site", "sex", "age_band"]'), "palm-sex-age.toml")
ASKED_AGE = model.parse(
    _palm(
        SEX_AND_AGE.replace('code = "age_band"\n', 'code = "age_band"\nasked = true\n'),
        '["site", "age_band"]',
    ),
    "palm-age-asked.toml",
)
OVERLAP = model.parse(
    _palm(SEX_AND_AGE.replace("screening.age < 60", "screening.age >= 18"), '["site", "age_band"]'),
    "palm-overlap.toml",
)


def _consented(trial: Trial) -> str:
    assert trial.rec is not None
    return trial.rec.consent()


def _allocated_event(session, pid: str) -> dict:
    line = session.store.scalar(
        "SELECT e.line FROM rand_allocations a JOIN events e ON e.id = a.event_id WHERE a.participant = ?",
        (pid,),
    )
    return json.loads(line)["body"]


def test_levels_follow_from_the_recorded_fields_and_a_matching_statement_is_accepted(
    trial: Trial, session_for
) -> None:
    trial.make(COMPUTED, per_stratum=4)
    clin = session_for("clinician")
    old_man = _consented(trial)
    trial.rec.screen(old_man, age="75", sex="M")
    a = service.allocate(clin, old_man)
    assert a.stratum == "site=WUH01;sex=M;age_band=OLD"
    body = _allocated_event(clin, old_man)
    assert body["levels"] == {"age_band": "OLD", "sex": "M"}
    assert body["computed"] == ["sex", "age_band"] and body["asked"] == []
    with pytest.raises(Refused, match=rf"{old_man} is already randomized"):  # not a quarrel about levels
        service.allocate(clin, old_man, {"age_band": "YOUNG"})
    young_woman = _consented(trial)
    trial.rec.screen(young_woman, age="36", sex="F")
    a = service.allocate(clin, young_woman, {"sex": "F", "age_band": "YOUNG", "site": "WUH01"})
    assert a.stratum == "site=WUH01;sex=F;age_band=YOUNG"


def test_a_stated_level_that_disagrees_with_the_records_is_refused_naming_both(
    trial: Trial, session_for
) -> None:
    trial.make(COMPUTED, per_stratum=4)
    clin = session_for("clinician")
    pid = _consented(trial)
    trial.rec.screen(pid, age="75", sex="M")
    with pytest.raises(
        Refused, match=rf"stratum factor sex: you gave F, but {pid}'s records give M \(screening.sex\)"
    ):
        service.allocate(clin, pid, {"sex": "F"})
    with pytest.raises(Refused, match=r"age_band: you gave YOUNG, but .* give OLD \(screening.age >= 60\)"):
        service.allocate(clin, pid, {"age_band": "YOUNG"})
    with pytest.raises(
        Refused, match="stratum factor site: you gave 'WUH02', but this laptop allocates for site WUH01"
    ):
        service.allocate(clin, pid, {"site": "WUH02"})
    with pytest.raises(Refused, match="'X' is not a level of stratum factor sex"):
        service.allocate(clin, pid, {"sex": "X"})
    assert clin.store.scalar("SELECT COUNT(*) FROM rand_allocations") == 0


def test_a_level_not_recorded_yet_is_refused_naming_the_missing_field(trial: Trial, session_for) -> None:
    trial.make(COMPUTED, per_stratum=4)
    clin = session_for("clinician")
    pid = _consented(trial)  # consented, not screened
    with pytest.raises(
        Refused, match=rf"stratum factor sex cannot be computed for {pid}: screening.sex is not recorded"
    ):
        service.allocate(clin, pid)
    with pytest.raises(Refused, match=r"screening\.sex is not recorded"):
        service.allocate(
            clin, pid, {"sex": "M", "age_band": "OLD"}
        )  # not asked: a statement is no substitute
    assert clin.store.scalar("SELECT COUNT(*) FROM rand_allocations") == 0
    assert clin.store.scalar("SELECT COUNT(*) FROM events WHERE type = 'randomization.allocated'") == 0


def test_an_asked_factor_takes_the_stated_level_only_when_the_records_cannot_give_it(
    trial: Trial, session_for
) -> None:
    trial.make(ASKED_AGE, per_stratum=4)
    clin = session_for("clinician")
    unscreened = _consented(trial)
    with pytest.raises(
        Refused, match=r"age_band is asked at randomization: give its level \(one of OLD, YOUNG\)"
    ):
        service.allocate(clin, unscreened)
    a = service.allocate(clin, unscreened, {"age_band": "YOUNG"})
    assert a.stratum == "site=WUH01;age_band=YOUNG"
    body = _allocated_event(clin, unscreened)
    assert body["asked"] == ["age_band"] and body["computed"] == []
    screened = _consented(trial)
    trial.rec.screen(screened, age="75")
    with pytest.raises(Refused, match=r"you gave YOUNG, but .* records give OLD"):
        service.allocate(clin, screened, {"age_band": "YOUNG"})
    assert service.allocate(clin, screened).stratum == "site=WUH01;age_band=OLD"


def test_levels_that_overlap_are_refused_naming_the_factor(trial: Trial, session_for) -> None:
    trial.make(OVERLAP, per_stratum=4)
    clin = session_for("clinician")
    pid = _consented(trial)
    trial.rec.screen(pid, age="75")
    with pytest.raises(
        Refused, match=r"stratum factor age_band: levels OLD and YOUNG both hold .* exactly one must"
    ):
        service.allocate(clin, pid)


def test_the_factors_travel_signed_with_the_list(trial: Trial) -> None:
    made = trial.make(COMPUTED, per_stratum=2)
    body = json.loads(
        trial.hub_session().store.scalar("SELECT line FROM events WHERE id = ?", (made.event.id,))
    )["body"]
    assert body["factors"][0] == {
        "code": "sex",
        "asked": False,
        "field": "screening.sex",
        "levels": [{"code": "M"}, {"code": "F"}],
    }
    assert body["factors"][1]["levels"][0] == {"code": "OLD", "when": "screening.age >= 60"}


# -- the protocol file -------------------------------------------------------------------------


def _problems(source: str) -> list[str]:
    with pytest.raises(model.ProtocolFileError) as info:
        model.parse(source, "trial.toml")
    return info.value.problems


def _line(source: str, needle: str) -> int:
    return next(i + 1 for i, text in enumerate(source.splitlines(keepends=True)) if needle in text)


@pytest.mark.parametrize(
    ("strata", "needle", "problem"),
    [
        (
            SEX_AND_AGE.replace('field = "screening.sex"', 'field = "screening.age"'),
            'field = "screening.age"',
            "strata[0].field: screening.age is not a single-choice field",
        ),
        (
            SEX_AND_AGE.replace('field = "screening.sex"', 'field = "screening.colour"'),
            'field = "screening.colour"',
            "strata[0].field: form screening has no field 'colour'",
        ),
        (
            SEX_AND_AGE.replace('field = "screening.sex"', 'field = "vitals.temp"'),
            'field = "vitals.temp"',
            "'vitals' is not a once-per-participant form",
        ),
        (
            SEX_AND_AGE.replace('{ code = "F", label = "Female" }', '{ code = "U", label = "Unknown" }'),
            '{ code = "U", label = "Unknown" }',
            "'U' is not a code of screening.sex (M, F)",
        ),
        (
            SEX_AND_AGE.replace(
                '{ code = "M", label = "Male" }', '{ code = "M", label = "Male", when = "true" }'
            ),
            'when = "true"',
            "takes its level from screening.sex: a level has no `when` besides",
        ),
        (
            SEX_AND_AGE.replace(', when = "screening.age < 60"', ""),
            "levels = [\n",  # an inline table in an array is reported at the array's line
            "level 'YOUNG' of factor age_band says neither how it follows from the records",
        ),
        (
            SEX_AND_AGE.replace('field = "screening.sex"', 'field = "screening.sex\\u0007"'),
            'field = "screening.sex',
            "strata[0].field",
        ),
    ],
)
def test_a_factor_that_cannot_be_computed_is_refused_with_its_line(
    strata: str, needle: str, problem: str
) -> None:
    source = _palm(strata, '["site", "sex", "age_band"]')
    problems = _problems(source)
    line = _line(source, needle)
    assert any(p.startswith(f"trial.toml:{line}:") and problem in p for p in problems), problems


def test_stratify_by_naming_no_factor_is_refused_with_its_line() -> None:
    source = _palm(SEX_AND_AGE, '["site", "sex", "weight_band"]')
    problems = _problems(source)
    line = _line(source, "stratify_by =")
    assert any(
        p.startswith(f"trial.toml:{line}:") and "'weight_band' is neither \"site\" nor a [[strata]] code" in p
        for p in problems
    ), problems
