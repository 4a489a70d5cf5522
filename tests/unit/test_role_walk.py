"""The role walk (issue #16): every service a screen calls, as every role in roles.py.

The list of services is read from the screens' source (`screen_calls`), and the permission each
one checks from the service's own source (its first `session.require("<permission>")`), so
neither is a hand list that can drift: a screen that starts calling a new service is walked the
next run, and one that calls a function with no visible check fails `test_every_service_...`.

For each role the domain must refuse (`PermissionDenied`, nothing appended) exactly the services
whose permission roles.py does not grant it, and must not refuse on role grounds those it does
(the call may still fail for other reasons: the walk passes placeholder arguments, so "not
refused for the role" is what is asserted for granted roles).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from conftest import PASSWORD, ROLE_USERS
from screen_calls import declared_permission, resolve, screen_calls

from wardcrf import roles, users
from wardcrf.errors import PermissionDenied
from wardcrf.workflow.base import rule_for

FORM = "vitals"
"""The form the form services are walked with (its permission is its rule's action)."""

FORM_SERVICES = {"wardcrf.workflow.submit", "wardcrf.workflow.preflight", "wardcrf.workflow.service.preview"}
"""Services whose permission is the form's own (`rule_for(form).action`), not one literal."""

NOT_ROLE_GATED = {
    "wardcrf.site.Site.verify_password": "authentication: checks a password, any signed-in user may be asked",
    "wardcrf.users.set_language": "the user's own display language (user.language_set: any role, authority.py)",
    "wardcrf.users.languages": (
        "the display languages the protocol declares, offered to any signed-in user to choose their own"
    ),
    "wardcrf.drafts.mine": "a role without draft.keep has no drafts: an empty list, not a refusal",
    "wardcrf.randomization.service.randomizable": (
        "whether to offer the randomize key: False for a role without randomization.allocate, not a refusal "
        "(factors_needed and allocate, which it guards, are walked)"
    ),
    "wardcrf.coldchain.services.sign_transfer": (
        "the SIGNER's role is checked (signatures.sign), who may differ from the session user; "
        "needs a real receipt to reach it (tests/tui/test_coldchain.py signs them)"
    ),
    "wardcrf.coldchain.services.preflight": "dry-runs the service it is given, whose check is walked itself",
}
"""Services a screen calls that do not refuse by the session's role, and why."""


def _services() -> dict[str, Callable[..., Any]]:
    out = {}
    for call in screen_calls():
        if call.name.startswith("wardcrf.screens."):
            continue  # a screen's own helper (closing_draft): the services it calls are walked
        fn = resolve(call.name)
        assert fn is not None, f"{call.where}: {call.name} is not a function a test can find"
        out[call.name] = fn
    return out


SERVICES = _services()
WALKED = sorted(n for n in SERVICES if n not in NOT_ROLE_GATED)


def _permission(name: str) -> str | None:
    return rule_for(FORM).action if name in FORM_SERVICES else declared_permission(SERVICES[name])


def _placeholder(param: inspect.Parameter, tmp_path: Path) -> Any:
    if param.name == "form":
        return FORM
    text = str(param.annotation)
    for prefix, value in (
        ("Path", tmp_path),
        ("int", 0),
        ("float", 1.0),
        ("bool", False),
        ("date", date(2020, 3, 16)),
        ("list", ["K0001"]),
        ("dict", {}),
        ("Mapping", {}),
        ("tuple", ("", "")),
    ):
        if text.startswith(prefix):
            return value
    return "K0001"


def _arguments(fn: Callable[..., Any], tmp_path: Path) -> tuple[list[Any], dict[str, Any]]:
    args: list[Any] = []
    kwargs: dict[str, Any] = {}
    params = list(inspect.signature(fn).parameters.values())[1:]  # after the session
    for p in params:
        if p.default is not inspect.Parameter.empty or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        value = _placeholder(p, tmp_path)
        if p.kind is p.KEYWORD_ONLY:
            kwargs[p.name] = value
        else:
            args.append(value)
    return args, kwargs


def test_the_walk_covers_the_screens_services():
    """The walk is not empty, and reaches reads, writes and every feature the screens show."""
    assert len(WALKED) >= 40, WALKED
    for needed in (
        "wardcrf.workflow.submit",
        "wardcrf.coldchain.services.receive_lot",
        "wardcrf.coldchain.reports.units",
        "wardcrf.workflow.dsmg.decide",
        "wardcrf.sync.ward.export",
        "wardcrf.audit.trail",
        "wardcrf.sdv.verify",
    ):
        assert needed in WALKED


def test_every_service_a_screen_calls_checks_a_role():
    """A screen never hands the session to a function that checks no permission (unless listed why)."""
    unchecked = [n for n in WALKED if _permission(n) is None]
    assert unchecked == [], f"screens call services with no role check: {unchecked}"
    assert all(n in SERVICES for n in NOT_ROLE_GATED), "a listed exception the screens no longer call"
    for name in WALKED:
        perm = _permission(name)
        assert perm in roles.PERMISSIONS, f"{name} checks {perm!r}, which roles.py does not define"


@pytest.mark.parametrize("role", roles.ROLES)
def test_each_role_is_refused_exactly_what_roles_py_forbids(role, session_for, admin, tmp_path):
    if role not in (*ROLE_USERS, "admin"):  # the template site has one user per common role
        users.add_user(admin, role, f"{role.title()} User", role, PASSWORD)
    session = session_for(role)
    wrong: list[str] = []
    for name in WALKED:
        fn = SERVICES[name]
        permission = _permission(name)
        assert permission is not None
        granted = roles.allowed(role, permission)
        args, kwargs = _arguments(fn, tmp_path)
        before = session.store.scalar("SELECT count(*) FROM events")
        try:
            fn(session, *args, **kwargs)
            outcome: BaseException | None = None
        except PermissionDenied as exc:
            outcome = exc
        except Exception as exc:  # placeholder arguments: any refusal but the role's is fine here
            outcome = exc
        refused = isinstance(outcome, PermissionDenied)
        if granted and refused:
            wrong.append(f"{name}: {role} has {permission} but was refused ({outcome})")
        elif not granted and not refused:
            wrong.append(f"{name}: {role} lacks {permission} but got {type(outcome).__name__}: {outcome}")
        elif not granted and session.store.scalar("SELECT count(*) FROM events") != before:
            wrong.append(f"{name}: refused for {role} but an event was appended")
    assert wrong == [], "\n".join(wrong)
