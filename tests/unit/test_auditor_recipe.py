"""The auditor's recipe (docs/verify-bundle.sh) catches every archive attack wardcrf refuses (issue 15, finding 7).

The published walk-through ran `tar -xf` on whatever the archive held: hard
and symbolic links, absolute paths, unlisted or non-whitelisted members, an
extra (listed, signed) photo, an 8 GiB sparse member and a gzip bomb that
GNU tar inflates by itself all passed or wrote to the auditor's disk, and a
broken chain needed Python. Each attack bundle here is signed with the
device's real key and encrypted to the auditor, so only the structural
checks can catch it; the script must refuse it with the reason, before
extracting anything, and wardcrf's own import must refuse it too.

At a SQLCipher hub and at a PostgreSQL one (`hub_engines.module_hub_engine`: the hub is made once per
engine): each attack bundle is sealed to the hub as well, and the hub's import refuses it whole, nothing
of the laptop applied, where the hub keeps it (its file, or its database); the genuine bundle applies.
"""

from __future__ import annotations

import gzip
import io
import json
import shutil
import subprocess
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from synckit import PASSWORD, add_notes, card_of, connect, make_hub, make_ward, open_
from wardcrf.sync import bundle, registry, signing, ward

from wardcrf import canonical, devicekeys, users
from wardcrf.errors import Refused

SCRIPT = Path(__file__).resolve().parents[2] / "docs" / "verify-bundle.sh"
pytestmark = pytest.mark.skipif(
    not (shutil.which("age") and shutil.which("minisign") and shutil.which("tar")),
    reason="Debian's age, minisign and GNU tar are needed (CI installs them)",
)


@pytest.fixture(scope="module")
def genuine(tmp_path_factory: pytest.TempPathFactory, module_hub_engine: str) -> dict[str, Any]:
    import pyrage
    from photo_samples import png_bytes

    root = tmp_path_factory.mktemp(f"recipe-{module_hub_engine}")
    h = make_hub(root)
    w = make_ward(root)
    connect(w, h)
    auditor = pyrage.x25519.Identity.generate()
    (root / "auditor.key").write_text(str(auditor) + "\n")
    s = open_(w)
    try:
        registry.add_recipient(s, str(auditor.to_public()), "auditor")
        users.add_user(s, "coord", "Co Ordinator", "coordinator", PASSWORD)
        secret = devicekeys.signer(s).minisign_secret
    finally:
        s.close()
    c = open_(w, "coord")
    try:
        from wardcrf.photos import importing

        # A photo, so the genuine bundle carries a photos/ member as real ones do.
        (root / "p.png").write_bytes(png_bytes(seed=3, size=(32, 24)))
        importing.import_photo(c, root / "p.png")
    finally:
        c.close()
    add_notes(w, 3)
    (root / "usb").mkdir()
    s = open_(w)
    try:
        (f,) = ward.export(s, root / "usb").files
    finally:
        s.close()
    (root / "lap1.card").write_text(card_of(w).text())
    plain = bundle.decrypt(f.read_bytes(), [str(auditor)], f.name)
    members = {k: bytes(v) for k, v in bundle.read_archive(plain, f.name).items()}
    return {
        "root": root,
        "file": f,
        "members": members,
        "secret": secret,
        "recipient": str(auditor.to_public()),
        "hub": h,
        "hub_recipient": card_of(h).age_recipient,
        "device": card_of(w).device,
    }


def hub_import(g: dict[str, Any], f: Path) -> list[str]:
    """`hub import` of one bundle file at the genuine bundle's hub: its status, or `refused: why`."""
    from wardcrf.sync import hub

    s = open_(g["hub"])
    try:
        return [
            i.result.outcome.status if i.result else f"refused: {i.refused}" for i in hub.import_files(s, [f])
        ]
    finally:
        s.close()


def recipe(g: dict[str, Any], f: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", str(SCRIPT), str(f), str(g["root"] / "lap1.card"), str(g["root"] / "auditor.key")],
        capture_output=True,
        text=True,
        timeout=120,
    )


