"""A form's declared scored grid (`[[forms.NAME.sections]]`, wardcrf/engine/form_sections.py): read, checked at load
with FILE:LINE, and tallied as the cells are typed — for MEXCOVID's CT score (its format-1 text run on the engine, and the re-encoding as a version of its
own) and for a
second protocol that names nothing of MEXCOVID (tests/grid_protocol.py)."""

from __future__ import annotations

import re
from decimal import Decimal

import grid_protocol
import pytest
from mexcovid_engine import CT_SEGMENTS

from wardcrf import protocol
from wardcrf.engine import form_sections, model, ward


def _format2_mexcovid() -> protocol.Protocol:
    return ward.of(model.shipped("mexcovid.toml"))


def _mexcovid_1_0() -> protocol.Protocol:
    """The shipped format-1 MEXCOVID 1.0 as the ward runs it: on its re-encoding (`protocol.run_as`)."""
    return protocol.run_as(protocol.default_protocol())


def _refusal(source: str) -> list[str]:
    with pytest.raises(model.ProtocolFileError) as info:
        model.parse(source, "gridtest.toml")
    return info.value.problems


def _line_of(source: str, needle: str, nth: int = 1) -> int:
    lines = [i + 1 for i, text in enumerate(source.splitlines()) if needle in text]
    return lines[nth - 1]


# -- accept ----------------------------------------------------------------------------------------


def test_mexcovid_lays_out_the_ct_score_as_two_lungs_of_lobes_in_the_forms_order() -> None:
    one = form_sections.of(_mexcovid_1_0(), "ct_score")
    two = form_sections.of(_format2_mexcovid(), "ct_score")
    assert one is not None and two is not None
    for grid in (one, two):
        assert grid.fields == CT_SEGMENTS  # every segment once, in the form's order
        assert [s.code for s in grid.sections] == ["right", "left"] and all(s.sum for s in grid.sections)
        assert [len(g.fields) for g in grid.sections[0].groups] == [3, 2, 5]  # upper, middle, lower
        assert [len(g.fields) for g in grid.sections[1].groups] == [4, 4]  # upper with the lingula, lower
        assert [name for name, _ in grid.computed] == ["total", "evaluable_segments"]
    # the re-encoding's titles, for the format-1 text run on it too
    assert protocol.tr(one.sections[0].groups[0].label) == "Upper lobe"
    assert protocol.tr(two.sections[0].groups[0].label) == "Upper lobe"


def test_a_form_without_sections_has_no_grid() -> None:
    assert form_sections.of(_mexcovid_1_0(), "vitals") is None
    assert form_sections.of(_format2_mexcovid(), "vitals") is None


def test_a_version_the_engine_does_not_run_has_no_grid() -> None:
    """A format-1 version read as stored (one the engine cannot run): its records are read field under
    field; no grid of format 1's own is left."""
    stored = protocol.default_protocol()
    assert stored.engine is None
    assert form_sections.of(stored, "ct_score") is None


@pytest.mark.parametrize("fmt", ["mexcovid 1.0", "format2"])
def test_the_tally_is_the_saved_rule_subtotals_others_and_blanks(fmt: str) -> None:
    p = _mexcovid_1_0() if fmt == "mexcovid 1.0" else _format2_mexcovid()
    grid = form_sections.of(p, "ct_score")
    assert grid is not None
    v = {s: 0 for s in CT_SEGMENTS} | {
        "r_upper_apical": 4,
        "r_lower_posterior_basal": 2,
        "l_upper_anterior": 3,
        "l_lower_superior": "ne",
        "r_middle_medial": None,
    }
    t = form_sections.tally(grid, p.forms["ct_score"], v)
    assert dict(t.computed) == {"total": Decimal(9), "evaluable_segments": Decimal(16)}
    assert (t.subtotal("right"), t.subtotal("left"), t.others, t.blank) == (6, 3, (("ne", 1),), 1)
    full = form_sections.tally(grid, p.forms["ct_score"], {s: 4 for s in CT_SEGMENTS})
    assert dict(full.computed)["total"] == 72 and full.blank == 0
    every_ne = form_sections.tally(grid, p.forms["ct_score"], {s: "ne" for s in CT_SEGMENTS})
    assert dict(every_ne.computed) == {"total": 0, "evaluable_segments": 0} and every_ne.others == (
        ("ne", 18),
    )


