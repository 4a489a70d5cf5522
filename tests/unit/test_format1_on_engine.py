"""Every format-1 version runs on the engine (issue 17; docs/engine.md, "Format 1 files").

A format-1 file has the first trial's shape by its contract, so any format-1 version (an amendment written
in format 1, a site's own edit) runs on the shipped re-encoding's declarations with its own forms, ranges,
labels, schedule and arms put in (`engine.reencode_v1`, `wardcrf/protocols/format1-on-engine.toml`),
keeping its id, version, SHA-256 and stored text. A format-1 file the engine cannot run is refused at
`protocol load`, each problem at its line of that file; nothing is saved.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from wardcrf import protocol
from wardcrf.engine import model, reencode_v1

MEX = protocol.default_source()
TEMP = 'unit = "C"\nrequired = true\nhard = [30, 45]\nsoft = [35.0, 39.5]\nlabel = { en = "Temperature"'


def _amendment(version: str = "1.1", *, extra: str = "") -> str:
    """MEXCOVID VERSION in format 1: temperature 36-45 C, relabelled; four doses at 08:00 within 1 h; age 21-75."""
    assert TEMP in MEX
    out = MEX.replace('version = "1.0"', f'version = "{version}"', 1).replace(
        TEMP,
        TEMP.replace("[30, 45]", "[36, 45]")
        .replace("[35.0,", "[36.5,")
        .replace("Temperature", "Axillary temp"),
    )
    for old, new in (
        ("[schedule]\ndoses = 5", "[schedule]\ndoses = 4"),
        ('time = "09:00"', 'time = "08:00"'),
        ("window_minutes = 120", "window_minutes = 60"),
        ("age_min = 18", "age_min = 21"),
    ):
        assert old in out
        out = out.replace(old, new, 1)
    return out + extra


def _load(cli, tmp_path: Path, source: str, name: str = "next.toml"):
    path = tmp_path / name
    path.write_text(source, "utf-8")
    return cli("protocol", "load", str(path), user="investigator")


def _versions(session_for) -> list[tuple[str, str]]:
    s = session_for("auditor")
    return [(r["protocol_id"], r["version"]) for r in protocol.loaded_versions(s.store)]


def test_a_format_1_amendment_runs_on_the_engine_with_its_own_ranges_labels_and_schedule(
    cli, tmp_path, session_for
):
    source = _amendment()
    r = _load(cli, tmp_path, source)
    assert r.code == 0, r.err
    s = session_for("clinician")
    active = protocol.active(s.store)
    # the version as stored: its id, version, text and hash (records reference it)
    assert (active.id, active.version, active.source) == ("MEXCOVID", "1.1", source)
    assert active.sha256 == protocol.parse(source, "next.toml").sha256
    # run by the engine, on its own values
    m = active.engine
    assert m is not None and m is not model.shipped("mexcovid.toml")
    temp = active.forms["vitals"].fields["temp"]
    assert (temp.hard, temp.soft) == ((36, 45), (36.5, 39.5)) and temp.label["en"] == "Axillary temp"
    assert tuple(m.data["forms"]["vitals"]["fields"]["temp"]["hard"]) == (36, 45)
    (adm,) = m.regimens["exo_inhalation"].administrations
    assert (adm.schedule.count_min, adm.schedule.count_max) == (4, 4)
    assert [t.isoformat(timespec="minutes") for t in adm.schedule.times] == ["08:00"]
    assert [int(w.total_seconds()) for w in adm.window] == [-3600, 3600]
    age = next(c for c in m.data["criteria"] if c["code"] == "age")
    assert age["expr"] == "years(screening.dob, @assessment) between 21 and 75"
    assert age["label"]["en"] == "Age 21 to 75 years"
    # what the re-encoding alone declares is kept (a computed field, a form's uniqueness)
    assert "compute" in m.data["forms"]["screening"]["fields"]["age"]
    assert "unique" in m.data["forms"]["enrollment"]


def test_an_edited_format_1_copy_of_the_same_version_runs_on_the_engine():
    edited = protocol.parse(MEX + "\n# a site's own copy, edited\n", "mexcovid.toml")
    run = protocol.run_as(edited)
    assert run.engine is not None and (run.sha256, run.source) == (edited.sha256, edited.source)
    assert run.forms["vitals"].fields["temp"].hard == (30, 45)


def test_arms_a_format_1_version_declares_each_run_the_one_regimen():
    source = MEX.replace('version = "1.0"', 'version = "1.2"', 1)
    old = 'arms = [{ code = "HAMSCEXO", label = "Nebulized haMSC-Exos 2.0x10^8 particles once daily, days 1-5" }]'
    assert old in source
    source = source.replace(
        old, 'arms = [{ code = "LOW", label = "Low" }, { code = "HIGH", label = "High" }]', 1
    )
    m = reencode_v1.reencode(protocol.parse(source, "arms.toml"))
    assert m.regimens["exo_inhalation"].label == "Low"  # described as the first arm is
    assert [(a.code, a.regimens) for a in m.arms] == [
        ("LOW", ("exo_inhalation",)),
        ("HIGH", ("exo_inhalation",)),
    ]


def test_switched_off_declarations_leave_the_engine_too():
    source = MEX.replace('version = "1.0"', 'version = "1.3"', 1)
    for old, new in (
        ("pcr_required = true", "pcr_required = false"),
        ("skin_test_required = true", "skin_test_required = false"),
        ("\nparticipants = 1\n", "\nparticipants = 0\n"),
    ):
        assert old in source
        source = source.replace(old, new, 1)
    m = reencode_v1.reencode(protocol.parse(source, "off.toml"))
    assert [c["code"] for c in m.data["criteria"]] == ["age", "severity"]
    gates = [g["code"] for g in m.data["gates"]]
    assert "negative_skin_test_first" not in gates and "sentinel" not in gates
    assert "skin_test_not_positive" in gates  # a positive skin test still blocks, as format 1 did
    choices = m.data["forms"]["screening"]["fields"]["failed_criteria"]["choices"]
    assert "pcr" not in [c["code"] for c in choices]


def _refused_at_load(cli, tmp_path, session_for, source: str, *words: str) -> list[str]:
    before = _versions(session_for)
    r = _load(cli, tmp_path, source, "bad.toml")
    lines = [ln for ln in r.err.splitlines() if ln.strip()]
    assert r.code == 1, (r.out, r.err)
    assert "Traceback" not in r.err and lines, r.err
    for w in words:
        assert w in r.err, r.err
    assert _versions(session_for) == before  # nothing saved
    return lines


def test_a_format_1_change_the_engine_has_no_place_for_is_refused_at_load_at_its_line(
    cli, tmp_path, session_for
):
    """Format 1 ignored a table it did not know; the engine would ignore it too, silently: refused, at its line."""
    source = _amendment("1.4", extra='\n[randomization]\nmethod = "blocks"\n')
    line = source.splitlines().index('method = "blocks"') + 1
    lines = _refused_at_load(cli, tmp_path, session_for, source, "write this version in format 2")
    assert lines == [ln for ln in lines if ln.startswith("wardcrf: error:") or "bad.toml" in ln]
    assert (
        f"bad.toml:{line}: randomization.method: the engine's declarations have no place for this change"
        in "\n".join(lines)
    )


def test_a_format_1_form_the_engine_needs_is_refused_at_load_naming_the_declaration(
    cli, tmp_path, session_for
):
    """A field a declaration of the re-encoding reads, gone from the version: refused, at that field's form."""
    source = _amendment("1.5")
    old = "[forms.ct_score.fields.evaluable_segments]"
    assert old in source
    cut = source.index(old)
    end = source.index("\n[", cut + 1)
    source = source[:cut] + source[end + 1 :]
    _refused_at_load(cli, tmp_path, session_for, source, "bad.toml", "evaluable_segments")


