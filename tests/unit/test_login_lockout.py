"""Signing in: failed logins persist between attempts and lock the account at the fifth; a deactivated
user is told so only with the right password, and a wrong password reads like an unknown name."""

from __future__ import annotations

import json

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from hub_delivery import deliver
from insider import raw_key

from wardcrf import audit, keyslots, users
from wardcrf.errors import AuthError
from wardcrf.keyslots import KeySlots, _gcm_keystream
from wardcrf.site import Site

PASSWORD = "test-password-1"


def test_failures_accumulate_across_opens_and_lock(site: Site) -> None:
    for left in (4, 3, 2, 1):
        with pytest.raises(AuthError, match=rf"\({left} attempt\(s\) left"):
            Site.open(site.data_dir).unlock("clinician", "wrong-password-9")
    with pytest.raises(AuthError, match="now locked"):
        Site.open(site.data_dir).unlock("clinician", "wrong-password-9")
    with pytest.raises(AuthError, match="locked after 5 failed logins"):
        Site.open(site.data_dir).unlock("clinician", PASSWORD)


def test_success_clears_failures(site: Site) -> None:
    with pytest.raises(AuthError, match=r"\(4 attempt"):
        Site.open(site.data_dir).unlock("clinician", "wrong-password-9")
    Site.open(site.data_dir).unlock("clinician", PASSWORD).close()
    with pytest.raises(AuthError, match=r"\(4 attempt"):
        Site.open(site.data_dir).unlock("clinician", "wrong-password-9")


# -- deactivated users at sign-in --------------------------------------------------------------------
# A stranger at a shared ward laptop must not learn which user names exist, so a wrong password and
# an unknown name read the same. A deactivated user who types their *right* password is told their
# account is deactivated: only the right password reaches that answer (the retired key slot checks it).


def _deactivate(admin, name: str = "pharmacist") -> None:
    users.deactivate(admin, name, reason="left the trial team")


def test_gcm_keystream_is_the_one_aesgcm_encrypted_with():
    kek, nonce, plain = bytes(range(32)), bytes(range(12)), bytes(range(100, 132))
    wrapped = AESGCM(kek).encrypt(nonce, plain, b"aad")
    stream = _gcm_keystream(kek, nonce, 32)
    assert bytes(a ^ b for a, b in zip(wrapped[:32], stream, strict=True)) == plain


def test_deactivated_user_with_the_right_password_is_told_so(site, admin):
    _deactivate(admin)
    with pytest.raises(AuthError) as info:
        Site.open(site.data_dir).unlock("pharmacist", PASSWORD)
    assert info.value.message.startswith("account pharmacist is deactivated; ask an admin")
    assert info.value.exit_code == 2 and "\n" not in info.value.message


def test_deactivated_user_with_a_wrong_password_reads_like_an_unknown_name(site, admin):
    _deactivate(admin)
    opened = Site.open(site.data_dir)
    with pytest.raises(AuthError) as wrong:
        opened.unlock("pharmacist", "not-the-password-1")
    with pytest.raises(AuthError) as unknown:
        opened.unlock("nobody-here", "not-the-password-1")
    assert "deactivated" not in wrong.value.message
    assert (
        wrong.value.message
        == unknown.value.message
        == ("wrong user name or password (4 attempt(s) left before lockout)")
    )


def test_retired_slot_opens_nothing_and_keeps_no_key(site, admin):
    _deactivate(admin)
    slots = KeySlots.load(site.data_dir)
    assert not slots.has_user("pharmacist") and slots.is_retired("pharmacist")
    assert slots.unwrap_with_password("pharmacist", PASSWORD) is None
    retired = slots.data["slots"]["retired:pharmacist"]
    assert "wrapped" not in retired and raw_key(admin).hex() not in json.dumps(slots.data)
    assert slots.check_password("pharmacist", PASSWORD).retired
    assert slots.check_password("pharmacist", PASSWORD).key is None
    assert not slots.check_password("pharmacist", "not-the-password-1").retired


def test_every_name_costs_one_key_derivation(site, admin, monkeypatch):
    """No timing oracle: a live slot, a retired slot and no slot each derive one key."""
    _deactivate(admin)
    calls = []
    real = keyslots._kek_from_password
    monkeypatch.setattr(keyslots, "_kek_from_password", lambda *a: calls.append(1) or real(*a))
    slots = KeySlots.load(site.data_dir)
    for name in ("clinician", "pharmacist", "nobody-here"):
        calls.clear()
        slots.check_password(name, "not-the-password-1")
        assert len(calls) == 1, name


def test_refused_sign_in_is_logged_and_not_a_lockout_failure(site, admin, session_for):
    _deactivate(admin)
    opened = Site.open(site.data_dir)
    for _ in range(6):  # more than the lockout threshold: still "deactivated", never "locked"
        with pytest.raises(AuthError, match="is deactivated"):
            opened.unlock("pharmacist", PASSWORD)
    assert opened.slots.failed_count("pharmacist") == 0
    auditor = session_for("auditor")
    refused = list(audit.trail(auditor, type_prefix="auth.login_refused"))
    assert len(refused) == 6
    assert refused[0].subject == "user:pharmacist" and refused[0].body["why"] == "deactivated"
    assert not list(audit.trail(auditor, type_prefix="auth.login_failed", subject="user:pharmacist"))


def test_user_deactivated_elsewhere_has_its_slot_retired_at_the_next_sign_in(site, admin):
    """A hub user change marks the account inactive without touching this laptop's slot file."""
    deliver(  # as a hub bundle delivers it (sync.registry.send_user_change on the hub)
        admin,
        "hub.user_change",
        {"site": "WUH01", "username": "coordinator", "action": "deactivate"},
        subject="user:coordinator",
        reason="left the ward team",
        user="admin",
        role="admin",
    )
    assert users.get(admin.store, "coordinator")["active"] == 0
    assert KeySlots.load(site.data_dir).has_user("coordinator")
    with pytest.raises(AuthError, match="account coordinator is deactivated; ask an admin"):
        Site.open(site.data_dir).unlock("coordinator", PASSWORD)
    slots = KeySlots.load(site.data_dir)
    assert not slots.has_user("coordinator") and slots.is_retired("coordinator")
    with pytest.raises(AuthError, match="is deactivated"):
        Site.open(site.data_dir).unlock("coordinator", PASSWORD)


def test_cli_login_of_a_deactivated_user(cli):
    assert cli("user", "deactivate", "pharmacist", "--reason", "left").code == 0
    r = cli("participant", "list", user="pharmacist")
    assert r.code == 2
    assert r.err.strip().endswith(
        "account pharmacist is deactivated; ask an admin (your password is right, but this account may no "
        "longer sign in)"
    )
    assert len(r.err.strip().splitlines()) == 1
    r = cli("participant", "list", user="pharmacist", password="not-the-password-1")
    assert r.code == 2 and "wrong user name or password" in r.err and "deactivated" not in r.err