def test_a_second_protocol_declares_its_own_grid() -> None:
    p = ward.of(grid_protocol.parsed())
    grid = form_sections.of(p, "symptoms")
    assert grid is not None
    assert [(s.code, s.fields) for s in grid.sections] == [
        ("general", ("fever", "fatigue", "headache")),
        ("digestive", ("nausea", "vomiting", "diarrhoea")),
    ]
    assert grid.sections[0].groups[0].label == {}  # plain `fields`: one untitled block
    t = form_sections.tally(
        grid, p.forms["symptoms"], {"fever": 2, "fatigue": 1, "nausea": "u", "vomiting": 3}
    )
    assert (dict(t.computed), t.subtotals, t.others, t.blank) == (
        {"total": Decimal(6)},
        (("general", 3), ("digestive", 3)),
        (("u", 1),),
        2,
    )
    assert form_sections.keys(form_sections.shapes_of(p.forms["symptoms"])["fever"]) == {
        "0": 0,
        "1": 1,
        "2": 2,
        "3": 3,
        "u": "u",
    }


# -- refuse: hostile declarations, each at its line ---------------------------------------------------

SECTION = '[[forms.symptoms.sections]]\ncode = "{code}"\nlabel = "{label}"\nsum = true\n{body}\n'


def _sections(*bodies: str, codes: list[str] | None = None, label: str = "General") -> str:
    codes = codes or [f"s{i}" for i in range(len(bodies))]
    return "\n" + "\n".join(
        SECTION.format(code=c, label=label, body=b) for c, b in zip(codes, bodies, strict=True)
    )


@pytest.mark.parametrize(
    ("sections", "needle", "where", "problem"),
    [
        ("sections = []\n", "sections = []", "forms.symptoms.sections", "no section"),
        (
            _sections('fields = ["fever", "fatigue"]', 'fields = ["nausea", "fever"]'),
            'fields = ["nausea", "fever"]',
            "forms.symptoms.sections[1].fields[1]",
            "field 'fever' is laid out twice (first at sections[0].fields[0])",
        ),
        (
            _sections('fields = ["fever"]', 'fields = ["nausea"]', codes=["general", "general"]),
            'code = "general"',
            "forms.symptoms.sections[1].code",
            "'general' is used twice",
        ),
        (
            _sections(*['fields = ["fever"]'] * 9),
            "[[forms.symptoms.sections]]",
            "forms.symptoms.sections[8]",
            "9 sections; a form lays out at most 8",
        ),
        (
            _sections("fields = [" + ", ".join(['"fever"'] * 41) + "]"),
            "[[forms.symptoms.sections]]",
            "forms.symptoms.sections[0]",
            "41 cells; a section has at most 40",
        ),
        (
            _sections("groups = [" + ", ".join(['{ label = "G", fields = ["fever"] }'] * 13) + "]"),
            "groups = [",
            "forms.symptoms.sections[0].groups",
            "13 groups; a section has at most 12",
        ),
        (
            _sections('fields = ["fever", "appetite"]'),
            'fields = ["fever", "appetite"]',
            "forms.symptoms.sections[0].fields[1]",
            "sum = true adds whole-number codes, and field 'appetite' has none (normal, reduced)",
        ),
        (
            _sections('fields = ["fever", "pulse"]'),
            'fields = ["fever", "pulse"]',
            "forms.symptoms.sections[0].fields[1]",
            "field 'pulse' is not declared in this form",
        ),
        (
            _sections('fields = ["fever", "date"]'),
            'fields = ["fever", "date"]',
            "forms.symptoms.sections[0].fields[1]",
            "field 'date' cannot be a cell: a cell is a single choice typed with one key, not date",
        ),
        (
            _sections('fields = ["total"]'),
            'fields = ["total"]',
            "forms.symptoms.sections[0].fields[0]",
            "field 'total' cannot be a cell",
        ),
        (
            _sections('fields = ["fever"]\ngroups = [{ label = "G", fields = ["nausea"] }]'),
            "[[forms.symptoms.sections]]",
            "forms.symptoms.sections[0]",
            "either `fields` or `groups`",
        ),
        (
            _sections("fields = []"),
            "fields = []",
            "forms.symptoms.sections[0].fields",
            "no field",
        ),
        (
            _sections('fields = ["fever"]', label="Gen\\u0007eral"),
            'label = "Gen',
            "forms.symptoms.sections[0].label",
            "U+0007",
        ),
        (
            _sections('fields = ["fever"]', label="G" * 201),
            'label = "GGG',
            "forms.symptoms.sections[0].label",
            "201 characters; a label or title is at most 200",
        ),
    ],
    ids=[
        "empty",
        "duplicate-item",
        "duplicate-code",
        "too-many-sections",
        "too-many-cells",
        "too-many-groups",
        "sum-over-non-numbers",
        "undeclared-field",
        "not-a-choice",
        "computed",
        "fields-and-groups",
        "empty-fields",
        "control-character",
        "oversized-label",
    ],
)
def test_a_hostile_grid_is_refused_at_its_line(sections: str, needle: str, where: str, problem: str) -> None:
    source = grid_protocol.source(sections)
    problems = _refusal(source)
    section = re.search(r"sections\[(\d+)\]", where)
    nth = int(section.group(1)) + 1 if section and source.count(needle) > 1 else 1
    line = _line_of(source, needle, nth)
    assert any(p.startswith(f"gridtest.toml:{line}: {where}:") and problem in p for p in problems), problems