@pytest.mark.parametrize(
    "old,new",
    [
        ('severity = ["severe", "critical"]', """severity = ["critical'] or true or ['x"]"""),
        ('device = "vibrating-mesh nebulizer (Aerogen Solo)"', 'device = "' + "x" * 5000 + '"'),
        ('device = "vibrating-mesh nebulizer (Aerogen Solo)"', 'device = "nebulizer\\u0007"'),
        ("duration_minutes = 30", "duration_minutes = 30\nsecret = true"),
        ("window_minutes = 60", "window_minutes = -5"),
    ],
    ids=["expression-injection", "oversized", "control-character", "unknown-key", "negative-window"],
)
def test_a_hostile_format_1_file_is_refused_at_load_and_nothing_is_saved(
    cli, tmp_path, session_for, old, new
):
    source = _amendment("1.6")
    assert old in source
    _refused_at_load(cli, tmp_path, session_for, source.replace(old, new, 1), "bad.toml")


def test_labels_with_toml_syntax_reach_the_engine_as_written():
    """A value is data, never TOML: quotes, brackets and backslashes pass through the engine's reading."""
    odd = 'Temp \\"axillary\\" [C] = \\\\ { x }'  # TOML: Temp \"axillary\" [C] = \\ { x }
    source = _amendment("1.7").replace('label = { en = "Axillary temp"', f'label = {{ en = "{odd}"', 1)
    m = reencode_v1.reencode(protocol.parse(source, "odd.toml"))
    assert m.data["forms"]["vitals"]["fields"]["temp"]["label"]["en"] == 'Temp "axillary" [C] = \\ { x }'


