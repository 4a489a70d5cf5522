"""Hub events as a ward receives them, for tests that need one without a hub.

A ward never appends `query.raised`, `hub.user_change` or any other
hub-only type (`wardcrf.authority`); it receives them in the hub's bundles,
whose events enter through `eventlog.ingest` and the same projectors.
`deliver` does exactly that with a stand-in hub device's chain, so a test
sees the ward state a real hub bundle leaves, minus the transport.
"""

from __future__ import annotations

from typing import Any

from wardcrf import canonical, eventlog
from wardcrf.clock import HLC, iso_utc, now_utc, wall_millis
from wardcrf.eventlog import Event
from wardcrf.site import Session

HUB_DEVICE = "HUB00001"
HUB_SITE = "HUB"


def deliver(
    session: Session,
    type: str,
    body: dict[str, Any],
    *,
    subject: str | None = None,
    reason: str | None = None,
    user: str = "coordinator",
    role: str = "coordinator",
) -> Event:
    """Ingest one hub event into `session`'s database, chained after the stand-in hub's last."""
    store = session.store
    with store.transaction():
        seq, prev = eventlog.head(store, HUB_DEVICE)
        now = iso_utc(now_utc())
        fields = {
            "amends": None,
            "body": body,
            "device": HUB_DEVICE,
            "hlc": HLC(wall_millis(now_utc()), seq + 1).encode(),
            "id": f"{HUB_DEVICE}-{seq + 1}",
            "protocol": None,
            "reason": reason,
            "role": role,
            "seq": seq + 1,
            "site": HUB_SITE,
            "subject": subject,
            "ts": now,
            "type": type,
            "tz": "+00:00",
            "user": user,
            "zone": "UTC",
        }
        event = Event.from_line(canonical.event_line(prev, fields))
        eventlog.ingest(store, event)
    return event
