"""Upgrading re-derives a ward-queue row computed before participants on a version not loaded were flagged.

Before issue 17's change (wlv), a participant moved by an amendment on another laptop to a version this
laptop has not loaded got a `ward_queue` row computed under the ACTIVE version (a dose due, vitals owed),
and nothing re-derived it until their next record. Migration `0580-ward-queue-version-not-loaded`
(wardcrf/schema.sql) makes an upgraded site re-derive its queue when it is opened: the stale row is
replaced by the unplaced row the current code derives, and `db rebuild --check` agrees.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from record_version_support import arrived_under
from site_users import PASSWORD
from wf_support import _copy_site

from wardcrf.site import Site
from wardcrf.workflow import wardqueue

P1 = "WUH01-001"
UNPLACED = (None, None, 0, 0, None, None)  # nothing due, owed or held (test_ward_version_not_loaded.py)


@pytest.fixture
def site(data_dir: Path, _wf_sentinel_template) -> Site:
    return _copy_site(_wf_sentinel_template[0], data_dir)


def _row(site: Site) -> tuple:
    s = Site.open(site.data_dir).unlock("admin", PASSWORD)  # an upgrade happens here (`Site.unlock_key`)
    try:
        row = s.store.one("SELECT * FROM ward_queue WHERE participant = ?", (P1,))
        return tuple(row) if row is not None else ()
    finally:
        s.close()


def _as_before_the_change(site: Site, stale: tuple, *, migrated: bool) -> None:
    """The queue row as the older code left it (derived under the active version); without the migration
    recorded when `migrated` is False (a site not yet upgraded)."""
    s = Site.open(site.data_dir).unlock("admin", PASSWORD)
    try:
        columns = [str(r[1]) for r in s.store.execute("PRAGMA table_info(ward_queue)")]
        with s.store.transaction():  # a derived index, not the log: what an older version wrote here
            s.store.execute("DELETE FROM ward_queue WHERE participant = ?", (P1,))
            s.store.execute(
                f"INSERT INTO ward_queue ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})",
                stale,
            )
            if not migrated:
                s.store.execute(
                    "DELETE FROM schema_migrations WHERE name = ?", (wardqueue.MIGRATION_NOT_LOADED,)
                )
    finally:
        s.close()


def _applied_elsewhere(session_for) -> None:
    body = {"participant": P1, "protocol_id": "MEXCOVID", "from_version": "1.0", "to_version": "1.2"}
    arrived_under(
        session_for("admin"),
        "",
        {},
        subject=f"participant:{P1}",
        type="protocol.applied",
        body=body,
        version="1.2",
        user="investigator",
        role="investigator",
    )


def test_the_migration_is_the_next_one_and_changes_no_table():
    from wardcrf.store import migrations, split_sql

    names = [name for name, _sql in migrations()]
    assert names.index(wardqueue.MIGRATION_NOT_LOADED) == names.index(wardqueue.MIGRATION) + 1
    assert split_sql(dict(migrations())[wardqueue.MIGRATION_NOT_LOADED]) == []


def test_an_upgraded_site_re_derives_the_stale_row_and_a_rebuild_agrees(site, session_for, cli):
    s = session_for("admin")
    with s.store.transaction():
        wardqueue.derive(s.store, s.store)
    stale = _row(site)
    assert stale[1:3] != (None, None)  # under 1.0: a dose and its due time
    _applied_elsewhere(session_for)
    assert _row(site)[1:] == UNPLACED  # today's code: nothing due for them
    _as_before_the_change(site, stale, migrated=False)
    assert _row(site)[1:] == UNPLACED  # opened: the migration applied, the queue re-derived
    s = Site.open(site.data_dir).unlock("admin", PASSWORD)
    try:
        assert s.store.one(
            "SELECT 1 FROM schema_migrations WHERE name = ?", (wardqueue.MIGRATION_NOT_LOADED,)
        )
    finally:
        s.close()
    r = cli("db", "rebuild", "--check", user="admin")
    assert r.code == 0, r.out + r.err


def test_a_site_already_upgraded_is_not_re_derived_at_every_sign_in(site, session_for):
    """The re-derive runs once, with the migration: a row written afterwards is left for the projectors
    (here a row put back by hand stays until the participant's next record or `db rebuild`)."""
    s = session_for("admin")
    with s.store.transaction():
        wardqueue.derive(s.store, s.store)
    stale = _row(site)
    _applied_elsewhere(session_for)
    _as_before_the_change(site, stale, migrated=True)
    assert _row(site) == stale
