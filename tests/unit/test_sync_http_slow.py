"""`hub serve` cuts a push body that stops arriving or trickles in (slowloris): 408, nothing kept.

The rule (`server.BodyTimeouts`): no pause in the body longer than the idle
timeout, and from its start, once the first idle-timeout seconds have passed,
an average of at least the minimum rate. The tests set the timeout to a
fraction of a second and wait on the server's answer, never on a clock: the
ASGI app is driven with a body that stalls or trickles, and a real server is
sent one over a raw socket. A slow but steady body (pauses well under the
idle timeout, above the rate) is applied. The hub tests run at a SQLCipher hub
and at a PostgreSQL one (`hub_engines`), reading what was applied where the hub
keeps it.
"""

from __future__ import annotations

import asyncio
import base64
import json
import os
import select
import socket
import time
from pathlib import Path

import pytest
from hub_engines import ledger, nothing_applied
from synckit import open_
from test_sync_cli import run
from test_sync_streaming import photo_bundle  # noqa: F401  (fixture)

from wardcrf.errors import UsageError


def _incoming(h) -> list[str]:
    d = h.data_dir / "sync" / ".incoming"
    return sorted(os.listdir(d)) if d.exists() else []


@pytest.fixture
def slow_hub(photo_bundle, hub_engine):  # noqa: F811
    """(hub site, its open session, bundle file, its signature, the ward's device keys)."""
    h, f, _photos, keys = photo_bundle
    hs = open_(h)
    try:
        yield h, hs, f, f.with_name(f.name + ".minisig").read_bytes(), keys
    finally:
        hs.close()


# -- the rule ----------------------------------------------------------------------------------


def test_the_rule_lets_a_weak_but_steady_link_through_and_cuts_a_trickle() -> None:
    from wardcrf.sync.server import BodyTimeouts

    rule = BodyTimeouts()  # the defaults: 60 s idle, 1024 bytes/s
    # 100 MB at 2 KiB/s (weak GPRS), 14 hours: at every hour the next piece may still take the full idle timeout.
    for hour in range(15):
        t = hour * 3600.0
        assert rule.wait(t, int(2048 * t)) == (60.0, "idle")
    # A byte every 10 s (under the idle timeout): after 10 minutes the rate rule has run out.
    wait, which = rule.wait(600.0, 60)
    assert which == "rate" and wait <= 0
    # The first idle-timeout seconds are free: a body may start slowly (a TCP window opening).
    assert rule.wait(30.0, 0) == (30.0, "rate")
    assert BodyTimeouts(60.0, 0).wait(10_000.0, 1) == (60.0, "idle")  # rate rule off


@pytest.mark.parametrize(
    ("idle", "rate", "says"),
    [(0.0, 1024, "--body-idle-timeout"), (-1.0, 1024, "--body-idle-timeout"), (4000.0, 1024, "--body-idle-timeout"),
     (60.0, -1, "--body-min-rate"), (60.0, 1 << 31, "--body-min-rate")],
)  # fmt: skip
def test_out_of_range_timeouts_are_refused(idle: float, rate: int, says: str) -> None:
    from wardcrf.sync.server import BodyTimeouts

    with pytest.raises(UsageError, match=says):
        BodyTimeouts(idle, rate)


@pytest.mark.parametrize(
    ("args", "says"),
    [(["--body-idle-timeout", "0"], "--body-idle-timeout"), (["--body-min-rate", "-5"], "--body-min-rate"),
     (["--body-idle-timeout", "soon"], "--body-idle-timeout"), (["--pool-size", "0"], "--pool-size"),
     (["--pool-size", "65"], "--pool-size")],
)  # fmt: skip
@pytest.mark.usefixtures("hub_engine")
def test_hub_serve_refuses_bad_timeouts_and_pool_sizes_in_one_line(tmp_path, monkeypatch, args, says) -> None:
    from synckit import make_hub

    h = make_hub(tmp_path)
    code, _out, err = run("hub", "serve", "-d", str(h.data_dir), *args, monkeypatch=monkeypatch)
    assert code == 2, err
    assert says in err and "Traceback" not in err


