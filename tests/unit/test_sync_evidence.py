"""Cold-chain logger files travel with the events that cite them: ward -> hub -> replacement laptop.

The hub tests (those on `ward_export`) run at a SQLCipher hub and at a PostgreSQL one (`hub_engines`): the
logger files and the wards' events are read where the hub keeps them (`hub_engines.ledger`), and the hub is
audited as `audit verify` audits it (its file, and its database's logger files and chains).
"""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
from datetime import datetime
from pathlib import Path

import pytest
from hub_engines import ledger
from synckit import PASSWORD, card_of, connect, make_hub, make_ward, open_
from test_sync_roundtrip import export, hub_import
from wardcrf.sync import bundle, hub, registry, restore, signing

from wardcrf import audit, devicekeys, users
from wardcrf.coldchain import evidence, samples, services
from wardcrf.errors import Refused
from wardcrf.site import Site

T0 = datetime(2020, 3, 15, 8, 0)


def _logger_import(w: Site, tmp_path: Path) -> str:
    """A pharmacist registers a freezer and imports its logger file; returns the file's SHA-256."""
    a = open_(w)
    users.add_user(a, "pharmacist", "Pha Rmacist", "pharmacist", PASSWORD)
    a.close()
    p = open_(w, "pharmacist")
    try:
        services.add_unit(p, "FRZ-1", name="freezer", location="ward 3")
        raw = samples.fridgetag(samples.series(T0, 5, [-20.0] * 120))
        path = tmp_path / "frz.txt"
        path.write_bytes(raw)
        services.import_logger(p, path, "FRZ-1")
        return evidence.sha256_hex(raw)
    finally:
        p.close()


def _problems(site: Site) -> list[str]:
    s = open_(site)
    try:
        return audit.verify(s).problems
    finally:
        s.close()


@pytest.fixture
def ward_export(tmp_path: Path, hub_engine: str):
    h = make_hub(tmp_path)
    w = make_ward(tmp_path)
    connect(w, h)
    digest = _logger_import(w, tmp_path)
    files = export(w, tmp_path / "usb")
    assert len(files) == 1
    return w, h, digest, files[0]


def test_logger_file_round_trips_and_hub_audit_passes(ward_export, tmp_path: Path) -> None:
    w, h, digest, f = ward_export
    hs = open_(h)
    try:
        v = hub.verify(hs.store, f.read_bytes(), f.with_name(f.name + ".minisig").read_bytes())
    finally:
        hs.close()
    assert list(v.evidence) == [digest]
    assert v.manifest["evidence"] == [digest]
    assert v.evidence[digest][0] == "frz.txt"
    assert hub_import(h, f).outcome.status == "applied"
    with ledger(h) as (_hs, held):
        assert evidence.status(held, digest) == "ok"
        assert held.scalar("SELECT name FROM cc_evidence WHERE sha256 = ?", (digest,)) == "frz.txt"
    assert _problems(h) == []
    # A replacement laptop restored from the hub gets the file back too.
    old_device = card_of(w).device
    res, card = restore.provision(
        tmp_path / "new",
        site="WUH01",
        device_name="lap1b",
        admin="admin",
        password=PASSWORD,
        hub_card=card_of(h),
    )
    hs = open_(h)
    registry.register_device(hs, card, replaces=old_device)
    stick = tmp_path / "stick"
    stick.mkdir()
    hub.outbound_files(hs, card.device, stick, restore=True)
    hs.close()
    s = Site.open(res.site.data_dir).unlock("admin", PASSWORD)
    try:
        restore.complete(s, from_dir=stick)
        assert evidence.read(s.store, digest)
        assert audit.verify_store(s.store).problems == []
    finally:
        s.close()


def _reseal(h: Site, w: Site, f: Path, edit) -> Path:
    """Decrypt the ward's bundle with the hub's identity, let `edit` change the archive, re-sign, re-encrypt."""
    hs = open_(h)
    try:
        ident = devicekeys.load(hs.store, hs.ctx.device).age_identity  # type: ignore[union-attr]
    finally:
        hs.close()
    plain = bundle.decrypt(f.read_bytes(), [ident], "test")
    members: dict[str, bytes] = {}
    with tarfile.open(fileobj=io.BytesIO(plain)) as tar:
        for info in tar.getmembers():
            members[info.name] = tar.extractfile(info).read()  # type: ignore[union-attr]
    s = open_(w)
    try:
        # A key holder re-signing (a role that may sign for the device).
        secret = devicekeys.signer(s).minisign_secret
    finally:
        s.close()
    edit(members)
    sums = "".join(
        f"{bundle.sha256(d)}  {n}\n"
        for n, d in sorted(members.items())
        if n not in (bundle.SUMS, bundle.SUMS_SIG)
    ).encode()
    old_comment = signing.parse(members[bundle.SUMS_SIG], "t").trusted_comment
    members[bundle.SUMS] = sums
    members[bundle.SUMS_SIG] = signing.sign(secret, sums, old_comment)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for n, d in members.items():
            info = tarfile.TarInfo(n)
            info.size = len(d)
            tar.addfile(info, io.BytesIO(d))
    m = json.loads(members[bundle.MANIFEST])
    cipher = bundle.encrypt(buf.getvalue(), m["recipients"])
    out = f.parent / "tampered" / f.name
    out.parent.mkdir(exist_ok=True)
    out.write_bytes(cipher)
    digest = hashlib.blake2b(cipher).digest()
    name = f.name
    sig = signing.sign_digest(
        secret,
        digest,
        f"{bundle.FORMAT} file={name} manifest={bundle.sha256(members[bundle.MANIFEST])}",
    )
    out.with_name(out.name + ".minisig").write_bytes(sig)
    return out


