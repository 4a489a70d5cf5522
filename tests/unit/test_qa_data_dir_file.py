"""A data directory that is a file (e.g. the database itself) is named as such (found in QA)."""

from __future__ import annotations

from conftest import PASSWORD


def test_data_dir_pointing_at_the_database_file_says_to_pass_its_folder(cli, site):
    r = cli("participant", "list", env={"WARDCRF_DATA_DIR": str(site.data_dir / "wardcrf.db")})
    assert r.code == 2
    assert "is a file, not a data directory; pass the folder that holds wardcrf.db" in r.err


def test_missing_data_dir_still_says_it_does_not_exist(cli, tmp_path):
    r = cli("participant", "list", env={"WARDCRF_DATA_DIR": str(tmp_path / "nowhere")}, password=PASSWORD)
    assert r.code == 2
    assert "does not exist" in r.err
