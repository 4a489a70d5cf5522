"""`hub serve` stops reading an oversize body as soon as it is oversize, chunked or not (issue 15, finding 4).

On main only a Content-Length header was compared with the limit: a chunked
600 MB body was read whole (server memory 85 MB -> 1.29 GB) before it was
refused. Measured here by what the server pulls, not by time: the ASGI app
is driven with a body that counts every byte taken from it, and a real
server is sent a chunked body over a socket while its memory is watched.
At a SQLCipher hub and at a PostgreSQL one (`hub_engines`): the limits
hold before anything is read from or written to where the hub keeps
the wards' data, and `hub serve` at a PostgreSQL hub opens its pool first.
"""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import pytest
from synckit import make_hub, open_, subprocess_env

CHUNK = 64 * 1024

pytestmark = pytest.mark.usefixtures("hub_engine")


def _run_push(app, headers: list[tuple[bytes, bytes]], total: int) -> tuple[int, int]:
    """POST a `total`-byte body to the app in CHUNK pieces; (status, bytes the app pulled)."""
    pulled = 0
    status = 0
    piece = b"\0" * CHUNK

    async def receive():
        nonlocal pulled
        if pulled >= total:
            return {"type": "http.disconnect"}
        n = min(CHUNK, total - pulled)
        pulled += n
        return {"type": "http.request", "body": piece[:n], "more_body": pulled < total}

    async def send(message):
        nonlocal status
        if message["type"] == "http.response.start":
            status = message["status"]

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/v1/bundles/WUH01-ABCDEFGH-000001.tar.age",
        "raw_path": b"/v1/bundles/WUH01-ABCDEFGH-000001.tar.age",
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 8765),
    }
    asyncio.run(app(scope, receive, send))
    return status, pulled


@pytest.fixture
def hub_app(tmp_path: Path):
    from wardcrf.sync import server

    h = make_hub(tmp_path)
    s = open_(h)
    try:
        yield server.app(s, max_body=1024 * 1024)
    finally:
        s.close()


SIG = (b"x-wardcrf-minisig", b"dW50cnVzdGVkIGNvbW1lbnQ=")


def test_a_chunked_oversize_body_is_refused_after_reading_at_most_the_limit(hub_app) -> None:
    status, pulled = _run_push(hub_app, [SIG, (b"transfer-encoding", b"chunked")], total=600 * 1024 * 1024)
    assert status == 413
    assert pulled <= 1024 * 1024 + CHUNK, f"read {pulled} bytes of a 600 MB body with a 1 MiB limit"


def test_a_body_that_lies_about_its_length_is_cut_at_the_limit(hub_app) -> None:
    status, pulled = _run_push(hub_app, [SIG, (b"content-length", b"1000")], total=600 * 1024 * 1024)
    assert status in (400, 413)
    assert pulled <= 1024 * 1024 + CHUNK


def test_a_declared_oversize_body_is_refused_before_reading(hub_app) -> None:
    status, pulled = _run_push(
        hub_app, [SIG, (b"content-length", str(600 * 1024 * 1024).encode())], total=600 * 1024 * 1024
    )
    assert status == 413 and pulled == 0


def test_a_body_within_the_limit_is_still_read_and_judged(hub_app) -> None:
    status, pulled = _run_push(hub_app, [SIG, (b"transfer-encoding", b"chunked")], total=200 * 1024)
    assert pulled == 200 * 1024
    assert status == 422  # not a bundle: refused by the checks, not by the size


def _rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def test_a_real_server_stops_a_chunked_upload_early(tmp_path: Path) -> None:
    """Over a socket: the server answers 413 and closes; the client could not send the 256 MiB,
    and the server's memory did not grow by the body."""
    import subprocess
    import sys

    from synckit import WARDCRF_MAIN, HubServer, free_port

    h = make_hub(tmp_path)
    server = HubServer.__new__(HubServer)
    server.port = free_port()
    server.url = f"http://127.0.0.1:{server.port}"
    server.proc = subprocess.Popen(
        [sys.executable, "-c", WARDCRF_MAIN, "hub", "serve", "--data-dir", str(h.data_dir),
         "--port", str(server.port), "--max-body-mb", "1"],
        env=subprocess_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        server.wait_ready()
        before = _rss_kib(server.proc.pid)
        total, sent = 256 * 1024 * 1024, 0
        chunk = b"%x\r\n" % CHUNK + b"\0" * CHUNK + b"\r\n"
        with socket.create_connection(("127.0.0.1", server.port), timeout=30) as sock:
            sock.sendall(
                b"POST /v1/bundles/WUH01-ABCDEFGH-000001.tar.age HTTP/1.1\r\nHost: hub\r\n"
                b"X-Wardcrf-Minisig: eA==\r\nTransfer-Encoding: chunked\r\n\r\n"
            )
            try:
                while sent < total:
                    sock.sendall(chunk)
                    sent += CHUNK
            except OSError:
                pass  # the server closed the connection (or stopped reading): what we want
            sock.settimeout(10)
            reply = b""
            with __import__("contextlib").suppress(OSError):
                reply = sock.recv(4096)
        grown = _rss_kib(server.proc.pid) - before
        print(f"sent {sent} bytes before the server closed; server RSS grew {grown} KiB")
        assert sent < 64 * 1024 * 1024, f"the server accepted {sent} bytes of a body over its 1 MiB limit"
        assert reply == b"" or reply.startswith(b"HTTP/1.1 413"), reply[:200]
        assert grown < 32 * 1024, f"server memory grew by {grown} KiB"
    finally:
        server.stop()
