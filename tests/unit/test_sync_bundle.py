"""wardbundle/1 verification: every refusal names its reason, and Debian's tools agree."""

from __future__ import annotations

import io
import itertools
import json
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest
from synckit import first_manifest
from wardcrf.sync import bundle, signing
from wardcrf.sync.bundle import Signer

from wardcrf import canonical, devicekeys, features
from wardcrf.errors import Refused


@pytest.fixture(autouse=True, scope="module")
def installed() -> None:
    """No site is opened here: the features say which events carry photos (`wardcrf.carried`)."""
    features.install()


PNG = bytes.fromhex("89504e470d0a1a0a") + b"fake-but-hashed-png-bytes"


def _chain(device: str, n: int, *, photo: str | None = None) -> list[str]:
    lines, prev = [], canonical.GENESIS
    for seq in range(1, n + 1):
        body = {"text": f"e{seq}"}
        if photo and seq == n:
            body = {"form": "consent", "data": {"photo": [f"sha256:{photo}"]}}
        fields = {
            "amends": None,
            "body": body,
            "device": device,
            "hlc": f"{seq:015d}.00000",
            "id": f"{device}-{seq}",
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


@pytest.fixture(scope="module")
def kit():
    keys = devicekeys.generate("DEV00001")
    hub = devicekeys.generate("HUB00001")
    digest = bundle.sha256(PNG)
    lines = _chain("DEV00001", 4, photo=digest)
    manifest = first_manifest(
        device="DEV00001",
        key_id=keys.key_id,
        recipients=[hub.age_recipient],
        count=4,
        chain_last=canonical.line_hash(lines[-1]),
        photos=(digest,),
    )
    photos = {digest: ("png", PNG)}
    name, cipher, sig = bundle.seal(manifest, lines, photos, keys.sign_secret)
    signer = Signer("DEV00001", "WUH01", keys.sign_public, keys.key_id)
    return {
        "keys": keys,
        "hub": hub,
        "lines": lines,
        "manifest": manifest,
        "photos": photos,
        "name": name,
        "cipher": cipher,
        "sig": sig,
        "signer": signer,
    }


def _verify(kit, cipher=None, sig=None, identity=None):
    def lookup(key_id):
        return kit["signer"] if key_id == kit["signer"].key_id else None

    return bundle.verify(
        cipher if cipher is not None else kit["cipher"],
        sig if sig is not None else kit["sig"],
        lookup,
        [identity or kit["hub"].age_identity],
    )


def _reseal(kit, members: list[tuple[tarfile.TarInfo, bytes | None]]) -> tuple[bytes, bytes]:
    """An archive with the given members, encrypted and signed with the real keys."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.GNU_FORMAT) as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    cipher = bundle.encrypt(buf.getvalue(), [kit["hub"].age_recipient])
    sig = signing.sign(
        kit["keys"].sign_secret, cipher, f"wardbundle/1 file=x manifest={bundle.sha256(kit['manifest'])}"
    )
    return cipher, sig


def _good_members(kit) -> list[tuple[tarfile.TarInfo, bytes | None]]:
    plain = bundle.decrypt(kit["cipher"], [kit["hub"].age_identity], "t")
    with tarfile.open(fileobj=io.BytesIO(plain)) as tar:
        return [(i, tar.extractfile(i).read()) for i in tar.getmembers()]


def _info(name: str, data: bytes = b"", type_=tarfile.REGTYPE, **kw) -> tuple[tarfile.TarInfo, bytes | None]:
    i = tarfile.TarInfo(name)
    i.type = type_
    i.size = len(data) if type_ == tarfile.REGTYPE else 0
    for k, v in kw.items():
        setattr(i, k, v)
    return i, (data if type_ == tarfile.REGTYPE else None)


def test_good_bundle_verifies_with_report(kit) -> None:
    v = _verify(kit)
    assert v.manifest["events"] == {"first": 1, "last": 4, "count": 4}
    assert list(v.photos) == [bundle.sha256(PNG)]
    assert any("chain intact" in r for r in v.report)


def test_bundle_is_deterministic_inside(kit) -> None:
    a = bundle.build_tar(kit["manifest"], kit["lines"], kit["photos"], kit["keys"].sign_secret)
    b = bundle.build_tar(kit["manifest"], kit["lines"], kit["photos"], kit["keys"].sign_secret)
    assert a == b


def test_empty_and_truncated_files_refused(kit) -> None:
    with pytest.raises(Refused, match="empty"):
        _verify(kit, cipher=b"")
    with pytest.raises(Refused, match="bad signature"):
        _verify(kit, cipher=kit["cipher"][: len(kit["cipher"]) // 2])
    with pytest.raises(Refused, match="signature file is empty"):
        _verify(kit, sig=b"")
    with pytest.raises(Refused, match="not a minisign signature"):
        _verify(kit, sig=kit["sig"][:40])


def test_truncated_ciphertext_with_valid_signature_refused(kit) -> None:
    cut = kit["cipher"][:-100]
    sig = signing.sign(kit["keys"].sign_secret, cut, "x")
    with pytest.raises(Refused, match="cannot decrypt"):
        _verify(kit, cipher=cut, sig=sig)


def test_wrong_age_identity_refused(kit) -> None:
    other = devicekeys.generate("OTHER001")
    with pytest.raises(Refused, match="not a recipient"):
        _verify(kit, identity=other.age_identity)


def test_unregistered_key_refused(kit) -> None:
    stranger = devicekeys.generate("STRANGER")
    sig = signing.sign(stranger.sign_secret, kit["cipher"], "x")
    with pytest.raises(Refused, match="unregistered key"):
        _verify(kit, sig=sig)


def test_legacy_non_prehashed_signature_refused(kit) -> None:
    import minisign

    sk = minisign.SecretKey.from_base64(kit["keys"].sign_secret)
    legacy = bytes(sk.sign(kit["cipher"], prehash=False, trusted_comment="x")) + b"\n"
    with pytest.raises(Refused, match="legacy"):
        _verify(kit, sig=legacy)


def test_tampered_ciphertext_refused(kit) -> None:
    c = bytearray(kit["cipher"])
    c[len(c) // 2] ^= 1
    with pytest.raises(Refused, match="bad signature"):
        _verify(kit, cipher=bytes(c))


@pytest.mark.parametrize(
    "member", ["manifest.json", "events.jsonl", "photos", "SHA256SUMS", "SHA256SUMS.minisig"]
)
def test_tampering_each_member_refused(kit, member: str) -> None:
    members = _good_members(kit)
    out = []
    for info, data in members:
        if info.name.startswith(member):
            data = data.replace(b"e2", b"e9") if member == "events.jsonl" else data[:-2] + b"x\n"
            info.size = len(data)
        out.append((info, data))
    cipher, sig = _reseal(kit, out)
    with pytest.raises(Refused) as exc:
        _verify(kit, cipher=cipher, sig=sig)
    assert any(
        w in str(exc.value)
        for w in ("does not match", "bad signature", "not a minisign", "malformed", "trusted comment")
    )


@pytest.mark.parametrize(
    ("extra", "reason"),
    [
        (_info("../evil.json", b"x"), "'..'"),
        (_info("/etc/evil", b"x"), "absolute path"),
        (_info("photos/link.png", type_=tarfile.SYMTYPE, linkname="/etc/passwd"), "link"),
        (_info("hard", type_=tarfile.LNKTYPE, linkname="manifest.json"), "link"),
        (_info("dev", type_=tarfile.CHRTYPE, devmajor=1, devminor=3), "device"),
        (_info("photos", type_=tarfile.DIRTYPE), "not a regular file"),
        (_info("notes.txt", b"hello"), "not an allowed bundle member"),
    ],
)
def test_unsafe_archive_members_refused(kit, extra, reason: str) -> None:
    cipher, sig = _reseal(kit, [*_good_members(kit), extra])
    with pytest.raises(Refused, match=reason):
        _verify(kit, cipher=cipher, sig=sig)


def test_unlisted_member_refused(kit) -> None:
    other = b"\x89PNG\r\n\x1a\nanother"
    cipher, sig = _reseal(kit, [*_good_members(kit), _info(f"photos/{bundle.sha256(other)}.png", other)])
    with pytest.raises(Refused, match="not listed in SHA256SUMS"):
        _verify(kit, cipher=cipher, sig=sig)


def test_member_declaring_more_bytes_than_archive_refused(kit) -> None:
    members = _good_members(kit)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data))
    raw = buf.getvalue()
    # Rewrite the last member's size field to claim 1 MiB, fixing the header checksum.
    last = raw.rfind(b"SHA256SUMS.minisig")
    header = bytearray(raw[last : last + 512])
    header[124:136] = b"%011o\0" % (1 << 20)
    header[148:156] = b" " * 8
    header[148:156] = b"%06o\0 " % sum(header)
    raw = raw[:last] + bytes(header) + raw[last + 512 :]
    raw = raw[: last + 512 + 300]  # the archive ends early
    cipher = bundle.encrypt(raw, [kit["hub"].age_recipient])
    sig = signing.sign(kit["keys"].sign_secret, cipher, "x")
    with pytest.raises(Refused, match=r"more than the archive holds|truncated"):
        _verify(kit, cipher=cipher, sig=sig)


def test_broken_chain_refused(kit) -> None:
    lines = list(kit["lines"])
    lines[1], lines[2] = lines[2], lines[1]
    tar = bundle.build_tar(kit["manifest"], lines, kit["photos"], kit["keys"].sign_secret)
    cipher = bundle.encrypt(tar, [kit["hub"].age_recipient])
    sig = signing.sign(kit["keys"].sign_secret, cipher, f"m manifest={bundle.sha256(kit['manifest'])}")
    with pytest.raises(Refused, match="chain broken"):
        _verify(kit, cipher=cipher, sig=sig)


def test_missing_photo_refused(kit) -> None:
    tar = bundle.build_tar(kit["manifest"], kit["lines"], {}, kit["keys"].sign_secret)
    cipher = bundle.encrypt(tar, [kit["hub"].age_recipient])
    sig = signing.sign(kit["keys"].sign_secret, cipher, f"m manifest={bundle.sha256(kit['manifest'])}")
    with pytest.raises(Refused, match="photo"):
        _verify(kit, cipher=cipher, sig=sig)


TOOLS = [t for t in ("age", "minisign", "sha256sum", "tar") if shutil.which(t) is None]


@pytest.mark.skipif(
    bool(TOOLS), reason=f"Debian tools absent: {', '.join(TOOLS)} (apt-get install age minisign)"
)
def test_debian_tools_verify_a_wardcrf_bundle(kit, tmp_path: Path) -> None:
    """The auditor's walk-through (docs/sync.md) with age, minisign -H, sha256sum and tar alone."""
    b = tmp_path / kit["name"]
    b.write_bytes(kit["cipher"])
    (tmp_path / (kit["name"] + ".minisig")).write_bytes(kit["sig"])
    (tmp_path / "hub.key").write_text(kit["hub"].age_identity + "\n")
    pub = kit["keys"].sign_public

    def run(*cmd: str, cwd: Path = tmp_path) -> str:
        r = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=60)
        assert r.returncode == 0, (cmd, r.stdout, r.stderr)
        return r.stdout

    run("minisign", "-Vm", str(b), "-P", pub, "-H")
    run("age", "-d", "-i", "hub.key", "-o", "bundle.tar", str(b))
    out = tmp_path / "x"
    out.mkdir()
    run("tar", "-xf", "../bundle.tar", cwd=out)
    assert sorted(p.name for p in out.iterdir()) == [
        "SHA256SUMS",
        "SHA256SUMS.minisig",
        "events.jsonl",
        "manifest.json",
        "photos",
    ]
    listing = run("tar", "-tvf", "bundle.tar")
    assert all(line.startswith("-") for line in listing.splitlines())
    trusted = run("minisign", "-Vm", "SHA256SUMS", "-x", "SHA256SUMS.minisig", "-P", pub, "-H", cwd=out)
    m = json.loads((out / "manifest.json").read_bytes())
    assert f"manifest={bundle.sha256((out / 'manifest.json').read_bytes())}" in trusted
    assert f"last={m['chain_last']}" in trusted
    run("sha256sum", "-c", "--strict", "SHA256SUMS", cwd=out)
    # The chain: each line's prev is the SHA-256 of the line before.
    lines = (out / "events.jsonl").read_bytes().split(b"\n")[:-1]
    for a, b_ in itertools.pairwise(lines):
        assert b_.startswith(b'{"prev":"' + bundle.sha256(a).encode() + b'",')
    # A tampered member fails sha256sum -c, and a legacy check without -H is not what we sign.
    (out / "events.jsonl").write_bytes(b"x" + (out / "events.jsonl").read_bytes())
    r = subprocess.run(["sha256sum", "-c", "SHA256SUMS"], cwd=out, capture_output=True, timeout=60)
    assert r.returncode != 0


