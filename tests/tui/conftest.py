"""Fixtures for the TUI tests: a fixed clock, the app factory, sign-in helpers."""

from __future__ import annotations

import pytest

from wardcrf.screens import i18n
from wardcrf.screens.app import WardApp, make_app
from wardcrf.screens.ward import Ward
from wardcrf.site import Site

FAKE_NOW = "2020-03-16T01:00:00Z"  # 09:00 in Asia/Shanghai
PASSWORD = "test-password-1"


@pytest.fixture(autouse=True)
def _fixed_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """Same timestamps every run, so snapshots are stable."""
    monkeypatch.setenv("WARDCRF_FAKE_NOW", FAKE_NOW)
    i18n.set_language("en")


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
