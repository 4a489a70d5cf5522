"""Administrative database services: rebuild, check, raw key disclosure."""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import projections, sessionkeys
from .projections import Difference

if TYPE_CHECKING:
    from .site import Session


def check_projections(session: Session) -> tuple[int, list[Difference]]:
    session.require("audit.verify", what="check projections")
    return projections.check(session.store)


def rebuild_projections(session: Session, *, also: int = 0) -> int:
    """Rebuild the site's file's projections and record it; the events replayed, `also` (a PostgreSQL
    hub's database's, rebuilt before: `sync.pgcheck.rebuild_projections`) included."""
    session.require("db.rebuild", what="rebuild projections")
    n = projections.rebuild(session.store) + also
    session.append(type="db.rebuilt", subject=f"site:{session.ctx.site}", body={"events": n})
    return n


def reveal_raw_key(session: Session) -> str:
    """The raw key in hex: the one place it leaves wardcrf. Its disclosure is itself an event (who, when)."""
    session.require("db.raw_key", what="print the raw database key")
    session.append(type="db.raw_key_shown", subject=f"site:{session.ctx.site}", body={})
    return sessionkeys.database_key(session).hex()
