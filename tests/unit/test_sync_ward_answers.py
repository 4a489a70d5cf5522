"""Ward-side sync services the TUI uses: export progress and refusals, the hub client,
answering a data query by amendment, a second connection for background sync."""

from __future__ import annotations

from pathlib import Path

import pytest
from hub_delivery import deliver
from synckit import add_notes, connect, free_port, make_hub, make_ward, open_
from typed_support import assert_shape
from wardcrf.sync import registry, service, ward
from wf_support import Staff, _copy_site
from wf_support import make_ward as wf_ward

from wardcrf import eventlog
from wardcrf.errors import PermissionDenied, Refused, UsageError
from wardcrf.site import Site

pytestmark = pytest.mark.usefixtures("hub_engine")  # each test at a SQLCipher and a PostgreSQL hub

P1 = "WUH01-001"


@pytest.fixture
def pair(tmp_path: Path):
    h = make_hub(tmp_path)
    w = make_ward(tmp_path)
    connect(w, h)
    return w, h


def test_export_reports_progress_per_bundle(pair, tmp_path: Path) -> None:
    w, _ = pair
    add_notes(w, 3)
    seen: list[tuple[int, int, str]] = []
    s = open_(w)
    try:
        res = ward.export(s, tmp_path, progress=lambda done, total, name: seen.append((done, total, name)))
    finally:
        s.close()
    assert len(res.files) == 1
    assert seen == [(0, 1, res.files[0].name), (1, 1, "")]


def test_sync_status_after_an_export_and_a_probe_is_typed_all_the_way_down(pair, tmp_path: Path) -> None:
    """The sync panel reads the last export and the last probe as their writers stored them (issue #16)."""
    from wardcrf.sync.transport import Client

    w, _ = pair
    add_notes(w, 1)
    s = open_(w)
    try:
        ward.export(s, tmp_path)
        probe = service.SyncService(
            s, Client(f"http://127.0.0.1:{free_port()}", attempts=1, connect_timeout=1)
        )
        assert probe.run_once() is False  # nothing listens there: offline, and recorded
        st = ward.status(s)
    finally:
        s.close()
    assert_shape(st, ward.SyncStatus)
    assert st["last_export"] is not None and st["last_export"]["files"] == 1
    assert st["hub_reachability"] is not None and st["hub_reachability"]["state"] == "offline"


def test_export_to_a_folder_that_cannot_be_written_is_refused_in_one_line(pair) -> None:
    w, _ = pair
    add_notes(w, 1)
    s = open_(w)
    try:
        # /proc refuses new files even to root: the write itself fails, not a permission bit.
        with pytest.raises(Refused, match=r"^cannot write .* to /proc: .*0 of 1 bundle\(s\) written"):
            ward.export(s, Path("/proc"))
        with pytest.raises(UsageError, match="is not a directory"):
            ward.export(s, Path("/nonexistent-usb"))
    finally:
        s.close()


def test_hub_client_uses_the_configured_url_or_says_how_to_set_one(pair) -> None:
    w, _ = pair
    s = open_(w)
    try:
        with pytest.raises(UsageError, match="no hub URL"):
            service.hub_client(s)
        assert service.hub_client(s, "http://127.0.0.1:9/").url == "http://127.0.0.1:9"
    finally:
        s.close()
    lone = make_ward(w.data_dir.parent, "lap2")
    s = open_(lone)
    try:
        with pytest.raises(UsageError, match="no hub configured"):
            service.hub_client(s)
    finally:
        s.close()


def test_reopen_gives_a_second_connection_for_the_same_user(pair) -> None:
    w, _ = pair
    s = open_(w)
    try:
        again = w.reopen(s)
        try:
            assert (again.user, again.role) == (s.user, s.role) and again.store is not s.store
            assert again.store.scalar("SELECT count(*) FROM events") == s.store.scalar(
                "SELECT count(*) FROM events"
            )
        finally:
            again.close()
    finally:
        s.close()


# -- answering a data query by amendment --------------------------------------------------


@pytest.fixture
def site(data_dir: Path, _wf_sentinel_template) -> Site:
    return _copy_site(_wf_sentinel_template[0], data_dir)


@pytest.fixture
def wf(session_for, tmp_path) -> Staff:
    return wf_ward(session_for, tmp_path)


def _query(wf: Staff, target: str, field: str) -> str:
    """A query as it lands on the ward when the hub's bundle is applied (same projector)."""
    return deliver(
        wf.admin,
        "query.raised",
        {"site": "WUH01", "target_event": target, "field": field, "question": "Sex correct?"},
        subject="site:WUH01",
    ).id


