"""`report randomization`: allocations per stratum against the list, arms only where they may be seen.

On a ward the arm of a blinded allocation is never known, so the blinded
rows count allocations per stratum only. At the hub the arms are known
(the hub made the list) but a blinded trial's report still shows counts per
stratum only: unblinded counts go to the statistician's export, not to a
report any coordinator prints. Open-label rows count per arm against the
protocol's ratio. Emergency unblindings, exhausted strata and (at the hub)
bundles held because an allocation does not follow its list are listed for
everyone who may read the trial's records.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..site import Session
    from ..sqlstore import SqlStore


def summary(session: Session, *, wards: SqlStore | None = None) -> dict[str, Any]:
    """The report's data (the CLI renders it as text or JSON).

    `wards`: where the hub keeps what its wards send (`sync.hub.ledger_store`: its file, or its
    PostgreSQL database, which holds the hub's lists too); the site's file when not given. A list's
    header is read from the hub's own event, in its file.
    """
    session.require("record.read", what="read randomization reports")
    from .service import own_identity
    from .unblinded import is_unblinded

    store = wards if wards is not None else session.store
    at_hub = own_identity(session.store)[2] == "hub"
    out_lists = []
    for lst in store.rows("SELECT * FROM rand_lists ORDER BY issued_at, rowid"):
        # The ward never holds a blinded arm; the hub shows them once the trial is unblinded.
        blinded = lst["reveal"] == "kit" and not (at_hub and is_unblinded(session, lst["protocol_id"]))
        line = session.store.scalar("SELECT line FROM events WHERE id = ?", (lst["event_id"],))
        header = json.loads(line)["body"] if line else {}
        ratio = {a["code"]: a["ratio"] for a in header.get("arms", [])}
        strata = []
        for stratum in json.loads(lst["strata"]):
            total = store.scalar(
                "SELECT COUNT(*) FROM rand_entries WHERE list_id = ? AND stratum = ?",
                (lst["list_id"], stratum),
            )
            rows = store.rows(
                "SELECT arm FROM rand_allocations WHERE list_id = ? AND stratum = ?",
                (lst["list_id"], stratum),
            )
            item: dict[str, Any] = {"stratum": stratum, "entries": total, "allocated": len(rows)}
            if not blinded:
                item["by_arm"] = {arm: sum(1 for r in rows if r["arm"] == arm) for arm in ratio}
            strata.append(item)
        out_lists.append(
            {
                "list": lst["list_id"],
                "site": lst["site"],
                "device": lst["device"],
                "protocol": f"{lst['protocol_id']} {lst['protocol_version']}",
                "blinded": blinded,
                "reveal": lst["reveal"],
                "ratio": ":".join(str(w) for w in ratio.values()),
                "arms": list(ratio),
                "list_sha256": lst["list_sha256"],
                "strata": strata,
            }
        )
    return {
        "lists": out_lists,
        "unblindings": store.rows(
            'SELECT participant, arm, kit, reason, detail, "user", witness, site, ts, event_id'
            " FROM rand_unblindings ORDER BY ts"
        ),
        "exhausted": store.rows(
            "SELECT stratum, participant, site, ts, event_id FROM rand_exhausted ORDER BY ts"
        ),
        # Allocations off their list are held with their bundle (`feature.hold_allocations_off_the_list`).
        "held": store.rows(
            "SELECT device, bundle_seq, detail, received_at, resolved_at FROM sync_held"
            " WHERE detail LIKE '%does not follow randomization list%' ORDER BY id"
        ),
    }
