"""Hostile text (issue 15, finding 9): refused where it enters, escaped wherever it is shown.

Before: ESC/OSC sequences, bidi overrides, CR/BS and zero-width characters were
accepted in AE terms, amendment reasons and full names, and `wardcrf log` and
`user list` printed raw ESC to the terminal; a protocol with `hard = [nan, inf]`
loaded; arrays nested 5,000 deep crashed protocol loading; a 5 MB label loaded;
a 2,000-character participant id was echoed whole.
"""

from __future__ import annotations

import json
import re
from datetime import timedelta
from pathlib import Path

import pytest
from conftest import PASSWORD
from wf_support import Staff, _copy_site, make_ward, today

from wardcrf import eventlog, protocol, protocol_file, records, text, users, workflow
from wardcrf.coldchain import loggers
from wardcrf.errors import Refused, ValidationFailed
from wardcrf.site import Site

P1 = "WUH01-001"

HOSTILE = {
    "ESC CSI (clear screen)": ("Fever\x1b[2J", "U+001B", 6),
    "OSC window title": ("a\x1b]0;pwned\x07b", "U+001B", 2),
    "bidi override": ("abc\u202efed", "U+202E", 4),
    "bidi isolate": ("x\u2066y", "U+2066", 2),
    "carriage return": ("good\rbad", "U+000D", 5),
    "backspace": ("ab\x08c", "U+0008", 3),
    "zero-width space": ("Fe\u200bver", "U+200B", 3),
    "zero-width joiner": ("Fe\u200dver", "U+200D", 3),
    "word joiner": ("Fe\u2060ver", "U+2060", 3),
    "BOM": ("\ufeffFever", "U+FEFF", 1),
    "C1 CSI": ("a\x9b31mb", "U+009B", 2),
    "DEL": ("a\x7fb", "U+007F", 2),
    "NUL": ("a\x00b", "U+0000", 2),
}
CASES = list(HOSTILE.values())
IDS = list(HOSTILE)


@pytest.fixture
def site(data_dir: Path, _wf_sentinel_template) -> Site:
    return _copy_site(_wf_sentinel_template[0], data_dir)


@pytest.fixture
def ward(session_for, tmp_path) -> Staff:
    return make_ward(session_for, tmp_path)


def _events(session) -> int:
    return eventlog.count(session.store)


def _one_line_naming(message: str, code: str, position: int) -> None:
    assert "\n" not in message
    assert code in message and f"position {position}" in message, message


def _ae(ward: Staff, **kw):
    values = {
        "term": "Fever",
        "onset": (today() - timedelta(days=5)).isoformat(),
        "grade": "1",
        "serious": "no",
        "causality": "possible",
        "outcome": "recovering",
        "first_known": (today() - timedelta(days=5)).isoformat(),
    }
    values.update(kw)
    return ward.submit("ae", participant=P1, **values)


@pytest.mark.parametrize(("value", "code", "pos"), CASES, ids=IDS)
def test_an_ae_term_with_a_hostile_character_is_refused_naming_it(ward, value, code, pos):
    before = _events(ward.clin)
    with pytest.raises(ValidationFailed) as exc:
        _ae(ward, term=value)
    _one_line_naming(str(exc.value), code, pos)
    assert "term" in exc.value.problems
    assert _events(ward.clin) == before


@pytest.mark.parametrize(("value", "code", "pos"), CASES, ids=IDS)
def test_an_amendment_reason_with_a_hostile_character_is_refused(ward, value, code, pos):
    ev = _ae(ward)
    before = _events(ward.clin)
    with pytest.raises(Refused) as exc:
        workflow.amend(ward.clin, ev.id, {"grade": "2"}, reason=value)
    _one_line_naming(str(exc.value), code, pos)
    assert "reason" in str(exc.value)
    assert _events(ward.clin) == before


@pytest.mark.parametrize(("value", "code", "pos"), CASES, ids=IDS)
def test_a_full_name_with_a_hostile_character_is_refused(admin, value, code, pos):
    with pytest.raises(Refused) as exc:
        users.add_user(admin, "newbie", value, "clinician", PASSWORD)
    _one_line_naming(str(exc.value), code, pos)
    assert "full name" in str(exc.value)
    assert users.get(admin.store, "newbie") is None