def seal(g: dict[str, Any], tar_bytes: bytes, name: str) -> Path:
    """Encrypt to the auditor and the hub, and sign the outer layer with the device's real key."""
    cipher = bundle.encrypt(tar_bytes, [g["recipient"], g["hub_recipient"]])
    manifest_sha = bundle.sha256(g["members"][bundle.MANIFEST])
    out = g["root"] / "attacks" / name
    out.mkdir(parents=True, exist_ok=True)
    f = out / g["file"].name
    f.write_bytes(cipher)
    sig = signing.sign(g["secret"], cipher, f"{bundle.FORMAT} file={f.name} manifest={manifest_sha}")
    f.with_name(f.name + ".minisig").write_bytes(sig)
    return f


def resign(
    g: dict[str, Any], members: dict[str, bytes], listed: dict[str, bytes] | None = None
) -> dict[str, bytes]:
    """SHA256SUMS over `listed` (default: every member but the sums) and its signature, by the device."""
    listed = (
        listed if listed is not None else {k: v for k, v in members.items() if not k.startswith("SHA256SUMS")}
    )
    sums = "".join(f"{bundle.sha256(v)}  {k}\n" for k, v in sorted(listed.items())).encode()
    m = json.loads(members[bundle.MANIFEST])
    comment = bundle.trusted_comment(m, bundle.sha256(members[bundle.MANIFEST]))
    return {**members, bundle.SUMS: sums, bundle.SUMS_SIG: signing.sign(g["secret"], sums, comment)}


