"""events.jsonl is read line by line from the decrypting stream: never whole, with the same limits and refusals.

Each bundle here is a real one (signed inside and out by a device key,
encrypted to the hub) whose events.jsonl is given as raw bytes, so lines
that are not UTF-8, too long, too many or unterminated can be tried. Memory
is traced Python allocations (`tracemalloc`).
"""

from __future__ import annotations

import dataclasses
import io
import json
import tarfile
import tracemalloc
from pathlib import Path

import pytest
from synckit import first_manifest
from wardcrf.sync import bundle, signing
from wardcrf.sync.bundle import Signer

from wardcrf import canonical, devicekeys, features
from wardcrf.errors import Refused


@pytest.fixture(autouse=True, scope="module")
def installed() -> None:
    features.install()


KEYS = devicekeys.generate("DEV00001")
HUB = devicekeys.generate("HUB00001")
SIGNER = Signer("DEV00001", "WUH01", KEYS.sign_public, KEYS.key_id)


def _chain(n: int, text=lambda seq: f"e{seq}") -> list[str]:
    lines, prev = [], canonical.GENESIS
    for seq in range(1, n + 1):
        fields = {
            "amends": None,
            "body": {"text": text(seq)},
            "device": "DEV00001",
            "hlc": f"{seq:015d}.00000",
            "id": f"DEV00001-{seq}",
            "protocol": None,
            "reason": None,
            "role": "admin",
            "seq": seq,
            "site": "WUH01",
            "subject": "site:WUH01",
            "ts": "2026-01-01T00:00:00.000Z",
            "type": "note.added",
            "tz": "+08:00",
            "user": "admin",
            "zone": "Asia/Shanghai",
        }
        line = canonical.event_line(prev, fields)
        lines.append(line)
        prev = canonical.line_hash(line)
    return lines


def _seal(events: bytes, count: int, chain_last: str) -> tuple[bytes, bytes]:
    """(ciphertext, outer signature) of a bundle whose events.jsonl is exactly `events`."""
    manifest = first_manifest(
        device="DEV00001", key_id=KEYS.key_id, recipients=[HUB.age_recipient], count=count, chain_last=chain_last
    )
    manifest_sha = bundle.sha256(manifest)
    sums = "".join(
        f"{bundle.sha256(data)}  {name}\n"
        for name, data in sorted({"manifest.json": manifest, "events.jsonl": events}.items())
    ).encode()
    sums_sig = signing.sign(KEYS.sign_secret, sums, bundle.trusted_comment(json.loads(manifest), manifest_sha))
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name, data in [("manifest.json", manifest), ("events.jsonl", events), ("SHA256SUMS", sums),
                           ("SHA256SUMS.minisig", sums_sig)]:  # fmt: skip
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    cipher = bundle.encrypt(buf.getvalue(), [HUB.age_recipient])
    sig = signing.sign(KEYS.sign_secret, cipher, f"wardbundle/1 file=x manifest={manifest_sha}")
    return cipher, sig


def _verify(cipher: bytes | Path, sig: bytes) -> bundle.Verified:
    return bundle.verify(cipher, sig, lambda k: SIGNER if k == KEYS.key_id else None, [HUB.age_identity])


def _lines_bundle(lines: list[str], events: bytes | None = None) -> tuple[bytes, bytes]:
    raw = events if events is not None else ("\n".join(lines) + "\n").encode()
    return _seal(raw, len(lines), canonical.line_hash(lines[-1]))


def test_a_good_bundle_reads_the_same_lines_and_events(tmp_path: Path) -> None:
    lines = _chain(50)
    cipher, sig = _lines_bundle(lines)
    f = tmp_path / "b.tar.age"
    f.write_bytes(cipher)
    v = _verify(f, sig)
    try:
        assert v.lines == lines
        assert [e.line for e in v.events] == lines and [e.seq for e in v.events] == list(range(1, 51))
        assert "events: 50 lines, seq 1-50, chain intact" in v.report
    finally:
        v.close()