def _screening(wf: Staff) -> str:
    return str(
        wf.clin.store.scalar(
            "SELECT event_id FROM records WHERE form = 'screening' AND subject = ?", (f"participant:{P1}",)
        )
    )


def test_answer_by_amendment_corrects_the_field_and_names_the_amendment(wf) -> None:
    target = _screening(wf)
    qid = _query(wf, target, "sex")
    shown = registry.query_target(wf.clin, qid)
    assert (shown["form"], shown["value"], shown["amendable"]) == ("screening", "M", True)
    amended, answered = registry.answer_by_amendment(
        wf.clin, qid, "corrected from the source notes", value="F", reason="transcription error"
    )
    assert amended.body["changes"]["sex"] == {"old": "M", "new": "F"}
    assert answered.body["amendment"] == amended.id
    [q] = registry.queries(wf.clin.store)
    assert q["status"] == "answered" and amended.id in q["answer"]
    assert registry.query_target(wf.clin, qid)["value"] == "F"


def test_answer_by_amendment_refused_leaves_nothing(wf) -> None:
    target = _screening(wf)
    qid = _query(wf, target, "sex")
    before = eventlog.count(wf.clin.store)
    with pytest.raises(UsageError, match="amendment needs a reason"):
        registry.answer_by_amendment(wf.clin, qid, "fixed", value="F", reason=" ")
    with pytest.raises(PermissionDenied, match="role auditor may not"):
        registry.answer_by_amendment(wf.aud, qid, "fixed", value="F", reason="typo")
    note = _query(wf, qid, "text")  # a query about a non-record event
    with pytest.raises(Refused, match="is not a form record on this laptop"):
        registry.answer_by_amendment(wf.clin, note, "fixed", value="x", reason="typo")
    assert eventlog.count(wf.clin.store) == before + 1  # only the second query
    assert registry.queries(wf.clin.store, "answered") == []


@pytest.fixture
def tiny_stick(tmp_path: Path):
    """A real 64 KiB filesystem: a USB stick too full for the bundle."""
    import subprocess

    mnt = tmp_path / "stick"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mnt)], capture_output=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tiny tmpfs here ({r.stderr.decode().strip() or 'not root'})")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_export_to_a_full_stick_leaves_no_bundle_and_keeps_the_outbox(pair, tiny_stick: Path) -> None:
    from wardcrf.sync import hub

    w, h = pair
    add_notes(w, 400, text="x" * 300)  # well over 64 KiB of events
    s = open_(w)
    try:
        with pytest.raises(Refused, match=r"^cannot write .*\.tar\.age to .*: .*0 of 1 bundle\(s\) written"):
            ward.export(s, tiny_stick)
        # Neither a final-named bundle, nor its signature, nor a temp file is left on the stick.
        assert sorted(p.name for p in tiny_stick.iterdir()) == []
        # The bundle stays pending and goes whole with the next export, to a folder with room.
        room = tiny_stick.parent / "room"
        room.mkdir()
        res = ward.export(s, room)
    finally:
        s.close()
    assert [f.name for f in res.files] == [f.name for f in room.glob("*.tar.age")]
    hs = open_(h)
    try:
        f = res.files[0]
        out = hub.import_bundle(hs, f.read_bytes(), f.with_name(f.name + ".minisig").read_bytes())
    finally:
        hs.close()
    assert out.outcome.status == "applied", out.outcome.message


# -- the read models the sync screen shows are what their types say (issue #16) -------------------


def test_a_query_and_its_target_have_exactly_their_typed_keys(wf) -> None:
    """`DataQuery` is cast from a `sync_queries` row: its keys must be the table's columns."""
    from typing import get_type_hints

    target = _screening(wf)
    qid = _query(wf, target, "sex")
    columns = {r[1] for r in wf.clin.store.execute("PRAGMA table_info(sync_queries)")}
    assert set(get_type_hints(registry.DataQuery)) == columns
    [q] = registry.queries(wf.clin.store)
    assert set(q) == columns
    shown = registry.query_target(wf.clin, qid)
    assert set(shown) == set(get_type_hints(registry.QueryTarget))
    assert shown["query_id"] == qid and shown["subject"] == f"participant:{P1}"


def test_sync_status_has_exactly_its_typed_keys(wf) -> None:
    from typing import get_type_hints

    st = ward.status(wf.clin)
    assert set(st) == set(get_type_hints(ward.SyncStatus))
    assert st["open_queries"] == [] and st["last_receipt"] is None