def test_streamed_signature_equals_minisign_prehashed_signature(kit) -> None:
    import hashlib

    data = kit["cipher"]
    a = signing.sign(kit["keys"].sign_secret, data, "tc")
    b = signing.sign_digest(kit["keys"].sign_secret, hashlib.blake2b(data).digest(), "tc")
    assert a == b


def test_archive_is_what_tarfile_writes(kit) -> None:
    plain = bundle.build_tar(kit["manifest"], kit["lines"], kit["photos"], kit["keys"].sign_secret)
    buf = io.BytesIO()
    with (
        tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as out,
        tarfile.open(fileobj=io.BytesIO(plain)) as src,
    ):
        for info in src.getmembers():
            out.addfile(info, src.extractfile(info))
    assert buf.getvalue() == plain
    assert len(plain) % tarfile.RECORDSIZE == 0


def test_card_parse_accepts_its_own_text_and_refuses_edits() -> None:
    from wardcrf.sync.cards import Card

    keys = devicekeys.generate("DEV00001")
    card = Card("ward", "WUH01", "DEV00001", "lap1", keys.key_id, keys.sign_public, keys.age_recipient)
    assert Card.parse(card.text()) == card
    with pytest.raises(Refused, match="does not match"):
        Card.parse(card.text().replace(keys.key_id, "0000000000000000"))
    with pytest.raises(Refused, match="fingerprint"):
        other = devicekeys.generate("X")
        Card.parse(card.text().replace(keys.age_recipient, other.age_recipient))
    with pytest.raises(Refused, match="site"):
        Card.parse(card.text().replace("site: WUH01", "site: ../etc"))
