"""Key slots: per-user wrapping, recovery key, password rules, lockout."""

from __future__ import annotations

import pytest
from conftest import PASSWORD
from insider import raw_key

from wardcrf import users
from wardcrf.errors import AuthError, Refused, UsageError
from wardcrf.keyslots import format_recovery_key, parse_recovery_key
from wardcrf.recovery import reset_password_with_recovery_key
from wardcrf.site import Site


def test_recovery_key_round_trip_and_typo_tolerance():
    raw = bytes(range(32))
    text = format_recovery_key(raw)
    assert text.startswith("WRK-")
    assert parse_recovery_key(text) == raw
    assert parse_recovery_key(text.lower().replace("-", " ")) == raw
    with pytest.raises(AuthError, match="malformed"):
        parse_recovery_key("WRK-1234")


def test_keyslot_file_holds_no_secret_in_clear(site, admin):
    text = (site.data_dir / "keyslots.json").read_text()
    assert raw_key(admin).hex() not in text
    assert PASSWORD not in text


def test_losing_every_password_loses_nothing_with_the_recovery_key(site, admin):
    n_events = admin.store.scalar("SELECT count(*) FROM events")
    admin.close()
    reset_password_with_recovery_key(Site.open(site.data_dir), site.recovery_key, "admin", "recovered-pass-1")
    s = Site.open(site.data_dir).unlock("admin", "recovered-pass-1")
    assert s.store.scalar("SELECT count(*) FROM events") == n_events + 1
    assert s.store.scalar("SELECT type FROM events ORDER BY pos DESC LIMIT 1") == "user.password_reset"
    s.close()
    with pytest.raises(AuthError):
        Site.open(site.data_dir).unlock("admin", PASSWORD)


def test_wrong_recovery_key_is_refused(site):
    other = format_recovery_key(b"\x07" * 32)
    with pytest.raises(AuthError, match="does not open this data directory"):
        reset_password_with_recovery_key(Site.open(site.data_dir), other, "admin", "recovered-pass-1")


def test_short_password_is_refused(admin):
    with pytest.raises(UsageError, match="at least 10 characters"):
        users.add_user(admin, "shorty", "S", "clinician", "short")
    assert users.get(admin.store, "shorty") is None


def test_five_failed_logins_lock_the_account_and_are_logged(site):
    s = Site.open(site.data_dir)
    for i in range(4):
        with pytest.raises(AuthError, match=f"{4 - i} attempt"):
            s.unlock("clinician", "wrong-password")
    with pytest.raises(AuthError, match="now locked"):
        s.unlock("clinician", "wrong-password")
    # Even the right password is refused now, before any key derivation.
    with pytest.raises(AuthError, match="locked"):
        Site.open(site.data_dir).unlock("clinician", PASSWORD)
    admin = Site.open(site.data_dir).unlock("admin", PASSWORD)
    types = [r["type"] for r in admin.store.rows("SELECT type FROM events WHERE subject='user:clinician'")]
    assert types.count("auth.login_failed") == 5
    assert "user.locked" in types
    assert users.get(admin.store, "clinician")["locked"] == 1
    users.unlock(admin, "clinician")
    admin.close()
    Site.open(site.data_dir).unlock("clinician", PASSWORD).close()


def test_success_resets_the_failure_count(site):
    s = Site.open(site.data_dir)
    for _ in range(3):
        with pytest.raises(AuthError):
            s.unlock("clinician", "wrong-password")
    s.unlock("clinician", PASSWORD).close()
    for _ in range(4):
        with pytest.raises(AuthError, match="attempt"):
            s.unlock("clinician", "wrong-password")


def test_deactivated_user_cannot_log_in_and_name_is_never_reused(site, admin):
    users.deactivate(admin, "pharmacist", reason="left the trial")
    with pytest.raises(AuthError):
        Site.open(site.data_dir).unlock("pharmacist", PASSWORD)
    with pytest.raises(Refused, match="never reused"):
        users.add_user(admin, "pharmacist", "New Person", "pharmacist", PASSWORD)
    assert users.get(admin.store, "pharmacist")["active"] == 0


def test_deactivation_needs_a_reason_and_keeps_one_admin(admin):
    with pytest.raises(UsageError, match="reason"):
        users.deactivate(admin, "clinician", reason=" ")
    with pytest.raises(Refused, match="yourself"):
        users.deactivate(admin, "admin", reason="x")


def test_only_admin_manages_users(session_for):
    from wardcrf.errors import PermissionDenied

    with pytest.raises(PermissionDenied, match="allowed: admin"):
        users.add_user(session_for("coordinator"), "x1", "X", "clinician", PASSWORD)


def test_user_can_change_own_password_but_not_others(session_for, site):
    from wardcrf.errors import PermissionDenied

    clin = session_for("clinician")
    users.change_password(clin, "clinician", "my-new-password")
    with pytest.raises(PermissionDenied):
        users.change_password(clin, "auditor", "hijacked-pass")
    Site.open(site.data_dir).unlock("clinician", "my-new-password").close()


@pytest.mark.real_kdf
def test_slots_use_the_production_scrypt_cost(tmp_path, monkeypatch):
    """Memory-hard: scrypt N=2^15, r=8, p=1 (32 MiB) for every password slot, and for the
    derivation done for a name without a slot (same work: no timing oracle).

    The other tests make slots at a lower cost (tests/conftest.py); this one checks the real one.
    """
    from wardcrf import keyslots
    from wardcrf.keyslots import KeySlots

    assert keyslots.SCRYPT_N == 2**15  # restored to the production value by the `real_kdf` marker
    assert (keyslots.SCRYPT_R, keyslots.SCRYPT_P) == (8, 1)
    result = Site.init(tmp_path / "site", site="WUH01", device_name="lap1", admin="admin", password=PASSWORD)
    s = result.site.unlock("admin", PASSWORD)
    try:
        users.add_user(s, "clinician", "Clinician User", "clinician", PASSWORD)
    finally:
        s.close()
    slots = KeySlots.load(tmp_path / "site")
    for name in ("user:admin", "user:clinician"):
        slot = slots.data["slots"][name]
        assert (slot["kdf"], slot["n"], slot["r"], slot["p"]) == ("scrypt", 2**15, 8, 1), name
    costs = []
    real = keyslots._kek_from_password
    monkeypatch.setattr(
        keyslots, "_kek_from_password", lambda pw, salt, *nrp: costs.append(nrp) or real(pw, salt, *nrp)
    )
    assert slots.check_password("clinician", PASSWORD).key is not None
    assert slots.check_password("clinician", "not-the-password-1").key is None
    assert slots.check_password("nobody-here", PASSWORD).key is None
    assert costs == [(2**15, 8, 1)] * 3
    Site.open(tmp_path / "site").unlock("clinician", PASSWORD).close()
