"""Permission, name and role are checked before a new password is asked for (found in QA).

Without WARDCRF_NEW_PASSWORD (and no terminal) the password cannot be asked
for: a refusal that comes first proves the order.
"""

from __future__ import annotations


def test_auditor_adding_a_user_is_refused_before_any_password(cli):
    r = cli("user", "add", "bob", "--role", "clinician", user="auditor")
    assert r.code == 1
    assert "role auditor may not add users" in r.err


def test_misspelt_role_is_named_before_any_password(cli):
    r = cli("user", "add", "bob", "--role", "clinican")
    assert r.code == 2
    assert "unknown role 'clinican'" in r.err


def test_taken_name_is_refused_before_any_password(cli):
    r = cli("user", "add", "clinician", "--role", "clinician")
    assert r.code == 1
    assert "already taken" in r.err


def test_clinician_changing_another_password_is_refused_before_any_password(cli):
    r = cli("user", "passwd", "admin", user="clinician")
    assert r.code == 1
    assert "may not change another user's password" in r.err


def test_admin_adds_a_user_with_a_password(cli):
    r = cli("user", "add", "bob", "--role", "clinician", env={"WARDCRF_NEW_PASSWORD": "bob-password-1"})
    assert r.code == 0, r.err
    r = cli("user", "passwd", env={"WARDCRF_NEW_PASSWORD": "admin-password-2"})
    assert r.code == 0, r.err
