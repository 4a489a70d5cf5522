"""A format-1 version stored before the engine ran format 1 (issue 17; docs/engine.md, "Every format-1
version on the engine").

Loaded when format 1's own workflow ran it, such a version is run by the engine with format 1's leniency:
what format 1 silently ignored (a table it did not know, an unknown `[schedule]` key) is ignored again. One
the engine still cannot run refuses every new record under it, in one line naming the way out (write it in
format 2, load it, apply it to the participant); its records stay readable (participant show, exports,
audit verify), and `protocol apply` moves a participant off it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from format1_stored import stored_before, unrunnable
from mexcovid_engine import own_version_source
from test_protocol_amendments import MEX, P1, _apply, _captured_under, _event_id, _vitals
from wf_support import _copy_site

from wardcrf import protocol, records
from wardcrf.site import Site

CANNOT_RUN = "which the engine cannot run: no new record is saved under it"


@pytest.fixture
def site(data_dir: Path, _wf_sentinel_template) -> Site:
    """WUH01-001 enrolled 10 days ago under MEXCOVID 1.0."""
    return _copy_site(_wf_sentinel_template[0], data_dir)


def _lenient(version: str) -> str:
    """A version format 1 loaded although it says what format 1 never read: a `[randomization]` table and
    an unknown `[schedule]` key."""
    out = MEX.replace('version = "1.0"', f'version = "{version}"', 1)
    assert "duration_minutes = 30" in out
    out = out.replace("duration_minutes = 30", "duration_minutes = 30\nnebulizer_batch = 7", 1)
    return out + '\n[randomization]\nmethod = "blocks"\n'


def _events(cli) -> int:
    r = cli("log", "--json", user="auditor")
    assert r.code == 0, r.err
    return len(json.loads(r.out))


def _one_line(r, *words: str) -> str:
    lines = [ln for ln in r.err.splitlines() if ln.strip()]
    assert r.code == 1, (r.out, r.err)
    assert len(lines) == 1 and "Traceback" not in r.err, r.err
    for w in words:
        assert w in lines[0], lines[0]
    return lines[0]


def test_a_stored_version_with_what_format_1_ignored_runs_on_the_engine(cli, tmp_path, monkeypatch):
    source = _lenient("1.4")
    # a new file saying it is refused at load, as before
    path = tmp_path / "new.toml"
    path.write_text(source, "utf-8")
    refused = cli("protocol", "load", str(path), user="investigator")
    assert refused.code == 1 and "randomization.method" in refused.err, refused.err
    # stored before the engine ran format 1: run on the engine, what format 1 ignored ignored again
    stored_before(cli, tmp_path, monkeypatch, source, "old.toml")
    stored = protocol.parse(source, "old.toml")
    run = protocol.run_as(stored)
    assert run.engine is not None and (run.sha256, run.source) == (stored.sha256, source)
    assert _apply(cli, P1, "1.4").code == 0
    r = _vitals(cli, "36.8")
    assert r.code == 0, r.err
    assert _captured_under(cli, _event_id(r.out)) == {"id": "MEXCOVID", "version": "1.4"}


def test_a_stored_version_the_engine_cannot_run_refuses_new_records_and_stays_readable(
    cli, tmp_path, monkeypatch
):
    source = unrunnable("1.5")
    with pytest.raises(protocol.ProtocolFileError):
        protocol.check_runs(protocol.parse(source, "new.toml"))  # a new file: refused at load, as before
    stored_before(cli, tmp_path, monkeypatch, source, "old.toml", applied_to=P1)
    assert protocol.run_as(protocol.parse(source, "old.toml")).engine is None  # read as stored
    before = _events(cli)
    line = _one_line(_vitals(cli, "36.8"), f"{P1} is on protocol MEXCOVID 1.5", CANNOT_RUN)
    assert f"`wardcrf protocol apply {P1} VERSION --reason ...`" in line and "format 2" in line
    # a new participant under the active version (1.5): refused too
    consent = cli("submit", "consent", "time=2026-12-07T08:00", user="clinician")
    _one_line(consent, "the active protocol is MEXCOVID 1.5", CANNOT_RUN)
    assert _events(cli) == before  # nothing appended
    # its records stay readable: show, exports, audit verify
    show = cli("participant", "show", P1, "--json", user="auditor")
    assert show.code == 0, show.err
    assert json.loads(show.out)["id"] == P1
    out = tmp_path / "export"
    export = cli("export", "csv", "--out", str(out), user="auditor")
    assert export.code == 0, export.err
    assert any(out.iterdir())
    verify = cli("audit", "verify", user="auditor")
    assert verify.code == 0, (verify.out, verify.err)


def test_protocol_apply_moves_a_participant_off_a_version_the_engine_cannot_run(cli, tmp_path, monkeypatch):
    stored_before(cli, tmp_path, monkeypatch, unrunnable("1.5"), "old.toml", applied_to=P1)
    _one_line(_vitals(cli, "36.8"), CANNOT_RUN)
    path = tmp_path / "format2.toml"
    path.write_text(own_version_source().replace('version = "1.0"', 'version = "1.6"', 1), "utf-8")
    r = cli("protocol", "load", str(path), user="investigator")
    assert r.code == 0, r.err
    assert _apply(cli, P1, "1.6").code == 0
    saved = _vitals(cli, "36.8")
    assert saved.code == 0, saved.err
    assert _captured_under(cli, _event_id(saved.out)) == {"id": "MEXCOVID", "version": "1.6"}


def test_an_amendment_of_a_record_under_a_version_the_engine_cannot_run_is_refused(
    cli, tmp_path, monkeypatch, session_for
):
    """Its rules cannot be checked: nothing is amended; the record stays readable."""
    stored_before(cli, tmp_path, monkeypatch, unrunnable("1.5"), "old.toml", applied_to=P1)
    s = session_for("clinician")  # a record captured under 1.5 back then, by format 1's workflow
    s.protocol = {"id": "MEXCOVID", "version": "1.5"}
    with s.store.transaction():
        event = records.submit(
            s, "vitals", {"temp": 36.8, "pulse": 88, "resp": 20, "oxysat": 95}, subject=f"participant:{P1}"
        ).id
    before = _events(cli)
    amend = cli("amend", event, "temp=37.0", "--reason", "misread", user="clinician")
    _one_line(amend, f"record {event} was captured under protocol MEXCOVID 1.5", "not amended")
    assert _events(cli) == before
    show = cli("participant", "show", P1, "--json", user="auditor")
    assert show.code == 0, show.err
    assert cli("audit", "verify", user="auditor").code == 0


def test_a_participant_on_a_version_the_engine_cannot_run_is_told_its_wizard(
    cli, tmp_path, monkeypatch, session_for
) -> None:
    """The administration wizard is the engine's: none for a version the engine cannot run, said in one line."""
    from wardcrf.errors import Refused
    from wardcrf.workflow import administration_visit as av

    stored_before(cli, tmp_path, monkeypatch, unrunnable("1.5"), "old.toml", applied_to=P1)
    s = session_for("clinician")
    assert av.uses_engine(s, P1) is False
    with pytest.raises(Refused, match="format-1 protocol"):
        av.plan(s, P1)


def test_protocol_apply_refuses_to_move_a_participant_onto_a_version_the_engine_cannot_run(
    cli, tmp_path, monkeypatch
) -> None:
    """Nothing could be recorded for them under it: refused in one line, nothing appended; the version
    with what format 1 ignored (runnable) is applied."""
    stored_before(cli, tmp_path, monkeypatch, unrunnable("1.5"), "old.toml")
    before = _events(cli)
    line = _one_line(_apply(cli, P1, "1.5"), "MEXCOVID 1.5 is a format-1 version the engine cannot run")
    assert "format 2" in line
    assert _events(cli) == before
    stored_before(cli, tmp_path, monkeypatch, _lenient("1.6"), "lenient.toml")
    assert _apply(cli, P1, "1.6").code == 0
