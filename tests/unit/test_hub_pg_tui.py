# ruff: noqa: F811  (the twins fixture is imported from test_hub_pg_twins and named by each test)
"""The app at a hub whose wards' data is in PostgreSQL (issue 19): refused in one line, before anything shows.

Started against such a hub (tmux, 2026-12-07), the app signed in and showed the dashboard of the hub's own
file: "[1] Participants · 0 listed", no adverse events, no storage unit, at a hub holding the ward's
participants and cold chain, since the screens read the session's store, which there is the hub's file
(its own events). A coordinator could read that as nothing having arrived. Until the screens read the
database, the app is refused there, naming the hub's commands that do; a SQLCipher hub opens it as ever.
"""

from __future__ import annotations

from test_hub_pg_twins import _pushed, twins  # noqa: F401  (fixtures; `pg_server` is the conftest's)
from test_sync_cli import run


def test_the_app_is_refused_at_a_postgresql_hub_and_opens_at_its_sqlcipher_twin(twins, tmp_path, monkeypatch):
    from wardcrf.screens import app

    from wardcrf import entry

    _w, hubs, _post = _pushed(twins, tmp_path)
    opened: list[str] = []
    monkeypatch.setattr(app, "run_app", lambda data_dir, **_k: opened.append(str(data_dir)))
    code, out, err = run("tui", "-d", str(hubs["postgresql"].data_dir), monkeypatch=monkeypatch)
    assert code == 1 and out == "" and err.count("\n") == 1, (code, out, err)
    assert "PostgreSQL" in err and "wardcrf hub status" in err and "Traceback" not in err, err
    assert entry.open_ward_app(hubs["postgresql"].data_dir) == 1
    assert opened == []  # nothing shown
    assert run("tui", "-d", str(hubs["sqlcipher"].data_dir), monkeypatch=monkeypatch)[0] == 0
    assert entry.open_ward_app(hubs["sqlcipher"].data_dir) == 0
    assert opened == [str(hubs["sqlcipher"].data_dir)] * 2
