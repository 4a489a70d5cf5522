"""The shipped format-2 protocol files, their JSON Schema, and the reader's refusals (issue 17).

Accept: the three files validate against `protocol-2.schema.json`, every
cross-reference resolves, every expression parses and names what exists, and
the worked example in docs/protocol.md is the shipped palm007.toml. Refuse:
malformed files are refused whole, each problem as `FILE:LINE: key: problem`
with the line where it is, never a traceback.
"""

from __future__ import annotations

import re
from pathlib import Path

import jsonschema
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from wardcrf.engine import expressions, model

ROOT = Path(__file__).resolve().parents[2]


def _source(name: str) -> str:
    return model.shipped_source(name)


def _refusal(source: str, name: str = "trial.toml") -> list[str]:
    with pytest.raises(model.ProtocolFileError) as info:
        model.parse(source, name)
    return info.value.problems


def _line_of(source: str, needle: str, nth: int = 1) -> int:
    """The 1-based line of the nth occurrence of `needle`."""
    lines = [i + 1 for i, text in enumerate(source.splitlines()) if needle in text]
    return lines[nth - 1]


# -- accept -------------------------------------------------------------------------------


def test_the_schema_is_a_valid_draft_2020_12_schema() -> None:
    jsonschema.Draft202012Validator.check_schema(dict(model.schema()))


@pytest.mark.parametrize("name", model.SHIPPED)
def test_each_shipped_file_validates_against_the_schema_alone(name: str) -> None:
    import tomllib

    jsonschema.Draft202012Validator(dict(model.schema())).validate(tomllib.loads(_source(name)))


@pytest.mark.parametrize("name", model.SHIPPED)
def test_each_shipped_file_loads_with_its_references_and_expressions(name: str) -> None:
    m = model.shipped(name)
    assert m.id and m.version
    for arm in m.arms:
        assert m.regimens_of(arm.code), arm
    for regimen in m.regimens.values():
        for adm in regimen.administrations:
            assert adm.product in m.products
            assert adm.record["form"] in m.data["forms"]


@pytest.mark.parametrize("name", model.SHIPPED)
def test_every_expression_of_the_shipped_files_is_parsed_by_the_reader(name: str) -> None:
    """Non-vacuous: the schema's expression format reaches every expression; each one parses."""
    import tomllib

    seen: list[str] = []
    checker = jsonschema.FormatChecker(formats=())

    @checker.checks(model.EXPRESSION_FORMAT)
    def _seen(value: object) -> bool:
        if isinstance(value, str):  # a `cond` may be a table; the schema's type says so
            seen.append(value)
            expressions.parse(value)
        return True

    s = dict(model.schema())
    s["$defs"] = dict(s["$defs"])
    s["$defs"]["expr"] = {**s["$defs"]["expr"], "format": model.EXPRESSION_FORMAT}
    jsonschema.Draft202012Validator(s, format_checker=checker).validate(tomllib.loads(_source(name)))
    text = _source(name)
    # every `expr = "..."`, `check = "..."`, `when = "..."` line of the file was seen by the format
    declared = re.findall(r'^(?:expr|check|applies_when|compute|stop_when) = "(.*)"', text, re.M)
    assert declared and set(declared) <= set(seen), set(declared) - set(seen)


def test_the_worked_example_in_protocol_md_is_the_shipped_palm007_file() -> None:
    doc = (ROOT / "docs" / "protocol.md").read_text("utf-8")
    section = doc.split("## Worked example: PALM007", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"^```toml\n(.*?)^```$", section, re.S | re.M)
    example = [b for b in blocks if b.startswith("# PALM007:")]
    assert len(example) == 1
    assert example[0] == _source("palm007.toml")


def test_the_model_is_immutable() -> None:
    m = model.shipped("mexcovid.toml")
    with pytest.raises(TypeError):
        m.data["protocol"]["id"] = "OTHER"  # type: ignore[index]
    with pytest.raises(AttributeError):
        m.id = "OTHER"  # type: ignore[misc]
    assert isinstance(m.data["arms"], tuple)