def test_a_deactivation_reason_and_a_raw_event_are_refused_too(admin):
    with pytest.raises(Refused, match="U\\+202E"):
        users.deactivate(admin, "auditor", "left \u202eevil")
    # the event log's own floor, whatever service forgot to check
    with pytest.raises(Refused, match=r"text: character U\+001B .* position 3"):
        admin.append(type="note.added", subject="site:WUH01", body={"text": "ab\x1b[31m"})
    with pytest.raises(Refused, match=r"reason: character U\+000A"):
        admin.append(type="note.added", subject="site:WUH01", body={}, reason="two\nlines")


def test_one_line_fields_refuse_tab_and_newline_and_several_line_fields_keep_them(ward):
    with pytest.raises(ValidationFailed, match="U\\+0009"):
        _ae(ward, term="Fever\tHigh")
    with pytest.raises(ValidationFailed, match="U\\+000A"):
        _ae(ward, term="Fever\nHigh")
    form = protocol.parse(
        protocol.default_source().replace(
            "[forms.ae.fields.term]\n", "[forms.ae.fields.term]\nmultiline = true\n", 1
        ),
        "multi.toml",
    ).forms["ae"]
    assert form.fields["term"].multiline
    from wardcrf import forms
    from wardcrf.clock import now_utc

    ok = forms.check(
        form, {"term": "Fever\n\thigh at night"}, forms.Context(now_utc(), "Asia/Shanghai"), partial=True
    )
    assert ok.values["term"] == "Fever\n\thigh at night"
    bad = forms.check(
        form, {"term": "Fever\r\nx\u202e"}, forms.Context(now_utc(), "Asia/Shanghai"), partial=True
    )
    assert "U+000D" in bad.problems["term"]


def test_ordinary_text_in_any_script_is_kept(ward):
    ev = _ae(ward, term="Fièvre 发热 — 38.5 °C (grade 1)")
    assert ev.body["data"]["term"] == "Fièvre 发热 — 38.5 °C (grade 1)"


# -- what old data still holds, shown ---------------------------------------------------------

ESC_NAME = "Eve\x1b]0;owned\x07\x1b[31mRed\u202eevil\x9b"


def _old_hostile_user(admin, monkeypatch) -> None:
    """A user added before the text rule existed: the floor and the check are bypassed."""
    monkeypatch.setattr(text, "check", lambda value, **_k: value)
    monkeypatch.setattr(text, "check_stored", lambda *_a, **_k: None)
    monkeypatch.setattr(eventlog.text, "may_hold_refused", lambda _line: False)
    users.add_user(admin, "eve", ESC_NAME, "clinician", PASSWORD)
    monkeypatch.undo()


def _strings(value: object) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _strings(v)]
    if isinstance(value, list):
        return [s for v in value for s in _strings(v)]
    return []


def _raw_dangerous(out: str) -> list[str]:
    return re.findall("[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200d\u2060\ufeff\u202a-\u202e\u2066-\u2069]", out)


def test_log_and_user_list_escape_what_old_data_holds(admin, cli, monkeypatch):
    _old_hostile_user(admin, monkeypatch)
    for args in (("log",), ("user", "list"), ("log", "--json"), ("user", "list", "--json")):
        res = cli(*args, user="auditor")
        assert res.code == 0, res.output
        assert _raw_dangerous(res.out) == [], (args, res.out[-400:])
        if "--json" in args:
            data = json.loads(res.out)  # still valid JSON, the same characters when parsed
            assert any(ESC_NAME in v for v in _strings(data))
        else:
            # spelled out: \x1b as shown text, \u001b where the trail shows a value as JSON
            assert ("\\x1b" in res.out or "\\u001b" in res.out) and "<U+202E>" in res.out


def test_log_shows_brackets_in_data_as_typed_not_as_markup(admin, cli):
    users.add_user(admin, "brackets", "Dr [acting] [/] [link=http://x]y[/link]", "clinician", PASSWORD)
    res = cli("user", "list", user="auditor")
    assert res.code == 0, res.output
    assert "Dr [acting] [/] [link=http://x]y[/link]" in res.out.replace("\n", "")


async def test_a_ward_table_escapes_hostile_cells():
    from rich.text import Text
    from textual.app import App, ComposeResult
    from wardcrf.screens.widgets.tables import WardTable

    class OneTable(App[None]):
        def compose(self) -> ComposeResult:
            yield WardTable(id="t")

    app = OneTable()
    async with app.run_test(size=(100, 10)) as pilot:
        table = app.query_one(WardTable)
        table.add_column("who", width=40)
        table.add_column("styled", width=40)
        table.add_row(ESC_NAME, Text(ESC_NAME, style="bold"))
        table.add_row("Dr [acting] [/]", "x")
        await pilot.pause()
        cells = [str(c.plain if isinstance(c, Text) else c) for c in table.get_row_at(0)]
        assert all(_raw_dangerous(c) == [] for c in cells), cells
        assert "\\x1b" in cells[0]
        painted = "".join(s.text for y in range(3) for s in table.render_line(y))
        assert _raw_dangerous(painted) == [], painted
        assert "Dr [acting] [/]" in painted