@pytest.mark.usefixtures("hub_engine")
def test_the_environment_sets_the_timeouts(tmp_path, monkeypatch) -> None:
    """WARDCRF_HUB_BODY_IDLE_TIMEOUT / _MIN_RATE reach the same checks as the flags."""
    from synckit import make_hub

    h = make_hub(tmp_path)
    monkeypatch.setenv("WARDCRF_HUB_BODY_IDLE_TIMEOUT", "0")
    code, _out, err = run("hub", "serve", "-d", str(h.data_dir), monkeypatch=monkeypatch)
    assert code == 2 and "--body-idle-timeout 0" in err, err


# -- the ASGI app ------------------------------------------------------------------------------


def _stalling_push(app, name: str, sig: bytes, pieces: list[bytes], length: int) -> tuple[int, dict]:
    """POST `pieces`, then nothing more: the client keeps the connection open and sends no byte."""
    sent = 0
    status, body = 0, b""

    async def receive():
        nonlocal sent
        if sent < len(pieces):
            sent += 1
            return {"type": "http.request", "body": pieces[sent - 1], "more_body": True}
        await asyncio.Event().wait()  # stalled: only the server's timeout ends this

    async def send(message):
        nonlocal status, body
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body":
            body += message.get("body", b"")

    headers = [(b"x-wardcrf-minisig", base64.b64encode(sig)), (b"content-length", str(length).encode())]
    path = f"/v1/bundles/{name}"
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
        "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "", "headers": headers,
        "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 8765),
    }  # fmt: skip
    asyncio.run(app(scope, receive, send))
    return status, json.loads(body) if body else {}


@pytest.mark.parametrize("after", [0, 3])
def test_a_body_that_stops_arriving_is_cut_after_the_idle_timeout(slow_hub, after: int) -> None:
    from wardcrf.sync import server

    h, hs, f, sig, keys = slow_hub
    data = f.read_bytes()
    app = server.app(hs, timeouts=server.BodyTimeouts(idle=0.2, min_rate=0))
    pieces = [data[i * 1000 : (i + 1) * 1000] for i in range(after)]
    status, answer = _stalling_push(app, f.name, sig, pieces, len(data))
    assert status == 408, answer
    assert "stopped arriving" in answer["error"] and f"after {after * 1000} bytes" in answer["error"]
    assert "--body-idle-timeout" in answer["error"] and "nothing kept" in answer["error"]
    assert _incoming(h) == []
    nothing_applied(h, keys.device)


def _paced_push(app, name: str, sig: bytes, data: bytes, piece: int, pause: float) -> tuple[int, dict]:
    """POST `data` in pieces of `piece` bytes, each after a pause of `pause` seconds (the client's pace)."""
    offset = 0
    status, body = 0, b""

    async def receive():
        nonlocal offset
        if offset >= len(data):
            return {"type": "http.request", "body": b"", "more_body": False}
        await asyncio.sleep(pause)
        chunk = data[offset : offset + piece]
        offset += len(chunk)
        return {"type": "http.request", "body": chunk, "more_body": True}

    async def send(message):
        nonlocal status, body
        if message["type"] == "http.response.start":
            status = message["status"]
        elif message["type"] == "http.response.body":
            body += message.get("body", b"")

    headers = [(b"x-wardcrf-minisig", base64.b64encode(sig)), (b"content-length", str(len(data)).encode())]
    path = f"/v1/bundles/{name}"
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST", "scheme": "http",
        "path": path, "raw_path": path.encode(), "query_string": b"", "root_path": "", "headers": headers,
        "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 8765),
    }  # fmt: skip
    asyncio.run(app(scope, receive, send))
    return status, json.loads(body) if body else {}


