"""`db rebuild` runs with a large SQLite page cache and puts the site's own back (`Store.large_page_cache`).

A rebuild of a large log looks up index pages all over a file of gigabytes; with the default 2 MB cache
each dropped page is read and decrypted again (docs/performance.md, "The rebuild's page cache").
"""

from __future__ import annotations

import pytest

from wardcrf import projections
from wardcrf.errors import Refused
from wardcrf.store import LARGE_PAGE_CACHE_KIB


def _cache_size(store) -> int:
    return int(store.conn.execute("PRAGMA cache_size").fetchone()[0])


def test_a_rebuild_replays_with_the_large_cache_and_puts_the_sites_back(admin, monkeypatch) -> None:
    store = admin.store
    before = _cache_size(store)
    assert before != -LARGE_PAGE_CACHE_KIB
    seen: list[int] = []
    replay = projections.replay

    def watching(st, lines, on_progress=None):
        seen.append(_cache_size(st))
        return replay(st, lines, on_progress)

    monkeypatch.setattr(projections, "replay", watching)
    projections.rebuild(store)
    assert seen == [-LARGE_PAGE_CACHE_KIB]
    assert _cache_size(store) == before
    assert projections.check(store)[1] == []


def test_a_rebuild_that_fails_puts_the_sites_cache_back_and_changes_nothing(admin, monkeypatch) -> None:
    store = admin.store
    before = _cache_size(store)
    users = store.execute("SELECT * FROM users ORDER BY id").fetchall()

    def failing(st, lines, on_progress=None):
        raise Refused("a projector refused")

    monkeypatch.setattr(projections, "replay", failing)
    with pytest.raises(Refused):
        projections.rebuild(store)
    assert _cache_size(store) == before
    assert store.execute("SELECT * FROM users ORDER BY id").fetchall() == users