# -- numbers ------------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", ["nan", "inf", "-inf", "1e999"])
def test_protocol_ranges_refuse_nan_and_infinity_with_file_and_line(bad):
    source = protocol.default_source().replace("hard = [30, 45]", f"hard = [{bad}, 45]", 1)
    assert source != protocol.default_source()
    with pytest.raises(Refused) as exc:
        protocol.parse(source, "bad.toml")
    assert re.search(r"bad\.toml:\d+: forms\.vitals\.fields\.temp\.hard\[0\]: .*finite", str(exc.value)), (
        exc.value
    )


def test_a_nan_anywhere_in_a_protocol_is_refused():
    source = protocol.default_source().replace("volume_ml = 6.0", "volume_ml = nan", 1)
    assert source != protocol.default_source()
    with pytest.raises(Refused, match=r"schedule\.volume_ml: .*finite"):
        protocol.parse(source, "bad.toml")


@pytest.mark.parametrize("bad", ["nan", "NaN", "inf", "-Infinity"])
def test_logger_files_with_nan_are_refused_with_exit_1(bad):
    raw = f"timestamp,temperature\n2020-03-16T01:00:00Z,-20.5\n2020-03-16T01:05:00Z,{bad}\n".encode()
    with pytest.raises(loggers.LoggerFileError) as exc:
        loggers.parse(raw, "UTC")
    assert exc.value.exit_code == 1 and "line 3" in str(exc.value)


def test_a_nan_in_an_event_body_is_refused_not_a_crash(admin):
    with pytest.raises(Refused, match="finite"):
        admin.append(type="note.added", subject="site:WUH01", body={"x": float("nan")})


@pytest.mark.parametrize("bad", ["nan", "inf", "-inf"])
def test_cli_numbers_refuse_nan_and_infinity(cli, bad):
    res = cli("coldchain", "reading", "FRZ-1", "--temp", bad, "--at", "2020-03-16T09:00", user="pharmacist")
    assert res.code == 2 and res.err.count("\n") == 1 and "finite" in res.err, res.output


# -- protocol file limits -----------------------------------------------------------------------


def test_arrays_nested_5000_deep_are_refused_not_a_recursion_error(tmp_path):
    path = tmp_path / "deep.toml"
    path.write_text(protocol.default_source() + "\nx = " + "[" * 5000 + "]" * 5000 + "\n")
    with pytest.raises(Refused) as exc:
        protocol.read_file(path)
    assert re.search(r"deep\.toml:\d+: .*nested more than \d+ deep", str(exc.value)), exc.value


def test_a_5_mb_label_is_refused(tmp_path):
    big = "L" * (5 * 1024 * 1024)
    source = protocol.default_source().replace('label = { en = "Temperature"', f'label = {{ en = "{big}"', 1)
    assert source != protocol.default_source()
    with pytest.raises(Refused) as exc:
        protocol.parse(source, "big.toml")
    msg = str(exc.value)
    assert len(msg) < 300 and "big.toml" in msg and ("at most" in msg or "larger than" in msg)


def test_a_label_over_the_limit_is_refused_naming_file_line_and_limit():
    long = "L" * (protocol_file.MAX_LABEL_CHARS + 1)
    source = protocol.default_source().replace('label = { en = "Temperature"', f'label = {{ en = "{long}"', 1)
    with pytest.raises(Refused) as exc:
        protocol.parse(source, "long.toml")
    assert re.search(
        rf"long\.toml:\d+: forms\.vitals\.fields\.temp\.label\.en: {protocol_file.MAX_LABEL_CHARS + 1} characters;"
        rf" a label or title is at most {protocol_file.MAX_LABEL_CHARS} characters",
        str(exc.value),
    ), exc.value


