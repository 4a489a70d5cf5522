"""Identifiers (wardcrf.ids): one rule per kind, normalised, compared, and scanner bursts split or refused."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from wardcrf import ids, protocol
from wardcrf.errors import UsageError

KIT = ids.builtin("kit")
EXO = ids.Rule(ids.KIT, re.compile(r"^EXO-[0-9]{4}$", re.IGNORECASE), "EXO-0101")


# -- normalise: accepted ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("typed", "stored"),
    [
        ("KIT-X1", "KIT-X1"),
        ("kit-x1", "KIT-X1"),  # the case a tired person or a caps-lock types
        ("  KIT-X1 ", "KIT-X1"),  # surrounding blanks
        ("\x1dkit-a1\r\n", "KIT-A1"),  # a scanner's GS prefix and CR LF suffix
        ("ＫＩＴ－Ｘ１", "KIT-X1"),  # a Chinese input method's full-width characters (NFKC)
        ("KIT\u200b-X1", "KIT-X1"),  # a zero-width space pasted from a document
        ("\u00a0KIT-X1\u3000", "KIT-X1"),  # no-break and ideographic spaces around it
        ("a/b_c.d-9", "A/B_C.D-9"),  # every allowed punctuation mark
        ("K" * 40, "K" * 40),  # the longest id
    ],
)
def test_ids_are_normalised_to_one_stored_form(typed: str, stored: str) -> None:
    assert ids.normalise("kit", typed) == stored
    assert ids.check("kit", typed) == ids.Checked(True, stored, None)


def test_ids_differing_only_in_case_blanks_or_width_are_the_same_id() -> None:
    assert ids.same("kit-x1", "KIT-X1 ")
    assert ids.same("ＫＩＴ－Ｘ１", "kit-x1")
    assert not ids.same("KIT-X1", "KIT-X2")
    # the comparison key of a stored value never raises, whatever it holds
    assert ids.key(None) == "" and ids.key(12) == "12" and ids.key("kit x1") == "KIT X1"


# -- normalise: refused, one line naming what is wrong and what is allowed -----------------------


@pytest.mark.parametrize(
    ("typed", "why"),
    [
        ("", "kit id is empty: scan or type it (1-40 letters A-Z"),
        ("\r\n\t", "kit id is empty"),
        ("KIT X1", "kit id 'KIT X1' contains a space, which is not allowed: use 1-40 letters A-Z, digits"),
        ("KIT!1", "contains '!'"),
        ("-KIT", "does not start with a letter or digit"),
        ("K" * 41, "is too long (41 characters; at most 40)"),
        (
            "\u041aIT-1",
            "contains 'К' (U+041A CYRILLIC CAPITAL LETTER KA), which is not allowed",
        ),  # look-alike
        ("KIT\u2013X1", "U+2013 EN DASH"),  # a dash pasted from a word processor
        ("kitß", "U+00DF"),  # would upper-case to SS: refused, never folded into another id
        ("x" * 10_000_000, "is too long (10000000 characters; at most 40)"),  # hostile: no Unicode work
    ],
)
def test_invalid_ids_are_refused_in_one_line(typed: str, why: str) -> None:
    with pytest.raises(ids.InvalidId) as err:
        ids.normalise("kit", typed)
    message = err.value.message
    assert why in message and "\n" not in message
    assert isinstance(err.value, UsageError)  # a usage error: exit 2 on the CLI
    got = ids.check("kit", typed)
    assert not got.ok and got.error == message


def test_every_kind_has_its_words() -> None:
    with pytest.raises(ids.InvalidId, match=r"^lot number 'L 1' contains a space"):
        ids.normalise("lot", "L 1")
    with pytest.raises(ids.InvalidId, match="participant id 'wuh01/001' contains '/'"):
        ids.normalise("participant", "wuh01/001")
    assert ids.normalise("participant", " wuh01-001 ") == "WUH01-001"
    with pytest.raises(ValueError, match="unknown id kind"):
        ids.kind("box")


# -- a protocol narrows the rule ---------------------------------------------------------------------


def test_the_protocol_narrows_the_rule_with_its_format_and_example() -> None:
    assert EXO.normalise("exo-0101") == "EXO-0101"
    with pytest.raises(
        ids.InvalidId, match=r"kit id 'EXO-01011' does not match this trial's kit id format, e\.g\. EXO-0101"
    ):
        EXO.normalise("EXO-01011")
    with pytest.raises(
        ids.InvalidId, match=r"is empty: scan or type it \(this trial's kit id format, e\.g\. EXO-0101\)"
    ):
        EXO.normalise(" ")


def test_mexcovid_kit_rule_comes_from_its_dose_field() -> None:
    """MEXCOVID 1.0's dose field pattern ('up to 40 characters', any case) is the rule for every kit id."""
    rule = ids.rule(protocol.default_protocol(), "kit")
    assert rule.format is not None and rule.example is None
    assert rule.normalise("exo-0001") == "EXO-0001"
    assert rule.normalise("K" * 40) == "K" * 40
    # its pattern restates the built-in rule: the built-in words explain a refusal
    with pytest.raises(ids.InvalidId, match=r"is too long \(41 characters; at most 40\)"):
        rule.normalise("K" * 41)
    assert ids.rule(None, "kit") == KIT
    assert ids.rule(protocol.default_protocol(), "shipper") == ids.builtin("shipper")


