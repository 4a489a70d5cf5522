"""`photo verify`: re-hash every stored original and check every record's photo references.

Its own module because it is the auditor's whole-store check (permission
``audit.verify``), separate from the per-record views in `audit`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from . import store as pstore

if TYPE_CHECKING:
    from wardcrf.site import Session
    from wardcrf.sqlstore import SqlStore


@dataclass
class VerifyResult:
    checked: int
    problems: list[str]

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_json(self) -> dict[str, Any]:
        return {"ok": self.ok, "checked": self.checked, "problems": self.problems}


def verify(session: Session, store: SqlStore | None = None) -> VerifyResult:
    """Re-hash every stored original and check every record's photo references.

    `store`: where the photo rows are when not in the session's file (a
    PostgreSQL hub's database, `sync.hub.reading_store`); the kept bundles are
    opened with the identity in the file.
    """
    session.require("audit.verify", what="verify photo evidence")
    checked, problems = pstore.verify_store(store if store is not None else session.store, keys=session.store)
    return VerifyResult(checked, problems)