def test_a_source_read_again_is_refused_in_the_same_words_naming_each_file():
    """`read_source` keeps a parsed source (a stored version is read four times by the process that runs
    it first): a second read of the same text refuses with the same problems, each naming the file it was
    read as, and a caller changing the tables it was given changes nothing another read gets."""
    long = "L" * (protocol_file.MAX_LABEL_CHARS + 1)
    source = (
        protocol.default_source()
        .replace('label = { en = "Temperature"', f'label = {{ en = "{long}"', 1)
        .replace("volume_ml = 6.0", "volume_ml = nan", 1)
    )
    said = []
    for name in ("first.toml", "second.toml", "first.toml"):
        with pytest.raises(Refused) as exc:
            protocol.parse(source, name)
        said.append(str(exc.value))
    assert said[0] == said[2] and said[1] == said[0].replace("first.toml", "second.toml")
    assert "temp.label.en" in said[0] and "volume_ml" in said[0] and "finite" in said[0]
    good = protocol.default_source()
    data, r = protocol_file.read_source(good, "good.toml")
    assert r.problems == []
    data["forms"]["vitals"]["fields"].clear()
    data["protocol"]["id"] = "CHANGED"
    again, _ = protocol_file.read_source(good, "good.toml")
    assert again["forms"]["vitals"]["fields"] and again["protocol"]["id"] != "CHANGED"
    assert protocol.parse(good, "good.toml").forms["vitals"].fields


def test_a_label_with_an_escape_sequence_is_refused():
    source = protocol.default_source().replace(
        'label = { en = "Temperature"', 'label = { en = "Temp\\u001b[31m"', 1
    )
    with pytest.raises(Refused, match=r"U\+001B"):
        protocol.parse(source, "esc.toml")


def test_an_oversized_protocol_file_is_refused_before_it_is_parsed(tmp_path):
    path = tmp_path / "huge.toml"
    path.write_text(protocol.default_source() + "#" * protocol_file.MAX_FILE_BYTES)
    with pytest.raises(Refused, match="larger than"):
        protocol.read_file(path)


def test_the_shipped_protocol_is_within_every_limit():
    protocol.parse(protocol.default_source(), "mexcovid.toml")


# -- echoing what was typed -------------------------------------------------------------------


def test_a_2000_character_participant_id_is_not_echoed_whole(ward, cli):
    long = "W" * 2000
    with pytest.raises(Refused) as exc:
        workflow.show(ward.clin, long)
    assert len(str(exc.value)) < 300 and "2,000 characters" in str(exc.value)
    res = cli("participant", "show", long, user="clinician")
    assert res.code == 1 and len(res.err) < 300 and res.err.count("\n") == 1, res.err[:400]
    res = cli("submit", "vitals", "--participant", long, "temp=37", user="clinician")
    assert res.code == 1 and len(res.err) < 300, res.err[:400]


def test_records_amend_refuses_hostile_reasons_at_the_core(ward):
    ev = _ae(ward)
    with pytest.raises(Refused, match="U\\+001B"):
        records.amend(ward.clin, ev.id, {"grade": 2}, "typo\x1b[2J")


# -- every command that shows stored text, on a site whose old data holds hostile text ----------

HOSTILE_TERM = "Fever\x1b[2J\x1b]8;;http://evil\x07link\u202efed\u200b\r\x08"


def _hostile_old_data(ward: Staff, admin, monkeypatch) -> str:
    """What a site written before the text rule may hold: a user, an AE, an amendment reason,
    a storage unit. Returns the AE's event id."""
    from wardcrf.coldchain import services as cc

    monkeypatch.setattr(text, "check", lambda value, **_k: value)
    monkeypatch.setattr(text, "problem", lambda *_a, **_k: None)
    monkeypatch.setattr(text, "check_stored", lambda *_a, **_k: None)
    monkeypatch.setattr(eventlog.text, "may_hold_refused", lambda _line: False)
    try:
        users.add_user(admin, "eve", ESC_NAME, "clinician", PASSWORD)
        ev = _ae(ward, term=HOSTILE_TERM)
        workflow.amend(ward.clin, ev.id, {"grade": "2"}, reason="typo\x1b[8m hidden")
        cc.add_unit(ward.session("pharmacist"), "FRZ-9", name="Freezer\x1b[5m", location="ward\u202eB")
    finally:
        monkeypatch.undo()
    return ev.id


def _showing_commands(ae_event: str) -> list[tuple[str, ...]]:
    """Every command that needs no argument, and those that show one participant, record or kit."""
    import typer

    from wardcrf.cli import app

    def leaves(group, path=()):
        if hasattr(group, "commands"):
            for name, sub in sorted(group.commands.items()):
                yield from leaves(sub, (*path, name))
        else:
            yield path, group

    skip = {("tui",), ("demo",), ("sync", "watch"), ("user", "passwd"), ("recover",), ("draft", "purge")}
    bare = [
        p
        for p, cmd in leaves(typer.main.get_command(app))
        if p not in skip and p[0] != "hub" and not any(x.required for x in cmd.params)
    ]
    with_args = [
        ("participant", "show", P1),
        ("participant", "show", P1, "--json"),
        ("log", "--json"),
        ("log", "--subject", f"participant:{P1}"),
        ("sdv", "show", ae_event),
        ("coldchain", "status", "--json"),
        ("report", "safety", "--json"),
    ]
    return [*bare, *with_args]


