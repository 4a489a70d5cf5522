"""Format 2 through the CLI: `protocol check`, `protocol load`, `init --protocol` (issue 17, step 1).

The ward's forms still read format 1; a format-2 file re-encoding a loaded
version is recorded beside it (`protocol.reencoded`) and read by the engine
(`engine.loading.model_of`); one that re-encodes nothing is checked, not run.
Every refusal is one line on stderr naming the file and line, exit 1, nothing saved.
"""

from __future__ import annotations

import re
from pathlib import Path

import mexcovid_engine
import pytest
from conftest import PASSWORD

from wardcrf import projections, protocol
from wardcrf.engine import loading, model
from wardcrf.site import Site
from wardcrf.store import Store

MEX2 = model.shipped_source("mexcovid.toml")
FILES = {
    "mexcovid-2.toml": MEX2,
    "palm.toml": model.shipped_source("palm.toml"),
    "palm007.toml": model.shipped_source("palm007.toml"),
    "mexcovid-1.toml": protocol.default_source(),
}


def _write(tmp_path: Path, name: str, text: str | bytes) -> Path:
    p = tmp_path / name
    if isinstance(text, bytes):
        p.write_bytes(text)
    else:
        p.write_text(text, "utf-8")
    return p


def _one_line(err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err
    return lines[0]


def _events(store: Store, type_: str) -> int:
    return int(store.scalar("SELECT count(*) FROM events WHERE type = ?", (type_,)))


@pytest.mark.parametrize("name", sorted(FILES))
def test_check_accepts_every_shipped_file_of_either_format(cli, tmp_path, name):
    path = _write(tmp_path, name, FILES[name])
    r = cli("protocol", "check", str(path), "--json")
    assert r.code == 0, r.err
    fmt = 1 if name == "mexcovid-1.toml" else 2
    assert f'"format": {fmt}' in r.out and '"valid": true' in r.out
    r = cli("protocol", "check", str(path))
    assert r.code == 0 and f"valid format-{fmt} protocol" in r.out


HOSTILE = [
    ("malformed TOML", MEX2.replace('id = "MEXCOVID"', 'id = "MEXCOVID', 1), r"not valid TOML"),
    ("control character", MEX2.replace('id = "MEXCOVID"', 'id = "MEX\x07COVID"', 1), r":11: "),
    ("unknown top-level key", MEX2.replace("[trial]\n", "[triall]\nx = 1\n\n[trial]\n", 1), r":\d+: "),
    (
        "unknown key in a criterion",
        MEX2.replace("[[criteria]]\n", "[[criteria]]\nweigth = 3\n", 1),
        r":225: criteria\[0\]\.weigth: unknown key",
    ),
    (
        "bad expression",
        re.sub(r'(\[\[criteria\]\]\n(?:.*\n)*?expr = ")[^"]*"', r'\1age >= "', MEX2, count=1),
        r":\d+: criteria\[0\]\.expr",
    ),
    (
        "expression naming a field that does not exist",
        MEX2.replace('expr = "screening.pcr_confirmed == true"', 'expr = "screening.shoe_size == true"', 1),
        r":\d+: criteria\[1\]\.expr: .*shoe_size",
    ),
    ("format 3", MEX2.replace("format = 2", "format = 3", 1), r""),
]


@pytest.mark.parametrize(("what", "text", "where"), HOSTILE, ids=[h[0] for h in HOSTILE])
def test_check_and_load_refuse_hostile_format_2_files_in_one_line(cli, admin, tmp_path, what, text, where):
    path = _write(tmp_path, "hostile.toml", text)
    before = _events(admin.store, "protocol.reencoded")
    for verb in ("check", "load"):
        r = cli("protocol", verb, str(path))
        assert r.code == 1, (what, verb, r.out, r.err)
        line = _one_line(r.err)
        assert "hostile.toml" in line and re.search(where, line), (what, line)
    assert _events(admin.store, "protocol.reencoded") == before


def test_an_oversized_or_binary_file_is_refused_before_reading(cli, tmp_path):
    big = _write(tmp_path, "big.toml", MEX2 + "#" * protocol.MAX_FILE_BYTES)
    r = cli("protocol", "check", str(big))
    assert r.code == 1 and "larger than" in _one_line(r.err)
    binary = _write(tmp_path, "bin.toml", b'[protocol]\nformat = 2\nid = "\xff\xfe"\n')
    r = cli("protocol", "check", str(binary))
    assert r.code == 1 and "not UTF-8" in _one_line(r.err)
    r = cli("protocol", "check", str(tmp_path / "absent.toml"))
    assert r.code == 2 and "does not exist" in _one_line(r.err)


@pytest.mark.skipif(
    mexcovid_engine.ACTIVE,
    reason="re-encodes the default site's stored MEXCOVID 1.0; --mexcovid-engine replaces it",
)
def test_a_format_2_reencoding_of_the_loaded_version_is_recorded_and_read_by_the_engine(cli, admin, tmp_path):
    before = loading.model_of(admin.store, None)
    # MEXCOVID 1.0 as stored is run on the shipped re-encoding (its SHA-256 in `reencodes`): recording that
    # re-encoding changes nothing the ward runs (before the flip: format 1 upgraded, another model)
    assert before.sha256 == model.shipped("mexcovid.toml").sha256
    path = _write(tmp_path, "mexcovid-2.toml", MEX2)
    r = cli("protocol", "load", str(path), user="auditor")
    assert r.code == 1 and "may not load protocol files" in _one_line(r.err)
    r = cli("protocol", "load", str(path), user="investigator")
    assert r.code == 0, r.err
    assert "re-encoding" in r.out
    admin.store.refresh() if hasattr(admin.store, "refresh") else None
    active = protocol.active(admin.store)
    assert (active.id, active.version) == ("MEXCOVID", "1.0")  # records stay under format 1
    assert active.sha256 == protocol.default_protocol().sha256
    m = loading.model_of(admin.store, active.ref)
    assert m.sha256 == model.shipped("mexcovid.toml").sha256 and m.id == "MEXCOVID"
    r = cli("protocol", "load", str(path))
    assert r.code == 1 and "already has a format-2 re-encoding" in _one_line(r.err)
    _, differences = projections.check(admin.store)
    assert differences == []


def test_a_format_2_file_that_reencodes_nothing_loads_as_a_version_of_its_own(cli, admin, tmp_path):
    for name in ("palm.toml", "palm007.toml"):
        r = cli("protocol", "load", str(_write(tmp_path, name, FILES[name])))
        assert r.code == 0, r.err
        assert protocol.active(admin.store).engine is not None
        assert protocol.active(admin.store).id == model.shipped(name).id
    assert _events(admin.store, "protocol.reencoded") == 0
    assert _events(admin.store, "protocol.loaded") == 3  # the site's MEXCOVID, PALM, PALM007


def test_a_file_that_says_it_reencodes_a_version_not_loaded_is_refused_naming_why(cli, admin, tmp_path):
    # Same id, another version: the loaded MEXCOVID 1.0 is not what it says it re-encodes.
    other = MEX2.replace('version = "1.0"', 'version = "9.0"', 1)
    before = protocol.active(admin.store)
    r = cli("protocol", "load", str(_write(tmp_path, "m9.toml", other)))
    assert r.code == 1 and "re-encodes a format-1 version" in _one_line(r.err) and "not loaded" in r.err
    assert _events(admin.store, "protocol.reencoded") == 0
    after = protocol.active(admin.store)  # nothing changed: the same version, run as before
    assert (after.id, after.version, after.sha256, after.engine) == (
        before.id,
        before.version,
        before.sha256,
        before.engine,
    )


def _init(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys, *extra: str) -> tuple[int, str, Path]:
    from wardcrf.cli import main

    target = tmp_path / "new-site"
    monkeypatch.setenv("WARDCRF_PASSWORD", PASSWORD)
    code = 0
    try:
        main(
            [
                "init",
                "--site",
                "LAG01",
                "--device",
                "lap1",
                "--admin",
                "ada",
                "--data-dir",
                str(target),
                *extra,
            ]
        )
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    return code, capsys.readouterr().err, target


def test_init_with_the_format_2_mexcovid_runs_the_ward_on_format_1_and_the_engine_on_format_2(
    tmp_path, monkeypatch, capsys
):
    code, err, target = _init(
        tmp_path, monkeypatch, capsys, "--protocol", str(_write(tmp_path, "m.toml", MEX2))
    )
    assert code == 0, err
    s = Site.open(target).unlock("ada", PASSWORD)
    try:
        assert protocol.active(s.store).sha256 == protocol.default_protocol().sha256
        assert loading.model_of(s.store, None).sha256 == model.shipped("mexcovid.toml").sha256
        assert _events(s.store, "protocol.reencoded") == 1
    finally:
        s.close()


def test_init_with_a_format_1_file_loads_it_instead_of_the_default(tmp_path, monkeypatch, capsys):
    v2 = protocol.default_source().replace('version = "1.0"', 'version = "2.0"', 1)
    code, err, target = _init(
        tmp_path, monkeypatch, capsys, "--protocol", str(_write(tmp_path, "v2.toml", v2))
    )
    assert code == 0, err
    s = Site.open(target).unlock("ada", PASSWORD)
    try:
        assert protocol.active(s.store).version == "2.0"
        assert [v["version"] for v in protocol.loaded_versions(s.store)] == ["2.0"]
    finally:
        s.close()


@pytest.mark.parametrize("name", ["reencodes-unshipped.toml", "hostile.toml"])
def test_init_refuses_a_protocol_it_cannot_run_before_anything_is_created(
    tmp_path, monkeypatch, capsys, name
):
    text = (
        MEX2.replace('version = "1.0"', 'version = "9.0"', 1)
        if name.startswith("reencodes")
        else MEX2.replace("format = 2", "format = 2\nbogus = 1", 1)
    )
    code, err, target = _init(tmp_path, monkeypatch, capsys, "--protocol", str(_write(tmp_path, name, text)))
    assert code == 1
    assert name in _one_line(err) or "re-encodes" in _one_line(err)
    assert not target.exists()


def test_init_refuses_a_format_1_file_the_engine_cannot_run_before_anything_is_created(
    tmp_path, monkeypatch, capsys
):
    """Every format-1 version runs on the engine (docs/engine.md): one it cannot run is refused before the
    site exists, at its line, as `protocol load` refuses it."""
    text = protocol.default_source().replace('version = "1.0"', 'version = "2.0"', 1)
    text += '\n[randomization]\nmethod = "blocks"\n'
    code, err, target = _init(
        tmp_path, monkeypatch, capsys, "--protocol", str(_write(tmp_path, "f1.toml", text))
    )
    assert code == 1, err
    line = text.splitlines().index('method = "blocks"') + 1
    assert f"f1.toml:{line}: randomization.method" in _one_line(err)
    assert not target.exists()


PALM = FILES["palm.toml"]
HOSTILE_PALM = [
    (
        "unknown field in a criterion",
        PALM.replace("screening.ebov_pcr_positive == true", "screening.nope == true", 1),
    ),
    (
        "control character in a label",
        PALM.replace('label = "ZMapp 50 mg/kg', 'label = "ZMapp\u0007 50 mg/kg', 1),
    ),
    (
        "a regimen's form that does not exist",
        PALM.replace('record = { form = "infusion"', 'record = { form = "infusoin"', 1),
    ),
    ("malformed expression", PALM.replace('check = "diabp < sysbp"', 'check = "diabp < < sysbp"', 1)),
    ("oversized file", PALM + "#" + "x" * 2_000_000 + "\n"),
]


@pytest.mark.parametrize(("what", "text"), HOSTILE_PALM, ids=[h[0] for h in HOSTILE_PALM])
def test_a_malformed_standalone_format_2_file_is_refused_at_init_and_load_nothing_created(
    cli, admin, tmp_path, monkeypatch, capsys, what, text
):
    path = _write(tmp_path, "palm-bad.toml", text)
    before = _events(admin.store, "protocol.loaded")
    r = cli("protocol", "load", str(path))
    line = _one_line(r.err)
    assert r.code == 1 and "palm-bad.toml" in line, r.err
    assert "Traceback" not in r.err
    if what != "oversized file":
        assert re.search(r"palm-bad\.toml:\d+: ", line), line  # FILE:LINE: key: problem
    assert _events(admin.store, "protocol.loaded") == before
    code, err, target = _init(tmp_path, monkeypatch, capsys, "--protocol", str(path))
    assert code == 1 and "palm-bad.toml" in _one_line(err)
    assert not target.exists()


def test_format_of_reads_the_declared_format():
    assert loading.format_of(MEX2) == 2
    assert loading.format_of(protocol.default_source()) == 1
    assert loading.format_of(MEX2.replace("format = 2", "format = true", 1)) == 1
    assert isinstance(loading.parse(MEX2, "m.toml"), model.Model)
    assert isinstance(loading.parse(protocol.default_source(), "m.toml"), protocol.Protocol)


@pytest.mark.parametrize("name", ["palm", "palm007", "mexcovid"])
def test_init_names_a_shipped_format_2_protocol_without_a_path(tmp_path, monkeypatch, capsys, name):
    monkeypatch.chdir(tmp_path)  # no file of that name here: the shipped one
    code, err, target = _init(tmp_path, monkeypatch, capsys, "--protocol", name)
    assert code == 0, err
    s = Site.open(target).unlock("ada", PASSWORD)
    try:
        active = protocol.active(s.store)
        shipped = model.shipped(f"{name}.toml")
        assert active.id == shipped.id
        # PALM and PALM007 run the ward themselves; MEXCOVID's file re-encodes the shipped format-1 one: the
        # site holds that version, run on this file
        assert active.engine is not None
        assert (active.sha256 == protocol.default_protocol().sha256) == (name == "mexcovid")
        assert loading.model_of(s.store, None).sha256 == shipped.sha256
    finally:
        s.close()


@pytest.mark.parametrize("typed", ["ebola", "palm\x07", "palm" * 300, "../palm"])
def test_init_refuses_a_protocol_that_is_neither_a_file_nor_a_shipped_name(
    tmp_path, monkeypatch, capsys, typed
):
    monkeypatch.chdir(tmp_path)
    code, err, target = _init(tmp_path, monkeypatch, capsys, "--protocol", typed)
    assert code == 2 and "protocol file" in _one_line(err)
    assert "\x07" not in err
    assert not target.exists()
