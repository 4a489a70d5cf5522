"""`db rebuild --check` at a PostgreSQL hub replays each bundle in one batch, as import applied it.

Import projects a bundle's events in one batch (`eventlog.ingest_many`): the ward queue's row of each
participant the bundle moves is computed once, at its end, for all of them together
(`wardqueue.refresh_many`). The replay (`sync/pgcheck.py`) does the same per bundle, not per record:
the check is clean after import, the rows are computed as often as import computed them (the same
batches), not once per record, and work put off to a bundle's end that fails is named
(exit 1, an event of the bundle), as a failing event is.
"""

from __future__ import annotations

from test_hub_pg_twins import _check, _pg_admin, _pushed, twins  # noqa: F401 (the fixture)

from wardcrf.errors import Refused
from wardcrf.workflow import wardqueue


def test_the_replay_computes_the_rows_as_often_as_import_did_not_once_per_record(
    twins,  # noqa: F811
    tmp_path,
    monkeypatch,
):
    from wardcrf.sync.pgstore import PgStore

    calls: list[list[str]] = []
    real = wardqueue.refresh_many

    def counted(store, pids):
        if isinstance(store, PgStore):
            calls.append(list(pids))
        real(store, pids)

    monkeypatch.setattr(wardqueue, "refresh_many", counted)
    _w, hubs, _post = _pushed(twins, tmp_path)
    imported, calls[:] = list(calls), []
    h = hubs["postgresql"]
    code, out, err = _check(h, monkeypatch)
    assert code == 0 and "Projections match the log" in out, (out, err)
    # the replay computed the participant's row when import did (the same batches), and not once per
    # record of theirs
    with _pg_admin(h) as admin:
        theirs = admin.execute(
            "SELECT count(*) FROM events WHERE subject = 'participant:WUH01-001' AND type LIKE 'record.%'"
        ).fetchone()[0]
    assert calls == imported and all(c == ["WUH01-001"] for c in calls), (calls, imported)
    assert 1 <= len(calls) < theirs, (calls, theirs)


def test_work_a_bundle_put_off_that_fails_is_named_and_nothing_is_compared(
    twins,  # noqa: F811
    tmp_path,
    monkeypatch,
):
    _w, hubs, _post = _pushed(twins, tmp_path)
    h = hubs["postgresql"]

    def refused(store, pids):
        raise Refused("the queue row cannot be computed")

    monkeypatch.setattr(wardqueue, "refresh_many", refused)
    code, out, err = _check(h, monkeypatch)
    assert code == 1 and err.count("\n") == 1, (code, out, err)
    assert "table events" in err and "cannot be replayed" in err and "the queue row cannot be computed" in err
