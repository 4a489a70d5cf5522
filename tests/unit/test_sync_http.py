"""Push, pull and watch over real HTTP on loopback against `wardcrf hub serve`."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from hub_engines import ledger
from synckit import HubServer, add_notes, connect, free_port, make_hub, make_ward, open_, serve_process
from wardcrf.sync import hub, registry, service, ward
from wardcrf.sync.transport import Client, Offline


@pytest.fixture
def served(tmp_path: Path, hub_engine: str):
    """A hub serving over HTTP and a ward registered there (at a SQLCipher and a PostgreSQL hub: the
    twenty concurrent pushes at PostgreSQL are test_hub_pg_hub's and test_hub_pg_pool's)."""
    h = make_hub(tmp_path)
    w = make_ward(tmp_path)
    connect(w, h)
    server = HubServer(h.data_dir)
    yield w, h, server
    server.stop()


def test_push_pull_round_trip_with_query_back_to_the_ward(served) -> None:
    w, h, server = served
    add_notes(w, 4)
    s = open_(w)
    try:
        out = service.push(s, Client(server.url))
        assert any("applied" in line for line in out)
        assert ward.status(s)["bundles_unreceipted"] == 0
        record_id = f"{s.ctx.device}-5"
        # A second push sends nothing new: resumable, idempotent.
        again = service.push(s, Client(server.url))
        assert again[0] == "nothing to push"
    finally:
        s.close()
    server.stop()
    with ledger(h, "coordinator") as (hs, wards):
        q = registry.raise_query(hs, "WUH01", record_id, "text", "Is this note complete?", wards=wards)
    server.__init__(h.data_dir)  # restart on a new port
    s = open_(w)
    try:
        lines = service.pull(s, Client(server.url))
        assert any("applied" in line for line in lines)
        open_q = ward.status(s)["open_queries"]
        assert [x["query_id"] for x in open_q] == [q.id]
    finally:
        s.close()
    # The ward answers (a clinician comment) and pushes; the hub sees it answered.
    import wardcrf.users as users

    a = open_(w)
    users.add_user(a, "clinician", "Cli Nician", "clinician", "test-password-1")
    a.close()
    c = open_(w, "clinician")
    try:
        registry.answer_query(c, q.id, "Yes, verified against the source note")
        service.push(c, Client(server.url))
    finally:
        c.close()
    server.stop()
    with ledger(h, "coordinator") as (hs, wards):
        assert registry.queries(wards, "answered")[0]["query_id"] == q.id
        registry.close_query(hs, q.id, "accepted")
    with ledger(h, "coordinator") as (hs, _wards):
        assert hub.status(hs)["open_queries"] == 0
    server.__init__(h.data_dir)


def test_offline_hub_gives_a_clear_message_and_never_hangs(tmp_path: Path) -> None:
    client = Client(f"http://127.0.0.1:{free_port()}", attempts=2, backoff=0.01, connect_timeout=1)
    with pytest.raises(Offline, match="unreachable"):
        client.ping()


def test_watch_syncs_when_the_hub_comes_up(tmp_path: Path) -> None:
    h = make_hub(tmp_path)
    w = make_ward(tmp_path)
    port = free_port()
    connect(w, h, url=f"http://127.0.0.1:{port}")
    add_notes(w, 2)
    s = open_(w)
    events: list[str] = []
    svc = service.SyncService(
        s,
        Client(f"http://127.0.0.1:{port}", attempts=1, connect_timeout=1),
        min_delay=0.05,
        max_delay=0.2,
        interval=0.05,
        on_event=events.append,
    )
    try:
        assert svc.run_once() is False and svc.state.state == "offline"
        server = HubServer.__new__(HubServer)
        server.port, server.url = port, f"http://127.0.0.1:{port}"
        server.proc = serve_process(h.data_dir, port)
        try:
            t = threading.Thread(target=svc.run, kwargs={"max_rounds": 200})
            t.start()
            for _ in range(400):  # bounded
                if svc.state.state == "synced":
                    break
                t.join(0.05)
            svc.stop()
            t.join(10)
            assert svc.state.state == "synced", events
            assert ward.status(s)["events_pending"] == 0
            assert ward.status(s)["hub_reachability"]["state"] == "synced"
            assert ward.sync_label(s.store).startswith("synced ")
        finally:
            server.stop()
    finally:
        s.close()


def test_twenty_concurrent_pushes_each_applied_once(tmp_path: Path) -> None:
    h = make_hub(tmp_path)
    wards = [make_ward(tmp_path, name=f"lap{i:02d}") for i in range(20)]
    for w in wards:
        connect(w, h)
        add_notes(w, 3)
    server = HubServer(h.data_dir)
    errors: list[BaseException] = []

    def go(w) -> None:
        s = open_(w)
        try:
            service.push(s, Client(server.url, timeout=60))
            service.push(s, Client(server.url, timeout=60))  # a duplicate push changes nothing
        except BaseException as exc:
            errors.append(exc)
        finally:
            s.close()

    threads = [threading.Thread(target=go, args=(w,)) for w in wards]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
    finally:
        server.stop()
    assert not errors, errors
    hs = open_(h)
    try:
        assert hs.store.scalar("SELECT count(*) FROM sync_applied") == 20
        assert hs.store.scalar("SELECT count(DISTINCT device) FROM sync_applied") == 20
        for w in wards:
            ws = open_(w)
            head = ws.store.scalar("SELECT seq FROM chain_heads WHERE device = ?", (ws.ctx.device,))
            assert hs.store.scalar("SELECT count(*) FROM events WHERE device = ?", (ws.ctx.device,)) == head
            ws.close()
    finally:
        hs.close()
