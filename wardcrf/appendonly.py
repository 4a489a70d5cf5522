"""The append-only triggers: present and as the schema defines them, or put back with an event.

The event log and stored evidence (photo originals, logger files) are
insert-only: triggers refuse UPDATE and DELETE. Whoever holds the raw key can
drop or rewrite them, after which a bug or a hand-typed statement could
change a record without a word. `audit verify` compares every trigger with
its definition (`store.guard_triggers` for the APPEND_ONLY tables, and any
trigger a migration in ``schema.sql`` states), recreates a missing or altered one and
records that it did (`db.triggers_restored`: which, and what was found), so
the repair itself is part of the audit trail.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass

from .store import APPEND_ONLY, Store, guard_triggers, migrations, split_sql

_CREATE_RE = re.compile(r"^CREATE\s+TRIGGER\s+(\w+)\s", re.IGNORECASE)


@functools.cache
def expected() -> dict[str, str]:
    """Trigger name -> its CREATE statement: the guards of every APPEND_ONLY table, then any a migration states."""
    out: dict[str, str] = {}
    for table in APPEND_ONLY:
        out.update(guard_triggers(table))
    for _name, sql in migrations():
        for statement in split_sql(sql):
            m = _CREATE_RE.match(statement)
            if m:
                out[m.group(1)] = statement
    return out


def _same(a: str, b: str) -> bool:
    return " ".join(a.split()).rstrip(";") == " ".join(b.split()).rstrip(";")


@dataclass(frozen=True)
class Damage:
    name: str
    found: str  # "missing" | "altered"

    def __str__(self) -> str:
        return f"trigger {self.name} was {self.found}"


def damaged(store: Store) -> list[Damage]:
    present = {
        name: sql or ""
        for name, sql in store.execute("SELECT name, sql FROM sqlite_master WHERE type = 'trigger'")
    }
    out = []
    for name, sql in expected().items():
        if name not in present:
            out.append(Damage(name, "missing"))
        elif not _same(present[name], sql):
            out.append(Damage(name, "altered"))
    return out


def restore(store: Store, found: list[Damage]) -> None:
    """Recreate the damaged triggers from schema.sql (inside the caller's transaction)."""
    for d in found:
        store.execute(f"DROP TRIGGER IF EXISTS [{d.name}]")
        store.execute(expected()[d.name])
