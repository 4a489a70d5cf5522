"""A coordinator's hub fed by the demo ward (`wardcrf demo --hub DIR`).

The README's coordinator and auditor examples run against a hub. A demo
ward alone left them nothing to run on (``hub-data`` was a folder nothing
created), so the demo can also make the hub and feed it the way a real one
is fed: the hub registers the ward laptop's card, the ward trusts the hub's
card, the ward exports its signed, encrypted bundles and the hub imports
them (all or nothing, as `hub import` does), then the ward applies the
hub's receipts. Nothing is copied around the sync path.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from wardcrf import users
from wardcrf.errors import Refused
from wardcrf.site import Site

from . import hub, registry, ward

HUB_USERS = (
    ("coordinator", "Zhao Lei", "coordinator"),
    ("auditor", "Sun Li", "auditor"),
    ("monitor", "Zhou Qing", "monitor"),
)


@dataclass
class DemoHub:
    data_dir: Path
    recovery_key: str
    bundles: int
    events: int


def seed_hub(ward_dir: Path, hub_dir: Path, password: str) -> DemoHub:
    """Create a hub in `hub_dir` and apply every bundle of the demo ward in `ward_dir` to it."""
    init = hub.init(
        Path(hub_dir), admin="admin", password=password, name="demo-hub", full_name="Hub Administrator"
    )
    hub_s = init.site.unlock("admin", password)
    ward_s = Site.open(Path(ward_dir)).unlock("admin", password)
    try:
        # Before the ward's bundles: the ward's own accounts arrive with its events (names are never reused).
        for username, full_name, role in HUB_USERS:
            users.add_user(hub_s, username, full_name, role, password)
        registry.register_device(hub_s, registry.own_card(ward_s.store))
        registry.set_hub(ward_s, registry.own_card(hub_s.store))
        with tempfile.TemporaryDirectory(prefix="wardcrf-demo-sync-") as tmp:
            exported = ward.export(ward_s, Path(tmp))
            done = hub.import_files(hub_s, exported.files)
        for item in done:
            if item.result is None or not item.result.ok:
                why = item.refused or (item.result.outcome.message if item.result else "not applied")
                raise Refused(f"demo hub: bundle {item.path.name} was not applied: {why}")
            if item.result.receipt is not None:
                _name, data, sig = item.result.receipt
                ward.apply_receipt(ward_s, data, sig)
        return DemoHub(Path(hub_dir), init.recovery_key, len(done), exported.events)
    finally:
        ward_s.close()
        hub_s.close()
