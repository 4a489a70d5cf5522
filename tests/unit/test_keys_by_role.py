"""Keys by role (issue 15, finding 2): who a sign-in hands the database key and the signing key.

Before: every signed-in user, an auditor included, got the raw database key as
`session.key` and the device's minisign secret in clear from `devicekeys.load`.
Now the session object carries neither; the signing secret is sealed in the
database under a key that only the key slots of roles that export carry, and
`devicekeys.signer` hands it to the export and sync services of those roles only.
"""

from __future__ import annotations

import base64
import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest
from conftest import PASSWORD
from synckit import add_notes, connect, make_hub, make_ward, open_
from wardcrf.sync import hub, signing, ward

from wardcrf import dbadmin, devicekeys, roles, users
from wardcrf.errors import PermissionDenied, Refused
from wardcrf.keyslots import KeySlots
from wardcrf.recovery import reset_password_with_recovery_key
from wardcrf.site import Site
from wardcrf.store import Store


def _reachable(root: object) -> list[object]:
    """Every object reachable from `root` through instance attributes and containers."""
    seen: set[int] = set()
    out: list[object] = []
    todo = [root]
    while todo:
        obj = todo.pop()
        if id(obj) in seen or isinstance(obj, type) or (callable(obj) and not hasattr(obj, "__dict__")):
            continue
        seen.add(id(obj))
        out.append(obj)
        if isinstance(obj, str | bytes | int | float | bool | type(None)):
            continue
        if isinstance(obj, dict):
            todo.extend(obj.keys())
            todo.extend(obj.values())
        elif isinstance(obj, list | tuple | set | frozenset):
            todo.extend(obj)
        if hasattr(obj, "__dict__") and not isinstance(obj, type):
            todo.extend(vars(obj).values())
        for slot in getattr(type(obj), "__slots__", ()):
            if hasattr(obj, slot):
                todo.append(getattr(obj, slot))
    return out


def _sign(signer: devicekeys.DeviceSigner, data: bytes = b"data") -> bytes:
    """Sign as the device and check the signature against the device's public key."""
    sig = signing.sign(signer.minisign_secret, data, "test")
    signing.verify(signer.sign_public, data, sig, "test")
    return sig


def _database_key(site: Site) -> bytes:
    return KeySlots.load(site.data_dir).unwrap_with_recovery(site.recovery_key)  # type: ignore[attr-defined]


@pytest.mark.parametrize("role", ["auditor", "dsmg", "clinician", "coordinator", "admin"])
def test_a_session_object_carries_no_raw_database_key(site, session_for, role):
    key = _database_key(site)
    s = session_for("admin" if role == "admin" else role)
    assert not hasattr(s, "key")
    for obj in _reachable(s):
        if isinstance(obj, bytes):
            assert key not in obj
        elif isinstance(obj, str):
            assert key.hex() not in obj.lower()


def test_the_raw_key_is_disclosed_only_to_db_raw_key_and_logged(session_for, site):
    auditor = session_for("auditor")
    with pytest.raises(PermissionDenied, match="role auditor may not print the raw database key"):
        dbadmin.reveal_raw_key(auditor)
    admin = session_for("admin")
    assert dbadmin.reveal_raw_key(admin) == _database_key(site).hex()
    assert admin.store.scalar("SELECT type FROM events ORDER BY pos DESC LIMIT 1") == "db.raw_key_shown"


def test_the_device_signing_secret_is_sealed_inside_the_database(site, session_for):
    """An insider who opens the database with the raw key finds no usable signing secret."""
    import minisign

    s = session_for("auditor")
    device = s.ctx.device
    store = Store(site.db_path, _database_key(site))
    try:
        (stored,) = store.one("SELECT sign_secret FROM device_keys WHERE device = ?", (device,)) or ("",)
    finally:
        store.close()
    assert stored.startswith(devicekeys.SEALED_PREFIX)
    with pytest.raises(Exception):  # noqa: B017 - any failure: it is not a minisign secret key
        minisign.SecretKey.from_base64(stored)


@pytest.mark.parametrize("role", ["auditor", "dsmg"])
def test_roles_that_do_not_export_cannot_obtain_the_signing_secret(site, session_for, role):
    s = session_for(role)
    with pytest.raises(PermissionDenied, match=f"role {role} may not sign bundles as this device"):
        devicekeys.signer(s)
    # Not only refused by the API: their key slot does not carry the signing key at all,
    # so their password and Python together cannot unseal it either.
    slot = json.loads((site.data_dir / "keyslots.json").read_text())["slots"][f"user:{role}"]
    assert "signing" not in slot
    stored = devicekeys.load(s.store, s.ctx.device)
    assert stored is not None and "sign_secret" not in {f.name for f in dataclasses.fields(stored)}


