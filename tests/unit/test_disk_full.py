"""Disk full: a clear error, nothing half-saved, nothing lost (on a real tiny filesystem)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import PASSWORD

from wardcrf import audit, eventlog
from wardcrf.errors import StoreError
from wardcrf.site import Site


@pytest.fixture
def tiny_fs(tmp_path: Path):
    mnt = tmp_path / "tiny"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mnt)], capture_output=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tiny tmpfs here ({r.stderr.decode().strip() or 'not root'})")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_disk_full_is_reported_and_nothing_is_lost(tiny_fs, site):
    target = tiny_fs / "site"
    shutil.copytree(site.data_dir, target)
    # Leave ~1 MiB for the database to grow into, held by a filler we can remove later.
    (tiny_fs / "filler").write_bytes(b"\0" * (1024 * 1024 - 64 * 1024))
    s = Site.open(target).unlock("admin", PASSWORD)
    before = eventlog.count(s.store)
    saved = 0
    with pytest.raises(StoreError, match="disk full"):
        for i in range(200000):
            s.append(type="test.note", body={"i": i, "pad": "x" * 2000})
            saved += 1
    s.close()
    # Free space, reopen: every event whose append returned is there, the chain is intact.
    for f in tiny_fs.glob("filler*"):
        f.unlink()
    s = Site.open(target).unlock("admin", PASSWORD) if os.path.exists(target / "keyslots.json") else None
    assert s is not None
    assert eventlog.count(s.store) >= before + saved
    assert audit.verify(s).ok
    assert s.store.integrity_check() == "ok"
    s.close()
