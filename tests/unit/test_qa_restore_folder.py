"""`db restore` given the USB stick's folder instead of the backup file inside it (found in QA)."""

from __future__ import annotations

import pytest
from conftest import PASSWORD

from wardcrf import backup
from wardcrf.errors import UsageError


def test_restore_of_a_folder_names_the_backups_inside_it(tmp_path, site, admin):
    stick = tmp_path / "usb"
    stick.mkdir()
    result = backup.backup(admin, stick)
    with pytest.raises(
        UsageError, match=rf"{stick} is a folder; name the backup file in it: {result.path.name}"
    ):
        backup.restore(stick, tmp_path / "new", username="admin", password=PASSWORD)
    assert not (tmp_path / "new" / "wardcrf.db").exists()
    # the file itself restores
    assert backup.restore(result.path, tmp_path / "new", username="admin", password=PASSWORD).events > 0


def test_restore_of_an_empty_folder_says_there_is_no_backup(tmp_path, site):
    empty = tmp_path / "stick"
    empty.mkdir()
    with pytest.raises(UsageError, match=r"is a folder with no \.wardbackup file"):
        backup.restore(empty, tmp_path / "new", username="admin", password=PASSWORD)


def test_restore_cli_of_a_folder_exits_2_with_one_line(cli, tmp_path):
    stick = tmp_path / "usb"
    stick.mkdir()
    assert cli("db", "backup", "--to", str(stick)).code == 0
    r = cli("db", "restore", str(stick), "--data-dir", str(tmp_path / "new"))
    assert r.code == 2
    assert r.err.count("\n") == 1 and "is a folder; name the backup file in it" in r.err