@pytest.mark.parametrize("role", ["clinician", "investigator", "pharmacist", "coordinator", "admin"])
def test_roles_that_export_get_a_signer_and_it_signs_as_the_device(site, session_for, role):
    s = session_for(role)
    signer = devicekeys.signer(s)
    public = devicekeys.load(s.store, s.ctx.device)
    assert public is not None and signer.key_id == public.key_id
    sig = signing.sign(signer.minisign_secret, b"hello", "test comment")
    signing.verify(public.sign_public, b"hello", sig, "test")
    assert "secret" not in repr(signer).lower() or "withheld" in repr(signer)


def test_the_signing_roles_are_the_roles_that_export_or_run_a_hub():
    assert (
        roles.PERMISSIONS["device.sign"] == roles.PERMISSIONS["sync.export"] | roles.PERMISSIONS["hub.manage"]
    )


def test_a_new_user_of_an_exporting_role_can_sign_and_a_password_change_keeps_it(site, session_for):
    admin = session_for("admin")
    users.add_user(admin, "nurse2", "Nurse Two", "clinician", PASSWORD)
    users.add_user(admin, "monitor2", "Monitor Two", "auditor", PASSWORD)
    slots = json.loads((site.data_dir / "keyslots.json").read_text())["slots"]
    assert "signing" in slots["user:nurse2"] and "signing" not in slots["user:monitor2"]
    nurse = Site.open(site.data_dir).unlock("nurse2", PASSWORD)
    users.change_password(nurse, "nurse2", "another-password-2")
    nurse.close()
    users.change_password(admin, "nurse2", "third-password-3")
    again = Site.open(site.data_dir).unlock("nurse2", "third-password-3")
    try:
        _sign(devicekeys.signer(again))
    finally:
        again.close()


def test_the_recovery_key_keeps_the_signing_key(site):
    """Every password lost: the recovery key gives the admin back the device's signing key too."""
    reset_password_with_recovery_key(Site.open(site.data_dir), site.recovery_key, "admin", "recovered-pass-1")
    s = Site.open(site.data_dir).unlock("admin", "recovered-pass-1")
    try:
        _sign(devicekeys.signer(s))
    finally:
        s.close()


@pytest.mark.usefixtures("hub_engine")  # at a SQLCipher and a PostgreSQL hub
def test_export_still_works_for_a_clinician_and_the_hub_accepts_it(tmp_path: Path):
    h = make_hub(tmp_path)
    w = make_ward(tmp_path)
    connect(w, h)
    s = open_(w)
    try:
        users.add_user(s, "nurse", "Nurse", "clinician", PASSWORD)
    finally:
        s.close()
    add_notes(w, 3)
    usb = tmp_path / "usb"
    usb.mkdir()
    nurse = open_(w, "nurse")
    try:
        files = ward.export(nurse, usb).files
    finally:
        nurse.close()
    coord = open_(h, "coordinator")
    try:
        res = hub.import_file(coord, files[0])
    finally:
        coord.close()
    assert res.outcome.status == "applied", res.outcome.message
    assert res.receipt is not None  # signed by the hub's sealed key, for a coordinator


@pytest.mark.usefixtures("hub_engine")  # at a SQLCipher and a PostgreSQL hub
def test_an_auditor_cannot_export_bundles(tmp_path: Path):
    h = make_hub(tmp_path)
    w = make_ward(tmp_path)
    connect(w, h)
    s = open_(w)
    try:
        users.add_user(s, "monitor", "Monitor", "auditor", PASSWORD)
    finally:
        s.close()
    m = open_(w, "monitor")
    try:
        with pytest.raises(PermissionDenied):
            ward.export(m, tmp_path)
    finally:
        m.close()


# -- sites created before keys were sealed -------------------------------------------------


def _make_legacy(site: Site) -> str:
    """Put the site back in the state the old code left it: secret in clear, no signing wraps."""
    key = _database_key(site)
    store = Store(site.db_path, key)
    try:
        device = store.scalar("SELECT device FROM site WHERE id = 1")
        secret = _unsealed_secret(site, key, device)
        store.execute("UPDATE device_keys SET sign_secret = ? WHERE device = ?", (secret, device))
    finally:
        store.close()
    path = site.data_dir / "keyslots.json"
    data = json.loads(path.read_text())
    for slot in data["slots"].values():
        slot.pop("signing", None)
    data.pop("signing_transition", None)
    path.write_text(json.dumps(data))
    return secret


def _unsealed_secret(site: Site, key: bytes, device: str) -> str:
    slots = KeySlots.load(site.data_dir)
    opened = slots.open_recovery(site.recovery_key)  # type: ignore[attr-defined]
    store = Store(site.db_path, key)
    try:
        (sealed,) = store.one("SELECT sign_secret FROM device_keys WHERE device = ?", (device,)) or ("",)
    finally:
        store.close()
    assert opened.signing is not None
    return devicekeys.unseal(sealed, opened.signing, device)