def test_a_placebo_regimen_repeats_its_twin_with_the_product_swapped() -> None:
    m = model.shipped("palm007.toml")
    active, placebo = m.regimens["tecovirimat"], m.regimens["placebo"]
    assert [a.code for a in placebo.administrations] == [a.code for a in active.administrations]
    assert {a.product for a in placebo.administrations} == {"PLACEBO"}
    assert [a.schedule for a in placebo.administrations] == [a.schedule for a in active.administrations]


# -- refuse: each problem with its file and line ---------------------------------------------


def test_an_unknown_key_in_the_second_administration_is_named_at_its_line() -> None:
    src = _source("palm007.toml").replace('code = "q8h"\n', 'code = "q8h"\ncolour = "blue"\n')
    line = _line_of(src, 'colour = "blue"')
    problems = _refusal(src, "palm007.toml")
    assert any(
        p.startswith(f"palm007.toml:{line}: regimens[0].administrations[1].colour: unknown key 'colour'")
        for p in problems
    ), problems


def test_an_unknown_refusal_key_is_named_at_its_line() -> None:
    src = _source("mexcovid.toml").replace(
        "refusals = { course_complete", 'refusals = { too_late = "x", course_complete', 1
    )
    line = _line_of(src, "too_late")
    problems = _refusal(src, "mexcovid.toml")
    assert any(
        p.startswith(f"mexcovid.toml:{line}: regimens[0].administrations[0].refusals.too_late: unknown key")
        for p in problems
    ), problems


def test_an_arm_naming_an_undeclared_regimen_is_refused_at_its_line() -> None:
    src = _source("palm.toml").replace('regimens = ["remdesivir"]', 'regimens = ["remdesivr"]')
    line = _line_of(src, '"remdesivr"')
    problems = _refusal(src, "palm.toml")
    assert problems == [
        f"palm.toml:{line}: arms[1].regimens[0]: regimen 'remdesivr' is not declared (mab114, regneb3, remdesivir, zmapp)"
    ]


def test_a_malformed_expression_is_refused_with_its_column() -> None:
    src = _source("palm007.toml").replace(
        'expr = "screening.active_lesion == true"', 'expr = "screening.active_lesion == == true"'
    )
    line = _line_of(src, "== == true")
    problems = _refusal(src, "palm007.toml")
    assert len(problems) == 1
    assert problems[0].startswith(f"palm007.toml:{line}: criteria[1].expr: expression column 28: "), problems


def test_an_expression_naming_a_field_that_does_not_exist_is_refused() -> None:
    src = _source("palm007.toml").replace(
        "screening.active_lesion == true", "screening.active_lesions == true"
    )
    line = _line_of(src, "active_lesions")
    problems = _refusal(src, "palm007.toml")
    assert len(problems) == 1 and problems[0].startswith(f"palm007.toml:{line}: criteria[1].expr: column "), (
        problems
    )
    assert "active_lesions" in problems[0]


def test_overlapping_weight_bands_are_refused() -> None:
    src = _source("palm007.toml").replace(
        "{ weight = [13, 25], dose = 200 }", "{ weight = [12, 25], dose = 200 }", 1
    )
    problems = _refusal(src, "palm007.toml")
    assert any(
        "regimens[0].administrations[0].dose.bands: weight bands [6, 13] and [12, 25] overlap" in p
        for p in problems
    )


def test_a_gap_between_weight_bands_is_refused() -> None:
    src = _source("palm007.toml").replace(
        "{ weight = [13, 25], dose = 200 }", "{ weight = [14, 25], dose = 200 }", 1
    )
    problems = _refusal(src, "palm007.toml")
    assert any("weight bands [6, 13] and [14, 25] leave a gap" in p for p in problems), problems


def test_a_window_that_closes_before_it_opens_is_refused_at_its_line() -> None:
    src = _source("mexcovid.toml").replace('window = ["-2h", "+2h"]', 'window = ["+2h", "-2h"]', 1)
    line = _line_of(src, 'window = ["+2h", "-2h"]')
    problems = _refusal(src, "mexcovid.toml")
    assert problems == [
        f"mexcovid.toml:{line}: regimens[0].administrations[0].window: the window opens (+2h) after it closes (-2h)"
    ]