def tar_of(entries: list[tuple[str, bytes | None, Callable[[tarfile.TarInfo], None] | None]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for name, data, tweak in entries:
            info = tarfile.TarInfo(name)
            info.size = len(data or b"")
            if tweak:
                tweak(info)
            tar.addfile(info, io.BytesIO(data) if data is not None and info.isreg() else None)
    return buf.getvalue()


def plain_entries(members: dict[str, bytes]) -> list[tuple[str, bytes | None, Any]]:
    return [(k, v, None) for k, v in members.items()]


def attack_hardlink(g: dict[str, Any]) -> bytes:
    def link(info: tarfile.TarInfo) -> None:
        info.type, info.linkname, info.size = tarfile.LNKTYPE, "/etc/passwd", 0

    return tar_of([*plain_entries(g["members"]), ("photos/" + "a" * 64 + ".png", None, link)])


def attack_symlink(g: dict[str, Any]) -> bytes:
    def link(info: tarfile.TarInfo) -> None:
        info.type, info.linkname, info.size = tarfile.SYMTYPE, "/etc", 0

    entries = plain_entries(g["members"])
    return tar_of([("evidence", None, link), *entries])


def attack_absolute(g: dict[str, Any]) -> bytes:
    return tar_of([*plain_entries(g["members"]), ("/tmp/wardcrf-recipe-absolute", b"owned\n", None)])


def attack_unlisted(g: dict[str, Any]) -> bytes:
    # A whitelisted name, carried but not in SHA256SUMS.
    data = b"not listed anywhere"
    return tar_of([*plain_entries(g["members"]), (f"evidence/{bundle.sha256(data)}.txt", data, None)])


def attack_not_whitelisted(g: dict[str, Any]) -> bytes:
    # Listed in SHA256SUMS and signed by the device, but not a bundle member's name.
    members = {**g["members"], "notes.txt": b"hello auditor\n"}
    return tar_of(plain_entries(resign(g, members)))


def attack_extra_photo(g: dict[str, Any]) -> bytes:
    # A second photo, named by its SHA-256, in the manifest and in SHA256SUMS, all signed; no event cites it.
    from photo_samples import png_bytes

    data = png_bytes(seed=9, size=(16, 16))
    digest = bundle.sha256(data)
    m = json.loads(g["members"][bundle.MANIFEST])
    m["photos"] = sorted([*m["photos"], digest])
    manifest = (canonical.dumps(m) + "\n").encode()
    members = {**g["members"], bundle.MANIFEST: manifest, f"photos/{digest}.png": data}
    return tar_of(plain_entries(resign(g, members)))


def attack_sparse(g: dict[str, Any]) -> bytes:
    # An 8 GiB sparse member: GNU tar stores a few blocks and writes 8 GiB when extracting.
    work = g["root"] / "sparse-src"
    shutil.rmtree(work, ignore_errors=True)
    (work / "photos").mkdir(parents=True)
    for k, v in g["members"].items():
        (work / k).parent.mkdir(parents=True, exist_ok=True)
        (work / k).write_bytes(v)
    big = work / "photos" / ("b" * 64 + ".jpg")
    with open(big, "wb") as fh:
        fh.truncate(8 * 1024**3)
    out = g["root"] / "sparse.tar"
    names = [*g["members"], f"photos/{big.name}"]
    subprocess.run(
        ["tar", "--format=posix", "--sparse", "-cf", str(out), "-C", str(work), *names], check=True
    )
    data = out.read_bytes()
    # The PAX format writes "ustar\0" too; keep it (the size check is what must catch it).
    return data


def attack_gzip_bomb(g: dict[str, Any]) -> bytes:
    # A gzip stream that inflates to a 64 MiB tar of zeros (GNU tar decompresses it unasked).
    zeros = tar_of(
        [*plain_entries(g["members"]), ("photos/" + "c" * 64 + ".jpg", bytes(64 * 1024 * 1024), None)]
    )
    return gzip.compress(zeros, compresslevel=9)


def attack_chain(g: dict[str, Any]) -> bytes:
    # The first event line removed and everything re-signed by the device: every member
    # matches SHA256SUMS, but the chain no longer starts at chain_first_prev.
    lines = g["members"][bundle.EVENTS].decode().split("\n")[:-1]
    events = ("\n".join(lines[1:]) + "\n").encode()
    return tar_of(plain_entries(resign(g, {**g["members"], bundle.EVENTS: events})))


ATTACKS: dict[str, tuple[Callable[[dict[str, Any]], bytes], str]] = {
    "hardlink": (attack_hardlink, "is a hard link"),
    "symlink": (attack_symlink, "is a symbolic link"),
    "absolute path": (attack_absolute, "tar warns about the archive|has an absolute path"),
    "unlisted member": (attack_unlisted, "SHA256SUMS does not list exactly the members present"),
    "non-whitelisted member": (attack_not_whitelisted, "notes.txt is not an allowed bundle member"),
    "extra listed photo": (attack_extra_photo, "is not cited by any event"),
    "8 GiB sparse member": (attack_sparse, "more than the archive's"),
    "gzip bomb": (attack_gzip_bomb, "gzip-compressed"),
    "chain": (attack_chain, "chain broken at event line 1"),
}


def test_the_recipe_passes_a_genuine_bundle(genuine) -> None:
    r = recipe(genuine, genuine["file"])
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.startswith("bundle OK: ") and "chain intact" in r.stdout


def test_the_hub_refuses_each_attack_whole_and_applies_the_genuine_bundle(genuine) -> None:
    """Sealed to the hub too, each attack bundle is refused by `hub import` (one reason, nothing of the
    laptop applied, on either engine); the genuine bundle then applies, and again is `already`."""
    from hub_engines import nothing_applied

    for attack, (make, _reason) in ATTACKS.items():
        f = seal(genuine, make(genuine), "hub-" + attack.replace(" ", "-"))
        (got,) = hub_import(genuine, f)
        assert got.startswith("refused: ") and "\n" not in got, (attack, got)
        nothing_applied(genuine["hub"], genuine["device"])
    assert hub_import(genuine, genuine["file"]) == ["applied"]
    assert hub_import(genuine, genuine["file"]) == ["already"]


@pytest.mark.parametrize("attack", list(ATTACKS))
def test_the_recipe_refuses_each_archive_attack_before_extracting(genuine, attack: str) -> None:
    import re

    make, reason = ATTACKS[attack]
    f = seal(genuine, make(genuine), attack.replace(" ", "-"))
    r = recipe(genuine, f)
    assert r.returncode == 1, (attack, r.stdout, r.stderr)
    assert r.stdout.startswith("REFUSED: ") and re.search(reason, r.stdout), (attack, r.stdout)
    assert len(r.stdout.strip().splitlines()) == 1
    assert not Path("/tmp/wardcrf-recipe-absolute").exists()
    # wardcrf's own verification refuses the same bundle (keys from the card, never the bundle).
    with pytest.raises(Refused):
        bundle.verify(f.read_bytes(), f.with_name(f.name + ".minisig").read_bytes(), _lookup(genuine),
                      [(genuine["root"] / "auditor.key").read_text().strip()], f.name)  # fmt: skip


def _lookup(g: dict[str, Any]) -> Callable[[str], bundle.Signer | None]:
    from wardcrf.sync.cards import Card

    card = Card.parse((g["root"] / "lap1.card").read_text())
    signer = bundle.Signer(card.device, card.site, card.sign_public, card.key_id)
    return lambda key_id: signer if key_id == card.key_id else None
