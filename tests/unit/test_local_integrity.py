"""Local integrity (issue 15, finding 8): log order, append-only triggers, whole-file rollback.

Before: swapping two events' `pos` passed `audit verify` and `db rebuild --check`;
dropped triggers were never noticed; an older wardcrf.db copied over a newer one
passed `audit verify` and its newer events were silently gone.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import sqlcipher3
from conftest import PASSWORD
from insider import raw_key

from wardcrf import audit, dbadmin, rollback
from wardcrf.errors import Refused
from wardcrf.site import Site
from wardcrf.store import db_path


def _raw(site: Site, key: bytes) -> sqlcipher3.Connection:
    conn = sqlcipher3.connect(str(db_path(site.data_dir)), isolation_level=None)
    conn.execute(f"PRAGMA key = \"x'{key.hex()}'\"")
    return conn


def _insider(site: Site, admin, *steps: str) -> None:
    key = raw_key(admin)
    admin.close()
    conn = _raw(site, key)
    for step in steps:
        conn.execute(step)
    conn.close()


def _verify(site: Site, user: str = "auditor") -> audit.VerifyReport:
    s = Site.open(site.data_dir).unlock(user, PASSWORD)
    try:
        return audit.verify(s)
    finally:
        s.close()


# -- pos order -------------------------------------------------------------------------------


def _swap_pos(site: Site, admin, a: int, b: int) -> None:
    pa, pb = (admin.store.scalar("SELECT pos FROM events WHERE seq = ?", (s,)) for s in (a, b))
    _insider(
        site,
        admin,
        "DROP TRIGGER events_no_update",
        f"UPDATE events SET pos = -1 WHERE pos = {pa}",
        f"UPDATE events SET pos = {pa} WHERE pos = {pb}",
        f"UPDATE events SET pos = {pb} WHERE pos = -1",
    )


def test_swapping_two_events_pos_fails_audit_verify(site, admin):
    _swap_pos(site, admin, 3, 4)
    report = _verify(site)
    assert not report.ok
    chains = next(r for r in report.results if r.name == "event chains")
    assert any("seq 4" in p and "log order" in p for p in chains.problems), chains.problems


def test_swapping_two_events_pos_fails_db_rebuild_check(site, admin, cli):
    _swap_pos(site, admin, 5, 6)
    res = cli("db", "rebuild", "--check", user="auditor")
    assert res.code == 1 and "log order" in res.err and res.err.count("\n") == 1, res.output
    refused = cli("db", "rebuild")
    assert refused.code == 1 and "log order" in refused.err, refused.output


def test_an_intact_log_passes_the_order_check(site, admin):
    n, diffs = dbadmin.check_projections(admin)
    assert diffs == [] and n > 0


# -- append-only triggers ---------------------------------------------------------------------


def test_dropped_triggers_fail_verify_once_are_restored_with_an_event_and_noted_after(site, admin):
    _insider(site, admin, "DROP TRIGGER events_no_delete", "DROP TRIGGER photo_blobs_no_update")
    report = _verify(site)
    triggers = next(r for r in report.results if r.name == "append-only triggers")
    assert not report.ok
    assert any("events_no_delete" in p and "restored" in p for p in triggers.problems), triggers.problems
    s = Site.open(site.data_dir).unlock("auditor", PASSWORD)
    try:
        names = {r[0] for r in s.store.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")}
        assert {"events_no_delete", "photo_blobs_no_update"} <= names
        body = s.store.scalar("SELECT line FROM events WHERE type = 'db.triggers_restored'")
        assert body and "events_no_delete" in body
        with pytest.raises(sqlcipher3.IntegrityError, match="append-only"):
            s.store.conn.execute("DELETE FROM events WHERE seq = 1")
        again = audit.verify(s)
    finally:
        s.close()
    assert again.ok, again.problems
    triggers = next(r for r in again.results if r.name == "append-only triggers")
    assert any("restored" in n for n in triggers.notes)


def test_an_altered_trigger_is_replaced(site, admin):
    _insider(
        site,
        admin,
        "DROP TRIGGER events_no_update",
        "CREATE TRIGGER events_no_update BEFORE UPDATE ON events BEGIN SELECT 1; END",
    )
    report = _verify(site)
    assert any("events_no_update" in p and "altered" in p for p in report.problems), report.problems
    assert _verify(site).ok


def test_intact_triggers_pass(admin):
    report = audit.verify(admin)
    triggers = next(r for r in report.results if r.name == "append-only triggers")
    assert triggers.problems == [] and triggers.checked >= 8


# -- whole-file rollback ----------------------------------------------------------------------


def _copy_db(site: Site, to: Path) -> None:
    """A copy of the database file as someone would take it: with no wardcrf process running."""
    to.mkdir(parents=True, exist_ok=True)
    shutil.copy2(db_path(site.data_dir), to / "wardcrf.db")


def _put_back(site: Site, frm: Path) -> None:
    for suffix in ("-wal", "-shm"):
        Path(str(db_path(site.data_dir)) + suffix).unlink(missing_ok=True)
    shutil.copy2(frm / "wardcrf.db", db_path(site.data_dir))


def _note(site: Site, user: str = "clinician", n: int = 1) -> None:
    s = Site.open(site.data_dir).unlock(user, PASSWORD)
    try:
        for i in range(n):
            with s.store.transaction():
                s.append(type="note.added", subject="site:WUH01", body={"text": f"n{i}"})
    finally:
        s.close()


def test_an_older_database_copied_over_a_newer_one_is_refused_at_the_next_sign_in(site, tmp_path, cli):
    _note(site)
    _copy_db(site, tmp_path / "old")
    _note(site, n=3)
    _put_back(site, tmp_path / "old")
    with pytest.raises(Refused, match=r"older copy of wardcrf\.db") as exc:
        Site.open(site.data_dir).unlock("clinician", PASSWORD)
    assert "\n" not in str(exc.value)
    res = cli("log", user="auditor")
    assert res.code == 1 and res.err.count("\n") == 1 and "accept-rollback" in res.err, res.output
    assert "Traceback" not in res.output


def test_only_an_admin_accepts_a_rollback_and_it_is_logged(site, tmp_path, cli):
    _note(site)
    _copy_db(site, tmp_path / "old")
    _note(site, n=2)
    _put_back(site, tmp_path / "old")
    nope = cli("db", "accept-rollback", "--reason", "the newer file is lost", user="clinician")
    assert nope.code == 1 and "admin" in nope.err, nope.output
    bare = cli("db", "accept-rollback", user="admin")
    assert bare.code == 2, bare.output  # the reason is required
    ok = cli("db", "accept-rollback", "--reason", "the newer file is lost with the old laptop")
    assert ok.code == 0, ok.output
    s = Site.open(site.data_dir).unlock("clinician", PASSWORD)
    try:
        line = s.store.scalar("SELECT line FROM events WHERE type = 'db.rollback_accepted'")
        assert line and "the newer file is lost" in line
    finally:
        s.close()


def test_no_rollback_no_alarm_and_restoring_a_backup_is_not_a_rollback(site, tmp_path, session_for):
    from wardcrf import backup
    from wardcrf.behind import BehindDetected

    _note(site)
    s = session_for("admin")
    made = backup.backup(s, tmp_path)
    s.close()
    backup.restore(made.path, site.data_dir, username="admin", password=PASSWORD)
    Site.open(site.data_dir).unlock("clinician", PASSWORD).close()
    _note(site, n=2)
    # An older backup is not a rollback of the counter, but it is behind the database it replaced.
    backup.restore(made.path, site.data_dir, username="admin", password=PASSWORD)
    with pytest.raises(BehindDetected, match="replaced database"):
        Site.open(site.data_dir).unlock("clinician", PASSWORD)


def test_a_missing_counter_file_is_recreated_with_a_warning_and_an_event(site):
    _note(site)
    (site.data_dir / rollback.FILENAME).unlink()
    s = Site.open(site.data_dir).unlock("clinician", PASSWORD)
    try:
        assert any("rollback counter" in w for w in s.warnings), s.warnings
        assert s.store.scalar("SELECT count(*) FROM events WHERE type = 'db.rollback_counter_reset'") == 1
    finally:
        s.close()
    again = Site.open(site.data_dir).unlock("clinician", PASSWORD)
    assert not any("rollback counter" in w for w in again.warnings)
    again.close()


def test_a_forged_counter_is_ignored_not_believed(site):
    """A counter file whose MAC does not verify counts as missing (warned, recreated), never as a rollback."""
    _note(site)
    path = site.data_dir / rollback.FILENAME
    path.write_bytes(path.read_bytes().replace(b'"n":', b'"n":9'))
    s = Site.open(site.data_dir).unlock("clinician", PASSWORD)
    try:
        assert any("rollback counter" in w for w in s.warnings)
    finally:
        s.close()


def test_the_counter_moves_with_every_commit_and_sits_beside_the_key_slots(site):
    _note(site, n=2)
    first = _counter(site)
    _note(site, n=2)
    assert _counter(site) >= first + 2
    assert (site.data_dir / rollback.FILENAME).parent == (site.data_dir / "keyslots.json").parent


@pytest.mark.slow
def test_sigkill_at_any_moment_never_raises_a_false_rollback_alarm(site):
    """Kill a writer (a commit per event) at five moments; every next sign-in opens normally."""
    script = textwrap.dedent(
        f"""
        import sys
        import scratch_events  # the tests' own event types (note.added), declared for authority
        from wardcrf import features
        from wardcrf.site import Site
        features.install()
        s = Site.open(sys.argv[1]).unlock("clinician", {PASSWORD!r})
        print("ready", flush=True)
        i = 0
        while True:
            with s.store.transaction():
                s.append(type="note.added", subject="site:WUH01", body={{"text": str(i)}})
            i += 1
        """
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    for round_ in range(5):
        proc = subprocess.Popen(
            [sys.executable, "-c", script, str(site.data_dir)], stdout=subprocess.PIPE, env=env
        )
        assert proc.stdout is not None and proc.stdout.readline().strip() == b"ready"
        start = _counter(site)
        # Wait on the condition (the counter moved on by a few commits), never on a timer.
        while _counter(site) < start + 3 + round_ * 7:
            if proc.poll() is not None:
                raise AssertionError("the writer died by itself")
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        s = Site.open(site.data_dir).unlock("auditor", PASSWORD)  # no RollbackDetected
        try:
            assert audit.verify(s).ok
        finally:
            s.close()


def _counter(site: Site) -> int:
    """The highest value in the counter file, read as a bystander (no key: its MAC is not checked)."""
    import json

    try:
        raw = (site.data_dir / rollback.FILENAME).read_bytes()
    except FileNotFoundError:
        return 0
    values = []
    for line in raw.splitlines():
        try:
            values.append(int(json.loads(line)["n"]))
        except (ValueError, KeyError):
            continue
    return max(values, default=0)


def test_accept_rollback_is_refused_when_there_is_none(site, cli):
    res = cli("db", "accept-rollback", "--reason", "just because")
    assert res.code == 1 and "no rollback" in res.err, res.output


def test_roles_without_db_raw_key_cannot_print_it(cli):
    res = cli("db", "raw-key", user="auditor")
    assert res.code == 1 and res.err.count("\n") == 1 and "db raw" not in res.out, res.output


def test_a_sign_in_while_another_process_commits_is_not_taken_for_a_rollback(site, admin, monkeypatch):
    """Another process (here `admin`) commits and writes the counter file between this sign-in's two reads.

    The file trails the database (it is written after each commit), so read first it is never above
    a database read after it: the sign-in goes ahead. Read the other way round, the commit between
    the reads made the file look newer than the database (20 `hub import` processes hit it).
    """
    from site_users import PASSWORD

    from wardcrf import rollback
    from wardcrf.site import Site

    real_read = rollback.Counter.read
    raced = []

    def read_while_another_commits(self):
        if not raced:
            raced.append(True)
            with admin.store.transaction():
                admin.append(type="note.added", subject=f"site:{admin.ctx.site}", body={})
        return real_read(self)

    monkeypatch.setattr(rollback.Counter, "read", read_while_another_commits)
    late = Site.open(site.data_dir).unlock("admin", PASSWORD)
    try:
        assert raced and late.store.scalar("SELECT count(*) FROM events WHERE type = 'note.added'") == 1
    finally:
        late.close()
