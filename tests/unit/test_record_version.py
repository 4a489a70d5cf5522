"""A record is read, amended and exported under the protocol version it was captured under (issue 17).

Found: a record whose version is not loaded on this laptop (it came by sync or a restore from a laptop
that loaded a newer version, before or without that version's `protocol.loaded`) was shown, checked on
amendment and exported under the laptop's ACTIVE version: another version's labels, choices and ranges,
silently. And the record view read every record under the active version even when its own was loaded.

Now: its own version when loaded (accept); when not, the record is shown as stored with one line naming
the version and how to load it, an amendment is refused (exit 1, one line, nothing saved), and every
export and report built from the records is refused naming the version (nothing written). A participant
moved (by another laptop's amendment) to a version not loaded here is refused the same way.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from record_version_support import TEMP_LABEL_1_2, arrived_under, version_source
from wf_support import _copy_site

from wardcrf import eventlog, protocol, records
from wardcrf.reports import desk
from wardcrf.site import Site

P1 = "WUH01-001"


@pytest.fixture
def site(data_dir: Path, _wf_sentinel_template) -> Site:
    """WUH01-001 enrolled 10 days ago under MEXCOVID 1.0 (the `cli` fixture runs against it)."""
    return _copy_site(_wf_sentinel_template[0], data_dir)


def _vitals(cli, temp: str = "37.2") -> str:
    r = cli(
        "submit",
        "vitals",
        "--participant",
        P1,
        f"temp={temp}",
        "pulse=88",
        "resp=20",
        "oxysat=95",
        "--json",
        user="clinician",
    )
    assert r.code == 0, r.err
    data = json.loads(r.out)
    return str(data.get("event") or data.get("id"))


def _arrived(session_for, cli, version: str = "1.2") -> str:
    """A vitals record of WUH01-001 made on another laptop under MEXCOVID VERSION (same values as one here)."""
    s = session_for("admin")
    own = records.load(s.store, _vitals(cli))
    assert own is not None
    return arrived_under(s, "vitals", own.data, subject=f"participant:{P1}", version=version)


def _load(cli, tmp_path: Path, version: str, **kwargs) -> None:
    path = tmp_path / f"mexcovid-{version}.toml"
    path.write_text(version_source(version, **kwargs), "utf-8")
    r = cli("protocol", "load", str(path), user="investigator")
    assert r.code == 0, r.err


def _one_line(r, code: int = 1) -> str:
    lines = [ln for ln in r.err.splitlines() if ln.strip()]
    assert r.code == code, (r.out, r.err)
    assert len(lines) == 1 and "Traceback" not in r.err, r.err
    return lines[0]


def _label(d: desk.Desk, name: str) -> str:
    return next(f.label for f in d.fields if f.name == name)


def _not_loaded(record: str, consequence: str) -> str:
    return (
        f"record {record} was captured under MEXCOVID 1.2, which is not loaded on this laptop: "
        f"{consequence}; load it with `wardcrf protocol load FILE`"
    )


# -- the record view: its own version, or shown as stored and said so ---------------------------------


def test_a_record_is_shown_under_its_own_loaded_version_not_the_active_one(cli, tmp_path, session_for):
    before = _vitals(cli)  # under 1.0
    _load(cli, tmp_path, "1.1", temp_label="Core temperature")  # now active
    after = _vitals(cli)  # WUH01-001 is still on 1.0: captured under 1.0 too
    s = session_for("auditor")
    assert _label(desk.desk(s, before), "temp").startswith("Temperature")
    assert desk.desk(s, before).notice is None and desk.desk(s, after).protocol == {
        "id": "MEXCOVID",
        "version": "1.0",
    }


def test_a_record_under_a_version_not_loaded_here_is_shown_as_stored_and_says_so(cli, session_for):
    rec = _arrived(session_for, cli)
    s = session_for("auditor")
    d = desk.desk(s, rec)
    assert d.notice == _not_loaded(rec, "shown as stored, not validated")
    assert d.protocol == {"id": "MEXCOVID", "version": "1.2"}
    # field names and stored values: no label, unit or choice label of the active 1.0 stands in
    temp = next(f for f in d.fields if f.name == "temp")
    stored = records.load(s.store, rec)
    assert stored is not None and temp.label == "temp" and temp.value == stored.data["temp"]
    assert d.form_label == "vitals"
    r = cli("sdv", "show", rec, user="auditor")
    assert r.code == 0, r.err
    assert _not_loaded(rec, "shown as stored, not validated") in " ".join(r.out.split())
    r = cli("sdv", "show", rec, "--json", user="auditor")
    assert json.loads(r.out)["notice"] == _not_loaded(rec, "shown as stored, not validated")


def test_once_its_version_is_loaded_the_record_is_read_under_it(cli, tmp_path, session_for):
    rec = _arrived(session_for, cli)
    _load(cli, tmp_path, "1.2")
    d = desk.desk(session_for("auditor"), rec)
    assert d.notice is None and _label(d, "temp").startswith(TEMP_LABEL_1_2)


# -- amending it: refused, never checked against another version --------------------------------------


def test_amending_a_record_whose_version_is_not_loaded_is_refused_and_nothing_is_saved(cli, session_for):
    rec = _arrived(session_for, cli)
    store = session_for("admin").store
    before = eventlog.count(store)
    r = cli("amend", rec, "temp=38.1", "--reason", "transcription error", user="clinician")
    line = _one_line(r)
    assert line.endswith(
        _not_loaded(
            rec, "it cannot be checked against its own forms, so it is not amended here; nothing was saved"
        )
    )
    assert eventlog.count(store) == before
    assert records.load(store, rec).version == 1


def test_an_amendment_is_checked_under_the_records_own_version_when_loaded(cli, tmp_path, session_for):
    """1.2 refuses a temperature below 36 C; 1.0 (active here) allows 35: the record's own version decides."""
    rec = _arrived(session_for, cli)
    _load(cli, tmp_path, "1.2", temp_min=36)
    r = cli("amend", rec, "temp=35.2", "--reason", "transcription error", user="clinician")
    assert r.code == 1 and "temp" in r.err, r.err
    r = cli("amend", rec, "temp=38.1", "--reason", "transcription error", user="clinician")
    assert r.code == 0, r.err
    (amended,) = [e for e in eventlog.iter_events(session_for("admin").store, "amends = ?", (rec,))]
    assert amended.protocol == {"id": "MEXCOVID", "version": "1.2"}  # captured under the record's version


