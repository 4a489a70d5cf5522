"""MEXCOVID 1.0 as a format-2 version of its own (issue 17).

Since the flip every MEXCOVID 1.0 site runs the engine: the stored format-1
text is read through the shipped re-encoding (`protocol.run_as`), so the
default test run is on the engine. `--mexcovid-engine` starts the sites on the
re-encoding as a version of its own instead. Removed from the file, the list is what
`protocol load` itself tells a user to remove to load it "as a version of its
own" (`engine.loading._cannot_run`): same id and version, another SHA-256, and
`Site.init(protocol_file=...)` (as `wardcrf init --protocol FILE`) starts a site
on it. `pytest --mexcovid-engine` builds the shared template site this way, so
the MEXCOVID workflow tests measure what the engine and the re-encoding still
lack; `test_engine_mexcovid_ward.py` runs on it always.
"""

from __future__ import annotations

import re

from wardcrf.engine import loading, model

_REENCODES = re.compile(r"\nreencodes = \[.*?\n\]\n", re.S)

ACTIVE = False
"""Set by `pytest --mexcovid-engine` (tests/conftest.py `pytest_configure`): the sites the tests make with
the shipped default protocol (the shared template, `export_support`'s wards and hubs) start on `own_version`."""


def own_version_source() -> str:
    source, n = _REENCODES.subn("\n", model.shipped_source("mexcovid.toml"), count=1)
    assert n == 1, "the re-encoding's `reencodes` list moved: update tests/mexcovid_engine.py"
    return source


def own_version() -> model.Model:
    m = loading.parse(own_version_source(), "mexcovid.toml")
    assert isinstance(m, model.Model) and not loading.reencodes(m)
    return m


def site_protocol() -> model.Model | None:
    """What a test's `Site.init(protocol_file=...)` starts a MEXCOVID site with: None (the shipped default:
    MEXCOVID 1.0 as stored, run on its re-encoding) unless `--mexcovid-engine` is given."""
    return own_version() if ACTIVE else None


def runs_engine() -> bool:
    """Whether a site the tests start with the shipped default runs MEXCOVID 1.0 on the engine: since the flip
    it does (the stored format-1 text is run on its re-encoding, `protocol.run_as`); `--mexcovid-engine`
    starts it as a version of its own."""
    from wardcrf import protocol

    return ACTIVE or protocol.run_as(protocol.default_protocol()).engine is not None


# The chest CT's 18 segment fields in the first trial's form order (the `ct_score` form of mexcovid.toml):
# the tests type and score them. Test data, not the product's: the product reads a trial's fields from its
# protocol file.
CT_SEGMENTS = (
    "r_upper_apical",
    "r_upper_posterior",
    "r_upper_anterior",
    "r_middle_lateral",
    "r_middle_medial",
    "r_lower_superior",
    "r_lower_medial_basal",
    "r_lower_anterior_basal",
    "r_lower_lateral_basal",
    "r_lower_posterior_basal",
    "l_upper_apicoposterior",
    "l_upper_anterior",
    "l_upper_superior_lingular",
    "l_upper_inferior_lingular",
    "l_lower_superior",
    "l_lower_anteromedial_basal",
    "l_lower_lateral_basal",
    "l_lower_posterior_basal",
)
