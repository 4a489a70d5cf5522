"""Which protocol version new events are captured under."""

from __future__ import annotations

from .store import Store


def active_protocol_ref(store: Store) -> dict[str, str] | None:
    row = store.one("SELECT protocol_id, version FROM protocols WHERE active = 1")
    if row is None:
        return None
    return {"id": row[0], "version": row[1]}
