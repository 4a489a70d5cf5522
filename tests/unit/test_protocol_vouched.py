"""The shipped format-2 files the JSON-schema check is vouched for (`engine.model.VOUCHED`).

The runtime skips the schema check only for a file byte-identical to one this suite checks
on every run, under the schema text it was checked with; any other file — a user's, a
bundle's, a shipped file edited since — is checked and refused in the schema's words.
"""

from __future__ import annotations

import pytest

from wardcrf.engine import model
from wardcrf.protocol_file import ProtocolFileError, read_source


def _checked(source: str, name: str) -> list[str]:
    """The schema check's problems for `source`, run whatever `VOUCHED` says."""
    data, reader = read_source(source, name, model._Reader)
    model._schema_problems(reader, data)  # type: ignore[arg-type]
    return list(reader.problems)


@pytest.mark.parametrize("name", model.SHIPPED)
def test_each_shipped_file_passes_the_check_it_is_vouched_for(name):
    source = model.shipped_source(name)
    assert _checked(source, name) == []
    assert model.vouch_key(source) in model.VOUCHED, (
        f"{name} changed since it was vouched: put {model.vouch_key(source)} in engine.model.VOUCHED "
        "for it (this test re-runs its schema check), in place of its old digest"
    )


def test_every_vouched_digest_is_a_shipped_file_as_it_is_now():
    assert {model.vouch_key(model.shipped_source(n)) for n in model.SHIPPED} == model.VOUCHED


@pytest.fixture
def schema_checks(monkeypatch):
    """How many times `parse` ran the schema check (`model._CACHE` is bypassed: `parse` is called)."""
    calls: list[int] = []
    real = model._schema_problems

    def counting(r, data):
        calls.append(1)
        real(r, data)

    monkeypatch.setattr(model, "_schema_problems", counting)
    return calls


def test_a_vouched_file_is_read_without_the_schema_check(schema_checks):
    m = model.parse(model.shipped_source("mexcovid.toml"), "mexcovid.toml")
    assert schema_checks == []
    assert m.id and m.regimens  # the whole model all the same: references checked, built


def test_a_vouched_file_altered_by_one_byte_is_checked_and_refused(schema_checks):
    source = model.shipped_source("mexcovid.toml")
    altered = source.replace("anchor_day = 0", "anchor_dax = 0", 1)
    assert len(altered.encode()) == len(source.encode()) and altered != source
    with pytest.raises(ProtocolFileError) as exc:
        model.parse(altered, "mexcovid.toml")
    assert schema_checks == [1]
    assert "calendar.anchor_dax: unknown key 'anchor_dax' (allowed: anchor_day, zone)" in str(exc.value)


def test_a_valid_file_not_vouched_is_checked_and_accepted(schema_checks):
    source = model.shipped_source("mexcovid.toml") + "\n# a comment added: not the vouched bytes\n"
    m = model.parse(source, "mexcovid.toml")
    assert schema_checks == [1]
    assert m.id == model.shipped("mexcovid.toml").id


def test_a_changed_schema_unvouches_every_file(monkeypatch, schema_checks):
    text = model._schema_text()
    monkeypatch.setattr(model, "_schema_text", lambda: text + "\n")
    source = model.shipped_source("palm.toml")
    assert model.vouch_key(source) not in model.VOUCHED
    model.parse(source, "palm.toml")
    assert schema_checks == [1]
