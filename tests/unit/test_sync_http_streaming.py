"""An HTTP push streams into the hub's spool: the body is never held whole, and a broken body keeps nothing.

The ASGI app `hub serve` runs is driven directly with the body in pieces, as
a server hands it over: peak memory is traced Python allocations
(`tracemalloc`), not wall time. Hostile bodies: longer or shorter than their
Content-Length, cut off by the client, trickled in tiny pieces, oversize,
and the same bundle pushed concurrently.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import tracemalloc
from collections.abc import Iterable
from pathlib import Path

import pytest
from synckit import open_
from test_sync_streaming import photo_bundle  # noqa: F401  (fixture)
from wardcrf.photos import originals as photo_originals

CHUNK = 64 * 1024


def _pieces(data: bytes, size: int = CHUNK) -> Iterable[bytes]:
    for i in range(0, len(data), size):
        yield data[i : i + size]


def _file_pieces(path: Path, size: int = CHUNK) -> Iterable[bytes]:
    with open(path, "rb") as fh:
        while piece := fh.read(size):
            yield piece


async def _push_async(
    app,
    name: str,
    sig: bytes,
    pieces: Iterable[bytes],
    *,
    length: int | None = None,
    chunked: bool = False,
    disconnect_after: int | None = None,
) -> tuple[int, dict]:
    """POST the pieces as one body; (status, JSON answer). `disconnect_after`: the client goes away after
    that many pieces (the server is told `http.disconnect`)."""
    it = iter(pieces)
    sent = 0
    done = False
    status = 0
    body = b""

    async def receive():
        nonlocal sent, done
        if done or (disconnect_after is not None and sent >= disconnect_after):
            return {"type": "http.disconnect"}
        piece = next(it, None)
        if piece is None:
            done = True
            return {"type": "http.request", "body": b"", "more_body": False}
        sent += 1
        return {"type": "http.request", "body": piece, "more_body": True}

    async def send(message):
        nonlocal status, body
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body":
            body += message.get("body", b"")

    headers = [(b"x-wardcrf-minisig", base64.b64encode(sig))]
    if length is not None:
        headers.append((b"content-length", str(length).encode()))
    if chunked:
        headers.append((b"transfer-encoding", b"chunked"))
    path = f"/v1/bundles/{name}"
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 8765),
    }
    await app(scope, receive, send)
    return status, json.loads(body) if body else {}


def _push(app, name: str, sig: bytes, pieces: Iterable[bytes], **kw) -> tuple[int, dict]:
    return asyncio.run(_push_async(app, name, sig, pieces, **kw))


def _incoming(h) -> list[str]:
    d = h.data_dir / "sync" / ".incoming"
    return sorted(os.listdir(d)) if d.exists() else []


def _nothing_applied(hs, device: str) -> None:
    assert hs.store.scalar("SELECT count(*) FROM events WHERE device = ?", (device,)) == 0
    assert hs.store.scalar("SELECT count(*) FROM sync_applied WHERE device = ?", (device,)) == 0
    assert hs.store.scalar("SELECT count(*) FROM photo_archive") == 0
    applied = hs.site.data_dir / "sync" / "applied"
    assert not applied.exists() or not [p for p in applied.iterdir() if device in p.name]


@pytest.fixture
def served(photo_bundle):  # noqa: F811
    """(hub site, its open session, the ASGI app, bundle file, its signature, photos, device keys)."""
    from wardcrf.sync import server

    h, f, photos, keys = photo_bundle
    hs = open_(h)
    try:
        yield h, hs, server.app(hs), f, f.with_name(f.name + ".minisig").read_bytes(), photos, keys
    finally:
        hs.close()


def test_http_push_holds_one_part_at_a_time_not_the_bundle(served) -> None:
    h, hs, app, f, sig, photos, _keys = served
    largest = max(len(p) for p in photos.values())
    size = f.stat().st_size
    # What `hub import` of the file needs (test_sync_streaming), and the server's pieces of the body.
    bound = 3 * largest + (1 << 20) + 512 * 1024
    assert bound < size  # the bound means something: less than the bundle itself (main held it twice)
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        status, answer = _push(app, f.name, sig, _file_pieces(f), length=size)
        _now, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    print(f"peak traced {peak} bytes, bound {bound}, bundle {size}, largest photo {largest}")
    assert status == 200, answer
    assert answer["status"] == "applied" and answer["receipt"]["name"]
    for sha, data in photos.items():
        assert photo_originals.read_original(hs.store, sha) == data
    assert _incoming(h) == []
    assert peak < bound, f"peak {peak} bytes traced for a {size}-byte push whose largest photo is {largest}"


def test_a_pushed_bundle_is_kept_as_received_byte_for_byte(served) -> None:
    """A slow client: the body trickles in 1000-byte pieces, chunked; applied, kept identical to the file."""
    h, _hs, app, f, sig, _photos, keys = served
    status, answer = _push(app, f.name, sig, _pieces(f.read_bytes(), 1000), chunked=True)
    assert status == 200 and answer["status"] == "applied", answer
    (kept,) = (h.data_dir / "sync" / "applied").glob(f"*{keys.device}*.tar.age")
    assert kept.read_bytes() == f.read_bytes()
    assert kept.with_name(kept.name + ".minisig").read_bytes() == sig
    assert _incoming(h) == []
    # Pushed again: a replay, nothing changes, nothing left in the spool.
    status, answer = _push(app, f.name, sig, _file_pieces(f), length=f.stat().st_size)
    assert status == 200 and answer["status"] == "already", answer
    assert _incoming(h) == []


def test_a_body_longer_than_its_content_length_is_refused_and_nothing_kept(served) -> None:
    h, hs, app, f, sig, _photos, keys = served
    data = f.read_bytes()
    status, answer = _push(app, f.name, sig, _pieces(data), length=len(data) - 10)
    assert status == 400
    assert answer["error"] == f"the body is longer than its Content-Length ({len(data) - 10} bytes)"
    assert _incoming(h) == []
    _nothing_applied(hs, keys.device)


@pytest.mark.parametrize("cut", ["short", "client gone"])
def test_a_body_cut_short_is_refused_and_its_spool_file_removed(served, cut: str) -> None:
    h, hs, app, f, sig, _photos, keys = served
    data = f.read_bytes()
    half = data[: len(data) // 2]
    if cut == "short":  # the body ends, having said it would be longer
        status, answer = _push(app, f.name, sig, _pieces(half), length=len(data))
        assert status == 400
        assert answer["error"] == (
            f"the body ended after {len(half)} of the {len(data)} bytes its Content-Length declares"
        )
    else:  # the connection drops midway
        n = len(half) // CHUNK
        status, answer = _push(app, f.name, sig, _pieces(data), length=len(data), disconnect_after=n)
        assert status == 400
        assert answer["error"] == f"the client went away after {n * CHUNK} bytes of the bundle; nothing kept"
    assert _incoming(h) == []
    _nothing_applied(hs, keys.device)


def test_a_truncated_body_without_a_length_is_refused_by_the_checks(served) -> None:
    """Chunked, so the server cannot know it is short: the bundle's own checks refuse it; nothing kept."""
    h, hs, app, f, sig, _photos, keys = served
    data = f.read_bytes()
    status, answer = _push(app, f.name, sig, _pieces(data[: len(data) // 2]), chunked=True)
    assert status == 422
    assert "signature" in answer["error"] or "decrypt" in answer["error"], answer
    assert _incoming(h) == []
    _nothing_applied(hs, keys.device)


def test_an_oversize_push_leaves_no_spool_file(served) -> None:
    from wardcrf.sync import server

    h, hs, _app, f, sig, _photos, keys = served
    app = server.app(hs, max_body=1024 * 1024)
    data = f.read_bytes()
    assert len(data) > 1024 * 1024
    status, answer = _push(app, f.name, sig, _pieces(data), chunked=True)
    assert status == 413 and "larger than the hub accepts (1 MiB" in answer["error"]
    status, answer = _push(app, f.name, sig, _pieces(data), length=len(data))
    assert status == 413
    assert _incoming(h) == []
    _nothing_applied(hs, keys.device)


def test_the_same_bundle_pushed_concurrently_is_applied_exactly_once(served) -> None:
    h, hs, app, f, sig, photos, keys = served
    size = f.stat().st_size

    async def all_at_once() -> list[tuple[int, dict]]:
        # Small pieces so that the bodies interleave; the hub lock serialises the applies.
        return await asyncio.gather(
            *(_push_async(app, f.name, sig, _file_pieces(f, 16 * 1024), length=size) for _ in range(6))
        )

    results = asyncio.run(all_at_once())
    assert all(status == 200 for status, _ in results), results
    assert sorted(a["status"] for _, a in results) == ["already"] * 5 + ["applied"]
    assert hs.store.scalar("SELECT count(*) FROM sync_applied WHERE device = ?", (keys.device,)) == 1
    events = hs.store.scalar("SELECT count(*) FROM events WHERE device = ?", (keys.device,))
    assert events == hs.store.scalar(
        "SELECT count(DISTINCT seq) FROM events WHERE device = ?", (keys.device,)
    )
    assert hs.store.scalar("SELECT count(*) FROM photo_archive") == len(photos)
    assert len(list((h.data_dir / "sync" / "applied").glob(f"*{keys.device}*.tar.age"))) == 1
    assert _incoming(h) == []


def test_a_real_server_removes_the_spool_file_of_a_connection_dropped_midway(photo_bundle) -> None:  # noqa: F811
    """Over a socket: half the body arrives, then the client is gone. The server notices, refuses it,
    removes what it had written; the same bundle pushed whole afterwards is applied."""
    import socket
    import time

    import httpx
    from synckit import HubServer

    h, f, _photos, keys = photo_bundle
    data = f.read_bytes()
    sig = base64.b64encode(f.with_name(f.name + ".minisig").read_bytes())
    server = HubServer(h.data_dir)
    try:
        with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
            sock.sendall(
                f"POST /v1/bundles/{f.name} HTTP/1.1\r\nHost: hub\r\nContent-Length: {len(data)}\r\n".encode()
                + b"X-Wardcrf-Minisig: "
                + sig
                + b"\r\n\r\n"
            )
            sock.sendall(data[: len(data) // 2])
            incoming = h.data_dir / "sync" / ".incoming"
            for _ in range(300):  # bounded: the server has begun writing the spool file
                if _incoming(h):
                    break
                time.sleep(0.05)
            assert [p for p in _incoming(h) if p.endswith(".tar.age")], "the body was not being spooled"
        for _ in range(300):  # bounded: the server noticed the client went away and removed the file
            if not _incoming(h):
                break
            time.sleep(0.05)
        assert _incoming(h) == [], os.listdir(incoming)
        answer = httpx.post(
            f"{server.url}/v1/bundles/{f.name}", content=data, headers={"X-Wardcrf-Minisig": sig.decode()},
            timeout=60,
        )  # fmt: skip
        assert answer.status_code == 200 and answer.json()["status"] == "applied", answer.text
    finally:
        server.stop()
    hs = open_(h)
    try:
        assert hs.store.scalar("SELECT count(*) FROM sync_applied WHERE device = ?", (keys.device,)) == 1
    finally:
        hs.close()
    assert _incoming(h) == []