def test_a_record_role_naming_a_missing_field_is_refused() -> None:
    src = _source("mexcovid.toml").replace(
        'dose = "particles", start = "start"', 'dose = "particle", start = "start"', 1
    )
    problems = _refusal(src, "mexcovid.toml")
    assert any(
        "regimens[0].administrations[0].record.dose: form dose has no field 'particle'" in p for p in problems
    )


def test_a_format_1_file_is_refused_by_the_format_2_reader() -> None:
    from wardcrf import protocol

    problems = _refusal(protocol.default_source(), "mexcovid.toml")
    assert problems[0].startswith("mexcovid.toml:") and "protocol.format: must be 2" in problems[0]


def test_a_wrong_type_is_named() -> None:
    src = _source("palm.toml").replace("ratio = 1\n", 'ratio = "one"\n', 1)
    line = _line_of(src, 'ratio = "one"')
    problems = _refusal(src, "palm.toml")
    assert any(p.startswith(f"palm.toml:{line}: arms[0].ratio: ") for p in problems), problems


@pytest.mark.parametrize(
    ("inject", "expected"),
    [
        ("# a comment \u202e hidden\n", "U+202E (RIGHT-TO-LEFT OVERRIDE)"),
        ("x = nan\n", "numbers must be finite"),
        ("x = " + "[" * 40 + "]" * 40 + "\n", "nested more than 16 deep"),
        ("x = = 1\n", "not valid TOML"),
    ],
)
def test_hostile_text_is_refused_by_format_1s_machinery(inject: str, expected: str) -> None:
    src = _source("palm007.toml")
    cut = src.index("[trial]")
    problems = _refusal(src[:cut] + inject + src[cut:], "palm007.toml")
    assert any(expected in p for p in problems), problems
    assert all(p.startswith("palm007.toml") for p in problems)


def test_an_oversized_file_is_refused_before_it_is_read(tmp_path: Path) -> None:
    big = tmp_path / "big.toml"
    big.write_text("# " + "x" * (1024 * 1024) + "\n", "utf-8")
    with pytest.raises(model.ProtocolFileError) as info:
        model.read_file(big)
    assert "larger than 1,024 KiB" in info.value.problems[0]


def test_an_expression_longer_than_the_limit_is_refused() -> None:
    long = " or ".join(["screening.active_lesion == true"] * 80)
    src = _source("palm007.toml").replace('"screening.active_lesion == true"', f'"{long}"', 1)
    problems = _refusal(src, "palm007.toml")
    assert any("criteria[1].expr" in p for p in problems), problems


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(min_value=0), st.text(max_size=12))
def test_a_mutated_file_is_refused_or_read_never_a_crash(at: int, junk: str) -> None:
    """Fuzzed: any text spliced anywhere into a shipped file either loads or is refused with named problems."""
    src = _source("palm007.toml")
    i = at % len(src)
    mutated = src[:i] + junk + src[i:]
    try:
        model.parse(mutated, "palm007.toml")
    except model.ProtocolFileError as exc:
        assert exc.problems and all(p.startswith("palm007.toml") for p in exc.problems)


def test_windows_of_consecutive_doses_that_would_overlap_are_refused() -> None:
    src = _source("palm007.toml")
    i = src.index('window = ["-2h", "+2h"]')
    wide = src[:i] + 'window = ["-6h", "+6h"]' + src[i + len('window = ["-2h", "+2h"]') :]
    line = _line_of(wide, 'window = ["-6h", "+6h"]')
    assert _refusal(wide, "palm007.toml") == [
        f"palm007.toml:{line}: regimens[0].administrations[0].window: -6h to +6h is as long as the 12 h between "
        "two due times: the windows of consecutive administrations would overlap"
    ]


