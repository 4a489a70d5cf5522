"""`[dsmg]` and `[disposition]` name forms, fields and codes that exist (issue #17; `engine.record_roles`).

docs/protocol.md said these references were checked when the file is read; they were not: PALM with
`[disposition] form = "nope"` or `death = "dead"` loaded, and the death never counted. Each is refused
with its line, and the shipped protocols are accepted.
"""

from __future__ import annotations

import pytest

from wardcrf.engine import loading, model
from wardcrf.errors import Refused

SHIPPED = ("palm.toml", "palm007.toml", "mexcovid.toml")


@pytest.mark.parametrize("name", SHIPPED)
def test_the_shipped_protocols_name_forms_fields_and_codes_that_exist(name: str) -> None:
    assert isinstance(loading.parse(model.shipped_source(name), name), model.Model)


NOT_SEEN = 'not_seen_alive = [{ form = "vital_status", when = "status != \'alive\'" }]'


@pytest.mark.parametrize(
    ("old", "new", "problem"),
    [
        ('[dsmg]\nform = "dsmg_decision"', '[dsmg]\nform = "dsmg"', "dsmg.form: form 'dsmg' is not declared"),
        ('field = "decision"', 'field = "verdict"', "dsmg.field: form dsmg_decision has no field 'verdict'"),
        (
            'alter = "alter"',
            'alter = "amend"',
            "dsmg.alter: 'amend' is not a choice of dsmg_decision.decision",
        ),
        (
            '[disposition]\nform = "disposition"',
            '[disposition]\nform = "end"',
            "disposition.form: form 'end' is not declared",
        ),
        ('stage = "stage"', 'stage = "date"', "disposition.stage: disposition.date is read by its codes"),
        (
            'end_of_study = "end_of_study"\ndeath',
            'end_of_study = "eos"\ndeath',
            "disposition.end_of_study: 'eos' is not a choice of disposition.stage",
        ),
        (
            'death = "death"\n',
            'death = "dead"\n',
            "disposition.death: 'dead' is not a choice of disposition.status",
        ),
        (
            'death_date = "death_date"',
            'death_date = "reason"',
            "disposition.death_date: disposition.reason is read",
        ),
        (
            'death_date = "death_date"',
            'death_date = "died_on"',
            "disposition.death_date: form disposition has no",
        ),
        (
            NOT_SEEN,
            NOT_SEEN.replace('"vital_status"', '"contact"'),
            "not_seen_alive[0].form: form 'contact' is not",
        ),
        (
            NOT_SEEN,
            NOT_SEEN.replace("status !=", "state !="),
            "not_seen_alive[0].when: column 1: unknown name",
        ),
        (NOT_SEEN, NOT_SEEN.replace("form =", "from ="), "not_seen_alive"),
        (NOT_SEEN, 'not_seen_alive = [{ form = "vital_status\u0007" }]', "U+0007 (BELL) is not allowed"),
        (NOT_SEEN, "not_seen_alive = [" + '{ form = "vital_status" }, ' * 51 + "]", "not_seen_alive"),
    ],
)
def test_a_reference_that_matches_nothing_is_refused_with_its_line(old: str, new: str, problem: str) -> None:
    source = model.shipped_source("palm.toml")
    assert old in source, old
    with pytest.raises(Refused) as refused:
        loading.parse(source.replace(old, new, 1), "palm.toml")
    message = str(refused.value)
    assert "palm.toml:" in message and problem in message, message