def _refused_whole(h: Site, w: Site, path: Path, match: str) -> None:
    device = card_of(w).device
    with pytest.raises(Refused, match=match):
        hub_import(h, path)
    with ledger(h) as (_hs, held):
        assert held.scalar("SELECT count(*) FROM events WHERE device = ?", (device,)) == 0
        assert held.scalar("SELECT count(*) FROM cc_evidence") == 0


def test_missing_logger_file_refuses_the_whole_bundle(ward_export) -> None:
    w, h, digest, f = ward_export
    name = f"evidence/{digest}.txt"

    def drop(members: dict[str, bytes]) -> None:
        del members[name]

    _refused_whole(h, w, _reseal(h, w, f, drop), "logger-file members differ")


def test_missing_logger_file_and_manifest_entry_refuses(ward_export) -> None:
    w, h, digest, f = ward_export

    def drop_both(members: dict[str, bytes]) -> None:
        del members[f"evidence/{digest}.txt"]
        m = json.loads(members[bundle.MANIFEST])
        del m["evidence"]
        members[bundle.MANIFEST] = (bundle.canonical.dumps(m) + "\n").encode()

    # The trusted comment binds the manifest hash, so this fails there; a
    # bundle whose manifest was made without the file fails on the citation.
    with pytest.raises(Refused):
        hub_import(h, _reseal(h, w, f, drop_both))
    lines = [ln for ln in _events(h, w, f) if "coldchain.logger_imported" in ln]
    assert bundle.evidence_refs(lines) == {digest: "frz.txt"}
    members = {bundle.SUMS: b"", bundle.SUMS_SIG: b""}
    with pytest.raises(Refused, match="cite logger file"):
        bundle._check_evidence(members, {}, lines, {}, "bundle")


def _events(h: Site, w: Site, f: Path) -> list[str]:
    hs = open_(h)
    try:
        v = hub.verify(hs.store, f.read_bytes(), f.with_name(f.name + ".minisig").read_bytes())
    finally:
        hs.close()
    return v.lines


def test_tampered_logger_file_refuses_the_whole_bundle(ward_export) -> None:
    w, h, digest, f = ward_export
    name = f"evidence/{digest}.txt"

    def tamper(members: dict[str, bytes]) -> None:
        members[name] = members[name].replace(b"-20.0", b"-21.0", 1)

    _refused_whole(h, w, _reseal(h, w, f, tamper), "not named by the SHA-256")


def test_unsafe_evidence_member_names_are_refused() -> None:
    for bad in (
        f"evidence/{'a' * 64}.TXT",
        "evidence/x.txt",
        f"evidence/sub/{'a' * 64}.txt",
        f"evidence/{'a' * 64}",
    ):
        buf = io.BytesIO()
        with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
            info = tarfile.TarInfo(bad)
            info.size = 1
            tar.addfile(info, io.BytesIO(b"x"))
        with pytest.raises(Refused, match="not an allowed bundle member"):
            bundle.read_archive(buf.getvalue(), "bundle")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        info = tarfile.TarInfo(f"evidence/{'a' * 64}.txt")
        info.type = tarfile.SYMTYPE
        info.linkname = "/etc/passwd"
        tar.addfile(info)
    with pytest.raises(Refused, match="is a link"):
        bundle.read_archive(buf.getvalue(), "bundle")
    good = io.BytesIO()
    with tarfile.open(fileobj=good, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        info = tarfile.TarInfo(f"evidence/{'a' * 64}.txt")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"x"))
    assert list(bundle.read_archive(good.getvalue(), "bundle")) == [f"evidence/{'a' * 64}.txt"]


def test_evidence_extension_is_plain_or_bin() -> None:
    assert bundle.evidence_ext("FRZ.TXT") == "txt"
    assert bundle.evidence_ext("log.csv") == "csv"
    assert bundle.evidence_ext("weird name") == "bin"
    assert bundle.evidence_ext("a.t x") == "bin"