def test_a_body_trickled_a_byte_at_a_time_is_cut_by_the_minimum_rate(slow_hub) -> None:
    """Each byte comes far inside the idle timeout, so only the rate rule can end it."""
    from wardcrf.sync import server

    h, hs, f, sig, keys = slow_hub
    data = f.read_bytes()
    app = server.app(hs, timeouts=server.BodyTimeouts(idle=1.0, min_rate=1_000_000))
    status, answer = _paced_push(app, f.name, sig, data, piece=1, pause=0.002)
    assert status == 408, answer
    assert "arrived too slowly" in answer["error"] and "--body-min-rate" in answer["error"]
    assert _incoming(h) == []
    nothing_applied(h, keys.device)


def test_a_slow_but_steady_body_is_applied(slow_hub) -> None:
    """Pauses between pieces far under the idle timeout, a rate far over the minimum: applied whole."""
    from wardcrf.sync import server

    h, hs, f, sig, keys = slow_hub
    data = f.read_bytes()
    app = server.app(hs, timeouts=server.BodyTimeouts(idle=30.0, min_rate=1024))
    status, answer = _paced_push(app, f.name, sig, data, piece=64 * 1024, pause=0.005)
    assert status == 200 and answer["status"] == "applied", answer
    with ledger(h) as (_s, held):
        assert held.scalar("SELECT count(*) FROM sync_applied WHERE device = ?", (keys.device,)) == 1
    assert _incoming(h) == []


# -- a real server, a raw socket ---------------------------------------------------------------


def _answer(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (bounded by the socket's timeout)."""
    reply = b""
    try:
        while piece := sock.recv(65536):
            reply += piece
    except ConnectionResetError:
        pass  # the server reset the connection after its answer (bytes sent after it closed)
    return reply


def _status_and_error(reply: bytes) -> tuple[int, str]:
    head, _, body = reply.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body)["error"]


def _headers(f: Path, sig: bytes, length: int) -> bytes:
    return (
        f"POST /v1/bundles/{f.name} HTTP/1.1\r\nHost: hub\r\nContent-Length: {length}\r\n".encode()
        + b"X-Wardcrf-Minisig: "
        + base64.b64encode(sig)
        + b"\r\n\r\n"
    )


@pytest.mark.usefixtures("hub_engine")
def test_a_real_server_cuts_a_socket_that_stops_sending(photo_bundle) -> None:  # noqa: F811
    from synckit import HubServer

    h, f, _photos, keys = photo_bundle
    data, sig = f.read_bytes(), f.with_name(f.name + ".minisig").read_bytes()
    server = HubServer(h.data_dir, "--body-idle-timeout", "0.3", "--body-min-rate", "0")
    try:
        with socket.create_connection(("127.0.0.1", server.port), timeout=60) as sock:
            sock.sendall(_headers(f, sig, len(data)) + data[:10])
            status, error = _status_and_error(_answer(sock))  # the server answers, then closes
        assert status == 408 and "stopped arriving" in error and "after 10 bytes" in error, error
        assert _incoming(h) == []
    finally:
        server.stop()
    nothing_applied(h, keys.device)


@pytest.mark.usefixtures("hub_engine")
def test_a_real_server_cuts_a_socket_that_sends_a_byte_at_a_time(photo_bundle) -> None:  # noqa: F811
    from synckit import HubServer

    h, f, _photos, keys = photo_bundle
    data, sig = f.read_bytes(), f.with_name(f.name + ".minisig").read_bytes()
    server = HubServer(h.data_dir, "--body-idle-timeout", "1", "--body-min-rate", "1000000")
    try:
        with socket.create_connection(("127.0.0.1", server.port), timeout=60) as sock:
            sock.sendall(_headers(f, sig, len(data)))
            sent = 0
            # One byte, a short pause, until the server answers (it must, long before the body is sent).
            while sent < len(data) and not select.select([sock], [], [], 0)[0]:
                try:
                    sock.sendall(data[sent : sent + 1])
                except OSError:
                    break  # the server answered and closed between two bytes
                sent += 1
                time.sleep(0.005)
            assert sent < len(data), "the server let the whole body trickle in"
            status, error = _status_and_error(_answer(sock))
        assert status == 408 and "arrived too slowly" in error and "--body-min-rate" in error, error
        assert _incoming(h) == []
    finally:
        server.stop()
    nothing_applied(h, keys.device)