def test_a_minimum_spacing_the_due_times_break_is_refused() -> None:
    src = _source("palm007.toml").replace('min_spacing = "8h"', 'min_spacing = "13h"')
    problems = _refusal(src, "palm007.toml")
    assert any(
        "regimens[0].administrations[0].schedule.min_spacing: 13h: the due times 08:00, 20:00 are closer" in p
        for p in problems
    ), problems


def test_a_computed_field_naming_a_missing_field_is_refused_at_its_line() -> None:
    src = _source("mexcovid.toml").replace(
        'compute = "years(dob, date)"', 'compute = "years(birth, date)"', 1
    )
    line = _line_of(src, 'compute = "years(birth, date)"')
    problems = _refusal(src, "mexcovid.toml")
    assert len(problems) == 1 and problems[0].startswith(
        f"mexcovid.toml:{line}: forms.screening.fields.age.compute: column 7:"
    )
    assert "birth" in problems[0]


def test_the_failed_criteria_choices_must_be_the_criteria_codes() -> None:
    src = _source("palm007.toml").replace('{ code = "midaz", label = "Midazolam" },', "", 1)
    problems = _refusal(src, "palm007.toml")
    assert any(
        "choices: the choices must be the criteria codes: no choice for midaz" in p for p in problems
    ), problems


def test_a_version_is_read_once_by_its_hash() -> None:
    src = _source("palm.toml")
    assert model.parse_cached(src, "palm.toml") is model.parse_cached(src, "other-name.toml")
    assert model.parse_cached(src + "\n", "palm.toml") is not model.parse_cached(src, "palm.toml")


@pytest.mark.parametrize(
    ("name", "old", "new", "where"),
    [
        (
            "mexcovid.toml",
            "result == 'negative' and time",
            "result == 'negativ' and time",
            "gates[6].require",
        ),
        (
            "mexcovid.toml",
            "match = \"timepoint == 'pre_dose'\"",
            "match = \"timepoint == 'pre_dos'\"",
            "dose_assessments[0].match",
        ),
        (
            "palm007.toml",
            "when = \"timepoint == 'baseline'\"",
            "when = \"timepoint == 'basline'\"",
            "visits[0].forms[3].when",
        ),
        (
            "palm007.toml",
            'when = "screening.weight < 120"',
            'when = "screening.wieght < 120"',
            "regimens[0].administrations[0].when",
        ),
        (
            "palm.toml",
            'when = "screening.ct_np <= 22"',
            'when = "screening.ct_n <= 22"',
            "strata[0].levels[0].when",
        ),
    ],
)
def test_expressions_in_every_context_name_only_what_exists(
    name: str, old: str, new: str, where: str
) -> None:
    src = _source(name)
    assert src.count(old) >= 1
    mutated = src.replace(old, new, 1)
    line = _line_of(mutated, new)
    problems = _refusal(mutated, name)
    assert any(p.startswith(f"{name}:{line}: {where}: column ") for p in problems), problems


def test_administration_is_only_known_in_a_gate_before_a_dose() -> None:
    src = _source("palm007.toml").replace(
        'when = "screening.weight < 120"', 'when = "administration.number < 3"', 1
    )
    problems = _refusal(src, "palm007.toml")
    assert any("administration is only known in a gate before a dose" in p for p in problems), problems


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        (
            'window = ["-2h", "+2h"]',
            'window = ["-99999999999w", "+2h"]',
            "regimens[0].administrations[0].window[0]: '-99999999999w' is longer than 3660 days",
        ),
        ('min_spacing = "8h"', 'min_spacing = "1e9h"', "min_spacing: '1e9h' does not have the required form"),
        ("days = 14, times", 'count = [1, 99999999], stop_when = "true", times', "schedule.count"),
        ("first_day = 1, days = 14", "first_day = 99999999999, days = 14", "schedule.first_day"),
        (
            "first_day = 1, days = 14",
            'first_day = 1, every = "12h", days = 14',
            "schedule.every: 12h: days between administration days",
        ),
        (
            "first_day = 1, days = 14",
            'first_day = 1, every = "3000d", days = 14',
            "schedule: the course would end on day 42001",
        ),
    ],
)
def test_schedules_that_would_overflow_or_never_end_are_refused(old: str, new: str, expected: str) -> None:
    src = _source("palm007.toml")
    assert old in src
    problems = _refusal(src.replace(old, new, 1), "palm007.toml")
    assert any(expected in p for p in problems), problems


