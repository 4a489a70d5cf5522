"""Participant ids are printed whole on an 80-column terminal (found in QA: "WUH…")."""

from __future__ import annotations

from pathlib import Path

import pytest
from wf_support import _copy_site

from wardcrf.site import Site


@pytest.fixture
def site(data_dir: Path, _wf_sentinel_template) -> Site:
    return _copy_site(_wf_sentinel_template[0], data_dir)


@pytest.mark.parametrize("columns", ["80", "60"])
def test_participant_list_keeps_ids_whole(cli, columns):
    r = cli("participant", "list", user="clinician", env={"COLUMNS": columns})
    assert r.code == 0, r.err
    assert "WUH01-001" in r.out


def test_today_keeps_ids_whole(cli):
    r = cli("today", user="clinician", env={"COLUMNS": "60"})
    assert r.code == 0, r.err
    assert "WUH01-001" in r.out  # enrolled 10 days ago, no dose: overdue
