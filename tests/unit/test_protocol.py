"""Protocol files: the MEXCOVID defaults, validation errors, loading versions into a site."""

from __future__ import annotations

import pytest

from wardcrf import projections, protocol, protocols
from wardcrf.errors import PermissionDenied, Refused
from wardcrf.protocol import ProtocolFileError

SRC = protocol.default_source()


def test_mexcovid_encodes_the_published_facts():
    p = protocol.default_protocol()
    assert (p.id, p.version) == ("MEXCOVID", "1.0")
    assert "NCT04276987" in p.registry
    assert (p.eligibility.age_min, p.eligibility.age_max) == (18, 75)
    assert p.eligibility.confirmation_required and set(p.eligibility.severities) == {"severe", "critical"}
    s = p.schedule
    assert (
        s.doses == 5
        and s.dose_amount == 2.0e8
        and s.dose_unit == "particles"
        and s.time.hour == 9
        and s.zone == "Asia/Shanghai"
    )
    assert s.window_minutes == 120 and s.volume_ml == 6 and s.duration_minutes == 30
    assert s.route == "RESPIRATORY (INHALATION)" and s.pre_dose_check_required
    assert p.sentinel_participants == 1 and p.consent.witnesses == 2 and p.consent.min_photos == 1
    assert p.product["storage_target_c"] == -20
    assert {c.code for c in p.prespecified_events} >= {"fever", "dyspnoea", "diarrhoea", "seizure"}


def test_mexcovid_fields_carry_cdisc_names_units_and_translations():
    p = protocol.default_protocol()
    vitals = p.form("vitals").fields
    assert {f.cdisc for f in vitals.values() if f.cdisc and f.cdisc.startswith("VSTESTCD=")} == {
        "VSTESTCD=TEMP",
        "VSTESTCD=PULSE",
        "VSTESTCD=RESP",
        "VSTESTCD=OXYSAT",
        "VSTESTCD=SYSBP",
        "VSTESTCD=DIABP",
    }
    labs = p.form("labs").fields
    assert {labs[c].cdisc for c in ("wbc", "lym", "crp", "ldh", "il6", "ddimer", "alt", "creat")} == {
        f"LBTESTCD={c.upper()}" for c in ("wbc", "lym", "crp", "ldh", "il6", "ddimer", "alt", "creat")
    }
    assert vitals["temp"].unit == "C" and vitals["temp"].hard == (30, 45)
    assert protocol.tr(vitals["temp"].label, "zh") == "体温"
    assert protocol.tr(vitals["temp"].label, "fr") == "Temperature"
    ae = p.form("ae").fields
    assert {
        ae[k].cdisc
        for k in (
            "death",
            "life_threatening",
            "hospitalization",
            "disability",
            "congenital_anomaly",
            "medically_important",
        )
    } == {"AESDTH", "AESLIFE", "AESHOSP", "AESDISAB", "AESCONG", "AESMIE"}
    ct = [k for k in p.form("ct_score").fields if k.startswith(("r_", "l_"))]
    assert len(ct) == 18
    # every label in every form is translated
    for form in p.forms.values():
        for f in form.fields.values():
            assert set(f.label) == {"en", "zh"}, (form.name, f.name)


def _bad(src: str) -> ProtocolFileError:
    with pytest.raises(ProtocolFileError) as info:
        protocol.parse(src, "trial.toml")
    return info.value


def test_malformed_toml_names_file_and_line():
    err = _bad(SRC.replace('id = "MEXCOVID"', 'id = "MEXCOVID'))
    assert "trial.toml" in str(err) and "line" in str(err)


def test_errors_name_file_line_key_path_and_problem():
    src = SRC.replace("hard = [30, 45]", "hard = [45, 30]")
    err = _bad(src)
    line = next(i for i, text in enumerate(src.splitlines(), 1) if "hard = [45, 30]" in text)
    assert err.problems == [
        f"trial.toml:{line}: forms.vitals.fields.temp.hard: minimum 45 is above maximum 30"
    ]


def test_every_problem_is_reported_at_once():
    src = (
        SRC.replace('type = "integer"\nunit = "beats/min"', 'type = "int"\nunit = "beats/min"')
        .replace("soft = [35.0, 39.5]", "soft = [20, 39.5]")
        .replace('label = { en = "Skin test", zh = "皮试" }', 'label = { fr = "Test cutané" }')
    )
    err = _bad(src)
    text = " | ".join(err.problems)
    assert "forms.vitals.fields.pulse.type: unknown field type 'int'" in text
    assert "forms.vitals.fields.temp.soft: soft range 20..39.5 must lie inside the hard range 30..45" in text
    assert "forms.skin_test.label.fr: language 'fr' is not declared" in text
    assert "forms.skin_test.label: needs an English text" in text


def test_missing_workflow_field_and_unknown_keys_are_refused():
    src = SRC.replace(
        '[forms.dose.fields.kit_id]\ntype = "text"', '[forms.dose.fields.kit_code]\ntype = "text"'
    )
    src = src.replace(
        '[forms.oxygen.fields.flow]\ntype = "number"',
        '[forms.oxygen.fields.flow]\ntype = "number"\ncolour = "red"',
    )
    text = " | ".join(_bad(src).problems)
    assert "forms.dose.fields.kit_id: missing: the workflow needs a field of type text here" in text
    assert "forms.oxygen.fields.flow.colour: unknown field key" in text


