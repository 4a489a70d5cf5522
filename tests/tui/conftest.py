"""Fixtures for the TUI tests: a fixed clock, the app factory, sign-in helpers."""

from __future__ import annotations

from pathlib import Path

import pytest
from dash_support import _busy_template, busy_site
from dose_support import _dose_template, dose_app, dose_site
from wardcrf.screens import i18n
from wardcrf.screens.app import WardApp, make_app
from wardcrf.screens.ward import Ward

from wardcrf.site import Site

FAKE_NOW = "2020-03-16T01:00:00Z"  # 09:00 in Asia/Shanghai
PASSWORD = "test-password-1"

# The dose-ward (dose_support) and busy-ward (dash_support) sites are session templates copied per
# test. They are registered here once: a session fixture imported into a test module is that
# module's own, so every importing file built its template again.
__all__ = ["_busy_template", "_dose_template", "busy_site", "dose_app", "dose_site"]


@pytest.fixture(autouse=True)
def _fixed_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """Same timestamps every run, so snapshots are stable."""
    monkeypatch.setenv("WARDCRF_FAKE_NOW", FAKE_NOW)
    i18n.set_language("en")


@pytest.fixture(autouse=True)
def _steady_cursor(monkeypatch: pytest.MonkeyPatch) -> None:
    """The text cursor stays on instead of blinking every 0.5 s.

    A blinking cursor makes a picture depend on how long the machine took
    between the last key and the snapshot (a flake under load).
    """
    from textual.widgets import Input

    monkeypatch.setattr(Input, "_toggle_cursor", lambda self: None)


@pytest.fixture
def ward_for(site: Site, session_for):
    """`ward_for("auditor")` -> a signed-in Ward, as the app holds after login."""

    def make(user: str) -> Ward:
        return Ward(site, session_for(user))

    return make


@pytest.fixture
def app_for(site: Site, ward_for):
    """`app_for("clinician", language="zh")` -> an app already signed in."""

    def make(user: str | None = None, **kwargs) -> WardApp:
        ward = ward_for(user) if user else None
        return make_app(site.data_dir, ward=ward, **kwargs)

    return make


@pytest.fixture(scope="session")
def _template_site(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """The shared template site, but built under the fixed clock (stable snapshots). With
    `pytest --mexcovid-engine`, on MEXCOVID's format-2 re-encoding as a version of its own
    (tests/mexcovid_engine.py), as the unit tests' template is."""
    import mexcovid_engine

    from wardcrf import users

    data_dir = tmp_path_factory.mktemp("tui-template") / "site"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("WARDCRF_FAKE_NOW", FAKE_NOW)
        result = Site.init(
            data_dir,
            site="WUH01",
            device_name="lap1",
            admin="admin",
            password=PASSWORD,
            admin_full_name="Ada Admin",
            protocol_file=mexcovid_engine.site_protocol(),
        )
        s = result.site.unlock("admin", PASSWORD)
        try:
            for role in ("clinician", "pharmacist", "investigator", "dsmg", "coordinator", "auditor"):
                users.add_user(s, role, f"{role.title()} User", role, PASSWORD)
            # Consent needs a third doctor as the second witness.
            users.add_user(s, "clinician2", "Second Doctor", "clinician", PASSWORD)
            s.store.checkpoint()
        finally:
            s.close()
    return data_dir, result.recovery_key
