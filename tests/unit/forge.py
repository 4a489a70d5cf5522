"""What an attacker holding a device's keys can do: write any event line into its chain.

`append_raw` writes a canonical, correctly chained event straight into a
site's log, with no service, permission or authority check and no projector
(a key holder running Python on the laptop). The site's ordinary export then
cuts and signs it like any other event, so what reaches the importer is a
bundle with good signatures, an intact chain and a hostile event inside.
"""

from __future__ import annotations

from typing import Any

from synckit import open_

from wardcrf import canonical, eventlog
from wardcrf.clock import HLC, ZERO, iso_utc, now_utc, utc_offset, wall_millis
from wardcrf.site import Site


def append_raw(
    site: Site,
    type: str,
    body: dict[str, Any],
    *,
    subject: str | None = None,
    user: str | None = "admin",
    role: str | None = "admin",
    reason: str | None = None,
    amends: str | None = None,
    envelope_site: str | None = None,
) -> str:
    """Write one forged event at the head of `site`'s own chain; returns its id."""
    s = open_(site)
    try:
        store, ctx = s.store, s.ctx
        with store.transaction():
            seq, prev = eventlog.head(store, ctx.device)
            row = store.one("SELECT hlc FROM chain_heads WHERE device = ?", (ctx.device,))
            now = now_utc()
            hlc = max(HLC.decode(row[0]) if row else ZERO, ZERO).tick(wall_millis(now))
            fields: dict[str, Any] = {
                "amends": amends,
                "body": body,
                "device": ctx.device,
                "hlc": hlc.encode(),
                "id": f"{ctx.device}-{seq + 1}",
                "protocol": s.protocol,
                "reason": reason,
                "role": role,
                "seq": seq + 1,
                "site": envelope_site or ctx.site,
                "subject": subject,
                "ts": iso_utc(now),
                "type": type,
                "tz": utc_offset(now, ctx.zone),
                "user": user,
                "zone": ctx.zone,
            }
            line = canonical.event_line(prev, fields)
            event = eventlog.Event.from_line(line)
            eventlog._write(store, event, projectors=[])
        return event.id
    finally:
        s.close()