SRC = protocol.default_source()


def _with_dose_kit(lines: str) -> str:
    old = 'pattern = "^[A-Za-z0-9][A-Za-z0-9._/-]{0,39}$"\nlabel = { en = "Kit id (scan)"'
    assert old in SRC
    return SRC.replace(old, lines + '\nlabel = { en = "Kit id (scan)"', 1)


def test_protocol_declares_a_kit_format_with_an_example() -> None:
    p = protocol.parse(
        _with_dose_kit('id = "kit"\npattern = "^EXO-[0-9]{4}$"\nexample = "EXO-0101"'), "t.toml"
    )
    f = p.forms["dose"].fields["kit_id"]
    assert (f.id_kind, f.example) == ("kit", "EXO-0101")
    assert f.as_json()["id"] == "kit" and f.as_json()["example"] == "EXO-0101"
    rule = ids.rule(p, "kit")
    assert rule.example == "EXO-0101" and rule.normalise("exo-0102") == "EXO-0102"


@pytest.mark.parametrize(
    ("lines", "problem"),
    [
        ('id = "box"', "forms.dose.fields.kit_id.id: unknown id kind 'box' (allowed: kit, lot)"),
        (
            'id = "lot"',
            "forms.dose.fields.kit_id.id: must be 'kit': the workflow reads this field as a kit id",
        ),
        (
            'pattern = "^EXO-[0-9]{4}$"\nexample = "EXO-12"',
            "forms.dose.fields.kit_id.example: the example does not follow the field's rule: kit id 'EXO-12' does not match",
        ),
        ('example = "KIT X"', "example does not follow the field's rule: kit id 'KIT X' contains a space"),
    ],
)
def test_protocol_id_fields_are_validated_with_file_and_line(lines: str, problem: str) -> None:
    with pytest.raises(protocol.ProtocolFileError) as err:
        protocol.parse(_with_dose_kit(lines), "t.toml")
    hit = [p for p in err.value.problems if problem in p]
    assert hit, err.value.problems
    assert re.match(r"t\.toml:\d+: ", hit[0])


def test_protocol_example_only_on_id_fields_and_one_format_per_kind() -> None:
    src = SRC.replace('label = { en = "Lot number"', 'id = "lot"\nlabel = { en = "Lot number"', 1)
    assert protocol.parse(src, "t.toml").forms["dose"].fields["lot"].id_kind == "lot"
    src = SRC.replace(
        "[forms.vitals.fields.temp]",
        '[forms.vitals.fields.box]\ntype = "integer"\nid = "kit"\nlabel = "box"\n\n[forms.vitals.fields.temp]',
        1,
    )
    with pytest.raises(
        protocol.ProtocolFileError, match=r"forms\.vitals\.fields\.box\.id: ids are text fields, not integer"
    ):
        protocol.parse(src, "t.toml")
    src = SRC.replace(
        "[forms.vitals.fields.temp]",
        '[forms.vitals.fields.kit]\ntype = "text"\nid = "kit"\npattern = "^K[0-9]+$"\nlabel = "kit"\n\n'
        "[forms.vitals.fields.temp]",
        1,
    )
    with pytest.raises(protocol.ProtocolFileError, match="one format per kind of id"):
        protocol.parse(src, "t.toml")
    src = SRC.replace("[forms.vitals.fields.temp]\n", '[forms.vitals.fields.temp]\nexample = "X"\n', 1)
    with pytest.raises(protocol.ProtocolFileError, match="an example applies to id fields"):
        protocol.parse(src, "t.toml")


# -- scanner bursts ------------------------------------------------------------------------------


def test_a_burst_with_separators_is_split_and_each_id_checked() -> None:
    got = ids.scan("exo-0101\rEXO-0102\r\n\tEXO-0103,EXO-0104; EXO-0105 ", KIT)
    assert got.ok and got.ids == ["EXO-0101", "EXO-0102", "EXO-0103", "EXO-0104", "EXO-0105"]
    assert ids.pieces("\r\r A \r") == ["A"]