def _stored_secret(site: Site) -> str:
    store = Store(site.db_path, _database_key(site))
    try:
        return str(store.scalar("SELECT sign_secret FROM device_keys"))
    finally:
        store.close()


def test_an_existing_site_is_sealed_at_the_first_sign_in_of_an_exporting_role(site):
    secret = _make_legacy(site)
    before = _public(site)
    # An auditor signing in changes nothing (and is not handed the secret).
    Site.open(site.data_dir).unlock("auditor", PASSWORD).close()
    assert _stored_secret(site) == secret
    nurse = Site.open(site.data_dir).unlock("clinician", PASSWORD)
    try:
        assert _stored_secret(site).startswith(devicekeys.SEALED_PREFIX)
        signer = devicekeys.signer(nurse)
        # The same device identity: same key id, same public key, signatures verify with it.
        assert _public(site) == before
        signing.verify(before["sign_public"], b"data", _sign(signer), "t")
        assert nurse.store.scalar("SELECT count(*) FROM events WHERE type = 'device.signing_key_sealed'") == 1
    finally:
        nurse.close()
    # Another exporting user, whose slot had no wrap yet, gets it at their first sign-in.
    coord = Site.open(site.data_dir).unlock("coordinator", PASSWORD)
    try:
        _sign(devicekeys.signer(coord))
    finally:
        coord.close()
    slots = json.loads((site.data_dir / "keyslots.json").read_text())["slots"]
    assert "signing" in slots["user:coordinator"] and "signing" not in slots["user:auditor"]


def test_the_transition_closes_when_every_exporting_user_and_the_recovery_slot_hold_the_key(site):
    _make_legacy(site)
    for name in ("admin", "clinician", "pharmacist", "investigator", "coordinator"):
        Site.open(site.data_dir).unlock(name, PASSWORD).close()
    data = json.loads((site.data_dir / "keyslots.json").read_text())
    assert "signing_transition" in data  # the recovery slot has no wrap yet
    from wardcrf.recovery import check_recovery_key

    check_recovery_key(Site.open(site.data_dir), site.recovery_key)
    data = json.loads((site.data_dir / "keyslots.json").read_text())
    assert "signing_transition" not in data
    assert "signing" in data["slots"]["recovery"]
    s = Site.open(site.data_dir).unlock("admin", PASSWORD)
    try:
        _sign(devicekeys.signer(s))
    finally:
        s.close()


def test_a_crash_between_the_slot_write_and_the_database_seal_loses_nothing(site, monkeypatch):
    secret = _make_legacy(site)

    def boom(*_a: Any, **_k: Any) -> None:
        raise KeyboardInterrupt  # as if killed after the key slots were saved

    monkeypatch.setattr(devicekeys, "seal_stored_secret", boom)
    with pytest.raises(KeyboardInterrupt):
        Site.open(site.data_dir).unlock("clinician", PASSWORD)
    monkeypatch.undo()
    assert _stored_secret(site) == secret
    s = Site.open(site.data_dir).unlock("pharmacist", PASSWORD)
    try:
        assert _sign(devicekeys.signer(s))
    finally:
        s.close()
    c = Site.open(site.data_dir).unlock("clinician", PASSWORD)
    try:
        assert _sign(devicekeys.signer(c))
    finally:
        c.close()


def _public(site: Site) -> dict[str, str]:
    store = Store(site.db_path, _database_key(site))
    try:
        row = store.rows("SELECT key_id, sign_public, age_recipient FROM device_keys")[0]
    finally:
        store.close()
    base64.b64decode(row["sign_public"])
    return row


def test_a_sealed_secret_that_does_not_open_is_refused_in_one_line(site, session_for):
    s = session_for("clinician")
    s.store.execute(
        "UPDATE device_keys SET sign_secret = ? WHERE device = ?",
        (devicekeys.SEALED_PREFIX + base64.b64encode(b"\0" * 60).decode(), s.ctx.device),
    )
    with pytest.raises(Refused, match=r"signing key .* does not open"):
        devicekeys.signer(s)


def test_recover_check_on_the_command_line(site, cli):
    env = {"WARDCRF_RECOVERY_KEY": site.recovery_key}  # type: ignore[attr-defined]
    ok = cli("recover", "--check", env=env)
    assert ok.code == 0 and "the recovery key opens site WUH01" in ok.out, ok.output
    both = cli("recover", "--check", "--user", "admin", env=env)
    assert both.code == 2 and both.err.count("\n") == 1 and "either --user NAME" in both.err
    wrong = cli("recover", "--check", env={"WARDCRF_RECOVERY_KEY": "WRK-" + "0000-" * 12 + "0000"})
    assert wrong.code == 2 and wrong.err.count("\n") == 1, wrong.output