def test_choice_without_choices_and_bad_default_are_refused():
    src = SRC.replace('default = "unscheduled"', 'default = "sometimes"')
    assert "default 'sometimes' is not one of the choice codes" in str(_bad(src))


def test_site_init_loads_mexcovid_and_events_carry_its_version(admin):
    rows = protocol.loaded_versions(admin.store)
    assert [(r["protocol_id"], r["version"], r["active"]) for r in rows] == [("MEXCOVID", "1.0", 1)]
    assert admin.protocol == {"id": "MEXCOVID", "version": "1.0"}
    ev = admin.append(type="note.test", subject="site:WUH01", body={}).event
    assert ev.protocol == {"id": "MEXCOVID", "version": "1.0"}


def test_new_version_loads_without_rewriting_old_events(admin, session_for):
    inv = session_for("investigator")
    old = inv.append(type="note.test", subject="site:WUH01", body={}).event
    v2 = protocol.parse(SRC.replace('version = "1.0"', 'version = "1.1"', 1), "mexcovid-1.1.toml")
    ev = protocol.load(inv, v2)
    assert ev.body["sha256"] == v2.sha256 and ev.body["source"] == v2.source
    assert protocol.active(inv.store).version == "1.1"
    assert inv.protocol == {"id": "MEXCOVID", "version": "1.1"}
    from wardcrf import eventlog

    assert eventlog.get(inv.store, old.id).protocol == {"id": "MEXCOVID", "version": "1.0"}
    assert protocol.version(inv.store, {"id": "MEXCOVID", "version": "1.0"}).version == "1.0"
    _n, diffs = projections.check(inv.store)
    assert not diffs


def test_loading_the_same_version_twice_is_refused(admin):
    with pytest.raises(Refused, match="already loaded"):
        protocol.load(admin, protocol.default_protocol())
    changed = protocol.parse(SRC.replace("window_minutes = 120", "window_minutes = 60"), "x.toml")
    with pytest.raises(Refused, match="different content; give the changed file a new version"):
        protocol.load(admin, changed)


def test_only_admin_and_investigator_load_protocols(session_for):
    v2 = protocol.parse(SRC.replace('version = "1.0"', 'version = "2.0"', 1), "x.toml")
    with pytest.raises(PermissionDenied, match="role clinician may not load protocol files"):
        protocol.load(session_for("clinician"), v2)


def test_protocol_cli_show_and_load(cli, tmp_path):
    r = cli("protocol", "show", "--json")
    assert r.code == 0, r.err
    assert '"MEXCOVID"' in r.out
    bad = tmp_path / "bad.toml"
    bad.write_text(SRC.replace("doses = 5", 'doses = "five"'), "utf-8")
    r = cli("protocol", "load", str(bad))
    assert r.code == 1 and "bad.toml:" in r.err and "schedule.doses: must be an integer" in r.err
    good = tmp_path / "v3.toml"
    good.write_text(SRC.replace('version = "1.0"', 'version = "3.0"', 1), "utf-8")
    r = cli("protocol", "load", str(good))
    assert r.code == 0, r.err
    assert "MEXCOVID 3.0" in r.out
    r = cli("protocol", "load", str(good), user="auditor")
    assert r.code == 1 and "may not load protocol files" in r.err


def test_format1_keys_are_read_by_what_they_mean():
    """A format-1 file's `[schedule]`/`[eligibility]` keys are format 1's vocabulary (format1-workflow.toml
    `[keys]`): each reaches its meaning, and a file that names no unit gets the vocabulary's default."""
    keys = protocols.format1_vocabulary()["keys"]
    src = (
        SRC.replace(f"{keys['confirmation_required']} = true", f"{keys['confirmation_required']} = false")
        .replace(f"{keys['pre_dose_check_required']} = true", f"{keys['pre_dose_check_required']} = false")
        .replace(f"{keys['dose_amount']} = 2.0e8", f"{keys['dose_amount']} = 3.5e8")
    )
    assert src.count("= false") >= 2 and "3.5e8" in src
    p = protocol.parse(src, "amended.toml")
    assert not p.eligibility.confirmation_required and not p.schedule.pre_dose_check_required
    assert p.schedule.dose_amount == 3.5e8 and p.schedule.dose_unit == "particles"
    unitless = "\n".join(line for line in SRC.splitlines() if not line.startswith(f"{keys['dose_unit']} ="))
    assert (
        protocol.parse(unitless, "u.toml").schedule.dose_unit
        == protocols.format1_vocabulary()["defaults"]["dose_unit"]
    )


def test_a_format1_key_of_the_wrong_type_is_refused_at_its_line():
    keys = protocols.format1_vocabulary()["keys"]
    bad = SRC.replace(
        f"{keys['pre_dose_check_required']} = true", f'{keys["pre_dose_check_required"]} = "yes"'
    )
    assert bad != SRC
    with pytest.raises(ProtocolFileError, match=f"schedule.{keys['pre_dose_check_required']}"):
        protocol.parse(bad, "bad.toml")
