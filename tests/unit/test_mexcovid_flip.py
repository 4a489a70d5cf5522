"""MEXCOVID 1.0 runs on its format-2 file (issue 17, the flip): a stored format-1 version whose SHA-256 a
shipped format-2 file lists in `reencodes` is run by the engine on that file, keeping its id, version,
SHA-256 and stored text (`protocol.run_as`); any other format-1 file runs on the same declarations with its
own values (test_format1_on_engine)."""

from __future__ import annotations

import mexcovid_engine
import pytest

from wardcrf import protocol
from wardcrf.engine import loading, model


@pytest.mark.skipif(mexcovid_engine.ACTIVE, reason="--mexcovid-engine starts the site on another version")
def test_a_default_site_holds_mexcovid_1_0_as_stored_and_runs_it_on_the_format_2_file(session_for):
    s = session_for("clinician")
    active = protocol.active(s.store)
    shipped = protocol.default_protocol()
    assert (active.id, active.version) == ("MEXCOVID", "1.0")
    # the version as stored: the same text and hash as every site initialised before the flip
    row = s.store.one("SELECT sha256, source FROM protocols WHERE active = 1")
    assert row is not None and (active.sha256, active.source) == (row[0], row[1])
    assert active.sha256 == shipped.sha256 and shipped.sha256 in loading.reencodes(
        model.shipped("mexcovid.toml")
    )
    # run by the engine on the shipped re-encoding: its model and its forms
    assert active.engine is model.shipped("mexcovid.toml")
    assert set(active.forms) == set(model.shipped("mexcovid.toml").data["forms"])
    assert protocol.version(s.store, {"id": "MEXCOVID", "version": "1.0"}) is active


def test_the_format_1_text_itself_still_reads_as_format_1():
    """`default_protocol()` (the text a new site stores) and `parse` read format 1; only a stored version is
    run through its re-encoding."""
    shipped = protocol.default_protocol()
    assert shipped.engine is None
    run = protocol.run_as(shipped)
    assert run.engine is model.shipped("mexcovid.toml") and (run.sha256, run.source) == (
        shipped.sha256,
        shipped.source,
    )
    assert protocol.run_as(shipped) is run  # read once


def test_a_format_1_file_no_shipped_file_re_encodes_runs_on_the_engine_too():
    """Was: "... runs format 1". Since every format-1 version runs on the engine (tests/unit/
    test_format1_on_engine.py), an edited copy and another version run on the re-encoding's declarations
    with their own values, keeping their own hash and text."""
    edited = protocol.parse(protocol.default_source() + "\n# a site's own copy, edited\n", "mexcovid.toml")
    assert edited.sha256 != protocol.default_protocol().sha256
    run = protocol.run_as(edited)
    assert run.engine is not None and (run.sha256, run.source) == (edited.sha256, edited.source)
    other = protocol.parse(
        protocol.default_source().replace('version = "1.0"', 'version = "1.1"', 1), "mexcovid-1.1.toml"
    )
    assert protocol.run_as(other).engine is not None and protocol.run_as(other).version == "1.1"


def test_a_format_2_version_is_run_as_read():
    palm = loading.ward_protocol(model.shipped("palm.toml"))
    assert protocol.run_as(palm) is palm