def test_events_are_read_line_by_line_not_whole(tmp_path: Path) -> None:
    """Beyond what verify keeps (the lines and their parsed events), memory is a constant and a line.

    On main events.jsonl was held as bytes, then as text, then split: two or
    three copies of the member beside the lines kept.
    """
    lines = _chain(20_000, text=lambda seq: f"e{seq} " + "observation " * 20)
    cipher, sig = _lines_bundle(lines)
    events_size = sum(len(line) + 1 for line in lines)
    f = tmp_path / "b.tar.age"
    f.write_bytes(cipher)
    del cipher
    largest = max(len(line) for line in lines)
    bound = (1 << 20) + 4 * largest
    assert bound < 0.2 * events_size  # the bound means something: well below events.jsonl itself
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        v = _verify(f, sig)
        kept, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    try:
        assert len(v.lines) == 20_000
    finally:
        v.close()
    print(f"peak {peak}, kept {kept}, beyond {peak - kept}, events.jsonl {events_size}, bound {bound}")
    assert peak - kept < bound, (
        f"verify needed {peak - kept} bytes beyond the {kept} it keeps, for a {events_size}-byte events.jsonl"
    )


@pytest.fixture
def small_line_limit(monkeypatch):
    monkeypatch.setattr(bundle, "LIMITS", dataclasses.replace(bundle.LIMITS, event_line_bytes=1000))


def test_a_line_within_the_limit_in_characters_is_kept_as_before(small_line_limit) -> None:
    """The limit counts characters, as it did when the member was decoded whole: 600 'é' are 1,200 bytes."""
    lines = _chain(3, text=lambda seq: "é" * 600 if seq == 2 else "x")
    assert len(lines[1]) <= 1000 < len(lines[1].encode())
    v = _verify(*_lines_bundle(lines))
    assert v.lines == lines


@pytest.mark.parametrize("size", [1_500, 50_000])
def test_a_line_over_the_limit_is_refused_however_long(small_line_limit, size: int) -> None:
    """1,500 characters: read whole and refused as before; 50,000: past four times the limit in bytes, read
    through without being kept, refused with the same line."""
    lines = _chain(3, text=lambda seq: "x" * size if seq == 2 else "x")
    with pytest.raises(Refused, match="event line 2 is larger than 1000 bytes"):
        _verify(*_lines_bundle(lines))


def test_a_long_line_that_breaks_the_chain_is_refused_as_a_broken_chain(small_line_limit) -> None:
    lines = _chain(3, text=lambda seq: "x" * 50_000 if seq == 2 else "x")
    broken = lines[1].replace(lines[1][9:73], "0" * 64, 1)
    with pytest.raises(Refused, match="chain broken at line 2"):
        _verify(*_lines_bundle([lines[0], broken, lines[2]]))


def test_a_line_that_is_not_utf8_is_refused(small_line_limit) -> None:
    lines = _chain(3)
    raw = ("\n".join(lines) + "\n").encode().replace(b'"text":"e2"', b'"text":"e\xff"')
    with pytest.raises(Refused, match=r"events\.jsonl is not UTF-8"):
        _verify(*_lines_bundle(lines, raw))


def test_bad_utf8_inside_a_line_too_long_to_keep_is_still_found(small_line_limit) -> None:
    """Not UTF-8 is refused before a line's length, as when the member was decoded whole."""
    lines = _chain(3, text=lambda seq: "x" * 50_000 if seq == 2 else "x")
    raw = ("\n".join(lines) + "\n").encode().replace(b"xxxxxxxxxx", b"xxxxx\xe2\x82xxx", 3000)
    with pytest.raises(Refused, match=r"events\.jsonl is not UTF-8"):
        _verify(*_lines_bundle(lines, raw))


def test_an_unterminated_last_line_is_refused() -> None:
    lines = _chain(3)
    with pytest.raises(Refused, match="does not end with a newline"):
        _verify(*_lines_bundle(lines, "\n".join(lines).encode()))


def test_more_lines_than_the_limit_are_refused_before_the_chain_is_read(monkeypatch) -> None:
    monkeypatch.setattr(bundle, "LIMITS", dataclasses.replace(bundle.LIMITS, events=5))
    lines = _chain(8)
    with pytest.raises(Refused, match=r"events\.jsonl holds more than 5 events"):
        _verify(*_lines_bundle(lines))
    # A byte that is not UTF-8 after the limit is still found first, as before.
    raw = ("\n".join(lines) + "\n").encode().replace(b'"text":"e8"', b'"text":"e\xc0"')
    with pytest.raises(Refused, match="not UTF-8"):
        _verify(*_lines_bundle(lines, raw))


def test_a_count_that_differs_from_the_manifest_is_refused() -> None:
    lines = _chain(4)
    cipher, sig = _seal(("\n".join(lines[:3]) + "\n").encode(), 4, canonical.line_hash(lines[-1]))
    with pytest.raises(Refused, match=r"manifest says 4 events, events\.jsonl has 3"):
        _verify(cipher, sig)