def test_a_burst_run_together_is_refused_whole_in_one_line() -> None:
    """Finding 10: 'EXO-0101EXO-0102EXO-0103' was taken as one kit id."""
    got = ids.scan("EXO-0101EXO-0102EXO-0103", KIT)
    assert not got.ok and got.ids == []
    assert got.error == (
        "'EXO-0101EXO-0102EXO-0103' looks like 3 kit ids scanned with no gap "
        "(EXO-0101, EXO-0102, EXO-0103): nothing added; scan them one at a time"
    )
    # with the protocol's format the split is exact, even for ids without a separator inside
    nosep = ids.Rule(ids.KIT, re.compile(r"^EXO[0-9]{4}$", re.IGNORECASE), "EXO0101")
    assert "looks like 2 kit ids" in (ids.scan("EXO0101EXO0102", nosep).error or "")
    # and like the ids already in the list
    assert "looks like 2 kit ids" in (ids.scan("EXO0101EXO0102", KIT, like=["exo0100"]).error or "")
    # one bad piece refuses the whole burst: nothing is added
    bad = ids.scan("EXO-0101\rEXO 0102\r", KIT)
    assert not bad.ok and bad.ids == [] and "contains a space" in (bad.error or "")


def test_a_loose_protocol_format_still_refuses_ids_run_together() -> None:
    """A format as loose as the built-in rule (MEXCOVID's kit_id pattern) matches a merged burst
    too; the shapes are still compared, so the ward app refuses it (issue 14, finding 10)."""
    loose = ids.Rule(ids.KIT, re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,39}$", re.IGNORECASE))
    assert "looks like 3 kit ids" in (ids.scan("EXO-0101EXO-0102EXO-0103", loose).error or "")
    assert "looks like 2 kit ids" in (ids.scan("EXO0101EXO0102", loose, like=["exo0100"]).error or "")
    assert ids.scan("EXO-0101", loose).ids == ["EXO-0101"]
    # a strict format: one id is one id, whatever the list holds
    assert ids.scan("EXO-0101", EXO, like=["EXO-0100"]).ids == ["EXO-0101"]


def test_a_burst_that_is_one_id_is_accepted() -> None:
    for one in ("EXO-0101", "AB12AB34", "LOT-2020-03-A", "KIT-A1", "A-1"):
        got = ids.scan(one, KIT)
        assert got.ok and got.ids == [ids.normalise("kit", one)], (one, got)
    assert ids.scan("EXO-0101", EXO).ids == ["EXO-0101"]


def test_hostile_bursts_are_refused_without_work() -> None:
    assert ids.scan("", KIT).error == ids.builtin("kit").empty().message
    assert "burst is too long" in (ids.scan("EXO-0101" * 1000, KIT).error or "")
    # many merged ids under a format: found without trying every split of a long text
    assert "looks like 12 kit ids" in (ids.scan("".join(f"EXO-{i:04d}" for i in range(12)), EXO).error or "")
    assert "contains '\\x00'" not in (ids.scan("KIT\x00-1", KIT).error or "")  # NUL is noise, dropped
    assert ids.scan("KIT\x00-1", KIT).ids == ["KIT-1"]


# -- clean: the printable-ASCII shortcut is the full rule's answer ---------------------------------


def _clean_by_the_rule(raw: str) -> str:
    """`ids.clean` as its docstring states it, every step taken (control and format characters dropped,
    NFKC, dropped again, trimmed): what the shortcut for printable ASCII must equal."""
    import unicodedata

    def drop(text: str) -> str:
        return "".join(c for c in text if unicodedata.category(c) not in ("Cc", "Cf"))

    return drop(unicodedata.normalize("NFKC", drop(raw))).strip()


@pytest.mark.parametrize(
    "raw",
    [
        "KIT-X1",  # printable ASCII: the shortcut
        "  kit-x1 ",
        "\x1dKIT-A1\r\n",  # ASCII with control characters: the full rule
        "KIT\x7f-X1",  # DEL: ASCII, a control character
        "\tKIT-X1\x0b",  # whitespace that is a control character
        "ＫＩＴ－Ｘ１",  # not ASCII: NFKC
        "KIT\u200b-X1",
        "",
    ],
)
def test_clean_is_the_full_rule_on_ascii_with_controls_and_on_other_text(raw: str) -> None:
    assert ids.clean(raw) == _clean_by_the_rule(raw)


@given(st.text(alphabet=st.characters(max_codepoint=0x3000), max_size=24))
@settings(max_examples=500, deadline=None)
def test_clean_equals_the_full_rule_for_any_text(raw: str) -> None:
    assert ids.clean(raw) == _clean_by_the_rule(raw)
    assert ids.key(raw) == _clean_by_the_rule(raw).upper()