# -- exports: refused by name, nothing written; under the record's version once loaded -----------------


@pytest.mark.parametrize(
    ("args", "target"),
    [
        (("export", "csv", "--out"), "csv"),
        (("export", "odm", "--out"), "trial.xml"),
        (("export", "sdtm", "--out"), "sdtm"),
        (("report", "audit", "--participant", P1, "--out"), "casebook.pdf"),
        (("export", "sqlite", "--yes", "--out"), "plain.sqlite"),
    ],
)
def test_exports_refuse_naming_the_version_not_loaded_and_write_nothing(
    cli, tmp_path, session_for, args, target
):
    rec = _arrived(session_for, cli)
    out = tmp_path / target
    r = cli(*args, str(out), user="admin")
    line = _one_line(r)
    assert (
        f"1 record(s) were captured under MEXCOVID 1.2 (first: {rec}), which is not loaded on this laptop"
        in line
    ), line
    assert line.endswith("load it with `wardcrf protocol load FILE` and run this again; nothing was written")
    assert not out.exists() or not any(out.iterdir())


def test_the_csv_export_reads_each_record_under_its_own_version_once_loaded(cli, tmp_path, session_for):
    rec = _arrived(session_for, cli)
    _load(cli, tmp_path, "1.2")
    out = tmp_path / "csv"
    r = cli("export", "csv", "--out", str(out), user="admin")
    assert r.code == 0, r.err
    with (out / "forms" / "vitals.csv").open(encoding="utf-8-sig") as fh:
        rows = {row["record_id"]: row for row in csv.DictReader(fh)}
    assert (rows[rec]["protocol_id"], rows[rec]["protocol_version"]) == ("MEXCOVID", "1.2")
    assert {rows[k]["protocol_version"] for k in rows if k != rec} == {"1.0"}


# -- a participant moved to a version not loaded here ---------------------------------------------------


def _applied_elsewhere(session_for) -> str:
    """An investigator on the other laptop moved WUH01-001 to 1.2 (loaded there, not here)."""
    body = {"participant": P1, "protocol_id": "MEXCOVID", "from_version": "1.0", "to_version": "1.2"}
    return arrived_under(
        session_for("admin"),
        "",
        {},
        subject=f"participant:{P1}",
        type="protocol.applied",
        body=body,
        user="investigator",
        role="investigator",
    )


def test_a_participant_on_a_version_not_loaded_is_refused_by_name_not_read_under_another(
    cli, tmp_path, session_for
):
    _applied_elsewhere(session_for)
    store = session_for("admin").store
    before = eventlog.count(store)
    expected = (
        f"{P1} is on MEXCOVID 1.2, which is not loaded on this laptop: their forms, schedule and rules are "
        "that version's, so nothing is shown, checked or saved for them under another one; load it with "
        "`wardcrf protocol load FILE`"
    )
    assert _one_line(cli("participant", "show", P1, user="auditor")).endswith(expected)
    r = cli(
        "submit",
        "vitals",
        "--participant",
        P1,
        "temp=37.2",
        "pulse=88",
        "resp=20",
        "oxysat=95",
        user="clinician",
    )
    assert _one_line(r).endswith(expected)
    assert eventlog.count(store) == before
    # loaded: they are on it, and their forms are its
    _load(cli, tmp_path, "1.2", temp_min=36)
    r = cli("participant", "show", P1, "--json", user="auditor")
    assert r.code == 0, r.err
    assert json.loads(r.out)["protocol"] == {"id": "MEXCOVID", "version": "1.2", "since": "amendment"}
    r = cli(
        "submit",
        "vitals",
        "--participant",
        P1,
        "temp=35.5",
        "pulse=88",
        "resp=20",
        "oxysat=95",
        user="clinician",
    )
    assert r.code == 1 and "temp" in r.err


# -- hostile: a version name that is not one ------------------------------------------------------------


def test_a_hostile_version_name_is_named_safely_in_the_line(cli, session_for):
    s = session_for("admin")
    own = records.load(s.store, _vitals(cli))
    assert own is not None
    rec = arrived_under(s, "vitals", own.data, subject=f"participant:{P1}", version="1.2\x1b[2J" + "9" * 150)
    d = desk.desk(session_for("auditor"), rec)
    assert d.notice is not None and "\x1b" not in d.notice and len(d.notice) < 400
    r = cli("amend", rec, "temp=38.1", "--reason", "transcription error", user="clinician")
    line = _one_line(r)
    assert "\x1b" not in line and "not loaded on this laptop" in line


def test_protocol_version_never_stands_in_the_active_one(session_for):
    store = session_for("admin").store
    with pytest.raises(protocol.VersionNotLoaded, match=r"MEXCOVID 1\.2 is not loaded on this laptop"):
        protocol.version(store, {"id": "MEXCOVID", "version": "1.2"})
    assert protocol.version(store, None).version == "1.0"  # an event naming none: the active one
    assert protocol.version(store, {"id": "MEXCOVID", "version": "1.0"}).version == "1.0"