def test_an_unknown_time_zone_is_refused() -> None:
    src = _source("mexcovid.toml").replace('zone = "Asia/Shanghai"', 'zone = "../../etc/passwd"', 1)
    problems = _refusal(src, "mexcovid.toml")
    assert any("calendar.zone: '../../etc/passwd' is not a time zone" in p for p in problems), problems


_HOSTILE_VALUES = [
    '"99999999999w"',
    '"0.5d"',
    '"-3d"',
    "[]",
    "{}",
    "0",
    "-1",
    "1e308",
    "99999999999999999999",
    '"x"',
    "true",
    '["09:00", "09:00"]',
    '["23:59", "00:00"]',
    "[5, 1]",
    "[0, 99999999]",
    '["-99999999999w", "99999999999w"]',
]
_SCHEDULE_KEYS = [
    "every",
    "count",
    "times",
    "min_spacing",
    "window",
    "weight",
    "first_day",
    "per_day",
    "days",
    "closing",
    "round_to",
    "max",
    "per_kg",
    "fixed",
    "anchor_day",
    "zone",
]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(model.SHIPPED),
    st.lists(
        st.tuples(st.sampled_from(_SCHEDULE_KEYS), st.sampled_from(_HOSTILE_VALUES), st.integers(0)),
        max_size=3,
    ),
)
def test_hostile_values_in_schedules_and_doses_are_refused_or_read_never_a_crash(
    name: str, edits: list[tuple[str, str, int]]
) -> None:
    text = _source(name)
    for key, value, pick in edits:
        found = list(re.finditer(r"(?<![a-z_])" + key + r' = ("[^"]*"|\[[^\]\n]*\]|[-0-9.e]+)', text))
        if found:
            m = found[pick % len(found)]
            text = text[: m.start(1)] + value + text[m.end(1) :]
    try:
        m2 = model.parse(text, name)
    except model.ProtocolFileError as exc:
        assert exc.problems and all(p.startswith(name) for p in exc.problems)
        return
    # what loads, the schedule engine can expand
    from datetime import date

    from wardcrf.engine import schedule

    conditions = {
        text: True
        for reg in m2.regimens.values()
        for adm in reg.administrations
        for text in (adm.when, adm.schedule.stop_when)
        if text
    }
    anchors = dict.fromkeys(expressions.BUILTIN_ANCHORS, date(2024, 1, 1))
    for arm in m2.arms:
        schedule.plan(m2, anchors, arm=arm.code, zone="UTC", conditions=conditions)


@pytest.mark.parametrize(
    ("name", "old", "new", "where"),
    [
        (
            "mexcovid.toml",
            "is {years(screening.dob, @assessment)}",
            "is {years(screening.dobb, @assessment)}",
            "criteria[0].message",
        ),
        (
            "palm007.toml",
            'worklist = "dose {n}"',
            'worklist = "dose {m}"',
            "regimens[0].administrations[0].worklist",
        ),
        (  # an administration's `refusals`: its own names, and the participant's expressions
            "mexcovid.toml",
            "dose {n} is refused",
            "dose {m} is refused",
            "regimens[0].administrations[0].refusals.course_complete",
        ),
        (
            "mexcovid.toml",
            "{date(@enrollment)} (dose 1",
            "{date(@enrolment)} (dose 1",
            "regimens[0].administrations[0].refusals.before_first_day",
        ),
        (  # a dose assessment's `refusals`: its own names, and the record's fields
            "mexcovid.toml",
            "is dose {next}, not {n}",
            "is dose {nxt}, not {n}",
            "dose_assessments[0].refusals.not_next",
        ),
        (  # a field's `required_when = { when, message }`: the message reads the record being checked
            "mexcovid.toml",
            'message = "required for {timepoint} vitals',
            'message = "required for {timepont} vitals',
            "forms.vitals.fields.dose.required_when.message",
        ),
    ],
)
def test_message_holes_name_only_what_exists(name: str, old: str, new: str, where: str) -> None:
    src = _source(name)
    assert old in src
    mutated = src.replace(old, new, 1)
    line = _line_of(mutated, new)
    problems = _refusal(mutated, name)
    assert any(p.startswith(f"{name}:{line}: {where}: {{") for p in problems), problems