def test_codes_a_cell_cannot_type_with_one_key_each_are_refused() -> None:
    """Two codes starting with one letter, and a number above 9, have no key of their own."""
    source = grid_protocol.source(
        grid_protocol.SECTIONS.replace(
            'fields = ["nausea", "vomiting", "diarrhoea"]', 'fields = ["appetite"]'
        ).replace('sum = true\nfields = ["appetite"]', 'fields = ["appetite"]')
    ).replace('{ code = "reduced", label = "reduced" }', '{ code = "nil", label = "nil" }')
    problems = _refusal(source)
    line = _line_of(source, 'fields = ["appetite"]')
    assert any(
        p.startswith(f"gridtest.toml:{line}: forms.symptoms.sections[1].fields[0]:")
        and "code 'nil' has the key 'n' of 'normal'" in p
        for p in problems
    ), problems
    ten = grid_protocol.source().replace('{ code = 3, label = "3 severe" }', '{ code = 10, label = "10" }', 1)
    problems = _refusal(ten)
    assert any("field 'fever': code 10 has no key of its own" in p for p in problems), problems


def test_a_raw_control_character_in_a_section_is_refused_before_the_file_is_read() -> None:
    sections = grid_protocol.SECTIONS.replace('label = { en = "General"', 'label = { en = "Gen\x1b[31meral"')
    source = grid_protocol.source(sections)
    problems = _refusal(source)
    line = _line_of(source, "Gen\x1b")
    assert len(problems) == 1 and problems[0].startswith(f"gridtest.toml:{line}: character U+001B"), problems


def test_mexcovids_shipped_grid_passes_the_same_checks() -> None:
    decl = model.shipped("mexcovid.toml").data["forms"]["ct_score"]
    problems: list[str] = []
    shapes = form_sections.shapes_of(_format2_mexcovid().forms["ct_score"])
    form_sections.check(lambda p, problem: problems.append(f"{p}: {problem}"), (), decl["sections"], shapes)
    assert problems == []
    # and the same checks refuse it laid out against a form whose segments are text
    text = {k: form_sections.Shape("text") for k in shapes}
    form_sections.check(lambda p, problem: problems.append(problem), (), decl["sections"], text)
    assert len(problems) == 18 and all("cannot be a cell" in p for p in problems)


def test_protocol_load_refuses_a_hostile_grid_in_one_line_and_loads_nothing(cli, tmp_path) -> None:
    """The command line: exit 1, the problem named at its line on stderr, no version loaded; the same file
    with a sound grid loads."""
    bad = grid_protocol.source(grid_protocol.SECTIONS.replace('"headache"]', '"headache", "fever"]'))
    path = tmp_path / "gridtest.toml"
    path.write_text(bad, encoding="utf-8")
    r = cli("protocol", "load", str(path), user="admin")
    line = _line_of(bad, '"headache", "fever"]')
    assert r.code == 1 and "Traceback" not in r.output, r.output
    assert (
        f"gridtest.toml:{line}: forms.symptoms.sections[0].fields[3]: field 'fever' is laid out twice"
        in r.err
    )
    assert "GRIDTEST" not in cli("protocol", "show").out
    path.write_text(grid_protocol.source(), encoding="utf-8")
    r = cli("protocol", "load", str(path), user="admin")
    assert r.code == 0, r.err
    assert "GRIDTEST" in cli("protocol", "show").out