def test_a_stored_version_format_1_loaded_runs_with_format_1s_leniency():
    """Loaded before format 1 ran on the engine: a key format 1 never read is ignored again, as format 1
    ignored it; the same file is refused at `protocol load` (above, "unknown-key")."""
    source = MEX.replace('version = "1.0"', 'version = "1.8"', 1).replace(
        "duration_minutes = 30", "duration_minutes = 30\nold_key = 1", 1
    )
    stored = protocol.parse(source, "old.toml")
    with pytest.raises(protocol.ProtocolFileError, match="old_key"):
        reencode_v1.reencode(stored)
    run = protocol.run_as(stored)
    assert run.engine is not None and (run.sha256, run.source) == (stored.sha256, source)


def test_a_stored_version_the_engine_cannot_run_is_still_read_as_stored():
    """Loaded before format 1 ran on the engine, and still not runnable with format 1's leniency (a field a
    declaration reads, gone): exports and audits read it; `run_as` gives it as read; no new record is saved
    under it (tests/unit/test_format1_stored_versions.py)."""
    source = MEX.replace('version = "1.0"', 'version = "1.8"', 1)
    cut = source.index("[forms.labs.fields.wbc]")
    stored = protocol.parse(source[:cut] + source[source.index("\n[", cut + 1) + 1 :], "old.toml")
    with pytest.raises(protocol.ProtocolFileError):
        reencode_v1.reencode(stored, stored=True)
    assert protocol.run_as(stored) is stored


def test_a_renamed_product_names_the_treatment_element_too():
    source = MEX.replace('version = "1.0"', 'version = "1.9"', 1)
    assert 'name = "haMSC-Exos"' in source
    m = reencode_v1.reencode(
        protocol.parse(source.replace('name = "haMSC-Exos"', 'name = "haMSC-Exos II"', 1), "p.toml")
    )
    assert m.data["products"][0]["name"] == "haMSC-Exos II"
    assert [e["element"] for e in m.data["epochs"]] == ["Screening", "haMSC-Exos II", "Follow-up"]
    assert (
        m.data["products"][0]["code"] == model.shipped("mexcovid.toml").data["products"][0]["code"]
    )  # a code stays
