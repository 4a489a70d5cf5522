"""A record captured under a protocol version this laptop has not loaded, as sync would bring it.

Another laptop of the site loaded MEXCOVID 1.2 and recorded under it; its events reach this one
(a `sync restore`, or a hub) through `eventlog.ingest` and the same projectors, and the version's
own `protocol.loaded` is not here (yet). `arrived_under` ingests such an event, chained after the
stand-in laptop's last, exactly as an applied bundle's events enter; `version_source` writes the
version a test loads later, with a label and a range that differ from 1.0's so that reading the
record under another version would show.
"""

from __future__ import annotations

from typing import Any

from wardcrf import canonical, eventlog, protocol
from wardcrf.clock import HLC, iso_utc, now_utc, wall_millis
from wardcrf.site import Session

OTHER_LAPTOP = "LAP20002"
"""A ward laptop of the same site (WUH01) that loaded a version this one has not."""

TEMP_LABEL_1_2 = "Axillary temperature"
"""What 1.2 calls the vitals' `temp` (1.0: "Temperature")."""


def version_source(version: str, *, temp_label: str = TEMP_LABEL_1_2, temp_min: int = 34) -> str:
    """MEXCOVID 1.0's file as VERSION: `temp` relabelled and its hard minimum raised to `temp_min`."""
    out = protocol.default_source().replace('version = "1.0"', f'version = "{version}"', 1)
    old = 'hard = [30, 45]\nsoft = [35.0, 39.5]\nlabel = { en = "Temperature", zh = "体温" }'
    assert old in out
    soft_min = max(35.0, temp_min + 0.5)  # the expected range lies inside the allowed one
    return out.replace(
        old,
        f'hard = [{temp_min}, 45]\nsoft = [{soft_min}, 39.5]\nlabel = {{ en = "{temp_label}", zh = "体温" }}',
        1,
    )


def arrived_under(
    session: Session,
    form: str,
    data: dict[str, Any],
    *,
    subject: str | None,
    version: str = "1.2",
    protocol_id: str = "MEXCOVID",
    type: str = "record.submitted",
    body: dict[str, Any] | None = None,
    user: str = "clinician",
    role: str = "clinician",
    site: str = "WUH01",
) -> str:
    """Ingest one event of `OTHER_LAPTOP` captured under PROTOCOL_ID VERSION; its id."""
    store = session.store
    with store.transaction():
        seq, prev = eventlog.head(store, OTHER_LAPTOP)
        now = iso_utc(now_utc())
        fields = {
            "amends": None,
            "body": body if body is not None else {"form": form, "data": data},
            "device": OTHER_LAPTOP,
            "hlc": HLC(wall_millis(now_utc()), seq + 1).encode(),
            "id": f"{OTHER_LAPTOP}-{seq + 1}",
            "protocol": {"id": protocol_id, "version": version},
            "reason": None,
            "role": role,
            "seq": seq + 1,
            "site": site,
            "subject": subject,
            "ts": now,
            "type": type,
            "tz": "+08:00",
            "user": user,
            "zone": "Asia/Shanghai",
        }
        event = eventlog.Event.from_line(canonical.event_line(prev, fields))
        eventlog.ingest(store, event)
    return event.id
