"""`wardcrf protocol diff OLD NEW` (issue 17, amendments): what changed between two versions.

Files of either format, shipped names and versions loaded on the site (ID@VERSION); a readable
report grouped by what a data manager reviews, `--json` for tools; bad input refused in one
line naming the file and line, exit 1 (2 for usage), never a traceback.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from wardcrf import protocol
from wardcrf.engine import diff, model

PALM = model.shipped_source("palm.toml")


def _amended(source: str = PALM) -> str:
    """PALM 1.1: a range tightened, a field added, a visit window moved, an arm closed, a dose changed."""
    out = source.replace('id = "PALM"\nversion = "1.0"', 'id = "PALM"\nversion = "1.1"', 1)
    out = out.replace(
        'unit = "C"\nrequired = true\nhard = [30, 45]', 'unit = "C"\nrequired = true\nhard = [32, 45]', 1
    )
    out = out.replace(
        'day = 58                                   # [U]\nwindow = ["-3d", "+7d"]',
        'day = 58                                   # [U]\nwindow = ["-3d", "+3d"]',
        1,
    )
    out = out.replace(
        'code = "ZMAPP"\nlabel = "ZMapp 50 mg/kg IV every third day, three doses, with standard care"\nratio = 1',
        'code = "ZMAPP"\nlabel = "ZMapp 50 mg/kg IV every third day, three doses, with standard care"\nratio = 1\n'
        "closed = true",
        1,
    )
    out = out.replace("{ weight = [40, 500], dose = 200 }", "{ weight = [40, 500], dose = 150 }", 1)
    out = out.replace(
        "[forms.labs.fields.creat]",
        '[forms.labs.fields.crp]\ntype = "number"\nunit = "mg/L"\nhard = [0, 500]\n'
        'label = { en = "C-reactive protein", fr = "Protéine C réactive" }\n\n[forms.labs.fields.creat]',
        1,
    )
    assert out.count("1.1") >= 1 and out != source
    return out


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


def test_diff_of_two_files_names_every_change_grouped(cli, tmp_path):
    old = _write(tmp_path, "palm-1.0.toml", PALM)
    new = _write(tmp_path, "palm-1.1.toml", _amended())
    r = cli("protocol", "diff", str(old), str(new))
    assert r.code == 0, r.err
    out = r.out
    assert out.splitlines()[0].startswith(
        "PALM 1.0 (format 2, palm-1.0.toml) -> PALM 1.1 (format 2, palm-1.1.toml)"
    )
    assert "Forms and fields:" in out and "Schedule:" in out and "Arms and randomization:" in out
    assert "~ field vitals.temp: hard: [30, 45] -> [32, 45]" in out
    assert "+ field labs.crp added" in out
    assert '~ visit D58: window: ["-3d", "+7d"] -> ["-3d", "+3d"]' in out
    assert "~ arm ZMAPP: closed added: true" in out
    assert re.search(r"~ administration remdesivir/loading: dose\.bands: .*200.*150", out), out
    assert "5 changes." in out
    # the version itself is the pair's identity, never a change
    assert "version" not in out.split("\n", 1)[1]


def test_diff_json_has_the_same_changes(cli, tmp_path):
    old = _write(tmp_path, "a.toml", PALM)
    new = _write(tmp_path, "b.toml", _amended())
    r = cli("protocol", "diff", str(old), str(new), "--json")
    assert r.code == 0, r.err
    data = json.loads(r.out)
    assert data["identical"] is False and data["changes"] == 5
    assert (data["old"]["version"], data["new"]["version"]) == ("1.0", "1.1")
    temp = next(e for e in data["groups"]["Forms and fields"] if e["name"] == "vitals.temp")
    assert temp == {
        "kind": "field",
        "name": "vitals.temp",
        "status": "changed",
        "changes": [{"attribute": "hard", "old": [30, 45], "new": [32, 45]}],
    }
    arms = data["groups"]["Arms and randomization"]
    assert arms == [
        {
            "kind": "arm",
            "name": "ZMAPP",
            "status": "changed",
            "changes": [{"attribute": "closed", "old": None, "new": True}],
        }
    ]


def test_identical_versions_say_so(cli, tmp_path):
    a = _write(tmp_path, "a.toml", PALM)
    r = cli("protocol", "diff", str(a), str(a))
    assert r.code == 0 and "No differences in what the protocol declares (same file content)." in r.out
    # only comments and the version number differ: still no change in what it declares
    b = _write(
        tmp_path, "b.toml", PALM.replace('version = "1.0"', 'version = "1.0.1"', 1) + "\n# a comment\n"
    )
    r = cli("protocol", "diff", str(a), str(b), "--json")
    data = json.loads(r.out)
    assert (
        r.code == 0 and data["identical"] is True and data["same_content"] is False and data["groups"] == {}
    )
    r = cli("protocol", "diff", str(a), str(b))
    assert "only comments, layout or order differ" in r.out


def test_diff_across_formats_and_shipped_names(cli, tmp_path):
    one = _write(tmp_path, "mexcovid-1.toml", protocol.default_source())
    r = cli("protocol", "diff", str(one), "palm")
    assert r.code == 0, r.err
    assert "(format 1, mexcovid-1.toml) -> PALM 1.0 (format 2, palm)" in r.out
    assert "note: the protocol ids differ (MEXCOVID -> PALM)" in r.out
    assert "- table [schedule] removed" in r.out
    r = cli("protocol", "diff", "palm", "palm007")
    assert r.code == 0 and "+ arm TECOVIRIMAT added" in r.out and "- arm ZMAPP removed" in r.out


def test_diff_of_versions_loaded_on_the_site(cli, tmp_path):
    for text in (PALM, _amended()):
        r = cli("protocol", "load", str(_write(tmp_path, "p.toml", text)), user="investigator")
        assert r.code == 0, r.err
    r = cli("protocol", "diff", "PALM@1.0", "PALM@1.1", user="auditor")
    assert r.code == 0, r.err
    assert "PALM 1.0 (format 2, PALM@1.0 loaded) -> PALM 1.1 (format 2, PALM@1.1 loaded)" in r.out
    assert "~ field vitals.temp: hard: [30, 45] -> [32, 45]" in r.out
    # a loaded version against a file
    r = cli("protocol", "diff", "MEXCOVID@1.0", str(_write(tmp_path, "m.toml", protocol.default_source())))
    assert r.code == 0 and "No differences" in r.out and "same file content" in r.out


def test_diff_refuses_a_version_not_loaded_naming_the_loaded_ones(cli):
    r = cli("protocol", "diff", "MEXCOVID@1.0", "MEXCOVID@9.9")
    assert r.code == 1
    line = _one_line(r.err)
    assert "MEXCOVID version 9.9 is not loaded on this site (loaded: MEXCOVID@1.0)" in line
    r = cli("protocol", "diff", "MEXCOVID@", "MEXCOVID@1.0")
    assert r.code == 2 and "ID@VERSION" in _one_line(r.err)


HOSTILE = [
    ("malformed TOML", PALM.replace('id = "PALM"', 'id = "PALM', 1), r"bad\.toml.*not valid TOML"),
    ("control character", PALM.replace('id = "PALM"', 'id = "PA\x1bLM"', 1), r"bad\.toml:35: .*U\+001B"),
    (
        "bidirectional override",
        PALM.replace("# -- products", "# \u202e products", 1),
        r"bad\.toml:\d+: .*U\+202E",
    ),
    (
        "unknown key",
        PALM.replace("[[arms]]\n", "[[arms]]\nratoi = 2\n", 1),
        r"bad\.toml:\d+: arms\[0\]\.ratoi",
    ),
    ("bad range", PALM.replace("hard = [30, 45]", "hard = [45, 30]", 1), r"bad\.toml:\d+: "),
]


@pytest.mark.parametrize(("what", "text", "where"), HOSTILE, ids=[h[0] for h in HOSTILE])
def test_diff_refuses_a_hostile_file_in_one_line_naming_file_and_line(cli, tmp_path, what, text, where):
    good = _write(tmp_path, "good.toml", PALM)
    bad = _write(tmp_path, "bad.toml", text)
    for args in ((str(good), str(bad)), (str(bad), str(good))):
        r = cli("protocol", "diff", *args)
        assert r.code == 1, (what, r.out, r.err)
        assert r.out == ""
        line = _one_line(r.err)
        assert re.search(where, line), (what, line)


def test_diff_refuses_oversized_binary_missing_and_empty_inputs(cli, tmp_path):
    good = _write(tmp_path, "good.toml", PALM)
    big = _write(tmp_path, "big.toml", PALM + "#" * protocol.MAX_FILE_BYTES)
    r = cli("protocol", "diff", str(good), str(big))
    assert r.code == 1 and "larger than" in _one_line(r.err)
    binary = _write(tmp_path, "bin.toml", b'[protocol]\nformat = 2\nid = "\xff\xfe"\n')
    r = cli("protocol", "diff", str(binary), str(good))
    assert r.code == 1 and "not UTF-8" in _one_line(r.err)
    r = cli("protocol", "diff", str(good), str(tmp_path / "absent.toml"))
    assert r.code == 2 and "does not exist" in _one_line(r.err)
    r = cli("protocol", "diff", str(good), " ")
    assert r.code == 2 and "empty protocol argument" in _one_line(r.err)
    r = cli("protocol", "diff", str(good))
    assert r.code == 2 and "Missing argument" in _one_line(r.err)


def test_compare_matches_by_code_so_reordering_is_not_a_change():
    a = model.parse(PALM, "a.toml")
    arms = PALM.index("[[arms]]")
    end = PALM.index("[randomization]")
    block = PALM[arms:end]
    first, rest = block.split("[[arms]]", 2)[1], "[[arms]]".join(block.split("[[arms]]")[2:])
    reordered = PALM[:arms] + "[[arms]]" + rest + "[[arms]]" + first + PALM[end:]
    b = model.parse(reordered, "b.toml")
    assert [x.code for x in b.arms] != [x.code for x in a.arms]
    result = diff.compare(a.source, b.source, *(diff.side_of(m, n)[1] for m, n in ((a, "a"), (b, "b"))))
    assert result.identical, result.lines()


def test_check_reads_a_format_2_files_fields_as_the_ward_does(cli, tmp_path):
    """`protocol check` said valid to a range the ward's field reader (and `protocol load`) refuses."""
    bad = _write(tmp_path, "bad.toml", PALM.replace("hard = [30, 45]", "hard = [45, 30]", 1))
    r = cli("protocol", "check", str(bad))
    assert r.code == 1
    assert re.search(
        r"bad\.toml:\d+: forms\.vitals\.fields\.temp\.hard: minimum 45 is above maximum 30", _one_line(r.err)
    )