# -- `[safety] vital_signs`: which fields the DSMG board and the vitals chart read ------------------

VITALS_LINE = 'vital_signs = { form = "vitals", time = "time"'


def test_the_shipped_files_declare_their_vital_signs() -> None:
    """Accept: each shipped file names its vitals form, its time field and its signs, in reading order."""
    for name, time_field in (("mexcovid.toml", "time"), ("palm.toml", "time"), ("palm007.toml", "date")):
        declared = model.shipped(name).data["safety"]["vital_signs"]
        assert declared["form"] == "vitals" and declared["time"] == time_field
        assert set(declared["fields"]) == {"temp", "pulse", "resp", "sysbp", "diabp", "oxysat"}
    assert model.shipped("mexcovid.toml").data["safety"]["vital_signs"]["fields"][0] == "oxysat"


@pytest.mark.parametrize(
    ("old", "new", "problem"),
    [
        ('form = "vitals", time = "time"', 'form = "vital", time = "time"', "form 'vital' is not declared"),
        ('time = "time", fields', 'time = "infusion", fields', "vitals.infusion is a integer field"),
        ('time = "time", fields', 'time = "when", fields', "form vitals has no field 'when'"),
        ('fields = ["temp"', 'fields = ["timepoint"', "vitals.timepoint is a choice field"),
        ('fields = ["temp"', 'fields = ["tmp"', "form vitals has no field 'tmp'"),
    ],
)
def test_vital_signs_naming_what_is_not_a_sign_is_refused_at_its_line(
    old: str, new: str, problem: str
) -> None:
    src = _source("palm.toml")
    assert old in src
    bad = src.replace(old, new, 1)
    problems = _refusal(bad, "palm.toml")
    line = _line_of(bad, "vital_signs = {")
    assert any(p.startswith(f"palm.toml:{line}: safety.vital_signs") and problem in p for p in problems), (
        problems
    )


@pytest.mark.parametrize(
    ("new", "problem"),
    [
        ('vital_signs = { form = "vitals", time = "time", fields = [] }', "should be non-empty"),
        ('vital_signs = { form = "vitals", time = "time", fields = ["temp", "temp"] }', "non-unique"),
        ('vital_signs = { form = "vitals", time = "time", fields = ["te\\u0007mp"] }', "required form"),
        ('vital_signs = { form = "vitals", time = "time", fields = "temp" }', "not of type 'array'"),
        ('vital_signs = { form = "vitals", fields = ["temp"] }', "'time' is required"),
        (
            'vital_signs = { form = "vitals", time = "time", fields = ["temp"], colour = "red" }',
            "unknown key 'colour'",
        ),
        (
            'vital_signs = { form = "vitals", time = "time", fields = ['
            + ", ".join(f'"f{i}"' for i in range(41))
            + "] }",
            "too long",
        ),
        ('vital_signs = { form = "' + "v" * 200 + '", time = "time", fields = ["temp"] }', "required form"),
    ],
)
def test_hostile_vital_signs_are_refused_in_one_named_problem(new: str, problem: str) -> None:
    """Hostile: an empty, repeated, oversized or control-character list, a wrong type, a missing or unknown key."""
    src = _source("palm.toml")
    start = src.index(VITALS_LINE)
    end = src.index("\n", start)
    bad = src[:start] + new + src[end:]
    problems = _refusal(bad, "palm.toml")
    line = _line_of(bad, "vital_signs = {")
    assert any(p.startswith(f"palm.toml:{line}: safety.vital_signs") and problem in p for p in problems), (
        problems
    )
