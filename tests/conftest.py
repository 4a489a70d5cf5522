"""Shared fixtures: a fresh encrypted site, sessions per role, an in-process CLI."""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import scratch_events  # noqa: F401  (the tests' own event types, declared for authority)
from site_users import PASSWORD, ROLE_USERS

from wardcrf import features, keyslots, users
from wardcrf.site import Session, Site

# The test run is a program like the command line: it installs the features once, before any
# site's database is created or opened (a site refuses before, `registration.require_installed`).
features.install()

REAL_SCRYPT_N = keyslots.SCRYPT_N
"""The production cost, kept for the tests marked `real_kdf` (they check it)."""
TEST_SCRYPT_N = 2**10
"""The cost of key slots made inside this test process (1 MiB instead of 32 MiB).

Every sign-in and every e-signature derives a key: at the real cost that was
most of the suite's time (the demo alone derives a hundred keys). A slot
records its own parameters, so what a test creates here unlocks with the
same code as a real one; only the work factor differs. Production code is
untouched: this lives in the tests' conftest only, subprocesses a test starts
(the `wardcrf` CLI, the tmux end-to-end runs) create slots at the real cost,
and `tests/unit/test_keyslots.py` checks the real parameters under `real_kdf`.
"""


@pytest.fixture(scope="session", autouse=True)
def _test_kdf_cost() -> Iterator[None]:
    """Session-wide, so the session's template sites are built with it too (see TEST_SCRYPT_N)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(keyslots, "SCRYPT_N", TEST_SCRYPT_N)
        yield


@pytest.fixture(autouse=True)
def _real_kdf_when_marked(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """`@pytest.mark.real_kdf`: this test derives keys at the production cost."""
    if request.node.get_closest_marker("real_kdf"):
        monkeypatch.setattr(keyslots, "SCRYPT_N", REAL_SCRYPT_N)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "site"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--mexcovid-engine",
        action="store_true",
        help="start the tests' MEXCOVID sites (the template site, export_support's wards and hubs) on "
        "MEXCOVID's format-2 re-encoding as a version of its own (wardcrf/protocols/engine/mexcovid.toml "
        "without `reencodes`, another SHA-256). Without it they hold MEXCOVID 1.0 as stored, which the "
        "engine runs through the same file (issue 17; tests/mexcovid_engine.py)",
    )


def pytest_configure(config: pytest.Config) -> None:
    if config.getoption("--mexcovid-engine", default=False):
        import mexcovid_engine

        mexcovid_engine.ACTIVE = True


@pytest.fixture(scope="session")
def _template_site(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """Built once per test run (key derivation is deliberately slow); copied per test. With
    `--mexcovid-engine`, on MEXCOVID's format-2 re-encoding as a version of its own."""
    data_dir = tmp_path_factory.mktemp("template") / "site"
    import mexcovid_engine

    engine = mexcovid_engine.site_protocol()  # None: the shipped default (run on its re-encoding)
    result = Site.init(
        data_dir,
        site="WUH01",
        device_name="lap1",
        admin="admin",
        password=PASSWORD,
        admin_full_name="Ada Admin",
        protocol_file=engine,
    )
    s = result.site.unlock("admin", PASSWORD)
    try:
        for role in ROLE_USERS:
            users.add_user(s, role, f"{role.title()} User", role, PASSWORD)
        s.store.checkpoint()
    finally:
        s.close()
    return data_dir, result.recovery_key


@pytest.fixture(scope="session")
def trial_templates(tmp_path_factory: pytest.TempPathFactory):
    """Wards started on PALM and PALM007, built on first use once per test process (trial_staff.Templates)."""
    from trial_staff import Templates

    return Templates(tmp_path_factory.mktemp("trials"))


@pytest.fixture
def site(data_dir: Path, _template_site: tuple[Path, str]) -> Site:
    """An initialised site WUH01 with user `admin`, and one user per role named after it.

    Every test gets its own copy (same key and device id as the template).
    """
    template, recovery_key = _template_site
    shutil.copytree(template, data_dir, ignore=shutil.ignore_patterns("*.lock"))
    opened = Site.open(data_dir)
    opened.recovery_key = recovery_key  # type: ignore[attr-defined]
    return opened


@pytest.fixture
def session_for(site: Site) -> Iterator:
    """`session_for("clinician")` -> an open Session for that user (closed after the test)."""
    opened: list[Session] = []

    def open_(username: str) -> Session:
        s = Site.open(site.data_dir).unlock(username, PASSWORD)
        opened.append(s)
        return s

    yield open_
    for s in opened:
        s.close()


@pytest.fixture
def admin(session_for) -> Session:
    return session_for("admin")


@dataclass
class CliResult:
    code: int
    out: str
    err: str

    @property
    def output(self) -> str:
        return self.out + self.err


@pytest.fixture
def cli(site: Site, monkeypatch: pytest.MonkeyPatch):
    """Run `wardcrf ARGS` in-process as a user (default admin) against the fixture site."""
    from wardcrf.cli import main

    def run(
        *args: str, user: str = "admin", password: str = PASSWORD, env: dict[str, str] | None = None
    ) -> CliResult:
        values = {
            "WARDCRF_DATA_DIR": str(site.data_dir),
            "WARDCRF_USER": user,
            "WARDCRF_PASSWORD": password,
            "COLUMNS": "200",
        }
        values.update(env or {})
        with monkeypatch.context() as m:
            for k, v in values.items():
                m.setenv(k, v)
            # The consoles read COLUMNS when they are made; this fixture may have been the
            # one to import them (under xdist COLUMNS=80 then): they read it again now.
            from wardcrf.cli import common

            for console in (common.console, common.err_console):
                m.setattr(console, "_width", None)
                m.setattr(console, "_height", None)
            out, err = io.StringIO(), io.StringIO()
            code = 0
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
                try:
                    main(list(args))
                except SystemExit as exc:
                    code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        return CliResult(code, out.getvalue(), err.getvalue())

    return run


@pytest.fixture(autouse=True)
def _console_width_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test's CLI output is as wide as ITS `COLUMNS`, whichever test imported the CLI first.

    `wardcrf.cli.common`'s rich consoles are made once, at first import, and keep the
    width of a `COLUMNS` set at that moment: a test that happened to import the CLI
    first with `COLUMNS=60` narrowed the output of every later test (an order
    dependency, seen when tests run in another order or in parallel). Forgetting
    that width makes them read `COLUMNS` when they print, as they do when imported
    without it.
    """
    common = sys.modules.get("wardcrf.cli.common")
    if common is not None:
        for console in (common.console, common.err_console):
            monkeypatch.setattr(console, "_width", None)
            monkeypatch.setattr(console, "_height", None)


@pytest.fixture(autouse=True)
def _screens_language_reset() -> Iterator[None]:
    """Each test starts with the catalogues' languages offered and English chosen.

    `screens.i18n` keeps the offered languages and the current one per process (one app per
    process in use); a test whose app signed in on a PALM ward (en, fr offered) left a later
    test in the same worker unable to choose zh (it failed under `-n 2`).
    """
    yield
    from wardcrf.screens import i18n

    i18n.offer(None)
    i18n.set_language("en")


@pytest.fixture(autouse=True)
def _no_ambient_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for k in list(os.environ):
        if k.startswith("WARDCRF_"):
            monkeypatch.delenv(k, raising=False)
