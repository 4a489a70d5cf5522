"""The hub re-encrypts a kept bundle for a replacement laptop as a stream: never the bundle in memory.

Peak memory is traced Python allocations (`tracemalloc`); the bundle is the
photo-heavy one of test_sync_streaming (five photos of about 1.1 MB).
"""

from __future__ import annotations

import asyncio
import base64
import tracemalloc
from pathlib import Path

import pytest
from synckit import card_of, connect, make_ward, open_
from test_sync_streaming import _resigned, photo_bundle  # noqa: F401  (fixture)

from wardcrf import devicekeys
from wardcrf.errors import Refused


@pytest.fixture
def kept(photo_bundle, tmp_path: Path):  # noqa: F811
    """(hub site, the ward's device, the kept bundle, a second laptop of the site registered at the hub)."""
    from wardcrf.sync import hub

    h, f, _photos, keys = photo_bundle
    hs = open_(h)
    try:
        assert hub.import_file(hs, f).outcome.status == "applied"
        (path,) = (h.data_dir / "sync" / "applied").glob("*.tar.age")
    finally:
        hs.close()
    new = make_ward(tmp_path, name="lap2")
    connect(new, h)
    return h, keys.device, path, new


def _plain(cipher: bytes, identity: str) -> bytes:
    from wardcrf.sync import bundle

    return bundle.decrypt(cipher, [identity], "t")


def _identity(site) -> str:
    s = open_(site)
    try:
        keys = devicekeys.load(s.store, s.ctx.device)
        assert keys is not None
        return keys.age_identity
    finally:
        s.close()


def test_hub_restore_export_holds_no_bundle_in_memory(kept, tmp_path: Path) -> None:
    """`hub export --restore` (USB): the kept bundle streams into its new encryption, then to its file."""
    from wardcrf.sync import hub, signing

    h, _device, path, new = kept
    size = path.stat().st_size
    bound = 2 * (1 << 20)  # the stream's pieces and hashing batches: a constant, not the bundle
    assert bound < 0.4 * size
    stick = tmp_path / "stick"
    hs = open_(h)
    try:
        tracemalloc.start()
        try:
            tracemalloc.reset_peak()
            files = hub.outbound_files(hs, card_of(new).device, stick, restore=True)
            _now, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        (restored,) = [f for f in files if f.parent.name == "restore"]
        hub_card = card_of(h)
    finally:
        hs.close()
    print(f"peak traced {peak} bytes, bound {bound}, bundle {size}")
    assert restored.name == path.name
    # The same archive, now for the new laptop, signed by the hub over what was written.
    assert _plain(restored.read_bytes(), _identity(new)) == _plain(path.read_bytes(), _identity(h))
    sig = restored.with_name(restored.name + ".minisig").read_bytes()
    signing.verify(hub_card.sign_public, restored.read_bytes(), sig, "restore")
    assert not list(stick.rglob(".*.tmp"))
    assert peak < bound, f"peak {peak} bytes traced re-encrypting a {size}-byte bundle"


def test_hub_restore_over_http_streams_the_same_archive(kept) -> None:
    from wardcrf.sync import server

    h, device, path, new = kept
    lap2 = card_of(new).device
    hs = open_(h)
    try:
        app = server.app(hs)
        status, headers, body = _get(app, f"/v1/devices/{lap2}/restore/{device}/1")
        hub_card = card_of(h)
    finally:
        hs.close()
    assert status == 200
    assert int(headers[b"content-length"]) == len(body)
    assert _plain(body, _identity(new)) == _plain(path.read_bytes(), _identity(h))
    from wardcrf.sync import signing

    sig = base64.b64decode(headers[b"x-wardcrf-minisig"])
    assert f"file={path.name}" in signing.verify(hub_card.sign_public, body, sig, "restore").trusted_comment
    assert not [p for p in (h.data_dir / "sync").iterdir() if p.is_file()]  # the temporary file is gone


def test_a_damaged_kept_bundle_is_refused_and_nothing_written(kept, tmp_path: Path) -> None:
    """A kept file damaged on the hub's disk: refused as before ("cannot decrypt"); no file on the stick."""
    from wardcrf.sync import hub

    h, _device, path, new = kept
    data = path.read_bytes()
    middle = len(data) // 2
    path.write_bytes(data[:middle] + bytes([data[middle] ^ 0x01]) + data[middle + 1 :])
    stick = tmp_path / "stick"
    hs = open_(h)
    try:
        with pytest.raises(Refused, match="cannot decrypt"):
            hub.outbound_files(hs, card_of(new).device, stick, restore=True)
    finally:
        hs.close()
    assert not [p for p in stick.rglob("*") if p.is_file()]


def _get(app, path: str) -> tuple[int, dict[bytes, bytes], bytes]:
    status, headers, body = 0, {}, b""

    asked = False

    async def receive():
        nonlocal asked
        if not asked:
            asked = True
            return {"type": "http.request", "body": b"", "more_body": False}
        await asyncio.Event().wait()  # the client stays until the response is sent

    async def send(message):
        nonlocal status, headers, body
        if message["type"] == "http.response.start":
            status = message["status"]
            headers = dict(message["headers"])
        elif message["type"] == "http.response.body":
            body += message.get("body", b"")

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": b"",
        "root_path": "",
        "headers": [],
        "client": ("127.0.0.1", 1),
        "server": ("127.0.0.1", 8765),
    }
    asyncio.run(app(scope, receive, send))
    return status, headers, body