def test_every_command_showing_data_escapes_what_old_data_holds(ward, admin, cli, monkeypatch):
    """Issue 15, finding 9, for every output path: no raw ESC, C1, bidi or zero-width character
    reaches the terminal, whatever the command (walked from the command tree) and the role."""
    ae_event = _hostile_old_data(ward, admin, monkeypatch)
    shown_somewhere = False
    for args in _showing_commands(ae_event):
        for user in ("admin", "investigator"):
            res = cli(*args, user=user)
            assert "Traceback" not in res.output and res.code in (0, 1, 2), (args, res.output[-600:])
            assert _raw_dangerous(res.out + res.err) == [], (args, user, (res.out + res.err)[-600:])
            shown_somewhere |= "\\x1b[2J" in res.out or "\\u001b[2J" in res.out
    assert shown_somewhere  # the hostile term was reached, and shown spelled out


def test_an_amendment_echoes_old_values_escaped(ward, admin, cli, monkeypatch):
    """`amend` prints each change's old and new value: an old value may hold what the rule now refuses."""
    ae_event = _hostile_old_data(ward, admin, monkeypatch)
    # The old value is a copy of what is stored: it does not stop the correction; a hostile new one does.
    bad = cli("amend", ae_event, "term=Fever\u202e", "--reason", "the term was garbled", user="clinician")
    assert bad.code == 1 and "U+202E" in bad.err and bad.out == ""
    res = cli("amend", ae_event, "term=Fever", "--reason", "the term was garbled", user="clinician")
    assert res.code == 0, res.output
    assert _raw_dangerous(res.out + res.err) == [], res.output
    assert "\\x1b[2J" in res.err


def test_free_text_has_a_default_length_limit(ward, admin):
    """Issue 15: limits for free text, with a documented default where the protocol sets none
    (a field's `max_length` is stricter: the AE term's is 200)."""
    ev = _ae(ward)
    before = _events(ward.clin)
    with pytest.raises(Refused) as exc:
        workflow.amend(ward.clin, ev.id, {"grade": "2"}, reason="R" * (text.MAX_ONE_LINE + 1))
    assert f"{text.MAX_ONE_LINE + 1:,} characters; at most {text.MAX_ONE_LINE:,}" in str(exc.value)
    assert "\n" not in str(exc.value) and len(str(exc.value)) < 300
    with pytest.raises(Refused, match="at most 2,000"):
        users.add_user(admin, "longname", "N" * 5_000_000, "clinician", PASSWORD)
    with pytest.raises(ValidationFailed, match="at most 200"):
        _ae(ward, term="F" * 5_000_000)
    assert _events(ward.clin) == before
    assert workflow.amend(ward.clin, ev.id, {"grade": "2"}, reason="R" * text.MAX_ONE_LINE)  # at the limit
    assert text.problem("x\n" * (text.MAX_SEVERAL_LINES // 2), multiline=True) is None
    assert "at most 20,000" in (text.problem("x" * (text.MAX_SEVERAL_LINES + 1), multiline=True) or "")


def test_docs_print_every_limit_with_the_default_the_code_checks():
    """Issue 15: every limit has a documented default; the table is the code's (wardcrf/limits.py)."""
    from wardcrf import limits

    docs = (Path(__file__).resolve().parents[2] / "docs" / "security.md").read_text()
    assert limits.markdown_table() in docs
    names = {r.name for r in limits.rows()}
    assert {"text.MAX_ONE_LINE", "protocol_file.MAX_NESTING", "sync.bundle.LIMITS.bundle_bytes"} <= names


def test_a_refusal_names_a_hostile_field_name_on_one_line():
    """Found by the sync fuzzer: a body {"\\n": "\\x1f"} was refused with the newline of its
    field name inside the message, so the one-line refusal spanned two lines."""
    import pytest

    from wardcrf import text
    from wardcrf.text import TextRefused

    with pytest.raises(TextRefused) as exc:
        text.check_stored({"\n": "\x1f"})
    assert "\n" not in str(exc.value) and "'\\n'" in str(exc.value)
    with pytest.raises(TextRefused, match=r"^temp: character U\+001F"):
        text.check_stored({"temp": "\x1f"})  # a plain name is shown as it is
